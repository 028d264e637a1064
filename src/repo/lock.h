/* lock.h - locks in the repository: shared for backup and restore,
 * exclusive for purge.
 *
 * Owns: lock objects "locks/<32 hex>.lock" on any storage driver, their
 * JSON content {"kind": "shared"|"exclusive", "host", "pid", "created",
 * "refreshed", "purpose", "pidns", "pidstart"} and the protocol. "created" and
 * "refreshed" are seconds since the epoch (JSON numbers with fractions, as
 * in manifests); "purpose" may be null; "pidns" (the holder's pid namespace,
 * "pid:[4026531836]", Linux only, optional) keeps a container that shares
 * the host's name from judging pids it cannot see; "pidstart" (the holder's
 * start time in clock ticks after boot, Linux only, optional) tells a
 * holder from a later process that got the same pid.
 * S3 has no atomic create-if-absent on every server, so a lock is taken by
 * writing one's own lock object first and then listing every lock: a
 * conflicting lock (exclusive vs anything) that is not stale makes the
 * newcomer delete its own and wait (with a random back-off, so two
 * newcomers that see each other do not retry in step) or give up. Since every holder writes before it looks, of
 * two conflicting takers at least one sees the other.
 * A lock is stale when its host is this host and its pid is not running
 * (or runs a process with another start time than "pidstart"), or
 * when it was not refreshed for stale_after seconds (by the holder's clock
 * or the storage's mtime, whichever is newer); a stale lock is deleted with
 * a warning that names it. A lock object that cannot be parsed conflicts
 * with everything until its mtime is stale_after old. Only conflicting
 * locks are judged: a stale shared lock is left to the next exclusive
 * taker. A held lock is refreshed by a background thread every
 * stale_after / 4 seconds (never recreating an object someone else
 * deleted); the holder asks cs_lock_check between steps whether its lock
 * is still there (someone may have broken it while this process was
 * stopped) before doing anything destructive.
 * Must not: know about backups, manifests or Cassandra. */
#ifndef CS_LOCK_H
#define CS_LOCK_H

#include <stdbool.h>

#include "common/err.h"
#include "storage/storage.h"

typedef enum cs_lock_kind { CS_LOCK_SHARED, CS_LOCK_EXCLUSIVE } cs_lock_kind;

typedef struct cs_lock_opts {
    double stale_after; /* seconds without refresh before a lock is stale; 0: 1800 */
    double wait;        /* seconds to keep trying while a conflicting lock is held; 0: fail at once */
    const char *purpose; /* "backup 20261122-010000", shown to whoever waits; may be NULL */
    /* Also break locks that do not conflict when their process is provably
     * gone from this host (a backup sets it: killed backups' locks would
     * otherwise pile up until the next purge). */
    bool sweep_dead;
} cs_lock_opts;

typedef struct cs_lock cs_lock;

/* Take a lock of this kind on st (borrowed; must outlive the lock); o may
 * be NULL (the defaults). CS_E_LOCKED with one line naming the holder
 * ("repository is locked by purge on host h, pid 123, since 2026-11-22
 * 07:30:00 UTC", followed by " (still held after waiting 30.0s)" when
 * o->wait > 0) when a conflicting lock is still held after o->wait
 * seconds; CS_E_INVAL for a negative stale_after or wait. While waiting it
 * logs "waiting for lock held by <holder>: <purpose> needs an exclusive
 * (a shared) lock (giving up after <wait>)" at info level, once per holder,
 * and makes it the current item of the calling thread's job (common/job.h). */
int cs_lock_acquire(cs_storage *st, cs_lock_kind kind, const cs_lock_opts *o, cs_lock **out, cs_err *e);
/* Is the lock still in the storage? CS_E_EXISTS ("the repository lock
 * locks/<id>.lock was broken by another process") if not; an I/O error if
 * it cannot be told. Also a safe point: CS_E_CANCELED once a cancel is
 * requested (common/cancel.h), before the storage is asked. Safe to call
 * while the refresh thread runs. */
int cs_lock_check(cs_lock *l, cs_err *e);
/* Stop refreshing, delete the lock object and free l (NULL is fine). A
 * failure to delete is a warning: the lock becomes stale on its own. */
void cs_lock_release(cs_lock *l);

/* A lock as `status` shows it. */
typedef struct cs_lock_info {
    const char *key, *kind, *host, *purpose; /* kind "shared" or "exclusive"; purpose may be "" */
    long pid;
    double created, refreshed;
    bool dead; /* its pid is not running on this host */
} cs_lock_info;
typedef int (*cs_lock_list_cb)(const cs_lock_info *l, void *arg);
/* Every lock in st (damaged ones are skipped); cb returns non-zero to stop. */
int cs_lock_list(cs_storage *st, cs_lock_list_cb cb, void *arg, cs_err *e);
/* "exclusive lock by purge on host h, pid 123, since 2026-11-22 07:30:00
 * UTC, refreshed 20 s ago" (caller frees). */
char *cs_lock_describe(const cs_lock_info *l);

#endif

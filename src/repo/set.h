/* set.h - backup sets: one backup name shared by the nodes of a cluster.
 *
 * Owns: the set's files in the repository
 *   sets/<name>.set        plaintext JSON, written first (exclusive: a taken
 *                          name fails): set id, cluster, coordinator, start
 *                          time and the hosts expected to take part
 *   sets/<name>.manifest   the cluster manifest: the coordinator's JSON,
 *                          opaque here, sealed like node manifests (age
 *                          when the repository is encrypted)
 *   sets/<name>.commit     plaintext JSON, written last: the set is
 *                          committed, with each host's outcome
 * their parsing (outside input: every member validated as the index parser
 * does, names and host ids as repo.h allows, texts printable ASCII), and
 * what a set's state is: complete when committed and every expected host's
 * node backup is complete; otherwise which hosts are missing and why.
 * A node backup taken alone has no set files: it is a set of one, listed
 * and kept as before. An older cassette ignores sets/ and sees a set's
 * node backups as node backups. docs/repository-format.md, "Backup sets".
 * Must not: talk to Cassandra or to agents (the coordinator does). */
#ifndef CS_SET_H
#define CS_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/repo.h"
#include "repo/retention.h"

#define CS_SET_FORMAT 1
#define CS_SET_MAX_HOSTS 10000
#define CS_SET_RECORD_MAX (4u << 20) /* bytes of a set record or commit we agree to read */
/* An uncommitted set younger than this is "running" in list and status
 * (purge uses its --grace). */
#define CS_SET_RUNNING_GRACE (24 * 3600.0)

typedef struct cs_set_host {
    char *host_id, *address, *datacenter, *rack;
    bool ok;        /* commit: the node's backup completed */
    char *reason;   /* commit: why not (NULL when ok) */
} cs_set_host;

typedef struct cs_backup_set {
    char *name, *set_id, *cluster, *coordinator;
    double started, finished;   /* finished: 0 until committed */
    cs_set_host *hosts;
    size_t n_hosts;
    bool committed;
} cs_backup_set;

/* 32 random hex digits (caller frees). */
char *cs_repo_set_new_id(void);

/* Write sets/<name>.set. CS_E_EXISTS when the name is taken by a set or by
 * any node backup. The record is validated first (CS_E_INVAL). */
int cs_repo_set_begin(cs_repo *r, const cs_backup_set *s, cs_err *e);
/* Write the cluster manifest (sealed like node manifests; exclusive). */
int cs_repo_set_put_manifest(cs_repo *r, const char *name, const char *json, size_t len, cs_err *e);
/* Read it back (needs the identity when the repository is encrypted).
 * CS_E_NOTFOUND when the set has none. */
int cs_repo_set_get_manifest(cs_repo *r, const char *name, cs_buf *out, cs_err *e);
/* Write sets/<name>.commit from s (its finished time and every host's ok
 * and reason); the set record must be there with s's set id, not yet
 * committed. Reasons are written as one line of printable ASCII (at most
 * 512 bytes; others replaced by '?'); a host that is ok has none. */
int cs_repo_set_commit(cs_repo *r, const cs_backup_set *s, cs_err *e);
/* The set named name: its record, and its commit when present.
 * CS_E_NOTFOUND: no set of that name; CS_E_CORRUPT: damaged. */
int cs_repo_read_set(cs_repo *r, const char *name, cs_backup_set *out, cs_err *e);
void cs_backup_set_free(cs_backup_set *s);

/* ---- documents (pure: no I/O) ---- */

/* The record's and the commit's JSON (caller frees). */
char *cs_set_record_to_json(const cs_backup_set *s);
char *cs_set_commit_to_json(const cs_backup_set *s);
/* Parse and check a record into out. CS_E_CORRUPT with one sentence. */
int cs_set_record_from_json(const char *text, size_t len, cs_backup_set *out, cs_err *e);
/* Parse and check a commit of the set s (same name and set id, only its
 * expected hosts, each once) and merge it into s: finished, committed, and
 * every host's ok and reason (a host the commit leaves out: not ok). */
int cs_set_commit_from_json(const char *text, size_t len, cs_backup_set *s, cs_err *e);
/* Is s a valid record (names, ids, texts, hosts unique)? why: one sentence. */
bool cs_set_is_valid(const cs_backup_set *s, const char **why);
/* The expected host of that id, or NULL. */
const cs_set_host *cs_set_find_host(const cs_backup_set *s, const char *host_id);

/* ---- the sets of a repository ---- */

/* What one listing of sets/ shows of one name. */
typedef struct cs_set_files {
    char *name;
    bool has_record, has_manifest, has_commit;
    int64_t mtime;            /* of the record, else of any of its files */
} cs_set_files;

/* One set found in the repository: its record (with commit), or why it
 * cannot be read. */
typedef struct cs_set_entry {
    cs_set_files files;
    cs_backup_set set;        /* valid when !damage */
    char *damage;             /* NULL, or why the record or commit cannot be trusted */
} cs_set_entry;

/* Every set, sorted by name (one listing, then each record and commit). */
int cs_repo_list_sets(cs_repo *r, cs_set_entry **out, size_t *n, cs_err *e);
void cs_set_entries_free(cs_set_entry *s, size_t n);
/* The set entry of name in a list, or NULL. */
const cs_set_entry *cs_set_entries_find(const cs_set_entry *s, size_t n, const char *name);

/* "sets/<name>.<suffix>" (suffix "set", "manifest", "commit"; caller frees). */
char *cs_repo_set_key(const char *name, const char *suffix);
/* The order a set's files are deleted in, after its node backups: the
 * cluster manifest, the commit, the record last (a crash between leaves
 * an incomplete set that the next purge finds). */
extern const char *const cs_set_delete_order[3];

/* The state of set s given the backups of the repository (list entries,
 * any order): which expected hosts have a complete node backup, which do
 * not and why ("running" before the commit while younger than grace
 * seconds, "no manifest" otherwise, the commit's reason, or the damage).
 * now: seconds since the epoch. */
void cs_set_state_of(const cs_backup_set *s, const cs_backup_entry *entries, size_t n, double now, double grace,
                     cs_set_info *out);
/* Retention over whole sets (items: one per set, complete as
 * cs_set_state_of says; group: the set's cluster). The policy applies to
 * the sets of each cluster on their own, as to the backups of one node: an
 * incomplete set never counts among the kept ones, the newest complete set
 * of each cluster is always kept. Incomplete sets are left for the caller
 * (kept here; purge removes them once older than its grace period). */
int cs_set_retention_apply(const cs_retention *policy, cs_retention_item *items, size_t n, cs_err *e);

/* A copy of info (caller frees with cs_set_info_free). */
cs_set_info *cs_set_info_dup(const cs_set_info *info);

#endif

/* state.h - the local dedup cache of backup: what is already stored.
 *
 * Owns: <state_dir>/<repo id>/<host id>.json, which maps (data directory,
 * table id, file name) to the size, mtime, hash and object of the file last
 * stored, <host id>.journal and <host id>.content (with its .lock) beside
 * it, and the rule for trusting them.
 * The cache is written against the newest complete backup of the host (its
 * anchor); it is used only if that backup is still the newest complete one
 * in the repository, otherwise it is rebuilt from the newest such manifest
 * (so a lost or stale cache costs one manifest read, never a wrong
 * reference; a host without the identity to read manifests keeps using the
 * files of the cache's own backup while that backup is complete). Entries
 * of objects that no complete backup references (stored by a backup that
 * failed or was killed) are "unreferenced". Nothing here is trusted to be
 * in the repository: an object may be purged, deleted by hand or lost
 * whatever the cache says, so the backup checks every object it reuses
 * (ops/present.h) and stores the file again when its object is not there.
 * A backup that fails part way adds the files it did store to the cache; a
 * backup killed outright leaves them in the journal, one line per stored
 * file, appended as each is stored. Either way the next backup does not
 * store them again. The cache is also indexed by content (see "known
 * contents" below), with what restores placed.
 * Must not: read data files, or ask the repository about objects. */
#ifndef CS_STATE_H
#define CS_STATE_H

#include <stdint.h>

#include "ops/host.h"
#include "common/err.h"
#include "repo/manifest.h"
#include "repo/repo.h"

typedef struct cs_state cs_state;

typedef struct cs_state_entry {
    char *key;       /* "<data dir>\t<table id>\t<file name>" */
    uint64_t size;
    int64_t mtime_ns;
    char hash[CS_CONTENT_HASH_LEN];
    char object[CS_OBJECT_ID_HEX];
    uint64_t stored;
    cs_pack_ref pack;  /* the file's place in a pack (len 0: its object holds it alone) */
    bool unreferenced; /* not a file of the anchor backup: checked before use */
} cs_state_entry;

/* The local state directory (the host's state_dir, else ~/.cache/cassette/state). */
char *cs_state_dir(const cs_host *host);

/* Hold an exclusive lock on this host's backups from this machine
 * (<state dir>/<host id>.lock, flock). CS_E_EXISTS if another backup of
 * the node holds it. Released by cs_state_unlock or at exit. */
int cs_state_lock(const cs_host *host, const char *host_id, int *fd_out, cs_err *e);
void cs_state_unlock(int fd);

/* Load the cache (see above), the journal and the learned contents.
 * Opens the journal for cs_state_record. */
int cs_state_load(const cs_host *host, cs_repo *repo, const char *host_id, cs_state **out, cs_err *e);
/* Append f (just stored: name, size, mtime_ns, hash, object, stored) to the
 * journal, so that it is known even if the process is killed before any
 * save. Thread-safe; one write(2) per line. A failure is one warning, never
 * an error. s may be NULL (then nothing happens). */
void cs_state_record(cs_state *s, const char *data_dir, const char *table_id, const cs_mfile *f);
/* The entry for this file if size and mtime still match, else NULL. */
const cs_state_entry *cs_state_find(const cs_state *s, const char *data_dir, const char *table_id,
                                    const char *name, uint64_t size, int64_t mtime_ns);
/* Write the cache for the files of manifest m (a complete backup), then
 * remove the journal. */
int cs_state_save(const cs_host *host, cs_repo *repo, const cs_manifest *m, cs_err *e);
/* After a backup that failed part way: keep what old knew, plus every file
 * m stored whole before the failure, so that the next backup stores only
 * what is missing, then remove the journal (old holds what it held at
 * load, m what was recorded since). The new entries are unreferenced. */
int cs_state_save_partial(const cs_host *host, cs_repo *repo, const cs_state *old, const cs_manifest *m,
                          cs_err *e);
void cs_state_free(cs_state *s);

/* ---- known contents ----
 * A file's name is not the only way to know it is stored: an import
 * restore places files that nodetool import renames, and Cassandra may
 * move a file between directories. The state indexes what it knows by
 * content (size and hash): every file of the cache, and the contents
 * learned from restores (<host id>.content, lines appended by
 * cs_state_learn, forgotten after 30 days, and once a complete backup
 * references them by name). A backup that meets a file it does not know by
 * name, of a size known here, hashes it and reuses a stored object of the
 * same content (after checking the object is there, as any reuse). */

/* The entries of content (size, hash) (hash NULL: any of that size), *n
 * of them from the returned pointer on; NULL when none. */
const cs_state_entry *const *cs_state_contents(const cs_state *s, uint64_t size, const char *hash, size_t *n);

/* Record that host_id now holds the files of m's tables (those with
 * tables[i] set, or all when tables is NULL): their sizes, hashes and
 * objects. Safe beside a running backup (a lock file orders the two). */
int cs_state_learn(const cs_host *host, const cs_repo *repo, const char *host_id, const cs_manifest *m,
                   const bool *tables, cs_err *e);

/* About how many objects the repository holds, from the backups' summaries
 * read at load (0: none or not known). */
uint64_t cs_state_repo_objects(const cs_state *s);

#endif

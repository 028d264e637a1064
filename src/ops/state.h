/* state.h - the local dedup cache of backup: what is already stored.
 *
 * Owns: <state_dir>/<repo id>/<host id>.json, which maps (data directory,
 * table id, file name) to the size, mtime, hash and object of the file last
 * stored, and the rule for trusting it: the cache is used only if the
 * backup it was written by is still a complete backup of this host in the
 * repository; otherwise it is rebuilt from the newest such manifest (so a
 * lost or stale cache costs one manifest read, never a wrong reference). A
 * backup that fails part way adds the files it did store, so a retry does
 * not store them again.
 * Must not: read data files. */
#ifndef CS_STATE_H
#define CS_STATE_H

#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "repo/manifest.h"
#include "repo/repo.h"

typedef struct cs_state cs_state;

typedef struct cs_state_entry {
    char *key;       /* "<data dir>\t<table id>\t<file name>" */
    uint64_t size;
    int64_t mtime_ns;
    char hash[CS_HASH_HEX];
    char object[CS_OBJECT_ID_HEX];
    uint64_t stored;
} cs_state_entry;

/* The local state directory (config, else ~/.cache/cassette/state). */
char *cs_state_dir(const cs_config *cfg);

/* Hold an exclusive lock on this host's backups from this machine
 * (<state dir>/<host id>.lock, flock). CS_E_EXISTS if another backup of
 * the node holds it. Released by cs_state_unlock or at exit. */
int cs_state_lock(const cs_config *cfg, const char *host_id, int *fd_out, cs_err *e);
void cs_state_unlock(int fd);

int cs_state_load(const cs_config *cfg, cs_repo *repo, const char *host_id, cs_state **out, cs_err *e);
/* The entry for this file if size and mtime still match, else NULL. */
const cs_state_entry *cs_state_find(const cs_state *s, const char *data_dir, const char *table_id,
                                    const char *name, uint64_t size, int64_t mtime_ns);
/* Write the cache for the files of manifest m (a complete backup). */
int cs_state_save(const cs_config *cfg, cs_repo *repo, const cs_manifest *m, cs_err *e);
/* After a backup that failed part way: keep what old knew, plus every file
 * m stored whole before the failure, so that the next backup stores only
 * what is missing. (The objects are not referenced by any manifest yet;
 * purge keeps such objects for a grace period.) */
int cs_state_save_partial(const cs_config *cfg, cs_repo *repo, const cs_state *old, const cs_manifest *m,
                          cs_err *e);
void cs_state_free(cs_state *s);

#endif

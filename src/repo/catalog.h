/* catalog.h - the local SQLite cache of a repository's backups and objects.
 *
 * Owns: one SQLite file per repository (default
 * $XDG_CACHE_HOME/cassette/catalog/<repo id>.db, else under ~/.cache) holding
 *   backups  one row per backup of a host: totals and scope from its
 *            summary, index or manifest, whether it is damaged and why, and
 *            the sizes and times of its files when it was read;
 *   objects  every object a committed backup references: stored size,
 *            plaintext size and hash (when a manifest named it; an index
 *            does not), how many backups reference it, when it was
 *            last read back whole (verify --sample rotates by this);
 *   refs     which backup references which object;
 *   sets     each backup set as list last saw it (set id, cluster,
 *            expected and complete hosts);
 * and the sync that brings it in line with the repository: one listing of
 * backups/, then only what changed is read (a summary; an index or a
 * manifest when references are wanted). The repository is the truth: a catalog of another
 * repository, of another schema version, or that SQLite cannot open is
 * started over, and deleting the file loses nothing. File names are not
 * kept (10,000 files per backup x thousands of backups); they stay in the
 * manifests, read when a problem must be named.
 * Memory stays bounded whatever the repository's size: rows live in the
 * file, SQLite's page cache is capped, one manifest is read at a time.
 * Must not: delete anything from the repository, or know about Cassandra. */
#ifndef CS_CATALOG_H
#define CS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "io/filters.h"
#include "repo/repo.h"

typedef struct cs_catalog cs_catalog;

/* ~/.cache/cassette/catalog/<repo id>.db (caller frees). */
char *cs_catalog_default_path(const char *repo_id);

/* Open (creating) the catalog at path for repo. */
int cs_catalog_open(const char *path, const cs_repo *repo, cs_catalog **out, cs_err *e);
void cs_catalog_close(cs_catalog *c);
/* Forget everything (catalog rebuild). */
int cs_catalog_clear(cs_catalog *c, cs_err *e);

/* Bring the catalog in line with repo, reading each backup that changed
 * (or was read at a lower level) with cs_repo_load_backup: summaries are
 * enough for list (CS_LOAD_ENTRY); CS_LOAD_REFS learns every committed
 * backup's objects from its manifest with an identity, else from its index;
 * CS_LOAD_MANIFEST from manifests only (plaintext hashes, for deep verify).
 * A damaged backup is recorded as such (entry.damage), with the references
 * of whichever of index and manifest is sound. */
int cs_catalog_sync(cs_catalog *c, cs_repo *repo, cs_load_level level, cs_err *e);

/* Every backup of every host, in the order of cs_repo_list_backups. */
int cs_catalog_backups(cs_catalog *c, cs_backup_entry **out, size_t *n, cs_err *e);

/* Backup sets (repo/set.h) as list last saw them: name, set id, cluster,
 * start, expected and complete hosts. Put replaces them all with the sets
 * of entries (those with a set; each name once). */
typedef struct cs_catalog_set {
    char *name, *set_id, *cluster;
    double started;
    size_t expected, complete_hosts;
    bool complete;
} cs_catalog_set;
int cs_catalog_put_sets(cs_catalog *c, const cs_backup_entry *entries, size_t n, cs_err *e);
/* Every set, oldest first. */
int cs_catalog_sets(cs_catalog *c, cs_catalog_set **out, size_t *n, cs_err *e);
void cs_catalog_sets_free(cs_catalog_set *s, size_t n);

/* Forget one backup of one host (after purge deleted it). */
int cs_catalog_forget(cs_catalog *c, const char *name, const char *host_id, cs_err *e);
/* The objects that this backup alone references, and their stored bytes. */
int cs_catalog_only_refs(cs_catalog *c, const char *name, const char *host_id, uint64_t *objects, uint64_t *stored,
                         cs_err *e);

/* One referenced object. */
typedef struct cs_catalog_object {
    int64_t row;                    /* catalog row id (iteration order) */
    char id[CS_OBJECT_ID_HEX];
    uint64_t size;                  /* plaintext */
    uint64_t stored;                /* bytes the repository writer was given */
    char hash[CS_CONTENT_HASH_LEN];
    bool conflict;                  /* two manifests disagree about its content */
} cs_catalog_object;

/* Choose the objects a verify looks at: those referenced by complete
 * backups named backup (NULL: every complete backup); with sample_pct in
 * (0, 100), only that share of their stored bytes, those read back longest
 * ago first.
 * *count: how many were chosen. */
int cs_catalog_select(cs_catalog *c, const char *backup, double sample_pct, uint64_t *count, cs_err *e);
/* The plaintext bytes of the chosen objects (what a deep verify reads). */
int cs_catalog_selected_size(cs_catalog *c, uint64_t *bytes, cs_err *e);
/* The next up to max chosen objects after row `after` (0: from the start). */
int cs_catalog_selected(cs_catalog *c, int64_t after, cs_catalog_object *out, size_t max, size_t *n, cs_err *e);
/* Record that these objects were read back whole and found good, now. */
int cs_catalog_mark_verified(cs_catalog *c, const cs_catalog_object *objs, size_t n, double now, cs_err *e);
/* Problems: remember a damaged object (by row), then learn in one pass
 * which complete backups reference the damaged objects. */
int cs_catalog_mark_bad(cs_catalog *c, int64_t row, cs_err *e);
typedef int (*cs_catalog_ref_cb)(const char *name, const char *host_id, const char *object, void *arg);
int cs_catalog_bad_refs(cs_catalog *c, cs_catalog_ref_cb cb, void *arg, cs_err *e);

/* A listing of objects/ kept beside the catalog for one run. */
int cs_catalog_listing_begin(cs_catalog *c, cs_err *e);
int cs_catalog_listing_add(cs_catalog *c, const char *id, uint64_t size, int64_t mtime, cs_err *e);
int cs_catalog_listing_end(cs_catalog *c, cs_err *e);

/* Chosen objects that the listing lacks (listed_size < 0) or lists with
 * another size; the callback returns non-zero to stop. */
typedef int (*cs_catalog_listed_cb)(const cs_catalog_object *o, int64_t listed_size, void *arg);
int cs_catalog_check_listing(cs_catalog *c, cs_catalog_listed_cb cb, void *arg, cs_err *e);

/* Listed objects that no complete backup references and whose mtime is
 * before cutoff, after row `after` of the listing, up to max ids. */
int cs_catalog_unreferenced(cs_catalog *c, int64_t cutoff, int64_t after, char (*ids)[CS_OBJECT_ID_HEX],
                            int64_t *rows, size_t max, size_t *n, uint64_t *bytes, cs_err *e);

/* Committed backups that lack references (sync ran without them, or both
 * their index and manifest are damaged): the unreferenced query refuses
 * to answer while there are any. */
int cs_catalog_count_without_refs(cs_catalog *c, uint64_t *n, cs_err *e);
/* The same, one by one (damage: NULL unless the backup is damaged). */
typedef int (*cs_catalog_backup_cb)(const char *name, const char *host_id, const char *damage, void *arg);
int cs_catalog_without_refs(cs_catalog *c, cs_catalog_backup_cb cb, void *arg, cs_err *e);

/* Nested transactions around a group of changes (savepoints; purge
 * --dry-run rolls back). */
int cs_catalog_begin(cs_catalog *c, cs_err *e);
int cs_catalog_commit(cs_catalog *c, cs_err *e);
void cs_catalog_rollback(cs_catalog *c);

#endif

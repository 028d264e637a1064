/* repo.h - the repository: layout, identity and the catalog of backups.
 *
 * Owns: the repository's layout on any storage driver
 *   cassette.repo                        format, id, compression (JSON)
 *   objects/<2 hex>/<32 hex>             one stored file each (zstd stream)
 *   backups/<name>/<host_id>.started     written first: a backup is under way
 *   backups/<name>/<host_id>.manifest    written last: the backup exists
 *   backups/<name>/<host_id>.summary     small totals that make `list` cheap
 * and the rules: object ids are random (they reveal nothing of keyspace,
 * table or content), objects are never modified, a backup is complete only
 * when its manifest is present. Knows nothing of Cassandra beyond names.
 * Must not: talk to Cassandra or read local data files. */
#ifndef CS_REPO_H
#define CS_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/manifest.h"
#include "storage/storage.h"

#define CS_REPO_FORMAT 1
#define CS_MANIFEST_MAX (512u << 20)

typedef struct cs_repo {
    cs_storage *st;
    char *location;
    char id[CS_OBJECT_ID_HEX];
} cs_repo;

/* Open an existing repository. With create, a missing or empty location
 * becomes a new repository; a non-empty location without cassette.repo is
 * always an error ("not a cassette repository"). */
int cs_repo_open(const char *location, bool create, cs_repo **out, cs_err *e);
/* Create a new repository; the location must be missing or empty. */
int cs_repo_init(const char *location, cs_repo **out, cs_err *e);
void cs_repo_free(cs_repo *r);

/* A fresh random object id (32 hex digits). */
void cs_repo_new_object_id(char out[CS_OBJECT_ID_HEX]);
/* "objects/ab/<id>" (caller frees). */
char *cs_repo_object_key(const char *id);

/* Backup names: [A-Za-z0-9._-]{1,128}, not starting with '.' or '-'. */
bool cs_repo_is_valid_backup_name(const char *name);

/* CS_E_EXISTS if any node has started a backup with this name. */
int cs_repo_check_name_free(cs_repo *r, const char *name, cs_err *e);
/* Mark a backup of host as started; CS_E_EXISTS if that name is taken. */
int cs_repo_mark_started(cs_repo *r, const cs_manifest *m, cs_err *e);
/* Write the manifest (the commit point), then the summary. */
int cs_repo_put_manifest(cs_repo *r, const cs_manifest *m, cs_err *e);
/* Read and validate the manifest of backup `name`. host_id may be NULL when
 * the backup holds one node. CS_E_NOTFOUND: no such backup; an incomplete
 * backup is an error that says so. */
int cs_repo_read_manifest(cs_repo *r, const char *name, const char *host_id, cs_manifest *out, cs_err *e);

typedef struct cs_backup_entry {
    char *name;
    char *host_id;
    char *address;
    double started;
    double finished;   /* 0 when incomplete */
    uint64_t files;
    uint64_t size;
    uint64_t stored;
    bool complete;
} cs_backup_entry;

/* Every backup of every host, oldest first. */
int cs_repo_list_backups(cs_repo *r, cs_backup_entry **out, size_t *n, cs_err *e);
void cs_backup_entries_free(cs_backup_entry *entries, size_t n);

#endif

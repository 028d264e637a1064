/* repo.h - the repository: layout, identity and the catalog of backups.
 *
 * Owns: the repository's layout on any storage driver
 *   cassette.repo                        format, id, compression, encryption (JSON)
 *   objects/<2 hex>/<32 hex>             one stored file each (zstd stream, then
 *                                        an age file when the repository is encrypted)
 *   backups/<name>/<host_id>.started     written first: a backup is under way
 *   backups/<name>/<host_id>.manifest    written last: the backup exists
 *   backups/<name>/<host_id>.summary     small totals that make `list` cheap
 * and the rules: object ids are random (they reveal nothing of keyspace,
 * table or content), objects are never modified, a backup is complete only
 * when its manifest is present. When cassette.repo lists age recipients,
 * every object and every manifest is an age file encrypted to them: writing
 * needs only the public keys, reading needs an identity. Start marks and
 * summaries stay readable (names, hosts, times, sizes: no keyspace, table
 * or file names) so that `list` works on a host that holds no identity.
 * Knows nothing of Cassandra beyond names.
 * Must not: talk to Cassandra or read local data files. */
#ifndef CS_REPO_H
#define CS_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "crypto/age.h"
#include "repo/manifest.h"
#include "storage/storage.h"

#define CS_REPO_FORMAT 1
#define CS_MANIFEST_MAX (512u << 20)

typedef struct cs_repo {
    cs_storage *st;
    char *location;
    char id[CS_OBJECT_ID_HEX];
    cs_strlist recipient_keys;   /* "age1..." from cassette.repo; empty: not encrypted */
    age_recipient **recipients;
    age_identity **identities;   /* loaded by cs_repo_load_identities */
    size_t n_identities;
    uint64_t age_empty_size;     /* bytes of an empty age file to the recipients */
} cs_repo;

/* How to open a repository: both fields may be NULL. */
typedef struct cs_repo_opts {
    const cs_strlist *recipients; /* age1... keys a new repository encrypts to */
    const cs_s3_opts *s3;         /* settings for an s3:// location */
} cs_repo_opts;

/* Open an existing repository. With create, a missing or empty location
 * becomes a new repository encrypted to opts->recipients (none: not
 * encrypted); a non-empty location without cassette.repo is always an
 * error ("not a cassette repository"). opts may be NULL. */
int cs_repo_open(const char *location, bool create, const cs_repo_opts *opts, cs_repo **out, cs_err *e);
/* Create a new repository; the location must be missing or empty. */
int cs_repo_init(const char *location, const cs_repo_opts *opts, cs_repo **out, cs_err *e);
void cs_repo_free(cs_repo *r);

bool cs_repo_is_encrypted(const cs_repo *r);
/* Load the identities that can read an encrypted repository (an age
 * identity file, as age-keygen writes it). */
int cs_repo_load_identities(cs_repo *r, const char *path, cs_err *e);

/* A writer for a stored object: compressed bytes in, encrypted to the
 * repository's recipients when it has any. Close commits, free aborts. */
int cs_repo_writer(cs_repo *r, const char *key, int flags, cs_sink **out, cs_err *e);
/* Like cs_repo_writer, through a resumable storage writer (storage.h,
 * "resumable uploads"), with the age seal of the object when the repository
 * is encrypted (an empty seal is filled; a filled one is reused): the same
 * input then gives the same stored bytes, which is what lets an interrupted
 * upload be resumed. seal is not used when the repository is not encrypted. */
int cs_repo_resumable_writer(cs_repo *r, const char *key, cs_put_resume *res, age_seal *seal, cs_sink **out,
                             cs_err *e);
/* Wrap dst (taken over) so that the stored bytes of an object pushed into
 * *head come out as what the writer was given (decrypted when needed). */
int cs_repo_reader(cs_repo *r, cs_sink *dst, cs_sink **head, cs_err *e);

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
    /* What this backup added to the repository (files it stored itself,
     * not reused): known when has_new (summaries of format 1 lack it). */
    uint64_t files_new;
    uint64_t size_new;
    uint64_t stored_new;
    bool has_new;
    bool complete;
} cs_backup_entry;

/* Every backup of every host, oldest first (by start time, then name,
 * then host id). */
int cs_repo_list_backups(cs_repo *r, cs_backup_entry **out, size_t *n, cs_err *e);
void cs_backup_entries_free(cs_backup_entry *entries, size_t n);

/* The list entry of the backup behind one key: a ".summary" or ".started"
 * (small plaintext JSON) or a ".manifest" (read whole; needs an identity
 * when the repository is encrypted). */
int cs_repo_read_entry(cs_repo *r, const char *key, cs_backup_entry *out, cs_err *e);
/* The list entry of a complete backup from its manifest. */
void cs_repo_entry_of_manifest(const cs_manifest *m, cs_backup_entry *out);

/* The key of backup name's file of host_id ("backups/NAME/HOST.SUFFIX";
 * suffix "started", "manifest" or "summary"; caller frees). */
char *cs_repo_backup_key(const char *name, const char *host_id, const char *suffix);

/* Bytes in the storage of an object whose writer was given payload bytes
 * (the age overhead when the repository is encrypted). */
uint64_t cs_repo_stored_size(const cs_repo *r, uint64_t payload);

#endif

/* repo.h - the repository: layout, identity and the catalog of backups.
 *
 * Owns: the repository's layout on any storage driver
 *   cassette.repo                        format, id, compression, encryption (JSON)
 *   objects/<2 hex>/<32 hex>             one stored file each (zstd stream, then
 *                                        an age file when the repository is encrypted)
 *   backups/<name>/<host_id>.started     written first: a backup is under way
 *   backups/<name>/<host_id>.index       written before the manifest: plaintext,
 *                                        checksummed (see index.h)
 *   backups/<name>/<host_id>.manifest    written last: the backup exists
 *   backups/<name>/<host_id>.summary     small totals that make `list` cheap
 *   sets/<name>.set, .manifest, .commit  a backup set shared by the nodes of
 *                                        a cluster (see set.h)
 * and the rules: object ids are random (they reveal nothing of keyspace,
 * table or content), objects are never modified, a backup is complete only
 * when its manifest is present. When cassette.repo lists age recipients,
 * every object and every manifest is an age file encrypted to them: writing
 * needs only the public keys, reading needs an identity. Start marks,
 * indexes and summaries stay readable (names, hosts, times, sizes, object
 * ids, "all" or "partial" and an opaque scope id: no keyspace, table or file
 * names) so that list, status, purge and the fast verify work on a host that
 * holds no identity. docs/repository-format.md describes every file.
 * Formats: 1 (no index, no scope), 2 (every backup has an index and a
 * scope). This cassette reads both; a format-1 repository stays format 1
 * (its backups made now get an index too, but purge and the fast verify
 * need the identity as long as an older backup lacks one).
 * A backup whose manifest, index or summary is damaged is reported as
 * damaged (cs_backup_entry.damage), never as complete, and never stops the
 * others from being listed, verified or purged.
 * Knows nothing of Cassandra beyond names.
 * Must not: talk to Cassandra or read local data files (the scope key, a
 * small secret kept beside the local state, is the one exception). */
#ifndef CS_REPO_H
#define CS_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "common/strlist.h"
#include "common/err.h"
#include "crypto/age.h"
#include "repo/index.h"
#include "repo/manifest.h"
#include "storage/storage.h"

#define CS_REPO_FORMAT 2      /* what a new repository gets */
#define CS_REPO_FORMAT_MIN 1  /* the oldest this cassette reads */
#define CS_MANIFEST_MAX (512u << 20)

typedef struct cs_repo {
    cs_storage *st;
    char *location;
    int format;                  /* of cassette.repo: 1 or 2 */
    char id[CS_OBJECT_ID_HEX];
    cs_strlist recipient_keys;   /* "age1..." from cassette.repo; empty: not encrypted */
    age_recipient **recipients;
    age_identity **identities;   /* loaded by cs_repo_load_identities */
    size_t n_identities;
    uint64_t age_empty_size;     /* bytes of an empty age file to the recipients */
} cs_repo;

/* How to open a repository: the field may be NULL. */
typedef struct cs_repo_opts {
    const cs_strlist *recipients; /* age1... keys a new repository encrypts to */
} cs_repo_opts;

/* What to tell someone whose location holds no repository (a typo or a
 * missing mount must never become a new repository unasked). */
#define CS_REPO_NO_REPO_HINT "create one with cassette init, or check the location"

/* Open the repository in st, an opened storage (cs_storage_open: the caller
 * chooses the driver and its options). The repository takes st over, also
 * when it fails (st is freed then); st->location names it in messages. With
 * create, an empty location becomes a new repository encrypted to
 * opts->recipients (none: not encrypted); a non-empty location without
 * cassette.repo is always an error ("not a cassette repository"). opts may
 * be NULL. */
int cs_repo_open(cs_storage *st, bool create, const cs_repo_opts *opts, cs_repo **out, cs_err *e);
/* Create a new repository in st (taken over, as by cs_repo_open); the
 * location must be empty. */
int cs_repo_init(cs_storage *st, const cs_repo_opts *opts, cs_repo **out, cs_err *e);
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
/* A small document (a cluster manifest, a server's state export) stored
 * whole at key: sealed like a manifest when the repository is encrypted
 * (cs_repo_writer), with flags (CS_PUT_EXCLUSIVE: never over another). */
int cs_repo_put_doc(cs_repo *r, const char *key, int flags, const char *text, size_t len, cs_err *e);
/* The document at key, unsealed, into out (at most max bytes of it). */
int cs_repo_get_doc(cs_repo *r, const char *key, size_t max, cs_buf *out, cs_err *e);

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
/* Write the index, then the manifest (the commit point), then the summary. */
int cs_repo_put_manifest(cs_repo *r, const cs_manifest *m, cs_err *e);
/* Read and validate the manifest of backup `name`. host_id may be NULL when
 * the backup holds one node. CS_E_NOTFOUND: no such backup; an incomplete
 * backup is an error that says so; a manifest that does not match its
 * index is CS_E_CORRUPT. */
int cs_repo_read_manifest(cs_repo *r, const char *name, const char *host_id, cs_manifest *out, cs_err *e);
/* The host ids that have a manifest of backup name (sorted). */
int cs_repo_backup_hosts(cs_repo *r, const char *name, cs_strlist *out, cs_err *e);
/* Read and check the index of one backup of one host. */
int cs_repo_read_index(cs_repo *r, const char *name, const char *host_id, cs_index *out, cs_err *e);

/* The scope of a backup of these keyspaces and tables (NULL or empty: all),
 * with its id when partial: BLAKE2b-128 of cs_scope_canonical, keyed when
 * the repository is encrypted with a random key kept in
 * <key_dir>/<repository id>/scope.key (made on first use, mode 0600), so
 * that the id names no keyspace to someone who can only read the
 * repository (keyspace names are easy to guess; an unkeyed hash would not
 * hide them). Backups of one node by one host get the same id for the same
 * scope; a host that lost its key starts new ids (partial backups then
 * start a new retention group; full backups are "all" and never change). */
int cs_repo_scope_of(cs_repo *r, const char *key_dir, const cs_strlist *keyspaces, const cs_strlist *tables,
                     cs_scope *out, cs_err *e);

/* An expected host of a backup set whose node backup is not complete. */
typedef struct cs_set_missing {
    char *host_id, *address, *reason;
} cs_set_missing;

/* What list shows of a backup set (see set.h): NULL in a node backup
 * taken alone. */
typedef struct cs_set_info {
    char *id, *cluster;
    size_t expected, complete_hosts;
    bool complete;              /* committed, and every expected host's backup complete */
    cs_set_missing *missing;    /* the expected hosts that are not, in the record's order */
    size_t n_missing;
} cs_set_info;

/* Free what info holds; free info too (NULL: nothing). */
void cs_set_info_clear(cs_set_info *info);
void cs_set_info_free(cs_set_info *info);

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
    bool complete;     /* committed, and not damaged as far as was checked */
    char *scope;       /* "all", "partial", or NULL: not recorded (format 1; counted as all) */
    char *scope_names; /* "ks1,ks2,ks.t" when readable in the clear, else NULL */
    char *scope_id;    /* partial: the opaque id; else NULL */
    char *damage;      /* NULL, or why this committed backup cannot be trusted */
    cs_set_info *set;  /* the set the name belongs to (owned), or NULL: a node backup alone */
} cs_backup_entry;

/* Retention's group of a backup: "all" or "partial:<id>" (caller frees). */
char *cs_backup_entry_group(const cs_backup_entry *b);
/* Free the strings of one entry (not the entry itself). */
void cs_backup_entry_clear(cs_backup_entry *b);

/* Every backup of every host, oldest first (by start time, then name,
 * then host id). */
int cs_repo_list_backups(cs_repo *r, cs_backup_entry **out, size_t *n, cs_err *e);
void cs_backup_entries_free(cs_backup_entry *entries, size_t n);

/* The list entry of a complete backup from its manifest. */
void cs_repo_entry_of_manifest(const cs_manifest *m, cs_backup_entry *out);

/* The key of backup name's file of host_id ("backups/NAME/HOST.SUFFIX";
 * suffix "started", "index", "manifest" or "summary"; caller frees). */
char *cs_repo_backup_key(const char *name, const char *host_id, const char *suffix);

/* The files of one backup of one host, as one listing of backups/ shows them. */
enum { CS_BK_STARTED, CS_BK_INDEX, CS_BK_MANIFEST, CS_BK_SUMMARY, CS_BK_KINDS };
extern const char *const cs_backup_suffix[CS_BK_KINDS]; /* "started", "index", ... */
typedef struct cs_backup_files {
    char *name, *host;
    bool has[CS_BK_KINDS];
    uint64_t size[CS_BK_KINDS];
    int64_t mtime[CS_BK_KINDS];
} cs_backup_files;

/* One listing of backups/: each (name, host) once, sorted by name, host. */
int cs_repo_scan_backups(cs_repo *r, cs_backup_files **out, size_t *n, cs_err *e);
void cs_backup_files_free(cs_backup_files *b, size_t n);
/* Files left by an interrupted purge or delete: neither start mark nor manifest. */
bool cs_backup_files_is_leftover(const cs_backup_files *f);
/* The order in which a backup's files are deleted: start mark and summary
 * first, the manifest (the backup stops being complete), the index last
 * (so that a manifest never lacks its index). */
extern const int cs_backup_delete_order[CS_BK_KINDS];

/* How much to learn of one backup. */
typedef enum cs_load_level {
    CS_LOAD_ENTRY = 0,    /* what list shows: summary, start mark (cheap) */
    CS_LOAD_REFS = 1,     /* and which objects it references: from the manifest
                           * with an identity, else from the index */
    CS_LOAD_MANIFEST = 2, /* references from the manifest itself (hashes: deep verify) */
} cs_load_level;

typedef struct cs_backup_info {
    cs_backup_entry entry;
    int refs;             /* 0: unknown, 1: from the index, 2: from the manifest */
    cs_index index;       /* when refs == 1 */
    cs_manifest manifest; /* when refs == 2 */
} cs_backup_info;

/* Load one backup (f from cs_repo_scan_backups). Damage (a file that fails
 * its checks) is not an error: it is reported in out->entry.damage, with
 * the references from whichever of index and manifest is sound. Errors:
 * CS_E_NOTFOUND (a leftover, or deleted since the listing), I/O, and
 * CS_E_NOKEY when level needs references that only the manifest holds. */
int cs_repo_load_backup(cs_repo *r, const cs_backup_files *f, cs_load_level level, cs_backup_info *out, cs_err *e);
void cs_backup_info_free(cs_backup_info *info);

/* Bytes in the storage of an object whose writer was given payload bytes
 * (the age overhead when the repository is encrypted). */
uint64_t cs_repo_stored_size(const cs_repo *r, uint64_t payload);

#endif

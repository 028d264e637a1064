/* manifest.h - the node manifest: what one backup of one node holds.
 *
 * Owns: cs_manifest (node identity, topology, directories, schema, and for
 * every table its SSTable files with size, mtime, plaintext hash and the
 * object that stores them), its JSON form, and the validation of a
 * manifest read back from a repository. A manifest comes from outside (the
 * repository may be tampered with), so parsing checks every name and
 * number: keyspace and table names are plain identifiers, file names are
 * safe relative paths, object ids are hex, data directory indexes are in
 * range. Nothing read from a manifest can make cassette write outside the
 * target directory. Must not: do I/O. */
#ifndef CS_MANIFEST_H
#define CS_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strlist.h"
#include "common/err.h"
#include "io/filters.h"

#define CS_MANIFEST_FORMAT 3 /* written now (packs); 2 and 1 (BLAKE2b hashes only) are read too */
#define CS_MANIFEST_FORMAT_MIN 1
#define CS_OBJECT_ID_HEX 33 /* 32 hex digits + NUL */

/* Where a file lies in an object that holds several files of one SSTable
 * (a pack, manifest format 3; docs/repository-format.md): the file is one
 * zstd frame, `len` bytes at byte `at` of the object's stored stream (what
 * age encrypts), and the object's plaintext (its members' bytes, in order)
 * has `size` bytes of content hash `hash`, which is what verify --deep
 * checks. len == 0: the object holds this file alone. */
typedef struct cs_pack_ref {
    uint64_t at, len;
    uint64_t size;
    char hash[CS_CONTENT_HASH_LEN];
} cs_pack_ref;

typedef struct cs_mfile {
    char *name;            /* relative to the table directory, e.g. "nb-1-big-Data.db" or ".idx/..." */
    uint64_t size;         /* plaintext bytes */
    int64_t mtime_ns;      /* modification time on the node, ns since the epoch */
    unsigned data_dir;     /* index into the manifest's data_dirs */
    char hash[CS_CONTENT_HASH_LEN]; /* content hash of the plaintext (io/filters.h: "sha256:<hex>", or bare hex = BLAKE2b-256 before format 2) */
    char object[CS_OBJECT_ID_HEX]; /* object id in the repository */
    uint64_t stored;       /* bytes of the stored object (a pack's: all of its members') */
    cs_pack_ref pack;      /* len 0: the object holds this file alone */
    bool is_new;           /* stored by this backup (not reused); kept in JSON */
} cs_mfile;

typedef struct cs_mtable {
    char *keyspace;
    char *table;
    char *id;              /* 32 hex digits: the table directory is "<table>-<id>" */
    char *schema_cql;      /* the snapshot's schema.cql, may be empty */
    cs_mfile *files;
    size_t n_files;
} cs_mtable;

/* What a backup covers: every keyspace, or some keyspaces and tables. */
typedef struct cs_scope {
    bool recorded;         /* false: the manifest predates scopes (counted as all) */
    bool all;              /* every keyspace of the node */
    cs_strlist keyspaces;  /* partial: sorted, each once */
    cs_strlist tables;     /* partial: "ks.table", sorted, each once */
    char id[CS_OBJECT_ID_HEX]; /* partial: an opaque id of the scope (see repo.h); "" for all */
} cs_scope;

typedef struct cs_manifest {
    char *backup;
    char *host_id;
    char *address;
    char *cluster_name;
    char *datacenter;
    char *rack;
    char *release_version;
    char *partitioner;
    cs_strlist tokens;
    cs_strlist data_dirs;
    char *commitlog_dir;
    char *hints_dir;
    char *saved_caches_dir;
    double started;        /* seconds since the epoch */
    double finished;
    json_t *schema;        /* DESCRIBE SCHEMA rows (see cassandra/node.h), owned */
    cs_mtable *tables;
    size_t n_tables;
    cs_scope scope;        /* optional in JSON: manifests made before scopes lack it */
} cs_manifest;

/* Is f one file of a pack? */
static inline bool cs_mfile_packed(const cs_mfile *f)
{
    return f->pack.len != 0;
}
/* The stored bytes that are f's own: its frame in a pack, else its object. */
static inline uint64_t cs_mfile_own_stored(const cs_mfile *f)
{
    return f->pack.len ? f->pack.len : f->stored;
}
/* The size and content hash of what f's object holds: the pack's, or f's. */
static inline uint64_t cs_mfile_object_size(const cs_mfile *f)
{
    return f->pack.len ? f->pack.size : f->size;
}
static inline const char *cs_mfile_object_hash(const cs_mfile *f)
{
    return f->pack.len ? f->pack.hash : f->hash;
}

/* A pack reference as JSON, [at, len, size, "hash"] (new reference), and
 * back, validated against the object's stored size and the file's size
 * (what a manifest, the dedup cache and its journal record). */
json_t *cs_pack_ref_json(const cs_pack_ref *p);
int cs_pack_ref_parse(const json_t *j, uint64_t stored, uint64_t file_size, cs_pack_ref *out, cs_err *e);

/* Totals over every file (stored: each file's own bytes, see cs_mfile_own_stored). */
typedef struct cs_manifest_totals {
    uint64_t files, size, stored, files_new, size_new, stored_new;
} cs_manifest_totals;

void cs_manifest_totals_of(const cs_manifest *m, cs_manifest_totals *t);

/* Add a table (the manifest owns the copies) and return it. */
cs_mtable *cs_manifest_add_table(cs_manifest *m, const char *ks, const char *table, const char *id);
/* Add a file to a table and return it (name copied); fill the rest. */
cs_mfile *cs_mtable_add_file(cs_mtable *t, const char *name);
/* Every file of m (pointers into m; caller frees the array), sorted by cmp
 * (qsort's, on const cs_mfile *const *) or in manifest order (NULL). */
const cs_mfile **cs_manifest_files(const cs_manifest *m, int (*cmp)(const void *, const void *), size_t *n);
/* Find a table by keyspace and name, or NULL. */
cs_mtable *cs_manifest_find_table(const cs_manifest *m, const char *ks, const char *table);

/* Serialize (*out: caller frees); fails if any text is not valid UTF-8
 * (JSON cannot carry it, and dropping it would lose a table). Parse with
 * full validation. */
int cs_manifest_to_json(const cs_manifest *m, char **out, cs_err *e);
int cs_manifest_from_json(const char *text, size_t len, cs_manifest *m, cs_err *e);
void cs_manifest_free(cs_manifest *m);

/* The scope of a backup of these keyspaces and tables ("ks.table"); both
 * empty: every keyspace. Names are copied, sorted, each once; the id is
 * left empty (the repository computes it). */
void cs_scope_set(cs_scope *s, const cs_strlist *keyspaces, const cs_strlist *tables);
/* "keyspaces=a,b;tables=a.t": the text a scope id is computed from (caller frees). */
char *cs_scope_canonical(const cs_scope *s);
/* "all", or "a,b,a.t" (caller frees). */
char *cs_scope_describe(const cs_scope *s);
void cs_scope_free(cs_scope *s);

/* Is s exactly 32 lowercase hex digits (object ids, table ids)? */
bool cs_is_hex32(const char *s);

#endif

/* index.h - the plaintext index of one backup of one node.
 *
 * Owns: what purge and the fast verify need of a backup without its
 * manifest, which only an identity can read: the objects the backup
 * references with their stored sizes, its scope (all or partial, and the
 * partial scope's opaque id), its times and totals, and the size and
 * BLAKE2b-256 of its manifest as stored (so that a damaged, truncated or
 * swapped manifest is found without the key). Its JSON document:
 *
 *   {"type":"cassette-index","format":1,"blake2b":"<64 hex>","body":{...}}
 *
 * where blake2b is the BLAKE2b-256 of the body written canonically (keys
 * sorted, no spaces, ASCII: what json.dumps(body, sort_keys=True,
 * separators=(",", ":")) gives), so that accidental damage anywhere in the
 * body is found. The checksum is not a signature: it protects against
 * damage, not against someone who can write to the repository.
 * What the index reveals is what a listing of objects/ shows already
 * (object ids are random, stored sizes are the objects' sizes) plus which
 * backup uses which object: never a keyspace, table or file name, a
 * plaintext hash, or content.
 * Parsing validates everything (the index is outside input): ids are hex,
 * objects sorted and each once, counts in range, names as repo.h allows.
 * Must not: do I/O. */
#ifndef CS_INDEX_H
#define CS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "io/filters.h"
#include "repo/manifest.h"

#define CS_INDEX_FORMAT 1
#define CS_INDEX_MAX (256u << 20) /* bytes of an index document we agree to read */

typedef struct cs_index_object {
    char id[CS_OBJECT_ID_HEX];
    uint64_t stored;  /* bytes the repository writer was given (as the manifest's "stored") */
} cs_index_object;

typedef struct cs_index {
    char *backup;
    char *host_id;
    char *address;                        /* the node's, as the summary shows it */
    int64_t started_ms, finished_ms;      /* since the epoch */
    bool scope_recorded;                  /* false only for an index of a manifest without scope */
    bool scope_all;
    char scope_id[CS_OBJECT_ID_HEX];      /* partial: the manifest's scope id */
    uint64_t files, size, stored, files_new, size_new, stored_new; /* as cs_manifest_totals */
    uint64_t manifest_size;               /* bytes of the manifest as stored */
    char manifest_hash[CS_HASH_HEX];      /* BLAKE2b-256 of those bytes, hex */
    cs_index_object *objects;             /* sorted by id, each once */
    size_t n_objects;
} cs_index;

/* The index of manifest m, whose stored form is sealed[0..len). */
void cs_index_of_manifest(const cs_manifest *m, const void *sealed, size_t len, cs_index *out);
/* The document (caller frees). */
char *cs_index_to_json(const cs_index *ix);
/* Parse and check a document; CS_E_CORRUPT with one sentence when it is
 * damaged (checksum, syntax, a value out of range). */
int cs_index_from_json(const char *text, size_t len, cs_index *out, cs_err *e);
void cs_index_free(cs_index *ix);

/* Does sealed[0..len) match the manifest the index describes? */
bool cs_index_matches_manifest(const cs_index *ix, const void *sealed, size_t len);

#endif

/* storage.h - the one storage interface used by every command.
 *
 * Owns: cs_storage, a driver-neutral handle on a flat key space of
 * immutable objects ("objects/ab/abcd...", "backups/NAME/HOST.manifest");
 * the registry of drivers that cs_storage_open picks from by the location's
 * scheme; and the helpers for small objects built on the driver operations.
 * Keys are '/'-separated relative paths that pass cs_path_is_safe_relative.
 *
 * Drivers: posix (a local directory or file:// URL, the default), s3
 * (s3://BUCKET/PREFIX: AWS S3, Backblaze B2, MinIO, versitygw and other
 * S3-compatible servers), az (az://CONTAINER/PREFIX: Azure Blob Storage
 * and its emulator Azurite) and mem (in memory, for tests; not in the
 * registry). Each driver owns its options: the caller hands over a list of
 * (name, value) strings, names prefixed by the driver's scheme
 * ("s3.endpoint", "s3.part_size"; "storage.*" names concern every driver
 * that can honour them), and the driver parses and checks its own values.
 * How to add a driver: docs/storage-drivers.md.
 *
 * The contract every driver keeps (tests/conformance checks it on each):
 * - An object becomes visible (get, stat, list) only when its writer closes
 *   successfully; a writer freed without close leaves nothing behind (but a
 *   resumable writer's unfinished upload, see below, which is not an object
 *   either), and list never shows a partial write.
 * - CS_PUT_EXCLUSIVE creates a key at most once: a second exclusive put of
 *   an existing key fails with CS_E_EXISTS (locks rely on it).
 * - get and stat of a missing key are CS_E_NOTFOUND; del of a missing key
 *   is not an error.
 * Must not: know about manifests, Cassandra or encryption, or include the
 * CLI config. */
#ifndef CS_STORAGE_H
#define CS_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/kvlist.h"
#include "io/sink.h"

typedef struct cs_storage cs_storage;

typedef struct cs_storage_stat {
    uint64_t size;
    int64_t mtime; /* seconds since the epoch */
} cs_storage_stat;

/* Called once per key found by list; return non-zero to stop (that value is
 * returned by list, with e untouched). */
typedef int (*cs_storage_list_cb)(const char *key, const cs_storage_stat *st, void *arg);

enum cs_put_flags {
    CS_PUT_EXCLUSIVE = 1, /* fail with CS_E_EXISTS if the key exists (locks) */
};

/* ---- resumable uploads --------------------------------------------------
 * A large object is sent in parts (S3 multipart). A resumable writer keeps
 * its upload when it is freed without a successful close (the process was
 * stopped, the network failed) and reports, as they happen, the driver's
 * token of the upload (S3: the upload id) and each part it stored with the
 * part's size and a hash of its bytes (computed as the part fills). The caller
 * records them; a later process gives them back, and the new writer keeps
 * the parts the storage still holds: the first bytes written to it, as many
 * as those parts hold, are not sent but checked, part by part, against the
 * recorded hashes (the caller must regenerate exactly the same bytes; a
 * difference fails the write with CS_E_CORRUPT and sets `diverged`: abort
 * the upload and start over). Drivers without resumable writers (posix: a
 * local file is cheap to write again) give an ordinary writer: nothing is
 * reported, nothing is kept.
 *
 * The part hash is XXH3-128 (libxxhash), not a cryptographic hash: it is
 * computed over almost every byte backed up (every part of every large
 * file), and BLAKE2b there cost about 1.3 CPU-s per GiB where XXH3 costs a
 * few hundredths. It only has to catch accidental divergence (another zstd
 * version, a file changed in place) between bytes we produced twice, never
 * an adversary's: the recorded hashes live in a local 0600 file and both
 * sides of the comparison are our own output. The repository's integrity
 * rests on the manifest's content hashes, not on these. */

#define CS_PUT_HASH_BYTES 16 /* XXH3-128, canonical (big-endian) form */
#define CS_PUT_HASH_NAME "xxh3-128" /* recorded by callers that keep part hashes */

typedef struct cs_put_part {
    unsigned number;                      /* 1, 2, ... in the order of the bytes */
    uint64_t size;
    unsigned char hash[CS_PUT_HASH_BYTES]; /* of the part's bytes */
} cs_put_part;

/* Must outlive the writer (its callbacks and results are used until the
 * writer is freed). Callbacks run on the writer's threads, several at once:
 * they serialise themselves. */
typedef struct cs_put_resume {
    /* in */
    const char *token;         /* of an earlier upload of the same key; NULL: none */
    const cs_put_part *parts;  /* parts that upload reported stored, by ascending number */
    size_t n_parts;
    void (*on_token)(void *arg, const char *token);      /* a new upload began: record it first */
    void (*on_part)(void *arg, const cs_put_part *part); /* a part of it is stored */
    void *arg;
    /* out */
    size_t kept;               /* parts[0..kept) are kept (set when the writer is made) */
    uint64_t resumed;          /* their bytes: written, checked, not sent */
    bool diverged;             /* the bytes written differ from a kept part's */
} cs_put_resume;

/* Called once per unfinished upload found by list_resumable (initiated:
 * seconds since the epoch, 0 when unknown); non-zero stops the listing. */
typedef int (*cs_storage_upload_cb)(const char *key, const char *token, int64_t initiated, void *arg);

typedef struct cs_storage_ops {
    const char *name; /* "posix", "s3", "az", "mem" */
    int (*put)(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e);
    int (*get)(cs_storage *st, const char *key, cs_sink *dst, cs_err *e);
    int (*stat)(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e);
    int (*list)(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e);
    int (*del)(cs_storage *st, const char *key, cs_err *e);
    /* Optional: delete many keys in few requests; NULL means one by one. */
    int (*del_many)(cs_storage *st, const char *const *keys, size_t n, cs_err *e);
    void (*free)(cs_storage *st);
    /* Optional (NULL: the driver has no resumable writers): see above. A
     * token the storage no longer knows starts a new upload. */
    int (*put_resumable)(cs_storage *st, const char *key, cs_put_resume *r, cs_sink **out, cs_err *e);
    /* Drop the upload behind token (a gone one is not an error). */
    int (*abort_resumable)(cs_storage *st, const char *key, const char *token, cs_err *e);
    /* The unfinished uploads of keys starting with prefix. */
    int (*list_resumable)(cs_storage *st, const char *prefix, cs_storage_upload_cb cb, void *arg, cs_err *e);
} cs_storage_ops;


struct cs_storage {
    const cs_storage_ops *ops;
    char *location; /* for messages: the location as it was opened; never holds secrets */
};

/* ---- options and the driver registry ------------------------------------
 * Options are strings (as a flag, a variable or a config file gives them),
 * named "<scheme>.<key>"; a driver reads those of its scheme and the shared
 * "storage.*" ones it can honour (storage.rate_limit: bytes per second for
 * the whole process, honoured by the network drivers). Secrets among them
 * (s3.secret_access_key) are never logged or put into messages. */
typedef cs_kvlist cs_storage_opts;

typedef struct cs_storage_driver {
    const char *scheme;         /* "file", "s3": locations "SCHEME://...", options "SCHEME.KEY" */
    const char *const *options; /* the option names it owns, NULL-terminated */
    /* Open location (its scheme is this driver's, or it is a plain path for
     * the "file" driver). The options' values are checked here: a bad one is
     * CS_E_USAGE with a one-line message naming the option. */
    int (*open)(const char *location, const cs_storage_opts *opts, bool create, cs_storage **out, cs_err *e);
} cs_storage_driver;

/* Open a storage location with the driver its scheme names (a plain path:
 * the "file" driver); opts may be NULL. A local directory must exist
 * unless create is true (then it is created); a bucket must exist. An
 * unknown scheme, or an option of this driver (or a shared one) that no one
 * owns, is an error; options of other drivers are ignored (a config may hold
 * settings for several). */
int cs_storage_open(const char *location, const cs_storage_opts *opts, bool create, cs_storage **out, cs_err *e);
void cs_storage_free(cs_storage *st);

/* For drivers: read one option (an empty value counts as not set). Each
 * fails with CS_E_USAGE and a message naming the option. */
const char *cs_storage_opt(const cs_storage_opts *opts, const char *name);
/* A whole number in [min, max]; def when not set. */
int cs_storage_opt_number(const cs_storage_opts *opts, const char *name, uint64_t def, uint64_t min, uint64_t max,
                          uint64_t *out, cs_err *e);
/* A size ("64M", "1G", "512K" or bytes) in [min, max]; def when not set. */
int cs_storage_opt_size(const cs_storage_opts *opts, const char *name, uint64_t def, uint64_t min, uint64_t max,
                        uint64_t *out, cs_err *e);
/* One of choices (NULL-terminated): its index; def when not set. */
int cs_storage_opt_choice(const cs_storage_opts *opts, const char *name, const char *const *choices, int def,
                          int *out, cs_err *e);

/* Open a writer for key (see cs_put_flags). Close commits, free aborts. */
int cs_storage_put(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e);
/* Stream the object into dst (dst is written to, not closed). A missing key
 * is CS_E_NOTFOUND. */
int cs_storage_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e);
/* The type cs_storage_stat and this function would share one identifier,
 * which C does not allow; the function is cs_storage_stat_key, and the
 * function-like macro keeps `cs_storage_stat(st, key, &out, e)` working (it
 * expands only when followed by '(', so the type name is unaffected). */
int cs_storage_stat_key(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e);
#define cs_storage_stat(...) cs_storage_stat_key(__VA_ARGS__)
/* Every key that starts with prefix (recursively), in no particular order;
 * temporary files of unfinished writers are never listed. */
int cs_storage_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e);
/* Delete key; a missing key is not an error. */
int cs_storage_del(cs_storage *st, const char *key, cs_err *e);
/* Delete keys in batches where the driver can (S3: 1000 per request). */
int cs_storage_del_many(cs_storage *st, const char *const *keys, size_t n, cs_err *e);

/* A resumable writer for key (see "resumable uploads" above); the checks of
 * the kept bytes come from here, the parts from the driver. An ordinary
 * writer (r->kept = 0) when the driver has none. */
/* The part hash of n bytes at p (see "resumable uploads"). */
void cs_put_hash(const void *p, size_t n, unsigned char out[CS_PUT_HASH_BYTES]);
/* The same hash, of a part given in pieces as they arrive: a driver hashes
 * each piece as it lands in its part buffer, while it is still in the CPU's
 * cache, instead of reading the whole part back from memory once it is full.
 * On x86 the library's AVX2/AVX-512 code is used where the CPU has it
 * (storage.c): 0.02 CPU-s per GiB of parts on the bench's VM, 0.14 before. */
typedef struct cs_put_hasher cs_put_hasher;
cs_put_hasher *cs_put_hasher_new(void);
void cs_put_hasher_add(cs_put_hasher *h, const void *p, size_t n);
/* The hash of the pieces added since the last call (or since new); the
 * next piece begins the next part. */
void cs_put_hasher_end(cs_put_hasher *h, unsigned char out[CS_PUT_HASH_BYTES]);
void cs_put_hasher_free(cs_put_hasher *h);

int cs_storage_put_resumable(cs_storage *st, const char *key, cs_put_resume *r, cs_sink **out, cs_err *e);
/* Drop an upload a resumable writer left behind (nothing for drivers
 * without them). */
int cs_storage_abort_resumable(cs_storage *st, const char *key, const char *token, cs_err *e);
/* The unfinished uploads under prefix (none for drivers without them), for
 * purge to drop those nobody resumed. */
int cs_storage_list_resumable(cs_storage *st, const char *prefix, cs_storage_upload_cb cb, void *arg, cs_err *e);

/* Small objects in one call: whole content in memory (at most max bytes). */
int cs_storage_put_bytes(cs_storage *st, const char *key, int flags, const void *p, size_t n, cs_err *e);
int cs_storage_get_bytes(cs_storage *st, const char *key, size_t max, cs_buf *out, cs_err *e);

/* The drivers of the registry (storage.c lists them). */
extern const cs_storage_driver cs_posix_driver; /* "file": a local directory */
extern const cs_storage_driver cs_s3_driver;    /* "s3": s3://BUCKET/PREFIX (BUCKET may be empty: s3.bucket) */
extern const cs_storage_driver cs_az_driver;    /* "az": az://CONTAINER/PREFIX (Azure Blob Storage) */

/* Drivers made directly. A local directory (see cs_storage_open). */
int cs_posix_storage_new(const char *root, bool create, cs_storage **out, cs_err *e);
/* A new, empty store in memory, for tests: it keeps the interface's whole
 * contract; name is only for messages ("mem://NAME"). */
cs_storage *cs_mem_storage_new(const char *name);
/* Another handle on the same store (for a test that reopens it); the store
 * lives until its last handle is freed. */
cs_storage *cs_mem_storage_share(cs_storage *mem);

#endif

/* storage.h - the one storage interface used by every command.
 *
 * Owns: cs_storage, a driver-neutral handle on a flat key space of
 * immutable objects ("objects/ab/abcd...", "backups/NAME/HOST.manifest"),
 * and the helpers for small objects built on the driver operations.
 * Keys are '/'-separated relative paths that pass cs_path_is_safe_relative.
 * Drivers: posix (a local directory, the default) and s3 (AWS S3, Backblaze
 * B2, MinIO, versitygw and other S3-compatible servers).
 * An object becomes visible only when its writer closes successfully; a
 * writer freed without close leaves nothing behind (but a resumable writer's
 * unfinished upload, see below, which is not an object either). Must not: know about
 * manifests, Cassandra or encryption. */
#ifndef CS_STORAGE_H
#define CS_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
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
 * part's size and a hash of its bytes (computed while sending). The caller
 * records them; a later process gives them back, and the new writer keeps
 * the parts the storage still holds: the first bytes written to it, as many
 * as those parts hold, are not sent but checked, part by part, against the
 * recorded hashes (the caller must regenerate exactly the same bytes; a
 * difference fails the write with CS_E_CORRUPT and sets `diverged`: abort
 * the upload and start over). Drivers without resumable writers (posix: a
 * local file is cheap to write again) give an ordinary writer: nothing is
 * reported, nothing is kept. */

#define CS_PUT_HASH_BYTES 32 /* BLAKE2b-256 */

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
    const char *name; /* "posix", "s3" */
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

/* Settings of the s3 driver (the posix driver ignores them). Strings are
 * borrowed for the duration of cs_storage_open_s3; zero/NULL means the
 * default. Secrets are never logged or put into messages. */
typedef struct cs_s3_opts {
    const char *endpoint;          /* "https://s3.us-west-002.backblazeb2.com"; default AWS for the region */
    const char *region;            /* default "us-east-1" */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *bucket;            /* used when the location names none ("s3://" or "s3:///prefix") */
    const char *addressing;        /* "path", "virtual", or "auto" (path for a custom endpoint) */
    const char *ca_file;           /* PEM bundle instead of the system store */
    const char *sign_payload;      /* "yes", "no", or "auto" (yes over http only) */
    uint64_t part_size;            /* multipart part size, default 8 MiB (min 5 MiB) */
    unsigned concurrency;          /* part buffers of the whole process (being filled
                                      or in flight), default 4, at least 2 */
    uint64_t rate_limit;           /* bytes per second for the whole process, 0 = none */
    unsigned retries;              /* attempts after the first, default 6 */
    long timeout_s;                /* connect timeout and stall limit, default 30 */
} cs_s3_opts;

struct cs_storage {
    const cs_storage_ops *ops;
    char *location; /* human-readable, for messages; never holds secrets */
};

/* Open a storage location: a path or file:// URL -> posix. The directory
 * must exist unless create is true (then it is created). */
int cs_storage_open(const char *location, bool create, cs_storage **out, cs_err *e);
/* Same, with settings for an s3:// location (s3 may be NULL). */
int cs_storage_open_s3(const char *location, const cs_s3_opts *s3, bool create, cs_storage **out, cs_err *e);
void cs_storage_free(cs_storage *st);

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

/* Driver constructors (used by cs_storage_open). */
int cs_posix_storage_new(const char *root, bool create, cs_storage **out, cs_err *e);
/* location is "s3://BUCKET/PREFIX" (BUCKET may be empty: then opts->bucket). */
int cs_s3_storage_new(const char *location, const cs_s3_opts *opts, cs_storage **out, cs_err *e);

#endif

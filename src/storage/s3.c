/* s3.c - the S3 storage driver: AWS S3, Backblaze B2, MinIO, versitygw.
 *
 * Behind the same cs_storage interface as posix. What is S3's lives here:
 * URLs (path or virtual-host style), SigV4 signing of every attempt
 * (sigv4.c), S3's errors and retryable answers, the XML documents
 * (s3xml.c), and the multipart logic; the transport is storage/http's
 * (curl handle pool, retries with backoff and full jitter on 5xx,
 * 429/SlowDown, timeouts and dropped connections, downloads resumed with a
 * Range where they stopped, the token bucket limiting the bytes per second,
 * and the pool of part buffers). Objects up to one part are sent with one
 * PUT; larger ones as a multipart upload with several parts in flight,
 * aborted if anything fails (a resumable writer's is kept instead, for a
 * later process to finish: it reports the upload id and each part's size
 * and hash (storage.h) as they are stored, and a later writer lists the parts with
 * ListParts; its part uploads stop at once on a cancel request). Part
 * buffers come from the storage handle's http client: at most
 * `concurrency` of them (never fewer than 2), filled or in flight, however
 * many writers are open at once, so memory stays bounded when many files
 * are stored in parallel. Payloads are signed (SHA-256 of the body) over
 * http and sent as UNSIGNED-PAYLOAD over https, where TLS protects them in
 * transit (what the AWS SDKs do); every stored object also carries its own
 * end-to-end hash. Must not: log or report any credential. */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/job.h"
#include "common/log.h"
#include "common/fs.h"
#include "crypto/sha256.h"
#include "storage/http.h"
#include "storage/s3xml.h"
#include "storage/sigv4.h"
#include "storage/storage.h"

#define S3_MIN_PART (5u << 20)
#define S3_DEFAULT_PART (8u << 20)
#define S3_MAX_PARTS 10000
#define S3_DELETE_BATCH 1000
#define S3_MAX_PART (5ull << 30)

/* The driver's settings, read from its options ("s3.*" and
 * storage.rate_limit) by s3_opts_parse; strings are borrowed from the
 * option list for the duration of the constructor. Secrets are never logged
 * or put into messages. */
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

/* ---- the storage handle ---------------------------------------------- */

typedef struct s3_storage {
    cs_storage base;
    char *scheme;        /* "http" or "https" */
    char *host;          /* "127.0.0.1:7070": what the Host header names */
    char *bucket;
    char *prefix;        /* "" or "path/to/repo" (no slashes at the ends) */
    bool path_style;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *region;
    uint64_t part_size;
    unsigned concurrency;
    bool sign_payload;   /* SHA-256 of every body in the signature */
    cs_http *http;       /* transport, handle pool, rate limit, part buffers */
} s3_storage;

static s3_storage *s3_of(cs_storage *st)
{
    return (s3_storage *)(void *)st;
}

/* ---- one request -------------------------------------------------------- */

/* An S3 request: the transport's part first (the callbacks get it back). */
typedef struct s3_req {
    cs_http_req http;           /* method, body, sink, cancellable; results */
    const char *key;            /* object key below the prefix; NULL: the bucket */
    const cs_sigv4_pair *query;
    size_t nquery;
    cs_sigv4_pair headers[4];   /* extra signed headers */
    size_t nheaders;
    char payload_hash[CS_SIGV4_HEX];
    s3_storage *s;
} s3_req;

static s3_req *s3_req_of(const cs_http_req *r)
{
    return (s3_req *)(void *)r;
}

/* The path as signed and sent: "/bucket/prefix/key" or "/prefix/key". */
static char *request_path(const s3_storage *s, const char *key)
{
    cs_buf p = CS_BUF_INIT;
    if (s->path_style)
        cs_buf_printf(&p, "/%s", s->bucket);
    if (key) {
        cs_buf_addch(&p, '/');
        if (s->prefix[0])
            cs_buf_printf(&p, "%s/", s->prefix);
        cs_buf_addstr(&p, key);
    } else if (!s->path_style || p.len == 0) {
        cs_buf_addch(&p, '/');
    }
    return cs_buf_detach(&p);
}

static char *request_host(const s3_storage *s)
{
    return s->path_style ? cs_strdup(s->host) : cs_sprintf("%s.%s", s->bucket, s->host);
}

/* Before every attempt: the URL, and the headers signed now (with the
 * Range of a resumed download among them). */
static int prepare(cs_http_req *hr, const char *range, cs_http_attempt *a, cs_err *e)
{
    s3_req *r = s3_req_of(hr);
    s3_storage *s = r->s;
    char *path = request_path(s, r->key);
    char *host = request_host(s);
    cs_buf url = CS_BUF_INIT;
    cs_buf_printf(&url, "%s://%s", s->scheme, host);
    cs_sigv4_uri_encode(path, strlen(path), true, &url);
    if (r->nquery) {
        cs_buf_addch(&url, '?');
        cs_sigv4_query_string(r->query, r->nquery, &url);
    }
    cs_http_attempt_url(a, cs_buf_str(&url));
    cs_sigv4_pair headers[5];
    size_t nheaders = r->nheaders;
    memcpy(headers, r->headers, nheaders * sizeof *headers);
    if (range)
        headers[nheaders++] = (cs_sigv4_pair){ "Range", range };
    cs_sigv4_creds creds = { s->access_key_id, s->secret_access_key, s->session_token, s->region, "s3" };
    cs_sigv4_request sr = { hr->method, host, path, r->query, r->nquery, headers, nheaders, r->payload_hash,
                            time(NULL) };
    cs_sigv4_sent sent = { NULL, 0 };
    int rc = cs_sigv4_headers(&creds, &sr, &sent, e);
    for (size_t i = 0; !rc && i < sent.n; i++)
        cs_http_attempt_header(a, sent.lines[i]);
    cs_sigv4_sent_free(&sent);
    cs_buf_free(&url);
    free(path);
    free(host);
    return rc;
}

/* ---- retries and errors ------------------------------------------------- */

/* Beyond the transport's: S3 asks for a retry with 400 RequestTimeout. */
static bool retryable(const cs_http_req *r)
{
    return r->status == 400 && strstr(cs_buf_str(&r->resp), "<Code>RequestTimeout</Code>");
}

static const char *endpoint_of(const s3_storage *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s://%s", s->scheme, s->host);
    return buf;
}

/* One sentence for a failed request; never a credential in it. */
static int request_error(const cs_http_req *hr, cs_err *e)
{
    const s3_req *r = s3_req_of(hr);
    const s3_storage *s = r->s;
    char ep[300];
    endpoint_of(s, ep, sizeof ep);
    if (hr->transport_error)
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach S3 at %s: %s", ep, hr->transport_error);
    cs_s3xml_error x;
    cs_err ignored;
    bool parsed = hr->resp.len && cs_s3xml_parse_error(hr->resp.data, hr->resp.len, &x, &ignored) == 0;
    const char *code = parsed ? x.code : "";
    const char *msg = parsed && x.message ? x.message : "";
    int rc;
    if (hr->status == 403 || hr->status == 401)
        rc = cs_err_set(e, CS_E_EXTERNAL, "access denied to bucket %s at %s%s%s", s->bucket, ep,
                        code[0] ? ": " : "", code);
    else if (!strcmp(code, "NoSuchBucket") || (hr->status == 404 && !r->key))
        rc = cs_err_set(e, CS_E_NOTFOUND, "bucket %s does not exist at %s", s->bucket, ep);
    else if (hr->status == 404)
        rc = cs_err_set(e, CS_E_NOTFOUND, "object %s not found", r->key);
    else if (hr->status == 412)
        rc = cs_err_set(e, CS_E_EXISTS, "object %s already exists", r->key ? r->key : "");
    else
        rc = cs_err_set(e, CS_E_EXTERNAL, "S3 %s %s at %s failed: HTTP %ld%s%s%s%s", hr->method,
                        r->key ? r->key : s->bucket, ep, hr->status, code[0] ? " " : "", code, msg[0] ? ": " : "",
                        msg);
    if (parsed)
        cs_s3xml_error_free(&x);
    return rc;
}

/* Run r to success or final failure (storage/http retries what can
 * succeed later). */
static int s3_request(s3_storage *s, s3_req *r, cs_err *e)
{
    cs_http_req *hr = &r->http;
    if (hr->body && s->sign_payload)
        cs_sha256_hex(hr->body, hr->body_len, r->payload_hash);
    else if (hr->body)
        memcpy(r->payload_hash, CS_SIGV4_UNSIGNED_PAYLOAD, sizeof CS_SIGV4_UNSIGNED_PAYLOAD);
    else
        memcpy(r->payload_hash, CS_SIGV4_EMPTY_SHA256, sizeof r->payload_hash);
    r->s = s;
    hr->service = "S3";
    hr->target = r->key ? r->key : s->bucket;
    hr->prepare = prepare;
    hr->retryable = retryable;
    hr->error = request_error;
    return cs_http_request(s->http, hr, e);
}

static void req_free(s3_req *r)
{
    cs_http_req_free(&r->http);
}

/* ---- get, stat, del ----------------------------------------------------- */

static int s3_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    s3_req r = { .http = { .method = "GET", .sink = dst }, .key = key };
    int rc = s3_request(s3_of(st), &r, e);
    req_free(&r);
    return rc;
}

static int s3_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    s3_req r = { .http = { .method = "HEAD" }, .key = key };
    int rc = s3_request(s3_of(st), &r, e);
    if (!rc) {
        out->size = r.http.content_length;
        out->mtime = r.http.mtime;
    }
    req_free(&r);
    return rc;
}

static int s3_del(cs_storage *st, const char *key, cs_err *e)
{
    s3_req r = { .http = { .method = "DELETE" }, .key = key };
    int rc = s3_request(s3_of(st), &r, e);
    if (rc == CS_E_NOTFOUND) {
        cs_err_clear(e);
        rc = 0;
    }
    req_free(&r);
    return rc;
}

static int delete_batch(s3_storage *s, const char *const *keys, size_t n, cs_err *e)
{
    char **full = cs_calloc(n, sizeof *full);
    for (size_t i = 0; i < n; i++)
        full[i] = s->prefix[0] ? cs_sprintf("%s/%s", s->prefix, keys[i]) : cs_strdup(keys[i]);
    cs_buf body = CS_BUF_INIT;
    s3_req r = { .http = { .method = "POST" } };
    cs_sigv4_pair q[] = { { "delete", "" } };
    r.query = q;
    r.nquery = 1;
    int rc = cs_s3xml_delete_body((const char *const *)full, n, true, &body, e);
    if (rc)
        goto out;
    /* S3 wants a checksum of this body; SHA-256 also covers it in the signature. */
    uint8_t digest[CS_SHA256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(CS_SHA256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    cs_sha256(body.data, body.len, digest);
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    r.headers[0] = (cs_sigv4_pair){ "x-amz-checksum-sha256", b64 };
    r.headers[1] = (cs_sigv4_pair){ "x-amz-sdk-checksum-algorithm", "SHA256" };
    r.headers[2] = (cs_sigv4_pair){ "Content-Type", "application/xml" };
    r.nheaders = 3;
    r.http.body = (const uint8_t *)body.data;
    r.http.body_len = body.len;
    rc = s3_request(s, &r, e);
    if (rc)
        goto out;
    cs_s3xml_delete res;
    rc = cs_s3xml_parse_delete(r.http.resp.data, r.http.resp.len, &res, e);
    if (!rc && res.nerrors)
        rc = cs_err_set(e, CS_E_EXTERNAL, "S3 could not delete %s: %s", res.errors[0].key, res.errors[0].code);
    if (!rc || res.nerrors)
        cs_s3xml_delete_free(&res);
out:
    for (size_t i = 0; i < n; i++)
        free(full[i]);
    free(full);
    cs_buf_free(&body);
    req_free(&r);
    return rc;
}

static int s3_del_many(cs_storage *st, const char *const *keys, size_t n, cs_err *e)
{
    for (size_t i = 0; i < n; i += S3_DELETE_BATCH) {
        size_t k = n - i < S3_DELETE_BATCH ? n - i : S3_DELETE_BATCH;
        int rc = delete_batch(s3_of(st), keys + i, k, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- list --------------------------------------------------------------- */

static int s3_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    s3_storage *s = s3_of(st);
    char *full = s->prefix[0] ? cs_sprintf("%s/%s", s->prefix, prefix) : cs_strdup(prefix);
    size_t strip = s->prefix[0] ? strlen(s->prefix) + 1 : 0;
    char *token = NULL;
    int rc = 0;
    for (;;) {
        cs_sigv4_pair q[4] = { { "list-type", "2" }, { "prefix", full }, { "max-keys", "1000" } };
        size_t nq = 3;
        if (token)
            q[nq++] = (cs_sigv4_pair){ "continuation-token", token };
        s3_req r = { .http = { .method = "GET" }, .query = q, .nquery = nq };
        rc = s3_request(s, &r, e);
        cs_s3xml_list l;
        if (!rc)
            rc = cs_s3xml_parse_list(r.http.resp.data, r.http.resp.len, &l, e);
        req_free(&r);
        if (rc)
            break;
        for (size_t i = 0; rc == 0 && i < l.nobjects; i++) {
            const char *key = l.objects[i].key;
            if (strlen(key) <= strip || strncmp(key, full, strlen(full)))
                continue; /* not ours: the server answered another prefix */
            cs_storage_stat stat = { l.objects[i].size, (int64_t)l.objects[i].last_modified };
            rc = cb(key + strip, &stat, arg);
        }
        free(token);
        token = l.is_truncated && l.next_continuation_token ? cs_strdup(l.next_continuation_token) : NULL;
        cs_s3xml_list_free(&l);
        if (rc || !token)
            break;
    }
    free(token);
    free(full);
    return rc;
}

/* ---- put: one PUT, or a multipart upload with parts in flight ----------- */

typedef struct s3_part {
    struct s3_writer *w;
    unsigned number;
    uint8_t *data;          /* a pool buffer, given back when the upload ends */
    size_t len;
    unsigned char hash[CS_PUT_HASH_BYTES]; /* resumable: the part hash, taken as it filled */
    bool running;
    pthread_t thread;
    int rc;
    cs_err err;
    char etag[256];
} s3_part;

typedef struct s3_writer {
    cs_sink base;
    s3_storage *s;
    char *key;
    int flags;
    uint8_t *buf;           /* the part being filled: a pool buffer, or NULL */
    size_t len;
    char *upload_id;        /* set once the object outgrows one part */
    s3_part *slots;         /* concurrency of them */
    char **etags;           /* by part number - 1 */
    unsigned parts;         /* parts handed out so far */
    int failed;             /* first error of a part, kept in fail_err */
    cs_err fail_err;
    cs_put_resume *res;     /* resumable: report the upload, keep it when freed */
    cs_put_hasher *hasher;  /* resumable: hashes the part being filled as its bytes land */
} s3_writer;

static void *upload_part(void *arg)
{
    s3_part *p = arg;
    s3_writer *w = p->w;
    char num[16];
    snprintf(num, sizeof num, "%u", p->number);
    cs_sigv4_pair q[] = { { "partNumber", num }, { "uploadId", w->upload_id } };
    s3_req r = { .http = { .method = "PUT", .body = p->data, .body_len = p->len },
                 .key = w->key, .query = q, .nquery = 2 };
    cs_put_part done = { p->number, p->len, { 0 } };
    if (w->res) {
        r.http.cancellable = true;
        memcpy(done.hash, p->hash, sizeof done.hash);
    }
    cs_err_clear(&p->err);
    p->rc = s3_request(w->s, &r, &p->err);
    if (!p->rc && !r.http.etag[0])
        p->rc = cs_err_set(&p->err, CS_E_PROTO, "S3 answered part %u of %s without an ETag", p->number, w->key);
    if (!p->rc)
        memcpy(p->etag, r.http.etag, sizeof p->etag);
    if (!p->rc && w->res && w->res->on_part)
        w->res->on_part(w->res->arg, &done);
    req_free(&r);
    cs_http_part_give(w->s->http, p->data); /* at once: another writer may be waiting for it */
    p->data = NULL;
    return NULL;
}

static void record_part(s3_writer *w, s3_part *p)
{
    if (p->rc && !w->failed) {
        w->failed = p->rc;
        w->fail_err = p->err;
    } else if (!p->rc) {
        w->etags[p->number - 1] = cs_strdup(p->etag);
    }
}

/* Wait for a slot's part and record its result. */
static void join_slot(s3_writer *w, s3_part *p)
{
    if (!p->running)
        return;
    pthread_join(p->thread, NULL);
    p->running = false;
    record_part(w, p);
}

static void join_all(s3_writer *w)
{
    for (unsigned i = 0; i < w->s->concurrency; i++)
        join_slot(w, &w->slots[i]);
}

static int initiate(s3_writer *w, cs_err *e)
{
    cs_sigv4_pair q[] = { { "uploads", "" } };
    s3_req r = { .http = { .method = "POST" }, .key = w->key, .query = q, .nquery = 1 };
    int rc = s3_request(w->s, &r, e);
    cs_s3xml_initiate x;
    if (!rc)
        rc = cs_s3xml_parse_initiate(r.http.resp.data, r.http.resp.len, &x, e);
    if (!rc) {
        w->upload_id = cs_strdup(x.upload_id);
        cs_s3xml_initiate_free(&x);
        if (w->res && w->res->on_token)
            w->res->on_token(w->res->arg, w->upload_id);
    }
    req_free(&r);
    return rc;
}

/* Hand the full buffer to a free slot's thread (waiting for the oldest
 * part when all are busy); the next write takes a new one from the pool. */
static int dispatch(s3_writer *w, cs_err *e)
{
    if (w->res && cs_cancel_requested())
        return cs_cancel_error(e);
    if (w->parts >= S3_MAX_PARTS)
        return cs_err_set(e, CS_E_INVAL, "object %s needs more than %d parts: raise the part size", w->key,
                          S3_MAX_PARTS);
    s3_part *p = &w->slots[w->parts % w->s->concurrency];
    join_slot(w, p); /* round robin: this is the oldest part in flight */
    if (w->failed) {
        *e = w->fail_err;
        return w->failed;
    }
    p->data = w->buf;
    p->len = w->len;
    p->number = ++w->parts;
    if (w->hasher)
        cs_put_hasher_end(w->hasher, p->hash);
    w->buf = NULL; /* the next write takes another from the pool */
    w->len = 0;
    p->running = cs_job_thread_create(&p->thread, upload_part, p) == 0;
    if (!p->running) {
        upload_part(p); /* no thread to be had: do it here */
        record_part(w, p);
    }
    return 0;
}

static int w_write(cs_sink *sink, const uint8_t *p, size_t n, cs_err *e)
{
    s3_writer *w = (s3_writer *)(void *)sink;
    while (n > 0) {
        if (!w->buf)
            w->buf = cs_http_part_take(w->s->http);
        size_t room = w->s->part_size - w->len;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        if (w->hasher)
            cs_put_hasher_add(w->hasher, w->buf + w->len, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == w->s->part_size && n > 0) {
            /* More is coming: this object is a multipart upload. */
            int rc = w->upload_id ? 0 : initiate(w, e);
            if (!rc)
                rc = dispatch(w, e);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Room in the part being filled, for the age encryptor to seal its chunks
 * straight into (io/sink.h): a full part goes up first, as w_write sends
 * it when more bytes follow. */
static int w_reserve(cs_sink *sink, size_t want, uint8_t **p, size_t *got, cs_err *e)
{
    s3_writer *w = (s3_writer *)(void *)sink;
    if (w->buf && w->len == w->s->part_size) {
        int rc = w->upload_id ? 0 : initiate(w, e);
        if (!rc)
            rc = dispatch(w, e);
        if (rc)
            return rc;
    }
    if (!w->buf)
        w->buf = cs_http_part_take(w->s->http);
    size_t room = w->s->part_size - w->len;
    *p = w->buf + w->len;
    *got = want < room ? want : room;
    return 0;
}

static int w_commit(cs_sink *sink, size_t n, cs_err *e)
{
    (void)e;
    s3_writer *w = (s3_writer *)(void *)sink;
    if (w->hasher)
        cs_put_hasher_add(w->hasher, w->buf + w->len, n); /* just sealed there: still in the cache */
    w->len += n;
    return 0;
}

static int put_single(s3_writer *w, cs_err *e)
{
    static const uint8_t empty[1];
    s3_req r = { .http = { .method = "PUT", .body = w->buf ? w->buf : empty, .body_len = w->len }, .key = w->key };
    r.http.cancellable = w->res != NULL;
    if (w->flags & CS_PUT_EXCLUSIVE) {
        r.headers[0] = (cs_sigv4_pair){ "If-None-Match", "*" };
        r.nheaders = 1;
    }
    int rc = s3_request(w->s, &r, e);
    req_free(&r);
    return rc;
}

static int complete(s3_writer *w, cs_err *e)
{
    cs_s3xml_part *parts = cs_calloc(w->parts, sizeof *parts);
    for (unsigned i = 0; i < w->parts; i++)
        parts[i] = (cs_s3xml_part){ i + 1, w->etags[i] };
    cs_buf body = CS_BUF_INIT;
    cs_sigv4_pair q[] = { { "uploadId", w->upload_id } };
    s3_req r = { .http = { .method = "POST" }, .key = w->key, .query = q, .nquery = 1 };
    int rc = cs_s3xml_complete_body(parts, w->parts, &body, e);
    if (!rc) {
        r.http.body = (const uint8_t *)body.data;
        r.http.body_len = body.len;
        r.headers[0] = (cs_sigv4_pair){ "Content-Type", "application/xml" };
        r.nheaders = 1;
        rc = s3_request(w->s, &r, e);
    }
    cs_s3xml_complete x;
    if (!rc)
        rc = cs_s3xml_parse_complete(r.http.resp.data, r.http.resp.len, &x, e); /* 200 may still hold an <Error> */
    if (!rc)
        cs_s3xml_complete_free(&x);
    req_free(&r);
    cs_buf_free(&body);
    free(parts);
    return rc;
}

static void abort_upload(s3_writer *w)
{
    if (!w->upload_id)
        return;
    join_all(w);
    cs_sigv4_pair q[] = { { "uploadId", w->upload_id } };
    s3_req r = { .http = { .method = "DELETE" }, .key = w->key, .query = q, .nquery = 1 };
    cs_err e;
    cs_err_clear(&e);
    if (s3_request(w->s, &r, &e) && e.code != CS_E_NOTFOUND)
        cs_warn("could not abort the upload of %s: %s", w->key, e.msg);
    req_free(&r);
    free(w->upload_id);
    w->upload_id = NULL;
}

static int w_close(cs_sink *sink, cs_err *e)
{
    s3_writer *w = (s3_writer *)(void *)sink;
    int rc;
    if (!w->upload_id) {
        rc = put_single(w, e);
    } else {
        /* Nothing buffered: a resumed upload whose every part was kept. */
        rc = w->len || !w->parts ? dispatch(w, e) : 0;
        join_all(w);
        if (!rc && w->failed) {
            *e = w->fail_err;
            rc = w->failed;
        }
        if (!rc)
            rc = complete(w, e);
        if (rc && w->res)
            return cs_err_prefix(e, "storing %s", w->key); /* kept for the next try; free keeps it */
        if (rc)
            abort_upload(w);
        free(w->upload_id);
        w->upload_id = NULL;
    }
    if (rc)
        cs_err_prefix(e, "storing %s", w->key);
    return rc;
}

static void w_free(cs_sink *sink)
{
    s3_writer *w = (s3_writer *)(void *)sink;
    /* Freed without a successful close: leave nothing open, unless a later
     * process may resume the upload (it then aborts what it cannot use). */
    if (!w->res)
        abort_upload(w);
    join_all(w);
    free(w->upload_id);
    cs_http_part_give(w->s->http, w->buf);
    for (unsigned i = 0; i < w->parts && w->etags; i++)
        free(w->etags[i]);
    free(w->etags);
    free(w->slots);
    free(w->key);
    cs_put_hasher_free(w->hasher);
    free(w);
}

static const cs_sink_ops writer_ops = { w_write, w_close, w_free };
static const cs_sink_opt_ops writer_opt = { .reserve = w_reserve, .commit = w_commit };

/* ListMultipartUploads under prefix, page by page. */
static int s3_list_resumable(cs_storage *st, const char *prefix, cs_storage_upload_cb cb, void *arg, cs_err *e)
{
    s3_storage *s = s3_of(st);
    char *full = s->prefix[0] ? cs_sprintf("%s/%s", s->prefix, prefix) : cs_strdup(prefix);
    size_t strip = s->prefix[0] ? strlen(s->prefix) + 1 : 0;
    char *key_marker = NULL, *id_marker = NULL;
    int rc = 0;
    for (;;) {
        cs_sigv4_pair q[4] = { { "prefix", full }, { "uploads", "" } };
        size_t nq = 2;
        if (key_marker)
            q[nq++] = (cs_sigv4_pair){ "key-marker", key_marker };
        if (id_marker)
            q[nq++] = (cs_sigv4_pair){ "upload-id-marker", id_marker };
        s3_req r = { .http = { .method = "GET" }, .query = q, .nquery = nq };
        cs_s3xml_uploads x;
        rc = s3_request(s, &r, e);
        if (!rc)
            rc = cs_s3xml_parse_uploads(r.http.resp.data, r.http.resp.len, &x, e);
        req_free(&r);
        if (rc)
            break;
        for (size_t i = 0; rc == 0 && i < x.nuploads; i++) {
            const char *key = x.uploads[i].key;
            if (strlen(key) > strip && !strncmp(key, full, strlen(full)))
                rc = cb(key + strip, x.uploads[i].upload_id, (int64_t)x.uploads[i].initiated, arg);
        }
        free(key_marker);
        free(id_marker);
        key_marker = x.is_truncated ? cs_strdup(x.next_key_marker) : NULL;
        id_marker = x.is_truncated && x.next_upload_id_marker && x.next_upload_id_marker[0]
                        ? cs_strdup(x.next_upload_id_marker)
                        : NULL;
        cs_s3xml_uploads_free(&x);
        if (rc || !key_marker)
            break;
    }
    free(key_marker);
    free(id_marker);
    free(full);
    return rc;
}

static s3_writer *writer_new(s3_storage *s, const char *key, int flags)
{
    s3_writer *w = cs_calloc(1, sizeof *w);
    w->base.ops = &writer_ops;
    w->base.opt = &writer_opt;
    w->s = s;
    w->key = cs_strdup(key);
    w->flags = flags;
    w->slots = cs_calloc(s->concurrency, sizeof *w->slots);
    for (unsigned i = 0; i < s->concurrency; i++)
        w->slots[i].w = w;
    w->etags = cs_calloc(S3_MAX_PARTS, sizeof *w->etags);
    return w;
}

static int s3_put(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e)
{
    s3_storage *s = s3_of(st);
    if (flags & CS_PUT_EXCLUSIVE) {
        /* Fail early, before any upload; the PUT itself says If-None-Match. */
        cs_storage_stat stat;
        int rc = s3_stat(st, key, &stat, e);
        if (rc == 0)
            return cs_err_set(e, CS_E_EXISTS, "object %s already exists", key);
        if (rc != CS_E_NOTFOUND)
            return rc;
        cs_err_clear(e);
    }
    *out = &writer_new(s, key, flags)->base;
    return 0;
}

/* The parts of upload w->upload_id the server holds: ETags into w->etags,
 * sizes into sizes (both by part number - 1). */
static int list_parts(s3_writer *w, uint64_t *sizes, cs_err *e)
{
    char marker[24] = "0";
    for (;;) {
        cs_sigv4_pair q[] = { { "part-number-marker", marker }, { "uploadId", w->upload_id } };
        s3_req r = { .http = { .method = "GET" }, .key = w->key, .query = q, .nquery = 2 };
        cs_s3xml_parts x;
        int rc = s3_request(w->s, &r, e);
        if (!rc)
            rc = cs_s3xml_parse_parts(r.http.resp.data, r.http.resp.len, &x, e);
        req_free(&r);
        if (rc)
            return rc;
        for (size_t i = 0; i < x.nparts; i++) {
            unsigned n = x.parts[i].part_number - 1; /* 1..10000, checked by the parser */
            free(w->etags[n]);
            w->etags[n] = cs_strdup(x.parts[i].etag);
            sizes[n] = x.parts[i].size;
        }
        bool more = x.is_truncated && x.next_part_number_marker > strtoull(marker, NULL, 10);
        snprintf(marker, sizeof marker, "%llu", (unsigned long long)x.next_part_number_marker);
        cs_s3xml_parts_free(&x);
        if (!more)
            return 0;
    }
}

/* Keep the longest run of recorded parts 1, 2, ... that the server holds
 * with the recorded size, all of one size of at least S3_MIN_PART (whole
 * parts: a short one was the end of the object, or of a part cut short). */
static void keep_parts(s3_writer *w, cs_put_resume *r, const uint64_t *sizes)
{
    size_t k = 0;
    while (k < r->n_parts && k < S3_MAX_PARTS && r->parts[k].number == k + 1 && w->etags[k] &&
           sizes[k] == r->parts[k].size && r->parts[k].size == r->parts[0].size && r->parts[0].size >= S3_MIN_PART)
        k++;
    for (size_t i = k; i < S3_MAX_PARTS; i++) {
        free(w->etags[i]); /* sent again (S3 keeps the last upload of a part number) */
        w->etags[i] = NULL;
    }
    r->kept = k;
    r->resumed = 0;
    for (size_t i = 0; i < k; i++)
        r->resumed += r->parts[i].size;
    w->parts = (unsigned)k;
}

static int s3_put_resumable(cs_storage *st, const char *key, cs_put_resume *r, cs_sink **out, cs_err *e)
{
    s3_writer *w = writer_new(s3_of(st), key, 0);
    w->res = r;
    w->hasher = cs_put_hasher_new();
    int rc = 0;
    if (r->token) {
        uint64_t *sizes = cs_calloc(S3_MAX_PARTS, sizeof *sizes);
        w->upload_id = cs_strdup(r->token);
        rc = list_parts(w, sizes, e);
        if (rc == CS_E_NOTFOUND) {
            /* Completed or aborted since: a new upload (reported when it begins). */
            cs_debug("upload of %s is gone: starting it anew", key);
            cs_err_clear(e);
            rc = 0;
            free(w->upload_id);
            w->upload_id = NULL;
        }
        if (!rc)
            keep_parts(w, r, sizes);
        free(sizes);
    }
    if (rc) {
        w_free(&w->base);
        return cs_err_prefix(e, "resuming the upload of %s", key);
    }
    *out = &w->base;
    return 0;
}

static int s3_abort_resumable(cs_storage *st, const char *key, const char *token, cs_err *e)
{
    cs_sigv4_pair q[] = { { "uploadId", token } };
    s3_req r = { .http = { .method = "DELETE" }, .key = key, .query = q, .nquery = 1 };
    int rc = s3_request(s3_of(st), &r, e);
    if (rc == CS_E_NOTFOUND) {
        cs_err_clear(e);
        rc = 0;
    }
    req_free(&r);
    return rc;
}

/* ---- open and free ------------------------------------------------------ */

static void s3_free(cs_storage *st)
{
    s3_storage *s = s3_of(st);
    cs_http_free(s->http);
    if (s->secret_access_key)
        sodium_memzero(s->secret_access_key, strlen(s->secret_access_key));
    free(s->secret_access_key);
    free(s->access_key_id);
    free(s->session_token);
    free(s->region);
    free(s->scheme);
    free(s->host);
    free(s->bucket);
    free(s->prefix);
    free(s->base.location);
    free(s);
}

static const cs_storage_ops s3_ops = {
    "s3", s3_put, s3_get, s3_stat, s3_list, s3_del, s3_del_many, s3_free, s3_put_resumable, s3_abort_resumable, s3_list_resumable,
};

static char *dup_or_null(const char *v)
{
    return v && *v ? cs_strdup(v) : NULL;
}

/* "s3://bucket/some/prefix/" -> bucket and "some/prefix". */
static int parse_location(s3_storage *s, const char *location, const cs_s3_opts *o, cs_err *e)
{
    const char *p = location + 5; /* after "s3://" */
    const char *slash = strchr(p, '/');
    size_t blen = slash ? (size_t)(slash - p) : strlen(p);
    s->bucket = blen ? cs_strndup(p, blen) : dup_or_null(o->bucket);
    if (!s->bucket)
        return cs_err_set(e, CS_E_INVAL, "%s names no bucket (and no default bucket is set)", location);
    for (const char *c = s->bucket; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' || *c == '_'))
            return cs_err_set(e, CS_E_INVAL, "invalid bucket name \"%s\"", s->bucket);
    const char *rest = slash ? slash : "";
    while (*rest == '/')
        rest++;
    size_t n = strlen(rest);
    while (n && rest[n - 1] == '/')
        n--;
    s->prefix = cs_strndup(rest, n);
    if (n && !cs_path_is_safe_relative(s->prefix))
        return cs_err_set(e, CS_E_INVAL, "invalid prefix in %s", location);
    return 0;
}

static int parse_endpoint(s3_storage *s, const cs_s3_opts *o, cs_err *e)
{
    char *aws = NULL;
    const char *ep = o->endpoint;
    if (!ep || !*ep)
        ep = aws = cs_sprintf("https://s3.%s.amazonaws.com", s->region);
    const char *sep = strstr(ep, "://");
    int rc = 0;
    if (!sep || (strncmp(ep, "http", (size_t)(sep - ep)) && strncmp(ep, "https", (size_t)(sep - ep)))) {
        rc = cs_err_set(e, CS_E_INVAL, "S3 endpoint %s must start with http:// or https://", ep);
    } else {
        s->scheme = cs_strndup(ep, (size_t)(sep - ep));
        const char *host = sep + 3;
        size_t n = strcspn(host, "/");
        s->host = cs_strndup(host, n);
        if (!n)
            rc = cs_err_set(e, CS_E_INVAL, "S3 endpoint %s names no host", ep);
    }
    const char *mode = o->addressing && *o->addressing ? o->addressing : "auto";
    if (!strcmp(mode, "path"))
        s->path_style = true;
    else if (!strcmp(mode, "virtual"))
        s->path_style = false;
    else if (!strcmp(mode, "auto"))
        s->path_style = aws == NULL || strchr(s->bucket, '.') != NULL;
    else if (!rc)
        rc = cs_err_set(e, CS_E_INVAL, "S3 addressing must be path, virtual or auto, not \"%s\"", mode);
    free(aws);
    return rc;
}

static int parse_signing(s3_storage *s, const cs_s3_opts *o, cs_err *e)
{
    const char *mode = o->sign_payload && *o->sign_payload ? o->sign_payload : "auto";
    if (!strcmp(mode, "yes"))
        s->sign_payload = true;
    else if (!strcmp(mode, "no"))
        s->sign_payload = false;
    else if (!strcmp(mode, "auto"))
        s->sign_payload = strcmp(s->scheme, "https") != 0;
    else
        return cs_err_set(e, CS_E_INVAL, "S3 payload signing must be yes, no or auto, not \"%s\"", mode);
    return 0;
}

static void apply_defaults(s3_storage *s, const cs_s3_opts *o)
{
    s->part_size = o->part_size ? o->part_size : S3_DEFAULT_PART;
    if (s->part_size < S3_MIN_PART)
        s->part_size = S3_MIN_PART;
    s->concurrency = o->concurrency ? o->concurrency : 4;
    if (s->concurrency > 64)
        s->concurrency = 64;
    cs_http_opts h = {
        .ca_file = o->ca_file,
        .timeout_s = o->timeout_s > 0 ? o->timeout_s : 30,
        .retries = o->retries ? o->retries : 6,
        .rate_limit = o->rate_limit,
        .part_size = s->part_size,
        .part_buffers = s->concurrency < 2 ? 2 : s->concurrency,
    };
    s->http = cs_http_new(&h);
}

/* One cheap request that tells at once whether the endpoint answers, the
 * credentials are good and the bucket exists. */
static int probe(s3_storage *s, cs_err *e)
{
    cs_sigv4_pair q[] = { { "list-type", "2" }, { "max-keys", "1" }, { "prefix", s->prefix } };
    s3_req r = { .http = { .method = "GET" }, .query = q, .nquery = 3 };
    int rc = s3_request(s, &r, e);
    req_free(&r);
    return rc;
}

/* ---- options: what the s3 driver owns ---------------------------------- */

static const char *const s3_options[] = {
    "s3.endpoint", "s3.region", "s3.access_key_id", "s3.secret_access_key", "s3.session_token", "s3.bucket",
    "s3.addressing", "s3.ca_file", "s3.sign_payload", "s3.part_size", "s3.concurrency", "s3.retries",
    "s3.timeout", NULL,
};

/* The choices of s3.addressing and s3.sign_payload, checked here so that a
 * bad value is a usage error naming the option (the constructor reads the
 * text). */
static int s3_opts_check_choices(const cs_storage_opts *opts, cs_err *e)
{
    static const char *const addressing[] = { "path", "virtual", "auto", NULL };
    static const char *const signing[] = { "yes", "no", "auto", NULL };
    int which = 0;
    int rc = cs_storage_opt_choice(opts, "s3.addressing", addressing, 2, &which, e);
    if (!rc)
        rc = cs_storage_opt_choice(opts, "s3.sign_payload", signing, 2, &which, e);
    return rc;
}

/* Fill o from the option list: strings borrowed, numbers and sizes checked
 * (defaults for those not set). */
static int s3_opts_parse(const cs_storage_opts *opts, cs_s3_opts *o, cs_err *e)
{
    memset(o, 0, sizeof *o);
    o->endpoint = cs_storage_opt(opts, "s3.endpoint");
    o->region = cs_storage_opt(opts, "s3.region");
    o->access_key_id = cs_storage_opt(opts, "s3.access_key_id");
    o->secret_access_key = cs_storage_opt(opts, "s3.secret_access_key");
    o->session_token = cs_storage_opt(opts, "s3.session_token");
    o->bucket = cs_storage_opt(opts, "s3.bucket");
    o->addressing = cs_storage_opt(opts, "s3.addressing");
    o->ca_file = cs_storage_opt(opts, "s3.ca_file");
    o->sign_payload = cs_storage_opt(opts, "s3.sign_payload");
    /* 0 for a number means its default, as it always did (the constructor
     * applies the defaults). */
    uint64_t concurrency = 0, retries = 0, timeout = 0;
    int rc = cs_storage_opt_size(opts, "s3.part_size", S3_DEFAULT_PART, S3_MIN_PART, S3_MAX_PART, &o->part_size, e);
    if (!rc)
        rc = cs_storage_opt_number(opts, "s3.concurrency", 4, 0, 64, &concurrency, e);
    if (!rc)
        rc = cs_storage_opt_number(opts, "s3.retries", 6, 0, 100, &retries, e);
    if (!rc)
        rc = cs_storage_opt_number(opts, "s3.timeout", 30, 0, 3600, &timeout, e);
    if (!rc)
        rc = cs_storage_opt_size(opts, "storage.rate_limit", 0, 0, UINT64_MAX, &o->rate_limit, e);
    if (!rc)
        rc = s3_opts_check_choices(opts, e);
    o->concurrency = (unsigned)concurrency;
    o->retries = (unsigned)retries;
    o->timeout_s = (long)timeout;
    return rc;
}

/* location is "s3://BUCKET/PREFIX" (BUCKET may be empty: then s3.bucket).
 * The bucket must exist: create does not make one. */
static int cs_s3_storage_new(const char *location, const cs_storage_opts *opts, bool create, cs_storage **out,
                             cs_err *e)
{
    (void)create;
    cs_s3_opts parsed;
    int prc = s3_opts_parse(opts, &parsed, e);
    if (prc)
        return prc;
    const cs_s3_opts *o = &parsed;

    *out = NULL;
    if (sodium_init() < 0)
        return cs_err_set(e, CS_E_INVAL, "cannot initialise libsodium");
    s3_storage *s = cs_calloc(1, sizeof *s);
    s->base.ops = &s3_ops;
    s->base.location = cs_strdup(location);
    s->region = cs_strdup(o->region && *o->region ? o->region : "us-east-1");
    s->access_key_id = dup_or_null(o->access_key_id);
    s->secret_access_key = dup_or_null(o->secret_access_key);
    s->session_token = dup_or_null(o->session_token);
    apply_defaults(s, o);
    int rc = parse_location(s, location, o, e);
    if (!rc)
        rc = parse_endpoint(s, o, e);
    if (!rc)
        rc = parse_signing(s, o, e);
    if (!rc && (!s->access_key_id || !s->secret_access_key))
        rc = cs_err_set(e, CS_E_INVAL, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                       "(or B2_KEY_ID and B2_APPLICATION_KEY)");
    if (!rc)
        rc = probe(s, e);
    if (rc) {
        s3_free(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

const cs_storage_driver cs_s3_driver = { "s3", s3_options, cs_s3_storage_new };

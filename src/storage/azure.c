/* azure.c - the Azure Blob Storage driver: az://CONTAINER/PREFIX.
 *
 * Behind the same cs_storage interface as posix and s3; objects are block
 * blobs named PREFIX/KEY. What is Azure's lives here: URLs (the account's
 * endpoint, or the emulator's with the account in the path), Shared Key
 * signing of every attempt (azsign.c) or a SAS token in every query
 * instead, Azure's errors (the x-ms-error-code header, or the Error
 * document through azxml.c), List Blobs pages (azxml.c) and the block
 * logic; the transport is storage/http's (curl handle pool, retries with
 * backoff and full jitter on 5xx, 408, 429, timeouts and dropped
 * connections, downloads resumed with a Range where they stopped, the
 * token bucket, the pool of part buffers, cancel).
 * Objects up to one block go up in one Put Blob; larger ones as blocks
 * (Put Block, several in flight, from the http client's part buffers shared
 * by every writer of the handle, so memory stays bounded however many
 * writers are open), committed by one Put Block List. Uncommitted blocks
 * are invisible to reads and listings and Azure drops them after a week,
 * so a writer freed without close leaves nothing behind. Exclusive creates
 * say If-None-Match: * (409/412 is CS_E_EXISTS) and carry the writer's
 * nonce as metadata, so that a create whose answer was lost and whose
 * retry finds the blob can tell its own from another's. A resumed download
 * says If-Match with the ETag of its first answer, so it never splices two
 * versions of a blob. Resumable writers: none (an interrupted upload is
 * sent again). Must not: log or report the key, a signature or the SAS
 * (URLs carry the SAS: no URL goes into a message, only the endpoint). */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"
#include "common/parallel.h"
#include "storage/azsign.h"
#include "storage/azxml.h"
#include "storage/http.h"
#include "storage/storage.h"

#define AZ_MIN_BLOCK (1u << 20)
#define AZ_DEFAULT_BLOCK (8u << 20)
#define AZ_MAX_BLOCK (4000ull << 20) /* Put Block's limit */
#define AZ_MAX_BLOCKS 50000
#define AZ_ID_TEXT 24                /* a block id before base64: 16 hex of nonce, 8 digits */
#define AZ_META_WRITER "x-ms-meta-cassettewriter"

/* The driver's settings, read from its options ("az.*" and
 * storage.rate_limit) by az_opts_parse; strings are borrowed from the
 * option list while the driver opens. Secrets (key, sas_token) are never
 * logged or put into messages. */
typedef struct az_opts {
    const char *account;  /* storage account name (required) */
    const char *key;      /* base64 account key: Shared Key; or else */
    const char *sas;      /* a SAS token ("sv=...&sig=...", a leading '?' is fine) */
    const char *endpoint; /* Blob service URL; default https://ACCOUNT.blob.core.windows.net;
                             Azurite: http://127.0.0.1:10000/devstoreaccount1 (account in the path) */
    const char *ca_file;  /* PEM bundle instead of the system store */
    uint64_t block_size;  /* Put Block size and the largest single Put Blob */
    unsigned concurrency; /* block buffers of the whole handle (filled or in flight), at least 2 */
    unsigned retries;     /* attempts after the first */
    long timeout_s;       /* connect timeout and stall limit */
    uint64_t rate_limit;  /* bytes per second for the whole process, 0 = none */
} az_opts;

/* ---- the storage handle ------------------------------------------------------ */

typedef struct az_storage {
    cs_storage base;
    char *scheme;        /* "http" or "https" */
    char *host;          /* "127.0.0.1:10000": the URL's authority */
    char *base_path;     /* "" or "/devstoreaccount1" (the emulator's account segment) */
    char *endpoint;      /* scheme://host/base_path, for messages */
    char *account;
    char *container;
    char *prefix;        /* "" or "path/to/repo" (no slashes at the ends) */
    cs_azsign_key key;   /* Shared Key when key.len, else */
    char *sas;           /* the SAS token appended to every query */
    uint64_t block_size;
    unsigned concurrency;
    cs_http *http;       /* transport, handle pool, rate limit, block buffers */
} az_storage;

static az_storage *az_of(cs_storage *st)
{
    return (az_storage *)(void *)st;
}

/* ---- one request ------------------------------------------------------------- */

/* An Azure request: the transport's part first (the callbacks get it back). */
typedef struct az_req {
    cs_http_req http;             /* method, body, sink, cancellable; results */
    const char *key;              /* blob below the prefix; NULL: the container */
    const cs_azsign_pair *query;
    size_t nquery;
    cs_azsign_pair headers[4];    /* extra headers, signed too */
    size_t nheaders;
    az_storage *s;
    /* from the answers */
    char error_code[96];          /* x-ms-error-code of the last attempt */
    char writer[40];              /* x-ms-meta-cassettewriter of a HEAD */
    char first_etag[128];         /* a download's first ETag: a resumed one must match it */
} az_req;

static az_req *az_req_of(const cs_http_req *r)
{
    return (az_req *)(void *)r;
}

/* The encoded path as sent and signed: base path, container, blob. */
static char *request_path(const az_storage *s, const char *key)
{
    cs_buf p = CS_BUF_INIT;
    cs_buf_printf(&p, "%s/%s", s->base_path, s->container);
    if (key) {
        cs_buf_addch(&p, '/');
        if (s->prefix[0]) {
            cs_azsign_uri_encode(s->prefix, strlen(s->prefix), true, &p);
            cs_buf_addch(&p, '/');
        }
        cs_azsign_uri_encode(key, strlen(key), true, &p);
    }
    return cs_buf_detach(&p);
}

static void add_header(cs_http_attempt *a, const char *name, const char *value)
{
    char *line = cs_sprintf("%s: %s", name, value);
    cs_http_attempt_header(a, line);
    free(line);
}

/* Before every attempt: the URL (with the SAS), the headers dated now and
 * signed (a resumed download's Range and If-Match among them). */
static int prepare(cs_http_req *hr, const char *range, cs_http_attempt *a, cs_err *e)
{
    az_req *r = az_req_of(hr);
    az_storage *s = r->s;
    r->error_code[0] = r->writer[0] = '\0';
    char date[CS_AZSIGN_DATE];
    int rc = cs_azsign_format_date(time(NULL), date, e);
    if (rc)
        return rc;
    cs_azsign_pair all[8];
    size_t n = r->nheaders;
    memcpy(all, r->headers, n * sizeof *all);
    if (range) {
        all[n++] = (cs_azsign_pair){ "Range", range };
        if (r->first_etag[0])
            all[n++] = (cs_azsign_pair){ "If-Match", r->first_etag };
    }
    all[n++] = (cs_azsign_pair){ "x-ms-date", date };
    all[n++] = (cs_azsign_pair){ "x-ms-version", CS_AZSIGN_VERSION };
    char *path = request_path(s, r->key);
    if (s->key.len) {
        cs_azsign_request sr = { hr->method, path, r->query, r->nquery, all, n, hr->body ? hr->body_len : 0 };
        cs_buf auth = CS_BUF_INIT;
        rc = cs_azsign_authorization(s->account, &s->key, &sr, &auth, e);
        if (!rc)
            add_header(a, "Authorization", cs_buf_str(&auth));
        cs_buf_free(&auth);
    }
    for (size_t i = 0; !rc && i < n; i++)
        add_header(a, all[i].name, all[i].value);
    cs_buf url = CS_BUF_INIT;
    cs_buf_printf(&url, "%s://%s%s", s->scheme, s->host, path);
    if (r->nquery || s->sas) {
        cs_buf_addch(&url, '?');
        cs_azsign_query_string(r->query, r->nquery, s->sas, &url);
    }
    if (!rc)
        cs_http_attempt_url(a, cs_buf_str(&url));
    sodium_memzero(url.data, url.cap); /* it held the SAS */
    cs_buf_free(&url);
    free(path);
    return rc;
}

static void copy_value(char *out, size_t cap, const char *v, size_t n)
{
    if (n < cap) {
        memcpy(out, v, n);
        out[n] = '\0';
    }
}

static void on_header(cs_http_req *hr, const char *name, size_t nl, const char *v, size_t vl)
{
    az_req *r = az_req_of(hr);
    if (nl == 15 && !strncasecmp(name, "x-ms-error-code", nl))
        copy_value(r->error_code, sizeof r->error_code, v, vl);
    else if (nl == strlen(AZ_META_WRITER) && !strncasecmp(name, AZ_META_WRITER, nl))
        copy_value(r->writer, sizeof r->writer, v, vl);
    else if (hr->sink && !r->first_etag[0] && nl == 4 && !strncasecmp(name, "ETag", 4))
        copy_value(r->first_etag, sizeof r->first_etag, v, vl);
}

/* ---- retries and errors ------------------------------------------------------- */

/* Beyond the transport's: Azure answers 408 when a request took too long. */
static bool retryable(const cs_http_req *r)
{
    return r->status == 408;
}

/* The error code: the header, else the Error document's Code. */
static void error_code_of(const az_req *r, char *code, size_t cap, char *msg, size_t mcap)
{
    snprintf(code, cap, "%s", r->error_code);
    msg[0] = '\0';
    const cs_buf *b = &r->http.resp;
    cs_azxml_error x;
    cs_err ignored;
    if (!b->len || cs_azxml_parse_error(b->data, b->len, &x, &ignored))
        return;
    if (!code[0] && x.code)
        snprintf(code, cap, "%s", x.code);
    if (x.message)
        snprintf(msg, mcap, "%s", x.message);
    cs_azxml_error_free(&x);
}

/* One sentence for a failed request; never a credential or a URL in it. */
static int request_error(const cs_http_req *hr, cs_err *e)
{
    const az_req *r = az_req_of(hr);
    const az_storage *s = r->s;
    if (hr->transport_error)
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach Azure Blob Storage at %s: %s", s->endpoint,
                          hr->transport_error);
    char code[96], msg[256];
    error_code_of(r, code, sizeof code, msg, sizeof msg);
    long st = hr->status;
    bool write = !strcmp(hr->method, "PUT");
    if (st == 403 || st == 401)
        return cs_err_set(e, CS_E_EXTERNAL, "access denied to container %s at %s%s%s (check the account, its key "
                          "or the SAS token and its permissions)", s->container, s->endpoint, code[0] ? ": " : "",
                          code);
    if (!strcmp(code, "ContainerNotFound") || (st == 404 && !r->key))
        return cs_err_set(e, CS_E_NOTFOUND, "container %s does not exist at %s", s->container, s->endpoint);
    if (st == 404)
        return cs_err_set(e, CS_E_NOTFOUND, "object %s not found", r->key);
    if (r->key && write && (st == 412 || (st == 409 && !strcmp(code, "BlobAlreadyExists"))))
        return cs_err_set(e, CS_E_EXISTS, "object %s already exists", r->key);
    if (r->key && st == 412)
        return cs_err_set(e, CS_E_EXTERNAL, "object %s changed while it was read", r->key);
    return cs_err_set(e, CS_E_EXTERNAL, "Azure %s %s at %s failed: HTTP %ld%s%s%s%s", hr->method,
                      r->key ? r->key : s->container, s->endpoint, st, code[0] ? " " : "", code, msg[0] ? ": " : "",
                      msg);
}

/* Run r to success or final failure (storage/http retries what can
 * succeed later). */
static int az_request(az_storage *s, az_req *r, cs_err *e)
{
    static const uint8_t empty[1];
    cs_http_req *hr = &r->http;
    if (!strcmp(hr->method, "PUT") && !hr->body)
        hr->body = empty; /* a PUT always has a body, if an empty one */
    r->s = s;
    hr->service = "Azure";
    hr->target = r->key ? r->key : s->container;
    hr->prepare = prepare;
    hr->retryable = retryable;
    hr->error = request_error;
    hr->on_header = on_header;
    return cs_http_request(s->http, hr, e);
}

static void req_free(az_req *r)
{
    cs_http_req_free(&r->http);
}

/* ---- get, stat, del ------------------------------------------------------------- */

static int az_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    az_req r = { .http = { .method = "GET", .sink = dst }, .key = key };
    int rc = az_request(az_of(st), &r, e);
    req_free(&r);
    return rc;
}

static int head(az_storage *s, const char *key, az_req *r, cs_err *e)
{
    *r = (az_req){ .http = { .method = "HEAD" }, .key = key };
    return az_request(s, r, e);
}

static int az_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    az_req r;
    int rc = head(az_of(st), key, &r, e);
    if (!rc) {
        out->size = r.http.content_length;
        out->mtime = r.http.mtime;
    }
    req_free(&r);
    return rc;
}

static int az_del(cs_storage *st, const char *key, cs_err *e)
{
    az_req r = { .http = { .method = "DELETE" }, .key = key };
    int rc = az_request(az_of(st), &r, e);
    if (rc == CS_E_NOTFOUND && strcmp(r.error_code, "ContainerNotFound")) {
        cs_err_clear(e);
        rc = 0;
    }
    req_free(&r);
    return rc;
}

typedef struct del_many_args {
    cs_storage *st;
    const char *const *keys;
} del_many_args;

static int del_one(void *arg, size_t i, cs_err *e)
{
    del_many_args *a = arg;
    return az_del(a->st, a->keys[i], e);
}

/* Blob Batch would take 256 deletes a request; a few in parallel are
 * simpler and fast enough for what purge deletes. */
static int az_del_many(cs_storage *st, const char *const *keys, size_t n, cs_err *e)
{
    del_many_args a = { st, keys };
    return cs_parallel_for(n, az_of(st)->concurrency, del_one, &a, e);
}

/* ---- list ------------------------------------------------------------------------ */

static int az_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    az_storage *s = az_of(st);
    char *full = s->prefix[0] ? cs_sprintf("%s/%s", s->prefix, prefix) : cs_strdup(prefix);
    size_t strip = s->prefix[0] ? strlen(s->prefix) + 1 : 0;
    char *marker = NULL;
    int rc = 0;
    for (;;) {
        cs_azsign_pair q[5] = { { "restype", "container" }, { "comp", "list" }, { "prefix", full },
                                { "maxresults", "1000" } };
        size_t nq = 4;
        if (marker)
            q[nq++] = (cs_azsign_pair){ "marker", marker };
        az_req r = { .http = { .method = "GET" }, .query = q, .nquery = nq };
        cs_azxml_list page;
        rc = az_request(s, &r, e);
        if (!rc)
            rc = cs_azxml_parse_list(r.http.resp.data, r.http.resp.len, &page, e);
        req_free(&r);
        if (rc)
            break;
        for (size_t i = 0; rc == 0 && i < page.nblobs; i++) {
            const char *key = page.blobs[i].name;
            if (strlen(key) <= strip || strncmp(key, full, strlen(full)))
                continue; /* not ours: the server answered another prefix */
            cs_storage_stat stat = { page.blobs[i].size, page.blobs[i].mtime };
            rc = cb(key + strip, &stat, arg);
        }
        free(marker);
        marker = page.next_marker && page.next_marker[0] ? cs_strdup(page.next_marker) : NULL;
        cs_azxml_list_free(&page);
        if (rc || !marker)
            break;
    }
    free(marker);
    free(full);
    return rc;
}

/* ---- put: one Put Blob, or blocks then Put Block List ------------------------------- */

typedef struct az_block {
    struct az_writer *w;
    unsigned number;        /* 0, 1, ... */
    uint8_t *data;          /* a part buffer, given back when the upload ends */
    size_t len;
    bool running;
    pthread_t thread;
    int rc;
    cs_err err;
} az_block;

typedef struct az_writer {
    cs_sink base;
    az_storage *s;
    char *key;
    int flags;
    char nonce[17];         /* 16 hex: this writer's block ids and create mark */
    uint8_t *buf;           /* the block being filled: a part buffer, or NULL */
    size_t len;
    az_block *slots;        /* concurrency of them */
    unsigned blocks;        /* blocks handed out so far */
    int failed;             /* first error of a block, kept in fail_err */
    cs_err fail_err;
} az_writer;

/* Block ids: base64 of the same number of bytes for every block of a blob,
 * as Azure wants; the writer's nonce keeps two writers of a key apart. */
static void block_id(const az_writer *w, unsigned number, char out[64])
{
    char text[48]; /* 16 + 8: number < AZ_MAX_BLOCKS */
    snprintf(text, sizeof text, "%.16s%08u", w->nonce, number);
    sodium_bin2base64(out, 64, (const unsigned char *)text, AZ_ID_TEXT, sodium_base64_VARIANT_ORIGINAL);
}

/* Uncommitted blocks are invisible: a cancel may stop them at once. */
static void *put_block(void *arg)
{
    az_block *b = arg;
    az_writer *w = b->w;
    char id[64];
    block_id(w, b->number, id);
    cs_azsign_pair q[] = { { "comp", "block" }, { "blockid", id } };
    az_req r = { .http = { .method = "PUT", .body = b->data, .body_len = b->len, .cancellable = true },
                 .key = w->key, .query = q, .nquery = 2 };
    cs_err_clear(&b->err);
    b->rc = az_request(w->s, &r, &b->err);
    req_free(&r);
    cs_http_part_give(w->s->http, b->data); /* at once: another writer may be waiting for it */
    b->data = NULL;
    return NULL;
}

static void record_block(az_writer *w, az_block *b)
{
    if (b->rc && !w->failed) {
        w->failed = b->rc;
        w->fail_err = b->err;
    }
}

static void join_slot(az_writer *w, az_block *b)
{
    if (!b->running)
        return;
    pthread_join(b->thread, NULL);
    b->running = false;
    record_block(w, b);
}

static void join_all(az_writer *w)
{
    for (unsigned i = 0; i < w->s->concurrency; i++)
        join_slot(w, &w->slots[i]);
}

/* Hand the full buffer to a free slot's thread (waiting for the oldest
 * block when all are busy); the next write takes a new one from the pool. */
static int dispatch(az_writer *w, cs_err *e)
{
    if (cs_cancel_requested())
        return cs_cancel_error(e);
    if (w->blocks >= AZ_MAX_BLOCKS)
        return cs_err_set(e, CS_E_INVAL, "object %s needs more than %d blocks: raise the block size", w->key,
                          AZ_MAX_BLOCKS);
    az_block *b = &w->slots[w->blocks % w->s->concurrency];
    join_slot(w, b); /* round robin: this is the oldest block in flight */
    if (w->failed) {
        *e = w->fail_err;
        return w->failed;
    }
    b->data = w->buf;
    b->len = w->len;
    b->number = w->blocks++;
    w->buf = NULL;
    w->len = 0;
    b->running = cs_job_thread_create(&b->thread, put_block, b) == 0;
    if (!b->running) {
        put_block(b); /* no thread to be had: do it here */
        record_block(w, b);
    }
    return 0;
}

static int w_write(cs_sink *sink, const uint8_t *p, size_t n, cs_err *e)
{
    az_writer *w = (az_writer *)(void *)sink;
    while (n > 0) {
        if (!w->buf)
            w->buf = cs_http_part_take(w->s->http);
        size_t room = w->s->block_size - w->len;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == w->s->block_size && n > 0) {
            int rc = dispatch(w, e); /* more is coming: this blob goes up in blocks */
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Room in the block being filled, for the age encryptor to seal its
 * chunks straight into (io/sink.h): a full block goes up first, as w_write
 * sends it when more bytes follow. */
static int w_reserve(cs_sink *sink, size_t want, uint8_t **p, size_t *got, cs_err *e)
{
    az_writer *w = (az_writer *)(void *)sink;
    if (w->buf && w->len == w->s->block_size) {
        int rc = dispatch(w, e);
        if (rc)
            return rc;
    }
    if (!w->buf)
        w->buf = cs_http_part_take(w->s->http);
    size_t room = w->s->block_size - w->len;
    *p = w->buf + w->len;
    *got = want < room ? want : room;
    return 0;
}

static int w_commit(cs_sink *sink, size_t n, cs_err *e)
{
    (void)e;
    az_writer *w = (az_writer *)(void *)sink;
    w->len += n;
    return 0;
}

/* The headers of the request that makes the blob visible. */
static void commit_headers(az_writer *w, az_req *r)
{
    if (w->flags & CS_PUT_EXCLUSIVE) {
        r->headers[r->nheaders++] = (cs_azsign_pair){ "If-None-Match", "*" };
        r->headers[r->nheaders++] = (cs_azsign_pair){ AZ_META_WRITER, w->nonce };
    }
}

/* An exclusive create found the blob: was it ours, made by an attempt
 * whose answer was lost? Then it is no conflict. */
static int exclusive_outcome(az_writer *w, const az_req *r, int rc, cs_err *e)
{
    if (rc != CS_E_EXISTS || r->http.attempts < 2)
        return rc;
    az_req h;
    cs_err he;
    cs_err_clear(&he);
    bool ours = head(w->s, w->key, &h, &he) == 0 && !strcmp(h.writer, w->nonce);
    req_free(&h);
    if (!ours)
        return rc;
    cs_err_clear(e);
    return 0;
}

static int put_single(az_writer *w, cs_err *e)
{
    az_req r = { .http = { .method = "PUT", .body = w->buf, .body_len = w->len }, .key = w->key };
    r.headers[r.nheaders++] = (cs_azsign_pair){ "x-ms-blob-type", "BlockBlob" };
    commit_headers(w, &r);
    int rc = exclusive_outcome(w, &r, az_request(w->s, &r, e), e);
    req_free(&r);
    return rc;
}

static int put_block_list(az_writer *w, cs_err *e)
{
    char (*ids)[64] = cs_calloc(w->blocks, sizeof *ids);
    const char **idp = cs_calloc(w->blocks, sizeof *idp);
    for (unsigned i = 0; i < w->blocks; i++) {
        block_id(w, i, ids[i]);
        idp[i] = ids[i];
    }
    cs_buf body = CS_BUF_INIT;
    cs_azxml_block_list_body(idp, w->blocks, &body);
    cs_azsign_pair q[] = { { "comp", "blocklist" } };
    az_req r = { .http = { .method = "PUT", .body = (const uint8_t *)body.data, .body_len = body.len },
                 .key = w->key, .query = q, .nquery = 1 };
    commit_headers(w, &r);
    int rc = exclusive_outcome(w, &r, az_request(w->s, &r, e), e);
    req_free(&r);
    cs_buf_free(&body);
    free(idp);
    free(ids);
    return rc;
}

static int w_close(cs_sink *sink, cs_err *e)
{
    az_writer *w = (az_writer *)(void *)sink;
    int rc;
    if (w->blocks == 0) {
        rc = put_single(w, e);
    } else {
        rc = dispatch(w, e);
        join_all(w);
        if (!rc && w->failed) {
            *e = w->fail_err;
            rc = w->failed;
        }
        if (!rc)
            rc = put_block_list(w, e);
    }
    if (rc)
        cs_err_prefix(e, "storing %s", w->key);
    return rc;
}

/* Freed without a successful close: the blocks sent stay uncommitted,
 * invisible, and Azure drops them within a week. */
static void w_free(cs_sink *sink)
{
    az_writer *w = (az_writer *)(void *)sink;
    join_all(w);
    cs_http_part_give(w->s->http, w->buf);
    free(w->slots);
    free(w->key);
    free(w);
}

static const cs_sink_ops writer_ops = { w_write, w_close, w_free };
static const cs_sink_opt_ops writer_opt = { .reserve = w_reserve, .commit = w_commit };

static int az_put(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e)
{
    az_storage *s = az_of(st);
    if (flags & CS_PUT_EXCLUSIVE) {
        /* Fail early, before any block; the commit itself says If-None-Match. */
        cs_storage_stat stat;
        int rc = az_stat(st, key, &stat, e);
        if (rc == 0)
            return cs_err_set(e, CS_E_EXISTS, "object %s already exists", key);
        if (rc != CS_E_NOTFOUND)
            return rc;
        cs_err_clear(e);
    }
    az_writer *w = cs_calloc(1, sizeof *w);
    w->base.ops = &writer_ops;
    w->base.opt = &writer_opt;
    w->s = s;
    w->key = cs_strdup(key);
    w->flags = flags;
    uint8_t rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    cs_hex(rnd, sizeof rnd, w->nonce);
    w->slots = cs_calloc(s->concurrency, sizeof *w->slots);
    for (unsigned i = 0; i < s->concurrency; i++)
        w->slots[i].w = w;
    *out = &w->base;
    return 0;
}

/* ---- open and free ------------------------------------------------------------------- */

static void az_free(cs_storage *st)
{
    az_storage *s = az_of(st);
    cs_http_free(s->http);
    cs_azsign_key_wipe(&s->key);
    if (s->sas)
        sodium_memzero(s->sas, strlen(s->sas));
    free(s->sas);
    free(s->scheme);
    free(s->host);
    free(s->base_path);
    free(s->endpoint);
    free(s->account);
    free(s->container);
    free(s->prefix);
    free(s->base.location);
    free(s);
}

static const cs_storage_ops az_ops = {
    "az", az_put, az_get, az_stat, az_list, az_del, az_del_many, az_free, NULL, NULL, NULL,
};

/* Azure's rule: 3 to 63 of a-z 0-9 and '-', a letter or digit at both
 * ends, no "--". */
static bool valid_container(const char *c)
{
    size_t n = strlen(c);
    if (n < 3 || n > 63 || c[0] == '-' || c[n - 1] == '-' || strstr(c, "--"))
        return false;
    for (; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return false;
    return true;
}

/* "az://container/some/prefix/" -> container and "some/prefix". */
static int parse_location(az_storage *s, const char *location, cs_err *e)
{
    if (strncasecmp(location, "az://", 5))
        return cs_err_set(e, CS_E_INVAL, "%s is not an az:// location", location);
    const char *p = location + 5;
    size_t clen = strcspn(p, "/");
    s->container = cs_strndup(p, clen);
    if (!valid_container(s->container))
        return cs_err_set(e, CS_E_INVAL, "invalid Azure container name \"%s\" in %s (3 to 63 of a-z, 0-9 and '-')",
                          s->container, location);
    const char *rest = p + clen;
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

static bool valid_account(const char *a)
{
    size_t n = strlen(a);
    if (n < 3 || n > 64)
        return false;
    for (; *a; a++)
        if (!((*a >= 'a' && *a <= 'z') || (*a >= '0' && *a <= '9')))
            return false;
    return true;
}

/* "https://host[:port][/base]": the emulator's base is its account. */
static int parse_endpoint(az_storage *s, const char *ep, cs_err *e)
{
    char *def = NULL;
    if (!ep || !*ep)
        ep = def = cs_sprintf("https://%s.blob.core.windows.net", s->account);
    int rc = 0;
    const char *sep = strstr(ep, "://");
    size_t sl = sep ? (size_t)(sep - ep) : 0;
    const char *host = sep ? sep + 3 : "";
    size_t hl = strcspn(host, "/?#");
    if (!sep || !((sl == 4 && !strncasecmp(ep, "http", 4)) || (sl == 5 && !strncasecmp(ep, "https", 5)))) {
        rc = cs_err_set(e, CS_E_USAGE, "{az.endpoint} must start with http:// or https://, not \"%s\"", ep);
    } else if (!hl || host[hl] == '?' || host[hl] == '#' || memchr(host, '@', hl) ||
               strpbrk(host + hl, "?# %")) {
        rc = cs_err_set(e, CS_E_USAGE, "{az.endpoint} must be scheme://host[:port][/path], not \"%s\"", ep);
    } else {
        s->scheme = cs_strndup(ep, sl);
        for (char *c = s->scheme; *c; c++)
            *c = (char)(*c | 0x20);
        s->host = cs_strndup(host, hl);
        const char *base = host + hl;
        size_t bl = strlen(base);
        while (bl && base[bl - 1] == '/')
            bl--;
        s->base_path = cs_strndup(base, bl);
        s->endpoint = cs_sprintf("%s://%s%s", s->scheme, s->host, s->base_path);
    }
    if (rc)
        cs_err_field(e, "az.endpoint");
    free(def);
    return rc;
}

/* A bad credential is a usage error naming its option; the checks' own
 * sentences never quote the secret. */
static int bad_credential(const char *option, cs_err *e)
{
    char why[sizeof e->msg];
    snprintf(why, sizeof why, "%s", e->msg);
    cs_err_set(e, CS_E_USAGE, "{%s} is not valid: %s", option, why);
    return cs_err_field(e, option);
}

static int parse_credentials(az_storage *s, const az_opts *o, cs_err *e)
{
    if (o->key)
        return cs_azsign_key_decode(o->key, &s->key, e) ? bad_credential("az.key", e) : 0;
    if (o->sas)
        return cs_azsign_sas_check(o->sas, &s->sas, e) ? bad_credential("az.sas_token", e) : 0;
    return cs_err_set(e, CS_E_INVAL, "no Azure credentials: set AZURE_STORAGE_KEY (the account key) or "
                                     "AZURE_STORAGE_SAS_TOKEN (a SAS token)");
}

/* One cheap request that tells at once whether the endpoint answers, the
 * credentials are good and the container exists; makes the container when
 * asked to. */
static int probe(az_storage *s, bool create, cs_err *e)
{
    cs_azsign_pair q[] = { { "restype", "container" }, { "comp", "list" }, { "maxresults", "1" },
                           { "prefix", s->prefix } };
    az_req r = { .http = { .method = "GET" }, .query = q, .nquery = 4 };
    int rc = az_request(s, &r, e);
    req_free(&r);
    if (rc != CS_E_NOTFOUND || !create)
        return rc;
    cs_err_clear(e);
    cs_azsign_pair mk[] = { { "restype", "container" } };
    az_req c = { .http = { .method = "PUT" }, .query = mk, .nquery = 1 };
    rc = az_request(s, &c, e);
    if (rc && c.http.status == 409 && !strcmp(c.error_code, "ContainerAlreadyExists")) {
        cs_err_clear(e); /* made meanwhile */
        rc = 0;
    }
    if (!rc)
        cs_debug("made container %s at %s", s->container, s->endpoint);
    req_free(&c);
    return rc;
}

/* ---- options: what the az driver owns ------------------------------------------------ */

static const char *const az_options[] = {
    "az.account", "az.key", "az.sas_token", "az.endpoint", "az.ca_file",
    "az.block_size", "az.concurrency", "az.retries", "az.timeout", NULL,
};

/* Fill o from the option list: strings borrowed, numbers and sizes checked
 * (defaults for those not set). */
static int az_opts_parse(const cs_storage_opts *opts, az_opts *o, cs_err *e)
{
    memset(o, 0, sizeof *o);
    o->account = cs_storage_opt(opts, "az.account");
    o->key = cs_storage_opt(opts, "az.key");
    o->sas = cs_storage_opt(opts, "az.sas_token");
    o->endpoint = cs_storage_opt(opts, "az.endpoint");
    o->ca_file = cs_storage_opt(opts, "az.ca_file");
    uint64_t concurrency = 4, retries = 6, timeout = 30;
    int rc = cs_storage_opt_size(opts, "az.block_size", AZ_DEFAULT_BLOCK, AZ_MIN_BLOCK, AZ_MAX_BLOCK, &o->block_size,
                                 e);
    if (!rc)
        rc = cs_storage_opt_number(opts, "az.concurrency", 4, 1, 64, &concurrency, e);
    if (!rc)
        rc = cs_storage_opt_number(opts, "az.retries", 6, 0, 100, &retries, e);
    if (!rc)
        rc = cs_storage_opt_number(opts, "az.timeout", 30, 1, 3600, &timeout, e);
    if (!rc)
        rc = cs_storage_opt_size(opts, "storage.rate_limit", 0, 0, UINT64_MAX, &o->rate_limit, e);
    o->concurrency = (unsigned)concurrency;
    o->retries = (unsigned)retries;
    o->timeout_s = (long)timeout;
    return rc;
}

static int check_account(az_storage *s, const az_opts *o, cs_err *e)
{
    if (!o->account)
        return cs_err_set(e, CS_E_INVAL, "no Azure storage account: set AZURE_STORAGE_ACCOUNT");
    s->account = cs_strdup(o->account);
    if (valid_account(s->account))
        return 0;
    cs_err_set(e, CS_E_USAGE, "{az.account} must be 3 to 64 of a-z and 0-9, not \"%s\"", s->account);
    cs_err_field(e, "az.account");
    return CS_E_USAGE;
}

/* location is "az://CONTAINER" or "az://CONTAINER/PREFIX". The container
 * must exist unless create is true (then it is made when missing). */
static int az_open(const char *location, const cs_storage_opts *opts, bool create, cs_storage **out, cs_err *e)
{
    az_opts o;
    *out = NULL;
    int rc = az_opts_parse(opts, &o, e);
    if (rc)
        return rc;
    if (sodium_init() < 0)
        return cs_err_set(e, CS_E_INVAL, "cannot initialise libsodium");
    az_storage *s = cs_calloc(1, sizeof *s);
    s->base.ops = &az_ops;
    s->base.location = cs_strdup(location);
    s->block_size = o.block_size;
    s->concurrency = o.concurrency;
    cs_http_opts h = {
        .ca_file = o.ca_file,
        .timeout_s = o.timeout_s,
        .retries = o.retries,
        .rate_limit = o.rate_limit,
        .part_size = s->block_size,
        .part_buffers = s->concurrency < 2 ? 2 : s->concurrency,
    };
    s->http = cs_http_new(&h);
    rc = parse_location(s, location, e);
    if (!rc)
        rc = check_account(s, &o, e);
    if (!rc)
        rc = parse_endpoint(s, o.endpoint, e);
    if (!rc)
        rc = parse_credentials(s, &o, e);
    if (!rc)
        rc = probe(s, create, e);
    if (rc) {
        az_free(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

const cs_storage_driver cs_az_driver = { "az", az_options, az_open };

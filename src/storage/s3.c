/* s3.c - the S3 storage driver: AWS S3, Backblaze B2, MinIO, versitygw.
 *
 * Behind the same cs_storage interface as posix. Transport is libcurl (one
 * easy handle per thread at a time, kept in a pool for connection reuse);
 * every request is signed with our SigV4 (sigv4.c) and every response body
 * is read by our bounded XML reader (s3xml.c). Requests are retried with
 * exponential backoff and full jitter on 5xx, 429/SlowDown, timeouts and
 * dropped connections; downloads resume with a Range where they stopped.
 * Objects up to one part are sent with one PUT; larger ones as a multipart
 * upload with several parts in flight, aborted if anything fails (a
 * resumable writer's is kept instead, for a later process to finish: it
 * reports the upload id and each part's size and BLAKE2b as they are stored,
 * and a later writer lists the parts with ListParts; its part uploads stop
 * at once on a cancel request). Part
 * buffers come from one pool per storage handle: at most `concurrency` of
 * them (never fewer than 2), filled or in flight, however many writers are
 * open at once, so memory stays bounded when many files are stored in
 * parallel. A token bucket limits the bytes per
 * second of the whole process. Payloads are signed (SHA-256 of the body)
 * over http and sent as UNSIGNED-PAYLOAD over https, where TLS protects them
 * in transit (what the AWS SDKs do); every stored object also carries its own
 * end-to-end hash. Must not: log or report any credential. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/job.h"
#include "common/log.h"
#include "common/fs.h"
#include "storage/s3xml.h"
#include "storage/sigv4.h"
#include "storage/storage.h"

#define S3_MIN_PART (5u << 20)
#define S3_DEFAULT_PART (8u << 20)
#define S3_MAX_PARTS 10000
#define S3_BODY_MAX (16u << 20) /* largest XML response we read */
#define S3_DELETE_BATCH 1000

/* ---- the storage handle ---------------------------------------------- */

/* curl_global_init once per process, before any thread uses curl. */
static void curl_global_init_void(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct s3_limiter {
    pthread_mutex_t lock;
    double rate;    /* bytes per second; 0 = unlimited */
    double tokens;  /* may go negative: the debt sleeps it off */
    double last;
} s3_limiter;

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
    char *ca_file;
    uint64_t part_size;
    unsigned concurrency;
    unsigned retries;
    long timeout_s;
    bool sign_payload;   /* SHA-256 of every body in the signature */
    s3_limiter limiter;
    /* part buffers shared by every writer: at most bufs_max exist */
    pthread_mutex_t bufs_lock;
    pthread_cond_t bufs_cond;
    uint8_t **bufs_free;
    unsigned bufs_free_n, bufs_made, bufs_max;
    pthread_mutex_t pool_lock;
    CURL **pool;         /* idle easy handles: their connections stay open */
    size_t pool_n;
} s3_storage;

static s3_storage *s3_of(cs_storage *st)
{
    return (s3_storage *)(void *)st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Take n bytes from the bucket, sleeping off any debt outside the lock. */
static void throttle(s3_limiter *l, size_t n)
{
    if (l->rate <= 0 || n == 0)
        return;
    pthread_mutex_lock(&l->lock);
    double t = now_s();
    l->tokens += (t - l->last) * l->rate;
    if (l->tokens > l->rate / 4) /* at most a quarter second of burst */
        l->tokens = l->rate / 4;
    l->last = t;
    l->tokens -= (double)n;
    double wait = l->tokens < 0 ? -l->tokens / l->rate : 0;
    pthread_mutex_unlock(&l->lock);
    sleep_s(wait);
}

static CURL *handle_get(s3_storage *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_n)
        h = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_lock);
    if (!h)
        h = curl_easy_init();
    if (!h) {
        fputs("cassette: cannot create an HTTP handle\n", stderr);
        abort();
    }
    return h;
}

static void handle_put(s3_storage *s, CURL *h)
{
    pthread_mutex_lock(&s->pool_lock);
    s->pool = cs_realloc(s->pool, (s->pool_n + 1) * sizeof *s->pool);
    s->pool[s->pool_n++] = h;
    pthread_mutex_unlock(&s->pool_lock);
}

/* ---- one request -------------------------------------------------------- */

typedef struct s3_req {
    const char *method;
    const char *key;            /* object key below the prefix; NULL: the bucket */
    const cs_sigv4_pair *query;
    size_t nquery;
    cs_sigv4_pair headers[4];   /* extra signed headers */
    size_t nheaders;
    const uint8_t *body;        /* request body from memory */
    size_t body_len;
    cs_sink *sink;              /* GET: the object's bytes go here as they come */
    bool cancellable;           /* a cancel request (common/cancel.h) stops it */
    /* results */
    long status;
    cs_buf resp;                /* the body of an error or XML response */
    char etag[256];
    uint64_t delivered;         /* bytes handed to sink over all attempts */
    uint64_t content_length;
    int64_t mtime;
    bool sink_failed;
    cs_err sink_err;
    /* attempt state */
    size_t body_off;
    bool decided;               /* the status of this attempt is known */
    bool streaming;             /* this attempt's body goes to sink */
    s3_storage *s;
    CURL *h;
} s3_req;

static size_t read_body(char *buf, size_t size, size_t nitems, void *arg)
{
    s3_req *r = arg;
    size_t room = size * nitems;
    size_t n = r->body_len - r->body_off;
    if (n > room)
        n = room;
    if (!(r->cancellable && cs_cancel_requested())) /* the transfer stops at once: no wait */
        throttle(&r->s->limiter, n);
    memcpy(buf, r->body + r->body_off, n);
    r->body_off += n;
    return n;
}

/* curl calls this at least once a second during a transfer. */
static int xfer_cancel(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)arg, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return cs_cancel_requested() ? 1 : 0;
}

static size_t write_body(char *p, size_t size, size_t nmemb, void *arg)
{
    s3_req *r = arg;
    size_t n = size * nmemb;
    if (!r->decided) {
        /* Body bytes come after the headers: the status is known now. Only
         * a successful GET streams to the sink; errors are read as XML. */
        long status = 0;
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
        r->streaming = r->sink && (status == 200 || status == 206);
        r->decided = true;
    }
    if (r->streaming) {
        throttle(&r->s->limiter, n);
        if (cs_sink_write(r->sink, p, n, &r->sink_err) != 0) {
            r->sink_failed = true;
            return 0; /* abort the transfer; never retried */
        }
        r->delivered += n;
        return n;
    }
    if (r->resp.len + n > S3_BODY_MAX)
        return 0;
    cs_buf_add(&r->resp, p, n);
    return n;
}

static size_t read_header(char *p, size_t size, size_t nitems, void *arg)
{
    s3_req *r = arg;
    size_t n = size * nitems;
    if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        const char *v = p + 5;
        size_t len = n - 5;
        while (len && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len < sizeof r->etag) {
            memcpy(r->etag, v, len);
            r->etag[len] = '\0';
        }
    }
    return n;
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

static struct curl_slist *signed_headers(s3_storage *s, s3_req *r, const char *host, const char *path,
                                         const char *payload_hash, cs_err *e)
{
    cs_sigv4_creds creds = { s->access_key_id, s->secret_access_key, s->session_token, s->region, "s3" };
    cs_sigv4_request sr = { r->method, host, path, r->query, r->nquery, r->headers, r->nheaders, payload_hash,
                            time(NULL) };
    cs_sigv4_sent sent = { NULL, 0 };
    if (cs_sigv4_headers(&creds, &sr, &sent, e) != 0)
        return NULL;
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < sent.n; i++)
        list = curl_slist_append(list, sent.lines[i]);
    /* curl would wait for "100 Continue" before large bodies: a round trip
     * per part for nothing. */
    list = curl_slist_append(list, "Expect:");
    list = curl_slist_append(list, "Accept:");
    cs_sigv4_sent_free(&sent);
    return list;
}

static void setup_method(CURL *h, s3_req *r)
{
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "PUT") || (!strcmp(r->method, "POST") && r->body)) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        if (strcmp(r->method, "PUT"))
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (!strcmp(r->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* One attempt. Returns the curl code; r->status holds the HTTP status. */
static CURLcode attempt(s3_storage *s, CURL *h, s3_req *r, const char *payload_hash, cs_err *e)
{
    char *path = request_path(s, r->key);
    char *host = request_host(s);
    cs_buf url = CS_BUF_INIT;
    cs_buf_printf(&url, "%s://%s", s->scheme, host);
    cs_sigv4_uri_encode(path, strlen(path), true, &url);
    if (r->nquery) {
        cs_buf_addch(&url, '?');
        cs_sigv4_query_string(r->query, r->nquery, &url);
    }
    CURLcode cc = CURLE_FAILED_INIT;
    struct curl_slist *headers = signed_headers(s, r, host, path, payload_hash, e);
    if (!headers)
        goto out;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, cs_buf_str(&url));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->timeout_s);
    curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (s->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    if (r->cancellable) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cancel);
    }
    setup_method(h, r);
    r->body_off = 0;
    r->etag[0] = '\0';
    r->h = h;
    r->decided = false;
    r->streaming = false;
    cs_buf_reset(&r->resp);
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t cl = -1;
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    r->content_length = cl > 0 ? (uint64_t)cl : 0;
    long ft = -1;
    curl_easy_getinfo(h, CURLINFO_FILETIME, &ft);
    r->mtime = ft;
out:
    curl_slist_free_all(headers);
    cs_buf_free(&url);
    free(path);
    free(host);
    return cc;
}

/* ---- retries and errors ------------------------------------------------- */

static bool retryable_status(long status, const cs_buf *body)
{
    return status == 500 || status == 502 || status == 503 || status == 504 || status == 429 ||
           (status == 400 && strstr(cs_buf_str(body), "<Code>RequestTimeout</Code>"));
}

static const char *endpoint_of(const s3_storage *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s://%s", s->scheme, s->host);
    return buf;
}

/* One sentence for a failed request; never a credential in it. */
static int request_error(s3_storage *s, s3_req *r, CURLcode cc, cs_err *e)
{
    char ep[300];
    endpoint_of(s, ep, sizeof ep);
    if (cc != CURLE_OK)
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach S3 at %s: %s", ep, curl_easy_strerror(cc));
    cs_s3xml_error x;
    cs_err ignored;
    bool parsed = r->resp.len && cs_s3xml_parse_error(r->resp.data, r->resp.len, &x, &ignored) == 0;
    const char *code = parsed ? x.code : "";
    const char *msg = parsed && x.message ? x.message : "";
    int rc;
    if (r->status == 403 || r->status == 401)
        rc = cs_err_set(e, CS_E_EXTERNAL, "access denied to bucket %s at %s%s%s", s->bucket, ep,
                        code[0] ? ": " : "", code);
    else if (!strcmp(code, "NoSuchBucket") || (r->status == 404 && !r->key))
        rc = cs_err_set(e, CS_E_NOTFOUND, "bucket %s does not exist at %s", s->bucket, ep);
    else if (r->status == 404)
        rc = cs_err_set(e, CS_E_NOTFOUND, "object %s not found", r->key);
    else if (r->status == 412)
        rc = cs_err_set(e, CS_E_EXISTS, "object %s already exists", r->key ? r->key : "");
    else
        rc = cs_err_set(e, CS_E_EXTERNAL, "S3 %s %s at %s failed: HTTP %ld%s%s%s%s", r->method,
                        r->key ? r->key : s->bucket, ep, r->status, code[0] ? " " : "", code, msg[0] ? ": " : "",
                        msg);
    if (parsed)
        cs_s3xml_error_free(&x);
    return rc;
}

/* Full jitter: a random wait between 0 and min(cap, base * 2^n). */
static void backoff(unsigned attempt_no)
{
    double ceiling = 0.2 * (double)(1u << (attempt_no < 8 ? attempt_no : 8));
    if (ceiling > 10)
        ceiling = 10;
    sleep_s(ceiling * (double)randombytes_uniform(1000001) / 1e6);
}

static void set_range(s3_req *r, size_t slot, char *buf, size_t cap)
{
    snprintf(buf, cap, "bytes=%llu-", (unsigned long long)r->delivered);
    r->headers[slot].name = "Range";
    r->headers[slot].value = buf;
    if (r->nheaders <= slot)
        r->nheaders = slot + 1;
}

/* Run r to success or final failure, retrying what can succeed later. */
static int s3_request(s3_storage *s, s3_req *r, cs_err *e)
{
    char payload_hash[CS_SIGV4_HEX];
    if (r->body && s->sign_payload)
        cs_sigv4_sha256_hex(r->body, r->body_len, payload_hash);
    else if (r->body)
        memcpy(payload_hash, CS_SIGV4_UNSIGNED_PAYLOAD, sizeof CS_SIGV4_UNSIGNED_PAYLOAD);
    else
        memcpy(payload_hash, CS_SIGV4_EMPTY_SHA256, sizeof payload_hash);
    r->s = s;
    size_t range_slot = r->nheaders;
    char range[64];
    CURL *h = handle_get(s);
    int rc = 0;
    for (unsigned n = 0;; n++) {
        if (r->sink && r->delivered)
            set_range(r, range_slot, range, sizeof range); /* resume where the last try stopped */
        cs_err_clear(e);
        CURLcode cc = attempt(s, h, r, payload_hash, e);
        if (r->sink_failed) {
            *e = r->sink_err;
            rc = e->code;
            break;
        }
        if (cc == CURLE_FAILED_INIT && e->code) {
            rc = e->code; /* could not even sign the request */
            break;
        }
        if (cc == CURLE_OK && r->status >= 200 && r->status < 300)
            break;
        if (r->cancellable && cs_cancel_requested()) {
            rc = cs_cancel_error(e);
            break;
        }
        bool again = cc != CURLE_OK || retryable_status(r->status, &r->resp);
        if (!again || n >= s->retries) {
            rc = request_error(s, r, cc, e);
            if (again)
                cs_err_prefix(e, "after %u attempts", n + 1);
            break;
        }
        cs_debug("S3 %s %s: %s, retrying", r->method, r->key ? r->key : s->bucket,
                 cc != CURLE_OK ? curl_easy_strerror(cc) : "server busy");
        backoff(n);
    }
    handle_put(s, h);
    return rc;
}

static void req_free(s3_req *r)
{
    cs_buf_free(&r->resp);
}

/* ---- get, stat, del ----------------------------------------------------- */

static int s3_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    s3_req r = { .method = "GET", .key = key, .sink = dst };
    int rc = s3_request(s3_of(st), &r, e);
    req_free(&r);
    return rc;
}

static int s3_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    s3_req r = { .method = "HEAD", .key = key };
    int rc = s3_request(s3_of(st), &r, e);
    if (!rc) {
        out->size = r.content_length;
        out->mtime = r.mtime;
    }
    req_free(&r);
    return rc;
}

static int s3_del(cs_storage *st, const char *key, cs_err *e)
{
    s3_req r = { .method = "DELETE", .key = key };
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
    s3_req r = { .method = "POST" };
    cs_sigv4_pair q[] = { { "delete", "" } };
    r.query = q;
    r.nquery = 1;
    int rc = cs_s3xml_delete_body((const char *const *)full, n, true, &body, e);
    if (rc)
        goto out;
    /* S3 wants a checksum of this body; SHA-256 also covers it in the signature. */
    uint8_t digest[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    crypto_hash_sha256(digest, (const uint8_t *)body.data, body.len);
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    r.headers[0] = (cs_sigv4_pair){ "x-amz-checksum-sha256", b64 };
    r.headers[1] = (cs_sigv4_pair){ "x-amz-sdk-checksum-algorithm", "SHA256" };
    r.headers[2] = (cs_sigv4_pair){ "Content-Type", "application/xml" };
    r.nheaders = 3;
    r.body = (const uint8_t *)body.data;
    r.body_len = body.len;
    rc = s3_request(s, &r, e);
    if (rc)
        goto out;
    cs_s3xml_delete res;
    rc = cs_s3xml_parse_delete(r.resp.data, r.resp.len, &res, e);
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
        s3_req r = { .method = "GET", .query = q, .nquery = nq };
        rc = s3_request(s, &r, e);
        cs_s3xml_list l;
        if (!rc)
            rc = cs_s3xml_parse_list(r.resp.data, r.resp.len, &l, e);
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

/* ---- part buffers ----------------------------------------------------- */

/* A part_size buffer from the pool, waiting while all bufs_max are taken.
 * Every taken buffer is either being filled by a writer that is running or
 * carried by an upload that finishes on its own, so the wait ends. */
static uint8_t *buf_take(s3_storage *s)
{
    uint8_t *b = NULL;
    pthread_mutex_lock(&s->bufs_lock);
    while (s->bufs_free_n == 0 && s->bufs_made >= s->bufs_max)
        pthread_cond_wait(&s->bufs_cond, &s->bufs_lock);
    if (s->bufs_free_n > 0)
        b = s->bufs_free[--s->bufs_free_n];
    else
        s->bufs_made++;
    pthread_mutex_unlock(&s->bufs_lock);
    return b ? b : cs_malloc(s->part_size);
}

static void buf_give(s3_storage *s, uint8_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&s->bufs_lock);
    s->bufs_free[s->bufs_free_n++] = b;
    pthread_cond_signal(&s->bufs_cond);
    pthread_mutex_unlock(&s->bufs_lock);
}

/* ---- put: one PUT, or a multipart upload with parts in flight ----------- */

typedef struct s3_part {
    struct s3_writer *w;
    unsigned number;
    uint8_t *data;          /* a pool buffer, given back when the upload ends */
    size_t len;
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
} s3_writer;

static void *upload_part(void *arg)
{
    s3_part *p = arg;
    s3_writer *w = p->w;
    char num[16];
    snprintf(num, sizeof num, "%u", p->number);
    cs_sigv4_pair q[] = { { "partNumber", num }, { "uploadId", w->upload_id } };
    s3_req r = { .method = "PUT", .key = w->key, .query = q, .nquery = 2, .body = p->data, .body_len = p->len };
    cs_put_part done = { p->number, p->len, { 0 } };
    if (w->res) {
        r.cancellable = true;
        crypto_generichash(done.hash, sizeof done.hash, p->data, p->len, NULL, 0);
    }
    cs_err_clear(&p->err);
    p->rc = s3_request(w->s, &r, &p->err);
    if (!p->rc && !r.etag[0])
        p->rc = cs_err_set(&p->err, CS_E_PROTO, "S3 answered part %u of %s without an ETag", p->number, w->key);
    if (!p->rc)
        memcpy(p->etag, r.etag, sizeof p->etag);
    if (!p->rc && w->res && w->res->on_part)
        w->res->on_part(w->res->arg, &done);
    req_free(&r);
    buf_give(w->s, p->data); /* at once: another writer may be waiting for it */
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
    s3_req r = { .method = "POST", .key = w->key, .query = q, .nquery = 1 };
    int rc = s3_request(w->s, &r, e);
    cs_s3xml_initiate x;
    if (!rc)
        rc = cs_s3xml_parse_initiate(r.resp.data, r.resp.len, &x, e);
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
            w->buf = buf_take(w->s);
        size_t room = w->s->part_size - w->len;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
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

static int put_single(s3_writer *w, cs_err *e)
{
    static const uint8_t empty[1];
    s3_req r = { .method = "PUT", .key = w->key, .body = w->buf ? w->buf : empty, .body_len = w->len };
    r.cancellable = w->res != NULL;
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
    s3_req r = { .method = "POST", .key = w->key, .query = q, .nquery = 1 };
    int rc = cs_s3xml_complete_body(parts, w->parts, &body, e);
    if (!rc) {
        r.body = (const uint8_t *)body.data;
        r.body_len = body.len;
        r.headers[0] = (cs_sigv4_pair){ "Content-Type", "application/xml" };
        r.nheaders = 1;
        rc = s3_request(w->s, &r, e);
    }
    cs_s3xml_complete x;
    if (!rc)
        rc = cs_s3xml_parse_complete(r.resp.data, r.resp.len, &x, e); /* 200 may still hold an <Error> */
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
    s3_req r = { .method = "DELETE", .key = w->key, .query = q, .nquery = 1 };
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
    buf_give(w->s, w->buf);
    for (unsigned i = 0; i < w->parts && w->etags; i++)
        free(w->etags[i]);
    free(w->etags);
    free(w->slots);
    free(w->key);
    free(w);
}

static const cs_sink_ops writer_ops = { w_write, w_close, w_free };

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
        s3_req r = { .method = "GET", .query = q, .nquery = nq };
        cs_s3xml_uploads x;
        rc = s3_request(s, &r, e);
        if (!rc)
            rc = cs_s3xml_parse_uploads(r.resp.data, r.resp.len, &x, e);
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
        s3_req r = { .method = "GET", .key = w->key, .query = q, .nquery = 2 };
        cs_s3xml_parts x;
        int rc = s3_request(w->s, &r, e);
        if (!rc)
            rc = cs_s3xml_parse_parts(r.resp.data, r.resp.len, &x, e);
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
    s3_req r = { .method = "DELETE", .key = key, .query = q, .nquery = 1 };
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
    for (size_t i = 0; i < s->pool_n; i++)
        curl_easy_cleanup(s->pool[i]);
    free(s->pool);
    for (unsigned i = 0; i < s->bufs_free_n; i++)
        free(s->bufs_free[i]);
    free(s->bufs_free);
    pthread_mutex_destroy(&s->bufs_lock);
    pthread_cond_destroy(&s->bufs_cond);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->limiter.lock);
    if (s->secret_access_key)
        sodium_memzero(s->secret_access_key, strlen(s->secret_access_key));
    free(s->secret_access_key);
    free(s->access_key_id);
    free(s->session_token);
    free(s->region);
    free(s->ca_file);
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
    s->retries = o->retries ? o->retries : 6;
    s->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
    s->bufs_max = s->concurrency < 2 ? 2 : s->concurrency;
    s->bufs_free = cs_calloc(s->bufs_max, sizeof *s->bufs_free);
    pthread_mutex_init(&s->bufs_lock, NULL);
    pthread_cond_init(&s->bufs_cond, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->limiter.lock, NULL);
    s->limiter.rate = (double)o->rate_limit;
    s->limiter.last = now_s();
    s->limiter.tokens = 0;
}

/* One cheap request that tells at once whether the endpoint answers, the
 * credentials are good and the bucket exists. */
static int probe(s3_storage *s, cs_err *e)
{
    cs_sigv4_pair q[] = { { "list-type", "2" }, { "max-keys", "1" }, { "prefix", s->prefix } };
    s3_req r = { .method = "GET", .query = q, .nquery = 3 };
    int rc = s3_request(s, &r, e);
    req_free(&r);
    return rc;
}

int cs_s3_storage_new(const char *location, const cs_s3_opts *o, cs_storage **out, cs_err *e)
{
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    *out = NULL;
    pthread_once(&curl_once, curl_global_init_void);
    if (sodium_init() < 0)
        return cs_err_set(e, CS_E_INVAL, "cannot initialise libsodium");
    s3_storage *s = cs_calloc(1, sizeof *s);
    s->base.ops = &s3_ops;
    s->base.location = cs_strdup(location);
    s->region = cs_strdup(o->region && *o->region ? o->region : "us-east-1");
    s->access_key_id = dup_or_null(o->access_key_id);
    s->secret_access_key = dup_or_null(o->secret_access_key);
    s->session_token = dup_or_null(o->session_token);
    s->ca_file = dup_or_null(o->ca_file);
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

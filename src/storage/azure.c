/* azure.c - the Azure Blob Storage driver: az://CONTAINER/PREFIX.
 *
 * Behind the same cs_storage interface as posix and s3; objects are block
 * blobs named PREFIX/KEY. Every request carries x-ms-date and x-ms-version
 * and is signed with Shared Key (storage/azsign.c) per attempt, or carries
 * the SAS token in its query instead. Objects up to one block go up in one
 * Put Blob; larger ones as blocks (Put Block, several in flight, from a pool
 * of block buffers shared by every writer of the handle, so memory stays
 * bounded however many writers are open), committed by one Put Block List.
 * Uncommitted blocks are invisible to reads and listings and Azure drops
 * them after a week, so a writer freed without close leaves nothing behind.
 * Exclusive creates say If-None-Match: * (409/412 is CS_E_EXISTS) and carry
 * the writer's nonce as metadata, so that a create whose answer was lost
 * and whose retry finds the blob can tell its own from another's. Requests
 * are retried with exponential backoff and full jitter on 5xx, 408, 429,
 * timeouts and dropped connections; downloads resume with a Range (and
 * If-Match on the first answer's ETag) where they stopped.
 *
 * Transport: a small curl loop of its own (handle pool, retries) that the
 * shared HTTP module replaces once it lands; List Blobs pages are read by a
 * small bounded scanner of exactly that document, which the shared XML
 * reader replaces likewise. Resumable writers: none (an interrupted upload
 * is sent again). Must not: log or report the key, a signature or the SAS
 * (URLs carry the SAS: no URL goes into a message, only the endpoint). */
#include "storage/azure.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "storage/azsign.h"

#define AZ_MIN_BLOCK (1u << 20)
#define AZ_DEFAULT_BLOCK (8u << 20)
#define AZ_MAX_BLOCKS 50000
#define AZ_BODY_MAX (16u << 20) /* largest response body we keep (List Blobs pages) */
#define AZ_ID_TEXT 24           /* a block id before base64: 16 hex of nonce, 8 digits */
#define AZ_META_WRITER "x-ms-meta-cassettewriter"

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
    char *ca_file;
    uint64_t block_size;
    unsigned concurrency;
    unsigned retries;
    long timeout_s;
    /* block buffers shared by every writer: at most bufs_max exist */
    pthread_mutex_t bufs_lock;
    pthread_cond_t bufs_cond;
    uint8_t **bufs_free;
    unsigned bufs_free_n, bufs_made, bufs_max;
    pthread_mutex_t pool_lock;
    CURL **pool;         /* idle easy handles: their connections stay open */
    size_t pool_n;
} az_storage;

static az_storage *az_of(cs_storage *st)
{
    return (az_storage *)(void *)st;
}

static void curl_global_init_void(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void sleep_s(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static CURL *handle_get(az_storage *s)
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

static void handle_put(az_storage *s, CURL *h)
{
    pthread_mutex_lock(&s->pool_lock);
    s->pool = cs_realloc(s->pool, (s->pool_n + 1) * sizeof *s->pool);
    s->pool[s->pool_n++] = h;
    pthread_mutex_unlock(&s->pool_lock);
}

/* ---- one request ------------------------------------------------------------- */

typedef struct az_req {
    const char *method;
    const char *key;              /* blob below the prefix; NULL: the container */
    const cs_azsign_pair *query;
    size_t nquery;
    cs_azsign_pair headers[6];    /* extra headers, signed too */
    size_t nheaders;
    const uint8_t *body;          /* request body from memory */
    size_t body_len;
    cs_sink *sink;                /* GET: the blob's bytes go here as they come */
    /* results */
    long status;
    unsigned attempts;
    cs_buf resp;                  /* the body of an error or XML answer */
    char error_code[96];          /* x-ms-error-code */
    char etag[128];
    char writer[40];              /* x-ms-meta-cassettewriter of a HEAD */
    uint64_t delivered;           /* bytes handed to sink over all attempts */
    uint64_t content_length;
    int64_t mtime;
    bool sink_failed;
    cs_err sink_err;
    bool range_ignored;           /* a resumed GET was answered with the whole blob */
    /* attempt state */
    size_t body_off;
    bool decided;
    bool streaming;
    CURL *h;
} az_req;

static size_t read_body(char *buf, size_t size, size_t nitems, void *arg)
{
    az_req *r = arg;
    size_t n = r->body_len - r->body_off;
    if (n > size * nitems)
        n = size * nitems;
    memcpy(buf, r->body + r->body_off, n);
    r->body_off += n;
    return n;
}

static size_t write_body(char *p, size_t size, size_t nmemb, void *arg)
{
    az_req *r = arg;
    size_t n = size * nmemb;
    if (!r->decided) {
        /* The status is known once the body starts. A GET's bytes go to the
         * sink: a whole answer only when nothing was delivered yet. */
        long status = 0;
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
        r->streaming = r->sink && (status == 206 || (status == 200 && r->delivered == 0));
        r->range_ignored = r->sink && status == 200 && r->delivered > 0;
        r->decided = true;
    }
    if (r->range_ignored)
        return 0; /* would deliver the first bytes twice */
    if (r->streaming) {
        if (cs_sink_write(r->sink, p, n, &r->sink_err) != 0) {
            r->sink_failed = true;
            return 0; /* abort the transfer; never retried */
        }
        r->delivered += n;
        return n;
    }
    if (r->resp.len + n > AZ_BODY_MAX)
        return 0;
    cs_buf_add(&r->resp, p, n);
    return n;
}

/* Copy a header's value (trimmed) into out when the line is "name: value". */
static void header_into(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t len = n - nl - 1;
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len < cap) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
}

static size_t read_header(char *p, size_t size, size_t nitems, void *arg)
{
    az_req *r = arg;
    size_t n = size * nitems;
    header_into(p, n, "x-ms-error-code", r->error_code, sizeof r->error_code);
    header_into(p, n, "ETag", r->etag, sizeof r->etag);
    header_into(p, n, AZ_META_WRITER, r->writer, sizeof r->writer);
    return n;
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

/* The headers of one attempt, dated now and signed (Shared Key), each
 * "Name: value" for curl. NULL when signing fails (e set). */
static struct curl_slist *attempt_headers(az_storage *s, az_req *r, const char *path, cs_err *e)
{
    char date[CS_AZSIGN_DATE];
    if (cs_azsign_format_date(time(NULL), date, e) != 0)
        return NULL;
    cs_azsign_pair all[8];
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        all[n++] = r->headers[i];
    all[n++] = (cs_azsign_pair){ "x-ms-date", date };
    all[n++] = (cs_azsign_pair){ "x-ms-version", CS_AZSIGN_VERSION };
    struct curl_slist *list = NULL;
    if (s->key.len) {
        cs_azsign_request sr = { r->method, path, r->query, r->nquery, all, n, r->body ? r->body_len : 0 };
        cs_buf auth = CS_BUF_INIT;
        if (cs_azsign_authorization(s->account, &s->key, &sr, &auth, e) != 0) {
            cs_buf_free(&auth);
            return NULL;
        }
        char *line = cs_sprintf("Authorization: %s", cs_buf_str(&auth));
        list = curl_slist_append(list, line);
        free(line);
        cs_buf_free(&auth);
    }
    for (size_t i = 0; i < n; i++) {
        char *line = cs_sprintf("%s: %s", all[i].name, all[i].value);
        list = curl_slist_append(list, line);
        free(line);
    }
    /* curl would wait for "100 Continue" before large bodies: a round trip
     * per block for nothing. */
    list = curl_slist_append(list, "Expect:");
    return list;
}

static void setup_method(CURL *h, az_req *r)
{
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* One attempt. Returns the curl code; r->status holds the HTTP status. */
static CURLcode attempt(az_storage *s, CURL *h, az_req *r, cs_err *e)
{
    char *path = request_path(s, r->key);
    cs_buf url = CS_BUF_INIT;
    cs_buf_printf(&url, "%s://%s%s", s->scheme, s->host, path);
    if (r->nquery || s->sas) {
        cs_buf_addch(&url, '?');
        cs_azsign_query_string(r->query, r->nquery, s->sas, &url);
    }
    CURLcode cc = CURLE_FAILED_INIT;
    struct curl_slist *headers = attempt_headers(s, r, path, e);
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
    setup_method(h, r);
    r->body_off = 0;
    r->etag[0] = r->error_code[0] = r->writer[0] = '\0';
    r->h = h;
    r->decided = r->streaming = r->range_ignored = false;
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
    if (url.data)
        sodium_memzero(url.data, url.cap); /* it held the SAS */
    cs_buf_free(&url);
    free(path);
    return cc;
}

/* ---- retries and errors ------------------------------------------------------- */

static bool retryable_status(long status)
{
    return status == 500 || status == 502 || status == 503 || status == 504 || status == 408 || status == 429;
}

/* One sentence for a failed request; never a credential or a URL in it. */
static int request_error(az_storage *s, az_req *r, CURLcode cc, cs_err *e)
{
    if (cc != CURLE_OK)
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach Azure Blob Storage at %s: %s", s->endpoint,
                          curl_easy_strerror(cc));
    const char *code = r->error_code;
    if (r->status == 403 || r->status == 401)
        return cs_err_set(e, CS_E_EXTERNAL, "access denied to container %s at %s%s%s (check the account, its key "
                          "or the SAS token and its permissions)", s->container, s->endpoint, code[0] ? ": " : "", code);
    if (!strcmp(code, "ContainerNotFound") || (r->status == 404 && !r->key))
        return cs_err_set(e, CS_E_NOTFOUND, "container %s does not exist at %s", s->container, s->endpoint);
    if (r->status == 404)
        return cs_err_set(e, CS_E_NOTFOUND, "object %s not found", r->key);
    if (r->key && (r->status == 412 || (r->status == 409 && !strcmp(code, "BlobAlreadyExists"))))
        return cs_err_set(e, CS_E_EXISTS, "object %s already exists", r->key);
    return cs_err_set(e, CS_E_EXTERNAL, "Azure %s %s at %s failed: HTTP %ld%s%s", r->method,
                      r->key ? r->key : s->container, s->endpoint, r->status, code[0] ? " " : "", code);
}

/* Full jitter: a random wait between 0 and min(10 s, 0.2 s * 2^n). */
static void backoff(unsigned attempt_no)
{
    double ceiling = 0.2 * (double)(1u << (attempt_no < 8 ? attempt_no : 8));
    if (ceiling > 10)
        ceiling = 10;
    sleep_s(ceiling * (double)randombytes_uniform(1000001) / 1e6);
}

/* Run r to success or final failure, retrying what can succeed later. A
 * GET that stopped midway goes on from the next byte, of the same blob. */
static int az_request(az_storage *s, az_req *r, cs_err *e)
{
    size_t resume_slot = r->nheaders;
    char range[64], etag[sizeof r->etag] = "";
    CURL *h = handle_get(s);
    int rc = 0;
    for (unsigned n = 0;; n++) {
        if (r->sink && r->delivered) {
            snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)r->delivered);
            r->headers[resume_slot] = (cs_azsign_pair){ "Range", range };
            r->nheaders = resume_slot + 1;
            if (etag[0]) {
                r->headers[resume_slot + 1] = (cs_azsign_pair){ "If-Match", etag };
                r->nheaders = resume_slot + 2;
            }
        }
        cs_err_clear(e);
        r->attempts = n + 1;
        CURLcode cc = attempt(s, h, r, e);
        if (r->sink && !etag[0] && r->delivered && r->etag[0])
            memcpy(etag, r->etag, sizeof etag);
        if (r->sink_failed) {
            *e = r->sink_err;
            rc = e->code;
            break;
        }
        if (cc == CURLE_FAILED_INIT && e->code) {
            rc = e->code; /* could not even sign the request */
            break;
        }
        if (r->range_ignored) {
            rc = cs_err_set(e, CS_E_PROTO, "Azure answered a ranged read of %s with the whole blob", r->key);
            break;
        }
        if (cc == CURLE_OK && r->status >= 200 && r->status < 300)
            break;
        bool again = cc != CURLE_OK || retryable_status(r->status);
        if (!again || n >= s->retries) {
            rc = request_error(s, r, cc, e);
            if (again)
                cs_err_prefix(e, "after %u attempts", n + 1);
            break;
        }
        cs_debug("Azure %s %s: %s, retrying", r->method, r->key ? r->key : s->container,
                 cc != CURLE_OK ? curl_easy_strerror(cc) : "server busy");
        backoff(n);
    }
    handle_put(s, h);
    return rc;
}

static void req_free(az_req *r)
{
    cs_buf_free(&r->resp);
}

/* ---- get, stat, del ------------------------------------------------------------- */

static int az_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    az_req r = { .method = "GET", .key = key, .sink = dst };
    int rc = az_request(az_of(st), &r, e);
    req_free(&r);
    return rc;
}

static int head(az_storage *s, const char *key, az_req *r, cs_err *e)
{
    *r = (az_req){ .method = "HEAD", .key = key };
    return az_request(s, r, e);
}

static int az_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    az_req r;
    int rc = head(az_of(st), key, &r, e);
    if (!rc) {
        out->size = r.content_length;
        out->mtime = r.mtime;
    }
    req_free(&r);
    return rc;
}

static int az_del(cs_storage *st, const char *key, cs_err *e)
{
    az_req r = { .method = "DELETE", .key = key };
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

/* A List Blobs page, read by a scanner of exactly that document (Azure's
 * elements have no attributes and no namespace prefixes): the text of
 * <Name>, <Content-Length> and <Last-Modified> in each <Blob>, and
 * <NextMarker>. Text is decoded (the five entities and numeric
 * references); anything else is CS_E_PROTO. */
typedef struct az_listed {
    char *name;
    uint64_t size;
    int64_t mtime;
} az_listed;

typedef struct az_page {
    az_listed *blobs;
    size_t n;
    char *next_marker; /* NULL or "" at the end */
} az_page;

static void page_free(az_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->blobs[i].name);
    free(p->blobs);
    free(p->next_marker);
    memset(p, 0, sizeof *p);
}

static void put_utf8(cs_buf *out, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    cs_buf_add(out, u, n);
}

/* Decode XML text [p, end) into a heap string; NULL when malformed. */
static char *xml_text(const char *p, const char *end)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = { { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' } };
    cs_buf out = CS_BUF_INIT;
    cs_buf_addstr(&out, "");
    while (p < end) {
        if (*p == '<' || *p == '\0')
            goto bad;
        if (*p != '&') {
            cs_buf_addch(&out, *p++);
            continue;
        }
        p++;
        size_t i;
        for (i = 0; i < sizeof ents / sizeof ents[0]; i++) {
            size_t k = strlen(ents[i].name);
            if ((size_t)(end - p) >= k && !strncmp(p, ents[i].name, k)) {
                cs_buf_addch(&out, ents[i].c);
                p += k;
                break;
            }
        }
        if (i < sizeof ents / sizeof ents[0])
            continue;
        if (p >= end || *p != '#')
            goto bad;
        p++;
        int base = 10;
        if (p < end && *p == 'x') {
            base = 16;
            p++;
        }
        unsigned long cp = 0;
        const char *digits = p;
        while (p < end && *p != ';') {
            int d = (*p >= '0' && *p <= '9') ? *p - '0'
                    : base == 16 && (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f' ? (*p | 0x20) - 'a' + 10
                                                                             : -1;
            if (d < 0 || cp > 0x10ffff)
                goto bad;
            cp = cp * (unsigned long)base + (unsigned long)d;
            p++;
        }
        if (p >= end || p == digits || cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        p++;
        put_utf8(&out, cp);
    }
    return cs_buf_detach(&out);
bad:
    cs_buf_free(&out);
    return NULL;
}

/* The text of the first <name>...</name> (or empty <name/>) in [p, end);
 * *found says whether there was one. NULL when malformed. */
static char *element_text(const char *p, const char *end, const char *name, bool *found)
{
    *found = false;
    size_t nl = strlen(name);
    for (const char *q = p; q < end; q++) {
        q = memchr(q, '<', (size_t)(end - q));
        if (!q)
            break;
        if ((size_t)(end - q) <= nl + 1 || strncmp(q + 1, name, nl))
            continue;
        const char *after = q + 1 + nl;
        if (*after == '>') {
            const char *start = after + 1;
            for (const char *c = start; c + nl + 3 <= end; c++) {
                if (c[0] == '<' && c[1] == '/' && !strncmp(c + 2, name, nl) && c[2 + nl] == '>') {
                    *found = true;
                    return xml_text(start, c);
                }
            }
            return NULL;
        }
        const char *t = after;
        while (t < end && *t == ' ')
            t++;
        if (t + 1 < end && t[0] == '/' && t[1] == '>') {
            *found = true;
            return cs_strdup("");
        }
    }
    return cs_strdup("");
}

static int parse_page(const char *doc, size_t len, az_page *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    const char *p = doc, *end = doc + len;
    if (!memmem(doc, len, "<EnumerationResults", 19))
        return cs_err_set(e, CS_E_PROTO, "Azure answered List Blobs with something else");
    size_t cap = 0;
    for (;;) {
        const char *b = memmem(p, (size_t)(end - p), "<Blob>", 6);
        if (!b)
            break;
        const char *be = memmem(b, (size_t)(end - b), "</Blob>", 7);
        if (!be)
            goto bad;
        bool f1, f2, f3;
        char *name = element_text(b + 6, be, "Name", &f1);
        char *size = element_text(b + 6, be, "Content-Length", &f2);
        char *mod = element_text(b + 6, be, "Last-Modified", &f3);
        bool ok = name && size && mod && f1 && f2 && name[0] && size[0] >= '0' && size[0] <= '9';
        char *num_end = NULL;
        unsigned long long sz = ok ? strtoull(size, &num_end, 10) : 0;
        ok = ok && *num_end == '\0';
        if (ok) {
            if (out->n == cap) {
                cap = cap ? cap * 2 : 64;
                out->blobs = cs_realloc(out->blobs, cap * sizeof *out->blobs);
            }
            time_t t = f3 ? curl_getdate(mod, NULL) : -1;
            out->blobs[out->n++] = (az_listed){ name, sz, t > 0 ? (int64_t)t : 0 };
            name = NULL;
        }
        free(name);
        free(size);
        free(mod);
        if (!ok)
            goto bad;
        p = be + 7;
    }
    bool found;
    out->next_marker = element_text(doc, end, "NextMarker", &found);
    if (!out->next_marker)
        goto bad;
    return 0;
bad:
    page_free(out);
    return cs_err_set(e, CS_E_PROTO, "Azure answered List Blobs with a document we cannot read");
}

static int az_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    az_storage *s = az_of(st);
    char *full = s->prefix[0] ? cs_sprintf("%s/%s", s->prefix, prefix) : cs_strdup(prefix);
    size_t strip = s->prefix[0] ? strlen(s->prefix) + 1 : 0;
    char *marker = NULL;
    int rc = 0;
    for (;;) {
        cs_azsign_pair q[5] = { { "restype", "container" }, { "comp", "list" }, { "prefix", full },
                                { "maxresults", "5000" } };
        size_t nq = 4;
        if (marker)
            q[nq++] = (cs_azsign_pair){ "marker", marker };
        az_req r = { .method = "GET", .query = q, .nquery = nq };
        az_page page;
        rc = az_request(s, &r, e);
        if (!rc)
            rc = parse_page(r.resp.data, r.resp.len, &page, e);
        req_free(&r);
        if (rc)
            break;
        for (size_t i = 0; rc == 0 && i < page.n; i++) {
            const char *key = page.blobs[i].name;
            if (strlen(key) <= strip || strncmp(key, full, strlen(full)))
                continue; /* not ours: the server answered another prefix */
            cs_storage_stat stat = { page.blobs[i].size, page.blobs[i].mtime };
            rc = cb(key + strip, &stat, arg);
        }
        free(marker);
        marker = page.next_marker && page.next_marker[0] ? cs_strdup(page.next_marker) : NULL;
        page_free(&page);
        if (rc || !marker)
            break;
    }
    free(marker);
    free(full);
    return rc;
}

/* ---- block buffers ------------------------------------------------------------------ */

/* A block_size buffer from the pool, waiting while all bufs_max are taken.
 * Every taken buffer is either being filled by a writer that is running or
 * carried by an upload that finishes on its own, so the wait ends. */
static uint8_t *buf_take(az_storage *s)
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
    return b ? b : cs_malloc(s->block_size);
}

static void buf_give(az_storage *s, uint8_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&s->bufs_lock);
    s->bufs_free[s->bufs_free_n++] = b;
    pthread_cond_signal(&s->bufs_cond);
    pthread_mutex_unlock(&s->bufs_lock);
}

/* ---- put: one Put Blob, or blocks then Put Block List ------------------------------- */

typedef struct az_block {
    struct az_writer *w;
    unsigned number;        /* 0, 1, ... */
    uint8_t *data;          /* a pool buffer, given back when the upload ends */
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
    uint8_t *buf;           /* the block being filled: a pool buffer, or NULL */
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

static void *put_block(void *arg)
{
    az_block *b = arg;
    az_writer *w = b->w;
    char id[64];
    block_id(w, b->number, id);
    cs_azsign_pair q[] = { { "comp", "block" }, { "blockid", id } };
    az_req r = { .method = "PUT", .key = w->key, .query = q, .nquery = 2, .body = b->data, .body_len = b->len };
    cs_err_clear(&b->err);
    b->rc = az_request(w->s, &r, &b->err);
    req_free(&r);
    buf_give(w->s, b->data); /* at once: another writer may be waiting for it */
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
    b->running = pthread_create(&b->thread, NULL, put_block, b) == 0;
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
            w->buf = buf_take(w->s);
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
static int exclusive_outcome(az_writer *w, az_req *r, int rc, cs_err *e)
{
    if (rc != CS_E_EXISTS || r->attempts < 2)
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
    static const uint8_t empty[1];
    az_req r = { .method = "PUT", .key = w->key, .body = w->buf ? w->buf : empty, .body_len = w->len };
    r.headers[r.nheaders++] = (cs_azsign_pair){ "x-ms-blob-type", "BlockBlob" };
    commit_headers(w, &r);
    int rc = exclusive_outcome(w, &r, az_request(w->s, &r, e), e);
    req_free(&r);
    return rc;
}

static int put_block_list(az_writer *w, cs_err *e)
{
    cs_buf body = CS_BUF_INIT;
    cs_buf_addstr(&body, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>");
    for (unsigned i = 0; i < w->blocks; i++) {
        char id[64];
        block_id(w, i, id);
        cs_buf_printf(&body, "<Latest>%s</Latest>", id); /* base64: nothing to escape */
    }
    cs_buf_addstr(&body, "</BlockList>");
    cs_azsign_pair q[] = { { "comp", "blocklist" } };
    az_req r = { .method = "PUT", .key = w->key, .query = q, .nquery = 1, .body = (const uint8_t *)body.data,
                 .body_len = body.len };
    commit_headers(w, &r);
    int rc = exclusive_outcome(w, &r, az_request(w->s, &r, e), e);
    req_free(&r);
    cs_buf_free(&body);
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
    buf_give(w->s, w->buf);
    free(w->slots);
    free(w->key);
    free(w);
}

static const cs_sink_ops writer_ops = { w_write, w_close, w_free };

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
    for (size_t i = 0; i < s->pool_n; i++)
        curl_easy_cleanup(s->pool[i]);
    free(s->pool);
    for (unsigned i = 0; i < s->bufs_free_n; i++)
        free(s->bufs_free[i]);
    free(s->bufs_free);
    pthread_mutex_destroy(&s->bufs_lock);
    pthread_cond_destroy(&s->bufs_cond);
    pthread_mutex_destroy(&s->pool_lock);
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
    free(s->ca_file);
    free(s->base.location);
    free(s);
}

static const cs_storage_ops az_ops = {
    "az", az_put, az_get, az_stat, az_list, az_del, az_del_many, az_free, NULL, NULL, NULL,
};

static char *dup_or_null(const char *v)
{
    return v && *v ? cs_strdup(v) : NULL;
}

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
    if (!sep || !((sl == 4 && !strncasecmp(ep, "http", 4)) || (sl == 5 && !strncasecmp(ep, "https", 5)))) {
        rc = cs_err_set(e, CS_E_INVAL, "Azure endpoint %s must start with http:// or https://", ep);
        goto out;
    }
    s->scheme = cs_strndup(ep, sl);
    for (char *c = s->scheme; *c; c++)
        *c = (char)(*c | 0x20);
    const char *host = sep + 3;
    size_t hl = strcspn(host, "/?#");
    if (!hl || host[hl] == '?' || host[hl] == '#' || memchr(host, '@', hl)) {
        rc = cs_err_set(e, CS_E_INVAL, "Azure endpoint %s must be scheme://host[:port][/path]", ep);
        goto out;
    }
    s->host = cs_strndup(host, hl);
    const char *base = host + hl;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    s->base_path = cs_strndup(base, bl);
    if (strpbrk(s->base_path, "?# %")) {
        rc = cs_err_set(e, CS_E_INVAL, "Azure endpoint %s must be scheme://host[:port][/path]", ep);
        goto out;
    }
    s->endpoint = cs_sprintf("%s://%s%s", s->scheme, s->host, s->base_path);
out:
    free(def);
    return rc;
}

static int parse_credentials(az_storage *s, const cs_az_opts *o, cs_err *e)
{
    if (o->key && *o->key)
        return cs_azsign_key_decode(o->key, &s->key, e);
    if (o->sas && *o->sas)
        return cs_azsign_sas_check(o->sas, &s->sas, e);
    return cs_err_set(e, CS_E_INVAL, "no Azure credentials: set AZURE_STORAGE_KEY (the account key) or "
                                     "AZURE_STORAGE_SAS_TOKEN (a SAS token)");
}

static void apply_defaults(az_storage *s, const cs_az_opts *o)
{
    s->block_size = o->block_size ? o->block_size : AZ_DEFAULT_BLOCK;
    if (s->block_size < AZ_MIN_BLOCK)
        s->block_size = AZ_MIN_BLOCK;
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
}

/* One cheap request that tells at once whether the endpoint answers, the
 * credentials are good and the container exists; makes the container when
 * asked to. */
static int probe(az_storage *s, bool create, cs_err *e)
{
    cs_azsign_pair q[] = { { "restype", "container" }, { "comp", "list" }, { "maxresults", "1" },
                           { "prefix", s->prefix } };
    az_req r = { .method = "GET", .query = q, .nquery = 4 };
    int rc = az_request(s, &r, e);
    req_free(&r);
    if (rc != CS_E_NOTFOUND || !create)
        return rc;
    cs_err_clear(e);
    cs_azsign_pair mk[] = { { "restype", "container" } };
    static const uint8_t empty[1];
    az_req c = { .method = "PUT", .query = mk, .nquery = 1, .body = empty, .body_len = 0 };
    rc = az_request(s, &c, e);
    if (rc && c.status == 409 && !strcmp(c.error_code, "ContainerAlreadyExists")) {
        cs_err_clear(e); /* made meanwhile */
        rc = 0;
    }
    if (!rc)
        cs_debug("made container %s at %s", s->container, s->endpoint);
    req_free(&c);
    return rc;
}

int cs_az_storage_new(const char *location, const cs_az_opts *o, bool create, cs_storage **out, cs_err *e)
{
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    *out = NULL;
    pthread_once(&curl_once, curl_global_init_void);
    if (sodium_init() < 0)
        return cs_err_set(e, CS_E_INVAL, "cannot initialise libsodium");
    az_storage *s = cs_calloc(1, sizeof *s);
    s->base.ops = &az_ops;
    s->base.location = cs_strdup(location);
    s->ca_file = dup_or_null(o->ca_file);
    apply_defaults(s, o);
    int rc = parse_location(s, location, e);
    if (!rc && !(o->account && *o->account))
        rc = cs_err_set(e, CS_E_INVAL, "no Azure storage account: set AZURE_STORAGE_ACCOUNT");
    if (!rc) {
        s->account = cs_strdup(o->account);
        if (!valid_account(s->account))
            rc = cs_err_set(e, CS_E_INVAL, "invalid Azure storage account name \"%s\" (3 to 64 of a-z and 0-9)",
                            s->account);
    }
    if (!rc)
        rc = parse_endpoint(s, o->endpoint, e);
    if (!rc)
        rc = parse_credentials(s, o, e);
    if (!rc)
        rc = probe(s, create, e);
    if (rc) {
        az_free(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

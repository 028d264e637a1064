/* http.c - the transport of the HTTP storage drivers (see http.h).
 *
 * One libcurl easy handle per request at a time, kept in the client's pool
 * afterwards so its connection is reused. Each attempt resets the handle,
 * asks the driver for the URL and signed headers, and runs; the body of an
 * answer goes to the request's sink when it is a successful download, into
 * resp otherwise (for the driver's XML). Between attempts: a wait with full
 * jitter. Bytes both ways pass the token bucket, outside its lock. */
#include "storage/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"

struct cs_http {
    char *ca_file;
    char *cert_file, *key_file;
    long timeout_s;
    unsigned retries;
    pthread_mutex_t bucket_lock;
    cs_http_bucket bucket;
    pthread_mutex_t pool_lock;
    CURL **pool; /* idle easy handles: their connections stay open */
    size_t pool_n;
    /* part buffers: at most parts_max exist */
    pthread_mutex_t parts_lock;
    pthread_cond_t parts_cond;
    uint8_t **parts_free;
    unsigned parts_free_n, parts_made, parts_max;
    size_t part_size;
};

struct cs_http_attempt {
    char *url;
    struct curl_slist *headers;
};

/* The state of one attempt, behind curl's callbacks. */
typedef struct xfer {
    cs_http *h;
    cs_http_req *r;
    CURL *curl;
    size_t body_off;
    bool decided;   /* the status of this attempt is known */
    bool streaming; /* this attempt's body goes to the sink */
    bool sink_failed;
    cs_err sink_err;
} xfer;

/* ---- time and the token bucket ------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double cs_http_bucket_take(cs_http_bucket *b, size_t n, double now)
{
    if (b->rate <= 0 || n == 0)
        return 0;
    b->tokens += (now - b->last) * b->rate;
    if (b->tokens > b->rate / 4) /* at most a quarter second of burst */
        b->tokens = b->rate / 4;
    b->last = now;
    b->tokens -= (double)n;
    return b->tokens < 0 ? -b->tokens / b->rate : 0;
}

/* Take n bytes from the bucket, sleeping off any debt outside the lock. */
static void throttle(cs_http *h, size_t n)
{
    if (h->bucket.rate <= 0 || n == 0)
        return;
    pthread_mutex_lock(&h->bucket_lock);
    double wait = cs_http_bucket_take(&h->bucket, n, now_s());
    pthread_mutex_unlock(&h->bucket_lock);
    cs_sleep(wait);
}

/* ---- the client ----------------------------------------------------------------------- */

/* curl_global_init once per process, before any thread uses curl. */
static void curl_global_init_void(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

cs_http *cs_http_new(const cs_http_opts *o)
{
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    pthread_once(&curl_once, curl_global_init_void);
    if (sodium_init() < 0) { /* the jitter's random numbers */
        fputs("cassette: cannot initialise libsodium\n", stderr);
        abort();
    }
    cs_http *h = cs_calloc(1, sizeof *h);
    h->ca_file = o->ca_file && *o->ca_file ? cs_strdup(o->ca_file) : NULL;
    h->cert_file = o->cert_file && *o->cert_file ? cs_strdup(o->cert_file) : NULL;
    h->key_file = o->key_file && *o->key_file ? cs_strdup(o->key_file) : NULL;
    h->timeout_s = o->timeout_s;
    h->retries = o->retries;
    h->bucket.rate = (double)o->rate_limit;
    h->bucket.last = now_s();
    h->part_size = o->part_size;
    h->parts_max = o->part_buffers;
    h->parts_free = cs_calloc(h->parts_max ? h->parts_max : 1, sizeof *h->parts_free);
    pthread_mutex_init(&h->bucket_lock, NULL);
    pthread_mutex_init(&h->pool_lock, NULL);
    pthread_mutex_init(&h->parts_lock, NULL);
    pthread_cond_init(&h->parts_cond, NULL);
    return h;
}

void cs_http_free(cs_http *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->pool_n; i++)
        curl_easy_cleanup(h->pool[i]);
    free(h->pool);
    for (unsigned i = 0; i < h->parts_free_n; i++)
        free(h->parts_free[i]);
    free(h->parts_free);
    pthread_mutex_destroy(&h->bucket_lock);
    pthread_mutex_destroy(&h->pool_lock);
    pthread_mutex_destroy(&h->parts_lock);
    pthread_cond_destroy(&h->parts_cond);
    free(h->ca_file);
    free(h->cert_file);
    free(h->key_file);
    free(h);
}

static CURL *handle_get(cs_http *h)
{
    CURL *c = NULL;
    pthread_mutex_lock(&h->pool_lock);
    if (h->pool_n)
        c = h->pool[--h->pool_n];
    pthread_mutex_unlock(&h->pool_lock);
    if (!c)
        c = curl_easy_init();
    if (!c) {
        fputs("cassette: cannot create an HTTP handle\n", stderr);
        abort();
    }
    return c;
}

static void handle_put(cs_http *h, CURL *c)
{
    pthread_mutex_lock(&h->pool_lock);
    h->pool = cs_realloc(h->pool, (h->pool_n + 1) * sizeof *h->pool);
    h->pool[h->pool_n++] = c;
    pthread_mutex_unlock(&h->pool_lock);
}

/* ---- part buffers ------------------------------------------------------------------------ */

size_t cs_http_part_size(const cs_http *h)
{
    return h->part_size;
}

uint8_t *cs_http_part_take(cs_http *h)
{
    uint8_t *b = NULL;
    pthread_mutex_lock(&h->parts_lock);
    while (h->parts_free_n == 0 && h->parts_made >= h->parts_max)
        pthread_cond_wait(&h->parts_cond, &h->parts_lock);
    if (h->parts_free_n > 0)
        b = h->parts_free[--h->parts_free_n];
    else
        h->parts_made++;
    pthread_mutex_unlock(&h->parts_lock);
    return b ? b : cs_malloc(h->part_size);
}

void cs_http_part_give(cs_http *h, uint8_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&h->parts_lock);
    h->parts_free[h->parts_free_n++] = b;
    pthread_cond_signal(&h->parts_cond);
    pthread_mutex_unlock(&h->parts_lock);
}

/* ---- curl's callbacks -------------------------------------------------------------------- */

static size_t read_body(char *buf, size_t size, size_t nitems, void *arg)
{
    xfer *x = arg;
    cs_http_req *r = x->r;
    size_t room = size * nitems;
    size_t n = r->body_len - x->body_off;
    if (n > room)
        n = room;
    if (!(r->cancellable && cs_cancel_requested())) /* the transfer stops at once: no wait */
        throttle(x->h, n);
    memcpy(buf, r->body + x->body_off, n);
    x->body_off += n;
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
    xfer *x = arg;
    cs_http_req *r = x->r;
    size_t n = size * nmemb;
    if (!x->decided) {
        /* Body bytes come after the headers: the status is known now. Only
         * a successful download streams to the sink; errors are kept. */
        long status = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        x->streaming = r->sink && (status == 200 || status == 206);
        x->decided = true;
    }
    if (x->streaming) {
        throttle(x->h, n);
        if (cs_sink_write(r->sink, (const uint8_t *)p, n, &x->sink_err) != 0) {
            x->sink_failed = true;
            return 0; /* abort the transfer; never retried */
        }
        r->delivered += n;
        return n;
    }
    if (r->resp.len + n > CS_HTTP_BODY_MAX)
        return 0;
    cs_buf_add(&r->resp, p, n);
    return n;
}

static void trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t'))
        (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == '\r' || (*p)[*n - 1] == '\n' || (*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

static size_t read_header(char *p, size_t size, size_t nitems, void *arg)
{
    xfer *x = arg;
    cs_http_req *r = x->r;
    size_t n = size * nitems;
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return n; /* the status line, or the blank line after the headers */
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    trim(&v, &vlen);
    if (nlen == 4 && strncasecmp(p, "ETag", 4) == 0 && vlen < sizeof r->etag) {
        memcpy(r->etag, v, vlen);
        r->etag[vlen] = '\0';
    }
    if (r->on_header)
        r->on_header(r, p, nlen, v, vlen);
    return n;
}

/* ---- one attempt ------------------------------------------------------------------------ */

static void setup_method(CURL *c, xfer *x)
{
    const cs_http_req *r = x->r;
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "PUT") || ((!strcmp(r->method, "POST") || !strcmp(r->method, "PATCH")) && r->body)) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        if (strcmp(r->method, "PUT"))
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (!strcmp(r->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

void cs_http_attempt_url(cs_http_attempt *a, const char *url)
{
    free(a->url);
    a->url = cs_strdup(url);
}

void cs_http_attempt_header(cs_http_attempt *a, const char *line)
{
    struct curl_slist *l = curl_slist_append(a->headers, line);
    if (!l) {
        fputs("cassette: out of memory\n", stderr);
        abort();
    }
    a->headers = l;
}

static void setup_transfer(cs_http *h, CURL *c, xfer *x, const cs_http_attempt *a)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, a->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->timeout_s);
    curl_easy_setopt(c, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (h->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    if (h->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert_file);
    if (h->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->key_file);
    if (x->r->cancellable) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_cancel);
    }
    setup_method(c, x);
}

/* One attempt: 0 when it ran (r->status and r->transport_error tell how),
 * or the driver's prepare failure. */
static int attempt(cs_http *h, CURL *c, xfer *x, const char *range, cs_err *e)
{
    cs_http_req *r = x->r;
    cs_http_attempt a = { NULL, NULL };
    int rc = r->prepare(r, range, &a, e);
    if (rc)
        goto out;
    if (!a.url) {
        rc = cs_err_set(e, CS_E_INVAL, "%s request without a URL", r->service ? r->service : "HTTP");
        goto out;
    }
    /* curl would wait for "100 Continue" before large bodies: a round trip
     * per part for nothing. */
    cs_http_attempt_header(&a, "Expect:");
    cs_http_attempt_header(&a, "Accept:");
    setup_transfer(h, c, x, &a);
    x->body_off = 0;
    x->decided = false;
    x->streaming = false;
    r->etag[0] = '\0';
    r->status = 0;
    r->transport_error = NULL;
    cs_buf_reset(&r->resp);
    r->attempts++;
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        r->transport_error = curl_easy_strerror(cc);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (cc != CURLE_OK)
        r->status = 0; /* what came, if anything, is not an answer to act on */
    curl_off_t cl = -1;
    curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    r->content_length = cl > 0 ? (uint64_t)cl : 0;
    long ft = -1;
    curl_easy_getinfo(c, CURLINFO_FILETIME, &ft);
    r->mtime = ft;
out:
    curl_slist_free_all(a.headers);
    free(a.url);
    return rc;
}

/* ---- retries ------------------------------------------------------------------------------ */

bool cs_http_retryable(int transport, long status)
{
    if (transport != CURLE_OK)
        return true; /* refused, reset, timed out, stalled: the next may get through */
    return status == 500 || status == 502 || status == 503 || status == 504 || status == 429;
}

double cs_http_backoff(unsigned attempt_no, double u)
{
    double ceiling = 0.2 * (double)(1u << (attempt_no < 8 ? attempt_no : 8));
    if (ceiling > 10)
        ceiling = 10;
    return ceiling * u;
}

int cs_http_request(cs_http *h, cs_http_req *r, cs_err *e)
{
    xfer x;
    memset(&x, 0, sizeof x);
    x.h = h;
    x.r = r;
    x.curl = handle_get(h);
    r->attempts = 0;
    char range[64];
    int rc = 0;
    for (unsigned n = 0;; n++) {
        /* A download resumes where the last try stopped. */
        if (r->sink && r->delivered)
            snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)r->delivered);
        cs_err_clear(e);
        rc = attempt(h, x.curl, &x, r->sink && r->delivered ? range : NULL, e);
        if (rc)
            break; /* could not even make the request */
        if (x.sink_failed) {
            *e = x.sink_err;
            rc = e->code;
            break;
        }
        bool answered = r->transport_error == NULL;
        if (answered && r->status >= 200 && r->status < 300)
            break;
        if (r->cancellable && cs_cancel_requested()) {
            rc = cs_cancel_error(e);
            break;
        }
        bool again = !answered || cs_http_retryable(CURLE_OK, r->status) || (r->retryable && r->retryable(r));
        if (!again || n >= h->retries) {
            rc = r->error(r, e);
            if (again)
                cs_err_prefix(e, "after %u attempts", n + 1);
            break;
        }
        cs_debug("%s %s %s: %s, retrying", r->service ? r->service : "HTTP", r->method, r->target ? r->target : "",
                 answered ? "server busy" : r->transport_error);
        cs_sleep(cs_http_backoff(n, (double)randombytes_uniform(1000001) / 1e6));
    }
    handle_put(h, x.curl);
    return rc;
}

void cs_http_req_free(cs_http_req *r)
{
    cs_buf_free(&r->resp);
}

#define TOKEN_MAX 4096

int cs_http_bearer_file(const char *path, const char *what, int bad_code, char **header, cs_err *e)
{
    char *text = NULL;
    size_t len = 0;
    if (cs_read_file(path, TOKEN_MAX, &text, &len, e))
        return cs_err_prefix(e, "%s", what);
    size_t n = strcspn(text, "\r\n");
    text[n] = '\0';
    if (n == 0 || strlen(text) != n) {
        free(text);
        return cs_err_set(e, bad_code, "%s %s: the first line holds no token", what, path);
    }
    *header = cs_sprintf("Authorization: Bearer %s", text);
    sodium_memzero(text, n);
    free(text);
    return 0;
}

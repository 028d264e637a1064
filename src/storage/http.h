/* http.h - the transport every HTTP storage driver (s3, azure) uses.
 *
 * Owns: cs_http, one client per storage handle, with
 *   - a pool of libcurl easy handles: a request takes one and gives it
 *     back, so its connection stays open for the next (keep-alive);
 *   - a token bucket: the bytes per second of all its transfers, both ways;
 *   - a pool of part buffers for writers that send objects in parts: at
 *     most part_buffers of them exist (being filled or in flight), however
 *     many writers are open, so memory stays bounded;
 * and cs_http_request, which runs one request to success or final failure.
 * A failed attempt is retried (at most `retries` times, after a wait drawn
 * with full jitter from 0..min(10 s, 0.2 s * 2^attempt)) when it may
 * succeed later: no answer (refused, reset, timed out, stalled for
 * timeout_s), an answer 500, 502, 503, 504 or 429, or one the driver's
 * retryable hook names. A download to a sink resumes where the last
 * attempt stopped, with a Range header. A cancellable request
 * (common/cancel.h) stops at once on a cancel request.
 *
 * The driver plugs in what is its own, per request: prepare (the URL and
 * header lines of each attempt: it signs them; it runs before every
 * attempt, so a dated signature is fresh and covers the Range of a resumed
 * download), retryable (answers its service asks to retry, e.g. S3's 400
 * RequestTimeout) and error (the sentence of a final failure, from the
 * status and body). A driver embeds cs_http_req in its own request struct
 * and finds it again from the callbacks' cs_http_req * (arg or the first
 * member).
 *
 * Must not: know any service's URLs, signatures or error documents; log or
 * report header lines or URLs (they may carry credentials or SAS tokens). */
#ifndef CS_STORAGE_HTTP_H
#define CS_STORAGE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "io/sink.h"

#define CS_HTTP_BODY_MAX (16u << 20) /* largest response body kept in memory (resp) */

typedef struct cs_http cs_http;

typedef struct cs_http_opts {
    const char *ca_file;   /* PEM bundle instead of the system store; NULL: system (copied) */
    const char *cert_file; /* client certificate (PEM) for mutual TLS; NULL: none (copied) */
    const char *key_file;  /* its private key (PEM); NULL: in cert_file (copied) */
    long timeout_s;        /* connect timeout, and the longest stall of a transfer */
    unsigned retries;      /* attempts after the first */
    uint64_t rate_limit;   /* bytes per second over all transfers, 0 = none */
    size_t part_size;      /* bytes of one part buffer (0: no part buffers) */
    unsigned part_buffers; /* part buffers at most */
} cs_http_opts;

/* Never fails (aborts when out of memory, as cs_malloc does). */
cs_http *cs_http_new(const cs_http_opts *o);
void cs_http_free(cs_http *h);

/* ---- one request ----------------------------------------------------------------- */

/* What prepare fills for one attempt (opaque): the URL, and the header
 * lines to send ("Name: value"); both are copied. */
typedef struct cs_http_attempt cs_http_attempt;
void cs_http_attempt_url(cs_http_attempt *a, const char *url);
void cs_http_attempt_header(cs_http_attempt *a, const char *line);

typedef struct cs_http_req cs_http_req;
struct cs_http_req {
    /* in */
    const char *method;    /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const uint8_t *body;   /* request body from memory; NULL: none (POST sends an empty one) */
    size_t body_len;
    cs_sink *sink;         /* a 200/206 answer's body goes here as it comes (written, not
                              closed); resumed with a Range when an attempt fails midway */
    bool cancellable;      /* a cancel request stops it at once (CS_E_CANCELED) */
    const char *service;   /* for debug lines: "S3" */
    const char *target;    /* for debug lines: the key or container, never a URL */
    /* the driver's */
    void *arg;
    /* Required. range is NULL, or "bytes=N-" when a download resumes: send
     * it as the Range header (and sign it). Non-zero ends the request with
     * that error (e set). */
    int (*prepare)(cs_http_req *r, const char *range, cs_http_attempt *a, cs_err *e);
    /* Optional: an answer outside 2xx that the transport would not retry
     * but the service asks to (S3: 400 RequestTimeout). */
    bool (*retryable)(const cs_http_req *r);
    /* Required: the sentence of a final failure (no answer: transport_error
     * is set; else status and resp), returning its code. When the failure
     * was retryable, cs_http_request prefixes "after N attempts". */
    int (*error)(const cs_http_req *r, cs_err *e);
    /* Optional: each response header line of each attempt (name without
     * the colon; value trimmed). */
    void (*on_header)(cs_http_req *r, const char *name, size_t name_len, const char *value, size_t value_len);
    /* out (of the last attempt) */
    long status;             /* HTTP status, 0 when no answer came */
    const char *transport_error; /* why no answer came (static text), or NULL */
    cs_buf resp;             /* the body when not streamed to sink (errors, XML),
                                at most CS_HTTP_BODY_MAX bytes */
    char etag[256];          /* the ETag header as sent (quotes included), or "" */
    uint64_t content_length; /* of the answer, 0 when unknown */
    int64_t mtime;           /* Last-Modified, seconds since the epoch, -1 when unknown */
    uint64_t delivered;      /* bytes handed to sink over all attempts */
    unsigned attempts;
};

/* Run r to success (a 2xx answer: 0) or final failure: a non-zero code
 * with e set by the sink (its error, never retried), prepare, a cancel
 * request, or r->error. The curl handle comes from h's pool and goes back. */
int cs_http_request(cs_http *h, cs_http_req *r, cs_err *e);
/* The header line "Authorization: Bearer <token>" (new string, never to be
 * logged) from the first line of the file at path; the token is wiped from
 * the read buffer. what names the setting in errors; bad_code is the code
 * of a file whose first line holds no token. */
int cs_http_bearer_file(const char *path, const char *what, int bad_code, char **header, cs_err *e);
/* Free what the request holds (resp); r can be run again. */
void cs_http_req_free(cs_http_req *r);

/* ---- part buffers ---------------------------------------------------------------- */

size_t cs_http_part_size(const cs_http *h);
/* A part_size buffer, waiting while all part_buffers are taken: every
 * taken buffer is being filled by a running writer or carried by a request
 * that ends on its own, so the wait ends. */
uint8_t *cs_http_part_take(cs_http *h);
/* Give it back (NULL is fine); a waiting taker wakes. */
void cs_http_part_give(cs_http *h, uint8_t *b);

/* ---- the pure parts, for tests ------------------------------------------------------- */

/* Whether a failed attempt may succeed later: transport is the libcurl
 * code of the attempt (0: an answer came, with status). */
bool cs_http_retryable(int transport, long status);

/* The wait before retry number attempt + 1: u (uniform in [0, 1]) times
 * min(10 s, 0.2 s * 2^attempt) ("full jitter"). */
double cs_http_backoff(unsigned attempt, double u);

/* A token bucket of rate bytes per second (0: unlimited), at most a
 * quarter second of burst; tokens may go negative: a debt to sleep off. */
typedef struct cs_http_bucket {
    double rate;
    double tokens;
    double last; /* seconds, monotonic */
} cs_http_bucket;

/* Take n bytes at time now; the seconds to sleep before sending them. */
double cs_http_bucket_take(cs_http_bucket *b, size_t n, double now);

#endif

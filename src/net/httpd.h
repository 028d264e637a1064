/* httpd.h - the HTTP(S) server plumbing of cassette's daemons (the agent
 * today, the server tomorrow).
 *
 * Owns: one libmicrohttpd daemon on one address (plain HTTP; HTTPS with a
 * certificate and key; mutual TLS when given a client CA: a client without
 * a certificate that CA signed is answered 401 and its request goes no
 * further), the bearer token (read from a file that only its owner may
 * read, compared in constant time before any handler runs), a request
 * body read up to a limit (413 past it, never more than the limit in
 * memory), JSON answers, and the one error shape
 * {"error": "...", "field": "..."} with settings named as request fields.
 * Handlers see a plain cs_http_request and fill a cs_http_answer, so the
 * whole path from outside input to an answer (cs_http_dispatch) runs
 * without a socket in unit tests and fuzzers.
 * Must not: know any route or operation, or log a token, an Authorization
 * header or a request body. */
#ifndef CS_NET_HTTPD_H
#define CS_NET_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* What a handler is asked (all borrowed for the call). */
typedef struct cs_http_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* "/v1/jobs/3" (no query string) */
    const char *query;         /* the query string as sent ("cluster=c1&limit=5", no '?'), or NULL */
    const char *authorization; /* the Authorization header, or NULL */
    const char *epoch;         /* the X-Cassette-Epoch header (a server's fencing token), or NULL */
    const char *body;          /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    bool body_too_big;         /* the body was longer than the limit (it was not kept) */
} cs_http_request;

/* What a handler answers: a status and a JSON document (owned; NULL: none,
 * which only a 204 may be: it is sent without a body), or, body NULL, a
 * text that is not JSON (a page, a metrics exposition): text_len bytes
 * sent with content_type (NULL: "text/plain; charset=utf-8") and, when
 * csp is set, that Content-Security-Policy. Every answer carries
 * X-Content-Type-Options: nosniff and Cache-Control: no-store. */
typedef struct cs_http_answer {
    unsigned status;
    json_t *body;
    const char *text;         /* static (lives as long as the program), or owned when text_owned */
    size_t text_len;
    bool text_owned;          /* text came from malloc: freed with the answer */
    const char *content_type; /* static */
    const char *csp;          /* static */
} cs_http_answer;

typedef void (*cs_http_handler)(void *arg, const cs_http_request *req, cs_http_answer *ans);

#define CS_HTTP_MAX_BODY (1u << 20) /* 1 MiB: a request is a small JSON object */

typedef struct cs_httpd_opts {
    const char *host;          /* address to listen on: "127.0.0.1", "::", "0.0.0.0" */
    int port;
    const char *tls_cert;      /* PEM files; NULL: plain HTTP */
    const char *tls_key;
    const char *tls_client_ca; /* PEM: clients must present a certificate it signed */
    const char *token;         /* the bearer token; NULL: none asked (loopback only, on purpose) */
    bool handler_auth;         /* token NULL: the handler checks the Authorization header itself
                                * (its own tokens and roles), so any address may be served */
    size_t max_body;           /* 0: CS_HTTP_MAX_BODY */
    unsigned max_connections;  /* at once; 0: 16 */
    cs_http_handler handler;
    void *arg;
} cs_httpd_opts;

typedef struct cs_httpd cs_httpd;

/* Listen and serve on threads of the daemon's own (one per connection, at
 * most max_connections). opts (and the strings in it) must outlive the
 * daemon. A bad TLS file or an address that cannot be bound is one error;
 * so is a non-loopback host with neither a token nor handler_auth. */
int cs_httpd_start(const cs_httpd_opts *opts, cs_httpd **out, cs_err *e);
/* Stop accepting, finish the answers under way, free. NULL is fine. */
void cs_httpd_stop(cs_httpd *d);
/* The port the daemon listens on (the one the system chose for port 0). */
int cs_httpd_port(const cs_httpd *d);

/* ---- pure parts (tests, fuzzers) ---- */

/* The whole answer to req: 413 for a body past the limit, 401 without the
 * right bearer token (opts->token NULL: none asked), else the handler's
 * answer. ans->body is set on every path but a 204's. */
void cs_http_dispatch(const cs_httpd_opts *opts, const cs_http_request *req, cs_http_answer *ans);

/* Answer status with text (len bytes) of content_type (static; NULL:
 * text/plain). owned: text came from malloc and the answer frees it. Any
 * earlier body or text is dropped. */
void cs_http_answer_text(cs_http_answer *ans, unsigned status, const char *content_type, const char *text,
                         size_t len, bool owned);
/* Drop what ans holds (its JSON body, its owned text); status stays. */
void cs_http_answer_clear(cs_http_answer *ans);

/* Does the Authorization header carry "Bearer <token>"? Constant time in
 * the token's content (sodium_memcmp). */
bool cs_http_bearer_ok(const char *authorization, const char *token);

/* An error answer: {"error": message with fields named bare, "field": e->field
 * or absent}. */
void cs_http_error(cs_http_answer *ans, unsigned status, const cs_err *e);
/* The same from a message (no field named). */
void cs_http_error_msg(cs_http_answer *ans, unsigned status, const char *msg);

/* text as a JSON string on one line (new reference, never NULL):
 * control characters become spaces, and text that is not UTF-8 (it may
 * quote a path from outside, or be cut inside a character) keeps its
 * ASCII only. */
json_t *cs_http_text_json(const char *text);

/* "HOST:PORT", "[::1]:PORT" or ":PORT" (all addresses) into host (cap
 * bytes) and port; default_host when the host part is empty. */
int cs_http_parse_listen(const char *text, const char *default_host, char *host, size_t cap, int *port,
                         cs_err *e);
/* Is host a loopback address (127.0.0.0/8, ::1, "localhost")? */
bool cs_http_is_loopback(const char *host);

/* Read the bearer token from path: the first line, without surrounding
 * blanks; at least 16 characters. A file that its group or others may
 * read is refused (CS_E_INVAL), as ssh refuses such a key. *out is owned
 * (free with cs_http_token_free, which wipes it). */
int cs_http_read_token(const char *path, char **out, cs_err *e);
void cs_http_token_free(char *token);

#endif

/* httpd.c - libmicrohttpd daemon, bearer token, bodies, JSON answers (see
 * the header). */
#include "net/httpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"

#define MIN_TOKEN 16
#define MAX_TOKEN_FILE 4096

struct cs_httpd {
    const cs_httpd_opts *opts;
    struct MHD_Daemon *mhd;
    char *cert, *key, *client_ca; /* the PEM files' contents, for MHD */
};

/* One request's state across MHD's calls: its body so far. */
typedef struct conn_ctx {
    char *query; /* the query string rebuilt from MHD's arguments, or NULL */
    char *body;
    size_t len, cap;
    bool too_big;
} conn_ctx;

/* ---- pure parts ---- */

json_t *cs_http_text_json(const char *msg)
{
    char *text = cs_strdup(msg && *msg ? msg : "error");
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    json_t *s = json_string(text);
    if (!s) {
        for (char *p = text; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(text);
    }
    free(text);
    return s;
}

void cs_http_answer_clear(cs_http_answer *ans)
{
    json_decref(ans->body);
    ans->body = NULL;
    if (ans->text_owned)
        free((void *)ans->text);
    ans->text = NULL;
    ans->text_len = 0;
    ans->text_owned = false;
    ans->content_type = NULL;
    ans->csp = NULL;
}

void cs_http_answer_text(cs_http_answer *ans, unsigned status, const char *content_type, const char *text,
                         size_t len, bool owned)
{
    cs_http_answer_clear(ans);
    ans->status = status;
    ans->text = text;
    ans->text_len = len;
    ans->text_owned = owned;
    ans->content_type = content_type;
}

void cs_http_error_msg(cs_http_answer *ans, unsigned status, const char *msg)
{
    cs_http_answer_clear(ans);
    ans->status = status;
    ans->body = json_object();
    json_object_set_new(ans->body, "error", cs_http_text_json(msg));
}

void cs_http_error(cs_http_answer *ans, unsigned status, const cs_err *e)
{
    char msg[CS_ERR_MSG_MAX + 256];
    cs_err_render(e, NULL, NULL, msg, sizeof msg);
    cs_http_error_msg(ans, status, msg);
    if (e->field[0])
        json_object_set_new(ans->body, "field", cs_http_text_json(e->field));
}

bool cs_http_bearer_ok(const char *authorization, const char *token)
{
    static const char scheme[] = "Bearer ";
    if (!authorization || !token || strncasecmp(authorization, scheme, sizeof scheme - 1))
        return false;
    const char *given = authorization + sizeof scheme - 1;
    size_t n = strlen(token);
    /* The length is no secret worth hiding (the file says it); the content is. */
    if (strlen(given) != n)
        return false;
    return sodium_memcmp(given, token, n) == 0;
}

void cs_http_dispatch(const cs_httpd_opts *opts, const cs_http_request *req, cs_http_answer *ans)
{
    *ans = (cs_http_answer){ .status = 500 };
    if (opts->token && !cs_http_bearer_ok(req->authorization, opts->token)) {
        cs_http_error_msg(ans, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
        return;
    }
    if (req->body_too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than %zu bytes",
                 opts->max_body ? opts->max_body : (size_t)CS_HTTP_MAX_BODY);
        cs_http_error_msg(ans, 413, msg);
        return;
    }
    opts->handler(opts->arg, req, ans);
    if (!ans->body && !ans->text && ans->status != 204)
        cs_http_error_msg(ans, 500, "the handler gave no answer (a bug)");
}

int cs_http_parse_listen(const char *text, const char *default_host, char *host, size_t cap, int *port,
                         cs_err *e)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon)
        return cs_err_set(e, CS_E_USAGE, "--listen wants HOST:PORT, not \"%s\"", text ? text : "");
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') { /* [::1]:7620 */
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen)) {
        return cs_err_set(e, CS_E_USAGE, "--listen: write an IPv6 address in brackets, [::1]:PORT");
    }
    if (!hlen) {
        h = default_host;
        hlen = strlen(default_host);
    }
    char *end = NULL;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || !colon[1] || *end || p < 1 || p > 65535)
        return cs_err_set(e, CS_E_USAGE, "--listen: port \"%s\" is not between 1 and 65535", colon + 1);
    if (hlen >= cap)
        return cs_err_set(e, CS_E_USAGE, "--listen: host name too long");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

bool cs_http_is_loopback(const char *host)
{
    if (!strcmp(host, "localhost") || !strcmp(host, "::1"))
        return true;
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

int cs_http_read_token(const char *path, char **out, cs_err *e)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return cs_err_sys(e, CS_E_INVAL, errno, "token file %s", path);
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return cs_err_set(e, CS_E_INVAL, "token file %s may be read by others (mode %03o): chmod 600 it", path,
                          (unsigned)(st.st_mode & 0777));
    char *text = NULL;
    int rc = cs_read_file(path, MAX_TOKEN_FILE, &text, NULL, e);
    if (rc)
        return cs_err_prefix(e, "token file");
    char *s = text;
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strcspn(s, "\r\n");
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n < MIN_TOKEN) {
        sodium_memzero(text, strlen(text));
        free(text);
        return cs_err_set(e, CS_E_INVAL, "token file %s: the token must have at least %d characters", path,
                          MIN_TOKEN);
    }
    *out = cs_malloc(n + 1);
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    sodium_memzero(text, strlen(text));
    free(text);
    return 0;
}

void cs_http_token_free(char *token)
{
    if (token) {
        sodium_memzero(token, strlen(token));
        free(token);
    }
}

/* ---- the daemon ---- */

/* The headers every answer carries, then its own. */
static void add_headers(struct MHD_Response *r, const cs_http_answer *ans, const char *content_type)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (ans->csp)
        MHD_add_response_header(r, "Content-Security-Policy", ans->csp);
}

static enum MHD_Result queue(struct MHD_Connection *conn, cs_http_answer *ans, struct MHD_Response *r,
                             const char *content_type)
{
    if (!r) {
        cs_http_answer_clear(ans);
        return MHD_NO;
    }
    add_headers(r, ans, content_type);
    enum MHD_Result ret = MHD_queue_response(conn, ans->status, r);
    MHD_destroy_response(r);
    cs_http_answer_clear(ans);
    return ret;
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, cs_http_answer *ans)
{
    if (ans->status == 204) {
        json_decref(ans->body);
        ans->body = NULL;
        return queue(conn, ans, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), NULL);
    }
    if (!ans->body && ans->text) {
        const char *type = ans->content_type ? ans->content_type : "text/plain; charset=utf-8";
        struct MHD_Response *r = NULL;
        if (ans->text_owned) {
            r = MHD_create_response_from_buffer(ans->text_len, (void *)ans->text, MHD_RESPMEM_MUST_FREE);
            if (r)
                ans->text_owned = false; /* MHD frees it now */
        } else {
            r = MHD_create_response_from_buffer(ans->text_len, (void *)ans->text, MHD_RESPMEM_PERSISTENT);
        }
        return queue(conn, ans, r, type);
    }
    char *text = ans->body ? json_dumps(ans->body, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(ans->body);
    ans->body = NULL;
    if (!text)
        text = cs_strdup("{\"error\":\"out of memory\"}");
    size_t n = strlen(text);
    char *line = cs_realloc(text, n + 2); /* a newline, for curl in a terminal */
    line[n] = '\n';
    line[n + 1] = '\0';
    struct MHD_Response *r = MHD_create_response_from_buffer(n + 1, line, MHD_RESPMEM_MUST_FREE);
    if (!r)
        free(line);
    return queue(conn, ans, r, "application/json");
}

/* Mutual TLS: did the client show a certificate the client CA signed? */
static bool client_cert_ok(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0, status = 0;
    if (!gnutls_certificate_get_peers(s, &n) || !n)
        return false;
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

/* MHD splits the query into decoded arguments: put them back together as
 * "k=v&k2=v2" with each part percent-encoded again where it must be, so
 * a handler parses one plain form whatever the client sent. */
static void add_encoded(cs_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~:,@/", *p))
            cs_buf_addch(b, (char)*p);
        else
            cs_buf_printf(b, "%%%02X", *p);
    }
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    cs_buf *b = cls;
    if (b->len)
        cs_buf_addch(b, '&');
    add_encoded(b, key ? key : "");
    if (value) {
        cs_buf_addch(b, '=');
        add_encoded(b, value);
    }
    return MHD_YES;
}

static char *query_of(struct MHD_Connection *conn)
{
    cs_buf b = { 0 };
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &b);
    if (!b.len) {
        cs_buf_free(&b);
        return NULL;
    }
    return cs_buf_detach(&b);
}

static void keep_body(conn_ctx *c, const char *data, size_t n, size_t max)
{
    if (c->too_big || c->len + n > max) {
        c->too_big = true; /* the rest is read and dropped: memory stays at the limit */
        free(c->body);
        c->body = NULL;
        c->len = c->cap = 0;
        return;
    }
    if (c->len + n + 1 > c->cap) {
        c->cap = c->len + n + 1 > 2 * c->cap ? c->len + n + 1 : 2 * c->cap;
        c->body = cs_realloc(c->body, c->cap);
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    cs_httpd *d = cls;
    conn_ctx *c = *con_cls;
    if (!c) {
        c = cs_calloc(1, sizeof *c);
        c->query = query_of(conn);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_data_size) {
        keep_body(c, upload_data, *upload_data_size, d->opts->max_body ? d->opts->max_body : CS_HTTP_MAX_BODY);
        *upload_data_size = 0;
        return MHD_YES;
    }
    cs_http_answer ans = { 0 };
    if (d->opts->tls_client_ca && !client_cert_ok(conn)) {
        cs_http_error_msg(&ans, 401, "a client certificate signed by the agent's client CA is required");
        return send_answer(conn, &ans);
    }
    cs_http_request req = {
        .method = method,
        .path = url,
        .query = c->query,
        .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .epoch = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Cassette-Epoch"),
        .body = c->body ? c->body : "",
        .body_len = c->len,
        .body_too_big = c->too_big,
    };
    cs_http_dispatch(d->opts, &req, &ans);
    return send_answer(conn, &ans);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx *c = *con_cls;
    if (c) {
        free(c->query);
        free(c->body);
        free(c);
        *con_cls = NULL;
    }
}

static int read_pem(const char *path, const char *what, char **out, cs_err *e)
{
    int rc = cs_read_file(path, 1 << 20, out, NULL, e);
    return rc ? cs_err_prefix(e, "%s", what) : 0;
}

static void httpd_free(cs_httpd *d)
{
    if (d->key)
        sodium_memzero(d->key, strlen(d->key));
    free(d->cert);
    free(d->key);
    free(d->client_ca);
    free(d);
}

int cs_httpd_start(const cs_httpd_opts *opts, cs_httpd **out, cs_err *e)
{
    *out = NULL;
    cs_httpd *d = cs_calloc(1, sizeof *d);
    d->opts = opts;
    int rc = 0;
    if (opts->tls_cert || opts->tls_key) {
        if (!opts->tls_cert || !opts->tls_key) {
            httpd_free(d);
            return cs_err_set(e, CS_E_USAGE, "--tls-cert and --tls-key go together");
        }
        rc = read_pem(opts->tls_cert, "--tls-cert", &d->cert, e);
        if (!rc)
            rc = read_pem(opts->tls_key, "--tls-key", &d->key, e);
    }
    if (!rc && opts->tls_client_ca) {
        rc = !d->cert ? cs_err_set(e, CS_E_USAGE, "--tls-client-ca needs --tls-cert and --tls-key") :
                        read_pem(opts->tls_client_ca, "--tls-client-ca", &d->client_ca, e);
    }
    if (!rc && !opts->token && !opts->handler_auth && !cs_http_is_loopback(opts->host))
        rc = cs_err_set(e, CS_E_USAGE, "serving %s without a bearer token: only a loopback address may be",
                        opts->host);
    if (rc) {
        httpd_free(d);
        return rc;
    }
    struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", opts->port);
    int gai = getaddrinfo(opts->host, port, &hints, &ai);
    if (gai) {
        httpd_free(d);
        return cs_err_set(e, CS_E_USAGE, "--listen %s: %s", opts->host, gai_strerror(gai));
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (d->cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        { d->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, d->cert },
        { d->cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, d->key },
        { d->client_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, d->client_ca },
        { MHD_OPTION_END, 0, NULL },
    };
    /* Unused rows end the array early: move the used ones to the front. */
    struct MHD_OptionItem used[4];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++)
        if (tls[i].option != MHD_OPTION_END)
            used[n++] = tls[i];
    used[n] = tls[3];
    d->mhd = MHD_start_daemon(flags, (uint16_t)opts->port, NULL, NULL, on_request, d,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_CONNECTION_LIMIT, opts->max_connections ? opts->max_connections : 16u,
                              MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
                              MHD_OPTION_ARRAY, used,
                              MHD_OPTION_END);
    int err = errno;
    freeaddrinfo(ai);
    if (!d->mhd) {
        httpd_free(d);
        return cs_err_set(e, CS_E_IO, "cannot listen on %s:%d%s%s (in use, not an address of this machine, or a "
                          "certificate and key that do not match)", opts->host, opts->port, err ? ": " : "",
                          err ? strerror(err) : "");
    }
    *out = d;
    return 0;
}

void cs_httpd_stop(cs_httpd *d)
{
    if (!d)
        return;
    MHD_stop_daemon(d->mhd);
    httpd_free(d);
}

int cs_httpd_port(const cs_httpd *d)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return i ? (int)i->port : 0;
}

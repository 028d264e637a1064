/* net.c - TCP connections with deadlines, plain or TLS (OpenSSL over the
 * same non-blocking socket). Moved out of the CQL client so that any
 * client (CQL today, an HTTP client of the agent later) uses one socket
 * layer; the reasons it gives are the ones the CQL client always gave. */
#include "io/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/log.h"

#define NET_DEFAULT_TIMEOUT_MS 10000

struct cs_net {
    int fd;
    char *host;
    char *peer; /* "host:port", for messages */
    int port;
    SSL_CTX *ssl_ctx;
    SSL *ssl;  /* set for the handshake; all I/O goes through it once tls is true */
    bool tls;  /* the handshake succeeded */
    bool failed; /* a call failed: the session may be out of step, no close_notify */
    int timeout_ms;
    int64_t deadline;
    enum cs_net_fault fault;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cs_net *cs_net_new(const char *host, int port)
{
    cs_net *n = cs_calloc(1, sizeof *n);
    n->fd = -1;
    n->host = cs_strdup(host);
    n->port = port;
    n->peer = cs_sprintf("%s:%d", host, port);
    cs_net_set_timeout(n, NET_DEFAULT_TIMEOUT_MS);
    return n;
}

const char *cs_net_peer(const cs_net *n)
{
    return n->peer;
}

void cs_net_set_timeout(cs_net *n, int timeout_ms)
{
    n->timeout_ms = timeout_ms > 0 ? timeout_ms : NET_DEFAULT_TIMEOUT_MS;
    n->deadline = now_ms() + n->timeout_ms;
}

enum cs_net_fault cs_net_fault(const cs_net *n)
{
    return n ? n->fault : CS_NET_FAILED;
}

bool cs_net_is_tls(const cs_net *n)
{
    return n && n->tls;
}

/* Every failure goes through here: the kind is kept for cs_net_fault and
 * the reason alone goes to e. */
static int fail(cs_net *n, enum cs_net_fault fault, cs_err *e, const char *reason)
{
    n->fault = fault;
    n->failed = true;
    return cs_err_set(e, CS_E_UNAVAIL, "%s", reason);
}

static int timeout_fail(cs_net *n, cs_err *e)
{
    char reason[64];
    snprintf(reason, sizeof reason, "timed out after %d ms", n->timeout_ms);
    return fail(n, CS_NET_TIMEOUT, e, reason);
}

/* Wait until fd is ready for events or the deadline passes: 0 ready,
 * 1 timed out, -1 error (errno set). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 1;
        struct pollfd pfd = { .fd = fd, .events = events };
        int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Wait for events on the connection's socket: 0 ready, else the error is set. */
static int wait_ready(cs_net *n, short events, cs_err *e)
{
    int w = wait_fd(n->fd, events, n->deadline);
    if (w > 0)
        return timeout_fail(n, e);
    if (w < 0)
        return fail(n, CS_NET_FAILED, e, strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------------
 * Connecting. */

/* One address: 0 and the socket in *fd, or the errno of the failure
 * (ETIMEDOUT when the deadline passed). */
static int connect_addr(const struct addrinfo *a, int64_t deadline, int *fd)
{
    int s = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (s < 0)
        return errno;
    int err = 0;
    if (connect(s, a->ai_addr, a->ai_addrlen) < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            int w = wait_fd(s, POLLOUT, deadline);
            socklen_t sl = sizeof err;
            if (w > 0)
                err = ETIMEDOUT;
            else if (w < 0)
                err = errno;
            else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
                err = errno;
        }
    }
    if (err) {
        close(s);
        return err;
    }
    *fd = s;
    return 0;
}

int cs_net_connect(cs_net *n, cs_err *e)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    char portstr[16], reason[256] = "no address found";
    snprintf(portstr, sizeof portstr, "%d", n->port);
    int g = getaddrinfo(n->host, portstr, &hints, &ai);
    if (g)
        return fail(n, CS_NET_FAILED, e, gai_strerror(g));
    enum cs_net_fault fault = CS_NET_FAILED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int err = connect_addr(a, n->deadline, &n->fd);
        if (err == 0) {
            int one = 1; /* small requests and answers: do not wait for Nagle */
            setsockopt(n->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            freeaddrinfo(ai);
            n->fault = CS_NET_OK;
            return 0;
        }
        fault = err == ETIMEDOUT ? CS_NET_TIMEOUT : CS_NET_FAILED;
        if (err == ETIMEDOUT)
            snprintf(reason, sizeof reason, "timed out after %d ms", n->timeout_ms);
        else
            snprintf(reason, sizeof reason, "%s", strerror(err));
    }
    freeaddrinfo(ai);
    return fail(n, fault, e, reason);
}

bool cs_net_is_listening(const char *host, int port, int timeout_ms)
{
    cs_net *n = cs_net_new(host, port);
    cs_net_set_timeout(n, timeout_ms);
    bool up = cs_net_connect(n, NULL) == 0;
    cs_net_close(n, false);
    return up;
}

/* ---------------------------------------------------------------------
 * TLS. OpenSSL reads and writes the socket through a small BIO of our own:
 * the stock socket BIO uses write(2), which raises SIGPIPE when the server
 * has gone, where send(MSG_NOSIGNAL) just fails. */

static int sock_bio_write(BIO *b, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t w = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)w;
}

static int sock_bio_read(BIO *b, char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r = recv(fd, buf, (size_t)len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

static void sock_bio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cassette socket");
    if (m && BIO_meth_set_write(m, sock_bio_write) && BIO_meth_set_read(m, sock_bio_read) &&
        BIO_meth_set_ctrl(m, sock_bio_ctrl) && BIO_meth_set_create(m, sock_bio_create)) {
        sock_bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* Never prompt on the terminal for the passphrase of an encrypted key. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static bool is_ip_literal(const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;
    return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

static bool has(const char *s)
{
    return s && *s;
}

/* The reason of the first OpenSSL error queued on this thread ("certificate
 * verify failed", "wrong version number"), or fallback; the queue is emptied. */
static void tls_reason(char *buf, size_t cap, const char *fallback)
{
    unsigned long code = ERR_get_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    snprintf(buf, cap, "%s", reason ? reason : fallback);
    ERR_clear_error();
}

/* An alert about our client certificate in words an operator can act on
 * (TLS 1.3 sends it after the handshake, on the first read); anything else
 * as "TLS: <OpenSSL's reason>". Returns the kind of failure. */
static enum cs_net_fault explain_tls_alert(const char *reason, char *buf, size_t cap)
{
    if (strstr(reason, "certificate required")) {
        snprintf(buf, cap, "the server requires a client certificate");
        return CS_NET_CERT_REQUIRED;
    }
    if (strstr(reason, "unknown ca") || strstr(reason, "bad certificate") ||
        strstr(reason, "certificate unknown") || strstr(reason, "certificate expired"))
        snprintf(buf, cap, "the server refused the client certificate (TLS alert: %s)", reason);
    else
        snprintf(buf, cap, "TLS: %s", reason);
    return CS_NET_FAILED;
}

/* A file named in the options that OpenSSL could not use: say which. */
static int tls_file_error(const char *what, const char *path, cs_err *e)
{
    char reason[256];
    FILE *f = fopen(path, "r");
    if (!f)
        return cs_err_sys(e, CS_E_INVAL, errno, "cannot read the TLS %s %s", what, path);
    fclose(f);
    tls_reason(reason, sizeof reason, "not usable");
    return cs_err_set(e, CS_E_INVAL, "cannot use the TLS %s %s: %s", what, path, reason);
}

/* The client certificate and its key into the context. */
static int tls_client_cert(cs_net *n, const cs_net_tls_opts *o, cs_err *e)
{
    const char *key = has(o->key_file) ? o->key_file : NULL;
    if (!has(o->cert_file)) {
        if (key)
            return cs_err_set(e, CS_E_INVAL, "a TLS client key (%s) needs its certificate too",
                              key);
        return 0;
    }
    if (SSL_CTX_use_certificate_chain_file(n->ssl_ctx, o->cert_file) != 1)
        return tls_file_error("client certificate", o->cert_file, e);
    if (!key)
        key = o->cert_file; /* a PEM with both */
    if (SSL_CTX_use_PrivateKey_file(n->ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (key == o->cert_file) {
            ERR_clear_error();
            n->fault = CS_NET_NO_KEY;
            return cs_err_set(e, CS_E_INVAL, "no usable private key in the client certificate "
                              "file %s", key);
        }
        return tls_file_error("client key", key, e);
    }
    if (SSL_CTX_check_private_key(n->ssl_ctx) != 1) {
        ERR_clear_error();
        return cs_err_set(e, CS_E_INVAL, "the TLS client key %s does not match the certificate "
                          "%s", key, o->cert_file);
    }
    return 0;
}

/* The context: TLS 1.2+, peer verification against ca_file (or the system
 * store), the optional client certificate. */
static int tls_context(cs_net *n, const cs_net_tls_opts *o, cs_err *e)
{
    ERR_clear_error();
    n->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!n->ssl_ctx)
        return cs_err_set(e, CS_E_NOMEM, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(n->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(n->ssl_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_default_passwd_cb(n->ssl_ctx, no_passphrase);
    SSL_CTX_set_mode(n->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (has(o->ca_file)) {
        if (SSL_CTX_load_verify_locations(n->ssl_ctx, o->ca_file, NULL) != 1)
            return tls_file_error("CA file", o->ca_file, e);
    } else if (SSL_CTX_set_default_verify_paths(n->ssl_ctx) != 1) {
        char reason[256];
        tls_reason(reason, sizeof reason, "unknown error");
        return cs_err_set(e, CS_E_INVAL, "cannot load the system's CA certificates: %s", reason);
    }
    return tls_client_cert(n, o, e);
}

/* The session on the socket, bound to the name the certificate must carry. */
static int tls_session(cs_net *n, cs_err *e)
{
    pthread_once(&sock_bio_once, sock_bio_init);
    BIO *bio = sock_bio_method ? BIO_new(sock_bio_method) : NULL;
    n->ssl = SSL_new(n->ssl_ctx);
    if (!bio || !n->ssl) {
        BIO_free(bio);
        return cs_err_set(e, CS_E_NOMEM, "cannot set up TLS for %s", n->peer);
    }
    BIO_set_data(bio, (void *)(intptr_t)n->fd);
    SSL_set_bio(n->ssl, bio, bio);
    /* The certificate must name the host we were asked to reach. */
    if (is_ip_literal(n->host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(n->ssl), n->host) != 1)
            return cs_err_set(e, CS_E_INVAL, "cannot check the TLS certificate for %s", n->host);
    } else {
        SSL_set_hostflags(n->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(n->ssl, n->host) != 1 || SSL_set_tlsext_host_name(n->ssl, n->host) != 1)
            return cs_err_set(e, CS_E_INVAL, "cannot check the TLS certificate for %s", n->host);
    }
    return 0;
}

/* Why a handshake failed, as "certificate verify failed: self-signed
 * certificate" or "wrong version number (...)"; returns the kind. */
static enum cs_net_fault handshake_reason(cs_net *n, int err, char *buf, size_t cap)
{
    long vr = SSL_get_verify_result(n->ssl);
    char reason[256];
    int saved = errno;
    tls_reason(reason, sizeof reason, "");
    if (vr != X509_V_OK) {
        snprintf(buf, cap, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        return CS_NET_FAILED;
    }
    if (!reason[0] && err == SSL_ERROR_SYSCALL && saved)
        snprintf(reason, sizeof reason, "%s", strerror(saved));
    if (!reason[0] || strstr(reason, "unexpected eof")) {
        snprintf(buf, cap, "the server closed the connection");
        return CS_NET_CLOSED;
    }
    if (strstr(reason, "wrong version number") || strstr(reason, "packet length too long") ||
        strstr(reason, "record layer failure") || strstr(reason, "http request")) {
        snprintf(buf, cap, "%s (the server does not speak TLS on this port)", reason);
        return CS_NET_FAILED;
    }
    return explain_tls_alert(reason, buf, cap);
}

int cs_net_start_tls(cs_net *n, const cs_net_tls_opts *tls, cs_err *e)
{
    static const cs_net_tls_opts none = { 0 };
    int rc;
    n->fault = CS_NET_FAILED;
    if ((rc = tls_context(n, tls ? tls : &none, e)) || (rc = tls_session(n, e))) {
        n->failed = true;
        return rc;
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_connect(n->ssl);
        if (r == 1)
            break;
        int err = SSL_get_error(n->ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if ((rc = wait_ready(n, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, e)))
                return rc;
            continue;
        }
        char reason[512];
        enum cs_net_fault fault = handshake_reason(n, err, reason, sizeof reason);
        return fail(n, fault, e, reason);
    }
    n->tls = true;
    n->fault = CS_NET_OK;
    cs_debug("connection to %s uses %s, %s", n->peer, SSL_get_version(n->ssl),
             SSL_get_cipher_name(n->ssl));
    return 0;
}

/* ---------------------------------------------------------------------
 * Reads and writes. */

/* An SSL_read/SSL_write that failed with err (not WANT_*). */
static int tls_io_error(cs_net *n, int err, cs_err *e)
{
    if (err == SSL_ERROR_ZERO_RETURN)
        return fail(n, CS_NET_CLOSED, e, "the server closed the TLS session");
    if (err == SSL_ERROR_SYSCALL && errno) {
        int saved = errno;
        ERR_clear_error();
        /* A server that wants a client certificate sends its alert and
         * closes; our first write may meet the reset before we read it. */
        bool reset = saved == ECONNRESET || saved == EPIPE;
        return fail(n, reset ? CS_NET_RESET : CS_NET_FAILED, e, strerror(saved));
    }
    char reason[256], msg[300];
    tls_reason(reason, sizeof reason, "the server closed the connection");
    enum cs_net_fault fault = explain_tls_alert(reason, msg, sizeof msg);
    return fail(n, fault, e, msg);
}

/* A socket error that is not "try again". */
static int sock_error(cs_net *n, int err, cs_err *e)
{
    bool reset = err == ECONNRESET || err == EPIPE;
    return fail(n, reset ? CS_NET_RESET : CS_NET_FAILED, e, strerror(err));
}

/* One SSL_write_ex/send of at most len bytes: 0 with *done set, or the error. */
static int write_once(cs_net *n, const uint8_t *p, size_t len, size_t *done, cs_err *e)
{
    *done = 0;
    if (n->tls) {
        ERR_clear_error();
        errno = 0;
        int ok = SSL_write_ex(n->ssl, p, len, done);
        if (ok)
            return 0;
        int err = SSL_get_error(n->ssl, ok);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            return tls_io_error(n, err, e);
        return wait_ready(n, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, e);
    }
    ssize_t w = send(n->fd, p, len, MSG_NOSIGNAL); /* no SIGPIPE on a closed peer */
    if (w > 0) {
        *done = (size_t)w;
        return 0;
    }
    if (w < 0 && errno == EINTR)
        return 0;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return sock_error(n, errno, e);
    return wait_ready(n, POLLOUT, e);
}

int cs_net_write(cs_net *n, const void *buf, size_t len, cs_err *e)
{
    const uint8_t *p = buf;
    while (len) {
        size_t w;
        int rc = write_once(n, p, len, &w, e);
        if (rc)
            return rc;
        p += w;
        len -= w;
    }
    return 0;
}

/* One SSL_read_ex/recv of at most cap bytes: 0 with *got set (0 bytes and
 * *eof at a clean end, 0 bytes alone when it had to wait), or the error. */
static int read_once(cs_net *n, uint8_t *p, size_t cap, size_t *got, bool *eof, cs_err *e)
{
    *got = 0;
    *eof = false;
    if (n->tls) {
        ERR_clear_error();
        errno = 0;
        int ok = SSL_read_ex(n->ssl, p, cap, got);
        if (ok)
            return 0;
        int err = SSL_get_error(n->ssl, ok);
        if (err == SSL_ERROR_ZERO_RETURN) {
            *eof = true;
            return 0;
        }
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            return tls_io_error(n, err, e);
        return wait_ready(n, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, e);
    }
    ssize_t r = recv(n->fd, p, cap, 0);
    if (r > 0) {
        *got = (size_t)r;
        return 0;
    }
    if (r == 0) {
        *eof = true;
        return 0;
    }
    if (errno == EINTR)
        return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return sock_error(n, errno, e);
    return wait_ready(n, POLLIN, e);
}

int cs_net_read(cs_net *n, void *buf, size_t len, cs_err *e)
{
    uint8_t *p = buf;
    while (len) {
        size_t r;
        bool eof;
        int rc = read_once(n, p, len, &r, &eof, e);
        if (rc)
            return rc;
        if (eof)
            return fail(n, CS_NET_CLOSED, e, n->tls ? "the server closed the TLS session"
                                                     : "the server closed the connection");
        p += r;
        len -= r;
    }
    return 0;
}

int cs_net_read_some(cs_net *n, void *buf, size_t cap, size_t *got, cs_err *e)
{
    bool eof = false;
    *got = 0;
    while (cap && *got == 0 && !eof) {
        int rc = read_once(n, buf, cap, got, &eof, e);
        if (rc)
            return rc;
    }
    return 0;
}

void cs_net_close(cs_net *n, bool goodbye)
{
    if (!n)
        return;
    if (n->ssl) {
        /* A close_notify if the session is sound; never wait for the answer. */
        if (goodbye && n->tls && !n->failed)
            SSL_shutdown(n->ssl);
        SSL_free(n->ssl);
    }
    SSL_CTX_free(n->ssl_ctx);
    ERR_clear_error();
    if (n->fd >= 0)
        close(n->fd);
    free(n->host);
    free(n->peer);
    free(n);
}

/* test_net.c - io/net against peers on loopback run by the test itself: a
 * closed port fails at once, a listener that never answers ends at the
 * deadline, reads and writes round trip and a close is seen, a plain port
 * fails the TLS handshake with a reason, and TLS against an in-process
 * OpenSSL server with a self-signed certificate made here (trusted through
 * ca_file, refused without it, the host name checked against the
 * certificate), with bad certificate settings refused before any I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "io/net.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A listening socket on 127.0.0.1 and a free port. */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---------------------------------------------------------------------
 * A peer in a thread: accepts one connection and plays its part. */

enum peer_mode {
    PEER_ECHO,     /* echo 4 bytes, then close */
    PEER_HTTP,     /* answer whatever comes like a web server, then close */
    PEER_CLOSE,    /* close at once */
    PEER_TLS_ECHO, /* TLS handshake (cert/key below), echo 4 bytes, close_notify */
};

typedef struct peer {
    int lfd, port;
    enum peer_mode mode;
    const char *cert, *key; /* PEM files, for PEER_TLS_ECHO */
    pthread_t thread;
} peer;

/* Wait for the client to close (so it never sees a reset it did not cause). */
static void drain(int fd)
{
    char buf[512];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (poll(&p, 1, 5000) == 1 && recv(fd, buf, sizeof buf, 0) > 0)
        ;
}

static void tls_echo(peer *p, int fd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = NULL;
    char buf[4];
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, p->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, p->key, SSL_FILETYPE_PEM) != 1)
        goto out;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1 && SSL_read(ssl, buf, sizeof buf) == (int)sizeof buf &&
        SSL_write(ssl, buf, sizeof buf) == (int)sizeof buf)
        SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    struct pollfd pl = { .fd = p->lfd, .events = POLLIN };
    if (poll(&pl, 1, 5000) != 1)
        return NULL;
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[512];
    static const char http[] = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    switch (p->mode) {
    case PEER_ECHO:
        if (recv(fd, buf, 4, MSG_WAITALL) == 4)
            send(fd, buf, 4, MSG_NOSIGNAL);
        break;
    case PEER_HTTP:
        if (recv(fd, buf, sizeof buf, 0) > 0)
            send(fd, http, sizeof http - 1, MSG_NOSIGNAL);
        break;
    case PEER_CLOSE:
        break;
    case PEER_TLS_ECHO:
        tls_echo(p, fd);
        drain(fd);
        break;
    }
    shutdown(fd, SHUT_WR);
    if (p->mode != PEER_TLS_ECHO)
        drain(fd);
    close(fd);
    return NULL;
}

static void peer_start(peer *p, enum peer_mode mode)
{
    p->lfd = listen_loopback(&p->port);
    p->mode = mode;
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_stop(peer *p)
{
    pthread_join(p->thread, NULL);
    close(p->lfd);
}

/* ---------------------------------------------------------------------
 * Plain TCP. */

static void test_refused_fast(void **state)
{
    (void)state;
    int port, fd = listen_loopback(&port);
    close(fd); /* nothing listens there now */
    cs_net *n = cs_net_new("127.0.0.1", port);
    cs_net_set_timeout(n, 5000);
    cs_err e;
    int64_t t0 = now_ms();
    assert_int_equal(cs_net_connect(n, &e), CS_E_UNAVAIL);
    assert_true(now_ms() - t0 < 2000);
    assert_string_equal(e.msg, "Connection refused");
    assert_int_equal(cs_net_fault(n), CS_NET_FAILED);
    char peer_name[64];
    snprintf(peer_name, sizeof peer_name, "127.0.0.1:%d", port);
    assert_string_equal(cs_net_peer(n), peer_name);
    cs_net_close(n, true);
    assert_false(cs_net_is_listening("127.0.0.1", port, 1000));
}

static void test_silent_listener_deadline(void **state)
{
    (void)state;
    int port, lfd = listen_loopback(&port); /* the kernel accepts; nobody answers */
    assert_true(cs_net_is_listening("127.0.0.1", port, 1000));
    cs_net *n = cs_net_new("127.0.0.1", port);
    cs_err e;
    assert_int_equal(cs_net_connect(n, &e), 0);
    cs_net_set_timeout(n, 200);
    char buf[4];
    int64_t t0 = now_ms();
    assert_int_equal(cs_net_read(n, buf, sizeof buf, &e), CS_E_UNAVAIL);
    int64_t took = now_ms() - t0;
    assert_true(took >= 150 && took < 3000);
    assert_string_equal(e.msg, "timed out after 200 ms");
    assert_int_equal(cs_net_fault(n), CS_NET_TIMEOUT);
    /* The TLS handshake with it ends at its deadline too. */
    cs_net_close(n, true);
    n = cs_net_new("127.0.0.1", port);
    assert_int_equal(cs_net_connect(n, &e), 0);
    cs_net_set_timeout(n, 200);
    assert_int_equal(cs_net_start_tls(n, NULL, &e), CS_E_UNAVAIL);
    assert_string_equal(e.msg, "timed out after 200 ms");
    assert_int_equal(cs_net_fault(n), CS_NET_TIMEOUT);
    assert_false(cs_net_is_tls(n));
    cs_net_close(n, true);
    close(lfd);
}

static void test_round_trip_and_close(void **state)
{
    (void)state;
    peer p = { 0 };
    peer_start(&p, PEER_ECHO);
    cs_net *n = cs_net_new("127.0.0.1", p.port);
    cs_err e;
    assert_int_equal(cs_net_connect(n, &e), 0);
    assert_int_equal(cs_net_write(n, "ping", 4, &e), 0);
    char buf[8] = "";
    assert_int_equal(cs_net_read(n, buf, 4, &e), 0);
    assert_memory_equal(buf, "ping", 4);
    /* The peer has closed its side: read_some sees the end, read fails. */
    size_t got = 99;
    assert_int_equal(cs_net_read_some(n, buf, sizeof buf, &got, &e), 0);
    assert_int_equal(got, 0);
    assert_int_equal(cs_net_read(n, buf, 1, &e), CS_E_UNAVAIL);
    assert_string_equal(e.msg, "the server closed the connection");
    assert_int_equal(cs_net_fault(n), CS_NET_CLOSED);
    cs_net_close(n, true);
    peer_stop(&p);
}

/* ---------------------------------------------------------------------
 * TLS. */

typedef struct tls_files {
    char dir[64], cert[96], key[96], both[96];
} tls_files;

/* A self-signed certificate naming only DNS:localhost, its key, and a file
 * holding the certificate alone under "both" (no key in it). */
static void make_cert(tls_files *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/test_net.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
    snprintf(f->both, sizeof f->both, "%s/certonly.pem", f->dir);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(pkey);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"cassette test",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost");
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(san);
    assert_non_null(bc);
    X509_add_ext(x, san, -1);
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(san);
    X509_EXTENSION_free(bc);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *out = fopen(f->cert, "w");
    assert_non_null(out);
    assert_int_equal(PEM_write_X509(out, x), 1);
    fclose(out);
    out = fopen(f->both, "w");
    assert_int_equal(PEM_write_X509(out, x), 1);
    fclose(out);
    out = fopen(f->key, "w");
    assert_int_equal(PEM_write_PrivateKey(out, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(out);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void remove_cert(tls_files *f)
{
    unlink(f->cert);
    unlink(f->key);
    unlink(f->both);
    rmdir(f->dir);
}

/* Connect to a TLS echo peer as host and start TLS with opts. */
static int tls_attempt(tls_files *f, const char *host, const cs_net_tls_opts *o, cs_net **out,
                       cs_err *e, peer *p)
{
    p->cert = f->cert;
    p->key = f->key;
    peer_start(p, PEER_TLS_ECHO);
    cs_net *n = cs_net_new(host, p->port);
    cs_net_set_timeout(n, 5000);
    int rc = cs_net_connect(n, e);
    if (!rc)
        rc = cs_net_start_tls(n, o, e);
    *out = n;
    return rc;
}

static void test_tls_trusted_echo(void **state)
{
    (void)state;
    tls_files f;
    make_cert(&f);
    peer p = { 0 };
    cs_net *n;
    cs_err e;
    cs_net_tls_opts o = { .ca_file = f.cert };
    int rc = tls_attempt(&f, "localhost", &o, &n, &e, &p);
    assert_int_equal(rc, 0);
    assert_true(cs_net_is_tls(n));
    assert_int_equal(cs_net_write(n, "pong", 4, &e), 0);
    char buf[4];
    assert_int_equal(cs_net_read(n, buf, 4, &e), 0);
    assert_memory_equal(buf, "pong", 4);
    /* The server's close_notify: a clean end for read_some. */
    size_t got = 99;
    assert_int_equal(cs_net_read_some(n, buf, sizeof buf, &got, &e), 0);
    assert_int_equal(got, 0);
    cs_net_close(n, true);
    peer_stop(&p);
    remove_cert(&f);
}

static void test_tls_name_and_trust_checked(void **state)
{
    (void)state;
    tls_files f;
    make_cert(&f);
    peer p = { 0 };
    cs_net *n;
    cs_err e;
    /* The certificate names localhost, not the address. */
    cs_net_tls_opts o = { .ca_file = f.cert };
    assert_int_equal(tls_attempt(&f, "127.0.0.1", &o, &n, &e, &p), CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "certificate verify failed: IP address mismatch"));
    cs_net_close(n, false);
    peer_stop(&p);
    /* Not trusted by the system's store. */
    cs_net_tls_opts sys = { 0 };
    assert_int_equal(tls_attempt(&f, "localhost", &sys, &n, &e, &p), CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "certificate verify failed: "));
    assert_non_null(strstr(e.msg, "self-signed"));
    cs_net_close(n, false);
    peer_stop(&p);
    remove_cert(&f);
}

static void test_tls_bad_settings(void **state)
{
    (void)state;
    tls_files f;
    make_cert(&f);
    int port, lfd = listen_loopback(&port);
    cs_err e;
    struct {
        cs_net_tls_opts o;
        const char *want;
        enum cs_net_fault fault;
    } cases[] = {
        { { .ca_file = "/nonexistent/ca.pem" }, "cannot read the TLS CA file /nonexistent/ca.pem",
          CS_NET_FAILED },
        { { .ca_file = f.cert, .cert_file = f.both }, "no usable private key in the client "
          "certificate file", CS_NET_NO_KEY },
        { { .ca_file = f.cert, .key_file = f.key }, "needs its certificate too", CS_NET_FAILED },
        { { .ca_file = f.key }, "cannot use the TLS CA file", CS_NET_FAILED },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_net *n = cs_net_new("localhost", port);
        assert_int_equal(cs_net_connect(n, &e), 0);
        assert_int_equal(cs_net_start_tls(n, &cases[i].o, &e), CS_E_INVAL);
        if (!strstr(e.msg, cases[i].want))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
        assert_int_equal(cs_net_fault(n), cases[i].fault);
        cs_net_close(n, true);
    }
    close(lfd);
    remove_cert(&f);
}

static void test_tls_against_plain_servers(void **state)
{
    (void)state;
    cs_err e;
    peer p = { 0 };
    peer_start(&p, PEER_HTTP);
    cs_net *n = cs_net_new("127.0.0.1", p.port);
    assert_int_equal(cs_net_connect(n, &e), 0);
    assert_int_equal(cs_net_start_tls(n, NULL, &e), CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "(the server does not speak TLS on this port)"));
    cs_net_close(n, false);
    peer_stop(&p);

    peer_start(&p, PEER_CLOSE);
    n = cs_net_new("127.0.0.1", p.port);
    assert_int_equal(cs_net_connect(n, &e), 0);
    assert_int_equal(cs_net_start_tls(n, NULL, &e), CS_E_UNAVAIL);
    assert_string_equal(e.msg, "the server closed the connection");
    assert_int_equal(cs_net_fault(n), CS_NET_CLOSED);
    cs_net_close(n, false);
    peer_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_fast),
        cmocka_unit_test(test_silent_listener_deadline),
        cmocka_unit_test(test_round_trip_and_close),
        cmocka_unit_test(test_tls_trusted_echo),
        cmocka_unit_test(test_tls_name_and_trust_checked),
        cmocka_unit_test(test_tls_bad_settings),
        cmocka_unit_test(test_tls_against_plain_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

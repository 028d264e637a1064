/* net.h - one TCP connection to a server, plain or TLS, with deadlines.
 *
 * Owns: name resolution and a non-blocking connect (each address
 * getaddrinfo gives, in turn, until one accepts), TLS over the same socket
 * with OpenSSL (TLS 1.2 or later; the server's certificate checked against
 * a CA file or the system's store and required to name the host we were
 * asked to reach, a DNS name or an IP address; an optional client
 * certificate; never a passphrase prompt), reads and writes that wait with
 * poll(2) and give up at a deadline, and closing. No SIGPIPE: a write to a
 * peer that has gone fails with EPIPE instead (TLS included).
 *
 * Deadlines: cs_net_set_timeout starts one (now + timeout); every call after
 * it shares it until the next, so one request of a protocol (its write and
 * all the reads of its answer) gets one budget. Messages say "timed out
 * after <timeout> ms".
 *
 * Errors: failing to reach or to talk to the server is CS_E_UNAVAIL with
 * the reason alone ("Connection refused", "timed out after 2000 ms", "the
 * server closed the connection", "certificate verify failed: ...") for the
 * caller to put into a sentence that names the server and what it was
 * doing; cs_net_fault says which kind of failure it was, so a protocol can
 * add its own advice. Bad TLS settings (a CA file, certificate or key that
 * cannot be used) are CS_E_INVAL with a whole sentence naming the file.
 *
 * Must not: know any protocol above bytes (CQL, HTTP), retry, or log
 * anything but a debug line naming the TLS version and cipher. One
 * connection per thread at a time. */
#ifndef CS_IO_NET_H
#define CS_IO_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef struct cs_net cs_net;

/* Which kind of failure the last call met (CS_NET_OK after a success). */
enum cs_net_fault {
    CS_NET_OK = 0,
    CS_NET_FAILED,        /* anything not below: resolution, refused, TLS protocol errors */
    CS_NET_TIMEOUT,       /* the deadline passed */
    CS_NET_CLOSED,        /* the server closed the connection (or the TLS session) */
    CS_NET_RESET,         /* the server reset the connection (ECONNRESET, EPIPE) */
    CS_NET_CERT_REQUIRED, /* the server wants a client certificate we did not send */
    CS_NET_NO_KEY,        /* a client certificate file without its key, and no key file */
};

typedef struct cs_net_tls_opts {
    const char *ca_file;   /* PEM; the system's CA store when NULL or empty */
    const char *cert_file; /* client certificate chain (PEM); NULL or empty: none */
    const char *key_file;  /* its private key (PEM); NULL or empty: taken from cert_file */
} cs_net_tls_opts;

/* A connection to host (a name or an address) and port, not yet made. The
 * timeout is 10 s until cs_net_set_timeout says otherwise. */
cs_net *cs_net_new(const char *host, int port);
/* "host:port", for messages. */
const char *cs_net_peer(const cs_net *n);
/* Start a deadline timeout_ms (> 0) from now for the calls that follow. */
void cs_net_set_timeout(cs_net *n, int timeout_ms);
enum cs_net_fault cs_net_fault(const cs_net *n);

/* Resolve and connect within the deadline; the last address's failure is
 * the one reported. */
int cs_net_connect(cs_net *n, cs_err *e);
/* TLS handshake on the connected socket within the deadline; from then on
 * every read and write is encrypted. */
int cs_net_start_tls(cs_net *n, const cs_net_tls_opts *tls, cs_err *e);
bool cs_net_is_tls(const cs_net *n);

/* Write all len bytes / read exactly len bytes, within the deadline. */
int cs_net_write(cs_net *n, const void *buf, size_t len, cs_err *e);
int cs_net_read(cs_net *n, void *buf, size_t len, cs_err *e);
/* Read what is there, at most cap bytes (waiting for at least one), into
 * buf; *got is 0 when the server closed the connection cleanly. */
int cs_net_read_some(cs_net *n, void *buf, size_t cap, size_t *got, cs_err *e);

/* Close. With goodbye, a TLS session that is sound sends its close_notify
 * (never waiting for the answer); without it the socket is just closed (after
 * a failure). NULL is fine. */
void cs_net_close(cs_net *n, bool goodbye);

/* Does something accept TCP connections at host:port within timeout_ms? */
bool cs_net_is_listening(const char *host, int port, int timeout_ms);

#endif

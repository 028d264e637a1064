/* cql.c - the connection of the CQL client (v5, or v4 when the server
 * offers no v5): set-up over io/net (TCP, optionally TLS), the v5-then-v4
 * negotiation, STARTUP and SASL PLAIN, request/answer with a deadline,
 * and paged QUERY.
 *
 * The pieces it stands on: cql_codec (envelopes, RESULT and ERROR bodies,
 * result accessors), cql_value (column types and values), cql_segment (the
 * v5 segment layer), cql_wire (the protocol's notations), io/net (the
 * socket and TLS).
 *
 * v4 and v5 share one code path: v5 only adds the segment layer under the
 * envelopes once STARTUP is answered. Failures of the socket come from
 * io/net as reasons; here they become sentences that name the node and add
 * the advice a Cassandra operator needs (a port that wants TLS, a client
 * certificate). */
#include "cassandra/cql.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/cql_codec.h"
#include "cassandra/cql_segment.h"
#include "cassandra/cql_wire.h"
#include "common/buf.h"
#include "common/log.h"
#include "io/net.h"

#define CQL_DEFAULT_PORT 9042
#define CQL_DEFAULT_TIMEOUT_MS 10000

struct cql_conn {
    cs_net *net;        /* the socket, plain or TLS */
    bool client_cert;   /* TLS with a client certificate of ours */
    int timeout_ms;     /* connect, TLS handshake, and each request */
    char *peer;         /* "host:port", for messages */
    int16_t stream;     /* stream id of the next request */
    int version;        /* protocol version of this connection: 5, or 4 after a fallback */
    bool negotiated;    /* the server accepted STARTUP: answers must carry our version */
    bool framed;        /* v5 after STARTUP's answer: envelopes travel in segments */
    cql_seg_reader in;  /* framed input; its source is this connection */
    bool ready;         /* STARTUP finished: errors no longer say "cannot connect" */
    bool broken;        /* a transport or framing failure left the stream unusable */
};

/* ---------------------------------------------------------------------
 * Socket I/O through io/net. */

/* After this the connection cannot be trusted to be at a frame boundary. */
static int transport_error(cql_conn *c, cs_err *e, const char *reason)
{
    c->broken = true;
    if (!c->ready)
        return cs_err_set(e, CS_E_UNAVAIL, "cannot connect to %s: %s", c->peer, reason);
    return cs_err_set(e, CS_E_UNAVAIL, "connection to Cassandra at %s failed: %s", c->peer,
                      reason);
}

/* A failure of the socket or the TLS session (why holds io/net's reason),
 * with the advice its kind and the state of the connection suggest. */
static int net_error(cql_conn *c, const cs_err *why, cs_err *e)
{
    enum cs_net_fault fault = cs_net_fault(c->net);
    bool tls = cs_net_is_tls(c->net);
    char reason[CS_ERR_MSG_MAX + 100];
    if (fault == CS_NET_CLOSED && !c->ready && !tls)
        /* The likeliest cause is a port that wants TLS. */
        snprintf(reason, sizeof reason, "the server closed the connection before answering "
                                        "(does the node require TLS on this port?)");
    else if (fault == CS_NET_RESET && !c->negotiated && !tls)
        /* What a node that requires TLS does to a plaintext STARTUP: it drops
         * it unread. */
        snprintf(reason, sizeof reason, "the server reset the connection before answering "
                                        "(does the node require TLS on this port?)");
    else if (fault == CS_NET_RESET && tls && !c->ready && !c->client_cert)
        /* A node that wants a client certificate sends its alert and
         * closes; our STARTUP may meet the reset before we read the alert. */
        snprintf(reason, sizeof reason, "%s (does the node require a client certificate? set "
                 "cert_file and key_file)", why->msg);
    else if (fault == CS_NET_CERT_REQUIRED)
        snprintf(reason, sizeof reason, "%s (set cert_file and key_file)", why->msg);
    else
        snprintf(reason, sizeof reason, "%s", why->msg);
    return transport_error(c, e, reason);
}

static int conn_write(cql_conn *c, const void *buf, size_t n, cs_err *e)
{
    cs_err why;
    if (cs_net_write(c->net, buf, n, &why))
        return net_error(c, &why, e);
    return 0;
}

static int conn_read(cql_conn *c, void *buf, size_t n, cs_err *e)
{
    cs_err why;
    if (cs_net_read(c->net, buf, n, &why))
        return net_error(c, &why, e);
    return 0;
}

static int conn_src_read(void *src, uint8_t *buf, size_t n, cs_err *e)
{
    return conn_read(src, buf, n, e);
}

/* ---------------------------------------------------------------------
 * Frames: one request, its answer. */

/* A response frame: body is the whole body; payload/plen what follows the
 * optional tracing id, warnings and custom payload. */
typedef struct frame {
    uint8_t opcode;
    int version; /* from the header, response bit cleared */
    uint8_t *body;
    const uint8_t *payload;
    size_t plen;
} frame;

/* Before STARTUP is answered any response version passes (an older server
 * answers ours in its own, and startup() decides); after, only ours. */
static int check_header(const cql_conn *c, const uint8_t *h, size_t *len, cs_err *e)
{
    int version = h[0] & 0x7f;
    if (!(h[0] & CQL_RESPONSE_BIT) || version == 0) {
        if (!c->negotiated)
            return cs_err_set(e, CS_E_PROTO, "cannot connect to %s: the answer is not a CQL "
                              "frame (is this the node's native transport port?)", c->peer);
        return cs_err_set(e, CS_E_PROTO, "%s: the server's answer is not a CQL response frame",
                          c->peer);
    }
    if (c->negotiated && version != c->version)
        return cs_err_set(e, CS_E_PROTO,
                          "the server answered in CQL protocol version %d on a v%d connection",
                          version, c->version);
    return cql_envelope_len(h, len, e);
}

/* The next n bytes of the envelope stream: straight off the socket until
 * STARTUP is answered, out of segments after that on v5. */
static int in_read(cql_conn *c, void *buf, size_t n, cs_err *e)
{
    if (c->framed)
        return cql_seg_read(&c->in, buf, n, e);
    return conn_src_read(c, buf, n, e);
}

/* Read frames until the one answering our current stream id; others (a
 * server EVENT, or nothing at all in practice) are dropped. */
static int read_frame(cql_conn *c, frame *f, cs_err *e)
{
    uint8_t h[CQL_HEADER_LEN];
    size_t len = 0;
    int rc;
    for (;;) {
        if ((rc = in_read(c, h, sizeof h, e)))
            goto fail;
        /* A TLS record (alert 0x15, handshake 0x16) where a frame belongs. */
        if (!cs_net_is_tls(c->net) && !c->framed && (h[0] == 0x15 || h[0] == 0x16) &&
            h[1] == 0x03) {
            rc = transport_error(c, e, "the server answered with TLS (the node requires TLS "
                                       "on this port)");
            goto fail;
        }
        if ((rc = check_header(c, h, &len, e)))
            goto fail;
        f->body = cs_malloc(len);
        if ((rc = in_read(c, f->body, len, e)))
            goto fail;
        if (c->framed && (rc = cql_seg_envelope_done(&c->in, e)))
            goto fail;
        if ((int16_t)((unsigned)h[2] << 8 | h[3]) == c->stream)
            break;
        free(f->body);
        f->body = NULL;
    }
    f->opcode = h[4];
    f->version = h[0] & 0x7f;
    if ((rc = cql_response_payload(h[1], f->version, f->body, len, &f->payload, &f->plen, e)))
        goto fail;
    return 0;
fail:
    c->broken = true; /* out of step with the server's frames */
    free(f->body);
    f->body = NULL;
    return rc;
}

/* One request onto the wire, cut into segments once framing is on. The
 * segment copy is wiped like the request: an AUTH_RESPONSE holds the
 * password. */
static int send_envelope(cql_conn *c, const cs_buf *req, cs_err *e)
{
    if (!c->framed)
        return conn_write(c, req->data, req->len, e);
    size_t n = cql_segments_size(req->len);
    uint8_t *out = cs_malloc(n);
    cql_segments_encode((const uint8_t *)req->data, req->len, out);
    int rc = conn_write(c, out, n, e);
    explicit_bzero(out, n);
    free(out);
    return rc;
}

/* Send one request frame (already finished in req) and read its answer. */
static int request(cql_conn *c, cs_buf *req, frame *f, cs_err *e)
{
    int rc;
    memset(f, 0, sizeof *f);
    if (c->broken)
        return cs_err_set(e, CS_E_UNAVAIL, "connection to Cassandra at %s is unusable after an "
                                           "earlier failure", c->peer);
    cs_net_set_timeout(c->net, c->timeout_ms); /* one budget for the request and its answer */
    if ((rc = send_envelope(c, req, e)))
        return rc;
    rc = read_frame(c, f, e);
    /* Next request gets a fresh id so a late answer to this one is ignored. */
    c->stream = (int16_t)((c->stream + 1) & 0x7fff);
    return rc;
}

static int unexpected_opcode(cql_conn *c, uint8_t op, const char *after, cs_err *e)
{
    c->broken = true;
    return cs_err_set(e, CS_E_PROTO, "unexpected CQL message 0x%02x from %s in reply to %s",
                      (unsigned)op, c->peer, after);
}

/* ---------------------------------------------------------------------
 * Connection set-up and queries. */

/* TLS on the connected socket (io/net), the failure worded for an operator
 * who configures a Cassandra node. */
static int tls_start(cql_conn *c, const cql_conn_opts *o, cs_err *e)
{
    cs_net_tls_opts tls = { .ca_file = o->ca_file, .cert_file = o->cert_file,
                            .key_file = o->key_file };
    cs_err why;
    cs_net_set_timeout(c->net, c->timeout_ms);
    int rc = cs_net_start_tls(c->net, &tls, &why);
    if (!rc)
        return 0;
    c->broken = true;
    enum cs_net_fault fault = cs_net_fault(c->net);
    if (rc != CS_E_UNAVAIL && fault == CS_NET_NO_KEY)
        return cs_err_set(e, rc, "%s: set key_file", why.msg);
    if (rc != CS_E_UNAVAIL)
        return cs_err_set(e, rc, "%s", why.msg);
    const char *hint = "";
    if (fault == CS_NET_CLOSED || fault == CS_NET_TIMEOUT)
        hint = " (does the node have TLS enabled on this port?)";
    else if (fault == CS_NET_CERT_REQUIRED)
        hint = " (set cert_file and key_file)";
    return cs_err_set(e, CS_E_UNAVAIL, "TLS handshake with %s failed: %s%s", c->peer, why.msg,
                      hint);
}

/* SASL PLAIN for PasswordAuthenticator: token "\0user\0password". The
 * request buffer is wiped afterwards since it held the password. */
static int authenticate(cql_conn *c, const cql_conn_opts *o, const frame *challenge,
                        cs_err *e)
{
    cs_buf req = CS_BUF_INIT;
    frame f = { 0 };
    int rc;
    if (!o->username) {
        rc = cs_err_set(e, CS_E_INVAL, "cannot connect to %s: server requires authentication; "
                        "set username and password", c->peer);
        goto out;
    }
    (void)challenge; /* the authenticator class name; PLAIN is all we speak */
    const char *pw = o->password ? o->password : "";
    if (strlen(o->username) + strlen(pw) + 2 > INT32_MAX) {
        rc = cs_err_set(e, CS_E_INVAL, "cannot connect to %s: username or password too long",
                        c->peer);
        goto out;
    }
    cql_encode_auth_response(&req, c->version, c->stream, o->username, pw);
    if ((rc = request(c, &req, &f, e)))
        goto out;
    if (f.opcode == OP_AUTH_SUCCESS) {
        rc = 0;
    } else if (f.opcode == OP_ERROR) {
        c->broken = true;
        cs_err why;
        cs_err_clear(&why);
        rc = cql_decode_error(f.payload, f.plen, f.version, &why);
        const char *text = why.msg;
        if (strncmp(text, "bad credentials: ", 17) == 0)
            text += 17;
        rc = cs_err_set(e, rc, "cannot connect to %s: authentication failed for user %s: %s",
                        c->peer, o->username, text);
    } else if (f.opcode == OP_AUTH_CHALLENGE) {
        c->broken = true;
        rc = cs_err_set(e, CS_E_PROTO, "cannot connect to %s: the server's authenticator asked "
                        "for more than SASL PLAIN", c->peer);
    } else {
        rc = unexpected_opcode(c, f.opcode, "AUTH_RESPONSE", e);
    }
out:
    if (req.data)
        explicit_bzero(req.data, req.len);
    cs_buf_free(&req);
    free(f.body);
    return rc;
}

/* The answer to STARTUP carries our version: from now on every answer
 * must, and on v5 everything after it travels in segments (the spec's
 * "initial handshake" is the only unframed exchange). */
static void negotiated(cql_conn *c)
{
    c->negotiated = true;
    c->framed = c->version >= CQL_V5;
}

/* STARTUP {"CQL_VERSION": "3.0.0"} at c->version, then READY or the
 * authentication. *lower is set when the server does not speak c->version
 * (e then holds its answer) and a new connection at v4 may succeed. */
static int startup(cql_conn *c, const cql_conn_opts *o, bool *lower, cs_err *e)
{
    cs_buf req = CS_BUF_INIT;
    frame f = { 0 };
    int rc;
    cql_encode_startup(&req, c->version, c->stream);
    if ((rc = request(c, &req, &f, e)))
        goto out;
    if (f.opcode == OP_ERROR &&
        cql_startup_rejects_version(c->version, f.version, f.payload, f.plen)) {
        c->broken = true;
        *lower = true;
        rc = cql_decode_error(f.payload, f.plen, f.version, e);
        goto out;
    }
    if (f.version != c->version) {
        c->broken = true;
        rc = cs_err_set(e, CS_E_PROTO, "the server answered in CQL protocol version %d; "
                        "cassette speaks v4 and v5", f.version);
        goto out;
    }
    switch (f.opcode) {
    case OP_READY:
        negotiated(c);
        rc = 0;
        break;
    case OP_AUTHENTICATE:
        negotiated(c);
        rc = authenticate(c, o, &f, e);
        break;
    case OP_ERROR:
        c->broken = true;
        rc = cql_decode_error(f.payload, f.plen, f.version, e);
        cs_err_prefix(e, "cannot connect to %s", c->peer);
        break;
    default:
        rc = unexpected_opcode(c, f.opcode, "STARTUP", e);
        break;
    }
out:
    cs_buf_free(&req);
    free(f.body);
    return rc;
}

/* One connection attempt at the given protocol version: TCP, TLS, STARTUP
 * and authentication. */
static int connect_at(const cql_conn_opts *opts, int port, int version, cql_conn **out,
                      bool *lower, cs_err *e)
{
    cql_conn *c = cs_calloc(1, sizeof *c);
    cs_err why;
    int rc;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : CQL_DEFAULT_TIMEOUT_MS;
    c->net = cs_net_new(opts->host, port);
    c->peer = cs_strdup(cs_net_peer(c->net));
    c->client_cert = opts->cert_file && *opts->cert_file;
    c->version = version;
    c->in.read = conn_src_read;
    c->in.src = c;
    cs_net_set_timeout(c->net, c->timeout_ms);
    if ((rc = cs_net_connect(c->net, &why))) {
        rc = net_error(c, &why, e);
        goto out;
    }
    if ((opts->tls || (opts->ca_file && *opts->ca_file)) && (rc = tls_start(c, opts, e)))
        goto out;
    if ((rc = startup(c, opts, lower, e)))
        goto out;
    c->ready = true;
    *out = c;
    c = NULL;
out:
    cql_close(c);
    return rc;
}

int cql_connect(const cql_conn_opts *opts, cql_conn **out, cs_err *e)
{
    cql_conn *c = NULL;
    bool lower = false;
    cs_err first;
    *out = NULL;
    if (!opts || !opts->host || !*opts->host)
        return cs_err_set(e, CS_E_INVAL, "no Cassandra host given");
    int port = opts->port ? opts->port : CQL_DEFAULT_PORT;
    if (port < 1 || port > 65535)
        return cs_err_set(e, CS_E_INVAL, "Cassandra port %d is not in 1..65535", port);
    /* v5 first; a server that does not speak it (3.x) says so in a
     * protocol error and closes, so v4 needs a connection of its own. */
    cs_err_clear(&first);
    int rc = connect_at(opts, port, CQL_V5, &c, &lower, &first);
    if (rc && lower) {
        cs_debug("CQL server %s:%d does not speak protocol v5 (%s); reconnecting with v4",
                 opts->host, port, first.msg);
        rc = connect_at(opts, port, CQL_V4, &c, &lower, e);
    } else if (rc && e) {
        *e = first;
    }
    if (rc)
        return rc;
    cs_debug("CQL connection to %s speaks native protocol v%d%s", c->peer, c->version,
             c->framed ? " (segments with CRC24/CRC32)" : "");
    *out = c;
    return 0;
}

int cql_protocol_version(const cql_conn *c)
{
    return c ? c->version : 0;
}

void cql_close(cql_conn *c)
{
    if (!c)
        return;
    cs_net_close(c->net, c->ready && !c->broken);
    free(c->in.buf);
    free(c->peer);
    free(c);
}

/* One page: send, read, decode. *next gets the paging state, if any. */
static int query_page(cql_conn *c, cs_buf *req, cql_result **page, uint8_t **next,
                      size_t *next_len, cs_err *e)
{
    frame f;
    int rc = request(c, req, &f, e);
    if (rc)
        goto out;
    if (f.opcode == OP_ERROR)
        rc = cql_decode_error(f.payload, f.plen, f.version, e);
    else if (f.opcode == OP_RESULT)
        rc = cql_decode_result(f.payload, f.plen, page, next, next_len, e);
    else
        rc = unexpected_opcode(c, f.opcode, "QUERY", e);
out:
    free(f.body);
    return rc;
}

int cql_query(cql_conn *c, const char *cql, cql_result **out, cs_err *e)
{
    return cql_query_at(c, cql, CQL_CL_ONE, out, e);
}

int cql_query_at(cql_conn *c, const char *cql, uint16_t consistency, cql_result **out,
                 cs_err *e)
{
    cs_buf req = CS_BUF_INIT;
    cql_result *res = NULL, *page = NULL;
    uint8_t *ps = NULL, *next = NULL;
    size_t ps_len = 0, next_len = 0;
    int rc;
    *out = NULL;
    if (!c || !cql) {
        rc = cs_err_set(e, CS_E_INVAL, "cql_query needs a connection and a statement");
        goto out;
    }
    if (!cql_consistency_valid(consistency)) {
        rc = cs_err_set(e, CS_E_INVAL, "consistency level 0x%04x is not one CQL knows",
                        (unsigned)consistency);
        goto out;
    }
    size_t cql_len = strlen(cql);
    if (cql_len > INT32_MAX) {
        rc = cs_err_set(e, CS_E_INVAL, "CQL statement of %zu bytes is too long", cql_len);
        goto out;
    }
    /* Pages follow until the server stops announcing more. */
    do {
        cql_encode_query(&req, c->version, c->stream, cql, cql_len, consistency, ps, ps_len);
        if ((rc = query_page(c, &req, &page, &next, &next_len, e)))
            goto out;
        if (!res)
            res = page;
        else if ((rc = cql_result_append(res, page, e)))
            goto out;
        page = NULL;
        free(ps);
        ps = next;
        ps_len = next_len;
        next = NULL;
    } while (ps);
    *out = res;
    res = NULL;
out:
    cql_result_free(res);
    free(ps);
    cs_buf_free(&req);
    return rc;
}


/* cql.h - a native CQL protocol client (the subset cassette needs),
 * speaking v5 when the server offers it (Cassandra 4.0 and later) and v4
 * otherwise (3.x).
 *
 * Owns: one TCP connection to a Cassandra node, optionally over TLS
 * (io/net: server certificate and host name verified, optional client
 * certificate), the version negotiation (STARTUP at v5; a protocol error
 * about the version means a new connection at v4), the v5 segment layer
 * (uncompressed, CRC24 header and CRC32 payload checks), the frame
 * ("envelope" in v5) codec, STARTUP and PasswordAuthenticator (SASL
 * PLAIN) authentication, QUERY with automatic paging at a chosen
 * consistency, and the decoding of RESULT frames (Void, Rows, Set_keyspace,
 * Schema_change) and ERROR frames into cs_err. Values are decoded into a
 * small tree of cql_value with a text form and the raw bytes of every
 * scalar. Blocking I/O with a deadline on every read and write (TLS
 * included). One connection per thread. A debug log line names the
 * protocol version negotiated.
 * Must not: know what the queries mean (schema, topology are cassandra/),
 * or put a password in a message or a log line.
 *
 * Pieces: cql.c (the connection: set-up, negotiation, authentication,
 * requests, paging), cql_codec.c (envelopes, RESULT and ERROR bodies,
 * result accessors), cql_value.c (column types and values), cql_segment.c
 * (v5 segments), cql_wire.h (the protocol's notations); the socket, TLS and
 * deadlines are io/net's. Their internal headers are for those files only. */
#ifndef CS_CQL_H
#define CS_CQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct cql_conn cql_conn;
typedef struct cql_result cql_result;

typedef struct cql_conn_opts {
    const char *host;     /* name or address */
    int port;             /* 9042 by default when 0 */
    int timeout_ms;       /* connect (TCP, TLS handshake, STARTUP) and per-request; 10000 when 0 */
    const char *username; /* NULL: no authentication offered */
    const char *password; /* never logged */
    /* TLS (client_encryption_options). The server's certificate is checked
     * against ca_file (PEM; the system's CA store when NULL) and must name
     * host (a DNS name, or an IP address in a subjectAltName). */
    bool tls;              /* implied by ca_file */
    const char *ca_file;
    const char *cert_file; /* client certificate chain (PEM), for require_client_auth */
    const char *key_file;  /* its private key (PEM); NULL: taken from cert_file */
} cql_conn_opts;

int cql_connect(const cql_conn_opts *opts, cql_conn **out, cs_err *e);
void cql_close(cql_conn *c); /* NULL is fine */
/* The protocol version the connection speaks: 5 or 4 (0 for NULL). */
int cql_protocol_version(const cql_conn *c);

/* Consistency levels ([consistency] of the protocol). */
enum cql_consistency {
    CQL_CL_ANY = 0x0000,
    CQL_CL_ONE = 0x0001,
    CQL_CL_TWO = 0x0002,
    CQL_CL_THREE = 0x0003,
    CQL_CL_QUORUM = 0x0004,
    CQL_CL_ALL = 0x0005,
    CQL_CL_LOCAL_QUORUM = 0x0006,
    CQL_CL_EACH_QUORUM = 0x0007,
    CQL_CL_SERIAL = 0x0008,
    CQL_CL_LOCAL_SERIAL = 0x0009,
    CQL_CL_LOCAL_ONE = 0x000A,
};

/* "ONE", "local_quorum", ... (case-insensitive) -> *out. An unknown name is
 * CS_E_INVAL with a one-line message listing the valid ones. */
int cql_consistency_parse(const char *name, uint16_t *out, cs_err *e);
/* "LOCAL_QUORUM" for CQL_CL_LOCAL_QUORUM; "unknown" for a value outside
 * the protocol's list. */
const char *cql_consistency_name(uint16_t consistency);

/* Run one statement at the given consistency; all pages are fetched and
 * concatenated. DDL statements return an empty result. A server ERROR
 * becomes cs_err with code CS_E_EXTERNAL and a sentence naming the kind of
 * error ("syntax error: ...", "unavailable: not enough replicas (required
 * 2, alive 1) at LOCAL_QUORUM", ...); the connection stays usable. */
int cql_query_at(cql_conn *c, const char *cql, uint16_t consistency, cql_result **out,
                 cs_err *e);
/* cql_query_at(c, cql, CQL_CL_ONE, ...): enough for the node-local system
 * tables cassette reads. */
int cql_query(cql_conn *c, const char *cql, cql_result **out, cs_err *e);

enum cql_value_kind {
    CQL_NULL = 0,
    CQL_SCALAR, /* text holds the value's text form */
    CQL_LIST,   /* list, set or tuple: n items */
    CQL_MAP,    /* map: n pairs, items[2i] key, items[2i+1] value */
};

typedef struct cql_value {
    enum cql_value_kind kind;
    /* Text form of a scalar: text/ascii/varchar as is; int, bigint, smallint,
     * tinyint, counter and varint (of any length) in decimal; decimal as
     * Python's str(Decimal) writes it ("123.45", "-0.001", "0.00",
     * "1.2345E+6", "1E-7": plain unless the exponent is positive or the
     * first digit's is below -6); duration as Cassandra writes it
     * ("1y2mo3d4h5m6s7ms8us9ns", "-10d", but "0s" for zero); boolean
     * "true"/"false"; uuid/timeuuid canonical lowercase 8-4-4-4-12; inet
     * dotted quad or IPv6 text; timestamp milliseconds since the epoch in
     * decimal; double/float with %.17g/%.9g; date the raw unsigned day
     * number (2^31 is 1970-01-01); time nanoseconds since midnight; blob
     * and custom types "0x" + lowercase hex. A zero-length value of a
     * non-string type (legal, and not null) is "" ("0x" for a blob or a
     * custom type). A UDT is a CQL_MAP of field name to value, a tuple a
     * CQL_LIST; fields missing from the end of a value are CQL_NULL. A
     * vector<T, n> (Cassandra 5.0, a custom type on the wire) is a CQL_LIST
     * of its n elements; other custom types are scalars in hex. */
    char *text;
    /* For hashing: a scalar's bytes exactly as the server sent them
     * (raw_len may be 0; raw is then still not NULL). For a text type raw
     * is the text itself (raw_len counts past an embedded NUL, where text
     * as a C string stops); for a UDT's field-name key, the name. NULL and 0
     * for CQL_NULL, CQL_LIST and CQL_MAP (hash their items). Owned by the
     * value, freed with it (it shares the text's allocation). */
    const uint8_t *raw;
    size_t raw_len;
    size_t n;
    struct cql_value *items;
} cql_value;

size_t cql_result_rows(const cql_result *r);
/* True when the statement changed the schema (a SCHEMA_CHANGE result); a
 * CREATE ... IF NOT EXISTS of something that exists answers without one. */
bool cql_result_schema_changed(const cql_result *r);
size_t cql_result_cols(const cql_result *r);
const char *cql_result_colname(const cql_result *r, size_t col);
/* Column index by name, or -1. */
int cql_result_col(const cql_result *r, const char *name);
/* Never NULL for a valid row/col; kind CQL_NULL for a null cell. */
const cql_value *cql_result_value(const cql_result *r, size_t row, size_t col);
/* Text of a scalar cell by column name, or NULL if null/absent/not scalar. */
const char *cql_result_text(const cql_result *r, size_t row, const char *col);
void cql_result_free(cql_result *r); /* NULL is fine */

/* Pure decoding, exposed for unit tests and the fuzzer: parse the body of a
 * RESULT frame (opcode 0x08, after the 9-byte header). For a Rows result,
 * *paging_state (caller frees, may be NULL) receives the paging state if the
 * has_more_pages flag is set. */
int cql_decode_result(const uint8_t *body, size_t len, cql_result **out,
                      uint8_t **paging_state, size_t *paging_len, cs_err *e);
/* Parse the body of an ERROR frame of protocol version (4 or 5: they
 * differ in Read_failure and Write_failure) into e (returns e->code):
 * CS_E_EXTERNAL with "<kind>: <details or the server's message>",
 * CS_E_PROTO if the code or message is cut short (details that are cut
 * short are left out). */
int cql_decode_error(const uint8_t *body, size_t len, int version, cs_err *e);

/* The fallback decision, pure for tests: true when the ERROR body a server
 * answered a STARTUP at version tried with, in a frame of version answered,
 * says it does not speak that version (a protocol error in an older
 * version, or naming the protocol version or a beta), so a new connection
 * at v4 is worth trying. Always false for tried <= 4. */
bool cql_startup_rejects_version(int tried, int answered, const uint8_t *body, size_t len);

/* ---- Protocol v5 segments, pure, for tests and the fuzzer. A segment is
 * a 6-byte header (3 bytes little-endian: 17-bit payload length, a
 * self-contained flag, 6 bits of padding; then their CRC24), the payload
 * and its CRC32 (little-endian). */
#define CQL_SEGMENT_HEADER_LEN 6
#define CQL_SEGMENT_TRAILER_LEN 4
#define CQL_SEGMENT_MAX_PAYLOAD ((size_t)(128 * 1024 - 1))

/* Cassandra's CRC24 (init 0x875060, polynomial 0x1974F0B) over n bytes. */
uint32_t cql_crc24(const uint8_t *p, size_t n);
/* CRC-32 as zlib's crc32(crc, p, n): cql_crc32(0, "123456789", 9) is
 * 0xCBF43926. Segment payloads are checked with it over the bytes FA 2D 55
 * CA and then the payload. */
uint32_t cql_crc32(uint32_t crc, const uint8_t *p, size_t n);
/* Bytes cql_segments_encode writes for n bytes of envelopes. */
size_t cql_segments_size(size_t n);
/* n bytes of envelopes into segments at out (cql_segments_size(n) bytes):
 * one self-contained segment if they fit, else segments of at most
 * CQL_SEGMENT_MAX_PAYLOAD bytes that are not (only for one envelope). */
void cql_segments_encode(const uint8_t *p, size_t n, uint8_t *out);
/* Check a segment header's CRC24 and take it apart; CS_E_PROTO with
 * "header CRC24 mismatch" if it fails. */
int cql_segment_header_decode(const uint8_t *h, size_t *payload_len, bool *self_contained,
                              cs_err *e);
/* Check n payload bytes against their 4-byte trailer; CS_E_PROTO with
 * "payload CRC32 mismatch" if it fails. */
int cql_segment_payload_check(const uint8_t *p, size_t n, const uint8_t *trailer, cs_err *e);
/* Called with each envelope: its 9-byte header and its body. 0 to go on;
 * anything else stops cql_segments_decode, which returns it. */
typedef int (*cql_envelope_fn)(void *arg, const uint8_t *header, const uint8_t *body,
                               size_t len);
/* Cut len bytes of segments into envelopes with the same reader the
 * connection uses: every CRC checked, an envelope begun in a
 * self-contained segment must end in it, one that spans segments must fill
 * them alone. CS_E_PROTO on the first fault, including input that stops
 * inside a segment or an envelope. */
int cql_segments_decode(const uint8_t *in, size_t len, cql_envelope_fn fn, void *arg,
                        cs_err *e);

#endif

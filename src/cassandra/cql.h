/* cql.h - a native CQL protocol v4 client (the subset cassette needs).
 *
 * Owns: one TCP connection to a Cassandra node, optionally over TLS
 * (OpenSSL: server certificate and host name verified, optional client
 * certificate), the frame codec, STARTUP and PasswordAuthenticator (SASL
 * PLAIN) authentication, QUERY with automatic paging at a chosen
 * consistency, and the decoding of RESULT frames (Void, Rows, Set_keyspace,
 * Schema_change) and ERROR frames into cs_err. Values are decoded into a
 * small tree of cql_value with a text form for every scalar. Blocking I/O
 * with a deadline on every read and write (TLS included). One connection
 * per thread.
 * Must not: know what the queries mean (schema, topology are cassandra/),
 * or put a password in a message or a log line. */
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
     * tinyint, counter, varint(<=64 bit) in decimal; boolean "true"/"false";
     * uuid/timeuuid canonical lowercase 8-4-4-4-12; inet dotted quad or IPv6
     * text; timestamp milliseconds since the epoch in decimal; double/float
     * with %.17g/%.9g; date the raw unsigned day number (2^31 is
     * 1970-01-01); time nanoseconds since midnight; blob and anything else
     * (decimal, duration, custom, varint over 64 bit) "0x" + lowercase hex.
     * A zero-length value of a fixed-width type (legal, and not null) is "".
     * A UDT is a CQL_MAP of field name to value, a tuple a CQL_LIST; fields
     * missing from the end of a value are CQL_NULL. */
    char *text;
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
/* Parse the body of an ERROR frame into e (returns e->code): CS_E_EXTERNAL
 * with "<kind>: <details or the server's message>", CS_E_PROTO if the code
 * or message is cut short (details that are cut short are left out). */
int cql_decode_error(const uint8_t *body, size_t len, cs_err *e);

#endif

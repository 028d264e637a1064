/* cql_codec.h - the frame codec of the CQL client (internal to
 * cassandra/cql*.c; the rest of cassette uses cql.h).
 *
 * Owns: encoding the requests cassette sends (STARTUP, AUTH_RESPONSE,
 * QUERY with paging) as whole envelopes; decoding what a response envelope
 * holds: its header's length, the extras before its message (tracing id,
 * warnings, custom payload), RESULT bodies (Void, Rows, Set_keyspace,
 * Schema_change) into cql_result, ERROR bodies into cs_err (the public
 * cql_decode_result and cql_decode_error of cql.h live here), consistency
 * level names, and the result accessors of cql.h. Pure: no I/O.
 * Must not: know about sockets, segments or the connection's state. */
#ifndef CS_CQL_CODEC_H
#define CS_CQL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cassandra/cql.h"
#include "common/buf.h"
#include "common/err.h"

/* Rows asked for per page of a QUERY. */
#define CQL_PAGE_SIZE 5000

/* Each request replaces what req held with one whole envelope of the given
 * protocol version and stream id. */
/* STARTUP {"CQL_VERSION": "3.0.0"}. */
void cql_encode_startup(cs_buf *req, int version, int16_t stream);
/* AUTH_RESPONSE with the SASL PLAIN token "\0user\0password"; the caller
 * checks that the token fits an [int] and wipes req afterwards. */
void cql_encode_auth_response(cs_buf *req, int version, int16_t stream, const char *user,
                              const char *password);
/* QUERY <query><consistency><flags><page_size>[<paging_state>]; the flags
 * are a [byte] in v4, an [int] in v5. cql_len fits an [int] (checked by the
 * caller); ps is NULL on the first page. */
void cql_encode_query(cs_buf *req, int version, int16_t stream, const char *cql,
                      size_t cql_len, uint16_t consistency, const uint8_t *ps, size_t ps_len);

/* The body length in an envelope header (CQL_HEADER_LEN bytes), within the
 * protocol's limit; CS_E_PROTO outside it. */
int cql_envelope_len(const uint8_t *header, size_t *len, cs_err *e);
/* Step over what a response body may carry before its message, by the
 * header's flags, into *payload and *plen (pointing into body). The server's
 * warnings go to the debug log. */
int cql_response_payload(uint8_t flags, int version, const uint8_t *body, size_t len,
                         const uint8_t **payload, size_t *plen, cs_err *e);

/* Is consistency one of the protocol's levels? */
bool cql_consistency_valid(uint16_t consistency);

/* Move the rows of the page src to the end of dst; src is consumed (freed)
 * either way. CS_E_PROTO when their columns differ. */
int cql_result_append(cql_result *dst, cql_result *src, cs_err *e);

#endif

/* cql_wire.h - the CQL protocol's wire notations, shared by the pieces of
 * the CQL client (internal to cassandra/cql*.c; the rest of cassette uses
 * cql.h).
 *
 * Owns: the envelope header's size and the protocol versions spoken, the
 * opcodes, and a bounds-checked reader over untrusted bytes ([short],
 * [int], [string], [bytes]). Each read names what it reads, so a short body
 * yields a sentence like "malformed CQL RESULT: column name is truncated"
 * rather than a bare code.
 * Must not: allocate, or trust a length before checking it against the
 * bytes that are left. */
#ifndef CS_CQL_WIRE_H
#define CS_CQL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CQL_HEADER_LEN 9
#define CQL_V4 4
#define CQL_V5 5
#define CQL_RESPONSE_BIT 0x80 /* set in the version byte of every response */
#define CQL_MAX_BODY ((size_t)256 * 1024 * 1024) /* the protocol's frame limit */

enum cql_opcode {
    OP_ERROR = 0x00,
    OP_STARTUP = 0x01,
    OP_READY = 0x02,
    OP_AUTHENTICATE = 0x03,
    OP_QUERY = 0x07,
    OP_RESULT = 0x08,
    OP_AUTH_CHALLENGE = 0x0E,
    OP_AUTH_RESPONSE = 0x0F,
    OP_AUTH_SUCCESS = 0x10,
};

typedef struct cql_rd {
    const uint8_t *p;
    size_t left;
    const char *what; /* "RESULT", "ERROR", "collection value", ... */
} cql_rd;

static inline int rd_fail(const cql_rd *r, cs_err *e, const char *field)
{
    cs_err_set(e, CS_E_PROTO, "malformed CQL %s: %s is truncated", r->what, field);
    return CS_E_PROTO;
}

static inline int rd_raw(cql_rd *r, size_t n, const uint8_t **out, const char *field,
                         cs_err *e)
{
    if (r->left < n)
        return rd_fail(r, e, field);
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static inline int rd_u16(cql_rd *r, uint16_t *v, const char *field, cs_err *e)
{
    const uint8_t *p;
    if (rd_raw(r, 2, &p, field, e))
        return CS_E_PROTO;
    *v = (uint16_t)((unsigned)p[0] << 8 | p[1]);
    return 0;
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline int rd_i32(cql_rd *r, int32_t *v, const char *field, cs_err *e)
{
    const uint8_t *p;
    if (rd_raw(r, 4, &p, field, e))
        return CS_E_PROTO;
    *v = (int32_t)be32(p);
    return 0;
}

/* [string]: a [short] length and that many bytes. */
static inline int rd_string(cql_rd *r, const uint8_t **s, size_t *n, const char *field,
                            cs_err *e)
{
    uint16_t len;
    if (rd_u16(r, &len, field, e) || rd_raw(r, len, s, field, e))
        return CS_E_PROTO;
    *n = len;
    return 0;
}

/* [bytes]: an [int] length and that many bytes; a negative length is null
 * (*null set, no bytes follow). */
static inline int rd_bytes(cql_rd *r, const uint8_t **s, size_t *n, bool *null,
                           const char *field, cs_err *e)
{
    int32_t len;
    if (rd_i32(r, &len, field, e))
        return CS_E_PROTO;
    *null = len < 0;
    *n = 0;
    *s = NULL;
    if (len < 0)
        return 0;
    if (rd_raw(r, (size_t)len, s, field, e))
        return CS_E_PROTO;
    *n = (size_t)len;
    return 0;
}

#endif

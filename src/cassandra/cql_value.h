/* cql_value.h - column types and values of the CQL client (internal to
 * cassandra/cql*.c).
 *
 * Owns: parsing an [option] column type (native types, list, set, map,
 * tuple, UDT, and custom types, of which Cassandra 5.0's VectorType becomes
 * a vector) and decoding one cell of that type into a cql_value tree with
 * the text form and raw bytes cql.h describes. Nesting is bounded; element
 * counts are checked against the bytes left before anything is allocated.
 * Must not: know about frames, RESULT bodies or the connection. */
#ifndef CS_CQL_VALUE_H
#define CS_CQL_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "cassandra/cql.h"
#include "cassandra/cql_wire.h"
#include "common/err.h"

enum cql_type_id {
    T_CUSTOM = 0x00,
    T_ASCII = 0x01,
    T_BIGINT = 0x02,
    T_BLOB = 0x03,
    T_BOOLEAN = 0x04,
    T_COUNTER = 0x05,
    T_DECIMAL = 0x06,
    T_DOUBLE = 0x07,
    T_FLOAT = 0x08,
    T_INT = 0x09,
    T_TIMESTAMP = 0x0B,
    T_UUID = 0x0C,
    T_VARCHAR = 0x0D,
    T_VARINT = 0x0E,
    T_TIMEUUID = 0x0F,
    T_INET = 0x10,
    T_DATE = 0x11,
    T_TIME = 0x12,
    T_SMALLINT = 0x13,
    T_TINYINT = 0x14,
    T_DURATION = 0x15,
    T_LIST = 0x20,
    T_MAP = 0x21,
    T_SET = 0x22,
    T_UDT = 0x30,
    T_TUPLE = 0x31,
    /* Not a protocol id: a custom type whose class is Cassandra's
     * VectorType (CQL vector<T, n>, Cassandra 5.0), decoded from its name. */
    T_VECTOR = 0x1000,
};


/* A parsed [option] type: list/set/vector have one sub type, map two, a
 * tuple n, a UDT n with field names; a vector its dimension. Only lives
 * while a RESULT body is decoded. */
typedef struct cql_type {
    uint16_t id;
    size_t n;
    struct cql_type *sub;
    char **names; /* UDT field names, n of them */
    uint32_t dim; /* T_VECTOR: the number of elements */
} cql_type;

/* One [option] from r into t (zeroed by the caller). On failure t may hold
 * part of a tree: cql_type_free releases it. */
int cql_type_parse(cql_rd *r, cql_type *t, cs_err *e);
void cql_type_free(cql_type *t);

/* One [bytes] cell of type t from r: CQL_NULL when its length is negative.
 * On failure *out may hold a partial tree: cql_value_free releases it. */
int cql_cell_decode(cql_rd *r, const cql_type *t, cql_value *out, cs_err *e);
/* Frees what v holds (not v itself). */
void cql_value_free(cql_value *v);

#endif

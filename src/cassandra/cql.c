/* cql.c - native CQL protocol client (v5, or v4 when the server offers no
 * v5): transport, v5 segments, frame codec, decoding.
 *
 * Layout: (1) a bounds-checked reader over untrusted bytes, (2) column type
 * parsing and value decoding into cql_value trees, (3) RESULT and ERROR body
 * decoding, (3b) v5 segments: CRC24/CRC32, encoding, and a reader that cuts
 * a stream of segments back into envelopes, (4) the public result accessors,
 * (5) frame encoding and poll-based socket I/O with a deadline, plain or TLS
 * (OpenSSL over the same non-blocking socket), (6) connect/TLS
 * handshake/STARTUP with the v5-then-v4 negotiation/auth and paged QUERY.
 *
 * v4 and v5 share one code path: the envelope ("frame" in v4) layout and the
 * message bodies are the same but for the few places that test
 * c->version (QUERY flags width, the failure count in ERROR bodies). v5 only
 * adds the segment layer under the envelopes once STARTUP is answered.
 *
 * Everything under (1)-(3b) is pure and fuzzed: every length that comes from
 * the peer is checked against the bytes actually left before it is used,
 * nesting is bounded, and element counts are checked against the remaining
 * input before anything is allocated for them. */
#include "cassandra/cql.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "io/net.h"

#define CQL_HEADER_LEN 9
#define CQL_V4 4
#define CQL_V5 5
#define CQL_RESPONSE_BIT 0x80 /* set in the version byte of every response */
#define CQL_MAX_BODY ((size_t)256 * 1024 * 1024) /* the protocol's frame limit */
#define CQL_PAGE_SIZE 5000
#define CQL_DEFAULT_PORT 9042
#define CQL_DEFAULT_TIMEOUT_MS 10000
/* Real schemas nest a handful of levels; the bound keeps recursion (type
 * parsing and value decoding follow the same tree) off the stack's edge. */
#define CQL_MAX_TYPE_DEPTH 32
/* A no_metadata result carries a column count with nothing to check it
 * against; no real table comes near this. */
#define CQL_MAX_COLS 65536

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

enum cql_frame_flag {
    FRAME_COMPRESSED = 0x01,
    FRAME_TRACING = 0x02,
    FRAME_CUSTOM_PAYLOAD = 0x04,
    FRAME_WARNING = 0x08,
};

enum cql_result_kind {
    RESULT_VOID = 1,
    RESULT_ROWS = 2,
    RESULT_SET_KEYSPACE = 3,
    RESULT_PREPARED = 4,
    RESULT_SCHEMA_CHANGE = 5,
};

enum cql_rows_flag {
    ROWS_GLOBAL_TABLES_SPEC = 0x0001,
    ROWS_HAS_MORE_PAGES = 0x0002,
    ROWS_NO_METADATA = 0x0004,
    ROWS_METADATA_CHANGED = 0x0008, /* v5 */
};

enum cql_query_flag {
    QUERY_PAGE_SIZE = 0x04,
    QUERY_PAGING_STATE = 0x08,
};

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

struct cql_result {
    size_t ncols;
    char **colnames; /* entries NULL when the server sent no metadata */
    size_t nrows;
    cql_value *cells; /* row-major, nrows * ncols */
    size_t cap_cells;
    bool schema_changed; /* a SCHEMA_CHANGE result: the statement changed the schema */
};

/* Reads exactly n bytes from src into buf, or fails with e set. */
typedef int (*seg_read_fn)(void *src, uint8_t *buf, size_t n, cs_err *e);

/* Cuts a stream of v5 segments back into envelope bytes. Only one segment
 * payload is held at a time; the parts of a large envelope that fill whole
 * segments are read straight into the caller's buffer. */
typedef struct seg_reader {
    seg_read_fn read;
    void *src;
    uint8_t *buf; /* the current segment's payload, CQL_SEGMENT_MAX_PAYLOAD bytes */
    size_t pos, len;
    bool sc;  /* the current segment is self-contained */
    bool mid; /* part of an envelope was delivered, the rest is still to come */
} seg_reader;

struct cql_conn {
    cs_net *net;      /* the socket, plain or TLS */
    bool client_cert; /* TLS with a client certificate of ours */
    int timeout_ms;   /* connect, TLS handshake, and each request */
    char *peer;       /* "host:port", for messages */
    int16_t stream;   /* stream id of the next request */
    int version;      /* protocol version of this connection: 5, or 4 after a fallback */
    bool negotiated;  /* the server accepted STARTUP: answers must carry our version */
    bool framed;      /* v5 after STARTUP's answer: envelopes travel in segments */
    seg_reader in;    /* framed input; its source is this connection */
    bool ready;       /* STARTUP finished: errors no longer say "cannot connect" */
    bool broken;      /* a transport or framing failure left the stream unusable */
};

/* ---------------------------------------------------------------------
 * (1) Bounds-checked reader. Each read names what it reads, so a short
 * body yields a sentence like "malformed CQL RESULT: column name is
 * truncated" rather than a bare code. */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    const char *what; /* "RESULT", "ERROR", "collection value", ... */
} rd;

static int rd_fail(const rd *r, cs_err *e, const char *field)
{
    cs_err_set(e, CS_E_PROTO, "malformed CQL %s: %s is truncated", r->what, field);
    return CS_E_PROTO;
}

static int rd_raw(rd *r, size_t n, const uint8_t **out, const char *field, cs_err *e)
{
    if (r->left < n)
        return rd_fail(r, e, field);
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static int rd_u16(rd *r, uint16_t *v, const char *field, cs_err *e)
{
    const uint8_t *p;
    if (rd_raw(r, 2, &p, field, e))
        return CS_E_PROTO;
    *v = (uint16_t)((unsigned)p[0] << 8 | p[1]);
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static int rd_i32(rd *r, int32_t *v, const char *field, cs_err *e)
{
    const uint8_t *p;
    if (rd_raw(r, 4, &p, field, e))
        return CS_E_PROTO;
    *v = (int32_t)be32(p);
    return 0;
}

/* [string]: a [short] length and that many bytes. */
static int rd_string(rd *r, const uint8_t **s, size_t *n, const char *field, cs_err *e)
{
    uint16_t len;
    if (rd_u16(r, &len, field, e) || rd_raw(r, len, s, field, e))
        return CS_E_PROTO;
    *n = len;
    return 0;
}

/* [bytes]: an [int] length and that many bytes; a negative length is null
 * (*null set, no bytes follow). */
static int rd_bytes(rd *r, const uint8_t **s, size_t *n, bool *null, const char *field,
                    cs_err *e)
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

/* ---------------------------------------------------------------------
 * (2) Types and values. */

static void type_free(cql_type *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        if (t->sub)
            type_free(&t->sub[i]);
        if (t->names)
            free(t->names[i]);
    }
    free(t->sub);
    free(t->names);
    t->sub = NULL;
    t->names = NULL;
    t->n = 0;
}

static int parse_type(rd *r, cql_type *t, int depth, cs_err *e);

/* Sub types of list/set/map/tuple; t->n and t->sub are set before parsing so
 * that type_free releases a half-parsed tree. */
static int parse_subtypes(rd *r, cql_type *t, size_t n, int depth, cs_err *e)
{
    t->n = n;
    t->sub = cs_calloc(n, sizeof *t->sub);
    for (size_t i = 0; i < n; i++)
        if (parse_type(r, &t->sub[i], depth + 1, e))
            return CS_E_PROTO;
    return 0;
}

/* UDT: <ks><udt_name><n><name_1><type_1>...; only field names are kept. */
static int parse_udt(rd *r, cql_type *t, int depth, cs_err *e)
{
    const uint8_t *s;
    size_t slen;
    uint16_t n;
    if (rd_string(r, &s, &slen, "user type keyspace", e) ||
        rd_string(r, &s, &slen, "user type name", e) ||
        rd_u16(r, &n, "user type field count", e))
        return CS_E_PROTO;
    /* Each field needs at least a [string] length and an [option] id. */
    if ((size_t)n > r->left / 4)
        return rd_fail(r, e, "user type field list");
    t->n = n;
    t->sub = cs_calloc(n, sizeof *t->sub);
    t->names = cs_calloc(n, sizeof *t->names);
    for (size_t i = 0; i < n; i++) {
        if (rd_string(r, &s, &slen, "user type field name", e))
            return CS_E_PROTO;
        t->names[i] = cs_strndup((const char *)s, slen);
        if (parse_type(r, &t->sub[i], depth + 1, e))
            return CS_E_PROTO;
    }
    return 0;
}

/* Custom types. The protocol names a custom type by its Cassandra class,
 * such as "org.apache.cassandra.db.marshal.VectorType(
 * org.apache.cassandra.db.marshal.FloatType,3)" for vector<float, 3>. A
 * VectorType is turned into a type tree (its element named the same way:
 * native types, List/Set/Map/Tuple/Vector, Frozen and Reversed wrappers);
 * any other class, or a name this does not follow, stays a custom type
 * shown as hex. */

typedef struct {
    const char *p, *end;
    int depth;
} class_rd;

static const struct {
    const char *name;
    uint16_t id;
} marshal_natives[] = {
    { "AsciiType", T_ASCII },        { "LongType", T_BIGINT },
    { "BytesType", T_BLOB },         { "BooleanType", T_BOOLEAN },
    { "CounterColumnType", T_COUNTER }, { "DecimalType", T_DECIMAL },
    { "DoubleType", T_DOUBLE },      { "FloatType", T_FLOAT },
    { "Int32Type", T_INT },          { "TimestampType", T_TIMESTAMP },
    { "DateType", T_TIMESTAMP },     { "UUIDType", T_UUID },
    { "UTF8Type", T_VARCHAR },       { "IntegerType", T_VARINT },
    { "TimeUUIDType", T_TIMEUUID },  { "InetAddressType", T_INET },
    { "SimpleDateType", T_DATE },    { "TimeType", T_TIME },
    { "ShortType", T_SMALLINT },     { "ByteType", T_TINYINT },
    { "DurationType", T_DURATION },
};

static void class_skip_blanks(class_rd *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static bool class_accept(class_rd *c, char ch)
{
    class_skip_blanks(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A class name without the package Cassandra's own types live in. */
static void class_name(class_rd *c, const char **name, size_t *len)
{
    static const char pkg[] = "org.apache.cassandra.db.marshal.";
    class_skip_blanks(c);
    const char *start = c->p;
    while (c->p < c->end && (isalnum((unsigned char)*c->p) || *c->p == '_' || *c->p == '.' ||
                             *c->p == '$'))
        c->p++;
    *name = start;
    *len = (size_t)(c->p - start);
    if (*len > sizeof pkg - 1 && memcmp(start, pkg, sizeof pkg - 1) == 0) {
        *name += sizeof pkg - 1;
        *len -= sizeof pkg - 1;
    }
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

static bool class_type(class_rd *c, cql_type *t);

/* "(T1,T2,...)" into t->sub: exactly want of them, or at least one when
 * want is 0 (a tuple). */
static bool class_params(class_rd *c, cql_type *t, size_t want)
{
    if (!class_accept(c, '('))
        return false;
    size_t cap = want ? want : 4;
    t->sub = cs_calloc(cap, sizeof *t->sub);
    for (;;) {
        if (want && t->n == want)
            return false;
        if (t->n == cap) {
            t->sub = cs_realloc(t->sub, 2 * cap * sizeof *t->sub);
            memset(t->sub + cap, 0, cap * sizeof *t->sub);
            cap *= 2;
        }
        if (!class_type(c, &t->sub[t->n++]))
            return false;
        if (class_accept(c, ')'))
            return !want || t->n == want;
        if (!class_accept(c, ','))
            return false;
    }
}

/* "VectorType(T,n)": the element type and a dimension of 1..2^31-1. */
static bool class_vector(class_rd *c, cql_type *t)
{
    t->id = T_VECTOR;
    t->n = 1;
    t->sub = cs_calloc(1, sizeof *t->sub);
    if (!class_accept(c, '(') || !class_type(c, &t->sub[0]) || !class_accept(c, ','))
        return false;
    class_skip_blanks(c);
    uint64_t dim = 0;
    const char *digits = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && dim <= INT32_MAX)
        dim = dim * 10 + (uint64_t)(*c->p++ - '0');
    if (c->p == digits || dim == 0 || dim > INT32_MAX)
        return false;
    t->dim = (uint32_t)dim;
    return class_accept(c, ')');
}

/* One class name with its parameters into t; false when it is not one this
 * understands (t may then be half built: the caller frees it). */
static bool class_type(class_rd *c, cql_type *t)
{
    if (++c->depth > CQL_MAX_TYPE_DEPTH)
        return false;
    const char *name;
    size_t len;
    class_name(c, &name, &len);
    bool ok = false;
    if (name_is(name, len, "FrozenType") || name_is(name, len, "ReversedType")) {
        ok = class_accept(c, '(') && class_type(c, t) && class_accept(c, ')');
    } else if (name_is(name, len, "VectorType")) {
        ok = class_vector(c, t);
    } else if (name_is(name, len, "ListType") || name_is(name, len, "SetType")) {
        t->id = name_is(name, len, "ListType") ? T_LIST : T_SET;
        ok = class_params(c, t, 1);
    } else if (name_is(name, len, "MapType")) {
        t->id = T_MAP;
        ok = class_params(c, t, 2);
    } else if (name_is(name, len, "TupleType")) {
        t->id = T_TUPLE;
        ok = class_params(c, t, 0);
    } else {
        for (size_t i = 0; i < sizeof marshal_natives / sizeof marshal_natives[0]; i++)
            if (name_is(name, len, marshal_natives[i].name)) {
                t->id = marshal_natives[i].id;
                ok = true;
            }
    }
    c->depth--;
    return ok;
}

/* A custom type's class name: a vector becomes T_VECTOR, anything else
 * stays T_CUSTOM. */
static void custom_type(const uint8_t *s, size_t len, cql_type *t)
{
    class_rd c = { (const char *)s, (const char *)s + len, 0 };
    cql_type v = { 0 };
    if (class_type(&c, &v) && v.id == T_VECTOR && (class_skip_blanks(&c), c.p == c.end)) {
        *t = v;
        return;
    }
    type_free(&v);
}

static bool is_native_type(uint16_t id)
{
    return (id >= T_ASCII && id <= T_INT) || (id >= T_TIMESTAMP && id <= T_DURATION);
}

/* One [option] describing a column or element type. */
static int parse_type(rd *r, cql_type *t, int depth, cs_err *e)
{
    if (depth > CQL_MAX_TYPE_DEPTH)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL %s: column type nests deeper than %d levels",
                          r->what, CQL_MAX_TYPE_DEPTH);
    if (rd_u16(r, &t->id, "column type", e))
        return CS_E_PROTO;
    const uint8_t *s;
    size_t slen;
    uint16_t n;
    switch (t->id) {
    case T_CUSTOM: /* a vector, or shown as hex */
        if (rd_string(r, &s, &slen, "custom type class name", e))
            return CS_E_PROTO;
        custom_type(s, slen, t);
        return 0;
    case T_LIST:
    case T_SET:
        return parse_subtypes(r, t, 1, depth, e);
    case T_MAP:
        return parse_subtypes(r, t, 2, depth, e);
    case T_UDT:
        return parse_udt(r, t, depth, e);
    case T_TUPLE:
        if (rd_u16(r, &n, "tuple size", e))
            return CS_E_PROTO;
        if ((size_t)n > r->left / 2) /* each component is at least an id */
            return rd_fail(r, e, "tuple component list");
        return parse_subtypes(r, t, n, depth, e);
    default:
        if (is_native_type(t->id))
            return 0;
        return cs_err_set(e, CS_E_PROTO, "malformed CQL %s: unknown column type id 0x%04x",
                          r->what, (unsigned)t->id);
    }
}

static void value_free(cql_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        value_free(&v->items[i]);
    free(v->items);
    free(v->text);
    v->items = NULL;
    v->text = NULL; /* raw lives in the same allocation */
    v->raw = NULL;
    v->raw_len = 0;
    v->n = 0;
}

/* Raw bytes. Every scalar keeps the bytes the server sent (cql_value.raw,
 * for hashing) next to its text. They are copied out of the frame body:
 * the body is freed as soon as a page is decoded (and cql_decode_result's
 * body belongs to its caller), so pointing into it would mean holding every
 * page's whole body - metadata, nulls and collection framing included - for
 * the life of the result. Copying per value costs nothing for text types
 * (raw is the text itself, which is already an exact copy), n bytes beside
 * the 2n of hex for a blob (the same as keeping the body would), and a few
 * bytes for everything else. The copy shares the text's allocation (after
 * its NUL), so a value is still one allocation and value_free's free(text)
 * releases both. */

/* A scalar of text (heap, NUL-terminated, taken over) and the n raw bytes
 * at p, appended to text's allocation. */
static void set_scalar(cql_value *out, char *text, const uint8_t *p, size_t n)
{
    out->kind = CQL_SCALAR;
    out->raw_len = n;
    if (n == 0) {
        out->text = text;
        out->raw = (const uint8_t *)text; /* never NULL for a scalar */
        return;
    }
    size_t tl = strlen(text);
    text = cs_realloc(text, tl + 1 + n);
    memcpy(text + tl + 1, p, n);
    out->text = text;
    out->raw = (const uint8_t *)text + tl + 1;
}

/* A string scalar (text, ascii, a UDT field name): its bytes are both the
 * text and the raw value. */
static void set_string(cql_value *out, const void *p, size_t n)
{
    char *s = cs_strndup(p, n);
    out->kind = CQL_SCALAR;
    out->text = s;
    out->raw = (const uint8_t *)s;
    out->raw_len = n;
}

/* A scalar shown as "0x" + hex (blob, custom), with its raw bytes. */
static void set_hex(cql_value *out, const uint8_t *p, size_t n)
{
    char *s = cs_malloc(2 * n + 3 + n);
    s[0] = '0';
    s[1] = 'x';
    cs_hex(p, n, s + 2);
    if (n)
        memcpy(s + 2 * n + 3, p, n);
    out->kind = CQL_SCALAR;
    out->text = s;
    out->raw = (const uint8_t *)s + (n ? 2 * n + 3 : 0);
    out->raw_len = n;
}

static char *hex_text(const uint8_t *p, size_t n)
{
    char *s = cs_malloc(2 * n + 3);
    s[0] = '0';
    s[1] = 'x';
    cs_hex(p, n, s + 2);
    return s;
}

static const char *type_name(uint16_t id)
{
    switch (id) {
    case T_BIGINT: return "bigint";
    case T_BOOLEAN: return "boolean";
    case T_COUNTER: return "counter";
    case T_DOUBLE: return "double";
    case T_FLOAT: return "float";
    case T_INT: return "int";
    case T_TIMESTAMP: return "timestamp";
    case T_UUID: return "uuid";
    case T_TIMEUUID: return "timeuuid";
    case T_INET: return "inet";
    case T_DATE: return "date";
    case T_TIME: return "time";
    case T_SMALLINT: return "smallint";
    case T_TINYINT: return "tinyint";
    default: return "value";
    }
}

static int bad_width(uint16_t id, size_t got, size_t want, cs_err *e)
{
    return cs_err_set(e, CS_E_PROTO, "malformed CQL value: a %s must be %zu bytes, got %zu",
                      type_name(id), want, got);
}

/* Sign-extend a big-endian two's complement integer of 1..8 bytes. */
static int64_t be_signed(const uint8_t *p, size_t n)
{
    uint64_t u = (p[0] & 0x80) ? UINT64_MAX : 0;
    for (size_t i = 0; i < n; i++)
        u = u << 8 | p[i];
    return (int64_t)u;
}

static char *uuid_text(const uint8_t *p)
{
    char hex[33];
    cs_hex(p, 16, hex);
    return cs_sprintf("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static char *inet_text(const uint8_t *p, size_t n)
{
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(n == 4 ? AF_INET : AF_INET6, p, buf, sizeof buf))
        return hex_text(p, n); /* cannot happen for 4/16 bytes; stay total */
    return cs_strdup(buf);
}

/* varint, decimal and duration: exact text of any size, with no bignum
 * library. */

/* The decimal digits of the magnitude of a big-endian two's complement
 * integer of n >= 1 bytes (a new string, "0" for zero); *neg gets its sign.
 * The magnitude is put into base-2^32 limbs (most significant first) and
 * divided by 10^9 until nothing is left, each remainder giving nine digits:
 * quadratic in n (here 0.5 s for 64 KiB, 2 minutes for 1 MiB), which
 * real varints (a few bytes) never notice. */
static char *varint_digits(const uint8_t *p, size_t n, bool *neg)
{
    *neg = (p[0] & 0x80) != 0;
    size_t nl = (n + 3) / 4;
    uint32_t *limb = cs_calloc(nl, sizeof *limb);
    unsigned carry = 1; /* negative: the magnitude is ~x + 1 */
    for (size_t k = 0; k < n; k++) { /* k counts bytes from the least significant */
        unsigned b = p[n - 1 - k];
        if (*neg) {
            b = (~b & 0xFFu) + carry;
            carry = b >> 8;
            b &= 0xFFu;
        }
        limb[nl - 1 - k / 4] |= (uint32_t)b << (8 * (k % 4));
    }
    /* The value is below 2^(8n) and 10^9 > 2^29, so this many remainders
     * are enough. */
    size_t cap = n * 8 / 29 + 2, nc = 0, first = 0;
    uint32_t *chunk = cs_malloc(cap * sizeof *chunk);
    while (first < nl && limb[first] == 0)
        first++;
    do {
        uint64_t rem = 0;
        for (size_t i = first; i < nl; i++) {
            uint64_t cur = rem << 32 | limb[i];
            limb[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        chunk[nc++] = (uint32_t)rem;
        while (first < nl && limb[first] == 0)
            first++;
    } while (first < nl);
    char *s = cs_malloc(9 * nc + 1), *o = s;
    o += snprintf(o, 10, "%" PRIu32, chunk[nc - 1]);
    for (size_t i = nc - 1; i-- > 0;)
        o += snprintf(o, 10, "%09" PRIu32, chunk[i]);
    free(limb);
    free(chunk);
    return s;
}

/* A varint of n >= 1 bytes in decimal. */
static char *varint_text(const uint8_t *p, size_t n)
{
    if (n <= 8)
        return cs_sprintf("%" PRId64, be_signed(p, n));
    bool neg;
    char *digits = varint_digits(p, n, &neg);
    char *s = cs_sprintf("%s%s", neg ? "-" : "", digits);
    free(digits);
    return s;
}

/* The text of (-1)^neg * digits * 10^exp the way Python's str(Decimal)
 * (the General Decimal Arithmetic to-scientific-string) writes it: plain
 * notation when the exponent is not positive and the adjusted exponent
 * (that of the first digit) is -6 or more, else one digit before the point
 * and "E" with a signed exponent: "123.45", "0.000001", "1E-7", "1.2345E+6",
 * "0E+2", "0.00". exp comes from a 32-bit scale, so nothing overflows, and
 * at most five zeros are ever added. */
static char *decimal_text(bool neg, const char *digits, int64_t exp)
{
    int64_t len = (int64_t)strlen(digits);
    int64_t left = exp + len; /* adjusted exponent + 1 */
    int64_t dot = exp <= 0 && left > -6 ? left : 1; /* digits before the point */
    cs_buf b = CS_BUF_INIT;
    if (neg)
        cs_buf_addch(&b, '-');
    if (dot <= 0) {
        cs_buf_addstr(&b, "0.");
        for (int64_t i = dot; i < 0; i++)
            cs_buf_addch(&b, '0');
        cs_buf_addstr(&b, digits);
    } else if (dot >= len) { /* dot == len: plain notation never pads */
        cs_buf_addstr(&b, digits);
    } else {
        cs_buf_add(&b, digits, (size_t)dot);
        cs_buf_addch(&b, '.');
        cs_buf_addstr(&b, digits + dot);
    }
    if (left != dot)
        cs_buf_printf(&b, "E%+" PRId64, left - dot);
    return cs_buf_detach(&b);
}

/* decimal: an [int] scale and a varint unscaled value, worth
 * unscaled * 10^-scale. Cassandra accepts 0 bytes (the empty value, "") or
 * at least 4; it stores a bare scale too, which its own driver cannot read:
 * the empty unscaled value is taken as zero here. */
static int decode_decimal(const uint8_t *p, size_t n, cql_value *out, cs_err *e)
{
    if (n == 0) {
        set_scalar(out, cs_strdup(""), p, n);
        return 0;
    }
    if (n < 4)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL value: a decimal must be 0 or at least 4 bytes, "
                          "got %zu",
                          n);
    int64_t exp = -(int64_t)(int32_t)be32(p);
    bool neg = false;
    char *digits = n > 4 ? varint_digits(p + 4, n - 4, &neg) : cs_strdup("0");
    set_scalar(out, decimal_text(neg, digits, exp), p, n);
    free(digits);
    return 0;
}

/* An unsigned vint: as many extra bytes as the first byte has leading 1
 * bits (all 8 for 0xFF), the first byte's other bits the top of the value,
 * big-endian. Longer encodings than needed are accepted, as Cassandra
 * does. */
static int rd_uvint(rd *r, uint64_t *v, const char *field, cs_err *e)
{
    const uint8_t *p;
    if (rd_raw(r, 1, &p, field, e))
        return CS_E_PROTO;
    unsigned extra = 0;
    while (extra < 8 && (p[0] & (0x80u >> extra)))
        extra++;
    uint64_t u = p[0] & (0xFFu >> extra);
    if (extra && rd_raw(r, extra, &p, field, e))
        return CS_E_PROTO;
    for (unsigned i = 0; i < extra; i++)
        u = u << 8 | p[i];
    *v = u;
    return 0;
}

/* A [vint]: an unsigned vint, zig-zag decoded ((u >> 1) ^ -(u & 1)). */
static int rd_vint(rd *r, int64_t *v, const char *field, cs_err *e)
{
    uint64_t u;
    if (rd_uvint(r, &u, field, e))
        return CS_E_PROTO;
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return 0;
}

static uint64_t magnitude(int64_t v) { return v < 0 ? 0 - (uint64_t)v : (uint64_t)v; }

/* Appends "<q><unit>" when q is not zero. */
static void duration_unit(cs_buf *b, uint64_t q, const char *unit)
{
    if (q)
        cs_buf_printf(b, "%" PRIu64 "%s", q, unit);
}

/* Cassandra's Duration.toString: a "-" when negative, then years, months,
 * days, hours, minutes, seconds, ms, us and ns, each only when not zero:
 * "1y2mo3d4h5m6s7ms8us9ns", "-10d", "1h30m". Unlike Java (which writes ""
 * for it) the zero duration is "0s": "" is what the empty value shows, and
 * "0s" is a duration literal CQL parses. Magnitudes are taken unsigned, so
 * the most negative nanosecond count is written right too. */
static char *duration_text(int64_t months, int64_t days, int64_t nanos)
{
    static const struct { uint64_t ns; const char *unit; } units[] = {
        { UINT64_C(3600000000000), "h" }, { UINT64_C(60000000000), "m" },
        { UINT64_C(1000000000), "s" },    { UINT64_C(1000000), "ms" },
        { UINT64_C(1000), "us" },         { UINT64_C(1), "ns" },
    };
    if (!months && !days && !nanos)
        return cs_strdup("0s");
    cs_buf b = CS_BUF_INIT;
    if (months < 0 || days < 0 || nanos < 0)
        cs_buf_addch(&b, '-');
    uint64_t mo = magnitude(months), ns = magnitude(nanos);
    duration_unit(&b, mo / 12, "y");
    duration_unit(&b, mo % 12, "mo");
    duration_unit(&b, magnitude(days), "d");
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        duration_unit(&b, ns / units[i].ns, units[i].unit);
        ns %= units[i].ns;
    }
    return cs_buf_detach(&b);
}

/* duration: [vint] months, [vint] days, [vint] nanoseconds, checked as
 * Cassandra validates them (months and days 32-bit, all of one sign).
 * Bytes after the third vint are ignored, as Cassandra ignores them; they
 * stay in the raw bytes. */
static int decode_duration(const uint8_t *p, size_t n, cql_value *out, cs_err *e)
{
    if (n == 0) {
        set_scalar(out, cs_strdup(""), p, n);
        return 0;
    }
    rd r = { p, n, "duration value" };
    int64_t months, days, nanos;
    if (rd_vint(&r, &months, "months", e) || rd_vint(&r, &days, "days", e) ||
        rd_vint(&r, &nanos, "nanoseconds", e))
        return CS_E_PROTO;
    if (months < INT32_MIN || months > INT32_MAX || days < INT32_MIN || days > INT32_MAX)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL value: duration months (%" PRId64 ") and days (%" PRId64
                          ") must be 32-bit integers",
                          months, days);
    if (!((months >= 0 && days >= 0 && nanos >= 0) || (months <= 0 && days <= 0 && nanos <= 0)))
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL value: duration months, days and nanoseconds must have "
                          "one sign (%" PRId64 ", %" PRId64 ", %" PRId64 ")",
                          months, days, nanos);
    set_scalar(out, duration_text(months, days, nanos), p, n);
    return 0;
}

/* Fixed-width scalars and varint. An empty value (legal for most
 * non-string types, distinct from null) becomes the empty text. */
static int decode_fixed(uint16_t id, const uint8_t *p, size_t n, cql_value *out, cs_err *e)
{
    if (n == 0) {
        set_scalar(out, cs_strdup(""), p, n);
        return 0;
    }
    switch (id) {
    case T_BIGINT:
    case T_COUNTER:
    case T_TIMESTAMP:
    case T_TIME:
        if (n != 8)
            return bad_width(id, n, 8, e);
        set_scalar(out, cs_sprintf("%" PRId64, be_signed(p, 8)), p, n);
        return 0;
    case T_INT:
        if (n != 4)
            return bad_width(id, n, 4, e);
        set_scalar(out, cs_sprintf("%" PRId64, be_signed(p, 4)), p, n);
        return 0;
    case T_SMALLINT:
        if (n != 2)
            return bad_width(id, n, 2, e);
        set_scalar(out, cs_sprintf("%" PRId64, be_signed(p, 2)), p, n);
        return 0;
    case T_TINYINT:
        if (n != 1)
            return bad_width(id, n, 1, e);
        set_scalar(out, cs_sprintf("%" PRId64, be_signed(p, 1)), p, n);
        return 0;
    case T_BOOLEAN:
        if (n != 1)
            return bad_width(id, n, 1, e);
        set_scalar(out, cs_strdup(p[0] ? "true" : "false"), p, n);
        return 0;
    case T_DATE: /* days with the epoch at 2^31, shown as the raw unsigned number */
        if (n != 4)
            return bad_width(id, n, 4, e);
        set_scalar(out, cs_sprintf("%" PRIu32, be32(p)), p, n);
        return 0;
    case T_DOUBLE: {
        if (n != 8)
            return bad_width(id, n, 8, e);
        uint64_t u = be64(p);
        double d;
        memcpy(&d, &u, sizeof d);
        set_scalar(out, cs_sprintf("%.17g", d), p, n);
        return 0;
    }
    case T_FLOAT: {
        if (n != 4)
            return bad_width(id, n, 4, e);
        uint32_t u = be32(p);
        float f;
        memcpy(&f, &u, sizeof f);
        set_scalar(out, cs_sprintf("%.9g", (double)f), p, n);
        return 0;
    }
    case T_UUID:
    case T_TIMEUUID:
        if (n != 16)
            return bad_width(id, n, 16, e);
        set_scalar(out, uuid_text(p), p, n);
        return 0;
    case T_INET:
        if (n != 4 && n != 16)
            return cs_err_set(e, CS_E_PROTO,
                              "malformed CQL value: an inet must be 4 or 16 bytes, got %zu", n);
        set_scalar(out, inet_text(p, n), p, n);
        return 0;
    default: /* T_VARINT */
        set_scalar(out, varint_text(p, n), p, n);
        return 0;
    }
}

static int decode_value(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                        cs_err *e);

/* One [bytes] cell from r, null when its length is negative. */
static int decode_cell(rd *r, const cql_type *t, cql_value *out, cs_err *e)
{
    const uint8_t *p;
    size_t n;
    bool null;
    if (rd_bytes(r, &p, &n, &null, "value", e))
        return CS_E_PROTO;
    if (null) {
        out->kind = CQL_NULL;
        return 0;
    }
    return decode_value(t, p, n, out, e);
}

static int trailing_bytes(const rd *r, cs_err *e)
{
    return cs_err_set(e, CS_E_PROTO,
                      "malformed CQL %s: %zu unexpected bytes after the last element", r->what,
                      r->left);
}

/* list/set: [int] n then n [bytes]; map: [int] n then n key/value pairs. */
static int decode_collection(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                             cs_err *e)
{
    rd r = { p, n, "collection value" };
    bool map = t->id == T_MAP;
    size_t per = map ? 2 : 1;
    int32_t count;
    if (rd_i32(&r, &count, "element count", e))
        return CS_E_PROTO;
    /* Every element has at least its 4-byte length, so a count larger than
     * that allows is a lie; checking first keeps allocations bounded. */
    if (count < 0 || (size_t)count > r.left / (4 * per))
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL collection value: element count %" PRId32
                          " does not fit in %zu bytes",
                          count, r.left);
    out->kind = map ? CQL_MAP : CQL_LIST;
    out->n = (size_t)count * per;
    out->items = cs_calloc(out->n, sizeof *out->items);
    for (size_t i = 0; i < out->n; i++)
        if (decode_cell(&r, &t->sub[map ? i % 2 : 0], &out->items[i], e))
            return CS_E_PROTO;
    return r.left ? trailing_bytes(&r, e) : 0;
}

/* UDT (a map of field name to value) and tuple (a list): one [bytes] per
 * field in type order; a value may stop early, the missing fields are null. */
static int decode_fields(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                         cs_err *e)
{
    rd r = { p, n, t->id == T_UDT ? "user type value" : "tuple value" };
    bool udt = t->id == T_UDT;
    out->kind = udt ? CQL_MAP : CQL_LIST;
    out->n = udt ? 2 * t->n : t->n;
    out->items = cs_calloc(out->n, sizeof *out->items);
    for (size_t i = 0; i < t->n; i++) {
        cql_value *v = udt ? &out->items[2 * i + 1] : &out->items[i];
        if (udt)
            set_string(&out->items[2 * i], t->names[i], strlen(t->names[i]));
        if (r.left == 0)
            continue; /* stays CQL_NULL */
        if (decode_cell(&r, &t->sub[i], v, e))
            return CS_E_PROTO;
    }
    return r.left ? trailing_bytes(&r, e) : 0;
}

/* The size of every value of type t when Cassandra serializes it with a
 * fixed length (its valueLengthIfFixed), else 0. Only these types are
 * packed without lengths inside a vector; date, time, smallint and tinyint
 * are not, though their size never varies. */
static size_t fixed_width(const cql_type *t)
{
    switch (t->id) {
    case T_BOOLEAN: return 1;
    case T_FLOAT:
    case T_INT: return 4;
    case T_BIGINT:
    case T_DOUBLE:
    case T_TIMESTAMP: return 8;
    case T_UUID:
    case T_TIMEUUID: return 16;
    case T_VECTOR: {
        size_t w = fixed_width(&t->sub[0]);
        return w && w <= INT32_MAX / t->dim ? w * t->dim : 0;
    }
    default: return 0;
    }
}

/* vector<T, dim>: dim elements, none null, back to back when T has a fixed
 * size, else each after an unsigned vint length. Shown as a list. */
static int decode_vector(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                         cs_err *e)
{
    if (n == 0) {
        set_scalar(out, cs_strdup(""), p, n);
        return 0;
    }
    rd r = { p, n, "vector value" };
    size_t w = fixed_width(&t->sub[0]);
    /* A variable-size element takes at least its one-byte length. */
    if (w ? n / w != t->dim || n % w : t->dim > n)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL value: %zu bytes cannot hold a vector of %" PRIu32
                          " elements",
                          n, t->dim);
    out->kind = CQL_LIST;
    out->n = t->dim;
    out->items = cs_calloc(out->n, sizeof *out->items);
    for (size_t i = 0; i < out->n; i++) {
        uint64_t len = w;
        const uint8_t *q;
        if ((!w && rd_uvint(&r, &len, "element length", e)) ||
            rd_raw(&r, (size_t)len, &q, "element", e) ||
            decode_value(&t->sub[0], q, (size_t)len, &out->items[i], e))
            return CS_E_PROTO;
    }
    return r.left ? trailing_bytes(&r, e) : 0;
}

/* The n bytes of one non-null value of type t. On failure *out may hold a
 * partial tree; the caller frees it with value_free. */
static int decode_value(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                        cs_err *e)
{
    switch (t->id) {
    case T_ASCII:
    case T_VARCHAR:
        set_string(out, p, n);
        return 0;
    case T_CUSTOM:
    case T_BLOB:
        set_hex(out, p, n);
        return 0;
    case T_DECIMAL:
        return decode_decimal(p, n, out, e);
    case T_DURATION:
        return decode_duration(p, n, out, e);
    case T_LIST:
    case T_SET:
    case T_MAP:
        return decode_collection(t, p, n, out, e);
    case T_UDT:
    case T_TUPLE:
        return decode_fields(t, p, n, out, e);
    case T_VECTOR:
        return decode_vector(t, p, n, out, e);
    default:
        return decode_fixed(t->id, p, n, out, e);
    }
}

/* ---------------------------------------------------------------------
 * (3) RESULT and ERROR bodies. */

/* Column specs: (<ks><table>)?<name><type> each; types[] and names[] are
 * allocated by the caller with ncols zeroed entries. */
static int parse_colspecs(rd *r, bool global, size_t ncols, char **names, cql_type *types,
                          cs_err *e)
{
    const uint8_t *s;
    size_t slen;
    if (global && (rd_string(r, &s, &slen, "keyspace name", e) ||
                   rd_string(r, &s, &slen, "table name", e)))
        return CS_E_PROTO;
    /* A spec is at least a [string] length and an [option] id (plus two
     * [string] lengths without the global spec). */
    if (ncols > r->left / (global ? 4 : 8))
        return rd_fail(r, e, "column specification list");
    for (size_t i = 0; i < ncols; i++) {
        if (!global && (rd_string(r, &s, &slen, "keyspace name", e) ||
                        rd_string(r, &s, &slen, "table name", e)))
            return CS_E_PROTO;
        if (rd_string(r, &s, &slen, "column name", e))
            return CS_E_PROTO;
        names[i] = cs_strndup((const char *)s, slen);
        if (parse_type(r, &types[i], 0, e))
            return CS_E_PROTO;
    }
    return 0;
}

/* The <rows_count><rows_content> part, decoded with the column types. */
static int parse_rows_content(rd *r, cql_result *res, const cql_type *types, cs_err *e)
{
    int32_t nrows;
    if (rd_i32(r, &nrows, "row count", e))
        return CS_E_PROTO;
    if (nrows < 0)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: negative row count %" PRId32,
                          nrows);
    if (nrows > 0 && res->ncols == 0)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: %" PRId32 " rows without columns",
                          nrows);
    /* Each cell is at least its 4-byte length: check before allocating. */
    if (res->ncols && (size_t)nrows > r->left / 4 / res->ncols)
        return rd_fail(r, e, "row data");
    size_t total = (size_t)nrows * res->ncols;
    res->cells = cs_calloc(total, sizeof *res->cells);
    res->cap_cells = total;
    res->nrows = (size_t)nrows;
    for (size_t i = 0; i < total; i++)
        if (decode_cell(r, &types[i % res->ncols], &res->cells[i], e))
            return CS_E_PROTO;
    return 0;
}

/* Rows: <flags><columns_count>[<paging_state>][specs]<rows_count><rows>.
 * *ps receives a copy of the paging state when more pages follow. */
static int parse_rows(rd *r, cql_result *res, uint8_t **ps, size_t *ps_len, cs_err *e)
{
    int32_t flags, ncols;
    cql_type *types = NULL;
    int rc = CS_E_PROTO;
    if (rd_i32(r, &flags, "row metadata flags", e) || rd_i32(r, &ncols, "column count", e))
        goto out;
    if (ncols < 0 || ncols > CQL_MAX_COLS) {
        rc = cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: column count %" PRId32
                        " is out of range", ncols);
        goto out;
    }
    if (flags & ROWS_HAS_MORE_PAGES) {
        const uint8_t *p;
        bool null;
        if (rd_bytes(r, &p, ps_len, &null, "paging state", e))
            goto out;
        if (null) {
            rc = cs_err_set(e, CS_E_PROTO,
                            "malformed CQL RESULT: more pages announced without a paging state");
            goto out;
        }
        *ps = cs_malloc(*ps_len);
        if (*ps_len)
            memcpy(*ps, p, *ps_len);
    }
    if (flags & ROWS_METADATA_CHANGED) {
        /* v5: the new result metadata id of a prepared statement, [short
         * bytes]. We never prepare, so it only has to be stepped over. */
        const uint8_t *id;
        size_t id_len;
        if (rd_string(r, &id, &id_len, "new metadata id", e))
            goto out;
    }
    res->ncols = (size_t)ncols;
    res->colnames = cs_calloc(res->ncols, sizeof *res->colnames);
    types = cs_calloc(res->ncols, sizeof *types);
    if (flags & ROWS_NO_METADATA) {
        /* We never ask for this; if it comes anyway, show cells as hex. */
        for (size_t i = 0; i < res->ncols; i++)
            types[i].id = T_BLOB;
    } else if (parse_colspecs(r, (flags & ROWS_GLOBAL_TABLES_SPEC) != 0, res->ncols,
                              res->colnames, types, e)) {
        goto out;
    }
    rc = parse_rows_content(r, res, types, e);
out:
    for (size_t i = 0; types && i < res->ncols; i++)
        type_free(&types[i]);
    free(types);
    return rc;
}

/* Schema_change: <change_type><target><options>, where the options depend
 * on the target. Nothing here is needed (DDL returns an empty result), but
 * the known shapes are checked so a cut-off body is not taken as success. */
static int parse_schema_change(rd *r, cs_err *e)
{
    const uint8_t *s, *target;
    size_t n, tlen;
    uint16_t count;
    if (rd_string(r, &s, &n, "schema change type", e) ||
        rd_string(r, &target, &tlen, "schema change target", e))
        return CS_E_PROTO;
    char t[16] = "";
    if (tlen < sizeof t)
        memcpy(t, target, tlen);
    if (strcmp(t, "KEYSPACE") == 0)
        return rd_string(r, &s, &n, "schema change keyspace", e);
    if (strcmp(t, "TABLE") && strcmp(t, "TYPE") && strcmp(t, "FUNCTION") &&
        strcmp(t, "AGGREGATE"))
        return 0; /* a target newer than v4: its options are ours to ignore */
    if (rd_string(r, &s, &n, "schema change keyspace", e) ||
        rd_string(r, &s, &n, "schema change object name", e))
        return CS_E_PROTO;
    if (strcmp(t, "FUNCTION") && strcmp(t, "AGGREGATE"))
        return 0;
    if (rd_u16(r, &count, "schema change argument types", e))
        return CS_E_PROTO;
    for (size_t i = 0; i < count; i++)
        if (rd_string(r, &s, &n, "schema change argument type", e))
            return CS_E_PROTO;
    return 0;
}

int cql_decode_result(const uint8_t *body, size_t len, cql_result **out,
                      uint8_t **paging_state, size_t *paging_len, cs_err *e)
{
    rd r = { body, len, "RESULT" };
    cql_result *res = cs_calloc(1, sizeof *res);
    uint8_t *ps = NULL;
    size_t ps_len = 0;
    int32_t kind;
    const uint8_t *s;
    size_t slen;
    int rc = CS_E_PROTO;
    *out = NULL;
    if (paging_state)
        *paging_state = NULL;
    if (paging_len)
        *paging_len = 0;
    if (rd_i32(&r, &kind, "result kind", e))
        goto out;
    switch (kind) {
    case RESULT_VOID:
        rc = 0;
        break;
    case RESULT_ROWS:
        rc = parse_rows(&r, res, &ps, &ps_len, e);
        break;
    case RESULT_SET_KEYSPACE:
        rc = rd_string(&r, &s, &slen, "keyspace name", e);
        break;
    case RESULT_SCHEMA_CHANGE:
        rc = parse_schema_change(&r, e);
        if (!rc && res)
            res->schema_changed = true;
        break;
    case RESULT_PREPARED:
        rc = cs_err_set(e, CS_E_PROTO, "unexpected CQL RESULT: a Prepared result, but cassette "
                                       "never prepares statements");
        break;
    default:
        rc = cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: unknown result kind %" PRId32,
                        kind);
        break;
    }
    /* Extra bytes at the end are allowed: the spec reserves them for
     * future extensions. */
out:
    if (rc) {
        free(ps);
        cql_result_free(res);
        return rc;
    }
    if (paging_state) {
        *paging_state = ps;
        if (paging_len)
            *paging_len = ps_len;
    } else {
        free(ps);
    }
    *out = res;
    return 0;
}

static const char *const consistency_names[] = {
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM",
    "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE",
};
#define CQL_N_CONSISTENCY (sizeof consistency_names / sizeof consistency_names[0])

const char *cql_consistency_name(uint16_t consistency)
{
    return consistency < CQL_N_CONSISTENCY ? consistency_names[consistency] : "unknown";
}

int cql_consistency_parse(const char *name, uint16_t *out, cs_err *e)
{
    for (size_t i = 0; name && i < CQL_N_CONSISTENCY; i++) {
        if (strcasecmp(name, consistency_names[i]) == 0) {
            *out = (uint16_t)i;
            return 0;
        }
    }
    return cs_err_set(e, CS_E_INVAL,
                      "unknown consistency level '%.64s' (use ONE, TWO, THREE, QUORUM, ALL, "
                      "LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE, SERIAL, LOCAL_SERIAL or ANY)",
                      name ? name : "");
}

/* What an ERROR code means, in the words the message starts with. */
static const char *error_kind(int32_t code)
{
    switch (code) {
    case 0x0000: return "server error";
    case 0x000A: return "protocol error";
    case 0x0100: return "bad credentials";
    case 0x1000: return "unavailable";
    case 0x1001: return "overloaded";
    case 0x1002: return "node is bootstrapping";
    case 0x1003: return "truncate error";
    case 0x1100: return "write timeout";
    case 0x1200: return "read timeout";
    case 0x1300: return "read failure";
    case 0x1400: return "function failure";
    case 0x1500: return "write failure";
    case 0x1600: return "CDC write failure";
    case 0x1700: return "CAS write unknown";
    case 0x2000: return "syntax error";
    case 0x2100: return "unauthorized";
    case 0x2200: return "invalid query";
    case 0x2300: return "configuration error";
    case 0x2400: return "already exists";
    case 0x2500: return "unprepared statement";
    default: return NULL;
    }
}

/* The <cl><received|required><blockfor|alive> head shared by Unavailable,
 * the timeouts and the failures. False if the body stops short. */
static bool read_cl_counts(rd *r, uint16_t *cl, int32_t *a, int32_t *b)
{
    return !rd_u16(r, cl, "consistency", NULL) && !rd_i32(r, a, "count", NULL) &&
           !rd_i32(r, b, "count", NULL);
}

/* v5 <reasonmap>: an [int] n, then n pairs of <endpoint> ([inetaddr]: a
 * [byte] size and the address) and <failurecode> ([short]). Only n is
 * kept. False if the body stops short. */
static bool read_reasonmap(rd *r, int32_t *n)
{
    const uint8_t *p;
    uint16_t code;
    if (rd_i32(r, n, "reason map", NULL) || *n < 0)
        return false;
    for (int32_t i = 0; i < *n; i++) {
        if (rd_raw(r, 1, &p, "endpoint", NULL))
            return false;
        size_t alen = p[0];
        if (rd_raw(r, alen, &p, "endpoint", NULL) || rd_u16(r, &code, "failure code", NULL))
            return false;
    }
    return true;
}

/* How many replicas failed, in Read_failure and Write_failure: an [int]
 * <numfailures> in v4, the size of the <reasonmap> that replaced it in v5. */
static bool read_failures(rd *r, int version, int32_t *failures)
{
    if (version >= CQL_V5)
        return read_reasonmap(r, failures);
    return !rd_i32(r, failures, "count", NULL);
}

int cql_decode_error(const uint8_t *body, size_t len, int version, cs_err *e)
{
    rd r = { body, len, "ERROR" };
    int32_t code;
    const uint8_t *msg;
    size_t n;
    if (rd_i32(&r, &code, "error code", e) || rd_string(&r, &msg, &n, "error message", e))
        return CS_E_PROTO;
    const char *kind = error_kind(code);
    if (!kind)
        return cs_err_set(e, CS_E_EXTERNAL, "Cassandra error 0x%04" PRIX32 ": %.*s",
                          (uint32_t)code, (int)n, (const char *)msg);
    /* Where the code carries numbers, they say more than the server's
     * sentence ("Cannot achieve consistency level QUORUM"); details that are
     * cut short are simply left out. */
    uint16_t cl;
    int32_t a, b, failures;
    const uint8_t *s;
    size_t slen;
    uint8_t present;
    switch (code) {
    case 0x1000: /* Unavailable: <cl><required><alive> */
        if (read_cl_counts(&r, &cl, &a, &b))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "unavailable: not enough replicas (required %" PRId32
                              ", alive %" PRId32 ") at %s",
                              a, b, cql_consistency_name(cl));
        break;
    case 0x1100: /* Write_timeout: <cl><received><blockfor><writeType> */
        if (read_cl_counts(&r, &cl, &a, &b) && !rd_string(&r, &s, &slen, "write type", NULL))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "write timeout: %" PRId32 " of %" PRId32
                              " replicas acknowledged the %.*s write at %s in time",
                              a, b, (int)slen, (const char *)s, cql_consistency_name(cl));
        break;
    case 0x1200: /* Read_timeout: <cl><received><blockfor><data_present> */
        if (read_cl_counts(&r, &cl, &a, &b) && r.left >= 1) {
            present = r.p[0];
            return cs_err_set(e, CS_E_EXTERNAL,
                              "read timeout: %" PRId32 " of %" PRId32
                              " replicas answered at %s in time%s",
                              a, b, cql_consistency_name(cl),
                              !present && a >= b ? " (but not the one asked for the data)" : "");
        }
        break;
    case 0x1300: /* Read_failure: <cl><received><blockfor><numfailures|reasonmap><data_present> */
        if (read_cl_counts(&r, &cl, &a, &b) && read_failures(&r, version, &failures))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "read failure: %" PRId32 " of %" PRId32 " replicas answered, %" PRId32
                              " failed, at %s: %.*s",
                              a, b, failures, cql_consistency_name(cl), (int)n, (const char *)msg);
        break;
    case 0x1500: /* Write_failure: <cl><received><blockfor><numfailures|reasonmap><writeType> */
        if (read_cl_counts(&r, &cl, &a, &b) && read_failures(&r, version, &failures) &&
            !rd_string(&r, &s, &slen, "write type", NULL))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "write failure: %" PRId32 " of %" PRId32
                              " replicas acknowledged the %.*s write, %" PRId32 " failed, at %s: %.*s",
                              a, b, (int)slen, (const char *)s, failures,
                              cql_consistency_name(cl), (int)n, (const char *)msg);
        break;
    default:
        break;
    }
    return cs_err_set(e, CS_E_EXTERNAL, "%s: %.*s", kind, (int)n, (const char *)msg);
}

/* True when the ERROR a server sent in answer to a STARTUP at version tried
 * says it does not speak that version, so the client should reconnect at
 * v4. Servers answer a version they do not know with a protocol error
 * (0x000A): in their own, older version (3.x: "Invalid or unsupported
 * protocol version (5); ..."), or in the version asked, naming it (or
 * calling it beta when v5 was still one). Any other error is final. */
bool cql_startup_rejects_version(int tried, int answered, const uint8_t *body, size_t len)
{
    rd r = { body, len, "ERROR" };
    int32_t code;
    const uint8_t *msg;
    size_t n;
    if (tried <= CQL_V4 || rd_i32(&r, &code, "error code", NULL) || code != 0x000A)
        return false;
    if (answered < tried)
        return true;
    if (rd_string(&r, &msg, &n, "error message", NULL))
        return false;
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)n, (const char *)msg);
    return strcasestr(text, "protocol version") || strcasestr(text, "beta");
}

/* ---------------------------------------------------------------------
 * (3b) v5 segments (the spec's "frames"; what v4 called frames are the
 * "envelopes" inside them). Once STARTUP is answered, all traffic is
 * segments: a 6-byte header (3 bytes little-endian holding a 17-bit payload
 * length, a self-contained flag and 6 bits of padding, then a CRC24 of those
 * 3 bytes), the payload, and a CRC32 of the payload, little-endian. A
 * self-contained segment holds one or more whole envelopes; a larger
 * envelope is cut into segments that are not self-contained and carry
 * nothing else. Uncompressed only: we never ask for compression. */

#define CRC24_INIT 0x875060u
#define CRC24_POLY 0x1974F0Bu /* x^24 included: it clears the bit shifted out */

uint32_t cql_crc24(const uint8_t *p, size_t n)
{
    uint32_t crc = CRC24_INIT;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 16;
        for (int bit = 0; bit < 8; bit++) {
            crc <<= 1;
            if (crc & 0x1000000u)
                crc ^= CRC24_POLY;
        }
    }
    return crc & 0xFFFFFFu;
}

/* The reflected CRC-32 of zlib and java.util.zip.CRC32 (polynomial
 * 0xEDB88320), four bits at a time: a 16-entry table is small enough to be
 * a constant, and CQL traffic needs no more speed than this gives. */
static const uint32_t crc32_nibble[16] = {
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
    0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
    0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t cql_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc32_nibble[crc & 15];
        crc = (crc >> 4) ^ crc32_nibble[crc & 15];
    }
    return ~crc;
}

/* Cassandra's payload CRC32 runs over four fixed bytes first
 * (org.apache.cassandra.net.Crc), then the payload. */
static uint32_t seg_payload_crc(const uint8_t *p, size_t n)
{
    static const uint8_t seed[4] = { 0xFA, 0x2D, 0x55, 0xCA };
    return cql_crc32(cql_crc32(0, seed, sizeof seed), p, n);
}

static uint32_t le24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static void put_le24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
}

static uint32_t le32(const uint8_t *p)
{
    return le24(p) | (uint32_t)p[3] << 24;
}

size_t cql_segments_size(size_t n)
{
    size_t segs = n <= CQL_SEGMENT_MAX_PAYLOAD
                      ? 1
                      : (n + CQL_SEGMENT_MAX_PAYLOAD - 1) / CQL_SEGMENT_MAX_PAYLOAD;
    return n + segs * (CQL_SEGMENT_HEADER_LEN + CQL_SEGMENT_TRAILER_LEN);
}

/* One segment of n <= CQL_SEGMENT_MAX_PAYLOAD bytes at out; returns the
 * end of what was written. */
static uint8_t *seg_put(uint8_t *out, const uint8_t *p, size_t n, bool self_contained)
{
    put_le24(out, (uint32_t)n | (self_contained ? 1u << 17 : 0));
    put_le24(out + 3, cql_crc24(out, 3));
    out += CQL_SEGMENT_HEADER_LEN;
    if (n)
        memcpy(out, p, n);
    uint32_t crc = seg_payload_crc(p, n);
    put_le24(out + n, crc);
    out[n + 3] = (uint8_t)(crc >> 24);
    return out + n + CQL_SEGMENT_TRAILER_LEN;
}

void cql_segments_encode(const uint8_t *p, size_t n, uint8_t *out)
{
    if (n <= CQL_SEGMENT_MAX_PAYLOAD) {
        seg_put(out, p, n, true);
        return;
    }
    while (n) {
        size_t k = n < CQL_SEGMENT_MAX_PAYLOAD ? n : CQL_SEGMENT_MAX_PAYLOAD;
        out = seg_put(out, p, k, false);
        p += k;
        n -= k;
    }
}

int cql_segment_header_decode(const uint8_t *h, size_t *payload_len, bool *self_contained,
                              cs_err *e)
{
    uint32_t want = le24(h + 3), got = cql_crc24(h, 3);
    if (want != got)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL v5 segment: header CRC24 mismatch (read 0x%06" PRIx32
                          ", computed 0x%06" PRIx32 ")",
                          want, got);
    uint32_t v = le24(h);
    *payload_len = v & CQL_SEGMENT_MAX_PAYLOAD; /* the padding bits above are ignored */
    *self_contained = (v >> 17) & 1;
    return 0;
}

int cql_segment_payload_check(const uint8_t *p, size_t n, const uint8_t *trailer, cs_err *e)
{
    uint32_t want = le32(trailer), got = seg_payload_crc(p, n);
    if (want != got)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL v5 segment: payload CRC32 mismatch (read 0x%08" PRIx32
                          ", computed 0x%08" PRIx32 ")",
                          want, got);
    return 0;
}

/* The next segment's header, checked against where envelopes may end: an
 * envelope begun in a self-contained segment must end there, and one begun
 * in a segment that is not must go on in segments that are not. */
static int seg_header(seg_reader *sr, size_t *plen, cs_err *e)
{
    uint8_t h[CQL_SEGMENT_HEADER_LEN];
    bool sc;
    int rc = sr->read(sr->src, h, sizeof h, e);
    if (rc || (rc = cql_segment_header_decode(h, plen, &sc, e)))
        return rc;
    if (sr->mid && sr->sc)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: an envelope runs past the "
                                         "end of its self-contained segment");
    if (sr->mid && sc)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: a self-contained segment "
                                         "starts inside an unfinished envelope");
    sr->sc = sc;
    return 0;
}

/* A payload of n bytes into dst, and its trailer checked. */
static int seg_payload(seg_reader *sr, uint8_t *dst, size_t n, cs_err *e)
{
    uint8_t t[CQL_SEGMENT_TRAILER_LEN];
    int rc = sr->read(sr->src, dst, n, e);
    if (rc || (rc = sr->read(sr->src, t, sizeof t, e)))
        return rc;
    return cql_segment_payload_check(dst, n, t, e);
}

/* The next n bytes of the envelope stream into dst. */
static int seg_read(seg_reader *sr, uint8_t *dst, size_t n, cs_err *e)
{
    int rc;
    size_t plen;
    while (n) {
        if (sr->pos < sr->len) {
            size_t k = n < sr->len - sr->pos ? n : sr->len - sr->pos;
            memcpy(dst, sr->buf + sr->pos, k);
            sr->pos += k;
            dst += k;
            n -= k;
            sr->mid = true;
            continue;
        }
        if ((rc = seg_header(sr, &plen, e)))
            return rc;
        sr->pos = sr->len = 0;
        if (!sr->sc && plen <= n) {
            /* A whole segment of a large envelope: no copy through buf. */
            if ((rc = seg_payload(sr, dst, plen, e)))
                return rc;
            dst += plen;
            n -= plen;
            sr->mid = sr->mid || plen > 0;
            continue;
        }
        if (!sr->buf)
            sr->buf = cs_malloc(CQL_SEGMENT_MAX_PAYLOAD);
        if ((rc = seg_payload(sr, sr->buf, plen, e)))
            return rc;
        sr->len = plen;
    }
    return 0;
}

/* An envelope was read whole: a segment that is not self-contained must
 * not hold anything after it. */
static int seg_envelope_done(seg_reader *sr, cs_err *e)
{
    sr->mid = false;
    if (!sr->sc && sr->pos < sr->len)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: a segment that is not "
                                         "self-contained holds more than one envelope");
    return 0;
}

/* The body length in an envelope header, within the protocol's limit. */
static int envelope_len(const uint8_t *h, size_t *len, cs_err *e)
{
    int32_t n = (int32_t)be32(h + 5);
    if (n < 0 || (size_t)n > CQL_MAX_BODY)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL response: frame length %" PRId32
                          " is outside 0..256 MiB", n);
    *len = (size_t)n;
    return 0;
}

typedef struct mem_src {
    const uint8_t *p;
    size_t left;
} mem_src;

static int mem_read(void *src, uint8_t *buf, size_t n, cs_err *e)
{
    mem_src *m = src;
    if (m->left < n)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: the input stops inside "
                                         "a segment");
    if (n)
        memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return 0;
}

int cql_segments_decode(const uint8_t *in, size_t len, cql_envelope_fn fn, void *arg,
                        cs_err *e)
{
    mem_src m = { in, len };
    seg_reader sr = { .read = mem_read, .src = &m };
    uint8_t h[CQL_HEADER_LEN];
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = 0;
    while (!rc && (m.left || sr.pos < sr.len)) {
        if ((rc = seg_read(&sr, h, sizeof h, e)) || (rc = envelope_len(h, &blen, e)))
            break;
        /* No envelope is longer than the input: say so before allocating. */
        if (blen > len) {
            rc = cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: an envelope of %zu "
                            "bytes in %zu bytes of input", blen, len);
            break;
        }
        body = cs_malloc(blen ? blen : 1);
        if ((rc = seg_read(&sr, body, blen, e)) || (rc = seg_envelope_done(&sr, e)))
            break;
        rc = fn(arg, h, body, blen);
        free(body);
        body = NULL;
    }
    free(body);
    free(sr.buf);
    return rc;
}

/* ---------------------------------------------------------------------
 * (4) Result accessors. */

bool cql_result_schema_changed(const cql_result *r)
{
    return r && r->schema_changed;
}

size_t cql_result_rows(const cql_result *r) { return r ? r->nrows : 0; }
size_t cql_result_cols(const cql_result *r) { return r ? r->ncols : 0; }

const char *cql_result_colname(const cql_result *r, size_t col)
{
    if (!r || col >= r->ncols)
        return NULL;
    return r->colnames[col] ? r->colnames[col] : "";
}

int cql_result_col(const cql_result *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->ncols && i < INT_MAX; i++)
        if (r->colnames[i] && strcmp(r->colnames[i], name) == 0)
            return (int)i;
    return -1;
}

const cql_value *cql_result_value(const cql_result *r, size_t row, size_t col)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return NULL;
    return &r->cells[row * r->ncols + col];
}

const char *cql_result_text(const cql_result *r, size_t row, const char *col)
{
    int i = cql_result_col(r, col);
    if (i < 0)
        return NULL;
    const cql_value *v = cql_result_value(r, row, (size_t)i);
    return v && v->kind == CQL_SCALAR ? v->text : NULL;
}

void cql_result_free(cql_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nrows * r->ncols; i++)
        value_free(&r->cells[i]);
    for (size_t i = 0; i < r->ncols; i++)
        free(r->colnames[i]);
    free(r->cells);
    free(r->colnames);
    free(r);
}

/* Move the rows of page src to the end of dst; src is consumed. */
static int append_page(cql_result *dst, cql_result *src, cs_err *e)
{
    int rc = 0;
    if (src->nrows && src->ncols != dst->ncols) {
        rc = cs_err_set(e, CS_E_PROTO,
                        "malformed CQL RESULT: a later page has %zu columns, the first had %zu",
                        src->ncols, dst->ncols);
        goto out;
    }
    size_t add = src->nrows * src->ncols, have = dst->nrows * dst->ncols;
    if (add > dst->cap_cells - have) {
        size_t cap = dst->cap_cells ? dst->cap_cells : 64;
        while (cap - have < add)
            cap *= 2; /* bounded by memory we already hold, so no overflow */
        dst->cells = cs_realloc(dst->cells, cap * sizeof *dst->cells);
        dst->cap_cells = cap;
    }
    if (add)
        memcpy(dst->cells + have, src->cells, add * sizeof *src->cells);
    dst->nrows += src->nrows;
    src->nrows = 0; /* the values now belong to dst */
out:
    cql_result_free(src);
    return rc;
}

/* ---------------------------------------------------------------------
 * (5) Frames and socket I/O. */

static void put_u8(cs_buf *b, uint8_t v) { cs_buf_add(b, &v, 1); }

static void put_u16(cs_buf *b, uint16_t v)
{
    uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    cs_buf_add(b, p, 2);
}

static void put_u32(cs_buf *b, uint32_t v)
{
    uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    cs_buf_add(b, p, 4);
}

/* [string]; callers only pass short constants. */
static void put_string(cs_buf *b, const char *s)
{
    size_t n = strlen(s);
    put_u16(b, (uint16_t)n);
    cs_buf_add(b, s, n);
}

/* [bytes] / [long string]; n was checked to fit an [int] by the caller. */
static void put_bytes(cs_buf *b, const void *p, size_t n)
{
    put_u32(b, (uint32_t)n);
    cs_buf_add(b, p, n);
}

static void frame_begin(cql_conn *c, cs_buf *b, uint8_t opcode)
{
    cs_buf_reset(b);
    put_u8(b, (uint8_t)c->version);
    put_u8(b, 0); /* no flags: no compression, no tracing, no beta */
    put_u16(b, (uint16_t)c->stream);
    put_u8(b, opcode);
    put_u32(b, 0); /* patched by frame_finish */
}

static void frame_finish(cs_buf *b)
{
    uint32_t n = (uint32_t)(b->len - CQL_HEADER_LEN);
    uint8_t *p = (uint8_t *)b->data + 5;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

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
/* A response frame: body is the whole body; payload/plen what follows the
 * optional tracing id, warnings and custom payload. */
typedef struct frame {
    uint8_t opcode;
    int version; /* from the header, response bit cleared */
    uint8_t *body;
    const uint8_t *payload;
    size_t plen;
} frame;

/* Skip what a response may carry before its message, by header flag. The
 * warnings go to the debug log: they are the server's, never ours. */
static int strip_extras(uint8_t flags, int version, rd *r, cs_err *e)
{
    const uint8_t *s;
    size_t n;
    bool null;
    uint16_t count;
    /* v5 moved compression into the segments and ignores this flag. */
    if ((flags & FRAME_COMPRESSED) && version < CQL_V5)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL response: a compressed frame, but no "
                                         "compression was negotiated");
    if ((flags & FRAME_TRACING) && rd_raw(r, 16, &s, "tracing id", e))
        return CS_E_PROTO;
    if (flags & FRAME_WARNING) {
        if (rd_u16(r, &count, "warning list", e))
            return CS_E_PROTO;
        for (size_t i = 0; i < count; i++) {
            if (rd_string(r, &s, &n, "warning", e))
                return CS_E_PROTO;
            cs_debug("Cassandra warning: %.*s", (int)n, (const char *)s);
        }
    }
    if (flags & FRAME_CUSTOM_PAYLOAD) {
        if (rd_u16(r, &count, "custom payload", e))
            return CS_E_PROTO;
        for (size_t i = 0; i < count; i++)
            if (rd_string(r, &s, &n, "custom payload key", e) ||
                rd_bytes(r, &s, &n, &null, "custom payload value", e))
                return CS_E_PROTO;
    }
    return 0;
}

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
    return envelope_len(h, len, e);
}

/* The next n bytes of the envelope stream: straight off the socket until
 * STARTUP is answered, out of segments after that on v5. */
static int in_read(cql_conn *c, void *buf, size_t n, cs_err *e)
{
    if (c->framed)
        return seg_read(&c->in, buf, n, e);
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
        if (!cs_net_is_tls(c->net) && !c->framed && (h[0] == 0x15 || h[0] == 0x16) && h[1] == 0x03) {
            rc = transport_error(c, e, "the server answered with TLS (the node requires TLS "
                                       "on this port)");
            goto fail;
        }
        if ((rc = check_header(c, h, &len, e)))
            goto fail;
        f->body = cs_malloc(len);
        if ((rc = in_read(c, f->body, len, e)))
            goto fail;
        if (c->framed && (rc = seg_envelope_done(&c->in, e)))
            goto fail;
        if ((int16_t)((unsigned)h[2] << 8 | h[3]) == c->stream)
            break;
        free(f->body);
        f->body = NULL;
    }
    f->opcode = h[4];
    f->version = h[0] & 0x7f;
    rd r = { f->body, len, "response" };
    if ((rc = strip_extras(h[1], f->version, &r, e)))
        goto fail;
    f->payload = r.p;
    f->plen = r.left;
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
 * (6) Connection set-up and queries. */

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
    cs_buf token = CS_BUF_INIT, req = CS_BUF_INIT;
    frame f = { 0 };
    int rc;
    if (!o->username) {
        rc = cs_err_set(e, CS_E_INVAL, "cannot connect to %s: server requires authentication; "
                        "set username and password", c->peer);
        goto out;
    }
    (void)challenge; /* the authenticator class name; PLAIN is all we speak */
    const char *pw = o->password ? o->password : "";
    cs_buf_addch(&token, '\0');
    cs_buf_addstr(&token, o->username);
    cs_buf_addch(&token, '\0');
    cs_buf_addstr(&token, pw);
    if (token.len > INT32_MAX) {
        rc = cs_err_set(e, CS_E_INVAL, "cannot connect to %s: username or password too long",
                        c->peer);
        goto out;
    }
    frame_begin(c, &req, OP_AUTH_RESPONSE);
    put_bytes(&req, token.data, token.len);
    frame_finish(&req);
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
    if (token.data)
        explicit_bzero(token.data, token.len);
    if (req.data)
        explicit_bzero(req.data, req.len);
    cs_buf_free(&token);
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
    frame_begin(c, &req, OP_STARTUP);
    put_u16(&req, 1);
    put_string(&req, "CQL_VERSION");
    put_string(&req, "3.0.0");
    frame_finish(&req);
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

/* QUERY <query><consistency><flags><page_size>[<paging_state>]; the flags
 * are a [byte] in v4, an [int] in v5. */
static void build_query(cql_conn *c, cs_buf *req, const char *cql, size_t cql_len,
                        uint16_t consistency, const uint8_t *ps, size_t ps_len)
{
    uint32_t flags = QUERY_PAGE_SIZE | (ps ? QUERY_PAGING_STATE : 0);
    frame_begin(c, req, OP_QUERY);
    put_bytes(req, cql, cql_len);
    put_u16(req, consistency);
    if (c->version >= CQL_V5)
        put_u32(req, flags); /* v5 widened the flags from a [byte] to an [int] */
    else
        put_u8(req, (uint8_t)flags);
    put_u32(req, CQL_PAGE_SIZE);
    if (ps)
        put_bytes(req, ps, ps_len);
    frame_finish(req);
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
    if (consistency >= CQL_N_CONSISTENCY) {
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
        build_query(c, &req, cql, cql_len, consistency, ps, ps_len);
        if ((rc = query_page(c, &req, &page, &next, &next_len, e)))
            goto out;
        if (!res)
            res = page;
        else if ((rc = append_page(res, page, e)))
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

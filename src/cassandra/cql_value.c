/* cql_value.c - CQL column types and value decoding (see cql_value.h).
 *
 * Pure and fuzzed (tests/fuzz/fuzz_cql.c reaches it through
 * cql_decode_result): every length that comes from the peer is checked
 * against the bytes actually left before it is used, nesting is bounded,
 * and element counts are checked against the remaining input before
 * anything is allocated for them. */
#include "cassandra/cql_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

/* Real schemas nest a handful of levels; the bound keeps recursion (type
 * parsing and value decoding follow the same tree) off the stack's edge. */
#define CQL_MAX_TYPE_DEPTH 32

void cql_type_free(cql_type *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        if (t->sub)
            cql_type_free(&t->sub[i]);
        if (t->names)
            free(t->names[i]);
    }
    free(t->sub);
    free(t->names);
    t->sub = NULL;
    t->names = NULL;
    t->n = 0;
}

static int parse_type(cql_rd *r, cql_type *t, int depth, cs_err *e);

/* Sub types of list/set/map/tuple; t->n and t->sub are set before parsing so
 * that type_free releases a half-parsed tree. */
static int parse_subtypes(cql_rd *r, cql_type *t, size_t n, int depth, cs_err *e)
{
    t->n = n;
    t->sub = cs_calloc(n, sizeof *t->sub);
    for (size_t i = 0; i < n; i++)
        if (parse_type(r, &t->sub[i], depth + 1, e))
            return CS_E_PROTO;
    return 0;
}

/* UDT: <ks><udt_name><n><name_1><type_1>...; only field names are kept. */
static int parse_udt(cql_rd *r, cql_type *t, int depth, cs_err *e)
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
    cql_type_free(&v);
}

static bool is_native_type(uint16_t id)
{
    return (id >= T_ASCII && id <= T_INT) || (id >= T_TIMESTAMP && id <= T_DURATION);
}

/* One [option] describing a column or element type. */
static int parse_type(cql_rd *r, cql_type *t, int depth, cs_err *e)
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

void cql_value_free(cql_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        cql_value_free(&v->items[i]);
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
static int rd_uvint(cql_rd *r, uint64_t *v, const char *field, cs_err *e)
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
static int rd_vint(cql_rd *r, int64_t *v, const char *field, cs_err *e)
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
    cql_rd r = { p, n, "duration value" };
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
int cql_cell_decode(cql_rd *r, const cql_type *t, cql_value *out, cs_err *e)
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

static int trailing_bytes(const cql_rd *r, cs_err *e)
{
    return cs_err_set(e, CS_E_PROTO,
                      "malformed CQL %s: %zu unexpected bytes after the last element", r->what,
                      r->left);
}

/* list/set: [int] n then n [bytes]; map: [int] n then n key/value pairs. */
static int decode_collection(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                             cs_err *e)
{
    cql_rd r = { p, n, "collection value" };
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
        if (cql_cell_decode(&r, &t->sub[map ? i % 2 : 0], &out->items[i], e))
            return CS_E_PROTO;
    return r.left ? trailing_bytes(&r, e) : 0;
}

/* UDT (a map of field name to value) and tuple (a list): one [bytes] per
 * field in type order; a value may stop early, the missing fields are null. */
static int decode_fields(const cql_type *t, const uint8_t *p, size_t n, cql_value *out,
                         cs_err *e)
{
    cql_rd r = { p, n, t->id == T_UDT ? "user type value" : "tuple value" };
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
        if (cql_cell_decode(&r, &t->sub[i], v, e))
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
    cql_rd r = { p, n, "vector value" };
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

int cql_type_parse(cql_rd *r, cql_type *t, cs_err *e)
{
    return parse_type(r, t, 0, e);
}

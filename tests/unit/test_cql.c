/* test_cql.c - the CQL client: RESULT/ERROR decoding from hand-built
 * bodies (every type, nesting, UDT, nulls, paging, truncation, hostile
 * counts, v4 and v5 differences, vectors), v5 segments (CRC24/CRC32 vectors,
 * encoding, corruption, envelopes spanning segments or sharing one), the
 * v5-then-v4 decision, and the connection logic against a scripted fake
 * server on loopback speaking v5 or only older versions (negotiation,
 * STARTUP, SASL PLAIN, paging, errors, timeouts, stray frames). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cassandra/cql.h"
#include "common/buf.h"
#include "common/err.h"

/* ---------------------------------------------------------------------
 * Encoders for the protocol notations. */

static void enc_byte(cs_buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    cs_buf_add(b, &c, 1);
}

static void enc_short(cs_buf *b, unsigned v)
{
    enc_byte(b, v >> 8);
    enc_byte(b, v);
}

static void enc_int(cs_buf *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    enc_byte(b, u >> 24);
    enc_byte(b, u >> 16);
    enc_byte(b, u >> 8);
    enc_byte(b, u);
}

static void enc_string(cs_buf *b, const char *s)
{
    enc_short(b, (unsigned)strlen(s));
    cs_buf_addstr(b, s);
}

static void enc_bytes(cs_buf *b, const void *p, size_t n)
{
    enc_int(b, (int32_t)n);
    cs_buf_add(b, p, n);
}

static void enc_null(cs_buf *b) { enc_int(b, -1); }

/* A [bytes] cell whose content is another buffer (collections, UDTs). */
static void enc_buf_bytes(cs_buf *b, const cs_buf *inner)
{
    enc_bytes(b, inner->data, inner->len);
}

/* Rows header with a global table spec and one column of a type that the
 * caller appends (after this returns, add the type option, then rows). */
static void rows_begin(cs_buf *b, int32_t flags, int32_t ncols)
{
    enc_int(b, 2);
    enc_int(b, flags | 0x0001);
    enc_int(b, ncols);
}

static cql_result *decode_ok(const cs_buf *b)
{
    cql_result *r = NULL;
    uint8_t *ps = NULL;
    size_t pslen = 0;
    cs_err e;
    cs_err_clear(&e);
    int rc = cql_decode_result((const uint8_t *)b->data, b->len, &r, &ps, &pslen, &e);
    if (rc)
        fprintf(stderr, "decode failed: %s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    assert_null(ps);
    return r;
}

static void decode_fails(const cs_buf *b, const char *needle)
{
    cql_result *r = (cql_result *)1;
    uint8_t *ps = (uint8_t *)1;
    size_t pslen = 7;
    cs_err e;
    cs_err_clear(&e);
    int rc = cql_decode_result((const uint8_t *)b->data, b->len, &r, &ps, &pslen, &e);
    assert_int_equal(rc, CS_E_PROTO);
    assert_int_equal(e.code, CS_E_PROTO);
    assert_null(r);
    assert_null(ps);
    assert_int_equal(pslen, 0);
    if (needle && !strstr(e.msg, needle)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", e.msg, needle);
        fail();
    }
}

/* ---------------------------------------------------------------------
 * Simple kinds. */

static void test_void(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 1);
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_rows(r), 0);
    assert_int_equal(cql_result_cols(r), 0);
    assert_null(cql_result_value(r, 0, 0));
    assert_int_equal(cql_result_col(r, "x"), -1);
    cql_result_free(r);
    cs_buf_free(&b);
}

static void test_set_keyspace(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 3);
    enc_string(&b, "ks1");
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_rows(r), 0);
    cql_result_free(r);
    cs_buf_reset(&b);
    enc_int(&b, 3);
    enc_short(&b, 10); /* claims 10 bytes, has 2 */
    cs_buf_addstr(&b, "ks");
    decode_fails(&b, "keyspace name is truncated");
    cs_buf_free(&b);
}

static void test_schema_change(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 5);
    enc_string(&b, "CREATED");
    enc_string(&b, "TABLE");
    enc_string(&b, "ks");
    enc_string(&b, "t");
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_rows(r), 0);
    assert_int_equal(cql_result_cols(r), 0);
    cql_result_free(r);

    cs_buf_reset(&b);
    enc_int(&b, 5);
    enc_string(&b, "DROPPED");
    enc_string(&b, "FUNCTION");
    enc_string(&b, "ks");
    enc_string(&b, "f");
    enc_short(&b, 2);
    enc_string(&b, "int");
    enc_string(&b, "text");
    r = decode_ok(&b);
    cql_result_free(r);
    cs_buf_free(&b);
}

static void test_bad_kinds(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 4);
    decode_fails(&b, "Prepared");
    cs_buf_reset(&b);
    enc_int(&b, 99);
    decode_fails(&b, "unknown result kind 99");
    cs_buf_reset(&b);
    decode_fails(&b, "result kind is truncated");
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * Scalars: one column of each type, one row, value checked as text. */

typedef struct scalar_case {
    unsigned type;
    const char *bytes;
    size_t n;
    const char *want;
} scalar_case;

static const scalar_case scalar_cases[] = {
    { 0x01, "abc", 3, "abc" },
    { 0x02, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8, "-2" },
    { 0x02, "\x7f\xff\xff\xff\xff\xff\xff\xff", 8, "9223372036854775807" },
    { 0x03, "\xde\xad\xbe\xef", 4, "0xdeadbeef" },
    { 0x03, "", 0, "0x" },
    { 0x04, "\x01", 1, "true" },
    { 0x04, "\x00", 1, "false" },
    { 0x05, "\x00\x00\x00\x00\x00\x00\x00\x2a", 8, "42" },
    { 0x06, "\x00\x00\x00\x02\x04\xd2", 6, "12.34" },
    { 0x06, "", 0, "" },
    { 0x07, "\x3f\xf8\x00\x00\x00\x00\x00\x00", 8, "1.5" },
    { 0x08, "\x3e\x80\x00\x00", 4, "0.25" },
    { 0x09, "\xff\xfe\x1d\xc0", 4, "-123456" },
    { 0x09, "", 0, "" }, /* empty, not null */
    { 0x0B, "\x00\x00\x01\x8b\xcf\xe5\x68\x00", 8, "1700000000000" },
    { 0x0C, "\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67\x89\xab\xcd\xef", 16,
      "12345678-9abc-def0-0123-456789abcdef" },
    { 0x0D, "h\xc3\xa9llo", 6, "h\xc3\xa9llo" },
    { 0x0E, "\x00\x80", 2, "128" },
    { 0x0E, "\xff\x7f", 2, "-129" },
    { 0x0E, "\x80", 1, "-128" },
    { 0x0E, "\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9, "18446744073709551616" },
    { 0x0E, "", 0, "" },
    { 0x0F, "\xe4\x0a\x8c\x40\x12\x34\x11\xee\x80\x00\x00\x00\x00\x00\x00\x01", 16,
      "e40a8c40-1234-11ee-8000-000000000001" },
    { 0x10, "\x0a\x00\x00\x01", 4, "10.0.0.1" },
    { 0x10, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", 16, "::1" },
    { 0x11, "\x80\x00\x00\x00", 4, "2147483648" },
    { 0x11, "\xff\xff\xff\xff", 4, "4294967295" },
    { 0x12, "\x00\x00\x00\x00\x3b\x9a\xca\x00", 8, "1000000000" },
    { 0x13, "\xff\xfe", 2, "-2" },
    { 0x14, "\xff", 1, "-1" },
    { 0x14, "\x7f", 1, "127" },
    { 0x15, "\x02\x04\x06", 3, "1mo2d3ns" },
    { 0x15, "", 0, "" },
    { 0x0D, "a\0b", 3, "a" }, /* text stops at the NUL, raw does not */
};

/* One row, one column "c" of the type holding the n bytes; a custom type
 * (0x00) is named cls. */
static void one_cell_body(cs_buf *b, unsigned type, const char *cls, const void *bytes,
                          size_t n)
{
    rows_begin(b, 0, 1);
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "c");
    enc_short(b, type);
    if (type == 0x00)
        enc_string(b, cls);
    enc_int(b, 1);
    enc_bytes(b, bytes, n);
}

static void scalar_body(cs_buf *b, unsigned type, const void *bytes, size_t n)
{
    one_cell_body(b, type, "org.apache.cassandra.db.marshal.VectorType", bytes, n);
}

static void test_scalars(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof scalar_cases / sizeof scalar_cases[0]; i++) {
        const scalar_case *c = &scalar_cases[i];
        cs_buf b = CS_BUF_INIT;
        scalar_body(&b, c->type, c->bytes, c->n);
        cql_result *r = decode_ok(&b);
        assert_int_equal(cql_result_rows(r), 1);
        assert_int_equal(cql_result_cols(r), 1);
        assert_string_equal(cql_result_colname(r, 0), "c");
        const cql_value *v = cql_result_value(r, 0, 0);
        assert_non_null(v);
        assert_int_equal(v->kind, CQL_SCALAR);
        if (strcmp(v->text, c->want) != 0) {
            fprintf(stderr, "type 0x%02x: got '%s', want '%s'\n", c->type, v->text, c->want);
            fail();
        }
        assert_string_equal(cql_result_text(r, 0, "c"), c->want);
        assert_non_null(v->raw);
        assert_int_equal(v->raw_len, c->n);
        assert_memory_equal(v->raw, c->bytes, c->n);
        cql_result_free(r);
        cs_buf_free(&b);
    }
}

static void test_custom_type(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    scalar_body(&b, 0x00, "\x01\x02", 2);
    cql_result *r = decode_ok(&b);
    assert_string_equal(cql_result_text(r, 0, "c"), "0x0102");
    cql_result_free(r);
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * vector<T, n> (Cassandra 5.0): a custom type named by its class. */

#define M "org.apache.cassandra.db.marshal."

static cql_result *decode_custom(const char *cls, const void *bytes, size_t n)
{
    cs_buf b = CS_BUF_INIT;
    one_cell_body(&b, 0x00, cls, bytes, n);
    cql_result *r = decode_ok(&b);
    cs_buf_free(&b);
    return r;
}

static void custom_fails(const char *cls, const void *bytes, size_t n, const char *needle)
{
    cs_buf b = CS_BUF_INIT;
    one_cell_body(&b, 0x00, cls, bytes, n);
    decode_fails(&b, needle);
    cs_buf_free(&b);
}

/* The texts of a list value's items, joined with "," (nested lists in []). */
static void list_text(const cql_value *v, cs_buf *out)
{
    if (v->kind != CQL_LIST) {
        cs_buf_addstr(out, v->kind == CQL_NULL ? "null" : v->text);
        return;
    }
    cs_buf_addch(out, '[');
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            cs_buf_addch(out, ',');
        list_text(&v->items[i], out);
    }
    cs_buf_addch(out, ']');
}

static void assert_vector(const char *cls, const void *bytes, size_t n, const char *want)
{
    cql_result *r = decode_custom(cls, bytes, n);
    cs_buf got = CS_BUF_INIT;
    list_text(cql_result_value(r, 0, 0), &got);
    cs_buf_addch(&got, '\0');
    if (strcmp(got.data, want) != 0) {
        fprintf(stderr, "%s: got '%s', want '%s'\n", cls, got.data, want);
        fail();
    }
    cs_buf_free(&got);
    cql_result_free(r);
}

static void hex_bytes(const char *hex, uint8_t *out, size_t *n)
{
    size_t len = strlen(hex) / 2;
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *n = len;
}

static void test_vector_fixed_elements(void **state)
{
    (void)state;
    /* vector<float, 3> [1.5, -2, 0.25]: 4 bytes each, no lengths; the
     * class name spelt as Cassandra writes it, blanks around the comma */
    assert_vector(M "VectorType(" M "FloatType , 3)",
                  "\x3f\xc0\x00\x00\xc0\x00\x00\x00\x3e\x80\x00\x00", 12, "[1.5,-2,0.25]");
    /* without the package, blanks elsewhere */
    assert_vector(" VectorType( Int32Type,2 )", "\x00\x00\x00\x07\xff\xff\xff\xfe", 8, "[7,-2]");
    assert_vector(M "VectorType(" M "LongType,1)", "\x00\x00\x00\x00\x00\x00\x01\x00", 8,
                  "[256]");
    assert_vector(M "VectorType(" M "BooleanType,2)", "\x01\x00", 2, "[true,false]");
    assert_vector(M "VectorType(" M "UUIDType,1)",
                  "\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0", 16,
                  "[12345678-9abc-def0-1234-56789abcdef0]");
    /* a vector of fixed vectors is fixed too: 2 x 2 ints */
    assert_vector(M "VectorType(" M "VectorType(" M "Int32Type,2),2)",
                  "\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04", 16,
                  "[[1,2],[3,4]]");
    /* raw bytes kept per element, for hashing */
    cql_result *r = decode_custom(M "VectorType(" M "FloatType,2)",
                                  "\x3f\x80\x00\x00\x40\x00\x00\x00", 8);
    const cql_value *v = cql_result_value(r, 0, 0);
    assert_int_equal(v->kind, CQL_LIST);
    assert_int_equal(v->n, 2);
    assert_int_equal(v->items[1].raw_len, 4);
    assert_memory_equal(v->items[1].raw, "\x40\x00\x00\x00", 4);
    cql_result_free(r);
}

static void test_vector_variable_elements(void **state)
{
    (void)state;
    /* vector<text, 3>: each element after an unsigned vint length */
    assert_vector(M "VectorType(" M "UTF8Type,3)", "\x02hi\x00\x03" "abc", 8, "[hi,,abc]");
    /* a length of 200 takes two vint bytes (0x80 | 0, 200) */
    uint8_t big[2 + 200];
    big[0] = 0x80;
    big[1] = 200;
    memset(big + 2, 'x', 200);
    cql_result *r = decode_custom(M "VectorType(" M "AsciiType,1)", big, sizeof big);
    const cql_value *v = cql_result_value(r, 0, 0);
    assert_int_equal(v->n, 1);
    assert_int_equal(strlen(v->items[0].text), 200);
    cql_result_free(r);
    /* smallint and date never vary in size but Cassandra still writes lengths */
    assert_vector(M "VectorType(" M "ShortType,2)", "\x02\x00\x05\x02\xff\xff", 6, "[5,-1]");
    /* varint, and frozen collections and tuples as elements */
    assert_vector(M "VectorType(" M "IntegerType,2)", "\x01\x7f\x02\x01\x00", 5, "[127,256]");
    assert_vector(M "VectorType(" M "FrozenType(" M "ListType(" M "Int32Type)),2)",
                  "\x0c\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x09"
                  "\x04\x00\x00\x00\x00",
                  18, "[[9],[]]");
    assert_vector(M "VectorType(" M "TupleType(" M "Int32Type," M "UTF8Type),1)",
                  "\x0d\x00\x00\x00\x04\x00\x00\x00\x05\x00\x00\x00\x01z", 14, "[[5,z]]");
    /* a vector of vectors of text */
    assert_vector(M "VectorType(" M "VectorType(" M "UTF8Type,2),1)", "\x04\x01" "a\x01" "b", 5,
                  "[[a,b]]");
}

static void test_vector_malformed(void **state)
{
    (void)state;
    const char *f3 = M "VectorType(" M "FloatType,3)";
    custom_fails(f3, "\x00\x00\x00\x00\x00\x00\x00\x00", 8, "vector of 3 elements");
    custom_fails(f3, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 13, "vector");
    const char *t2 = M "VectorType(" M "UTF8Type,2)";
    custom_fails(t2, "\x01", 1, "vector of 2 elements");      /* fewer bytes than elements */
    custom_fails(t2, "\x05" "ab\x01" "c", 5, "truncated");     /* a length past the end */
    custom_fails(t2, "\x01" "a\x01" "bXY", 6, "unexpected bytes"); /* bytes after the last */
    custom_fails(t2, "\x01" "a\xc0", 3, "truncated");          /* a vint cut short */
    /* the empty value (which Cassandra refuses to store) is the empty text */
    cql_result *r = decode_custom(f3, "", 0);
    assert_string_equal(cql_result_text(r, 0, "c"), "");
    cql_result_free(r);
}

/* Class names that are not a vector this understands stay hex. */
static void test_vector_names_not_understood(void **state)
{
    (void)state;
    static const char *const names[] = {
        M "VectorType",                                 /* no parameters */
        M "VectorType(" M "FloatType)",                 /* no dimension */
        M "VectorType(" M "FloatType,0)",
        M "VectorType(" M "FloatType,2147483648)",
        M "VectorType(" M "FloatType,-1)",
        M "VectorType(" M "FloatType,2",
        M "VectorType(" M "FloatType,2)x",
        M "VectorType(" M "FloatType,2,3)",
        M "VectorType(com.example.Mine,2)",
        M "VectorType(" M "MapType(" M "Int32Type),2)", /* a map of one type */
        M "VectorType(" M "ListType(" M "Int32Type," M "Int32Type),2)",
        M "VectorType(" M "TupleType(),2)",
        M "VectorType(" M "UserType(ks,61,62:" M "Int32Type),2)",
        M "ListType(" M "Int32Type)",                   /* not a vector at the top */
        M "LexicalUUIDType",
        "",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cql_result *r = decode_custom(names[i], "\x01\x02", 2);
        if (strcmp(cql_result_text(r, 0, "c"), "0x0102") != 0) {
            fprintf(stderr, "%s: not shown as hex\n", names[i]);
            fail();
        }
        cql_result_free(r);
    }
    /* nesting deeper than the decoder allows is refused, not recursed into */
    cs_buf deep = CS_BUF_INIT;
    for (int i = 0; i < 40; i++)
        cs_buf_addstr(&deep, "VectorType(");
    cs_buf_addstr(&deep, "Int32Type");
    for (int i = 0; i < 40; i++)
        cs_buf_addstr(&deep, ",1)");
    cs_buf_addch(&deep, '\0');
    cql_result *r = decode_custom(deep.data, "\x01\x02", 2);
    assert_string_equal(cql_result_text(r, 0, "c"), "0x0102");
    cql_result_free(r);
    cs_buf_free(&deep);
}

/* A RESULT body recorded from Cassandra 5.0.9 (protocol v4) for
 *   CREATE TABLE vecprobe.t (k int PRIMARY KEY, f vector<float, 3>,
 *     t vector<text, 2>, l vector<frozen<list<int>>, 2>, d vector<date, 2>,
 *     n vector<vector<bigint, 2>, 2>);
 *   INSERT ... VALUES (1, [1.5, -2, 0.25], ['hi', ''], [[9, 8], []],
 *     ['1970-01-02', '2026-12-03'], [[1, -1], [3, 4]]);
 *   SELECT k, f, t, l, d, n FROM vecprobe.t
 * Its class names have blanks around the comma; date elements carry
 * lengths though they never vary. */
static const char cassandra_vector_rows_hex[] =
    "000000020000000100000006000876656370726f626500017400016b0009000166000000"
    "596f72672e6170616368652e63617373616e6472612e64622e6d61727368616c2e566563"
    "746f7254797065286f72672e6170616368652e63617373616e6472612e64622e6d617273"
    "68616c2e466c6f617454797065202c203329000174000000586f72672e6170616368652e"
    "63617373616e6472612e64622e6d61727368616c2e566563746f7254797065286f72672e"
    "6170616368652e63617373616e6472612e64622e6d61727368616c2e5554463854797065"
    "202c20322900016c000000af6f72672e6170616368652e63617373616e6472612e64622e"
    "6d61727368616c2e566563746f7254797065286f72672e6170616368652e63617373616e"
    "6472612e64622e6d61727368616c2e46726f7a656e54797065286f72672e617061636865"
    "2e63617373616e6472612e64622e6d61727368616c2e4c69737454797065286f72672e61"
    "70616368652e63617373616e6472612e64622e6d61727368616c2e496e74333254797065"
    "2929202c2032290001640000005e6f72672e6170616368652e63617373616e6472612e64"
    "622e6d61727368616c2e566563746f7254797065286f72672e6170616368652e63617373"
    "616e6472612e64622e6d61727368616c2e53696d706c654461746554797065202c203229"
    "00016e000000886f72672e6170616368652e63617373616e6472612e64622e6d61727368"
    "616c2e566563746f7254797065286f72672e6170616368652e63617373616e6472612e64"
    "622e6d61727368616c2e566563746f7254797065286f72672e6170616368652e63617373"
    "616e6472612e64622e6d61727368616c2e4c6f6e6754797065202c203229202c20322900"
    "00000100000004000000010000000c3fc00000c00000003e800000000000040268690000"
    "00001a14000000020000000400000009000000040000000804000000000000000a048000"
    "00010480005136000000200000000000000001ffffffffffffffff000000000000000300"
    "00000000000004";

static void test_vector_from_cassandra(void **state)
{
    (void)state;
    uint8_t body[sizeof cassandra_vector_rows_hex / 2];
    size_t n;
    hex_bytes(cassandra_vector_rows_hex, body, &n);
    cs_buf b = CS_BUF_INIT;
    cs_buf_add(&b, body, n);
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_rows(r), 1);
    static const struct { const char *col, *want; } cols[] = {
        { "k", "1" },
        { "f", "[1.5,-2,0.25]" },
        { "t", "[hi,]" },
        { "l", "[[9,8],[]]" },
        { "d", "[2147483649,2147504438]" },
        { "n", "[[1,-1],[3,4]]" },
    };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        int c = cql_result_col(r, cols[i].col);
        assert_true(c >= 0);
        cs_buf got = CS_BUF_INIT;
        list_text(cql_result_value(r, 0, (size_t)c), &got);
        cs_buf_addch(&got, '\0');
        if (strcmp(got.data, cols[i].want) != 0) {
            fprintf(stderr, "column %s: got '%s', want '%s'\n", cols[i].col, got.data,
                    cols[i].want);
            fail();
        }
        cs_buf_free(&got);
    }
    cql_result_free(r);
    cs_buf_free(&b);
}

#undef M

static void test_bad_widths(void **state)
{
    (void)state;
    static const struct { unsigned type; size_t n; } bad[] = {
        { 0x02, 7 }, { 0x04, 2 }, { 0x05, 4 }, { 0x07, 4 }, { 0x08, 8 }, { 0x09, 3 },
        { 0x0B, 9 }, { 0x0C, 15 }, { 0x0F, 17 }, { 0x10, 5 }, { 0x11, 8 }, { 0x12, 4 },
        { 0x13, 1 }, { 0x14, 2 },
    };
    static const uint8_t zeros[32];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_buf b = CS_BUF_INIT;
        scalar_body(&b, bad[i].type, zeros, bad[i].n);
        decode_fails(&b, "malformed CQL value");
        cs_buf_free(&b);
    }
}

static void test_nulls_and_column_lookup(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    rows_begin(&b, 0, 2);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "k");
    enc_short(&b, 0x0D);
    enc_string(&b, "v");
    enc_short(&b, 0x09);
    enc_int(&b, 2);
    enc_bytes(&b, "a", 1);
    enc_null(&b);
    enc_bytes(&b, "b", 1);
    enc_bytes(&b, "\x00\x00\x00\x07", 4);
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_rows(r), 2);
    assert_int_equal(cql_result_col(r, "v"), 1);
    assert_int_equal(cql_result_col(r, "nope"), -1);
    assert_int_equal(cql_result_value(r, 0, 1)->kind, CQL_NULL);
    assert_null(cql_result_text(r, 0, "v"));
    assert_string_equal(cql_result_text(r, 1, "v"), "7");
    assert_string_equal(cql_result_text(r, 1, "k"), "b");
    assert_null(cql_result_text(r, 1, "nope"));
    assert_null(cql_result_value(r, 2, 0));
    assert_null(cql_result_value(r, 0, 2));
    assert_null(cql_result_colname(r, 2));
    cql_result_free(r);
    cs_buf_free(&b);
}

/* Per-column table specs (no global flag), as system tables send them. */
static void test_per_column_specs(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 2);
    enc_int(&b, 0);
    enc_int(&b, 2);
    enc_string(&b, "system");
    enc_string(&b, "local");
    enc_string(&b, "key");
    enc_short(&b, 0x0D);
    enc_string(&b, "system");
    enc_string(&b, "local");
    enc_string(&b, "n");
    enc_short(&b, 0x02);
    enc_int(&b, 1);
    enc_bytes(&b, "local", 5);
    enc_bytes(&b, "\x00\x00\x00\x00\x00\x00\x00\x05", 8);
    cql_result *r = decode_ok(&b);
    assert_string_equal(cql_result_colname(r, 0), "key");
    assert_string_equal(cql_result_text(r, 0, "key"), "local");
    assert_string_equal(cql_result_text(r, 0, "n"), "5");
    cql_result_free(r);
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * Collections, UDT, tuple. */

static void list_of_ints(cs_buf *out, const int32_t *v, size_t n)
{
    enc_int(out, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        cs_buf x = CS_BUF_INIT;
        enc_int(&x, v[i]);
        enc_buf_bytes(out, &x);
        cs_buf_free(&x);
    }
}

static void test_list_set_map(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT, cell = CS_BUF_INIT;
    rows_begin(&b, 0, 3);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "l");
    enc_short(&b, 0x20);
    enc_short(&b, 0x09);
    enc_string(&b, "s");
    enc_short(&b, 0x22);
    enc_short(&b, 0x0D);
    enc_string(&b, "m");
    enc_short(&b, 0x21);
    enc_short(&b, 0x0D);
    enc_short(&b, 0x02);
    enc_int(&b, 1);
    static const int32_t ints[] = { 1, -2, 3 };
    list_of_ints(&cell, ints, 3);
    enc_buf_bytes(&b, &cell);
    cs_buf_reset(&cell);
    enc_int(&cell, 2);
    enc_bytes(&cell, "x", 1);
    enc_bytes(&cell, "yz", 2);
    enc_buf_bytes(&b, &cell);
    cs_buf_reset(&cell);
    enc_int(&cell, 1);
    enc_bytes(&cell, "k", 1);
    enc_bytes(&cell, "\x00\x00\x00\x00\x00\x00\x01\x00", 8);
    enc_buf_bytes(&b, &cell);

    cql_result *r = decode_ok(&b);
    const cql_value *l = cql_result_value(r, 0, 0);
    assert_int_equal(l->kind, CQL_LIST);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->items[1].text, "-2");
    assert_null(cql_result_text(r, 0, "l")); /* not a scalar */
    const cql_value *s = cql_result_value(r, 0, 1);
    assert_int_equal(s->kind, CQL_LIST);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->items[1].text, "yz");
    const cql_value *m = cql_result_value(r, 0, 2);
    assert_int_equal(m->kind, CQL_MAP);
    assert_int_equal(m->n, 2);
    assert_string_equal(m->items[0].text, "k");
    assert_string_equal(m->items[1].text, "256");
    cql_result_free(r);
    cs_buf_free(&cell);
    cs_buf_free(&b);
}

/* map<text, frozen<list<frozen<set<int>>>>> with a null list element. */
static void nested_body(cs_buf *b)
{
    cs_buf map = CS_BUF_INIT, list = CS_BUF_INIT, set = CS_BUF_INIT;
    rows_begin(b, 0, 1);
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "deep");
    enc_short(b, 0x21);
    enc_short(b, 0x0D);
    enc_short(b, 0x20);
    enc_short(b, 0x22);
    enc_short(b, 0x09);
    enc_int(b, 1);
    static const int32_t ints[] = { 7, 8 };
    list_of_ints(&set, ints, 2);
    enc_int(&list, 2);
    enc_buf_bytes(&list, &set);
    enc_null(&list);
    enc_int(&map, 1);
    enc_bytes(&map, "key", 3);
    enc_buf_bytes(&map, &list);
    enc_buf_bytes(b, &map);
    cs_buf_free(&map);
    cs_buf_free(&list);
    cs_buf_free(&set);
}

static void test_nested_collections(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    nested_body(&b);
    cql_result *r = decode_ok(&b);
    const cql_value *m = cql_result_value(r, 0, 0);
    assert_int_equal(m->kind, CQL_MAP);
    assert_string_equal(m->items[0].text, "key");
    const cql_value *l = &m->items[1];
    assert_int_equal(l->kind, CQL_LIST);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->items[0].kind, CQL_LIST);
    assert_string_equal(l->items[0].items[1].text, "8");
    assert_int_equal(l->items[1].kind, CQL_NULL);
    cql_result_free(r);
    cs_buf_free(&b);
}

/* Column "addr" of UDT ks.address {street text, zip int, tags list<text>}
 * and column "pair" of tuple<int, text>; row 1 has every field, row 2 a
 * UDT value that stops after the first field. */
static void udt_tuple_body(cs_buf *b)
{
    cs_buf u = CS_BUF_INIT, tags = CS_BUF_INIT, tup = CS_BUF_INIT;
    rows_begin(b, 0, 2);
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "addr");
    enc_short(b, 0x30);
    enc_string(b, "ks");
    enc_string(b, "address");
    enc_short(b, 3);
    enc_string(b, "street");
    enc_short(b, 0x0D);
    enc_string(b, "zip");
    enc_short(b, 0x09);
    enc_string(b, "tags");
    enc_short(b, 0x20);
    enc_short(b, 0x0D);
    enc_string(b, "pair");
    enc_short(b, 0x31);
    enc_short(b, 2);
    enc_short(b, 0x09);
    enc_short(b, 0x0D);
    enc_int(b, 2);
    /* row 1 */
    enc_int(&tags, 1);
    enc_bytes(&tags, "home", 4);
    enc_bytes(&u, "Main St", 7);
    enc_bytes(&u, "\x00\x00\x30\x39", 4);
    enc_buf_bytes(&u, &tags);
    enc_buf_bytes(b, &u);
    enc_bytes(&tup, "\x00\x00\x00\x01", 4);
    enc_null(&tup);
    enc_buf_bytes(b, &tup);
    /* row 2 */
    cs_buf_reset(&u);
    enc_bytes(&u, "Side Rd", 7);
    enc_buf_bytes(b, &u);
    enc_null(b);
    cs_buf_free(&u);
    cs_buf_free(&tags);
    cs_buf_free(&tup);
}

static void test_udt_and_tuple(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    udt_tuple_body(&b);
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_rows(r), 2);
    const cql_value *u = cql_result_value(r, 0, 0);
    assert_int_equal(u->kind, CQL_MAP);
    assert_int_equal(u->n, 6);
    assert_string_equal(u->items[0].text, "street");
    assert_string_equal(u->items[1].text, "Main St");
    assert_string_equal(u->items[2].text, "zip");
    assert_string_equal(u->items[3].text, "12345");
    assert_string_equal(u->items[4].text, "tags");
    assert_int_equal(u->items[5].kind, CQL_LIST);
    assert_string_equal(u->items[5].items[0].text, "home");
    const cql_value *t = cql_result_value(r, 0, 1);
    assert_int_equal(t->kind, CQL_LIST);
    assert_int_equal(t->n, 2);
    assert_string_equal(t->items[0].text, "1");
    assert_int_equal(t->items[1].kind, CQL_NULL);
    const cql_value *u2 = cql_result_value(r, 1, 0);
    assert_int_equal(u2->n, 6);
    assert_string_equal(u2->items[1].text, "Side Rd");
    assert_string_equal(u2->items[2].text, "zip");
    assert_int_equal(u2->items[3].kind, CQL_NULL);
    assert_int_equal(u2->items[5].kind, CQL_NULL);
    assert_int_equal(cql_result_value(r, 1, 1)->kind, CQL_NULL);
    cql_result_free(r);
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * Paging state and no_metadata. */

static void paged_body(cs_buf *b, const char *ps, size_t pslen)
{
    enc_int(b, 2);
    enc_int(b, 0x0001 | 0x0002);
    enc_int(b, 1);
    enc_bytes(b, ps, pslen);
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "c");
    enc_short(b, 0x09);
    enc_int(b, 1);
    enc_bytes(b, "\x00\x00\x00\x05", 4);
}

static void test_paging_state(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    paged_body(&b, "\x01\x00\x02", 3);
    cql_result *r = NULL;
    uint8_t *ps = NULL;
    size_t pslen = 0;
    cs_err e;
    assert_int_equal(cql_decode_result((uint8_t *)b.data, b.len, &r, &ps, &pslen, &e), 0);
    assert_non_null(ps);
    assert_int_equal(pslen, 3);
    assert_memory_equal(ps, "\x01\x00\x02", 3);
    assert_string_equal(cql_result_text(r, 0, "c"), "5");
    free(ps);
    cql_result_free(r);
    /* A caller that does not want the paging state may pass NULLs. */
    assert_int_equal(cql_decode_result((uint8_t *)b.data, b.len, &r, NULL, NULL, &e), 0);
    cql_result_free(r);

    /* has_more_pages with a null paging state is malformed. */
    cs_buf_reset(&b);
    enc_int(&b, 2);
    enc_int(&b, 0x0002);
    enc_int(&b, 0);
    enc_null(&b);
    enc_int(&b, 0);
    decode_fails(&b, "paging state");
    cs_buf_free(&b);
}

static void test_no_metadata(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 2);
    enc_int(&b, 0x0004);
    enc_int(&b, 2);
    enc_int(&b, 1);
    enc_bytes(&b, "\xab", 1);
    enc_null(&b);
    cql_result *r = decode_ok(&b);
    assert_int_equal(cql_result_cols(r), 2);
    assert_string_equal(cql_result_colname(r, 0), "");
    assert_string_equal(cql_result_value(r, 0, 0)->text, "0xab");
    assert_int_equal(cql_result_value(r, 0, 1)->kind, CQL_NULL);
    assert_int_equal(cql_result_col(r, ""), -1);
    cql_result_free(r);
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * Malformed input. */

/* One body with every type, nesting, a UDT, a tuple, nulls and a paging
 * state: each of its proper prefixes must fail with CS_E_PROTO and leak
 * nothing (ASan checks the latter). */
static void big_body(cs_buf *b)
{
    cs_buf cell = CS_BUF_INIT;
    size_t ncases = sizeof scalar_cases / sizeof scalar_cases[0];
    enc_int(b, 2);
    enc_int(b, 0x0002); /* per-column specs and more pages */
    enc_int(b, (int32_t)ncases + 2);
    enc_bytes(b, "PAGE", 4);
    for (size_t i = 0; i < ncases; i++) {
        enc_string(b, "ks");
        enc_string(b, "t");
        char name[16];
        snprintf(name, sizeof name, "c%zu", i);
        enc_string(b, name);
        enc_short(b, scalar_cases[i].type);
    }
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "m");
    enc_short(b, 0x21);
    enc_short(b, 0x0D);
    enc_short(b, 0x20);
    enc_short(b, 0x22);
    enc_short(b, 0x09);
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "u");
    enc_short(b, 0x30);
    enc_string(b, "ks");
    enc_string(b, "pt");
    enc_short(b, 2);
    enc_string(b, "x");
    enc_short(b, 0x09);
    enc_string(b, "y");
    enc_short(b, 0x31);
    enc_short(b, 1);
    enc_short(b, 0x0D);
    enc_int(b, 2);
    for (int row = 0; row < 2; row++) {
        for (size_t i = 0; i < ncases; i++) {
            if (row == 1 && i % 3 == 0)
                enc_null(b);
            else
                enc_bytes(b, scalar_cases[i].bytes, scalar_cases[i].n);
        }
        /* m: {"k": [{1, 2}]} */
        cs_buf set = CS_BUF_INIT, list = CS_BUF_INIT;
        static const int32_t ints[] = { 1, 2 };
        list_of_ints(&set, ints, 2);
        enc_int(&list, 1);
        enc_buf_bytes(&list, &set);
        cs_buf_reset(&cell);
        enc_int(&cell, 1);
        enc_bytes(&cell, "k", 1);
        enc_buf_bytes(&cell, &list);
        cs_buf_free(&set);
        cs_buf_free(&list);
        enc_buf_bytes(b, &cell);
        cs_buf_reset(&cell);
        /* u: {x: 9, y: ("zz")} */
        cs_buf tup = CS_BUF_INIT;
        enc_bytes(&tup, "zz", 2);
        enc_bytes(&cell, "\x00\x00\x00\x09", 4);
        enc_buf_bytes(&cell, &tup);
        cs_buf_free(&tup);
        enc_buf_bytes(b, &cell);
    }
    cs_buf_free(&cell);
}

static void test_every_truncation_fails(void **state)
{
    (void)state;
    cs_buf bodies[6];
    for (size_t i = 0; i < 6; i++)
        bodies[i] = (cs_buf)CS_BUF_INIT;
    big_body(&bodies[0]);
    nested_body(&bodies[1]);
    udt_tuple_body(&bodies[2]);
    paged_body(&bodies[3], "xy", 2);
    enc_int(&bodies[4], 5);
    enc_string(&bodies[4], "CREATED");
    enc_string(&bodies[4], "KEYSPACE");
    enc_string(&bodies[4], "ks");
    enc_int(&bodies[5], 1);
    for (size_t i = 0; i < 6; i++) {
        cql_result *r = NULL;
        uint8_t *ps = NULL;
        size_t pslen = 0;
        cs_err e;
        assert_int_equal(cql_decode_result((uint8_t *)bodies[i].data, bodies[i].len, &r, &ps,
                                           &pslen, &e), 0);
        cql_result_free(r);
        free(ps);
        for (size_t n = 0; n < bodies[i].len; n++) {
            /* a heap copy of exactly n bytes so ASan sees any over-read */
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, bodies[i].data, n);
            r = (cql_result *)1;
            ps = (uint8_t *)1;
            cs_err_clear(&e);
            int rc = cql_decode_result(copy, n, &r, &ps, &pslen, &e);
            if (rc != CS_E_PROTO)
                fprintf(stderr, "body %zu cut at %zu/%zu: rc %d\n", i, n, bodies[i].len, rc);
            assert_int_equal(rc, CS_E_PROTO);
            assert_null(r);
            assert_null(ps);
            assert_true(strlen(e.msg) > 0);
            free(copy);
        }
        cs_buf_free(&bodies[i]);
    }
}

static void test_big_body_values(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    big_body(&b);
    cql_result *r = NULL;
    uint8_t *ps = NULL;
    size_t pslen = 0;
    cs_err e;
    assert_int_equal(cql_decode_result((uint8_t *)b.data, b.len, &r, &ps, &pslen, &e), 0);
    assert_int_equal(pslen, 4);
    size_t ncases = sizeof scalar_cases / sizeof scalar_cases[0];
    assert_int_equal(cql_result_cols(r), ncases + 2);
    for (size_t i = 0; i < ncases; i++) {
        const cql_value *v = cql_result_value(r, 0, i);
        assert_string_equal(v->text, scalar_cases[i].want);
        assert_int_equal(v->raw_len, scalar_cases[i].n);
        assert_memory_equal(v->raw, scalar_cases[i].bytes, scalar_cases[i].n);
        if (i % 3 == 0) {
            assert_int_equal(cql_result_value(r, 1, i)->kind, CQL_NULL);
            assert_null(cql_result_value(r, 1, i)->raw);
        } else {
            assert_memory_equal(cql_result_value(r, 1, i)->raw, scalar_cases[i].bytes,
                                scalar_cases[i].n);
        }
    }
    const cql_value *u = cql_result_value(r, 1, ncases + 1);
    assert_int_equal(u->kind, CQL_MAP);
    assert_string_equal(u->items[1].text, "9");
    assert_string_equal(u->items[3].items[0].text, "zz");
    /* raw: a field name's key is the name, containers have none */
    assert_null(u->raw);
    assert_int_equal(u->raw_len, 0);
    assert_int_equal(u->items[0].raw_len, 1);
    assert_memory_equal(u->items[0].raw, "x", 1);
    assert_int_equal(u->items[1].raw_len, 4);
    assert_memory_equal(u->items[1].raw, "\x00\x00\x00\x09", 4);
    assert_null(u->items[3].raw);
    assert_int_equal(u->items[3].items[0].raw_len, 2);
    assert_memory_equal(u->items[3].items[0].raw, "zz", 2);
    const cql_value *m = cql_result_value(r, 0, ncases);
    assert_int_equal(m->kind, CQL_MAP);
    assert_null(m->raw);
    assert_memory_equal(m->items[0].raw, "k", 1);
    assert_memory_equal(m->items[1].items[0].items[1].raw, "\x00\x00\x00\x02", 4);
    free(ps);
    cql_result_free(r);
    cs_buf_free(&b);
}

static void test_hostile_counts(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT, cell = CS_BUF_INIT;
    /* column count far beyond the body */
    enc_int(&b, 2);
    enc_int(&b, 1);
    enc_int(&b, 0x7fffffff);
    decode_fails(&b, "column count");
    cs_buf_reset(&b);
    enc_int(&b, 2);
    enc_int(&b, 1);
    enc_int(&b, -5);
    decode_fails(&b, "column count");
    cs_buf_reset(&b);
    enc_int(&b, 2);
    enc_int(&b, 1);
    enc_int(&b, 60000);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    decode_fails(&b, "column specification list is truncated");
    /* row count far beyond the body */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x09);
    enc_int(&b, 0x7fffffff);
    decode_fails(&b, "row data is truncated");
    /* negative row count, rows without columns */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 0);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_int(&b, -1);
    decode_fails(&b, "negative row count");
    cs_buf_reset(&b);
    rows_begin(&b, 0, 0);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_int(&b, 3);
    decode_fails(&b, "without columns");
    /* collection element count far beyond the cell */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x21);
    enc_short(&b, 0x09);
    enc_short(&b, 0x09);
    enc_int(&b, 1);
    enc_int(&cell, 0x10000000);
    enc_int(&cell, 0);
    enc_buf_bytes(&b, &cell);
    decode_fails(&b, "element count");
    /* a negative element count */
    cs_buf_reset(&b);
    cs_buf_reset(&cell);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x20);
    enc_short(&b, 0x09);
    enc_int(&b, 1);
    enc_int(&cell, -3);
    enc_buf_bytes(&b, &cell);
    decode_fails(&b, "element count");
    /* trailing garbage inside a collection cell */
    cs_buf_reset(&b);
    cs_buf_reset(&cell);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x20);
    enc_short(&b, 0x09);
    enc_int(&b, 1);
    enc_int(&cell, 0);
    enc_byte(&cell, 0xaa);
    enc_buf_bytes(&b, &cell);
    decode_fails(&b, "unexpected bytes");
    /* a cell claiming more bytes than the body has */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x0D);
    enc_int(&b, 1);
    enc_int(&b, 1000);
    cs_buf_addstr(&b, "short");
    decode_fails(&b, "value is truncated");
    /* UDT with a field count beyond the body */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x30);
    enc_string(&b, "ks");
    enc_string(&b, "u");
    enc_short(&b, 65535);
    decode_fails(&b, "user type field list");
    cs_buf_free(&cell);
    cs_buf_free(&b);
}

static void test_type_errors(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x0A); /* no longer a type in v4 */
    enc_int(&b, 0);
    decode_fails(&b, "unknown column type id 0x000a");

    /* list<list<...>> nested 40 deep */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    for (int i = 0; i < 40; i++)
        enc_short(&b, 0x20);
    enc_short(&b, 0x09);
    enc_int(&b, 0);
    decode_fails(&b, "nests deeper");

    /* Nested 30 deep is fine. */
    cs_buf_reset(&b);
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    for (int i = 0; i < 30; i++)
        enc_short(&b, 0x20);
    enc_short(&b, 0x09);
    enc_int(&b, 0);
    cql_result *r = decode_ok(&b);
    cql_result_free(r);
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * ERROR bodies. */

static void test_error_frames(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    enc_int(&b, 0x2200);
    enc_string(&b, "unconfigured table nope");
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 4, &e), CS_E_EXTERNAL);
    assert_int_equal(e.code, CS_E_EXTERNAL);
    assert_string_equal(e.msg, "invalid query: unconfigured table nope");

    /* Unavailable carries <cl><required><alive>: ignored. */
    cs_buf_reset(&b);
    enc_int(&b, 0x1000);
    enc_string(&b, "Cannot achieve consistency level ONE");
    enc_short(&b, 1);
    enc_int(&b, 1);
    enc_int(&b, 0);
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 4, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, "unavailable: not enough replicas (required 1, alive 0) at ONE");

    cs_buf_reset(&b);
    enc_int(&b, 0x000A);
    enc_string(&b, "line one\nline two");
    cql_decode_error((uint8_t *)b.data, b.len, 4, &e);
    assert_string_equal(e.msg, "protocol error: line one line two");

    /* Every truncation fails with CS_E_PROTO. */
    cs_buf_reset(&b);
    enc_int(&b, 0x2000);
    enc_string(&b, "line 1:0 no viable alternative");
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        cs_err_clear(&e);
        assert_int_equal(cql_decode_error(copy, n, 4, &e), CS_E_PROTO);
        assert_int_equal(e.code, CS_E_PROTO);
        free(copy);
    }
    /* A NULL cs_err is allowed. */
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 4, NULL), CS_E_EXTERNAL);
    cs_buf_free(&b);
}

/* Read_failure and Write_failure: an [int] count of failures in v4, a
 * <reasonmap> of endpoint to failure code in v5; the sentence is the same. */
static void failure_head(cs_buf *b, int32_t code)
{
    enc_int(b, code);
    enc_string(b, "Operation failed");
    enc_short(b, 0x0006); /* LOCAL_QUORUM */
    enc_int(b, 1);
    enc_int(b, 2);
}

static void reasonmap(cs_buf *b)
{
    enc_int(b, 2);
    enc_byte(b, 4);
    cs_buf_add(b, "\x7f\x00\x00\x02", 4);
    enc_short(b, 0x0001);
    enc_byte(b, 16);
    cs_buf_add(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    enc_short(b, 0x0000);
}

static void test_error_failures_v4_v5(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    const char *read_want = "read failure: 1 of 2 replicas answered, 2 failed, at LOCAL_QUORUM: "
                            "Operation failed";
    const char *write_want = "write failure: 1 of 2 replicas acknowledged the SIMPLE write, 2 "
                             "failed, at LOCAL_QUORUM: Operation failed";
    failure_head(&b, 0x1300);
    enc_int(&b, 2);
    enc_byte(&b, 0);
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 4, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, read_want);

    cs_buf_reset(&b);
    failure_head(&b, 0x1300);
    reasonmap(&b);
    enc_byte(&b, 0);
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 5, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, read_want);

    cs_buf_reset(&b);
    failure_head(&b, 0x1500);
    enc_int(&b, 2);
    enc_string(&b, "SIMPLE");
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 4, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, write_want);

    cs_buf_reset(&b);
    failure_head(&b, 0x1500);
    reasonmap(&b);
    enc_string(&b, "SIMPLE");
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, 5, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, write_want);

    /* A reason map cut short: the details are left out, the message stays. */
    for (size_t cut = 1; cut < 20; cut++) {
        uint8_t *copy = malloc(b.len);
        memcpy(copy, b.data, b.len - cut);
        assert_int_equal(cql_decode_error(copy, b.len - cut, 5, &e), CS_E_EXTERNAL);
        assert_string_equal(e.msg, "write failure: Operation failed");
        free(copy);
    }
    cs_buf_free(&b);
}

/* v5 Rows may carry METADATA_CHANGED (0x0008) and a [short bytes] new
 * metadata id after the paging state: skipped. */
static void test_rows_metadata_changed(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    enc_int(&b, 2);
    enc_int(&b, 0x0001 | 0x0002 | 0x0008);
    enc_int(&b, 1);
    enc_bytes(&b, "PS", 2);
    enc_short(&b, 3);
    cs_buf_add(&b, "\x01\x02\x03", 3);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "c");
    enc_short(&b, 0x09);
    enc_int(&b, 1);
    enc_bytes(&b, "\x00\x00\x00\x07", 4);
    cql_result *r = NULL;
    uint8_t *ps = NULL;
    size_t pslen = 0;
    cs_err e;
    assert_int_equal(cql_decode_result((uint8_t *)b.data, b.len, &r, &ps, &pslen, &e), 0);
    assert_int_equal(pslen, 2);
    assert_memory_equal(ps, "PS", 2);
    assert_string_equal(cql_result_text(r, 0, "c"), "7");
    free(ps);
    cql_result_free(r);
    /* The id cut short is malformed. */
    b.len = 4 + 4 + 4 + 6 + 3;
    decode_fails(&b, "new metadata id");
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * Version negotiation and v5 segments. */

static void version_error(cs_buf *b, int32_t code, const char *msg)
{
    cs_buf_reset(b);
    enc_int(b, code);
    enc_string(b, msg);
}

static bool rejects(int tried, int answered, const cs_buf *b)
{
    return cql_startup_rejects_version(tried, answered, (const uint8_t *)b->data, b->len);
}

static void test_fallback_decision(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    /* Cassandra 3.x: answers in v4 with its own sentence. */
    version_error(&b, 0x000A, "Invalid or unsupported protocol version (5); supported versions "
                              "are (3/v3, 4/v4, 5/v5-beta)");
    assert_true(rejects(5, 4, &b));
    /* The same sentence in a v5 frame, and a beta refusal. */
    assert_true(rejects(5, 5, &b));
    version_error(&b, 0x000A, "Beta version of the protocol used (5/v5-beta), but USE_BETA "
                              "flag is unset");
    assert_true(rejects(5, 5, &b));
    /* Any protocol error answered in an older version. */
    version_error(&b, 0x000A, "something else");
    assert_true(rejects(5, 3, &b));
    /* Not about the version: no second try. */
    assert_false(rejects(5, 5, &b));
    version_error(&b, 0x0100, "Invalid or unsupported protocol version (5)");
    assert_false(rejects(5, 4, &b));
    version_error(&b, 0x0000, "protocol version");
    assert_false(rejects(5, 5, &b));
    /* Nothing below v4 to fall back to. */
    version_error(&b, 0x000A, "Invalid or unsupported protocol version (4)");
    assert_false(rejects(4, 3, &b));
    /* Cut short: no. */
    assert_false(cql_startup_rejects_version(5, 5, (const uint8_t *)b.data, 3));
    assert_false(cql_startup_rejects_version(5, 5, (const uint8_t *)b.data, 7));
    assert_false(cql_startup_rejects_version(5, 5, NULL, 0));
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * varint, decimal and duration as text, and the raw bytes of scalars.
 * Expected texts of varint and decimal come from Python (int, and
 * str(Decimal((sign, digits, -scale)))); durations follow Cassandra's
 * Duration.toString, but for zero. */

typedef struct hex_case {
    const char *hex; /* the value's bytes */
    const char *want;
} hex_case;

/* One cell of the type from hex bytes: its text is want, its raw bytes the
 * input. */
static void expect_text(unsigned type, const char *hex, const char *want)
{
    size_t n = strlen(hex) / 2;
    uint8_t *bytes = malloc(n ? n : 1);
    hex_bytes(hex, bytes, &n);
    cs_buf b = CS_BUF_INIT;
    scalar_body(&b, type, bytes, n);
    cql_result *r = decode_ok(&b);
    const cql_value *v = cql_result_value(r, 0, 0);
    assert_int_equal(v->kind, CQL_SCALAR);
    if (strcmp(v->text, want) != 0) {
        fprintf(stderr, "type 0x%02x, %s: got '%s', want '%s'\n", type, hex, v->text, want);
        fail();
    }
    assert_non_null(v->raw);
    assert_int_equal(v->raw_len, n);
    assert_memory_equal(v->raw, bytes, n);
    cql_result_free(r);
    cs_buf_free(&b);
    free(bytes);
}

static void expect_bad(unsigned type, const char *hex, const char *needle)
{
    uint8_t bytes[64];
    size_t n;
    assert_true(strlen(hex) / 2 <= sizeof bytes);
    hex_bytes(hex, bytes, &n);
    cs_buf b = CS_BUF_INIT;
    scalar_body(&b, type, bytes, n);
    decode_fails(&b, needle);
    cs_buf_free(&b);
}

static const hex_case varint_cases[] = {
    { "00", "0" }, /* 1 bytes */
    { "01", "1" }, /* 1 bytes */
    { "ff", "-1" }, /* 1 bytes */
    { "7f", "127" }, /* 1 bytes */
    { "80", "-128" }, /* 1 bytes */
    { "0080", "128" }, /* 2 bytes */
    { "ff7f", "-129" }, /* 2 bytes */
    { "00ff", "255" }, /* 2 bytes */
    { "0100", "256" }, /* 2 bytes */
    { "ff00", "-256" }, /* 2 bytes */
    { "7fffffffffffffff", "9223372036854775807" }, /* 8 bytes */
    { "8000000000000000", "-9223372036854775808" }, /* 8 bytes */
    { "008000000000000000", "9223372036854775808" }, /* 9 bytes */
    { "ff7fffffffffffffff", "-9223372036854775809" }, /* 9 bytes */
    { "00ffffffffffffffff", "18446744073709551615" }, /* 9 bytes */
    { "010000000000000000", "18446744073709551616" }, /* 9 bytes */
    { "ff0000000000000000", "-18446744073709551616" }, /* 9 bytes */
    { "10000000000000000000000000", "1267650600228229401496703205376" }, /* 13 bytes */
    { "f0000000000000000000000000", "-1267650600228229401496703205376" }, /* 13 bytes */
    { /* 17 bytes */
      "7fffffffffffffffffffffffffffffffff",
      "43556142965880123323311949751266331066367" },
    { /* 17 bytes */
      "8000000000000000000000000000000000",
      "-43556142965880123323311949751266331066368" },
    { "0de0b6b3a7640000", "1000000000000000000" }, /* 8 bytes */
    { "f21f494c589c0000", "-1000000000000000000" }, /* 8 bytes */
    { "033b2e3c9fd0803ce8000000", "1000000000000000000000000000" }, /* 12 bytes */
    { "033b2e3c9fd0803ce7ffffff", "999999999999999999999999999" }, /* 12 bytes */
    { /* 16 bytes */
      "4b3b4ca85a86c47a098a224000000001",
      "100000000000000000000000000000000000001" },
    { /* 17 bytes */
      "a06018366cf658f7a75ed34fe53a096533",
      "-32539375617807134716691223354205493697229" },
    { /* 17 bytes */
      "a315ceb3a10b3510b0b46ee1da317017a6",
      "-31617273079272413988831850390035230615642" },
    { /* 64 bytes */
      "65b8063831360a4092b850ad7eb72f8263f65da874007cb47cc661e97589ca4a07c15471a4517d6c"
      "6694f229359b154881a0d5b3ffc6e35ccfaf00103f584ad4",
      "53274481847747593291487145130741819876601077994323652108344820575188124321803953"
      "91838182322161394810160886593829603959297185683647738789051447860337855188" },
    { /* 64 bytes */
      "39db434b610b1631e941aa79e6edaf80796d3bc4685ca8af852a5fba444adf42b37f5722051e2670"
      "c24f6aa83bf36a147c2f7ad016edc5d467164890d49d0ac1",
      "30301905478925142625012210961607700233052949146081546245549589444811368927074586"
      "55882758522372769787499287490721656548523498230653169550109142732343413441" },
    /* longer than needed */
    { "00000000000000000005", "5" },
    { "ffffffffffffffffffff", "-1" },
    { "fffffffffffffffffffe", "-2" },
    { "000000000000000000000000000000000080", "128" },
};

static void test_varint_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof varint_cases / sizeof varint_cases[0]; i++)
        expect_text(0x0E, varint_cases[i].hex, varint_cases[i].want);
    expect_text(0x0E, "", ""); /* the empty value */
}

/* Big-endian helpers over n bytes, for building long varints here with no
 * reference but the arithmetic itself. */
static void be_mul10(uint8_t *p, size_t n)
{
    unsigned carry = 0;
    for (size_t i = n; i-- > 0;) {
        unsigned v = p[i] * 10u + carry;
        p[i] = (uint8_t)v;
        carry = v >> 8;
    }
    assert_int_equal(carry, 0);
}

static void be_decrement(uint8_t *p, size_t n)
{
    for (size_t i = n; i-- > 0;)
        if (p[i]-- != 0)
            break;
}

/* Two's complement: ~x + 1. */
static void be_negate(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)~p[i];
    for (size_t i = n; i-- > 0;)
        if (++p[i] != 0)
            break;
}

/* The varint text of the n bytes at p, hex-encoded for expect_text. */
static void expect_varint(const uint8_t *p, size_t n, const char *want)
{
    char *hex = malloc(2 * n + 1);
    cs_hex(p, n, hex);
    expect_text(0x0E, hex, want);
    free(hex);
}

/* 10^k, -10^k, 10^k - 1 and its negative for k up to 400 (up to 168
 * bytes), in the minimal encoding and with a redundant sign byte: every
 * carry and every 9-digit group boundary of the conversion. */
static void test_varint_powers_of_ten(void **state)
{
    (void)state;
    enum { N = 170, K = 400 };
    uint8_t one[N + 1] = { 0 }, v[N + 1];
    one[N] = 1;
    for (int k = 0; k <= K; k++) {
        if (k)
            be_mul10(one + 1, N);
        /* the shortest encoding that keeps the sign bit clear */
        size_t skip = 1;
        while (skip < N && one[skip] == 0 && !(one[skip + 1] & 0x80))
            skip++;
        size_t n = N + 1 - skip;
        char want[K + 3], neg[K + 4];
        want[0] = '1';
        memset(want + 1, '0', (size_t)k);
        want[k + 1] = '\0';
        snprintf(neg, sizeof neg, "-%s", want);
        expect_varint(one + skip, n, want);
        expect_varint(one + skip - 1, n + 1, want); /* a leading 0x00 more */
        memcpy(v, one + skip, n);
        be_negate(v, n);
        expect_varint(v, n, neg);
        if (k == 0)
            continue;
        /* 10^k - 1: all nines */
        memcpy(v, one + skip, n);
        be_decrement(v, n);
        memset(want, '9', (size_t)k);
        want[k] = '\0';
        snprintf(neg, sizeof neg, "-%s", want);
        expect_varint(v, n, want);
        be_negate(v, n);
        expect_varint(v, n, neg);
    }
}

static const hex_case decimal_cases[] = {
    { "000000023039", "123.45" }, /* 12345 scale 2 */
    { "000000003039", "12345" }, /* 12345 scale 0 */
    { "fffffffe3039", "1.2345E+6" }, /* 12345 scale -2 */
    { "00000002cfc7", "-123.45" }, /* -12345 scale 2 */
    { "fffffffecfc7", "-1.2345E+6" }, /* -12345 scale -2 */
    { "0000000200", "0.00" }, /* 0 scale 2 */
    { "0000000000", "0" }, /* 0 scale 0 */
    { "fffffffe00", "0E+2" }, /* 0 scale -2 */
    { "0000000601", "0.000001" }, /* 1 scale 6 */
    { "0000000701", "1E-7" }, /* 1 scale 7 */
    { "000000087b", "0.00000123" }, /* 123 scale 8 */
    { "000000097b", "1.23E-7" }, /* 123 scale 9 */
    { "0000000a3039", "0.0000012345" }, /* 12345 scale 10 */
    { "0000000b3039", "1.2345E-7" }, /* 12345 scale 11 */
    { "0000001efb", "-5E-30" }, /* -5 scale 30 */
    { "ffffffff07", "7E+1" }, /* 7 scale -1 */
    { "00000001ff", "-0.1" }, /* -1 scale 1 */
    { "0000000164", "10.0" }, /* 100 scale 1 */
    { "ffffffff01", "1E+1" }, /* 1 scale -1 */
    { /* 1267650600228229401496703205376 scale 3 */
      "0000000310000000000000000000000000",
      "1267650600228229401496703205.376" },
    { /* -1267650600228229401496703205376 scale -5 */
      "fffffffbf0000000000000000000000000",
      "-1.267650600228229401496703205376E+35" },
    { /* 43556142965880123323311949751266331066367 scale 40 */
      "000000287fffffffffffffffffffffffffffffffff",
      "4.3556142965880123323311949751266331066367" },
    { /* -43556142965880123323311949751266331066368 scale 135 */
      "000000878000000000000000000000000000000000",
      "-4.3556142965880123323311949751266331066368E-95" },
    { "8000000001", "1E+2147483648" }, /* 1 scale -2147483648 */
    { "7fffffff01", "1E-2147483647" }, /* 1 scale 2147483647 */
    { "7fffffff00", "0E-2147483647" }, /* 0 scale 2147483647 */
    { "8000000000", "0E+2147483648" }, /* 0 scale -2147483648 */
    { "0000000080", "-128" }, /* -128 scale 0 */
    { "000000000080", "128" }, /* 128 scale 0 */
    { "00000014056bc75e2d63100000", "1.00000000000000000000" }, /* 100000000000000000000 scale 20 */
    { /* 100000000000000000000 scale 25 */
      "00000019056bc75e2d63100000",
      "0.0000100000000000000000000" },
    /* a bare scale: the empty unscaled value is zero */
    { "00000002", "0.00" },
    { "00000000", "0" },
    { "", "" }, /* the empty value */
};

static void test_decimal_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof decimal_cases / sizeof decimal_cases[0]; i++)
        expect_text(0x06, decimal_cases[i].hex, decimal_cases[i].want);
    expect_bad(0x06, "00", "a decimal must be 0 or at least 4 bytes, got 1");
    expect_bad(0x06, "000000", "got 3");
}

static const hex_case duration_cases[] = {
    { "000000", "0s" }, /* 0, 0, 0 */
    { "1c06fc1ac004a5c612", "1y2mo3d4h5m6s7ms8us9ns" }, /* 14, 3, 14706007008009 */
    { "1b05fc1ac004a5c611", "-1y2mo3d4h5m6s7ms8us9ns" }, /* -14, -3, -14706007008009 */
    { "180000", "1y" }, /* 12, 0, 0 */
    { "020000", "1mo" }, /* 1, 0, 0 */
    { "000200", "1d" }, /* 0, 1, 0 */
    { "0000fc068c61714000", "1h" }, /* 0, 0, 3600000000000 */
    { "0000f81bf08eb000", "1m" }, /* 0, 0, 60000000000 */
    { "0000f077359400", "1s" }, /* 0, 0, 1000000000 */
    { "0000de8480", "1ms" }, /* 0, 0, 1000000 */
    { "000087d0", "1us" }, /* 0, 0, 1000 */
    { "000002", "1ns" }, /* 0, 0, 1 */
    { "000001", "-1ns" }, /* 0, 0, -1 */
    { "010000", "-1mo" }, /* -1, 0, 0 */
    { "000d00", "-7d" }, /* 0, -7, 0 */
    { "0000fca3b5840f4000", "25h" }, /* 0, 0, 90000000000000 */
    { "00832000", "400d" }, /* 0, 400, 0 */
    { /* 2147483647, 2147483647, 9223372036854775807 */
      "f0fffffffef0fffffffefffffffffffffffffe",
      "178956970y7mo2147483647d2562047h47m16s854ms775us807ns" },
    { /* -2147483648, -2147483648, -9223372036854775808 */
      "f0fffffffff0ffffffffffffffffffffffffff",
      "-178956970y8mo2147483648d2562047h47m16s854ms775us808ns" },
    { "0000fc09d29229e000", "1h30m" }, /* 0, 0, 5400000000000 */
    { "1700f0773593ff", "-1y1s" }, /* -12, 0, -1000000000 */
    { "8002c00004ff0000000000000006", "1mo2d3ns" }, /* 1, 2, 3 in 2, 3 and 9 bytes */
    { "000000ff", "0s" }, /* bytes after the third vint are ignored, as Cassandra does */
    { "", "" }, /* the empty value */
};

static void test_duration_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof duration_cases / sizeof duration_cases[0]; i++)
        expect_text(0x15, duration_cases[i].hex, duration_cases[i].want);
    expect_bad(0x15, "00", "malformed CQL duration value: days is truncated");
    expect_bad(0x15, "0000", "nanoseconds is truncated");
    expect_bad(0x15, "0000c001", "nanoseconds is truncated"); /* one of two extra bytes */
    expect_bad(0x15, "0000ff00000000000000", "nanoseconds is truncated");
    expect_bad(0x15, "f1000000000000", "months (2147483648) and days (0) must be 32-bit");
    expect_bad(0x15, "f1000000010000", "months (-2147483649)");
    expect_bad(0x15, "00f10000000000", "days (2147483648)");
    expect_bad(0x15, "020100", "must have one sign (1, -1, 0)");
    expect_bad(0x15, "000201", "must have one sign (0, 1, -1)");
}

/* Raw bytes of scalars inside a collection, a text with a NUL, a large
 * blob (its raw bytes beside the hex text) and a custom type. */
static void test_raw_bytes(void **state)
{
    (void)state;
    /* list<blob> [0xff00, <empty>, null] */
    cs_buf b = CS_BUF_INIT, cell = CS_BUF_INIT;
    rows_begin(&b, 0, 1);
    enc_string(&b, "ks");
    enc_string(&b, "t");
    enc_string(&b, "l");
    enc_short(&b, 0x20);
    enc_short(&b, 0x03);
    enc_int(&b, 1);
    enc_int(&cell, 3);
    enc_bytes(&cell, "\xff\x00", 2);
    enc_bytes(&cell, "", 0);
    enc_null(&cell);
    enc_buf_bytes(&b, &cell);
    cql_result *r = decode_ok(&b);
    const cql_value *l = cql_result_value(r, 0, 0);
    assert_int_equal(l->kind, CQL_LIST);
    assert_null(l->raw);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->items[0].text, "0xff00");
    assert_int_equal(l->items[0].raw_len, 2);
    assert_memory_equal(l->items[0].raw, "\xff\x00", 2);
    assert_string_equal(l->items[1].text, "0x");
    assert_non_null(l->items[1].raw);
    assert_int_equal(l->items[1].raw_len, 0);
    assert_int_equal(l->items[2].kind, CQL_NULL);
    assert_null(l->items[2].raw);
    assert_int_equal(l->items[2].raw_len, 0);
    cql_result_free(r);

    /* a 1 MiB blob: text "0x" + hex, raw the bytes */
    size_t big = 1024 * 1024;
    uint8_t *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (uint8_t)(i * 7 + 3);
    cs_buf_reset(&b);
    scalar_body(&b, 0x03, blob, big);
    r = decode_ok(&b);
    const cql_value *v = cql_result_value(r, 0, 0);
    assert_int_equal(strlen(v->text), 2 + 2 * big);
    assert_memory_equal(v->text, "0x030a11", 8);
    assert_int_equal(v->raw_len, big);
    assert_memory_equal(v->raw, blob, big);
    cql_result_free(r);
    free(blob);

    /* a custom type keeps its hex text */
    cs_buf_reset(&b);
    scalar_body(&b, 0x00, "\x00\x01", 2);
    r = decode_ok(&b);
    v = cql_result_value(r, 0, 0);
    assert_string_equal(v->text, "0x0001");
    assert_int_equal(v->raw_len, 2);
    assert_memory_equal(v->raw, "\x00\x01", 2);
    cql_result_free(r);
    cs_buf_free(&cell);
    cs_buf_free(&b);
}

/* Vectors from Python's zlib.crc32 and from the DataStax Python driver's
 * own segment codec (cassandra/segment.py), an implementation of its own. */
static void test_crc_vectors(void **state)
{
    (void)state;
    assert_int_equal(cql_crc32(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(cql_crc32(0, (const uint8_t *)"", 0), 0);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(cql_crc32(0, (const uint8_t *)fox, strlen(fox)), 0x414FA339u);
    /* Continuable like zlib's. */
    uint32_t part = cql_crc32(0, (const uint8_t *)fox, 10);
    assert_int_equal(cql_crc32(part, (const uint8_t *)fox + 10, strlen(fox) - 10), 0x414FA339u);
    /* The header of a 5-byte self-contained segment: 0x020005. */
    static const uint8_t h[3] = { 0x05, 0x00, 0x02 };
    assert_int_equal(cql_crc24(h, 3), 0x9A9919u);

    static const struct {
        const char *payload, *hex;
    } segs[] = {
        { "", "0000026a36c4d37e7744" },
        { "hello", "05000219999a68656c6c6f74800eb6" },
        { "123456789", "090002a4c8c1313233343536373839a761a2e2" },
    };
    for (size_t i = 0; i < sizeof segs / sizeof segs[0]; i++) {
        uint8_t want[64], got[64];
        size_t n, plen = strlen(segs[i].payload);
        hex_bytes(segs[i].hex, want, &n);
        assert_int_equal(cql_segments_size(plen), n);
        cql_segments_encode((const uint8_t *)segs[i].payload, plen, got);
        assert_memory_equal(got, want, n);
    }
}

/* An envelope: 9-byte response header and a body. */
static void envelope(cs_buf *b, uint8_t version, int16_t stream, uint8_t op, const void *body,
                     size_t n)
{
    enc_byte(b, version);
    enc_byte(b, 0);
    enc_short(b, (uint16_t)stream);
    enc_byte(b, op);
    enc_int(b, (int32_t)n);
    cs_buf_add(b, body, n);
}

static void segments(cs_buf *out, const cs_buf *in)
{
    size_t n = cql_segments_size(in->len);
    cs_buf_reserve(out, n);
    cql_segments_encode((const uint8_t *)in->data, in->len, (uint8_t *)out->data + out->len);
    out->len += n;
}

typedef struct seen {
    size_t n;
    uint8_t op[8];
    size_t len[8];
    uint8_t *body[8];
} seen;

static int collect(void *arg, const uint8_t *h, const uint8_t *body, size_t len)
{
    seen *s = arg;
    if (s->n == 8)
        return CS_E_INVAL;
    s->op[s->n] = h[4];
    s->len[s->n] = len;
    s->body[s->n] = malloc(len ? len : 1);
    memcpy(s->body[s->n], body, len);
    s->n++;
    return 0;
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->body[i]);
    memset(s, 0, sizeof *s);
}

static int decode_segments(const cs_buf *b, seen *s, cs_err *e)
{
    cs_err_clear(e);
    return cql_segments_decode((const uint8_t *)b->data, b->len, collect, s, e);
}

static void expect_proto(int rc, const cs_err *e, const char *needle)
{
    assert_int_equal(rc, CS_E_PROTO);
    assert_int_equal(e->code, CS_E_PROTO);
    if (!strstr(e->msg, needle)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", e->msg, needle);
        fail();
    }
}

static void test_segment_round_trip(void **state)
{
    (void)state;
    cs_buf env = CS_BUF_INIT, seg = CS_BUF_INIT;
    envelope(&env, 0x85, 3, 0x02, NULL, 0); /* READY */
    segments(&seg, &env);
    assert_int_equal(seg.len, env.len + 10);
    size_t plen;
    bool sc;
    cs_err e;
    assert_int_equal(cql_segment_header_decode((uint8_t *)seg.data, &plen, &sc, &e), 0);
    assert_int_equal(plen, env.len);
    assert_true(sc);
    assert_memory_equal(seg.data + 6, env.data, env.len);
    assert_int_equal(cql_segment_payload_check((uint8_t *)seg.data + 6, plen,
                                               (uint8_t *)seg.data + 6 + plen, &e), 0);
    seen s = { 0 };
    assert_int_equal(decode_segments(&seg, &s, &e), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.op[0], 0x02);
    assert_int_equal(s.len[0], 0);
    seen_free(&s);

    /* The padding bits above the flag are ignored (with a CRC that fits). */
    uint8_t h[6] = { 0x05, 0x00, 0x02 | 0xFC };
    uint32_t crc = cql_crc24(h, 3);
    h[3] = (uint8_t)crc;
    h[4] = (uint8_t)(crc >> 8);
    h[5] = (uint8_t)(crc >> 16);
    assert_int_equal(cql_segment_header_decode(h, &plen, &sc, &e), 0);
    assert_int_equal(plen, 5);
    assert_true(sc);
    cs_buf_free(&env);
    cs_buf_free(&seg);
}

static void test_segment_bad_crc(void **state)
{
    (void)state;
    cs_buf env = CS_BUF_INIT, seg = CS_BUF_INIT;
    seen s = { 0 };
    cs_err e;
    envelope(&env, 0x85, 0, 0x08, "\x00\x00\x00\x01", 4);
    segments(&seg, &env);
    /* Every single flipped bit anywhere in the segment is caught: in the
     * header (length, flag, padding or the CRC24 itself) by the CRC24, in
     * the payload or trailer by the CRC32. */
    for (size_t i = 0; i < seg.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            seg.data[i] ^= (char)(1 << bit);
            int rc = decode_segments(&seg, &s, &e);
            seg.data[i] ^= (char)(1 << bit);
            assert_int_equal(s.n, 0);
            expect_proto(rc, &e, i < 6 ? "header CRC24 mismatch" : "payload CRC32 mismatch");
        }
    }
    assert_int_equal(decode_segments(&seg, &s, &e), 0);
    assert_int_equal(s.n, 1);
    seen_free(&s);

    /* The messages name what was read and computed. */
    seg.data[3] ^= 1;
    decode_segments(&seg, &s, &e);
    assert_non_null(strstr(e.msg, "malformed CQL v5 segment: header CRC24 mismatch (read 0x"));
    seg.data[3] ^= 1;
    seg.data[seg.len - 1] ^= 1;
    decode_segments(&seg, &s, &e);
    assert_non_null(strstr(e.msg, "malformed CQL v5 segment: payload CRC32 mismatch (read 0x"));
    cs_buf_free(&env);
    cs_buf_free(&seg);
}

/* A body of 200,000 bytes (i * 7 & 0xff) spans two segments; the Python
 * driver gave the headers and trailers. */
static void test_segment_spanning(void **state)
{
    (void)state;
    size_t n = 200000;
    uint8_t *msg = malloc(n);
    for (size_t i = 0; i < n; i++)
        msg[i] = (uint8_t)(i * 7);
    size_t out_len = cql_segments_size(n);
    assert_int_equal(out_len, n + 20);
    uint8_t *out = malloc(out_len);
    cql_segments_encode(msg, n, out);
    uint8_t want[8];
    size_t wn;
    hex_bytes("ffff013891fe", want, &wn);
    assert_memory_equal(out, want, wn);
    hex_bytes("f2b00a4c", want, &wn);
    assert_memory_equal(out + 6 + 131071, want, wn);
    hex_bytes("410d013ede37", want, &wn);
    assert_memory_equal(out + 131081, want, wn);
    hex_bytes("1ef41200", want, &wn);
    assert_memory_equal(out + out_len - 4, want, wn);
    free(out);
    free(msg);

    /* An envelope of 300 KiB: three segments, none self-contained, decoded
     * back whole. */
    cs_buf env = CS_BUF_INIT, seg = CS_BUF_INIT;
    size_t big = 300 * 1024;
    uint8_t *body = malloc(big);
    for (size_t i = 0; i < big; i++)
        body[i] = (uint8_t)(i * 13 + (i >> 8));
    envelope(&env, 0x85, 1, 0x08, body, big);
    segments(&seg, &env);
    assert_int_equal(seg.len, env.len + 30);
    size_t plen;
    bool sc;
    cs_err e;
    assert_int_equal(cql_segment_header_decode((uint8_t *)seg.data, &plen, &sc, &e), 0);
    assert_int_equal(plen, CQL_SEGMENT_MAX_PAYLOAD);
    assert_false(sc);
    seen s = { 0 };
    assert_int_equal(decode_segments(&seg, &s, &e), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.len[0], big);
    assert_memory_equal(s.body[0], body, big);
    seen_free(&s);

    /* Cut anywhere: an error, never a short envelope. */
    static const size_t cuts[] = { 1, 4, 5, 9, 10, 131081, 131082, 262161, 262162 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        cs_buf part = { .data = seg.data, .len = seg.len - cuts[i] };
        expect_proto(decode_segments(&part, &s, &e), &e, "malformed CQL v5 segment");
        assert_int_equal(s.n, 0);
    }
    free(body);
    cs_buf_free(&env);
    cs_buf_free(&seg);
}

/* Several envelopes in one self-contained segment, then one in a segment of
 * its own. */
static void test_segment_several_envelopes(void **state)
{
    (void)state;
    cs_buf env = CS_BUF_INIT, seg = CS_BUF_INIT;
    envelope(&env, 0x85, -1, 0x0C, "\x00\x02ev", 4);
    envelope(&env, 0x85, 7, 0x08, "\x00\x00\x00\x01", 4);
    envelope(&env, 0x85, 8, 0x02, NULL, 0);
    segments(&seg, &env);
    assert_int_equal(seg.len, env.len + 10);
    cs_buf_reset(&env);
    envelope(&env, 0x85, 9, 0x08, "\x00\x00\x00\x03xyz", 7);
    segments(&seg, &env);
    seen s = { 0 };
    cs_err e;
    assert_int_equal(decode_segments(&seg, &s, &e), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.op[0], 0x0C);
    assert_int_equal(s.op[1], 0x08);
    assert_int_equal(s.op[2], 0x02);
    assert_int_equal(s.op[3], 0x08);
    assert_int_equal(s.len[3], 7);
    assert_memory_equal(s.body[3], "\x00\x00\x00\x03xyz", 7);
    seen_free(&s);
    cs_buf_free(&env);
    cs_buf_free(&seg);
}

/* Hand-made segments that break the rules on where envelopes end. */
static void raw_segment(cs_buf *out, const void *p, size_t n, bool sc)
{
    uint8_t h[6];
    uint32_t v = (uint32_t)n | (sc ? 1u << 17 : 0);
    h[0] = (uint8_t)v;
    h[1] = (uint8_t)(v >> 8);
    h[2] = (uint8_t)(v >> 16);
    uint32_t crc = cql_crc24(h, 3);
    h[3] = (uint8_t)crc;
    h[4] = (uint8_t)(crc >> 8);
    h[5] = (uint8_t)(crc >> 16);
    cs_buf_add(out, h, 6);
    cs_buf_add(out, p, n);
    uint32_t c = cql_crc32(cql_crc32(0, (const uint8_t *)"\xfa\x2d\x55\xca", 4), p, n);
    uint8_t t[4] = { (uint8_t)c, (uint8_t)(c >> 8), (uint8_t)(c >> 16), (uint8_t)(c >> 24) };
    cs_buf_add(out, t, 4);
}

static void test_segment_boundaries(void **state)
{
    (void)state;
    cs_buf env = CS_BUF_INIT, seg = CS_BUF_INIT;
    seen s = { 0 };
    cs_err e;
    envelope(&env, 0x85, 1, 0x08, "\x00\x00\x00\x01", 4);

    /* An envelope cut across two self-contained segments. */
    raw_segment(&seg, env.data, 5, true);
    raw_segment(&seg, env.data + 5, env.len - 5, true);
    expect_proto(decode_segments(&seg, &s, &e), &e, "past the end of its self-contained segment");
    seen_free(&s);

    /* Begun in a segment that is not self-contained, continued in one that is. */
    cs_buf_reset(&seg);
    raw_segment(&seg, env.data, 5, false);
    raw_segment(&seg, env.data + 5, env.len - 5, true);
    expect_proto(decode_segments(&seg, &s, &e), &e, "starts inside an unfinished envelope");
    seen_free(&s);

    /* Split over two segments that are not self-contained: fine. */
    cs_buf_reset(&seg);
    raw_segment(&seg, env.data, 5, false);
    raw_segment(&seg, env.data + 5, env.len - 5, false);
    assert_int_equal(decode_segments(&seg, &s, &e), 0);
    assert_int_equal(s.n, 1);
    seen_free(&s);

    /* Two envelopes in a segment that is not self-contained. */
    cs_buf two = CS_BUF_INIT;
    cs_buf_add(&two, env.data, env.len);
    cs_buf_add(&two, env.data, env.len);
    cs_buf_reset(&seg);
    raw_segment(&seg, two.data, two.len, false);
    expect_proto(decode_segments(&seg, &s, &e), &e, "holds more than one envelope");
    seen_free(&s);

    /* An envelope header claiming more than the input holds. */
    cs_buf_reset(&env);
    envelope(&env, 0x85, 1, 0x08, NULL, 0);
    env.data[8] = 0x40;
    cs_buf_reset(&seg);
    raw_segment(&seg, env.data, env.len, true);
    expect_proto(decode_segments(&seg, &s, &e), &e, "bytes of input");
    /* A negative length. */
    env.data[5] = (char)0x80;
    cs_buf_reset(&seg);
    raw_segment(&seg, env.data, env.len, true);
    expect_proto(decode_segments(&seg, &s, &e), &e, "outside 0..256 MiB");
    seen_free(&s);

    /* The callback's answer stops the decoding. */
    cs_buf_reset(&env);
    cs_buf_reset(&seg);
    for (int i = 0; i < 9; i++)
        envelope(&env, 0x85, (int16_t)i, 0x02, NULL, 0);
    segments(&seg, &env);
    assert_int_equal(decode_segments(&seg, &s, &e), CS_E_INVAL);
    assert_int_equal(s.n, 8);
    seen_free(&s);
    cs_buf_free(&two);
    cs_buf_free(&env);
    cs_buf_free(&seg);
}

/* ---------------------------------------------------------------------
 * A scripted fake server on 127.0.0.1 for the connection logic. Each step
 * answers one request: the frames it sends get the request's stream id
 * unless they set their own. It speaks versions up to max_version (5 by
 * default): a STARTUP above that gets the protocol error a real server
 * sends, in max_version, and the connection is closed; the client may then
 * connect again (two connections at most). On v5 everything after the
 * answer to STARTUP travels in segments, both ways. */

enum step_action { STEP_REPLY, STEP_HANG, STEP_CUT };

typedef struct step {
    enum step_action action;
    uint8_t opcode;
    uint8_t flags;
    cs_buf body;
    bool event_first; /* send an EVENT frame (stream -1) before the reply */
    uint8_t version;  /* 0: the connection's version */
    int corrupt;      /* v5: flip a bit at this offset of the segments (1-based) */
} step;

#define MAX_STEPS 8

typedef struct fake {
    int lfd;
    int port;
    pthread_t thread;
    bool running; /* thread started and not yet joined */
    int max_version;
    step steps[MAX_STEPS];
    size_t nsteps;
    /* version byte of each connection's STARTUP */
    uint8_t startup_version[2];
    size_t nconns;
    /* what the client sent on the connection served, one entry per request */
    uint8_t req_op[MAX_STEPS];
    uint8_t req_version[MAX_STEPS];
    cs_buf req_body[MAX_STEPS];
    size_t nreqs;
} fake;

static bool read_full(int fd, void *p, size_t n)
{
    uint8_t *q = p;
    while (n) {
        ssize_t r = read(fd, q, n);
        if (r <= 0)
            return false;
        q += r;
        n -= (size_t)r;
    }
    return true;
}

static void write_all(int fd, const void *p, size_t n)
{
    ssize_t w = write(fd, p, n);
    (void)w;
}

/* One request envelope into h and body: unframed, or the single
 * self-contained segment our client sends for small requests. */
static bool read_request(int fd, bool framed, uint8_t *h, cs_buf *body)
{
    cs_buf_reset(body);
    if (!framed) {
        if (!read_full(fd, h, 9))
            return false;
        size_t len = (size_t)h[5] << 24 | (size_t)h[6] << 16 | (size_t)h[7] << 8 | h[8];
        cs_buf_reserve(body, len);
        if (!read_full(fd, body->data, len))
            return false;
        body->len = len;
        return true;
    }
    uint8_t sh[6], t[4];
    size_t plen;
    bool sc;
    cs_err e;
    if (!read_full(fd, sh, 6) || cql_segment_header_decode(sh, &plen, &sc, &e) || !sc ||
        plen < 9)
        return false;
    uint8_t *p = malloc(plen);
    bool ok = read_full(fd, p, plen) && read_full(fd, t, 4) &&
              cql_segment_payload_check(p, plen, t, &e) == 0;
    if (ok) {
        memcpy(h, p, 9);
        cs_buf_add(body, p + 9, plen - 9);
    }
    free(p);
    return ok;
}

/* Send envelopes: as they are, or in segments (corrupted on request). */
static void send_envelopes(int fd, bool framed, const cs_buf *env, int corrupt)
{
    if (!framed) {
        write_all(fd, env->data, env->len);
        return;
    }
    size_t n = cql_segments_size(env->len);
    uint8_t *out = malloc(n);
    cql_segments_encode((const uint8_t *)env->data, env->len, out);
    if (corrupt > 0 && (size_t)corrupt <= n)
        out[corrupt - 1] ^= 0x10;
    write_all(fd, out, n);
    free(out);
}

static void refuse(fake *s, int fd, const uint8_t *h)
{
    cs_buf body = CS_BUF_INIT, env = CS_BUF_INIT;
    char msg[160];
    snprintf(msg, sizeof msg,
             "Invalid or unsupported protocol version (%d); supported versions are (3/v3%s)",
             h[0], s->max_version >= 4 ? ", 4/v4" : "");
    enc_int(&body, 0x000A);
    enc_string(&body, msg);
    envelope(&env, (uint8_t)(0x80 | s->max_version), (int16_t)(h[2] << 8 | h[3]), 0x00,
             body.data, body.len);
    write_all(fd, env.data, env.len);
    cs_buf_free(&body);
    cs_buf_free(&env);
}

/* Run the steps on an accepted connection whose STARTUP (h) was read.
 * False when the connection is to be dropped at once (STEP_CUT). */
static bool serve(fake *s, int fd, uint8_t *h)
{
    uint8_t version = h[0];
    bool framed = false;
    for (size_t i = 0; i < s->nsteps; i++) {
        if (i > 0 && !read_request(fd, framed, h, &s->req_body[i]))
            break;
        s->req_op[i] = h[4];
        s->req_version[i] = h[0];
        s->nreqs = i + 1;
        int16_t stream = (int16_t)(h[2] << 8 | h[3]);
        step *st = &s->steps[i];
        cs_buf env = CS_BUF_INIT;
        if (st->event_first) {
            envelope(&env, (uint8_t)(0x80 | version), -1, 0x0C, "\x00\x0dSTATUS_CHANGE", 15);
            /* A small reply shares the EVENT's segment; a large one gets
             * segments of its own. */
            if (framed && env.len + 9 + st->body.len > CQL_SEGMENT_MAX_PAYLOAD) {
                send_envelopes(fd, framed, &env, 0);
                cs_buf_reset(&env);
            }
        }
        if (st->action == STEP_HANG) {
            cs_buf_free(&env);
            break;
        }
        if (st->action == STEP_CUT) {
            /* A header that announces more than follows, then hang up. */
            if (framed) {
                uint8_t sh[6] = { 0x40, 0x00, 0x02 };
                uint32_t crc = cql_crc24(sh, 3);
                sh[3] = (uint8_t)crc;
                sh[4] = (uint8_t)(crc >> 8);
                sh[5] = (uint8_t)(crc >> 16);
                write_all(fd, sh, 6);
                write_all(fd, "\x85\x00\x00", 3);
            } else {
                write_all(fd, "\x84\x00\x00\x00\x08\x00\x00\x01\x00\x00", 10);
            }
            cs_buf_free(&env);
            return false;
        }
        envelope(&env, st->version ? st->version : (uint8_t)(0x80 | version), stream,
                 st->opcode, st->body.data, st->body.len);
        env.data[env.len - st->body.len - 8] = (char)st->flags;
        send_envelopes(fd, framed, &env, st->corrupt);
        cs_buf_free(&env);
        /* The answer to STARTUP switches v5 to segments. */
        if (i == 0 && version >= 5 && (st->opcode == 0x02 || st->opcode == 0x03))
            framed = true;
    }
    return true;
}

/* Read until the client hangs up. */
static void drain(int fd)
{
    char c;
    while (read(fd, &c, 1) > 0)
        ;
}

static void *fake_main(void *arg)
{
    fake *s = arg;
    cs_buf startup = CS_BUF_INIT;
    while (s->nconns < 2) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            break;
        uint8_t h[9];
        if (!read_request(fd, false, h, &startup)) {
            close(fd);
            break;
        }
        s->startup_version[s->nconns++] = h[0];
        if (h[0] > s->max_version) {
            refuse(s, fd, h);
            drain(fd);
            close(fd);
            continue;
        }
        cs_buf_reset(&s->req_body[0]);
        cs_buf_add(&s->req_body[0], startup.data, startup.len);
        if (serve(s, fd, h))
            drain(fd);
        close(fd);
        break;
    }
    cs_buf_free(&startup);
    return NULL;
}

static step *add_step(fake *s, uint8_t opcode)
{
    step *st = &s->steps[s->nsteps++];
    st->action = STEP_REPLY;
    st->opcode = opcode;
    return st;
}

static int fake_setup(void **state)
{
    fake *s = calloc(1, sizeof *s);
    s->max_version = 5;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) ||
        listen(s->lfd, 2) || getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    *state = s;
    return 0;
}

static void fake_start(fake *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, fake_main, s), 0);
    s->running = true;
}

/* Wait for the fake to finish (the client must have closed first). */
static void fake_join(fake *s)
{
    if (s->running)
        pthread_join(s->thread, NULL);
    s->running = false;
}

static int fake_teardown(void **state)
{
    fake *s = *state;
    fake_join(s);
    close(s->lfd);
    for (size_t i = 0; i < MAX_STEPS; i++) {
        cs_buf_free(&s->steps[i].body);
        cs_buf_free(&s->req_body[i]);
    }
    free(s);
    return 0;
}

static cql_conn_opts fake_opts(const fake *s)
{
    cql_conn_opts o = { .host = "127.0.0.1", .port = s->port, .timeout_ms = 2000 };
    return o;
}

/* A one-int-column Rows page with the given values and paging state. */
static void rows_page(cs_buf *b, const int32_t *v, size_t n, const char *ps)
{
    enc_int(b, 2);
    enc_int(b, 0x0001 | (ps ? 0x0002 : 0));
    enc_int(b, 1);
    if (ps)
        enc_bytes(b, ps, strlen(ps));
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "n");
    enc_short(b, 0x09);
    enc_int(b, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        cs_buf x = CS_BUF_INIT;
        enc_int(&x, v[i]);
        enc_buf_bytes(b, &x);
        cs_buf_free(&x);
    }
}

/* The QUERY body our client sends: flags a [byte] in v4, an [int] in v5. */
static void query_body(cs_buf *b, int version, const char *cql, unsigned flags, const char *ps)
{
    cs_buf_reset(b);
    enc_bytes(b, cql, strlen(cql));
    enc_short(b, 0x0001);
    if (version >= 5)
        enc_int(b, (int32_t)flags);
    else
        enc_byte(b, flags);
    enc_int(b, 5000);
    if (ps)
        enc_bytes(b, ps, strlen(ps));
}

/* STARTUP, then a query over two pages with a stray EVENT before the
 * second; checks what the client sent at the version it ends up with. */
static void startup_and_paging(fake *s, int want_version)
{
    add_step(s, 0x02); /* READY */
    static const int32_t p1[] = { 1, 2 }, p2[] = { 3 };
    rows_page(&add_step(s, 0x08)->body, p1, 2, "PS1");
    step *st = add_step(s, 0x08);
    rows_page(&st->body, p2, 1, NULL);
    st->event_first = true; /* a stray EVENT is skipped (v5: in the same segment) */
    fake_start(s);

    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cql_result *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_protocol_version(c), want_version);
    assert_int_equal(cql_query(c, "SELECT n FROM ks.t", &r, &e), 0);
    assert_int_equal(cql_result_rows(r), 3);
    assert_string_equal(cql_result_text(r, 0, "n"), "1");
    assert_string_equal(cql_result_text(r, 2, "n"), "3");
    /* raw bytes outlive the frames they came in (ASan would see otherwise) */
    for (size_t i = 0; i < 3; i++) {
        const cql_value *v = cql_result_value(r, i, 0);
        uint8_t want_raw[4] = { 0, 0, 0, (uint8_t)(i + 1) };
        assert_int_equal(v->raw_len, 4);
        assert_memory_equal(v->raw, want_raw, 4);
    }
    cql_result_free(r);
    cql_close(c);
    fake_join(s);

    /* STARTUP {"CQL_VERSION": "3.0.0"} */
    assert_int_equal(s->nreqs, 3);
    assert_int_equal(s->req_version[0], want_version);
    assert_int_equal(s->req_version[1], want_version);
    assert_int_equal(s->req_op[0], 0x01);
    cs_buf want = CS_BUF_INIT;
    enc_short(&want, 1);
    enc_string(&want, "CQL_VERSION");
    enc_string(&want, "3.0.0");
    assert_int_equal(s->req_body[0].len, want.len);
    assert_memory_equal(s->req_body[0].data, want.data, want.len);
    /* First QUERY: page size only; second: page size and paging state. */
    query_body(&want, want_version, "SELECT n FROM ks.t", 0x04, NULL);
    assert_int_equal(s->req_op[1], 0x07);
    assert_int_equal(s->req_body[1].len, want.len);
    assert_memory_equal(s->req_body[1].data, want.data, want.len);
    query_body(&want, want_version, "SELECT n FROM ks.t", 0x0C, "PS1");
    assert_int_equal(s->req_body[2].len, want.len);
    assert_memory_equal(s->req_body[2].data, want.data, want.len);
    cs_buf_free(&want);
}

static void test_conn_v5_startup_and_paging(void **state)
{
    fake *s = *state;
    startup_and_paging(s, 5);
    assert_int_equal(s->nconns, 1);
    assert_int_equal(s->startup_version[0], 0x05);
}

/* A server without v5 (Cassandra 3.x) refuses it; the client connects
 * again and speaks v4. */
static void test_conn_v4_fallback(void **state)
{
    fake *s = *state;
    s->max_version = 4;
    startup_and_paging(s, 4);
    assert_int_equal(s->nconns, 2);
    assert_int_equal(s->startup_version[0], 0x05);
    assert_int_equal(s->startup_version[1], 0x04);
}

/* A v5 Rows page larger than a segment (a 300 KiB blob): it arrives in
 * three segments that are not self-contained, after an EVENT in its own. */
static void test_conn_v5_large_result(void **state)
{
    fake *s = *state;
    add_step(s, 0x02);
    step *st = add_step(s, 0x08);
    st->event_first = true;
    size_t big = 300 * 1024;
    uint8_t *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (uint8_t)(i % 251);
    enc_int(&st->body, 2);
    enc_int(&st->body, 0x0001);
    enc_int(&st->body, 1);
    enc_string(&st->body, "ks");
    enc_string(&st->body, "t");
    enc_string(&st->body, "b");
    enc_short(&st->body, 0x03);
    enc_int(&st->body, 1);
    enc_bytes(&st->body, blob, big);
    fake_start(s);

    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cql_result *r = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_query(c, "SELECT b FROM ks.t", &r, &e), 0);
    assert_int_equal(cql_result_rows(r), 1);
    const char *text = cql_result_text(r, 0, "b");
    assert_non_null(text);
    assert_int_equal(strlen(text), 2 + 2 * big);
    assert_memory_equal(text, "0x000102", 8);
    char tail[8];
    snprintf(tail, sizeof tail, "%02x", (unsigned)blob[big - 1]);
    assert_string_equal(text + strlen(text) - 2, tail);
    const cql_value *v = cql_result_value(r, 0, 0);
    assert_int_equal(v->raw_len, big);
    assert_memory_equal(v->raw, blob, big);
    cql_result_free(r);
    cql_close(c);
    free(blob);
}

/* A corrupted segment from the server: CS_E_PROTO naming the CRC, and the
 * connection is not used again. */
static void corrupted_answer(fake *s, int offset, const char *needle)
{
    add_step(s, 0x02);
    step *st = add_step(s, 0x08);
    enc_int(&st->body, 1);
    st->corrupt = offset;
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cql_result *r = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_query(c, "USE ks", &r, &e), CS_E_PROTO);
    assert_null(r);
    assert_non_null(strstr(e.msg, needle));
    assert_int_equal(cql_query(c, "USE ks", &r, &e), CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "unusable"));
    cql_close(c);
}

static void test_conn_v5_bad_header_crc(void **state)
{
    corrupted_answer(*state, 2, "header CRC24 mismatch");
}

static void test_conn_v5_bad_payload_crc(void **state)
{
    corrupted_answer(*state, 12, "payload CRC32 mismatch");
}

static void test_conn_auth(void **state)
{
    fake *s = *state;
    enc_string(&add_step(s, 0x03)->body, "org.apache.cassandra.auth.PasswordAuthenticator");
    enc_null(&add_step(s, 0x10)->body); /* AUTH_SUCCESS */
    /* The answer carries a tracing id and a warning before the RESULT. */
    step *st = add_step(s, 0x08);
    st->flags = 0x02 | 0x08;
    cs_buf_add(&st->body, "0123456789abcdef", 16);
    enc_short(&st->body, 1);
    enc_string(&st->body, "Aggregation query used without partition key");
    enc_int(&st->body, 1); /* Void */
    fake_start(s);

    cql_conn_opts o = fake_opts(s);
    o.username = "cassandra";
    o.password = "s3cret";
    cql_conn *c = NULL;
    cql_result *r = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_protocol_version(c), 5);
    assert_int_equal(cql_query(c, "CREATE KEYSPACE x", &r, &e), 0);
    assert_int_equal(cql_result_rows(r), 0);
    cql_result_free(r);
    cql_close(c);
    fake_join(s);
    /* AUTH_RESPONSE went in a segment (the fake reads it so) at v5. */
    assert_int_equal(s->req_op[1], 0x0F);
    assert_int_equal(s->req_version[1], 0x05);
    cs_buf want = CS_BUF_INIT;
    enc_bytes(&want, "\0cassandra\0s3cret", 17);
    assert_int_equal(s->req_body[1].len, want.len);
    assert_memory_equal(s->req_body[1].data, want.data, want.len);
    cs_buf_free(&want);
}

static void test_conn_auth_required(void **state)
{
    fake *s = *state;
    enc_string(&add_step(s, 0x03)->body, "org.apache.cassandra.auth.PasswordAuthenticator");
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = (cql_conn *)1;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_INVAL);
    assert_null(c);
    assert_non_null(strstr(e.msg, "server requires authentication; set username and password"));
}

static void test_conn_auth_rejected(void **state)
{
    fake *s = *state;
    enc_string(&add_step(s, 0x03)->body, "org.apache.cassandra.auth.PasswordAuthenticator");
    step *st = add_step(s, 0x00);
    enc_int(&st->body, 0x0100);
    enc_string(&st->body, "Provided username bob and/or password are incorrect");
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    o.username = "bob";
    o.password = "hunter2";
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_EXTERNAL);
    assert_null(c);
    assert_non_null(strstr(e.msg, "authentication failed for user bob: Provided username bob"));
    assert_null(strstr(e.msg, "hunter2"));
}

static void test_conn_query_error(void **state)
{
    fake *s = *state;
    add_step(s, 0x02);
    step *st = add_step(s, 0x00);
    enc_int(&st->body, 0x2200);
    enc_string(&st->body, "unconfigured table nope");
    add_step(s, 0x08);
    enc_int(&s->steps[2].body, 1);
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cql_result *r = (cql_result *)1;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_query(c, "SELECT * FROM nope", &r, &e), CS_E_EXTERNAL);
    assert_null(r);
    assert_string_equal(e.msg, "invalid query: unconfigured table nope");
    /* The connection stays usable after a server error. */
    assert_int_equal(cql_query(c, "USE ks", &r, &e), 0);
    cql_result_free(r);
    cql_close(c);
}

static void test_conn_refused(void **state)
{
    (void)state;
    /* A port that was just free: bind, note, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    cql_conn_opts o = { .host = "127.0.0.1", .port = ntohs(a.sin_port), .timeout_ms = 1000 };
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_UNAVAIL);
    assert_null(c);
    char want[128];
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%d: ", o.port);
    assert_true(strncmp(e.msg, want, strlen(want)) == 0);
    assert_non_null(strstr(e.msg, "refused"));

    cql_conn_opts none = { 0 };
    assert_int_equal(cql_connect(&none, &c, &e), CS_E_INVAL);
    assert_int_equal(cql_protocol_version(NULL), 0);
}

static void test_conn_timeout(void **state)
{
    fake *s = *state;
    s->steps[s->nsteps++].action = STEP_HANG;
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    o.timeout_ms = 200;
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_UNAVAIL);
    assert_null(c);
    assert_non_null(strstr(e.msg, "timed out after 200 ms"));
    assert_non_null(strstr(e.msg, "cannot connect to 127.0.0.1:"));
}

/* The server hangs up inside an answer, on v5 (in a segment) and v4. */
static void cut_mid_frame(fake *s)
{
    add_step(s, 0x02);
    s->steps[s->nsteps++].action = STEP_CUT;
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cql_result *r = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_query(c, "SELECT 1", &r, &e), CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "closed the connection"));
    /* Out of step with the server: later queries fail at once. */
    assert_int_equal(cql_query(c, "SELECT 1", &r, &e), CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "unusable"));
    cql_close(c);
}

static void test_conn_cut_mid_frame(void **state)
{
    cut_mid_frame(*state);
}

static void test_conn_cut_mid_frame_v4(void **state)
{
    fake *s = *state;
    s->max_version = 4;
    cut_mid_frame(s);
}

static void test_conn_unexpected_opcode(void **state)
{
    fake *s = *state;
    add_step(s, 0x06); /* SUPPORTED, though we never sent OPTIONS */
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_PROTO);
    assert_null(c);
    assert_non_null(strstr(e.msg, "unexpected CQL message 0x06"));
}

/* A v3-only server refuses v5 and then v4, each time in v3. */
static void test_conn_bad_version(void **state)
{
    fake *s = *state;
    s->max_version = 3;
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_PROTO);
    assert_null(c);
    assert_non_null(strstr(e.msg, "protocol version 3"));
    assert_non_null(strstr(e.msg, "cassette speaks v4 and v5"));
    fake_join(s);
    assert_int_equal(s->nconns, 2);
    assert_int_equal(s->startup_version[1], 0x04);
}

/* An error to a v5 STARTUP that is not about the version is final: no
 * second connection. */
static void test_conn_startup_error_no_fallback(void **state)
{
    fake *s = *state;
    step *st = add_step(s, 0x00);
    enc_int(&st->body, 0x0000);
    enc_string(&st->body, "Server is shutting down");
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_EXTERNAL);
    assert_null(c);
    assert_non_null(strstr(e.msg, "cannot connect to 127.0.0.1:"));
    assert_non_null(strstr(e.msg, "server error: Server is shutting down"));
    fake_join(s);
    assert_int_equal(s->nconns, 1);
}

#define FAKE_TEST(f) cmocka_unit_test_setup_teardown(f, fake_setup, fake_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_void),
        cmocka_unit_test(test_set_keyspace),
        cmocka_unit_test(test_schema_change),
        cmocka_unit_test(test_bad_kinds),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_custom_type),
        cmocka_unit_test(test_vector_fixed_elements),
        cmocka_unit_test(test_vector_variable_elements),
        cmocka_unit_test(test_vector_malformed),
        cmocka_unit_test(test_vector_names_not_understood),
        cmocka_unit_test(test_vector_from_cassandra),
        cmocka_unit_test(test_bad_widths),
        cmocka_unit_test(test_nulls_and_column_lookup),
        cmocka_unit_test(test_per_column_specs),
        cmocka_unit_test(test_list_set_map),
        cmocka_unit_test(test_nested_collections),
        cmocka_unit_test(test_udt_and_tuple),
        cmocka_unit_test(test_paging_state),
        cmocka_unit_test(test_no_metadata),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_big_body_values),
        cmocka_unit_test(test_hostile_counts),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_error_frames),
        cmocka_unit_test(test_error_failures_v4_v5),
        cmocka_unit_test(test_rows_metadata_changed),
        cmocka_unit_test(test_fallback_decision),
        cmocka_unit_test(test_varint_text),
        cmocka_unit_test(test_varint_powers_of_ten),
        cmocka_unit_test(test_decimal_text),
        cmocka_unit_test(test_duration_text),
        cmocka_unit_test(test_raw_bytes),
        cmocka_unit_test(test_crc_vectors),
        cmocka_unit_test(test_segment_round_trip),
        cmocka_unit_test(test_segment_bad_crc),
        cmocka_unit_test(test_segment_spanning),
        cmocka_unit_test(test_segment_several_envelopes),
        cmocka_unit_test(test_segment_boundaries),
        FAKE_TEST(test_conn_v5_startup_and_paging),
        FAKE_TEST(test_conn_v4_fallback),
        FAKE_TEST(test_conn_v5_large_result),
        FAKE_TEST(test_conn_v5_bad_header_crc),
        FAKE_TEST(test_conn_v5_bad_payload_crc),
        FAKE_TEST(test_conn_auth),
        FAKE_TEST(test_conn_auth_required),
        FAKE_TEST(test_conn_auth_rejected),
        FAKE_TEST(test_conn_query_error),
        cmocka_unit_test(test_conn_refused),
        FAKE_TEST(test_conn_timeout),
        FAKE_TEST(test_conn_cut_mid_frame),
        FAKE_TEST(test_conn_cut_mid_frame_v4),
        FAKE_TEST(test_conn_unexpected_opcode),
        FAKE_TEST(test_conn_bad_version),
        FAKE_TEST(test_conn_startup_error_no_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

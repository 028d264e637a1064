/* test_cql.c - the CQL v4 client: RESULT/ERROR decoding from hand-built
 * bodies (every type, nesting, UDT, nulls, paging, truncation, hostile
 * counts) and the connection logic against a scripted fake server on
 * loopback (STARTUP, SASL PLAIN, paging, errors, timeouts, stray frames). */
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
    { 0x06, "\x00\x00\x00\x02\x04\xd2", 6, "0x0000000204d2" }, /* 12.34 */
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
    { 0x0E, "\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9, "0x010000000000000000" },
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
    { 0x15, "\x02\x04\x06", 3, "0x020406" },
};

static void scalar_body(cs_buf *b, unsigned type, const void *bytes, size_t n)
{
    rows_begin(b, 0, 1);
    enc_string(b, "ks");
    enc_string(b, "t");
    enc_string(b, "c");
    enc_short(b, type);
    if (type == 0x00)
        enc_string(b, "org.apache.cassandra.db.marshal.VectorType");
    enc_int(b, 1);
    enc_bytes(b, bytes, n);
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
        assert_string_equal(cql_result_value(r, 0, i)->text, scalar_cases[i].want);
        if (i % 3 == 0)
            assert_int_equal(cql_result_value(r, 1, i)->kind, CQL_NULL);
    }
    const cql_value *u = cql_result_value(r, 1, ncases + 1);
    assert_int_equal(u->kind, CQL_MAP);
    assert_string_equal(u->items[1].text, "9");
    assert_string_equal(u->items[3].items[0].text, "zz");
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
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, &e), CS_E_EXTERNAL);
    assert_int_equal(e.code, CS_E_EXTERNAL);
    assert_string_equal(e.msg, "invalid query: unconfigured table nope");

    /* Unavailable carries <cl><required><alive>: ignored. */
    cs_buf_reset(&b);
    enc_int(&b, 0x1000);
    enc_string(&b, "Cannot achieve consistency level ONE");
    enc_short(&b, 1);
    enc_int(&b, 1);
    enc_int(&b, 0);
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, "unavailable: not enough replicas (required 1, alive 0) at ONE");

    cs_buf_reset(&b);
    enc_int(&b, 0x000A);
    enc_string(&b, "line one\nline two");
    cql_decode_error((uint8_t *)b.data, b.len, &e);
    assert_string_equal(e.msg, "protocol error: line one line two");

    /* Every truncation fails with CS_E_PROTO. */
    cs_buf_reset(&b);
    enc_int(&b, 0x2000);
    enc_string(&b, "line 1:0 no viable alternative");
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        cs_err_clear(&e);
        assert_int_equal(cql_decode_error(copy, n, &e), CS_E_PROTO);
        assert_int_equal(e.code, CS_E_PROTO);
        free(copy);
    }
    /* A NULL cs_err is allowed. */
    assert_int_equal(cql_decode_error((uint8_t *)b.data, b.len, NULL), CS_E_EXTERNAL);
    cs_buf_free(&b);
}

/* ---------------------------------------------------------------------
 * A scripted fake server on 127.0.0.1 for the connection logic. Each step
 * answers one request: the frames it sends get the request's stream id
 * unless they set their own. */

enum step_action { STEP_REPLY, STEP_HANG, STEP_CUT };

typedef struct step {
    enum step_action action;
    uint8_t opcode;
    uint8_t flags;
    cs_buf body;
    bool event_first; /* send an EVENT frame (stream -1) before the reply */
    uint8_t version;  /* 0: a v4 response (0x84) */
} step;

#define MAX_STEPS 8

typedef struct fake {
    int lfd;
    int port;
    pthread_t thread;
    bool running; /* thread started and not yet joined */
    step steps[MAX_STEPS];
    size_t nsteps;
    /* what the client sent, one entry per request */
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

static void write_frame(int fd, uint8_t version, uint8_t flags, int16_t stream, uint8_t op,
                        const cs_buf *body)
{
    cs_buf f = CS_BUF_INIT;
    enc_byte(&f, version ? version : 0x84);
    enc_byte(&f, flags);
    enc_short(&f, (uint16_t)stream);
    enc_byte(&f, op);
    enc_int(&f, (int32_t)body->len);
    cs_buf_add(&f, body->data, body->len);
    ssize_t w = write(fd, f.data, f.len);
    (void)w;
    cs_buf_free(&f);
}

static void *fake_main(void *arg)
{
    fake *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (size_t i = 0; i < s->nsteps; i++) {
        uint8_t h[9];
        if (!read_full(fd, h, 9))
            break;
        size_t len = (size_t)h[5] << 24 | (size_t)h[6] << 16 | (size_t)h[7] << 8 | h[8];
        cs_buf_reset(&s->req_body[i]);
        cs_buf_reserve(&s->req_body[i], len);
        if (!read_full(fd, s->req_body[i].data, len))
            break;
        s->req_body[i].len = len;
        s->req_op[i] = h[4];
        s->req_version[i] = h[0];
        s->nreqs = i + 1;
        int16_t stream = (int16_t)(h[2] << 8 | h[3]);
        step *st = &s->steps[i];
        if (st->event_first) {
            cs_buf ev = CS_BUF_INIT;
            enc_string(&ev, "STATUS_CHANGE");
            write_frame(fd, 0, 0, -1, 0x0C, &ev);
            cs_buf_free(&ev);
        }
        if (st->action == STEP_HANG)
            break;
        if (st->action == STEP_CUT) {
            ssize_t w = write(fd, "\x84\x00\x00\x00\x08\x00\x00\x01\x00\x00", 10);
            (void)w;
            close(fd);
            return NULL;
        }
        write_frame(fd, st->version, st->flags, stream, st->opcode, &st->body);
    }
    /* Wait for the client to hang up. */
    char c;
    while (read(fd, &c, 1) > 0)
        ;
    close(fd);
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
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) ||
        listen(s->lfd, 1) || getsockname(s->lfd, (struct sockaddr *)&a, &al))
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

static void test_conn_startup_and_paging(void **state)
{
    fake *s = *state;
    add_step(s, 0x02); /* READY */
    static const int32_t p1[] = { 1, 2 }, p2[] = { 3 };
    rows_page(&add_step(s, 0x08)->body, p1, 2, "PS1");
    step *st = add_step(s, 0x08);
    rows_page(&st->body, p2, 1, NULL);
    st->event_first = true; /* a stray EVENT is skipped */
    fake_start(s);

    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cql_result *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cql_connect(&o, &c, &e), 0);
    assert_int_equal(cql_query(c, "SELECT n FROM ks.t", &r, &e), 0);
    assert_int_equal(cql_result_rows(r), 3);
    assert_string_equal(cql_result_text(r, 0, "n"), "1");
    assert_string_equal(cql_result_text(r, 2, "n"), "3");
    cql_result_free(r);
    cql_close(c);
    fake_join(s);

    /* STARTUP {"CQL_VERSION": "3.0.0"} */
    assert_int_equal(s->nreqs, 3);
    assert_int_equal(s->req_version[0], 0x04);
    assert_int_equal(s->req_op[0], 0x01);
    cs_buf want = CS_BUF_INIT;
    enc_short(&want, 1);
    enc_string(&want, "CQL_VERSION");
    enc_string(&want, "3.0.0");
    assert_int_equal(s->req_body[0].len, want.len);
    assert_memory_equal(s->req_body[0].data, want.data, want.len);
    /* First QUERY: page size only; second: page size and paging state. */
    cs_buf_reset(&want);
    enc_bytes(&want, "SELECT n FROM ks.t", 18);
    enc_short(&want, 0x0001);
    enc_byte(&want, 0x04);
    enc_int(&want, 5000);
    assert_int_equal(s->req_op[1], 0x07);
    assert_int_equal(s->req_body[1].len, want.len);
    assert_memory_equal(s->req_body[1].data, want.data, want.len);
    cs_buf_reset(&want);
    enc_bytes(&want, "SELECT n FROM ks.t", 18);
    enc_short(&want, 0x0001);
    enc_byte(&want, 0x0C);
    enc_int(&want, 5000);
    enc_bytes(&want, "PS1", 3);
    assert_int_equal(s->req_body[2].len, want.len);
    assert_memory_equal(s->req_body[2].data, want.data, want.len);
    cs_buf_free(&want);
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
    assert_int_equal(cql_query(c, "CREATE KEYSPACE x", &r, &e), 0);
    assert_int_equal(cql_result_rows(r), 0);
    cql_result_free(r);
    cql_close(c);
    fake_join(s);
    assert_int_equal(s->req_op[1], 0x0F);
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

static void test_conn_cut_mid_frame(void **state)
{
    fake *s = *state;
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

static void test_conn_bad_version(void **state)
{
    fake *s = *state;
    step *st = add_step(s, 0x00);
    st->version = 0x83; /* a v3 ERROR, as an old server would answer */
    enc_int(&st->body, 0x000A);
    enc_string(&st->body, "Invalid or unsupported protocol version (4)");
    fake_start(s);
    cql_conn_opts o = fake_opts(s);
    cql_conn *c = NULL;
    cs_err e;
    assert_int_equal(cql_connect(&o, &c, &e), CS_E_PROTO);
    assert_null(c);
    assert_non_null(strstr(e.msg, "protocol version 3"));
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
        FAKE_TEST(test_conn_startup_and_paging),
        FAKE_TEST(test_conn_auth),
        FAKE_TEST(test_conn_auth_required),
        FAKE_TEST(test_conn_auth_rejected),
        FAKE_TEST(test_conn_query_error),
        cmocka_unit_test(test_conn_refused),
        FAKE_TEST(test_conn_timeout),
        FAKE_TEST(test_conn_cut_mid_frame),
        FAKE_TEST(test_conn_unexpected_opcode),
        FAKE_TEST(test_conn_bad_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

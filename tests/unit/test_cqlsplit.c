/* test_cqlsplit.c - splitting CQL scripts into statements the way cqlsh does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cassandra/cqlsplit.h"
#include "common/err.h"

/* Fluxer's 20251224122758_instance_configuration.cql, odd spacing and all. */
#define FLUXER                                                                              \
    "CREATE TABLE IF NOT EXISTS fluxer . instance_configuration (\n"                       \
    "key text PRIMARY KEY ,\n"                                                              \
    "value text ,\n"                                                                        \
    "updated_at timestamp\n"                                                                \
    ");\n"                                                                                  \
    "INSERT INTO fluxer . instance_configuration ( key , value , updated_at)\n"            \
    "VALUES ( 'manual_review_enabled' , 'true' , toTimestamp( now ()));\n"                  \
    "INSERT INTO fluxer . instance_configuration ( key , value , updated_at)\n"            \
    "VALUES ( 'manual_review_schedule_enabled' , 'false' , toTimestamp( now ()));\n"

static const char *const FLUXER_STMTS[] = {
    "CREATE TABLE IF NOT EXISTS fluxer . instance_configuration (\n"
    "key text PRIMARY KEY ,\n"
    "value text ,\n"
    "updated_at timestamp\n"
    ")",
    "INSERT INTO fluxer . instance_configuration ( key , value , updated_at)\n"
    "VALUES ( 'manual_review_enabled' , 'true' , toTimestamp( now ()))",
    "INSERT INTO fluxer . instance_configuration ( key , value , updated_at)\n"
    "VALUES ( 'manual_review_schedule_enabled' , 'false' , toTimestamp( now ()))",
};

typedef struct expect {
    size_t line;
    const char *text;
} expect;

/* Split `script` (strlen bytes) and check it gives exactly `want`. */
static void check_len(const char *script, size_t len, const expect *want, size_t nwant)
{
    cql_statement *s = NULL;
    size_t n = 99;
    cs_err e;
    cs_err_clear(&e);
    int rc = cql_split(script, len, &s, &n, &e);
    if (rc)
        fail_msg("cql_split: %s", e.msg);
    if (n != nwant) {
        for (size_t i = 0; i < n; i++)
            print_error("  [%zu] line %zu: <%s>\n", i, s[i].line, s[i].text);
        fail_msg("%zu statements, want %zu", n, nwant);
    }
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(s[i].text, want[i].text);
        assert_int_equal(s[i].line, want[i].line);
    }
    cql_statements_free(s, n);
}

static void check(const char *script, const expect *want, size_t nwant)
{
    check_len(script, strlen(script), want, nwant);
}

#define CHECK(script, ...)                                                   \
    do {                                                                     \
        static const expect want_[] = { __VA_ARGS__ };                       \
        check((script), want_, sizeof want_ / sizeof want_[0]);              \
    } while (0)

/* Split `script` expecting CS_E_INVAL with exactly `msg`. */
static void check_error(const char *script, size_t len, const char *msg)
{
    cql_statement *s = (cql_statement *)&s; /* must be reset to NULL */
    size_t n = 99;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cql_split(script, len, &s, &n, &e), CS_E_INVAL);
    assert_int_equal(e.code, CS_E_INVAL);
    assert_null(s);
    assert_int_equal(n, 0);
    assert_string_equal(e.msg, msg);
}

static size_t count(const char *script)
{
    cql_statement *s = NULL;
    size_t n = 99;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cql_split(script, strlen(script), &s, &n, &e), 0);
    cql_statements_free(s, n);
    return n;
}

static void test_fluxer_example(void **state)
{
    (void)state;
    CHECK(FLUXER, { 1, FLUXER_STMTS[0] }, { 6, FLUXER_STMTS[1] }, { 8, FLUXER_STMTS[2] });
}

static void test_semicolons_inside_tokens(void **state)
{
    (void)state;
    CHECK("INSERT INTO t (k, v) VALUES (1, 'a;b');SELECT \"odd;name\" FROM t;",
          { 1, "INSERT INTO t (k, v) VALUES (1, 'a;b')" },
          { 1, "SELECT \"odd;name\" FROM t" });
    CHECK("SELECT 1 /* not; the end */ FROM t; SELECT 2 -- nor; this\nFROM u;",
          { 1, "SELECT 1 /* not; the end */ FROM t" },
          { 1, "SELECT 2 -- nor; this\nFROM u" });
    CHECK("SELECT 3 // still; not\nFROM v;", { 1, "SELECT 3 // still; not\nFROM v" });
    CHECK("INSERT INTO t (k, v) VALUES (1, $$x; y 'z' \"w\"\n;$$);\nSELECT 4;",
          { 1, "INSERT INTO t (k, v) VALUES (1, $$x; y 'z' \"w\"\n;$$)" },
          { 3, "SELECT 4" });
    /* the other quotes and comment openers are plain bytes inside each kind */
    CHECK("SELECT '\"--/*$$' FROM \"'//$$\";SELECT 5;",
          { 1, "SELECT '\"--/*$$' FROM \"'//$$\"" }, { 1, "SELECT 5" });
    CHECK("/* ' \" $$ -- */ SELECT 6; -- ' \" $$ /*\nSELECT 7;",
          { 1, "SELECT 6" }, { 2, "SELECT 7" });
}

static void test_doubled_quote_escapes(void **state)
{
    (void)state;
    CHECK("INSERT INTO t (k, v) VALUES (1, 'it''s; fine');SELECT '''';SELECT '';",
          { 1, "INSERT INTO t (k, v) VALUES (1, 'it''s; fine')" },
          { 1, "SELECT ''''" }, { 1, "SELECT ''" });
    CHECK("SELECT \"a\"\"; b\" FROM t;SELECT \"\"\"\";",
          { 1, "SELECT \"a\"\"; b\" FROM t" }, { 1, "SELECT \"\"\"\"" });
    /* '' right before the closing quote: 'x''' is x' */
    CHECK("SELECT 'x''';SELECT 8;", { 1, "SELECT 'x'''" }, { 1, "SELECT 8" });
}

static void test_comments_before_statements(void **state)
{
    (void)state;
    CHECK("-- migration: add users\n"
          "// owner: ops\n"
          "/* a block\n"
          "   over lines */\n"
          "\n"
          "   CREATE TABLE ks.users (id uuid PRIMARY KEY) ; -- trailing\n"
          "/* between */ /* two */\n"
          "\tDROP TABLE /* inside */ ks.old /* after the last token */ -- so dropped\n"
          ";\n",
          { 6, "CREATE TABLE ks.users (id uuid PRIMARY KEY)" },
          { 8, "DROP TABLE /* inside */ ks.old" });
}

static void test_batch_is_one_statement(void **state)
{
    (void)state;
    CHECK("BEGIN BATCH\n"
          "  INSERT INTO t (k, v) VALUES (1, 'a');\n"
          "  INSERT INTO t (k, v) VALUES (2, 'b');\n"
          "  INSERT INTO t (k, v) VALUES (3, 'c');\n"
          "APPLY BATCH;\n"
          "SELECT * FROM t;\n",
          { 1, "BEGIN BATCH\n"
               "  INSERT INTO t (k, v) VALUES (1, 'a');\n"
               "  INSERT INTO t (k, v) VALUES (2, 'b');\n"
               "  INSERT INTO t (k, v) VALUES (3, 'c');\n"
               "APPLY BATCH" },
          { 6, "SELECT * FROM t" });
    /* any case, UNLOGGED / COUNTER, comments and line breaks between the words,
     * inner statements without ';', no ';' after APPLY BATCH at the end */
    CHECK("begin /* x */ Unlogged\n-- y\n batch USING TIMESTAMP 1 INSERT INTO t (k) VALUES (1) "
          "DELETE FROM t WHERE k = 2; apply // z\n BATCH ;"
          "BEGIN COUNTER BATCH UPDATE c SET n = n + 1 WHERE k = 1; APPLY BATCH",
          { 1, "begin /* x */ Unlogged\n-- y\n batch USING TIMESTAMP 1 INSERT INTO t (k) VALUES (1) "
               "DELETE FROM t WHERE k = 2; apply // z\n BATCH" },
          { 4, "BEGIN COUNTER BATCH UPDATE c SET n = n + 1 WHERE k = 1; APPLY BATCH" });
    /* the words only count as keywords: not in strings, quoted names, longer words */
    CHECK("BEGIN BATCH INSERT INTO t (k, v) VALUES (1, 'APPLY BATCH;');"
          " INSERT INTO t (k, \"apply\", batch_x) VALUES (1, 2, 3);"
          " UPDATE t SET apply_batch = 1 WHERE k = 1; INSERT INTO \"APPLY\" (k) VALUES (1) \"BATCH\";"
          " APPLY BATCH; SELECT 9;",
          { 1, "BEGIN BATCH INSERT INTO t (k, v) VALUES (1, 'APPLY BATCH;');"
               " INSERT INTO t (k, \"apply\", batch_x) VALUES (1, 2, 3);"
               " UPDATE t SET apply_batch = 1 WHERE k = 1; INSERT INTO \"APPLY\" (k) VALUES (1) \"BATCH\";"
               " APPLY BATCH" },
          { 1, "SELECT 9" });
    /* not batches: BEGIN must open the statement and be followed by BATCH */
    CHECK("BEGINNING BATCH; x; SELECT begin FROM t; BEGIN; BEGIN UNLOGGED; y;",
          { 1, "BEGINNING BATCH" }, { 1, "x" }, { 1, "SELECT begin FROM t" },
          { 1, "BEGIN" }, { 1, "BEGIN UNLOGGED" }, { 1, "y" });
    CHECK("SELECT 1 BEGIN BATCH; z;", { 1, "SELECT 1 BEGIN BATCH" }, { 1, "z" });
    /* after APPLY BATCH the batch is over: a missing ';' there merges the next
     * statement in (as cqlsh does; the server rejects it), no further */
    CHECK("BEGIN BATCH a; APPLY BATCH\nSELECT 1; SELECT 2;",
          { 1, "BEGIN BATCH a; APPLY BATCH\nSELECT 1" }, { 2, "SELECT 2" });
    /* two batches in a row */
    CHECK("BEGIN BATCH a; APPLY BATCH;\nBEGIN BATCH b; APPLY BATCH;",
          { 1, "BEGIN BATCH a; APPLY BATCH" }, { 2, "BEGIN BATCH b; APPLY BATCH" });
}

static void test_unterminated_names_the_line(void **state)
{
    (void)state;
#define ERR(script, msg) check_error((script), strlen(script), (msg))
    ERR("SELECT 1;\n\nINSERT INTO t (k, v)\nVALUES (1, 'abc);\nSELECT 2;\n",
        "line 4: unterminated string");
    ERR("SELECT 'it''s", "line 1: unterminated string");
    ERR("SELECT 1;\nSELECT \"col;\nFROM t;", "line 2: unterminated quoted identifier");
    ERR("SELECT \"a\"\"", "line 1: unterminated quoted identifier");
    ERR("SELECT 1;\r\n\r\nCREATE FUNCTION ks.f (a int) RETURNS NULL ON NULL INPUT RETURNS int\r\n"
        "LANGUAGE java AS $$ return a; $\r\n;\r\n",
        "line 4: unterminated $$ string");
    ERR("SELECT $$$", "line 1: unterminated $$ string");
    ERR("SELECT 1;\n\n\n/* closed here\n SELECT 2; */ SELECT 3; /* but this one\nnever ends;",
        "line 5: unterminated block comment");
    ERR("/*/", "line 1: unterminated block comment");
    ERR("SELECT 1;\nBEGIN BATCH\nINSERT INTO t (k) VALUES (1);\n",
        "line 2: BEGIN BATCH without APPLY BATCH");
    ERR("BEGIN BATCH INSERT INTO t (k) VALUES (1); APPLY; BATCH;",
        "line 1: BEGIN BATCH without APPLY BATCH");
    check_error("SELECT 1;\nSELECT '\0';", 21, "line 2: NUL byte in the script");
    check_error("-- \0", 4, "line 1: NUL byte in the script");
#undef ERR
}

static void test_empty_and_comment_only(void **state)
{
    (void)state;
    cql_statement *s = (cql_statement *)&s;
    size_t n = 99;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cql_split(NULL, 0, &s, &n, &e), 0);
    assert_null(s);
    assert_int_equal(n, 0);
    assert_int_equal(count(""), 0);
    assert_int_equal(count(" \t\r\n\n\f\v  "), 0);
    assert_int_equal(count("-- just a comment"), 0);
    assert_int_equal(count("// one\n-- two\r\n/* three\n */\n"), 0);
    assert_int_equal(count(";;\n ; /* */ ;"), 0);
    assert_int_equal(count("\xEF\xBB\xBF"), 0);
    assert_int_equal(count("\xEF\xBB\xBF-- BOM and a comment\n"), 0);
    /* empty statements between real ones are dropped */
    CHECK(";; SELECT 1;;; SELECT 2 ;\n;", { 1, "SELECT 1" }, { 1, "SELECT 2" });
}

static void test_missing_final_semicolon(void **state)
{
    (void)state;
    CHECK("SELECT 1;\nSELECT 2", { 1, "SELECT 1" }, { 2, "SELECT 2" });
    CHECK("SELECT 1;\nSELECT 2 -- no ';' here\n\n", { 1, "SELECT 1" }, { 2, "SELECT 2" });
    CHECK("SELECT 1;\nSELECT 2 /* nor here */", { 1, "SELECT 1" }, { 2, "SELECT 2" });
    CHECK("x", { 1, "x" });
    /* len is the end, whatever follows in memory */
    static const expect w[] = { { 1, "SELECT 1" }, { 1, "SELECT" } };
    check_len("SELECT 1; SELECT 2;", 16, w, 2);
}

static void test_crlf(void **state)
{
    (void)state;
    char crlf[1024];
    size_t o = 0;
    for (const char *q = FLUXER; *q; q++) {
        if (*q == '\n')
            crlf[o++] = '\r';
        crlf[o++] = *q;
    }
    crlf[o] = '\0';
    /* line breaks come out as \n, lines counted once per \r\n */
    CHECK(crlf, { 1, FLUXER_STMTS[0] }, { 6, FLUXER_STMTS[1] }, { 8, FLUXER_STMTS[2] });
    CHECK("-- comment\r\nSELECT 'a\r\nb' -- c\r\nFROM t;\r\n\r\nSELECT 2;\r\n",
          { 2, "SELECT 'a\nb' -- c\nFROM t" }, { 6, "SELECT 2" });
    /* a lone \r is a line break too (old Mac files; Python's universal newlines) */
    CHECK("SELECT 1;\rSELECT\r2;\r\n\rSELECT 3;", { 1, "SELECT 1" }, { 2, "SELECT\n2" },
          { 5, "SELECT 3" });
}

static void test_bom(void **state)
{
    (void)state;
    CHECK("\xEF\xBB\xBF" FLUXER, { 1, FLUXER_STMTS[0] }, { 6, FLUXER_STMTS[1] },
          { 8, FLUXER_STMTS[2] });
    CHECK("\xEF\xBB\xBFSELECT 1;", { 1, "SELECT 1" });
    CHECK("\xEF\xBB\xBF\r\n-- c\r\nSELECT 1;", { 3, "SELECT 1" });
    /* only at the very start */
    CHECK("SELECT 1;\xEF\xBB\xBFSELECT 2;", { 1, "SELECT 1" }, { 1, "\xEF\xBB\xBFSELECT 2" });
    /* a partial BOM is just bytes */
    CHECK("\xEF\xBB", { 1, "\xEF\xBB" });
}

static void test_create_function_body(void **state)
{
    (void)state;
    CHECK("CREATE OR REPLACE FUNCTION ks.id (a int)\n"
          "    RETURNS NULL ON NULL INPUT\n"
          "    RETURNS int\n"
          "    LANGUAGE java\n"
          "    AS $$ return a; $$;\n"
          "CREATE FUNCTION ks.greet (name text) CALLED ON NULL INPUT RETURNS text LANGUAGE java AS $$\n"
          "    // a ' and a \" and a /* and ;\n"
          "    String s = \"hi; \" + name;\n"
          "    return s;\n"
          "$$;\n"
          "SELECT ks.id(1) FROM system.local;\n",
          { 1, "CREATE OR REPLACE FUNCTION ks.id (a int)\n"
               "    RETURNS NULL ON NULL INPUT\n"
               "    RETURNS int\n"
               "    LANGUAGE java\n"
               "    AS $$ return a; $$" },
          { 6, "CREATE FUNCTION ks.greet (name text) CALLED ON NULL INPUT RETURNS text LANGUAGE java AS $$\n"
               "    // a ' and a \" and a /* and ;\n"
               "    String s = \"hi; \" + name;\n"
               "    return s;\n"
               "$$" },
          { 11, "SELECT ks.id(1) FROM system.local" });
    /* $$$$ is an empty body; a lone $ is just a byte */
    CHECK("SELECT $$$$; SELECT $a;", { 1, "SELECT $$$$" }, { 1, "SELECT $a" });
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fluxer_example),
        cmocka_unit_test(test_semicolons_inside_tokens),
        cmocka_unit_test(test_doubled_quote_escapes),
        cmocka_unit_test(test_comments_before_statements),
        cmocka_unit_test(test_batch_is_one_statement),
        cmocka_unit_test(test_unterminated_names_the_line),
        cmocka_unit_test(test_empty_and_comment_only),
        cmocka_unit_test(test_missing_final_semicolon),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_create_function_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

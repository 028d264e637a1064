/* test_drill.c - restore drills' pure parts: the schema rewrite of a
 * restore into another keyspace (keyspace_map) and its checks, scratch
 * keyspace names, the verdict of a drill's reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "ops/drill.h"
#include "ops/ops.h"
#include "ops/optable.h"

static void rename_is(const char *cql, const char *type, const char *dst, const char *want)
{
    char *got = cs_restore_rename_keyspace(cql, type, dst);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_rename_keyspace(void **state)
{
    (void)state;
    rename_is("CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'} "
              "AND durable_writes = true;",
              "keyspace", "drill_x",
              "CREATE KEYSPACE \"drill_x\" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'} "
              "AND durable_writes = true;");
    rename_is("CREATE TABLE shop.items (\n    id int PRIMARY KEY,\n    name text\n) WITH comment = 'shop.items';",
              "table", "copy",
              "CREATE TABLE \"copy\".items (\n    id int PRIMARY KEY,\n    name text\n) WITH comment = 'shop.items';");
    rename_is("CREATE TABLE IF NOT EXISTS \"Shop\".\"Items\" (id int PRIMARY KEY);", "table", "c",
              "CREATE TABLE IF NOT EXISTS \"c\".\"Items\" (id int PRIMARY KEY);");
    rename_is("CREATE TYPE shop.address (\n    street text,\n    zip frozen<code>\n);", "type", "c",
              "CREATE TYPE \"c\".address (\n    street text,\n    zip frozen<code>\n);");
    rename_is("CREATE KEYSPACE shop", "keyspace", "c", "CREATE KEYSPACE \"c\"");
    /* not of the row's kind, or not of that shape */
    rename_is("CREATE TABLE shop.items (id int PRIMARY KEY);", "keyspace", "c", NULL);
    rename_is("CREATE KEYSPACE shop.items WITH x", "keyspace", "c", NULL);
    rename_is("CREATE TABLE items (id int PRIMARY KEY);", "table", "c", NULL);
    rename_is("CREATE INDEX i ON shop.items (name);", "index", "c", NULL);
    rename_is("CREATE MATERIALIZED VIEW shop.v AS SELECT * FROM shop.items", "materialized_view", "c", NULL);
}

static int check_map(const char *const *entries, size_t n, char *msg, size_t cap)
{
    cs_strlist map = { NULL, 0 };
    for (size_t i = 0; i < n; i++)
        cs_strlist_add(&map, entries[i]);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_restore_check_map(&map, &e);
    cs_err_render(&e, NULL, NULL, msg, cap);
    cs_strlist_free(&map);
    return rc;
}

static void test_check_map(void **state)
{
    (void)state;
    char msg[512];
    assert_int_equal(check_map((const char *const[]){ "shop=shop_copy", "b=c" }, 2, msg, sizeof msg), 0);
    assert_int_equal(check_map((const char *const[]){ "shop" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_non_null(strstr(msg, "SOURCE=TARGET"));
    assert_int_equal(check_map((const char *const[]){ "shop=" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "=x" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "shop=a-b" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "shop=system_auth" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "system=x" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "shop=shop" }, 1, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "shop=a234567890123456789012345678901234567890123456789" }, 1,
                               msg, sizeof msg),
                     CS_E_USAGE);
    assert_non_null(strstr(msg, "48"));
    assert_int_equal(check_map((const char *const[]){ "a=x", "a=y" }, 2, msg, sizeof msg), CS_E_USAGE);
    assert_int_equal(check_map((const char *const[]){ "a=x", "b=x" }, 2, msg, sizeof msg), CS_E_USAGE);

    cs_strlist map = { NULL, 0 };
    cs_strlist_add(&map, "ab=x");
    cs_strlist_add(&map, "a=y");
    assert_string_equal(cs_restore_map_lookup(&map, "a"), "y");
    assert_string_equal(cs_restore_map_lookup(&map, "ab"), "x");
    assert_null(cs_restore_map_lookup(&map, "b"));
    cs_strlist_free(&map);
}

/* A restore request from JSON: keyspace_map is a field, refused with replace. */
static void test_restore_request(void **state)
{
    (void)state;
    const cs_op_def *op = cs_op_find("restore");
    cs_err e;
    cs_err_clear(&e);
    void *req = cs_op_request_new(op, &e);
    json_t *j = json_pack("{s:s, s:s, s:[s], s:s}", "repo", "/r", "backup", "b", "keyspace_map", "ks=ks2", "mode",
                          "replace");
    assert_int_equal(cs_op_request_from_json(op, j, req, &e), CS_E_USAGE);
    assert_string_equal(e.field, "keyspace_map");
    json_decref(j);
    cs_op_request_free(op, req);
}

static void test_scratch_name(void **state)
{
    (void)state;
    char out[64];
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_drill_scratch_name("ab12cd34", "shop", out, sizeof out, &e), 0);
    assert_string_equal(out, "cassette_drill_ab12cd34_shop");
    assert_int_equal(cs_drill_scratch_name("ab12cd34", "a_very_long_keyspace_name_that_goes_on", out, sizeof out, &e),
                     0);
    assert_int_equal(strlen(out), 48);
    assert_string_equal(out, "cassette_drill_ab12cd34_a_very_long_keyspace_nam");
    assert_int_equal(cs_drill_scratch_name("AB12CD34", "shop", out, sizeof out, &e), CS_E_USAGE);
    assert_int_equal(cs_drill_scratch_name("ab12cd3", "shop", out, sizeof out, &e), CS_E_USAGE);
    assert_int_equal(cs_drill_scratch_name("ab12cd34", "shop", out, 20, &e), CS_E_INVAL);
    char id[9];
    cs_drill_new_id(id);
    assert_int_equal(cs_drill_scratch_name(id, "x", out, sizeof out, &e), 0);
}

static void test_verdict(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    json_t *reports = json_pack("[{s:s, s:i, s:i, s:[]}]", "table", "shop.a", "lost", 0, "mismatched", 0, "problems");
    assert_int_equal(cs_drill_reports_verdict(reports, &e), 0);
    json_array_append_new(reports, json_pack("{s:s, s:i, s:i, s:[s]}", "table", "shop.b", "lost", 1, "mismatched", 0,
                                             "problems", "row (id=7) is missing from the restored table"));
    assert_int_equal(cs_drill_reports_verdict(reports, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "shop.b"));
    assert_non_null(strstr(e.msg, "id=7"));
    json_decref(reports);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rename_keyspace),
        cmocka_unit_test(test_check_map),
        cmocka_unit_test(test_restore_request),
        cmocka_unit_test(test_scratch_name),
        cmocka_unit_test(test_verdict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

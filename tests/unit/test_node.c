/* test_node.c - the pure parts of cassandra/node: contact point lists and the
 * directory lists system_views.settings gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cassandra/node.h"
#include "common/err.h"

typedef struct {
    const char *host;
    int port;
} want_point;

static void check_points(const char *list, const want_point *want, size_t n)
{
    cs_contact_point *points = NULL;
    size_t got = 0;
    cs_err e = { 0 };
    int rc = cs_contact_points_parse(list, 9042, &points, &got, &e);
    if (rc)
        fail_msg("\"%s\": %s", list, e.msg);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(points[i].host, want[i].host);
        assert_int_equal(points[i].port, want[i].port);
    }
    cs_contact_points_free(points, got);
}

static void check_bad(const char *list, const char *words)
{
    cs_contact_point *points = NULL;
    size_t got = 0;
    cs_err e = { 0 };
    assert_int_equal(cs_contact_points_parse(list, 9042, &points, &got, &e), CS_E_INVAL);
    assert_null(points);
    assert_int_equal(got, 0);
    if (!strstr(e.msg, words))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", list, e.msg, words);
    assert_null(strchr(e.msg, '\n'));
}

static void test_one_host(void **state)
{
    (void)state;
    check_points("127.0.0.1", (want_point[]){ { "127.0.0.1", 9042 } }, 1);
    check_points("cassandra-0.svc", (want_point[]){ { "cassandra-0.svc", 9042 } }, 1);
    check_points("10.0.0.5:19042", (want_point[]){ { "10.0.0.5", 19042 } }, 1);
}

static void test_lists_with_spaces(void **state)
{
    (void)state;
    check_points(" a , b:9043,c ",
                 (want_point[]){ { "a", 9042 }, { "b", 9043 }, { "c", 9042 } }, 3);
}

static void test_ipv6(void **state)
{
    (void)state;
    check_points("::1, [fe80::1]:9043, [::2]",
                 (want_point[]){ { "::1", 9042 }, { "fe80::1", 9043 }, { "::2", 9042 } }, 3);
}

static void test_bad_lists(void **state)
{
    (void)state;
    check_bad("", "empty contact point");
    check_bad("a,,b", "empty contact point");
    check_bad("a,", "empty contact point");
    check_bad("a:0", "outside 1..65535");
    check_bad("a:70000", "outside 1..65535");
    check_bad("a:x9", "bad port");
    check_bad("a:", "bad port");
    check_bad("[::1", "unclosed [");
    check_bad("[::1]9042", "bad contact point");
    check_bad(":9042", "has no host");
    check_bad("[]:9042", "has no host");
}

static void test_dir_lists(void **state)
{
    (void)state;
    cs_strlist l = { NULL, 0 };
    cs_node_parse_dir_list("[/a, /b c ,\"/d\"]", &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0], "/a");
    assert_string_equal(l.items[1], "/b c");
    assert_string_equal(l.items[2], "/d");
    cs_strlist_free(&l);
    cs_node_parse_dir_list("/var/lib/cassandra/data", &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0], "/var/lib/cassandra/data");
    cs_strlist_free(&l);
}

static void test_check_keyspaces(void **state)
{
    (void)state;
    json_t *schema = json_pack("[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]", "keyspace", "shop", "type", "keyspace",
                               "name", "shop", "cql", "CREATE KEYSPACE shop ...", "keyspace", "shop", "type", "table",
                               "name", "orders", "cql", "CREATE TABLE shop.orders ...");
    cs_strlist names = { NULL, 0 };
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_node_check_keyspaces(schema, &names, &e), 0); /* no --keyspace: all */
    cs_strlist_add(&names, "shop");
    cs_strlist_add(&names, "system_schema");
    assert_int_equal(cs_node_check_keyspaces(schema, &names, &e), 0);
    cs_strlist_add(&names, "shpo");
    assert_int_equal(cs_node_check_keyspaces(schema, &names, &e), CS_E_USAGE);
    assert_string_equal(e.msg, "keyspace shpo does not exist on the node (its keyspaces: shop)");
    json_t *empty = json_array();
    assert_int_equal(cs_node_check_keyspaces(empty, &names, &e), CS_E_USAGE);
    assert_string_equal(e.msg, "keyspace shop does not exist on the node (it has no keyspace of its own)");
    json_decref(empty);
    json_decref(schema);
    cs_strlist_free(&names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_host),
        cmocka_unit_test(test_lists_with_spaces),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_bad_lists),
        cmocka_unit_test(test_dir_lists),
        cmocka_unit_test(test_check_keyspaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

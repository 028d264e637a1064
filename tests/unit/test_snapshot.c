/* test_snapshot.c - ops/snapshot.h: snapshots found by tag and keyspace
 * under data directories, and cleared on a stopped node (directories
 * only); and the node facts cache (ops.h) read back from
 * <state_dir>/node.json: missing, not one, good. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "ops/ops.h"
#include "ops/snapshot.h"

typedef struct fixture {
    char dir[64];
    cs_strlist data_dirs;
} fixture;

/* <data dir>/<ks>/<table>-<id>/snapshots/<tag>/nb-1-big-Data.db */
static void add_snapshot(const char *data_dir, const char *ks, const char *table, const char *tag)
{
    char *d = cs_sprintf("%s/%s/%s-0123456789abcdef0123456789abcdef/snapshots/%s", data_dir, ks, table, tag);
    assert_int_equal(cs_mkdirs(d, 0700, NULL), 0);
    char *f = cs_path_join(d, "nb-1-big-Data.db");
    assert_int_equal(cs_write_file_atomic(f, "x", 1, 0600, NULL), 0);
    free(f);
    free(d);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/cs-test-snapshot-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    for (int i = 0; i < 2; i++) {
        char *d = cs_sprintf("%s/data%d", f->dir, i);
        cs_mkdirs(d, 0700, NULL);
        cs_strlist_add(&f->data_dirs, d);
        free(d);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_remove_tree(f->dir, NULL);
    cs_strlist_free(&f->data_dirs);
    free(f);
    return 0;
}

static void test_find(void **state)
{
    fixture *f = *state;
    add_snapshot(f->data_dirs.items[0], "ks1", "t1", "cassette-a");
    add_snapshot(f->data_dirs.items[1], "ks1", "t2", "cassette-a");
    add_snapshot(f->data_dirs.items[1], "ks2", "t1", "cassette-b");
    add_snapshot(f->data_dirs.items[0], "ks2", "t1", "other");
    cs_strlist tags = { NULL, 0 };
    cs_snapshot_find_tags(&f->data_dirs, "cassette-", &tags);
    assert_int_equal(tags.n, 2); /* once each */
    assert_true(cs_strlist_has(&tags, "cassette-a") && cs_strlist_has(&tags, "cassette-b"));
    cs_strlist_free(&tags);
    cs_snapshot_find_tags(&f->data_dirs, "", &tags);
    assert_int_equal(tags.n, 3);
    cs_strlist_free(&tags);
    assert_true(cs_snapshot_on_disk(&f->data_dirs, "other"));
    assert_false(cs_snapshot_on_disk(&f->data_dirs, "cassette")); /* a prefix is not a tag */
    assert_true(cs_snapshot_in_keyspace(&f->data_dirs, "ks1", "cassette-a"));
    assert_false(cs_snapshot_in_keyspace(&f->data_dirs, "ks2", "cassette-a"));
    assert_false(cs_snapshot_in_keyspace(&f->data_dirs, "ks3", "cassette-a"));
}

static void test_clear_stopped(void **state)
{
    fixture *f = *state;
    add_snapshot(f->data_dirs.items[0], "ks1", "t1", "t-1");
    add_snapshot(f->data_dirs.items[1], "ks2", "t2", "t-1");
    add_snapshot(f->data_dirs.items[1], "ks2", "t2", "t-2");
    bool cleared = false;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_snapshot_clear(NULL, NULL, &f->data_dirs, "t-1", &cleared, &e), 0);
    assert_true(cleared);
    assert_false(cs_snapshot_on_disk(&f->data_dirs, "t-1"));
    assert_true(cs_snapshot_on_disk(&f->data_dirs, "t-2")); /* the others stay */
    char *live = cs_sprintf("%s/ks2/t2-0123456789abcdef0123456789abcdef", f->data_dirs.items[1]);
    assert_true(cs_is_dir(live)); /* the table stays */
    free(live);
    assert_int_equal(cs_snapshot_clear(NULL, "5.0.2", &f->data_dirs, "t-1", &cleared, &e), 0);
    assert_false(cleared); /* not there: no error */
}

static void test_node_cache(void **state)
{
    fixture *f = *state;
    cs_host host;
    memset(&host, 0, sizeof host);
    host.state_dir = cs_path_join(f->dir, "state");
    cs_node_info info;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_ops_cached_node(&host, &info, &e), CS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "never read"));
    char *path = cs_path_join(host.state_dir, "node.json");
    cs_mkdirs(host.state_dir, 0700, NULL);
    const char *bad = "{\"type\":\"something else\"}";
    assert_int_equal(cs_write_file_atomic(path, bad, strlen(bad), 0600, NULL), 0);
    assert_int_equal(cs_ops_cached_node(&host, &info, &e), CS_E_CORRUPT);
    const char *good = "{\"type\":\"cassette-node\",\"format\":1,\"host_id\":\"h1\",\"address\":\"127.0.0.5\","
                       "\"release_version\":\"5.0.9\",\"rack\":null,\"tokens\":[\"-9\",\"7\"],"
                       "\"data_dirs\":[\"/d1\",\"/d2\"],\"commitlog_dir\":\"/c\"}";
    assert_int_equal(cs_write_file_atomic(path, good, strlen(good), 0600, NULL), 0);
    assert_int_equal(cs_ops_cached_node(&host, &info, &e), 0);
    assert_string_equal(info.host_id, "h1");
    assert_string_equal(info.address, "127.0.0.5");
    assert_string_equal(info.release_version, "5.0.9");
    assert_null(info.rack);
    assert_int_equal(info.tokens.n, 2);
    assert_int_equal(info.data_dirs.n, 2);
    assert_string_equal(info.data_dirs.items[1], "/d2");
    assert_string_equal(info.commitlog_dir, "/c");
    cs_node_info_free(&info);
    free(path);
    free(host.state_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

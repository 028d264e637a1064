/* test_snapshot.c - ops/snapshot.h: snapshots found by tag and keyspace
 * under data directories, their ages (old ones found by prefix), cleared on a stopped node (directories
 * only); and the node facts cache (ops.h) read back from
 * <state_dir>/node.json: missing, not one, good; and ops/aside.h's unique names:
 * many made within one second all differ and carry the time and the pid. */
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
#include "ops/aside.h"
#include "ops/ops.h"
#include "ops/snapshot.h"

#include <regex.h>
#include <time.h>
#include <unistd.h>

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

/* Snapshot dir of tag in data dir d with a manifest.json of text (NULL: none). */
static char *snapshot_with_manifest(const char *d, const char *table, const char *tag, const char *text)
{
    add_snapshot(d, "ks1", table, tag);
    char *dir = cs_sprintf("%s/ks1/%s-0123456789abcdef0123456789abcdef/snapshots/%s", d, table, tag);
    if (text) {
        char *m = cs_path_join(dir, "manifest.json");
        assert_int_equal(cs_write_file_atomic(m, text, strlen(text), 0600, NULL), 0);
        free(m);
    }
    return dir;
}

/* Ages: the manifest's created_at, else its mtime; a tag is as young as
 * its youngest table; the prefix; ephemeral ones left out. */
static void test_find_old(void **state)
{
    fixture *f = *state;
    const char *d0 = f->data_dirs.items[0], *d1 = f->data_dirs.items[1];
    bool eph;
    char *dir = snapshot_with_manifest(d0, "t1", "cassette-old",
                                       "{\"files\":[],\"created_at\":\"2020-01-02T03:04:05.5Z\",\"expires_at\":null}");
    assert_true(cs_snapshot_dir_time(dir, &eph) == 1577934245.5);
    assert_false(eph);
    free(dir);
    dir = snapshot_with_manifest(d1, "t2", "cassette-old", "{\"files\":[],\"created_at\":\"2020-01-01T00:00:00Z\"}");
    assert_true(cs_snapshot_dir_time(dir, &eph) == 1577836800.0);
    free(dir);
    /* one table of it recent: the tag is young */
    free(snapshot_with_manifest(d0, "t1", "cassette-mixed", "{\"created_at\":\"2020-01-01T00:00:00.123456789Z\"}"));
    free(snapshot_with_manifest(d1, "t3", "cassette-mixed", "{\"created_at\":\"2031-01-01T00:00:00Z\"}"));
    /* no created_at (Cassandra 4.0): the manifest's mtime, now */
    dir = snapshot_with_manifest(d0, "t4", "cassette-40", "{\"files\":[]}");
    double t = cs_snapshot_dir_time(dir, &eph);
    assert_true(t > cs_now() - 60 && t <= cs_now() + 1);
    free(dir);
    free(snapshot_with_manifest(d0, "t1", "other-old", "{\"created_at\":\"2020-01-01T00:00:00Z\"}"));
    free(snapshot_with_manifest(d0, "t1", "cassette-eph", "{\"created_at\":\"2020-01-01T00:00:00Z\",\"ephemeral\":true}"));
    /* a damaged manifest: its mtime */
    free(snapshot_with_manifest(d1, "t1", "cassette-bad", "{\"created_at\":\"yesterday\""));

    cs_strlist old = { NULL, 0 }, young = { NULL, 0 };
    double before = 1700000000.0; /* 2023 */
    cs_snapshot_find_old(&f->data_dirs, "cassette-", before, &old, &young);
    assert_int_equal(old.n, 1);
    assert_string_equal(old.items[0], "cassette-old");
    assert_int_equal(young.n, 3); /* sorted */
    assert_string_equal(young.items[0], "cassette-40");
    assert_string_equal(young.items[1], "cassette-bad");
    assert_string_equal(young.items[2], "cassette-mixed");
    cs_strlist_free(&old);
    cs_strlist_free(&young);
    cs_snapshot_find_old(&f->data_dirs, "", before, &old, &young);
    assert_int_equal(old.n, 2);
    assert_string_equal(old.items[1], "other-old");
    cs_strlist_free(&old);
    cs_strlist_free(&young);
    cs_snapshot_find_old(&f->data_dirs, "cassette-", cs_now() + 3600, &old, &young);
    assert_int_equal(old.n, 3); /* all but the one of 2031 (and the ephemeral one) */
    assert_false(cs_strlist_has(&old, "cassette-mixed"));
    cs_strlist_free(&old);
    cs_strlist_free(&young);
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

/* In some keyspaces only: a tag of the same name elsewhere stays (a
 * drill's dropped scratch keyspaces leave "dropped-..." tags that any
 * table dropped at that moment could share). */
static void test_clear_in_keyspaces(void **state)
{
    fixture *f = *state;
    add_snapshot(f->data_dirs.items[0], "scratch_a", "t1", "dropped-1-t1");
    add_snapshot(f->data_dirs.items[1], "scratch_b", "t1", "dropped-1-t1");
    add_snapshot(f->data_dirs.items[1], "live", "t1", "dropped-1-t1");
    add_snapshot(f->data_dirs.items[0], "scratch_a", "t2", "dropped-2-t2");
    add_snapshot(f->data_dirs.items[0], "scratch_a", "t2", "cassette-x");
    cs_strlist ks = { NULL, 0 }, old = { NULL, 0 }, young = { NULL, 0 };
    cs_strlist_add(&ks, "scratch_a");
    cs_strlist_add(&ks, "scratch_b");
    cs_snapshot_find_old_in(&f->data_dirs, &ks, "dropped-", cs_now() + 3600, &old, &young);
    assert_int_equal(old.n, 2);
    assert_string_equal(old.items[0], "dropped-1-t1");
    assert_string_equal(old.items[1], "dropped-2-t2");
    assert_int_equal(young.n, 0);
    bool cleared = false;
    cs_err e;
    cs_err_clear(&e);
    for (size_t i = 0; i < old.n; i++)
        assert_int_equal(cs_snapshot_clear_in(NULL, NULL, &f->data_dirs, &ks, old.items[i], &cleared, &e), 0);
    assert_true(cleared);
    assert_false(cs_snapshot_in_keyspace(&f->data_dirs, "scratch_a", "dropped-1-t1"));
    assert_false(cs_snapshot_in_keyspace(&f->data_dirs, "scratch_b", "dropped-1-t1"));
    assert_false(cs_snapshot_in_keyspace(&f->data_dirs, "scratch_a", "dropped-2-t2"));
    assert_true(cs_snapshot_in_keyspace(&f->data_dirs, "live", "dropped-1-t1")); /* another keyspace's */
    assert_true(cs_snapshot_in_keyspace(&f->data_dirs, "scratch_a", "cassette-x")); /* another prefix */
    cs_strlist_free(&ks);
    cs_strlist_free(&old);
    cs_strlist_free(&young);
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

/* Restores within one second (a replace can take a fraction of one) get
 * distinct aside names: the name has the microsecond, the pid and 16 random
 * bits. 64 made back to back, most of them in the same second. */
static void test_unique_names(void **state)
{
    (void)state;
    enum { N = 64 };
    char names[N][CS_UNIQUE_MAX];
    regex_t re;
    assert_int_equal(regcomp(&re, "^[0-9]{8}-[0-9]{6}\\.[0-9]{6}-[0-9]+-[0-9a-f]{4}$", REG_EXTENDED | REG_NOSUB), 0);
    char pid[32];
    snprintf(pid, sizeof pid, "-%ld-", (long)getpid());
    for (int i = 0; i < N; i++) {
        cs_restore_unique(names[i]);
        assert_int_equal(regexec(&re, names[i], 0, NULL, 0), 0);
        assert_non_null(strstr(names[i], pid));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(names[i], names[j]);
    }
    int same_second = 0;
    for (int i = 1; i < N; i++)
        same_second += !strncmp(names[i], names[i - 1], 15);
    assert_true(same_second > 0);
    regfree(&re);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_in_keyspaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_cache, setup, teardown),
        cmocka_unit_test(test_unique_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_state.c - ops/state: the local dedup cache and the per-node lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/fs.h"
#include "ops/state.h"
#include "repo/manifest.h"
#include "repo/repo.h"

#define HOST_A "11111111-2222-3333-4444-555555555555"
#define HOST_B "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define TABLE_ID "0123456789abcdef0123456789abcdef"
#define TABLE_ID2 "fedcba9876543210fedcba9876543210"
#define DIR0 "/var/lib/cassandra/data"
#define DIR1 "/mnt/disk2/data"

typedef struct fixture {
    char dir[64];
    char *state_dir;
    cs_config cfg;
    cs_repo *repo;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-state-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->state_dir = cs_path_join(f->dir, "state");
    f->cfg.state_dir = f->state_dir; /* not owned by cfg: never cs_config_free'd */
    char *root = cs_path_join(f->dir, "repo");
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_repo_init(root, NULL, &f->repo, &e);
    free(root);
    if (rc) {
        fprintf(stderr, "init: %s\n", e.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_repo_free(f->repo);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_remove_tree(f->dir, &e);
    free(f->state_dir);
    free(f);
    return rc;
}

/* ---- helpers ------------------------------------------------------------ */

/* A 32-hex object id: 24 times tag's first character, then i. */
static void object_for(const char *tag, size_t i, char out[CS_OBJECT_ID_HEX])
{
    memset(out, tag[0], 24);
    snprintf(out + 24, CS_OBJECT_ID_HEX - 24, "%08zx", i);
}

/* A manifest with n files in table ks.t (data dirs 0 and 1 alternating) and
 * one file in ks.u. Object ids start with `tag` (a hex digit). */
static void make_manifest(cs_manifest *m, const char *name, const char *host, double started, size_t n,
                          const char *tag)
{
    memset(m, 0, sizeof *m);
    m->backup = cs_strdup(name);
    m->host_id = cs_strdup(host);
    cs_strlist_add(&m->data_dirs, DIR0);
    cs_strlist_add(&m->data_dirs, DIR1);
    m->started = started;
    m->finished = started + 1;
    cs_mtable *t = cs_manifest_add_table(m, "ks", "t", TABLE_ID);
    for (size_t i = 0; i < n; i++) {
        char fname[64];
        snprintf(fname, sizeof fname, "nb-%zu-big-Data.db", i + 1);
        cs_mfile *file = cs_mtable_add_file(t, fname);
        file->size = 1000 + i;
        file->mtime_ns = 5000 + (int64_t)i;
        file->data_dir = (unsigned)(i % 2);
        memset(file->hash, tag[0], CS_HASH_HEX - 1);
        file->hash[CS_HASH_HEX - 1] = '\0';
        object_for(tag, i, file->object);
        file->stored = 10 + i;
        file->is_new = true;
    }
    cs_mtable *u = cs_manifest_add_table(m, "ks", "u", TABLE_ID2);
    cs_mfile *file = cs_mtable_add_file(u, ".u_idx/nb-1-big-Index.db");
    file->size = 7;
    file->mtime_ns = 8;
    memset(file->hash, 'f', CS_HASH_HEX - 1);
    file->hash[CS_HASH_HEX - 1] = '\0';
    object_for(tag, 999, file->object);
    file->stored = 9;
}

/* Store a backup in the repository (complete or only started). */
static void store(fixture *f, const cs_manifest *m, bool complete)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_repo_mark_started(f->repo, m, &e);
    if (!rc && complete)
        rc = cs_repo_put_manifest(f->repo, m, &e);
    if (rc)
        fail_msg("store %s: %s", m->backup, e.msg);
}

static cs_state *load(fixture *f, const char *host)
{
    cs_state *s = NULL;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_state_load(&f->cfg, f->repo, host, &s, &e);
    if (rc)
        fail_msg("load: %s", e.msg);
    assert_non_null(s);
    return s;
}

static void save(fixture *f, const cs_manifest *m)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_state_save(&f->cfg, f->repo, m, &e);
    if (rc)
        fail_msg("save: %s", e.msg);
}

static char *state_file(const fixture *f, const char *host)
{
    return cs_sprintf("%s/%s/%s.json", f->state_dir, f->repo->id, host);
}

static void write_state(const fixture *f, const char *host, const char *text)
{
    char *path = state_file(f, host);
    char *dir = cs_dirname(path);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs(dir, 0700, &e), 0);
    assert_int_equal(cs_write_file_atomic(path, text, strlen(text), 0600, &e), 0);
    free(dir);
    free(path);
}

/* Every file of m is found in s with its own object; returns how many. */
static size_t assert_holds(const cs_state *s, const cs_manifest *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++) {
            const cs_mfile *file = &m->tables[i].files[j];
            const cs_state_entry *en = cs_state_find(s, m->data_dirs.items[file->data_dir], m->tables[i].id,
                                                     file->name, file->size, file->mtime_ns);
            if (!en)
                fail_msg("%s/%s not in the cache", m->tables[i].table, file->name);
            assert_string_equal(en->object, file->object);
            assert_string_equal(en->hash, file->hash);
            assert_int_equal(en->size, file->size);
            assert_int_equal(en->mtime_ns, file->mtime_ns);
            assert_int_equal(en->stored, file->stored);
            n++;
        }
    return n;
}

static bool finds(const cs_state *s, const char *dir, const char *table_id, const char *name, uint64_t size,
                  int64_t mtime)
{
    return cs_state_find(s, dir, table_id, name, size, mtime) != NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_load_empty(void **state)
{
    fixture *f = *state;
    cs_state *s = load(f, HOST_A);
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    cs_state_free(s);
    assert_null(cs_state_find(NULL, DIR0, TABLE_ID, "x", 0, 0));
    cs_state_free(NULL);

    /* Only an incomplete backup: still nothing to trust. */
    cs_manifest m;
    make_manifest(&m, "half", HOST_A, 100, 3, "a");
    store(f, &m, false);
    save(f, &m); /* even a cache naming it */
    s = load(f, HOST_A);
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    cs_state_free(s);
    cs_manifest_free(&m);
}

static void test_save_and_find(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "b1", HOST_A, 100, 4, "a");
    store(f, &m, true);
    save(f, &m);
    char *path = state_file(f, HOST_A);
    assert_true(cs_exists(path));
    free(path);

    cs_state *s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &m), 5);

    /* file 0: DIR0, size 1000, mtime 5000 */
    assert_true(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1001, 5000)); /* size changed */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 999, 5000));
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5001)); /* mtime changed */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 4999));
    assert_false(finds(s, DIR1, TABLE_ID, "nb-1-big-Data.db", 1000, 5000)); /* other data dir */
    assert_false(finds(s, DIR0, TABLE_ID2, "nb-1-big-Data.db", 1000, 5000)); /* other table */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-9-big-Data.db", 1000, 5000)); /* other file */
    assert_false(finds(s, DIR0 "/", TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    /* file 1 lives in DIR1 */
    assert_true(finds(s, DIR1, TABLE_ID, "nb-2-big-Data.db", 1001, 5001));
    assert_false(finds(s, DIR0, TABLE_ID, "nb-2-big-Data.db", 1001, 5001));
    assert_true(finds(s, DIR0, TABLE_ID2, ".u_idx/nb-1-big-Index.db", 7, 8));
    cs_state_free(s);

    /* Another host has no cache and no backups. */
    s = load(f, HOST_B);
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    cs_state_free(s);
    cs_manifest_free(&m);
}

static void test_cache_file_is_used(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "b1", HOST_A, 100, 2, "a");
    store(f, &m, true);
    /* A cache file naming the newest backup is trusted as it is (the point
     * of it: no manifest read). Prove it by giving it an entry of its own. */
    char *text = cs_sprintf("{\"backup\":\"b1\",\"files\":[[\"%s\\t%s\\tonly-in-cache.db\",5,6,\"%064d\","
                            "\"%s\",7]]}",
                            DIR0, TABLE_ID, 0, "0123456789abcdef0123456789abcdef");
    write_state(f, HOST_A, text);
    free(text);
    cs_state *s = load(f, HOST_A);
    const cs_state_entry *en = cs_state_find(s, DIR0, TABLE_ID, "only-in-cache.db", 5, 6);
    assert_non_null(en);
    assert_string_equal(en->object, "0123456789abcdef0123456789abcdef");
    assert_int_equal(en->stored, 7);
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    cs_state_free(s);
    cs_manifest_free(&m);
}

static void test_rebuild_unknown_backup(void **state)
{
    fixture *f = *state;
    cs_manifest old, newer, partial, other;
    make_manifest(&old, "b1", HOST_A, 100, 3, "a");
    make_manifest(&newer, "b2", HOST_A, 200, 2, "b");
    make_manifest(&partial, "b3", HOST_A, 300, 6, "c");
    make_manifest(&other, "b4", HOST_B, 400, 5, "d");
    /* newer files differ from old ones in size */
    newer.tables[0].files[0].size = 4242;
    store(f, &old, true);
    store(f, &newer, true);
    store(f, &partial, false);
    store(f, &other, true);

    /* The cache names a backup the repository does not hold (purged, or
     * another repository): rebuild from b2, the newest complete of HOST_A. */
    char *text = cs_sprintf("{\"backup\":\"ghost\",\"files\":[[\"%s\\t%s\\tghost.db\",5,6,\"%064d\",\"%s\",7]]}",
                            DIR0, TABLE_ID, 0, "0123456789abcdef0123456789abcdef");
    write_state(f, HOST_A, text);
    free(text);
    cs_state *s = load(f, HOST_A);
    assert_false(finds(s, DIR0, TABLE_ID, "ghost.db", 5, 6));
    assert_int_equal(assert_holds(s, &newer), 3);
    /* b1's version of file 0 (size 1000) is not what b2 stored. */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    /* b1's third file is not in b2; b3 (incomplete) and b4 (other host) are ignored. */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    assert_false(finds(s, DIR1, TABLE_ID, "nb-4-big-Data.db", 1003, 5003));
    cs_state_free(s);

    /* A cache of an older, still complete backup is stale too. */
    save(f, &old);
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &newer), 3);
    assert_false(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    cs_state_free(s);

    /* No cache file at all: rebuilt the same way. */
    char *path = state_file(f, HOST_A);
    assert_int_equal(unlink(path), 0);
    free(path);
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &newer), 3);
    cs_state_free(s);

    /* HOST_B gets its own backup. */
    s = load(f, HOST_B);
    assert_int_equal(assert_holds(s, &other), 6);
    cs_state_free(s);

    cs_manifest_free(&old);
    cs_manifest_free(&newer);
    cs_manifest_free(&partial);
    cs_manifest_free(&other);
}

static void test_corrupt_cache(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "b1", HOST_A, 100, 3, "a");
    store(f, &m, true);
    char *good_key = cs_sprintf("%s\\t%s\\tbogus.db", DIR0, TABLE_ID);
    char *corrupt[] = {
        cs_strdup("garbage"),
        cs_strdup(""),
        cs_strdup("{\"backup\":\"b1\",\"files\":[[\"k\",1,2,\"abc\""),
        cs_strdup("[]"),
        cs_strdup("{\"backup\":\"b1\"}"),
        cs_strdup("{\"backup\":\"b1\",\"files\":{}}"),
        cs_strdup("{\"backup\":1,\"files\":[]}"),
        /* an entry with a short hash, then one with a bad object id */
        cs_sprintf("{\"backup\":\"b1\",\"files\":[[\"%s\",5,6,\"abc\",\"%s\",7]]}", good_key,
                   "0123456789abcdef0123456789abcdef"),
        cs_sprintf("{\"backup\":\"b1\",\"files\":[[\"%s\",5,6,\"%064d\",\"../../x\",7]]}", good_key, 0),
        cs_sprintf("{\"backup\":\"b1\",\"files\":[[\"%s\",5,6,\"%064d\",\"%s\",7],{\"x\":1}]}", good_key, 0,
                   "0123456789abcdef0123456789abcdef"),
        cs_sprintf("{\"backup\":\"b1\",\"files\":[[null,5,6,\"%064d\",\"%s\",7]]}", 0,
                   "0123456789abcdef0123456789abcdef"),
    };
    for (size_t i = 0; i < sizeof corrupt / sizeof corrupt[0]; i++) {
        write_state(f, HOST_A, corrupt[i]);
        cs_state *s = load(f, HOST_A);
        if (finds(s, DIR0, TABLE_ID, "bogus.db", 5, 6))
            fail_msg("entry from a corrupt cache was used: %s", corrupt[i]);
        assert_int_equal(assert_holds(s, &m), 4);
        cs_state_free(s);
        free(corrupt[i]);
    }
    /* A directory where the cache file should be. */
    char *path = state_file(f, HOST_A);
    assert_int_equal(unlink(path), 0);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs(path, 0700, &e), 0);
    cs_state *s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &m), 4);
    cs_state_free(s);
    free(path);
    free(good_key);
    cs_manifest_free(&m);
}

static void test_lock(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    int fd1 = -1, fd2 = -1, fd3 = -1;
    /* The state directory does not exist yet: the lock creates it. */
    assert_false(cs_exists(f->state_dir));
    int rc = cs_state_lock(&f->cfg, HOST_A, &fd1, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_true(fd1 >= 0);
    assert_true(cs_is_dir(f->state_dir));

    cs_err_clear(&e);
    assert_int_equal(cs_state_lock(&f->cfg, HOST_A, &fd2, &e), CS_E_EXISTS);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(e.msg, "another backup of node " HOST_A " is running"));

    /* Another node is independent. */
    cs_err_clear(&e);
    assert_int_equal(cs_state_lock(&f->cfg, HOST_B, &fd3, &e), 0);
    assert_true(fd3 >= 0);

    /* Released: can be taken again. */
    cs_state_unlock(fd1);
    cs_err_clear(&e);
    assert_int_equal(cs_state_lock(&f->cfg, HOST_A, &fd2, &e), 0);
    assert_true(fd2 >= 0);
    cs_state_unlock(fd2);
    cs_state_unlock(fd3);
    cs_state_unlock(-1);

    /* A state "directory" that is a file: an I/O error, not a crash. */
    char *file = cs_path_join(f->dir, "plain");
    assert_int_equal(cs_write_file_atomic(file, "x", 1, 0600, &e), 0);
    cs_config cfg = f->cfg;
    cfg.state_dir = file;
    int fd4 = 123;
    cs_err_clear(&e);
    assert_int_equal(cs_state_lock(&cfg, HOST_A, &fd4, &e), CS_E_IO);
    assert_int_equal(fd4, -1);
    free(file);
}

static void test_state_dir(void **state)
{
    fixture *f = *state;
    char *d = cs_state_dir(&f->cfg);
    assert_string_equal(d, f->state_dir);
    free(d);

    const char *saved = getenv("HOME");
    char *home = saved ? cs_strdup(saved) : NULL;
    cs_config cfg;
    memset(&cfg, 0, sizeof cfg);
    setenv("HOME", "/home/tester", 1);
    d = cs_state_dir(&cfg);
    assert_string_equal(d, "/home/tester/.cache/cassette/state");
    free(d);
    unsetenv("HOME");
    d = cs_state_dir(&cfg);
    assert_string_equal(d, "/tmp/.cache/cassette/state");
    free(d);
    if (home) {
        setenv("HOME", home, 1);
        free(home);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_and_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_file_is_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_unknown_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

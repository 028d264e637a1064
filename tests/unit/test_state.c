/* test_state.c - ops/state: the local dedup cache and the per-node lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "ops/host.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/age.h"
#include "ops/state.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo_at.h"

#define HOST_A "11111111-2222-3333-4444-555555555555"
#define HOST_B "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define TABLE_ID "0123456789abcdef0123456789abcdef"
#define TABLE_ID2 "fedcba9876543210fedcba9876543210"
#define DIR0 "/var/lib/cassandra/data"
#define DIR1 "/mnt/disk2/data"

typedef struct fixture {
    char dir[64];
    char *state_dir;
    cs_host cfg;
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
    f->cfg.state_dir = f->state_dir; /* not owned by cfg: never cs_host_free'd */
    char *root = cs_path_join(f->dir, "repo");
    cs_err e;
    cs_err_clear(&e);
    int rc = repo_init_at(root, NULL, &f->repo, &e);
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
            assert_int_equal(en->pack.at, file->pack.at);
            assert_int_equal(en->pack.len, file->pack.len);
            assert_int_equal(en->pack.size, file->pack.size);
            assert_string_equal(en->pack.hash, file->pack.hash);
            n++;
        }
    return n;
}

static bool finds(const cs_state *s, const char *dir, const char *table_id, const char *name, uint64_t size,
                  int64_t mtime)
{
    return cs_state_find(s, dir, table_id, name, size, mtime) != NULL;
}


/* ---- the journal: helpers ----------------------------------------------- */

static char *journal_file(const fixture *f, const char *host)
{
    return cs_sprintf("%s/%s/%s.journal", f->state_dir, f->repo->id, host);
}

/* Store an object of `payload` bytes under id, as a backup would (through
 * the repository's writer: encrypted when the repository is). */
static void put_object(fixture *f, const char *id, uint64_t payload)
{
    char *key = cs_repo_object_key(id);
    cs_sink *w = NULL;
    cs_err e;
    cs_err_clear(&e);
    char *bytes = calloc(1, payload + 1);
    assert_non_null(bytes);
    int rc = cs_repo_writer(f->repo, key, 0, &w, &e);
    if (!rc)
        rc = cs_sink_write(w, bytes, payload, &e);
    if (!rc)
        rc = cs_sink_close(w, &e);
    cs_sink_free(w);
    if (rc)
        fail_msg("put %s: %s", key, e.msg);
    free(bytes);
    free(key);
}

static void del_object(fixture *f, const char *id)
{
    char *key = cs_repo_object_key(id);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_del(f->repo->st, key, &e), 0);
    free(key);
}

/* Store the objects of every file of m. */
static void put_objects(fixture *f, const cs_manifest *m)
{
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++)
            put_object(f, m->tables[i].files[j].object, m->tables[i].files[j].stored);
}

/* What the backup workers do: record every file of m as stored. */
static void record_all(cs_state *s, const cs_manifest *m)
{
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++) {
            const cs_mfile *file = &m->tables[i].files[j];
            cs_state_record(s, m->data_dirs.items[file->data_dir], m->tables[i].id, file);
        }
}

static void save_partial(fixture *f, const cs_state *old, const cs_manifest *m)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_state_save_partial(&f->cfg, f->repo, old, m, &e);
    if (rc)
        fail_msg("save_partial: %s", e.msg);
}

static void append_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Failure injection: the storage's stat, counted, failing with stat_rc. */
static int stat_calls;
static int stat_rc;
static int (*real_stat)(cs_storage *, const char *, cs_storage_stat *, cs_err *);

static int counting_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    stat_calls++;
    if (stat_rc)
        return cs_err_set(e, stat_rc, "injected failure for %s", key);
    return real_stat(st, key, out, e);
}

typedef struct stat_hook {
    const cs_storage_ops *saved;
    cs_storage_ops ops;
} stat_hook;

static void hook_stat(fixture *f, stat_hook *h, int rc)
{
    h->saved = f->repo->st->ops;
    h->ops = *h->saved;
    real_stat = h->saved->stat;
    h->ops.stat = counting_stat;
    f->repo->st->ops = &h->ops;
    stat_calls = 0;
    stat_rc = rc;
}

static void unhook_stat(fixture *f, const stat_hook *h)
{
    f->repo->st->ops = h->saved;
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
    cs_host cfg = f->cfg;
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
    cs_host cfg;
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

/* ---- the journal -------------------------------------------------------- */

/* A backup killed before any save: what it stored is known next time. */
static void test_journal_survives_kill(void **state)
{
    fixture *f = *state;
    cs_manifest killed;
    make_manifest(&killed, "k1", HOST_A, 100, 2, "a");
    store(f, &killed, false);
    put_objects(f, &killed);

    cs_state *s = load(f, HOST_A);
    record_all(s, &killed);
    cs_state_free(s); /* killed: no save */

    char *path = journal_file(f, HOST_A);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &killed), 3);
    const cs_state_entry *en = cs_state_find(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000);
    assert_true(en->unreferenced);

    /* Killed again after storing more: both runs are known. */
    cs_manifest again;
    make_manifest(&again, "k2", HOST_A, 200, 4, "b");
    again.tables[0].files[0].size = 2000; /* nb-1 changed: a new object */
    put_objects(f, &again);
    record_all(s, &again);
    cs_state_free(s);
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &again), 5); /* the later line wins */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    cs_state_free(s);

    /* With an anchor: its files and the journal's together. */
    cs_manifest b1;
    make_manifest(&b1, "b1", HOST_A, 300, 6, "c"); /* its objects are never stat'ed */
    b1.tables[0].files[5].size = 77;
    store(f, &b1, true);
    save(f, &b1); /* removes the journal */
    assert_false(cs_exists(path));
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &b1), 7);
    cs_manifest k3;
    make_manifest(&k3, "k3", HOST_A, 400, 6, "d");
    k3.tables[0].files[5].size = 78; /* only nb-6 changed */
    k3.tables[0].n_files = 6;
    put_objects(f, &k3);
    cs_state_record(s, DIR1, TABLE_ID, &k3.tables[0].files[5]);
    cs_state_free(s);
    stat_hook h;
    hook_stat(f, &h, 0);
    s = load(f, HOST_A);
    unhook_stat(f, &h);
    assert_int_equal(stat_calls, 0); /* the backup checks objects (ops/present.h), not the load */
    assert_true(finds(s, DIR1, TABLE_ID, "nb-6-big-Data.db", 78, 5005));
    assert_false(finds(s, DIR1, TABLE_ID, "nb-6-big-Data.db", 77, 5005));
    assert_true(finds(s, DIR0, TABLE_ID, "nb-5-big-Data.db", 1004, 5004));
    assert_false(cs_state_find(s, DIR0, TABLE_ID, "nb-5-big-Data.db", 1004, 5004)->unreferenced);
    cs_state_free(s);

    free(path);
    cs_manifest_free(&killed);
    cs_manifest_free(&again);
    cs_manifest_free(&b1);
    cs_manifest_free(&k3);
}

/* Killed after its manifest was written (in clearsnapshot, say): the cache
 * is rebuilt from that manifest, and the journal, which holds the same
 * objects, costs no stat. */
static void test_killed_after_manifest(void **state)
{
    fixture *f = *state;
    cs_manifest b1, b2;
    make_manifest(&b1, "b1", HOST_A, 100, 2, "a");
    store(f, &b1, true);
    save(f, &b1);
    make_manifest(&b2, "b2", HOST_A, 200, 4, "b"); /* no objects stored: a stat would drop them */
    store(f, &b2, false);
    cs_state *s = load(f, HOST_A);
    record_all(s, &b2);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_repo_put_manifest(f->repo, &b2, &e), 0);
    cs_state_free(s);

    stat_hook h;
    hook_stat(f, &h, 0);
    s = load(f, HOST_A);
    unhook_stat(f, &h);
    assert_int_equal(stat_calls, 0);
    assert_int_equal(assert_holds(s, &b2), 5);
    assert_false(cs_state_find(s, DIR1, TABLE_ID, "nb-4-big-Data.db", 1003, 5003)->unreferenced);
    cs_state_free(s);
    cs_manifest_free(&b1);
    cs_manifest_free(&b2);
}

/* The load never asks the repository about objects: an entry whose object
 * was purged, or is of another size, stays known by name. The backup
 * checks every object it would reuse before it does (test_present.c) and
 * stores such files again. */
static void test_load_never_stats(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "k1", HOST_A, 100, 4, "a");
    put_objects(f, &m);
    cs_state *s = load(f, HOST_A);
    record_all(s, &m);
    cs_state_free(s);

    del_object(f, m.tables[0].files[1].object);
    put_object(f, m.tables[0].files[2].object, 3); /* recorded as 12 bytes */
    stat_hook h;
    hook_stat(f, &h, CS_E_UNAVAIL); /* a repository that cannot be asked does not matter */
    s = load(f, HOST_A);
    unhook_stat(f, &h);
    assert_int_equal(stat_calls, 0);
    assert_int_equal(assert_holds(s, &m), 5);
    assert_true(cs_state_find(s, DIR1, TABLE_ID, "nb-2-big-Data.db", 1001, 5001)->unreferenced);
    cs_state_free(s);
    cs_manifest_free(&m);
}

/* A kill mid-write leaves a torn last line: ignored, and cut off before
 * the next line is appended (else that line would be lost too). */
static void test_journal_torn_line(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "k1", HOST_A, 100, 3, "a");
    put_objects(f, &m);
    cs_state *s = load(f, HOST_A);
    cs_state_record(s, DIR0, TABLE_ID, &m.tables[0].files[0]);
    cs_state_record(s, DIR1, TABLE_ID, &m.tables[0].files[1]);
    cs_state_free(s);
    char *path = journal_file(f, HOST_A);
    /* bad lines in the middle are skipped too */
    char *bad = cs_sprintf("garbage\n[1,2]\n\n[\"%s\\t%s\\tx.db\",5,6,\"%064d\",\"../../x\",7,true]\n"
                           "[\"%s\\t%s\\tx.db\",5,6,\"%064d\",\"%s\",7,\"yes\"]\n",
                           DIR0, TABLE_ID, 0, DIR0, TABLE_ID, 0, "0123456789abcdef0123456789abcdef");
    append_text(path, bad);
    free(bad);
    cs_state_record(NULL, DIR0, TABLE_ID, &m.tables[0].files[2]); /* no state: nothing */
    s = load(f, HOST_A);
    cs_state_record(s, DIR0, TABLE_ID, &m.tables[0].files[2]);
    cs_state_free(s);
    append_text(path, "[\"/var/lib/cassandra/data\\t0123");
    s = load(f, HOST_A);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    assert_true(finds(s, DIR1, TABLE_ID, "nb-2-big-Data.db", 1001, 5001));
    assert_true(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    assert_false(finds(s, DIR0, TABLE_ID, "x.db", 5, 6));
    cs_state_record(s, DIR0, TABLE_ID2, &m.tables[1].files[0]);
    cs_state_free(s);
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &m), 4);
    cs_state_free(s);
    /* the torn line was cut, the rest kept */
    char *text = NULL;
    size_t len = 0;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_read_file(path, 1 << 20, &text, &len, &e), 0);
    assert_true(len > 0 && text[len - 1] == '\n');
    assert_null(strstr(text, "0123\n"));
    free(text);
    free(path);
    cs_manifest_free(&m);
}

/* A backup that completes leaves a cache and no journal. */
static void test_save_removes_journal(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "b1", HOST_A, 100, 2, "a");
    put_objects(f, &m);
    store(f, &m, false);
    cs_state *s = load(f, HOST_A);
    record_all(s, &m);
    char *path = journal_file(f, HOST_A);
    cs_err e;
    assert_true(cs_exists(path));
    cs_err_clear(&e);
    assert_int_equal(cs_repo_put_manifest(f->repo, &m, &e), 0);
    save(f, &m);
    cs_state_free(s);
    assert_false(cs_exists(path));
    stat_hook h;
    hook_stat(f, &h, 0);
    s = load(f, HOST_A);
    unhook_stat(f, &h);
    assert_int_equal(stat_calls, 0); /* all referenced by b1 */
    assert_int_equal(assert_holds(s, &m), 3);
    cs_state_free(s);
    free(path);
    cs_manifest_free(&m);
}

/* A failed backup: its files go into the cache as unreferenced (checked at
 * every load until a backup references them), the journal goes. */
static void test_partial_marks_unreferenced(void **state)
{
    fixture *f = *state;
    cs_manifest b1, failed;
    make_manifest(&b1, "b1", HOST_A, 100, 3, "a"); /* no objects: referenced, never stat'ed */
    store(f, &b1, true);
    save(f, &b1);
    make_manifest(&failed, "b2", HOST_A, 200, 5, "b");
    for (size_t i = 0; i < 3; i++) {
        failed.tables[0].files[i].is_new = i == 2; /* nb-1, nb-2 reused, nb-3 changed */
    }
    failed.tables[0].files[2].size = 3333;
    failed.tables[0].files[4].is_new = false; /* failed to store */
    store(f, &failed, false);
    put_objects(f, &failed);

    cs_state *s = load(f, HOST_A);
    cs_state_record(s, DIR0, TABLE_ID, &failed.tables[0].files[2]);
    cs_state_record(s, DIR1, TABLE_ID, &failed.tables[0].files[3]);
    save_partial(f, s, &failed);
    cs_state_free(s);
    char *path = journal_file(f, HOST_A);
    assert_false(cs_exists(path));
    free(path);

    stat_hook h;
    hook_stat(f, &h, 0);
    s = load(f, HOST_A);
    unhook_stat(f, &h);
    assert_int_equal(stat_calls, 0);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    assert_false(cs_state_find(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000)->unreferenced);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 3333, 5002)); /* replaced b1's */
    assert_false(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    assert_true(cs_state_find(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 3333, 5002)->unreferenced);
    assert_true(finds(s, DIR1, TABLE_ID, "nb-4-big-Data.db", 1003, 5003));
    assert_false(finds(s, DIR0, TABLE_ID, "nb-5-big-Data.db", 1004, 5004));
    cs_state_free(s);

    /* Purged meanwhile: still known (the backup's check stores it again). */
    del_object(f, failed.tables[0].files[3].object);
    s = load(f, HOST_A);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 3333, 5002));
    assert_true(cs_state_find(s, DIR1, TABLE_ID, "nb-4-big-Data.db", 1003, 5003)->unreferenced);
    cs_state_free(s);

    /* A newer complete backup (its cache never written: killed in
     * clearsnapshot): rebuilt from it, and what b2 stored is kept. */
    cs_manifest b3;
    make_manifest(&b3, "b3", HOST_A, 300, 1, "c");
    store(f, &b3, true);
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &b3), 2);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 3333, 5002));
    assert_false(finds(s, DIR1, TABLE_ID, "nb-2-big-Data.db", 1001, 5001)); /* b1's: not the anchor */
    cs_state_free(s);

    /* An older cache without the flag and without an anchor: nothing in it
     * can be referenced. */
    cs_manifest none;
    make_manifest(&none, "x", HOST_B, 100, 1, "d");
    put_object(f, none.tables[0].files[0].object, none.tables[0].files[0].stored);
    char *text = cs_sprintf("{\"backup\":null,\"files\":[[\"%s\\t%s\\tnb-1-big-Data.db\",1000,5000,\"%064d\","
                            "\"%s\",10],[\"%s\\t%s\\tgone.db\",5,6,\"%064d\",\"%s\",7]]}",
                            DIR0, TABLE_ID, 0, none.tables[0].files[0].object, DIR0, TABLE_ID, 0,
                            "0123456789abcdef0123456789abcdef");
    write_state(f, HOST_B, text);
    free(text);
    s = load(f, HOST_B);
    assert_true(cs_state_find(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000)->unreferenced);
    assert_true(cs_state_find(s, DIR0, TABLE_ID, "gone.db", 5, 6)->unreferenced);
    cs_state_free(s);

    cs_manifest_free(&b1);
    cs_manifest_free(&failed);
    cs_manifest_free(&b3);
    cs_manifest_free(&none);
}

typedef struct recorder {
    cs_state *s;
    const cs_manifest *m;
    size_t first, step;
} recorder;

static void *record_some(void *arg)
{
    recorder *r = arg;
    const cs_mtable *t = &r->m->tables[0];
    for (size_t i = r->first; i < t->n_files; i += r->step)
        cs_state_record(r->s, r->m->data_dirs.items[t->files[i].data_dir], t->id, &t->files[i]);
    return NULL;
}

/* Workers record at the same time: every line arrives whole. */
static void test_journal_threads(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "k1", HOST_A, 100, 400, "a");
    put_objects(f, &m);
    cs_state *s = load(f, HOST_A);
    pthread_t th[8];
    recorder r[8];
    for (size_t i = 0; i < 8; i++) {
        r[i] = (recorder){ s, &m, i, 8 };
        assert_int_equal(pthread_create(&th[i], NULL, record_some, &r[i]), 0);
    }
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    cs_state_free(s);
    s = load(f, HOST_A);
    m.tables[1].n_files = 0; /* not recorded */
    assert_int_equal(assert_holds(s, &m), 400);
    m.tables[1].n_files = 1;
    cs_state_free(s);
    cs_manifest_free(&m);
}

/* A write that fails half way (the disk is full): one warning, no more
 * lines, and the torn one costs nothing but itself. */
static void test_journal_short_write(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "k1", HOST_A, 100, 3, "a");
    put_objects(f, &m);
    cs_state *s = load(f, HOST_A);
    cs_state_record(s, DIR0, TABLE_ID, &m.tables[0].files[0]);
    char *path = journal_file(f, HOST_A);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = (rlim_t)st.st_size + 10;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cs_state_record(s, DIR1, TABLE_ID, &m.tables[0].files[1]); /* 10 bytes of it */
    cs_state_record(s, DIR0, TABLE_ID, &m.tables[0].files[2]); /* not written */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    cs_state_free(s);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, (uint64_t)lim.rlim_cur);

    s = load(f, HOST_A);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    assert_false(finds(s, DIR1, TABLE_ID, "nb-2-big-Data.db", 1001, 5001));
    assert_false(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    cs_state_record(s, DIR0, TABLE_ID, &m.tables[0].files[2]);
    cs_state_free(s);
    s = load(f, HOST_A);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    assert_true(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    cs_state_free(s);
    free(path);
    cs_manifest_free(&m);
}

/* A journal that cannot be opened: a warning, and the backup goes on. */
static void test_journal_unwritable(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "b1", HOST_A, 100, 2, "a");
    store(f, &m, true);
    save(f, &m);
    char *path = journal_file(f, HOST_A);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs(path, 0700, &e), 0);
    cs_state *s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &m), 3);
    record_all(s, &m);
    cs_state_free(s);
    assert_true(cs_is_dir(path));
    free(path);
    cs_manifest_free(&m);
}

/* Encrypted, and the host holds only the public key: it cannot rebuild from
 * a newer manifest, so it keeps the files of its cache's backup (complete)
 * and what the journal knows; the former are now unreferenced. */
static void test_stale_cache_without_identity(void **state)
{
    fixture *f = *state;
    /* Replace the fixture's repository with an encrypted one. */
    cs_repo_free(f->repo);
    age_identity *id = age_keygen();
    cs_buf pub = CS_BUF_INIT;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(age_identity_public_string(id, &pub, &e), 0);
    cs_strlist rcpts = { NULL, 0 };
    cs_strlist_add(&rcpts, cs_buf_str(&pub));
    cs_repo_opts opts = { &rcpts };
    char *root = cs_path_join(f->dir, "enc");
    int rc = repo_init_at(root, &opts, &f->repo, &e);
    if (rc)
        fail_msg("init: %s", e.msg);
    free(root);
    cs_strlist_free(&rcpts);
    cs_buf_free(&pub);
    age_identity_free(id);
    assert_true(cs_repo_is_encrypted(f->repo));

    cs_manifest b1, b2;
    make_manifest(&b1, "b1", HOST_A, 100, 3, "a");
    store(f, &b1, true);
    save(f, &b1);
    make_manifest(&b2, "b2", HOST_A, 200, 4, "b");
    for (size_t i = 0; i < 3; i++) { /* b2 reused b1's nb-1..3 */
        memcpy(b2.tables[0].files[i].object, b1.tables[0].files[i].object, CS_OBJECT_ID_HEX);
        memcpy(b2.tables[0].files[i].hash, b1.tables[0].files[i].hash, sizeof b2.tables[0].files[i].hash);
        b2.tables[0].files[i].is_new = false;
    }
    cs_state *s = load(f, HOST_A);
    put_object(f, b2.tables[0].files[3].object, b2.tables[0].files[3].stored);
    cs_state_record(s, DIR1, TABLE_ID, &b2.tables[0].files[3]);
    store(f, &b2, true); /* manifest written, then killed: no save */
    cs_state_free(s);

    stat_hook h;
    hook_stat(f, &h, 0);
    s = load(f, HOST_A);
    unhook_stat(f, &h);
    assert_int_equal(stat_calls, 0);
    assert_true(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000));
    assert_true(finds(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002));
    assert_true(finds(s, DIR1, TABLE_ID, "nb-4-big-Data.db", 1003, 5003));
    assert_true(cs_state_find(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000)->unreferenced);

    /* If this backup fails too, all of them stay known, unreferenced (b1
     * may be purged by then: the backup's check would store them again). */
    cs_manifest b3;
    make_manifest(&b3, "b3", HOST_A, 300, 0, "c");
    save_partial(f, s, &b3);
    cs_state_free(s);
    s = load(f, HOST_A);
    assert_true(cs_state_find(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000)->unreferenced);
    assert_true(finds(s, DIR1, TABLE_ID, "nb-4-big-Data.db", 1003, 5003));
    cs_state_free(s);
    cs_manifest_free(&b1);
    cs_manifest_free(&b2);
    cs_manifest_free(&b3);
}

/* ---- known contents ------------------------------------------------------ */

static char *content_file(const fixture *f, const char *host)
{
    return cs_sprintf("%s/%s/%s.content", f->state_dir, f->repo->id, host);
}

static void learn(fixture *f, const char *host, const cs_manifest *m, const bool *tables)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_state_learn(&f->cfg, f->repo, host, m, tables, &e);
    if (rc)
        fail_msg("learn: %s", e.msg);
}

static size_t count_lines(const char *path)
{
    char *text = NULL;
    size_t len = 0, n = 0;
    if (cs_read_file(path, 1 << 20, &text, &len, NULL))
        return 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    free(text);
    return n;
}

/* What a restore placed (from another host's backup, one table only) is
 * known by content to this host's next backup, beside the cache's files. */
static void test_learn_and_find_contents(void **state)
{
    fixture *f = *state;
    cs_manifest restored, own;
    make_manifest(&restored, "r1", HOST_B, 100, 3, "a");
    bool tables[2] = { true, false }; /* ks.t restored, ks.u not */
    learn(f, HOST_A, &restored, tables);
    char *path = content_file(f, HOST_A);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_lines(path), 3);

    cs_state *s = load(f, HOST_A);
    size_t n = 0;
    const cs_state_entry *const *hit = cs_state_contents(s, 1001, restored.tables[0].files[1].hash, &n);
    assert_int_equal(n, 1);
    assert_string_equal(hit[0]->object, restored.tables[0].files[1].object);
    assert_int_equal(hit[0]->stored, 11);
    assert_null(cs_state_contents(s, 7, NULL, &n)); /* ks.u was not restored */
    assert_int_equal(n, 0);
    assert_null(cs_state_contents(s, 1001, restored.tables[0].files[0].hash + 1, &n)); /* another hash */
    assert_null(cs_state_contents(s, 999, NULL, &n));
    assert_false(finds(s, DIR0, TABLE_ID, "nb-1-big-Data.db", 1000, 5000)); /* not known by name */
    cs_state_free(s);

    /* The cache's own files are known by content too, whatever their name. */
    make_manifest(&own, "b1", HOST_A, 200, 2, "b");
    store(f, &own, true);
    save(f, &own);
    s = load(f, HOST_A);
    hit = cs_state_contents(s, 1000, NULL, &n);
    assert_int_equal(n, 2); /* restored (hash a...) and own (hash b...), by hash */
    assert_string_equal(hit[0]->object, restored.tables[0].files[0].object);
    assert_string_equal(hit[1]->object, own.tables[0].files[0].object);
    hit = cs_state_contents(s, 7, own.tables[1].files[0].hash, &n);
    assert_int_equal(n, 1);
    assert_string_equal(hit[0]->object, own.tables[1].files[0].object);
    assert_null(cs_state_contents(s, 1002, own.tables[0].files[0].hash, &n)); /* size and hash together */
    cs_state_free(s);
    assert_null(cs_state_contents(NULL, 1000, NULL, &n));

    /* Learned for host A only. */
    s = load(f, HOST_B);
    assert_null(cs_state_contents(s, 1001, NULL, &n));
    cs_state_free(s);
    free(path);
    cs_manifest_free(&restored);
    cs_manifest_free(&own);
}

/* Files 1 and 2 of m's ks.t in one pack (file 1's object, stored 500). */
static void pack_two(cs_manifest *m)
{
    cs_mfile *a = &m->tables[0].files[1], *b = &m->tables[0].files[2];
    memcpy(b->object, a->object, CS_OBJECT_ID_HEX);
    a->stored = b->stored = 500;
    a->pack = (cs_pack_ref){ 0, 200, 3000, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" };
    b->pack = a->pack;
    b->pack.at = 200;
    b->pack.len = 300;
}

/* The cache, its journal and the learned contents keep where a file lies
 * in its pack. */
static void test_packed_entries(void **state)
{
    fixture *f = *state;
    cs_manifest m;
    make_manifest(&m, "p1", HOST_A, 100, 3, "a");
    pack_two(&m);
    store(f, &m, true);
    save(f, &m);
    cs_state *s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &m), 4);
    assert_int_equal(cs_state_find(s, DIR0, TABLE_ID, "nb-3-big-Data.db", 1002, 5002)->pack.at, 200);
    cs_state_free(s);

    /* Killed after recording: the journal's lines keep it too. */
    cs_manifest k;
    make_manifest(&k, "k1", HOST_A, 200, 3, "b");
    pack_two(&k);
    put_objects(f, &k);
    s = load(f, HOST_A);
    record_all(s, &k);
    cs_state_free(s);
    s = load(f, HOST_A);
    assert_int_equal(assert_holds(s, &k), 4);
    cs_state_free(s);

    /* Learned contents (what a restore placed). */
    learn(f, HOST_B, &m, NULL);
    s = load(f, HOST_B);
    size_t n = 0;
    const cs_state_entry *const *hit = cs_state_contents(s, 1002, m.tables[0].files[2].hash, &n);
    assert_int_equal(n, 1);
    assert_int_equal(hit[0]->pack.at, 200);
    assert_int_equal(hit[0]->pack.len, 300);
    assert_int_equal(hit[0]->pack.size, 3000);
    assert_string_equal(hit[0]->pack.hash, m.tables[0].files[2].pack.hash);
    hit = cs_state_contents(s, 1000, m.tables[0].files[0].hash, &n);
    assert_int_equal(n, 1);
    assert_int_equal(hit[0]->pack.len, 0); /* alone */
    cs_state_free(s);
    cs_manifest_free(&m);
    cs_manifest_free(&k);
}

/* A complete backup that holds a learned content forgets it (the cache
 * knows it by name now); duplicates, expired and bad lines go too. */
static void test_content_pruned_by_save(void **state)
{
    fixture *f = *state;
    cs_manifest restored, b1, b2;
    make_manifest(&restored, "r1", HOST_B, 100, 3, "a");
    learn(f, HOST_A, &restored, NULL);
    learn(f, HOST_A, &restored, NULL); /* restored twice */
    char *path = content_file(f, HOST_A);
    assert_int_equal(count_lines(path), 8);
    append_text(path, "[5,\"" /* expired: learned at 0 */
                      "0000000000000000000000000000000000000000000000000000000000000000\","
                      "\"0123456789abcdef0123456789abcdef\",9,0]\n"
                      "not json\n[1,2]\n[1000,\"torn");
    cs_state *s = load(f, HOST_A);
    size_t n = 0;
    assert_null(cs_state_contents(s, 5, NULL, &n));
    assert_non_null(cs_state_contents(s, 1002, NULL, &n));
    assert_int_equal(n, 2); /* both lines: one object, learned twice */
    cs_state_free(s);

    /* b1 reused two of the restored contents (as the backup does, under
     * the restored objects); the third and ks.u's stay learned. */
    make_manifest(&b1, "b1", HOST_A, 200, 2, "b");
    for (size_t i = 0; i < 2; i++) {
        memcpy(b1.tables[0].files[i].hash, restored.tables[0].files[i].hash, sizeof b1.tables[0].files[i].hash);
        memcpy(b1.tables[0].files[i].object, restored.tables[0].files[i].object, CS_OBJECT_ID_HEX);
    }
    b1.tables[1].files[0].size = 8; /* ks.u's file: another content */
    store(f, &b1, true);
    save(f, &b1);
    assert_int_equal(count_lines(path), 2);
    s = load(f, HOST_A);
    assert_non_null(cs_state_contents(s, 1002, restored.tables[0].files[2].hash, &n));
    assert_int_equal(n, 1);
    assert_non_null(cs_state_contents(s, 7, restored.tables[1].files[0].hash, &n));
    cs_state_free(s);

    /* b2 holds them all: nothing is left to learn from, the file goes. */
    make_manifest(&b2, "b2", HOST_A, 300, 3, "a");
    store(f, &b2, true);
    save(f, &b2);
    assert_false(cs_exists(path));
    char *lock = cs_sprintf("%s.lock", path);
    assert_true(cs_exists(lock));
    free(lock);
    free(path);
    cs_manifest_free(&restored);
    cs_manifest_free(&b1);
    cs_manifest_free(&b2);
}

/* The repository's size, as the summaries tell: what the backup weighs a
 * listing of objects/ against. */
static void test_repo_objects(void **state)
{
    fixture *f = *state;
    cs_state *s = load(f, HOST_A);
    assert_int_equal(cs_state_repo_objects(s), 0);
    cs_state_free(s);
    assert_int_equal(cs_state_repo_objects(NULL), 0);
    cs_manifest b1, b2;
    make_manifest(&b1, "b1", HOST_A, 100, 5, "a"); /* 5 stored, ks.u's file reused */
    make_manifest(&b2, "b2", HOST_B, 200, 3, "b");
    store(f, &b1, true);
    store(f, &b2, false); /* a start mark counts what it holds */
    s = load(f, HOST_A);
    assert_int_equal(cs_state_repo_objects(s), 8);
    cs_state_free(s);
    cs_manifest_free(&b1);
    cs_manifest_free(&b2);
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
        cmocka_unit_test_setup_teardown(test_journal_survives_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_after_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_never_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_torn_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_removes_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_marks_unreferenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_short_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_cache_without_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_learn_and_find_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_pruned_by_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repo_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed_entries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

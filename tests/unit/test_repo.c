/* test_repo.c - repo/repo: creating and opening, object ids, backups, listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/age.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo_at.h"

/* cs_manifest_to_json, which must succeed for these manifests. */
static char *manifest_json(const cs_manifest *m)
{
    char *text = NULL;
    cs_err err;
    cs_err_clear(&err);
    if (cs_manifest_to_json(m, &text, &err) != 0)
        abort();
    return text;
}

#define HOST_A "11111111-2222-3333-4444-555555555555"
#define HOST_B "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define TABLE_ID "0123456789abcdef0123456789abcdef"

typedef struct fixture {
    char dir[64];
    char *root; /* <dir>/repo: not created by setup */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-repo-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->root = cs_path_join(f->dir, "repo");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_remove_tree(f->dir, &e);
    free(f->root);
    free(f);
    return rc;
}

/* ---- helpers ------------------------------------------------------------ */

static void write_text(const char *path, const char *text)
{
    char *dir = cs_dirname(path);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs(dir, 0755, &e), 0);
    assert_int_equal(cs_write_file_atomic(path, text, strlen(text), 0644, &e), 0);
    free(dir);
}

static char *repo_path(const fixture *f, const char *rel)
{
    return cs_path_join(f->root, rel);
}

static cs_repo *init_repo(const fixture *f)
{
    cs_repo *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    int rc = repo_init_at(f->root, NULL, &r, &e);
    if (rc)
        fail_msg("init: %s", e.msg);
    assert_non_null(r);
    return r;
}

/* A manifest of `name` for host with n_files files (sizes 100, 200, ...). */
static void make_manifest(cs_manifest *m, const char *name, const char *host, double started, size_t n_files)
{
    memset(m, 0, sizeof *m);
    m->backup = cs_strdup(name);
    m->host_id = cs_strdup(host);
    m->address = cs_strdup("10.0.0.1");
    cs_strlist_add(&m->data_dirs, "/var/lib/cassandra/data");
    m->started = started;
    m->finished = started + 10;
    cs_mtable *t = cs_manifest_add_table(m, "ks", "t", TABLE_ID);
    for (size_t i = 0; i < n_files; i++) {
        char fname[64];
        snprintf(fname, sizeof fname, "nb-%zu-big-Data.db", i + 1);
        cs_mfile *file = cs_mtable_add_file(t, fname);
        file->size = 100 * (i + 1);
        file->stored = 10 * (i + 1);
        file->mtime_ns = 1700000000000000000LL + (int64_t)i;
        memset(file->hash, 'a', CS_HASH_HEX - 1);
        file->hash[CS_HASH_HEX - 1] = '\0';
        cs_repo_new_object_id(file->object);
        file->is_new = i % 2 == 0;
    }
}

/* Mark started and, when complete, write the manifest. */
static void store_backup(cs_repo *r, const char *name, const char *host, double started, size_t n_files,
                         bool complete)
{
    cs_manifest m;
    make_manifest(&m, name, host, started, n_files);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_repo_mark_started(r, &m, &e);
    if (rc)
        fail_msg("mark_started %s: %s", name, e.msg);
    if (complete) {
        rc = cs_repo_put_manifest(r, &m, &e);
        if (rc)
            fail_msg("put_manifest %s: %s", name, e.msg);
    }
    cs_manifest_free(&m);
}

/* ---- opening ------------------------------------------------------------ */

static void test_init_missing(void **state)
{
    fixture *f = *state;
    free(f->root);
    f->root = cs_path_join(f->dir, "deeper/still/repo");
    cs_repo *r = init_repo(f);
    assert_true(cs_is_dir(f->root));
    char *repo_file = repo_path(f, "cassette.repo");
    assert_true(cs_exists(repo_file));
    assert_true(cs_is_hex32(r->id));
    char id[CS_OBJECT_ID_HEX];
    memcpy(id, r->id, sizeof id);

    /* cassette.repo is JSON with the format and the id. */
    char *text = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_read_file(repo_file, 1 << 20, &text, NULL, &e), 0);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "format")), CS_REPO_FORMAT);
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    free(text);
    cs_repo_free(r);

    /* Opening it again (with or without create) gives the same repository. */
    r = NULL;
    assert_int_equal(repo_open_at(f->root, false, NULL, &r, &e), 0);
    assert_string_equal(r->id, id);
    assert_string_equal(r->location, f->root);
    cs_repo_free(r);
    r = NULL;
    assert_int_equal(repo_open_at(f->root, true, NULL, &r, &e), 0);
    assert_string_equal(r->id, id);
    cs_repo_free(r);
    cs_repo_free(NULL);

    /* A second init of the same location fails and keeps the repository. */
    r = NULL;
    cs_err_clear(&e);
    assert_int_equal(repo_init_at(f->root, NULL, &r, &e), CS_E_EXISTS);
    assert_null(r);
    assert_non_null(strstr(e.msg, "not empty"));
    assert_int_equal(repo_open_at(f->root, false, NULL, &r, &e), 0);
    assert_string_equal(r->id, id);
    cs_repo_free(r);
    free(repo_file);
}

static void test_init_non_empty(void **state)
{
    fixture *f = *state;
    char *other = repo_path(f, "some/file.txt");
    write_text(other, "not a repository");
    cs_repo *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(repo_init_at(f->root, NULL, &r, &e), CS_E_EXISTS);
    assert_null(r);
    assert_non_null(strstr(e.msg, f->root));
    assert_non_null(strstr(e.msg, "not empty"));
    char *repo_file = repo_path(f, "cassette.repo");
    assert_false(cs_exists(repo_file));
    assert_true(cs_exists(other));
    free(repo_file);
    free(other);
}

static void test_open_empty(void **state)
{
    fixture *f = *state;
    cs_err e;
    assert_int_equal(mkdir(f->root, 0755), 0);
    cs_repo *r = NULL;
    cs_err_clear(&e);
    assert_int_equal(repo_open_at(f->root, false, NULL, &r, &e), CS_E_NOTFOUND);
    assert_null(r);
    assert_non_null(strstr(e.msg, "not a cassette repository"));
    assert_non_null(strstr(e.msg, "cassette init"));
    assert_non_null(strstr(e.msg, f->root));
    char *repo_file = repo_path(f, "cassette.repo");
    assert_false(cs_exists(repo_file));

    /* An empty directory only (no files) still counts as empty. */
    char *sub = repo_path(f, "lost+found");
    assert_int_equal(mkdir(sub, 0700), 0);
    cs_err_clear(&e);
    assert_int_equal(repo_open_at(f->root, false, NULL, &r, &e), CS_E_NOTFOUND);

    /* With create, the empty location becomes a repository. */
    cs_err_clear(&e);
    int rc = repo_open_at(f->root, true, NULL, &r, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_non_null(r);
    assert_true(cs_exists(repo_file));
    assert_true(cs_is_hex32(r->id));
    cs_repo_free(r);
    free(sub);
    free(repo_file);
}

static void test_open_missing(void **state)
{
    fixture *f = *state;
    cs_repo *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_not_equal(repo_open_at(f->root, false, NULL, &r, &e), 0);
    assert_null(r);
    assert_non_null(strstr(e.msg, f->root));
    assert_false(cs_exists(f->root));

    /* With create, a missing location is made. */
    cs_err_clear(&e);
    assert_int_equal(repo_open_at(f->root, true, NULL, &r, &e), 0);
    char *repo_file = repo_path(f, "cassette.repo");
    assert_true(cs_exists(repo_file));
    cs_repo_free(r);
    free(repo_file);
}

static void test_open_foreign(void **state)
{
    fixture *f = *state;
    char *other = repo_path(f, "data.bin");
    write_text(other, "x");
    for (int create = 0; create < 2; create++) {
        cs_repo *r = NULL;
        cs_err e;
        cs_err_clear(&e);
        assert_int_equal(repo_open_at(f->root, create != 0, NULL, &r, &e), CS_E_INVAL);
        assert_null(r);
        assert_non_null(strstr(e.msg, "not a cassette repository"));
        assert_non_null(strstr(e.msg, "no cassette.repo"));
    }
    char *repo_file = repo_path(f, "cassette.repo");
    assert_false(cs_exists(repo_file));
    free(repo_file);
    free(other);
}

/* The repository takes any opened storage (here the in-memory driver) and
 * owns it: freed with the repository, or at once when opening fails. */
static void test_open_any_storage(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_storage *mem = cs_mem_storage_new("repo");
    cs_storage *again = cs_mem_storage_share(mem);
    cs_storage *third = cs_mem_storage_share(mem);
    cs_repo *r = NULL;
    assert_int_equal(cs_repo_open(mem, false, NULL, &r, &e), CS_E_NOTFOUND); /* empty: mem is freed */
    assert_non_null(strstr(e.msg, "mem://repo is not a cassette repository (it is empty)"));
    assert_null(r);
    assert_int_equal(cs_repo_init(again, NULL, &r, &e), 0);
    assert_string_equal(r->location, "mem://repo");
    char id[CS_OBJECT_ID_HEX];
    memcpy(id, r->id, sizeof id);
    cs_repo_free(r);
    r = NULL;
    assert_int_equal(cs_repo_open(third, false, NULL, &r, &e), 0);
    assert_string_equal(r->id, id);
    cs_repo_free(r);
}

static void test_open_damaged(void **state)
{
    fixture *f = *state;
    char *repo_file = repo_path(f, "cassette.repo");
    const char *damaged[] = {
        "garbage", "", "{}", "[]", "{\"format\":1}", "{\"format\":1,\"id\":\"XYZ\"}",
        "{\"format\":\"1\",\"id\":\"0123456789abcdef0123456789abcdef\"}",
    };
    for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
        write_text(repo_file, damaged[i]);
        cs_repo *r = NULL;
        cs_err e;
        cs_err_clear(&e);
        int rc = repo_open_at(f->root, false, NULL, &r, &e);
        if (rc != CS_E_CORRUPT)
            fail_msg("\"%s\": rc %d (%s)", damaged[i], rc, e.msg);
        assert_null(r);
        assert_non_null(strstr(e.msg, "damaged"));
    }
    write_text(repo_file, "{\"format\":3,\"id\":\"0123456789abcdef0123456789abcdef\"}");
    cs_repo *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(repo_open_at(f->root, false, NULL, &r, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "format 3 is not supported"));
    assert_null(r);

    write_text(repo_file, "{\"format\":1,\"id\":\"0123456789abcdef0123456789abcdef\",\"future\":true}");
    assert_int_equal(repo_open_at(f->root, false, NULL, &r, &e), 0);
    assert_string_equal(r->id, "0123456789abcdef0123456789abcdef");
    cs_repo_free(r);
    free(repo_file);
}

/* ---- objects and names -------------------------------------------------- */

static void test_object_ids(void **state)
{
    (void)state;
    enum { N = 200 };
    char ids[N][CS_OBJECT_ID_HEX];
    for (size_t i = 0; i < N; i++) {
        cs_repo_new_object_id(ids[i]);
        assert_int_equal(strlen(ids[i]), 32);
        assert_true(cs_is_hex32(ids[i]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    char *key = cs_repo_object_key(ids[0]);
    char want[64];
    snprintf(want, sizeof want, "objects/%.2s/%s", ids[0], ids[0]);
    assert_string_equal(key, want);
    assert_true(cs_path_is_safe_relative(key));
    free(key);
    key = cs_repo_object_key("ab0123456789abcdef0123456789abcd");
    assert_string_equal(key, "objects/ab/ab0123456789abcdef0123456789abcd");
    free(key);
}

static void test_backup_names(void **state)
{
    (void)state;
    char longest[129], too_long[130];
    memset(longest, 'n', 128);
    longest[128] = '\0';
    memset(too_long, 'n', 129);
    too_long[129] = '\0';
    const char *good[] = { "20261122-013000", "a", "A.b_c-1", "nightly.2026-11-22", "x..y", "9", longest };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!cs_repo_is_valid_backup_name(good[i]))
            fail_msg("\"%s\" should be valid", good[i]);
    const char *bad[] = { "", ".", "..", ".hidden", "-rf", "a/b", "../x", "a b", "a\nb", "a\\b", "a:b",
                          "caf\xc3\xa9", "a*", too_long };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cs_repo_is_valid_backup_name(bad[i]))
            fail_msg("\"%s\" should be invalid", bad[i]);
}

/* ---- backups ------------------------------------------------------------ */

static void test_mark_started(void **state)
{
    fixture *f = *state;
    cs_repo *r = init_repo(f);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_repo_check_name_free(r, "b1", &e), 0);

    cs_manifest m;
    make_manifest(&m, "b1", HOST_A, 100, 1);
    assert_int_equal(cs_repo_mark_started(r, &m, &e), 0);
    char *started = repo_path(f, "backups/b1/" HOST_A ".started");
    assert_true(cs_exists(started));
    free(started);

    cs_err_clear(&e);
    assert_int_equal(cs_repo_check_name_free(r, "b1", &e), CS_E_EXISTS);
    assert_non_null(strstr(e.msg, "a backup named b1 already exists"));
    /* Other names, including ones that share a beginning, are free. */
    assert_int_equal(cs_repo_check_name_free(r, "b", &e), 0);
    assert_int_equal(cs_repo_check_name_free(r, "b10", &e), 0);
    assert_int_equal(cs_repo_check_name_free(r, "b1.x", &e), 0);

    /* The same host cannot start the same name twice. */
    cs_err_clear(&e);
    assert_int_equal(cs_repo_mark_started(r, &m, &e), CS_E_EXISTS);
    assert_non_null(strstr(e.msg, "already exists"));
    cs_manifest_free(&m);

    /* Another host may join the same backup. */
    make_manifest(&m, "b1", HOST_B, 100, 1);
    assert_int_equal(cs_repo_mark_started(r, &m, &e), 0);
    cs_manifest_free(&m);
    cs_repo_free(r);
}

static void test_manifest_round_trip(void **state)
{
    fixture *f = *state;
    cs_repo *r = init_repo(f);
    cs_manifest m, back;
    make_manifest(&m, "b1", HOST_A, 1700000000.5, 3);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_repo_mark_started(r, &m, &e), 0);
    assert_int_equal(cs_repo_put_manifest(r, &m, &e), 0);
    char *mpath = repo_path(f, "backups/b1/" HOST_A ".manifest");
    char *spath = repo_path(f, "backups/b1/" HOST_A ".summary");
    assert_true(cs_exists(mpath));
    assert_true(cs_exists(spath));

    for (int with_host = 0; with_host < 2; with_host++) {
        cs_err_clear(&e);
        int rc = cs_repo_read_manifest(r, "b1", with_host ? HOST_A : NULL, &back, &e);
        if (rc)
            fail_msg("read: %s", e.msg);
        char *a = manifest_json(&m);
        char *b = manifest_json(&back);
        assert_string_equal(a, b);
        free(a);
        free(b);
        assert_string_equal(back.backup, "b1");
        assert_string_equal(back.host_id, HOST_A);
        assert_int_equal(back.n_tables, 1);
        assert_int_equal(back.tables[0].n_files, 3);
        cs_manifest_free(&back);
    }

    /* The manifest is written once: a second put fails and keeps the first. */
    cs_err_clear(&e);
    assert_int_equal(cs_repo_put_manifest(r, &m, &e), CS_E_EXISTS);
    assert_non_null(strstr(e.msg, "writing the manifest of b1"));
    cs_manifest_free(&m);
    cs_repo_free(r);
    free(mpath);
    free(spath);
}

static void test_read_manifest_errors(void **state)
{
    fixture *f = *state;
    cs_repo *r = init_repo(f);
    cs_manifest m;
    cs_err e;

    /* Unknown and invalid names: not found. */
    const char *names[] = { "nope", "../x", "", ".", "a/b" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cs_err_clear(&e);
        int rc = cs_repo_read_manifest(r, names[i], NULL, &m, &e);
        if (rc != CS_E_NOTFOUND)
            fail_msg("\"%s\": rc %d (%s)", names[i], rc, e.msg);
    }
    cs_err_clear(&e);
    assert_int_equal(cs_repo_read_manifest(r, "nope", NULL, &m, &e), CS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "no backup named nope"));

    /* Incomplete: started, never finished. */
    store_backup(r, "half", HOST_A, 100, 2, false);
    cs_err_clear(&e);
    int rc = cs_repo_read_manifest(r, "half", NULL, &m, &e);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, CS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "incomplete"));
    assert_non_null(strstr(e.msg, "half"));

    /* Two nodes: the host must be named. */
    store_backup(r, "two", HOST_A, 200, 1, true);
    store_backup(r, "two", HOST_B, 200, 2, true);
    cs_err_clear(&e);
    assert_int_equal(cs_repo_read_manifest(r, "two", NULL, &m, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "holds 2 nodes"));
    assert_int_equal(cs_repo_read_manifest(r, "two", HOST_B, &m, &e), 0);
    assert_string_equal(m.host_id, HOST_B);
    assert_int_equal(m.tables[0].n_files, 2);
    cs_manifest_free(&m);
    cs_err_clear(&e);
    assert_int_equal(cs_repo_read_manifest(r, "two", "cccccccc-0000-0000-0000-000000000000", &m, &e),
                     CS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "no node with host id"));

    /* A damaged manifest is corrupt, and the message names the backup. */
    char *path = repo_path(f, "backups/bad/" HOST_A ".manifest");
    write_text(path, "{\"format\":1,\"backup\":\"bad\",\"host_id\":\"" HOST_A "\",\"tables\":[{\"keyspace\":\"../x\"}]}");
    cs_err_clear(&e);
    assert_int_equal(cs_repo_read_manifest(r, "bad", NULL, &m, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "backup bad: "));
    assert_non_null(strstr(e.msg, "invalid manifest"));
    free(path);
    path = repo_path(f, "backups/trunc/" HOST_A ".manifest");
    write_text(path, "{\"format\":1,\"backup\":");
    cs_err_clear(&e);
    assert_int_equal(cs_repo_read_manifest(r, "trunc", NULL, &m, &e), CS_E_CORRUPT);
    free(path);

    /* A manifest filed under another backup's name. */
    path = repo_path(f, "backups/moved/" HOST_A ".manifest");
    write_text(path, "{\"format\":1,\"backup\":\"original\",\"host_id\":\"" HOST_A "\",\"tables\":[]}");
    cs_err_clear(&e);
    assert_int_equal(cs_repo_read_manifest(r, "moved", NULL, &m, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "names another backup"));
    free(path);
    cs_repo_free(r);
}

static void test_list_backups(void **state)
{
    fixture *f = *state;
    cs_repo *r = init_repo(f);
    cs_backup_entry *entries = NULL;
    size_t n = 99;
    cs_err e;
    cs_err_clear(&e);

    /* An empty repository lists nothing. */
    assert_int_equal(cs_repo_list_backups(r, &entries, &n, &e), 0);
    assert_int_equal(n, 0);
    cs_backup_entries_free(entries, n);

    /* Written out of order: the list comes back oldest first. */
    store_backup(r, "late", HOST_A, 3000, 1, false);  /* incomplete */
    store_backup(r, "first", HOST_A, 1000, 2, true);
    store_backup(r, "middle", HOST_A, 2000, 3, true);
    store_backup(r, "middle", HOST_B, 2000.5, 1, false); /* one node still running */
    assert_int_equal(cs_repo_list_backups(r, &entries, &n, &e), 0);
    assert_int_equal(n, 4);

    assert_string_equal(entries[0].name, "first");
    assert_string_equal(entries[0].host_id, HOST_A);
    assert_string_equal(entries[0].address, "10.0.0.1");
    assert_true(entries[0].complete);
    assert_true(entries[0].started == 1000);
    assert_true(entries[0].finished == 1010);
    assert_int_equal(entries[0].files, 2);
    assert_int_equal(entries[0].size, 300);
    assert_int_equal(entries[0].stored, 30);

    assert_string_equal(entries[1].name, "middle");
    assert_string_equal(entries[1].host_id, HOST_A);
    assert_true(entries[1].complete);
    assert_int_equal(entries[1].files, 3);
    assert_int_equal(entries[1].size, 600);
    assert_int_equal(entries[1].stored, 60);

    assert_string_equal(entries[2].name, "middle");
    assert_string_equal(entries[2].host_id, HOST_B);
    assert_false(entries[2].complete);
    assert_true(entries[2].finished == 0);

    assert_string_equal(entries[3].name, "late");
    assert_false(entries[3].complete);
    assert_true(entries[3].started == 3000);
    assert_true(entries[3].finished == 0);
    cs_backup_entries_free(entries, n);

    /* Same start time: by name. */
    store_backup(r, "same-b", HOST_A, 500, 1, true);
    store_backup(r, "same-a", HOST_A, 500, 1, true);
    assert_int_equal(cs_repo_list_backups(r, &entries, &n, &e), 0);
    assert_int_equal(n, 6);
    assert_string_equal(entries[0].name, "same-a");
    assert_string_equal(entries[1].name, "same-b");
    for (size_t i = 1; i < n; i++)
        assert_true(entries[i - 1].started <= entries[i].started);
    cs_backup_entries_free(entries, n);
    cs_repo_free(r);
}

static void test_list_without_summary(void **state)
{
    fixture *f = *state;
    cs_repo *r = init_repo(f);
    store_backup(r, "b1", HOST_A, 1000, 4, true);
    char *summary = repo_path(f, "backups/b1/" HOST_A ".summary");
    assert_true(cs_exists(summary));
    assert_int_equal(unlink(summary), 0);

    cs_backup_entry *entries = NULL;
    size_t n = 0;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_repo_list_backups(r, &entries, &n, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(n, 1);
    assert_string_equal(entries[0].name, "b1");
    assert_string_equal(entries[0].host_id, HOST_A);
    assert_string_equal(entries[0].address, "10.0.0.1");
    assert_true(entries[0].complete);
    assert_true(entries[0].started == 1000);
    assert_true(entries[0].finished == 1010);
    assert_int_equal(entries[0].files, 4);
    assert_int_equal(entries[0].size, 1000);
    assert_int_equal(entries[0].stored, 100);
    cs_backup_entries_free(entries, n);

    /* And the started mark gone too (a manifest alone is a backup). */
    char *started = repo_path(f, "backups/b1/" HOST_A ".started");
    assert_int_equal(unlink(started), 0);
    assert_int_equal(cs_repo_list_backups(r, &entries, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_true(entries[0].complete);
    cs_backup_entries_free(entries, n);
    cs_manifest m;
    assert_int_equal(cs_repo_read_manifest(r, "b1", NULL, &m, &e), 0);
    cs_manifest_free(&m);

    free(started);
    free(summary);
    cs_repo_free(r);
}

/* ---- format 2: index, damage, scope -------------------------------------- */

static cs_backup_entry *find_entry(cs_backup_entry *entries, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(entries[i].name, name))
            return &entries[i];
    fail_msg("no entry %s", name);
    return NULL;
}

static void truncate_file(const char *path, off_t size)
{
    assert_int_equal(truncate(path, size), 0);
}

/* One damaged backup is reported as such; the others list as before. */
static void test_damage_is_reported(void **state)
{
    fixture *f = *state;
    cs_repo *r = init_repo(f);
    assert_int_equal(r->format, CS_REPO_FORMAT);
    store_backup(r, "good", HOST_A, 1000, 3, true);
    store_backup(r, "trunc", HOST_A, 2000, 3, true);
    store_backup(r, "noindex", HOST_A, 3000, 3, true);
    store_backup(r, "badindex", HOST_A, 4000, 3, true);
    store_backup(r, "running", HOST_A, 5000, 3, false);
    char *p = repo_path(f, "backups/trunc/" HOST_A ".manifest");
    truncate_file(p, 20);
    free(p);
    p = repo_path(f, "backups/noindex/" HOST_A ".index");
    assert_int_equal(unlink(p), 0);
    free(p);
    p = repo_path(f, "backups/badindex/" HOST_A ".index");
    char *text = NULL;
    size_t len = 0;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_read_file(p, 1 << 20, &text, &len, &e), 0);
    char *digit = strstr(text, "\"started_ms\":") + strlen("\"started_ms\":");
    *digit = *digit == '9' ? '8' : '9';
    write_text(p, text);
    free(text);
    free(p);
    /* Leftovers of a removal: an index alone. */
    write_text(p = repo_path(f, "backups/gone/" HOST_A ".index"), "{}");
    free(p);

    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_repo_list_backups(r, &entries, &n, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(n, 5);
    assert_true(find_entry(entries, n, "good")->complete);
    assert_null(find_entry(entries, n, "good")->damage);
    cs_backup_entry *t = find_entry(entries, n, "trunc");
    assert_false(t->complete);
    assert_non_null(t->damage);
    assert_non_null(strstr(t->damage, "truncated"));
    assert_non_null(strstr(find_entry(entries, n, "noindex")->damage, "index is missing"));
    /* list reads summaries: the damaged index is found when it is read. */
    assert_true(find_entry(entries, n, "badindex")->complete);
    assert_false(find_entry(entries, n, "running")->complete);
    assert_null(find_entry(entries, n, "running")->damage);
    cs_backup_entries_free(entries, n);

    /* References: from the manifest (no identity needed here); damaged ones
     * say why, with the references of whichever file is sound. */
    cs_backup_files *files = NULL;
    size_t nf = 0;
    assert_int_equal(cs_repo_scan_backups(r, &files, &nf, &e), 0);
    assert_int_equal(nf, 6);
    for (size_t i = 0; i < nf; i++) {
        cs_backup_info info;
        rc = cs_repo_load_backup(r, &files[i], CS_LOAD_REFS, &info, &e);
        if (!strcmp(files[i].name, "gone")) {
            assert_true(cs_backup_files_is_leftover(&files[i]));
            assert_int_equal(rc, CS_E_NOTFOUND);
            continue;
        }
        if (rc)
            fail_msg("%s: %s", files[i].name, e.msg);
        if (!strcmp(files[i].name, "trunc")) {
            assert_int_equal(info.refs, 1); /* the index still says which objects it uses */
            assert_int_equal(info.index.n_objects, 3);
        } else if (!strcmp(files[i].name, "badindex")) {
            assert_non_null(strstr(info.entry.damage, "checksum"));
            assert_int_equal(info.refs, 2);
        } else if (!strcmp(files[i].name, "good")) {
            assert_null(info.entry.damage);
            assert_int_equal(info.refs, 2);
            assert_int_equal(info.manifest.tables[0].n_files, 3);
        }
        cs_backup_info_free(&info);
    }
    cs_backup_files_free(files, nf);

    /* restore reads a manifest through its index: one that does not match is corrupt. */
    cs_manifest m;
    assert_int_equal(cs_repo_read_manifest(r, "trunc", NULL, &m, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "does not match its index"));
    assert_int_equal(cs_repo_read_manifest(r, "good", NULL, &m, &e), 0);
    cs_manifest_free(&m);
    cs_repo_free(r);
}

static void test_scope_ids(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    cs_strlist one = { NULL, 0 }, two = { NULL, 0 };
    cs_strlist_add(&one, "ks1");
    cs_strlist_add(&two, "ks2");
    cs_strlist_add(&two, "ks1");
    cs_strlist_add(&two, "ks2");
    char *keys = cs_path_join(f->dir, "state");

    /* Unencrypted: a plain hash of the sorted names, the same everywhere. */
    cs_repo *r = init_repo(f);
    cs_scope a, b, all;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&all, 0, sizeof all);
    assert_int_equal(cs_repo_scope_of(r, keys, NULL, NULL, &all, &e), 0);
    assert_true(all.recorded && all.all);
    assert_string_equal(all.id, "");
    assert_int_equal(cs_repo_scope_of(r, keys, &two, NULL, &a, &e), 0);
    assert_int_equal(a.keyspaces.n, 2); /* sorted, each once */
    assert_string_equal(a.keyspaces.items[0], "ks1");
    assert_true(cs_is_hex32(a.id));
    assert_int_equal(cs_repo_scope_of(r, keys, &one, NULL, &b, &e), 0);
    assert_string_not_equal(a.id, b.id);
    char *canon = cs_scope_canonical(&a);
    assert_string_equal(canon, "keyspaces=ks1,ks2;tables=");
    free(canon);
    char *desc = cs_scope_describe(&a);
    assert_string_equal(desc, "ks1,ks2");
    free(desc);
    char plain_id[CS_OBJECT_ID_HEX];
    memcpy(plain_id, b.id, sizeof plain_id);
    assert_false(cs_exists(keys));
    cs_repo_free(r);

    /* Encrypted: keyed with a key kept beside the state, made once. */
    age_identity *id = age_keygen();
    cs_buf pub = CS_BUF_INIT;
    assert_int_equal(age_identity_public_string(id, &pub, &e), 0);
    cs_strlist recipients = { NULL, 0 };
    cs_strlist_add(&recipients, cs_buf_str(&pub));
    cs_repo_opts opts = { &recipients };
    char *root2 = cs_path_join(f->dir, "enc");
    assert_int_equal(repo_init_at(root2, &opts, &r, &e), 0);
    cs_scope c, d;
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    assert_int_equal(cs_repo_scope_of(r, keys, &one, NULL, &c, &e), 0);
    assert_string_not_equal(c.id, plain_id); /* not guessable from the names */
    assert_int_equal(cs_repo_scope_of(r, keys, &one, NULL, &d, &e), 0);
    assert_string_equal(c.id, d.id);
    char *key_file = cs_sprintf("%s/%s/scope.key", keys, r->id);
    struct stat st;
    assert_int_equal(stat(key_file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A backup of that scope: names in the manifest only. */
    cs_manifest m;
    make_manifest(&m, "part", HOST_A, 1000, 2);
    cs_scope_free(&m.scope);
    m.scope = c;
    memset(&c, 0, sizeof c);
    assert_int_equal(cs_repo_mark_started(r, &m, &e), 0);
    assert_int_equal(cs_repo_put_manifest(r, &m, &e), 0);
    const char *plain[] = { "started", "summary", "index" };
    for (size_t i = 0; i < 3; i++) {
        char *path = cs_sprintf("%s/backups/part/%s.%s", root2, HOST_A, plain[i]);
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(cs_read_file(path, 1 << 20, &text, &len, &e), 0);
        assert_null(strstr(text, "ks1"));
        assert_non_null(strstr(text, d.id));
        free(text);
        free(path);
    }
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    assert_int_equal(cs_repo_list_backups(r, &entries, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(entries[0].scope, "partial");
    assert_string_equal(entries[0].scope_id, d.id);
    assert_null(entries[0].scope_names);
    char *group = cs_backup_entry_group(&entries[0]);
    assert_int_equal(strncmp(group, "partial:", 8), 0);
    free(group);
    cs_backup_entries_free(entries, n);
    cs_manifest_free(&m);

    write_text(key_file, "not hex\n");
    assert_int_equal(cs_repo_scope_of(r, keys, &one, NULL, &c, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "scope key"));

    cs_scope_free(&a);
    cs_scope_free(&b);
    cs_scope_free(&c);
    cs_scope_free(&d);
    cs_scope_free(&all);
    free(key_file);
    cs_repo_free(r);
    free(root2);
    cs_strlist_free(&recipients);
    cs_buf_free(&pub);
    age_identity_free(id);
    cs_strlist_free(&one);
    cs_strlist_free(&two);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_non_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_foreign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_damaged, setup, teardown),
        cmocka_unit_test(test_open_any_storage),
        cmocka_unit_test(test_object_ids),
        cmocka_unit_test(test_backup_names),
        cmocka_unit_test_setup_teardown(test_mark_started, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_manifest_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_backups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_without_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_ids, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_catalog.c - repo/catalog: sync from a repository, references, the
 * unreferenced sweep query, rotation of --sample, starting over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "repo/catalog.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo_at.h"

#define HOST_A "11111111-2222-3333-4444-555555555555"
#define HOST_B "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define TABLE_ID "0123456789abcdef0123456789abcdef"

typedef struct fixture {
    char dir[64];
    char *root, *db;
    cs_repo *repo;
    cs_catalog *cat;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-catalog-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->root = cs_path_join(f->dir, "repo");
    f->db = cs_path_join(f->dir, "catalog.db");
    cs_err e;
    if (repo_init_at(f->root, NULL, &f->repo, &e) || cs_catalog_open(f->db, f->repo, &f->cat, &e))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_catalog_close(f->cat);
    cs_repo_free(f->repo);
    int rc = cs_remove_tree(f->dir, &e);
    free(f->root);
    free(f->db);
    free(f);
    return rc;
}

/* A backup of host whose files use the given object ids (n of them). */
static void store(fixture *f, const char *name, const char *host, double started, char (*objects)[CS_OBJECT_ID_HEX],
                  size_t n, bool complete)
{
    cs_manifest m;
    memset(&m, 0, sizeof m);
    m.backup = cs_strdup(name);
    m.host_id = cs_strdup(host);
    m.address = cs_strdup("10.0.0.1");
    cs_strlist_add(&m.data_dirs, "/var/lib/cassandra/data");
    m.started = started;
    m.finished = started + 5;
    cs_mtable *t = cs_manifest_add_table(&m, "ks", "t", TABLE_ID);
    for (size_t i = 0; i < n; i++) {
        char fname[64];
        snprintf(fname, sizeof fname, "nb-%zu-big-Data.db", i + 1);
        cs_mfile *file = cs_mtable_add_file(t, fname);
        file->size = 100 + i;
        file->stored = 10 + i;
        memset(file->hash, 'a', CS_HASH_HEX - 1);
        memcpy(file->object, objects[i], CS_OBJECT_ID_HEX);
        file->is_new = true;
    }
    cs_err e;
    if (cs_repo_mark_started(f->repo, &m, &e) || (complete && cs_repo_put_manifest(f->repo, &m, &e)))
        fail_msg("storing %s: %s", name, e.msg);
    cs_manifest_free(&m);
}

static void sync_ok(fixture *f, bool refs)
{
    cs_err e;
    if (cs_catalog_sync(f->cat, f->repo, refs, &e))
        fail_msg("sync: %s", e.msg);
}

static void new_ids(char (*ids)[CS_OBJECT_ID_HEX], size_t n)
{
    for (size_t i = 0; i < n; i++)
        cs_repo_new_object_id(ids[i]);
}

/* The catalog lists what the repository lists, field by field. */
static void test_sync_matches_repository(void **state)
{
    fixture *f = *state;
    char ids[3][CS_OBJECT_ID_HEX];
    new_ids(ids, 3);
    store(f, "b1", HOST_A, 1000, ids, 3, true);
    store(f, "b1", HOST_B, 1001, ids, 2, true);
    store(f, "b2", HOST_A, 2000, ids, 1, false);
    sync_ok(f, false);
    cs_backup_entry *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    cs_err e;
    assert_int_equal(cs_repo_list_backups(f->repo, &a, &na, &e), 0);
    assert_int_equal(cs_catalog_backups(f->cat, &b, &nb, &e), 0);
    assert_int_equal(na, 3);
    assert_int_equal(nb, 3);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].name, b[i].name);
        assert_string_equal(a[i].host_id, b[i].host_id);
        assert_true(a[i].started == b[i].started);
        assert_true(a[i].finished == b[i].finished);
        assert_int_equal(a[i].files, b[i].files);
        assert_int_equal(a[i].size, b[i].size);
        assert_int_equal(a[i].stored_new, b[i].stored_new);
        assert_int_equal(a[i].complete, b[i].complete);
    }
    cs_backup_entries_free(a, na);
    cs_backup_entries_free(b, nb);
}

/* Changes in the repository reach the catalog: a backup that completes, a
 * backup whose keys are deleted. */
static void test_sync_follows_changes(void **state)
{
    fixture *f = *state;
    char ids[2][CS_OBJECT_ID_HEX];
    new_ids(ids, 2);
    store(f, "b1", HOST_A, 1000, ids, 2, false);
    sync_ok(f, true);
    cs_backup_entry *b = NULL;
    size_t n = 0;
    cs_err e;
    assert_int_equal(cs_catalog_backups(f->cat, &b, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_false(b[0].complete);
    cs_backup_entries_free(b, n);
    /* It completes: the manifest appears (written as a backup would). */
    char *key = cs_repo_backup_key("b1", HOST_A, "started");
    assert_int_equal(cs_storage_del(f->repo->st, key, &e), 0);
    free(key);
    store(f, "b1", HOST_A, 1000, ids, 2, true);
    sync_ok(f, true);
    assert_int_equal(cs_catalog_backups(f->cat, &b, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_true(b[0].complete);
    assert_int_equal(b[0].files, 2);
    cs_backup_entries_free(b, n);
    /* Deleted: gone from the catalog too. */
    static const char *const kinds[] = { "started", "summary", "manifest" };
    for (size_t i = 0; i < 3; i++) {
        key = cs_repo_backup_key("b1", HOST_A, kinds[i]);
        assert_int_equal(cs_storage_del(f->repo->st, key, &e), 0);
        free(key);
    }
    sync_ok(f, true);
    assert_int_equal(cs_catalog_backups(f->cat, &b, &n, &e), 0);
    assert_int_equal(n, 0);
    free(b);
}

static size_t unreferenced(fixture *f, int64_t cutoff, char (*out)[CS_OBJECT_ID_HEX], size_t max)
{
    int64_t rows[16];
    size_t n = 0;
    uint64_t bytes = 0;
    cs_err e;
    if (cs_catalog_unreferenced(f->cat, cutoff, 0, out, rows, max, &n, &bytes, &e))
        fail_msg("unreferenced: %s", e.msg);
    return n;
}

/* An object shared by two backups stays referenced until both are gone;
 * young objects and objects of no backup follow the cutoff. */
static void test_unreferenced(void **state)
{
    fixture *f = *state;
    char ids[4][CS_OBJECT_ID_HEX];
    new_ids(ids, 4);
    store(f, "b1", HOST_A, 1000, ids, 2, true);     /* ids 0, 1 */
    store(f, "b2", HOST_A, 2000, ids + 1, 2, true); /* ids 1, 2 */
    sync_ok(f, true);
    cs_err e;
    assert_int_equal(cs_catalog_begin(f->cat, &e), 0);
    assert_int_equal(cs_catalog_forget(f->cat, "b1", HOST_A, &e), 0);
    assert_int_equal(cs_catalog_listing_begin(f->cat, &e), 0);
    for (size_t i = 0; i < 4; i++) /* id 3: an object of a failed backup */
        assert_int_equal(cs_catalog_listing_add(f->cat, ids[i], 10, i == 3 ? 500 : 100, &e), 0);
    assert_int_equal(cs_catalog_listing_end(f->cat, &e), 0);
    char out[16][CS_OBJECT_ID_HEX];
    size_t n = unreferenced(f, 200, out, 16);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], ids[0]);
    n = unreferenced(f, 1000, out, 16);
    assert_int_equal(n, 2);
    assert_string_equal(out[1], ids[3]);
    /* A dry run rolls it all back: b1 is there again. */
    cs_catalog_rollback(f->cat);
    assert_int_equal(cs_catalog_listing_begin(f->cat, &e), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(cs_catalog_listing_add(f->cat, ids[i], 10, 100, &e), 0);
    assert_int_equal(cs_catalog_listing_end(f->cat, &e), 0);
    n = unreferenced(f, 1000, out, 16);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], ids[3]);
}

/* Without references the sweep refuses to answer. */
static void test_unreferenced_needs_refs(void **state)
{
    fixture *f = *state;
    char ids[1][CS_OBJECT_ID_HEX];
    new_ids(ids, 1);
    store(f, "b1", HOST_A, 1000, ids, 1, true);
    sync_ok(f, false);
    cs_err e;
    assert_int_equal(cs_catalog_listing_begin(f->cat, &e), 0);
    assert_int_equal(cs_catalog_listing_end(f->cat, &e), 0);
    char out[1][CS_OBJECT_ID_HEX];
    int64_t rows[1];
    size_t n = 0;
    uint64_t bytes = 0;
    assert_int_equal(cs_catalog_unreferenced(f->cat, 1000, 0, out, rows, 1, &n, &bytes, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "does not know the objects"));
}

/* How many of the objects, taken in this order, a sample of half the
 * bytes keeps: each one while the bytes before it are under the half. */
static size_t half_by_bytes(const uint64_t *stored, size_t n, uint64_t total)
{
    size_t k = 0;
    for (uint64_t before = 0; k < n && before * 2 < total; k++)
        before += stored[k];
    return k;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* --sample: a share of the stored bytes, the objects read back longest ago
 * first, so that successive runs walk through the repository. */
static void test_sample_rotates(void **state)
{
    fixture *f = *state;
    char ids[10][CS_OBJECT_ID_HEX];
    new_ids(ids, 10);
    store(f, "b1", HOST_A, 1000, ids, 10, true); /* stored: 10, 11, ... 19 bytes; 145 in all */
    sync_ok(f, true);
    /* Never read back, the objects come in the catalog's order: by id. */
    char sorted[10][CS_OBJECT_ID_HEX];
    memcpy(sorted, ids, sizeof sorted);
    qsort(sorted, 10, CS_OBJECT_ID_HEX, compare_ids);
    uint64_t order[10];
    for (size_t i = 0; i < 10; i++)
        for (size_t j = 0; j < 10; j++)
            if (!strcmp(sorted[i], ids[j]))
                order[i] = 10 + j;
    size_t first = half_by_bytes(order, 10, 145);
    /* Run 2: those not read yet, then those read in run 1 (at one time: by id). */
    uint64_t order2[20];
    memcpy(order2, order + first, (10 - first) * sizeof *order);
    memcpy(order2 + 10 - first, order, first * sizeof *order);
    const size_t want[2] = { first, half_by_bytes(order2, 10, 145) };
    assert_true(first > 1 && first < 10);
    cs_err e;
    bool seen[10] = { false };
    for (int run = 0; run < 2; run++) {
        uint64_t count = 0;
        assert_int_equal(cs_catalog_select(f->cat, NULL, 50, &count, &e), 0);
        assert_int_equal(count, want[run]);
        cs_catalog_object objs[10];
        size_t n = 0;
        uint64_t bytes = 0;
        assert_int_equal(cs_catalog_selected(f->cat, 0, objs, 10, &n, &e), 0);
        assert_int_equal(n, want[run]);
        for (size_t i = 0; i < n; i++) {
            bytes += objs[i].stored;
            for (size_t j = 0; j < 10; j++)
                if (!strcmp(objs[i].id, ids[j]))
                    seen[j] = true;
        }
        assert_true(bytes * 2 >= 145);
        assert_int_equal(cs_catalog_mark_verified(f->cat, objs, n, 5000.0 + run, &e), 0);
    }
    for (size_t j = 0; j < 10; j++)
        assert_true(seen[j]);
    uint64_t count = 0;
    assert_int_equal(cs_catalog_select(f->cat, "b1", 0, &count, &e), 0);
    assert_int_equal(count, 10);
    assert_int_equal(cs_catalog_select(f->cat, "nope", 0, &count, &e), 0);
    assert_int_equal(count, 0);
}

/* One sync of the catalog at f->db through a handle of its own, in a child
 * process: 0 when it succeeded. */
static pid_t sync_in_child(fixture *f)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    cs_catalog *c = NULL;
    cs_err e;
    int rc = cs_catalog_open(f->db, f->repo, &c, &e) || cs_catalog_sync(c, f->repo, CS_LOAD_REFS, &e);
    if (rc)
        fprintf(stderr, "child sync: %s\n", e.msg);
    cs_catalog_close(c);
    _exit(rc ? 1 : 0);
}

/* Two processes sync one catalog at once (the server's housekeeping beside a
 * task): both see new backups missing and add them; neither fails (it did:
 * "UNIQUE constraint failed: backups.name, backups.host_id") and the catalog
 * holds each backup once, with its references counted once. */
static void test_concurrent_syncs(void **state)
{
    fixture *f = *state;
    char ids[4][CS_OBJECT_ID_HEX];
    new_ids(ids, 4);
    size_t stored = 0;
    cs_catalog_close(f->cat); /* the children sync through handles of their own */
    f->cat = NULL;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 6; k++) {
            char name[32];
            snprintf(name, sizeof name, "b%02d-%d", round, k);
            store(f, name, k % 2 ? HOST_A : HOST_B, 1000 + round * 10 + k, ids, 4, true);
            stored++;
        }
        pid_t a = sync_in_child(f), b = sync_in_child(f);
        int sa = -1, sb = -1;
        assert_int_equal(waitpid(a, &sa, 0), a);
        assert_int_equal(waitpid(b, &sb, 0), b);
        assert_true(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
        assert_true(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
    }
    cs_err e;
    assert_int_equal(cs_catalog_open(f->db, f->repo, &f->cat, &e), 0);
    sync_ok(f, true);
    cs_backup_entry *b = NULL;
    size_t n = 0;
    assert_int_equal(cs_catalog_backups(f->cat, &b, &n, &e), 0);
    assert_int_equal(n, stored);
    cs_backup_entries_free(b, n);
    /* the references were counted once per backup: the objects stay
     * referenced until the last backup is forgotten, and not after */
    for (size_t i = 0; i < stored; i++) {
        char name[32];
        snprintf(name, sizeof name, "b%02zu-%zu", i / 6, i % 6);
        assert_int_equal(cs_catalog_forget(f->cat, name, i % 2 ? HOST_A : HOST_B, &e), 0);
        assert_int_equal(cs_catalog_listing_begin(f->cat, &e), 0);
        for (size_t k = 0; k < 4; k++)
            assert_int_equal(cs_catalog_listing_add(f->cat, ids[k], 10, 100, &e), 0);
        assert_int_equal(cs_catalog_listing_end(f->cat, &e), 0);
        char out[8][CS_OBJECT_ID_HEX];
        assert_int_equal(unreferenced(f, 1000, out, 8), i + 1 == stored ? 4 : 0);
    }
}

/* A catalog of another repository starts over. */
static void test_other_repository(void **state)
{
    fixture *f = *state;
    char ids[1][CS_OBJECT_ID_HEX];
    new_ids(ids, 1);
    store(f, "b1", HOST_A, 1000, ids, 1, true);
    sync_ok(f, true);
    cs_catalog_close(f->cat);
    f->cat = NULL;
    char *other_root = cs_path_join(f->dir, "other");
    cs_repo *other = NULL;
    cs_err e;
    assert_int_equal(repo_init_at(other_root, NULL, &other, &e), 0);
    cs_catalog *c = NULL;
    assert_int_equal(cs_catalog_open(f->db, other, &c, &e), 0);
    cs_backup_entry *b = NULL;
    size_t n = 7;
    assert_int_equal(cs_catalog_backups(c, &b, &n, &e), 0);
    assert_int_equal(n, 0);
    free(b);
    cs_catalog_close(c);
    cs_repo_free(other);
    free(other_root);
    assert_int_equal(cs_catalog_open(f->db, f->repo, &f->cat, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_matches_repository, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_follows_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreferenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreferenced_needs_refs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_rotates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_repository, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_syncs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

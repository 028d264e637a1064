/* test_present.c - ops/present: which objects a backup may reuse, checked in
 * the repository by one listing or by a stat each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/age.h"
#include "ops/present.h"
#include "repo/repo.h"
#include "repo_at.h"

#define OBJ_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OBJ_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define OBJ_C "cccccccccccccccccccccccccccccccc"
#define OBJ_D "dddddddddddddddddddddddddddddddd"

typedef struct fixture {
    char dir[64];
    cs_repo *repo;
} fixture;

static int open_repo(fixture *f, bool encrypted)
{
    cs_strlist rcpts = { NULL, 0 };
    if (encrypted) {
        age_identity *id = age_keygen();
        cs_buf pub = CS_BUF_INIT;
        cs_err e;
        cs_err_clear(&e);
        if (age_identity_public_string(id, &pub, &e))
            return -1;
        cs_strlist_add(&rcpts, cs_buf_str(&pub));
        cs_buf_free(&pub);
        age_identity_free(id);
    }
    cs_repo_opts opts = { &rcpts };
    char *root = cs_path_join(f->dir, encrypted ? "enc" : "repo");
    cs_err e;
    cs_err_clear(&e);
    int rc = repo_init_at(root, &opts, &f->repo, &e);
    free(root);
    cs_strlist_free(&rcpts);
    if (rc)
        fprintf(stderr, "init: %s\n", e.msg);
    return rc ? -1 : 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-present-XXXXXX");
    if (!mkdtemp(f->dir) || open_repo(f, false)) {
        free(f);
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
    free(f);
    return rc;
}

/* An object of `payload` bytes, written as a backup writes it. */
static void put_object(fixture *f, const char *id, uint64_t payload)
{
    char *key = cs_repo_object_key(id);
    char *bytes = calloc(1, payload + 1);
    assert_non_null(bytes);
    cs_sink *w = NULL;
    cs_err e;
    cs_err_clear(&e);
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

/* Failure injection: the storage's stat and list, counted. */
static int stat_calls, list_calls, stat_rc;
static const cs_storage_ops *real_ops;

static int counting_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    __atomic_add_fetch(&stat_calls, 1, __ATOMIC_SEQ_CST);
    if (stat_rc)
        return cs_err_set(e, stat_rc, "injected failure for %s", key);
    return real_ops->stat(st, key, out, e);
}

static int counting_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    list_calls++;
    return real_ops->list(st, prefix, cb, arg, e);
}

static cs_storage_ops hooked;

static void hook(fixture *f, int rc)
{
    real_ops = f->repo->st->ops;
    hooked = *real_ops;
    hooked.stat = counting_stat;
    hooked.list = counting_list;
    f->repo->st->ops = &hooked;
    stat_calls = list_calls = 0;
    stat_rc = rc;
}

static void unhook(fixture *f)
{
    f->repo->st->ops = real_ops;
}

/* A present, B missing, C cut short, D wanted twice: both ways give the
 * same answer, with one listing or with a stat per distinct object. */
static void check_both_ways(fixture *f)
{
    put_object(f, OBJ_A, 10);
    put_object(f, OBJ_C, 3);
    put_object(f, OBJ_D, 0);
    for (unsigned jobs = 1; jobs <= 64; jobs *= 64) {
        cs_present *p = cs_present_new();
        cs_present_want(p, OBJ_A, 10);
        cs_present_want(p, OBJ_B, 10);
        cs_present_want(p, OBJ_C, 12);
        cs_present_want(p, OBJ_D, 0);
        cs_present_want(p, OBJ_D, 0);
        cs_err e;
        cs_err_clear(&e);
        hook(f, 0);
        int rc = cs_present_check(p, f->repo, 0, jobs, &e);
        unhook(f);
        if (rc)
            fail_msg("check: %s", e.msg);
        cs_present_stats st;
        cs_present_get_stats(p, &st);
        assert_int_equal(st.wanted, 4);
        assert_int_equal(st.missing, 2);
        bool list = jobs == 1; /* 4 stats one at a time or one listing page */
        assert_int_equal(st.listed, list);
        assert_int_equal(list_calls, list ? 1 : 0);
        assert_int_equal(stat_calls, list ? 0 : 4);
        assert_true(cs_present_has(p, OBJ_A, 10));
        assert_false(cs_present_has(p, OBJ_B, 10));
        assert_false(cs_present_has(p, OBJ_C, 12)); /* holds 3 bytes, not 12 */
        assert_true(cs_present_has(p, OBJ_D, 0));
        assert_false(cs_present_has(p, OBJ_A, 11)); /* not wanted with that size */
        assert_false(cs_present_has(p, OBJ_C, 3));  /* not wanted with that size */
        cs_present_free(p);
    }
}

static void test_plain(void **state)
{
    check_both_ways(*state);
}

/* Sizes in an encrypted repository include age's overhead. */
static void test_encrypted(void **state)
{
    fixture *f = *state;
    cs_repo_free(f->repo);
    f->repo = NULL;
    assert_int_equal(open_repo(f, true), 0);
    assert_true(cs_repo_is_encrypted(f->repo));
    check_both_ways(f);
}

/* An error other than "missing" fails the check; nothing is present. */
static void test_stat_failure(void **state)
{
    fixture *f = *state;
    put_object(f, OBJ_A, 10);
    cs_present *p = cs_present_new();
    cs_present_want(p, OBJ_A, 10);
    cs_err e;
    cs_err_clear(&e);
    hook(f, CS_E_UNAVAIL);
    int rc = cs_present_check(p, f->repo, 100000, 4, &e);
    unhook(f);
    assert_int_equal(rc, CS_E_UNAVAIL);
    assert_non_null(strstr(e.msg, "injected failure"));
    assert_non_null(strstr(e.msg, "checking the objects to reuse"));
    assert_false(cs_present_has(p, OBJ_A, 10));
    cs_present_free(p);

    /* Nothing wanted: nothing asked. */
    p = cs_present_new();
    hook(f, CS_E_UNAVAIL);
    assert_int_equal(cs_present_check(p, f->repo, 0, 4, &e), 0);
    unhook(f);
    assert_int_equal(stat_calls + list_calls, 0);
    assert_false(cs_present_has(p, OBJ_A, 10));
    cs_present_free(p);
}

/* A listing costs a request per 1000 objects of the repository; stats,
 * --jobs at a time, a round per jobs objects wanted. */
static void test_should_list(void **state)
{
    (void)state;
    assert_false(cs_present_should_list(0, 0, 4));
    assert_false(cs_present_should_list(4, 0, 4));
    assert_true(cs_present_should_list(5, 0, 4));
    assert_false(cs_present_should_list(400, 100000, 4));
    assert_true(cs_present_should_list(401, 100000, 4));
    assert_false(cs_present_should_list(4000, 1000000, 4));
    assert_true(cs_present_should_list(2, 500, 1));
    assert_true(cs_present_should_list(2, 0, 0)); /* jobs 0 counts as 1 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat_failure, setup, teardown),
        cmocka_unit_test(test_should_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

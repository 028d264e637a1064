/* test_index.c - repo/index: the plaintext index of a backup, built from a
 * manifest, written, and parsed back with every check (it is outside
 * input). The reference for the canonical checksum is Python's
 * json.dumps(body, sort_keys=True, separators=(",", ":")) and
 * hashlib.blake2b(digest_size=32): the seed files of
 * tests/fuzz/corpus/index/ were made with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "repo/index.h"
#include "repo/manifest.h"
#include "repo/repo.h"

#define HOST "11111111-2222-3333-4444-555555555555"
#define CORPUS "tests/fuzz/corpus/index/"

static char *read_seed(const char *name, size_t *len)
{
    char *path = cs_sprintf("%s%s", CORPUS, name);
    char *text = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_read_file(path, 1 << 20, &text, len, &e))
        fail_msg("%s", e.msg);
    free(path);
    return text;
}

/* A manifest of two tables; two files share one object (an identical file). */
static void make_manifest(cs_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->backup = cs_strdup("b1");
    m->host_id = cs_strdup(HOST);
    m->address = cs_strdup("10.0.0.1");
    cs_strlist_add(&m->data_dirs, "/var/lib/cassandra/data");
    m->started = 1795305600.25;
    m->finished = 1795305610.5;
    const char *objects[] = { "ffffffffffffffffffffffffffffffff", "00000000000000000000000000000001",
                              "ffffffffffffffffffffffffffffffff" };
    cs_mtable *t = cs_manifest_add_table(m, "secret_ks", "secret_table", "0123456789abcdef0123456789abcdef");
    for (size_t i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "nb-%zu-big-Data.db", i + 1);
        cs_mfile *f = cs_mtable_add_file(t, name);
        f->size = 1000 * (i + 1);
        f->stored = i == 1 ? 77 : 99;
        memset(f->hash, 'c', CS_HASH_HEX - 1);
        snprintf(f->object, sizeof f->object, "%s", objects[i]);
        f->is_new = i == 0;
    }
    cs_strlist ks = { NULL, 0 };
    cs_strlist_add(&ks, "secret_ks");
    cs_scope_set(&m->scope, &ks, NULL);
    memset(m->scope.id, 'e', 32);
    m->scope.id[32] = '\0';
    cs_strlist_free(&ks);
}

static void test_round_trip(void **state)
{
    (void)state;
    cs_manifest m;
    make_manifest(&m);
    const char sealed[] = "the manifest as stored";
    cs_index ix;
    cs_index_of_manifest(&m, sealed, sizeof sealed, &ix);
    assert_int_equal(ix.n_objects, 2); /* one object, two files: once */
    assert_string_equal(ix.objects[0].id, "00000000000000000000000000000001");
    assert_int_equal(ix.objects[0].stored, 77);
    assert_int_equal(ix.files, 3);
    assert_int_equal(ix.size, 6000);
    assert_int_equal(ix.files_new, 1);
    assert_int_equal(ix.started_ms, 1795305600250);
    assert_false(ix.scope_all);
    assert_true(cs_index_matches_manifest(&ix, sealed, sizeof sealed));
    assert_false(cs_index_matches_manifest(&ix, sealed, sizeof sealed - 1));
    assert_false(cs_index_matches_manifest(&ix, "The manifest as stored", sizeof sealed));

    char *text = cs_index_to_json(&ix);
    /* Nothing that names a keyspace, table, file or plaintext hash. */
    assert_null(strstr(text, "secret"));
    assert_null(strstr(text, "Data.db"));
    assert_null(strstr(text, "cccccccc"));

    cs_index back;
    cs_err e;
    cs_err_clear(&e);
    if (cs_index_from_json(text, strlen(text), &back, &e))
        fail_msg("%s", e.msg);
    assert_string_equal(back.backup, "b1");
    assert_string_equal(back.host_id, HOST);
    assert_string_equal(back.address, "10.0.0.1");
    assert_int_equal(back.n_objects, 2);
    assert_string_equal(back.objects[1].id, "ffffffffffffffffffffffffffffffff");
    assert_int_equal(back.objects[1].stored, 99);
    assert_string_equal(back.scope_id, m.scope.id);
    assert_true(back.scope_recorded);
    assert_string_equal(back.manifest_hash, ix.manifest_hash);
    assert_int_equal(back.manifest_size, sizeof sealed);
    char *again = cs_index_to_json(&back);
    assert_string_equal(text, again);
    free(again);
    cs_index_free(&back);
    cs_index_free(&ix);
    free(text);
    cs_manifest_free(&m);
}

/* The checksum covers the content, not the layout: Python's documents
 * (compact or indented, keys in any order) are read. */
static void test_python_reference(void **state)
{
    (void)state;
    const char *valid[] = { "valid_full", "valid_pretty", "valid_partial_empty", "valid_scope_null" };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t len = 0;
        char *text = read_seed(valid[i], &len);
        cs_index ix;
        cs_err e;
        cs_err_clear(&e);
        if (cs_index_from_json(text, len, &ix, &e))
            fail_msg("%s: %s", valid[i], e.msg);
        cs_index_free(&ix);
        free(text);
    }
    size_t len = 0;
    char *text = read_seed("valid_full", &len);
    cs_index ix;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_index_from_json(text, len, &ix, &e), 0);
    assert_int_equal(ix.n_objects, 2);
    assert_true(ix.scope_all && ix.scope_recorded);
    /* ... and we write what Python checks. */
    char *ours = cs_index_to_json(&ix);
    json_t *a = json_loads(ours, 0, NULL), *b = json_loads(text, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(a, "blake2b")),
                        json_string_value(json_object_get(b, "blake2b")));
    json_decref(a);
    json_decref(b);
    free(ours);
    cs_index_free(&ix);
    free(text);
}

static void test_rejects(void **state)
{
    (void)state;
    const char *bad[] = { "bad_checksum", "bad_duplicate_object", "bad_format_2", "bad_name", "bad_negative",
                          "bad_partial_no_id", "bad_totals", "bad_truncated", "bad_unsorted" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = 0;
        char *text = read_seed(bad[i], &len);
        cs_index ix;
        cs_err e;
        cs_err_clear(&e);
        int rc = cs_index_from_json(text, len, &ix, &e);
        if (rc != CS_E_CORRUPT)
            fail_msg("%s: rc %d (%s)", bad[i], rc, e.msg);
        assert_non_null(strstr(e.msg, "invalid index"));
        assert_null(strchr(e.msg, '\n'));
        free(text);
    }
    /* One changed digit anywhere in the body is found by the checksum. */
    size_t len = 0;
    char *text = read_seed("valid_full", &len);
    char *p = strstr(text, "\"size\": 1234");
    assert_non_null(p);
    p[9] = '5';
    cs_index ix;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_index_from_json(text, len, &ix, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "checksum"));
    free(text);
    const char *junk[] = { "", "[]", "{}", "null", "{\"type\":\"cassette-index\",\"format\":1}" };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(cs_index_from_json(junk[i], strlen(junk[i]), &ix, &e), CS_E_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_python_reference),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

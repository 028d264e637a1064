/* test_manifest.c - repo/manifest: building, JSON round trip, validation. */
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
#include "repo/manifest.h"

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

#define HOST_ID "5b6962dd-3f90-4c93-8f61-eabfa4a803e2"
#define TABLE_ID1 "0123456789abcdef0123456789abcdef"
#define TABLE_ID2 "fedcba9876543210fedcba9876543210"
#define HASH1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HASH2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
/* A SHA-256 content hash (format 2) beside the BLAKE2b ones (untagged). */
#define HASH3 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OBJ1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
#define OBJ2 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2"
#define OBJ3 "ccccccccccccccccccccccccccccccc3"
#define OBJ4 "ddddddddddddddddddddddddddddddd4"

/* ---- building ----------------------------------------------------------- */

static cs_mfile *add_file(cs_mtable *t, const char *name, uint64_t size, int64_t mtime, unsigned dir,
                          const char *hash, const char *object, uint64_t stored, bool is_new)
{
    cs_mfile *f = cs_mtable_add_file(t, name);
    f->size = size;
    f->mtime_ns = mtime;
    f->data_dir = dir;
    snprintf(f->hash, sizeof f->hash, "%s", hash);
    memcpy(f->object, object, CS_OBJECT_ID_HEX);
    f->stored = stored;
    f->is_new = is_new;
    return f;
}

static void build(cs_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->backup = cs_strdup("20261122-013000");
    m->host_id = cs_strdup(HOST_ID);
    m->address = cs_strdup("10.0.0.7");
    m->cluster_name = cs_strdup("Test Cluster");
    m->datacenter = cs_strdup("dc1");
    m->rack = cs_strdup("rack1");
    m->release_version = cs_strdup("5.0.2");
    m->partitioner = cs_strdup("org.apache.cassandra.dht.Murmur3Partitioner");
    cs_strlist_add(&m->tokens, "-9223372036854775808");
    cs_strlist_add(&m->tokens, "0");
    cs_strlist_add(&m->data_dirs, "/var/lib/cassandra/data");
    cs_strlist_add(&m->data_dirs, "/mnt/disk2/data");
    m->commitlog_dir = cs_strdup("/var/lib/cassandra/commitlog");
    m->hints_dir = cs_strdup("/var/lib/cassandra/hints");
    m->saved_caches_dir = NULL;
    m->started = 1700000000.25;
    m->finished = 1700000100.5;
    m->schema = json_pack("[{s:s, s:s, s:s}]", "keyspace_name", "ks", "type", "table", "create_statement",
                          "CREATE TABLE ks.users (id uuid PRIMARY KEY, name text);");

    cs_mtable *t = cs_manifest_add_table(m, "ks", "users", TABLE_ID1);
    free(t->schema_cql);
    t->schema_cql = cs_strdup("CREATE TABLE ks.users (id uuid PRIMARY KEY, \"näme\" text);\n");
    add_file(t, "nb-1-big-Data.db", 1000, 1700000000123456789LL, 0, HASH1, OBJ1, 400, true);
    add_file(t, ".users_name_idx/nb-1-big-Index.db", 50, 1, 1, HASH2, OBJ2, 30, false);
    add_file(t, "nb-2-big-Data.db", 0, 0, 1, HASH3, OBJ3, 0, true);
    cs_manifest_add_table(m, "system_schema", "tables", TABLE_ID2);
}

/* ---- comparing ---------------------------------------------------------- */

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_strlist_equal(const cs_strlist *a, const cs_strlist *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_string_equal(a->items[i], b->items[i]);
}

static void assert_manifest_equal(const cs_manifest *a, const cs_manifest *b)
{
    assert_str_or_null(a->backup, b->backup);
    assert_str_or_null(a->host_id, b->host_id);
    assert_str_or_null(a->address, b->address);
    assert_str_or_null(a->cluster_name, b->cluster_name);
    assert_str_or_null(a->datacenter, b->datacenter);
    assert_str_or_null(a->rack, b->rack);
    assert_str_or_null(a->release_version, b->release_version);
    assert_str_or_null(a->partitioner, b->partitioner);
    assert_strlist_equal(&a->tokens, &b->tokens);
    assert_strlist_equal(&a->data_dirs, &b->data_dirs);
    assert_str_or_null(a->commitlog_dir, b->commitlog_dir);
    assert_str_or_null(a->hints_dir, b->hints_dir);
    assert_str_or_null(a->saved_caches_dir, b->saved_caches_dir);
    assert_true(a->started == b->started);
    assert_true(a->finished == b->finished);
    json_t *empty = json_array();
    assert_true(json_equal(a->schema ? a->schema : empty, b->schema ? b->schema : empty));
    json_decref(empty);
    assert_int_equal(a->n_tables, b->n_tables);
    for (size_t i = 0; i < a->n_tables; i++) {
        const cs_mtable *x = &a->tables[i], *y = &b->tables[i];
        assert_string_equal(x->keyspace, y->keyspace);
        assert_string_equal(x->table, y->table);
        assert_string_equal(x->id, y->id);
        assert_string_equal(x->schema_cql ? x->schema_cql : "", y->schema_cql ? y->schema_cql : "");
        assert_int_equal(x->n_files, y->n_files);
        for (size_t j = 0; j < x->n_files; j++) {
            const cs_mfile *f = &x->files[j], *g = &y->files[j];
            assert_string_equal(f->name, g->name);
            assert_int_equal(f->size, g->size);
            assert_int_equal(f->mtime_ns, g->mtime_ns);
            assert_int_equal(f->data_dir, g->data_dir);
            assert_string_equal(f->hash, g->hash);
            assert_string_equal(f->object, g->object);
            assert_int_equal(f->stored, g->stored);
            assert_int_equal(f->pack.at, g->pack.at);
            assert_int_equal(f->pack.len, g->pack.len);
            assert_int_equal(f->pack.size, g->pack.size);
            assert_string_equal(f->pack.hash, g->pack.hash);
            assert_int_equal(f->is_new, g->is_new);
        }
    }
}

/* ---- mutation helpers --------------------------------------------------- */

/* The JSON of the standard manifest, parsed, for a test to change. */
static json_t *base_json(void)
{
    cs_manifest m;
    build(&m);
    char *text = manifest_json(&m);
    cs_manifest_free(&m);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(root);
    return root;
}

static json_t *table0(json_t *root)
{
    return json_array_get(json_object_get(root, "tables"), 0);
}

static json_t *file0(json_t *root)
{
    return json_array_get(json_object_get(table0(root), "files"), 0);
}

/* Parse text and expect it to be rejected with a message containing want. */
static void expect_reject_text(const char *text, size_t len, const char *want)
{
    cs_manifest m;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_manifest_from_json(text, len, &m, &e);
    if (rc == 0) {
        cs_manifest_free(&m);
        fail_msg("manifest accepted, expected \"%s\": %.*s", want, (int)len, text);
    }
    assert_int_equal(rc, CS_E_CORRUPT);
    if (want && !strstr(e.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", e.msg, want);
    assert_non_null(strstr(e.msg, "invalid manifest") ? e.msg : strstr(e.msg, "not valid JSON"));
    assert_null(strchr(e.msg, '\n'));
    /* A failed parse leaves nothing to free, and freeing again is harmless. */
    assert_null(m.tables);
    assert_null(m.backup);
    assert_null(m.schema);
    cs_manifest_free(&m);
}

/* Dump root (consumed) and expect it to be rejected. */
static void expect_reject(json_t *root, const char *want)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(root);
    assert_non_null(text);
    expect_reject_text(text, strlen(text), want);
    free(text);
}

/* Dump root (consumed) and expect it to be accepted. */
static void expect_accept(json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    cs_manifest m;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_manifest_from_json(text, strlen(text), &m, &e);
    if (rc)
        fail_msg("rejected: %s", e.msg);
    cs_manifest_free(&m);
    free(text);
}

static void reject_file_field(const char *key, json_t *value, const char *want)
{
    json_t *root = base_json();
    json_object_set_new(file0(root), key, value);
    expect_reject(root, want);
}

static void reject_table_field(const char *key, json_t *value, const char *want)
{
    json_t *root = base_json();
    json_object_set_new(table0(root), key, value);
    expect_reject(root, want);
}

static void reject_root_field(const char *key, json_t *value, const char *want)
{
    json_t *root = base_json();
    json_object_set_new(root, key, value);
    expect_reject(root, want);
}

/* ---- tests -------------------------------------------------------------- */

static void test_build_and_find(void **state)
{
    (void)state;
    cs_manifest m;
    build(&m);
    assert_int_equal(m.n_tables, 2);
    cs_mtable *t = cs_manifest_find_table(&m, "ks", "users");
    assert_non_null(t);
    assert_ptr_equal(t, &m.tables[0]);
    assert_int_equal(t->n_files, 3);
    assert_string_equal(t->id, TABLE_ID1);
    assert_ptr_equal(cs_manifest_find_table(&m, "system_schema", "tables"), &m.tables[1]);
    assert_string_equal(m.tables[1].schema_cql, "");
    assert_null(cs_manifest_find_table(&m, "ks", "nope"));
    assert_null(cs_manifest_find_table(&m, "users", "ks"));
    assert_null(cs_manifest_find_table(&m, "system_schema", "users"));
    cs_manifest_free(&m);
    /* Free leaves a zeroed manifest; a second free is harmless. */
    assert_null(m.tables);
    assert_int_equal(m.n_tables, 0);
    cs_manifest_free(&m);
}

static void test_totals(void **state)
{
    (void)state;
    cs_manifest m;
    build(&m);
    cs_manifest_totals t;
    memset(&t, 0xff, sizeof t);
    cs_manifest_totals_of(&m, &t);
    assert_int_equal(t.files, 3);
    assert_int_equal(t.size, 1050);
    assert_int_equal(t.stored, 430);
    assert_int_equal(t.files_new, 2);
    assert_int_equal(t.size_new, 1000);
    assert_int_equal(t.stored_new, 400);

    /* More files in the second table. */
    cs_mtable *t2 = &m.tables[1];
    add_file(t2, "nb-9-big-Data.db", (uint64_t)1 << 40, 5, 0, HASH2, OBJ1, (uint64_t)1 << 39, true);
    cs_manifest_totals_of(&m, &t);
    assert_int_equal(t.files, 4);
    assert_int_equal(t.size, 1050 + ((uint64_t)1 << 40));
    assert_int_equal(t.stored, 430 + ((uint64_t)1 << 39));
    assert_int_equal(t.files_new, 3);
    assert_int_equal(t.size_new, 1000 + ((uint64_t)1 << 40));
    assert_int_equal(t.stored_new, 400 + ((uint64_t)1 << 39));
    cs_manifest_free(&m);

    cs_manifest empty;
    memset(&empty, 0, sizeof empty);
    cs_manifest_totals_of(&empty, &t);
    assert_int_equal(t.files, 0);
    assert_int_equal(t.size, 0);
    assert_int_equal(t.stored_new, 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    cs_manifest m, back;
    build(&m);
    char *text = manifest_json(&m);
    assert_non_null(text);
    assert_null(strchr(text, '\n'));
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_manifest_from_json(text, strlen(text), &back, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_manifest_equal(&m, &back);

    /* Serializing again gives the same bytes. */
    char *again = manifest_json(&back);
    assert_string_equal(text, again);

    cs_manifest_totals ta, tb;
    cs_manifest_totals_of(&m, &ta);
    cs_manifest_totals_of(&back, &tb);
    assert_memory_equal(&ta, &tb, sizeof ta);

    /* The text need not be NUL-terminated: only len bytes are read. */
    size_t len = strlen(text);
    char *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, text, len);
    cs_manifest third;
    assert_int_equal(cs_manifest_from_json(copy, len, &third, &e), 0);
    assert_manifest_equal(&m, &third);
    cs_manifest_free(&third);
    free(copy);

    free(again);
    free(text);
    cs_manifest_free(&back);
    cs_manifest_free(&m);
}

static void test_round_trip_minimal(void **state)
{
    (void)state;
    /* Only the required fields: optional strings become null, no schema. */
    cs_manifest m, back;
    memset(&m, 0, sizeof m);
    m.backup = cs_strdup("b");
    m.host_id = cs_strdup("h");
    char *text = manifest_json(&m);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_manifest_from_json(text, strlen(text), &back, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_manifest_equal(&m, &back);
    assert_null(back.address);
    assert_null(back.saved_caches_dir);
    assert_non_null(back.schema);
    assert_true(json_is_array(back.schema));
    assert_int_equal(json_array_size(back.schema), 0);
    assert_int_equal(back.n_tables, 0);
    free(text);
    cs_manifest_free(&back);
    cs_manifest_free(&m);

    /* Hand-written, with the optional keys absent altogether. */
    const char *hand = "{\"format\":1,\"backup\":\"b\",\"host_id\":\"h\",\"tables\":[]}";
    assert_int_equal(cs_manifest_from_json(hand, strlen(hand), &back, &e), 0);
    assert_string_equal(back.backup, "b");
    assert_int_equal(back.data_dirs.n, 0);
    assert_int_equal(back.tokens.n, 0);
    assert_true(back.started == 0);
    cs_manifest_free(&back);
}

static void test_reject_file_names(void **state)
{
    (void)state;
    const char *bad[] = { "../x", "/abs", "a//b", "", "..", ".", "a/../b", "./a", "a/", "a\\b", "a\nb" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        reject_file_field("name", json_string(bad[i]), "unsafe or missing file name");
    reject_file_field("name", json_integer(42), "unsafe or missing file name");
    reject_file_field("name", json_null(), "unsafe or missing file name");
    json_t *root = base_json();
    json_object_del(file0(root), "name");
    expect_reject(root, "unsafe or missing file name");

    /* A safe nested name is accepted. */
    root = base_json();
    json_object_set_new(file0(root), "name", json_string(".idx/nb-1-big-Data.db"));
    expect_accept(root);
}

static void test_reject_names(void **state)
{
    (void)state;
    const char *bad[] = { "ks-1", "../ks", "", "ks.x", "ks/x", "k s", "ks\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reject_table_field("keyspace", json_string(bad[i]), "invalid keyspace or table name");
        reject_table_field("table", json_string(bad[i]), "invalid keyspace or table name");
    }
    reject_table_field("keyspace", json_integer(1), "invalid keyspace or table name");
    reject_table_field("table", json_null(), "invalid keyspace or table name");
    json_t *root = base_json();
    json_object_del(table0(root), "keyspace");
    expect_reject(root, "invalid keyspace or table name");

    /* Identifiers with digits, capitals and underscores are fine. */
    root = base_json();
    json_object_set_new(table0(root), "keyspace", json_string("My_KS_2"));
    expect_accept(root);
}

static void test_reject_table_id(void **state)
{
    (void)state;
    const char *bad[] = { "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde",
                          "0123456789abcdef0123456789abcdef0", "0123456789abcdef0123456789abcdeg",
                          "", "01234567-89ab-cdef-0123-456789abcdef", "../../../../../../../../../../x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        reject_table_field("id", json_string(bad[i]), "invalid id");
    reject_table_field("id", json_integer(7), "invalid id");
    json_t *root = base_json();
    json_object_del(table0(root), "id");
    expect_reject(root, "invalid id");
}

static void test_reject_object_and_hash(void **state)
{
    (void)state;
    const char *bad_obj[] = { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1", "aaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
                              "../../../../../../../../etc/pass", "", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" };
    for (size_t i = 0; i < sizeof bad_obj / sizeof bad_obj[0]; i++)
        reject_file_field("object", json_string(bad_obj[i]), "bad hash or object id");
    reject_file_field("object", json_integer(1), "bad hash or object id");
    json_t *root = base_json();
    json_object_del(file0(root), "object");
    expect_reject(root, "bad hash or object id");

    char h63[64], h65[66];
    memset(h63, 'a', 63);
    h63[63] = '\0';
    memset(h65, 'a', 65);
    h65[65] = '\0';
    reject_file_field("hash", json_string(h63), "bad hash or object id");
    reject_file_field("hash", json_string(h65), "bad hash or object id");
    reject_file_field("hash", json_string(""), "bad hash or object id");
    reject_file_field("hash", json_string("00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff"),
                      "bad hash or object id");
    reject_file_field("hash", json_null(), "bad hash or object id");
    root = base_json();
    json_object_del(file0(root), "hash");
    expect_reject(root, "bad hash or object id");
    /* The message says which file. */
    reject_file_field("hash", json_string(h63), "table ks.users file nb-1-big-Data.db");

    /* The tagged form: only "sha256:" and exactly 64 lowercase hex. */
    const char *bad_tagged[] = {
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",   /* 63 */
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", /* 65 */
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "blake2b:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:", ":0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof bad_tagged / sizeof bad_tagged[0]; i++)
        reject_file_field("hash", json_string(bad_tagged[i]), "bad hash or object id");
}

/* The fuzzer's seeds of hash forms and formats: valid ones parse, bad ones do not. */
static void test_corpus_hash_seeds(void **state)
{
    (void)state;
    static const struct { const char *name; bool ok; } seeds[] = {
        { "valid_full", true }, { "valid_format2_mixed_hashes", true }, { "bad_format1_sha256_hash", false },
        { "bad_hash_unknown_tag", false }, { "bad_hash_len", false }, { "bad_format_4", false }, { "valid_format3_pack", true },
        { "bad_pack_overlap", false },
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char *path = cs_sprintf("tests/fuzz/corpus/manifest/%s", seeds[i].name);
        char *text = NULL;
        size_t len = 0;
        cs_err e;
        cs_err_clear(&e);
        if (cs_read_file(path, 1 << 20, &text, &len, &e))
            fail_msg("%s", e.msg);
        cs_manifest m;
        int rc = cs_manifest_from_json(text, len, &m, &e);
        if ((rc == 0) != seeds[i].ok)
            fail_msg("%s: rc %d (%s)", seeds[i].name, rc, e.msg);
        if (!rc)
            cs_manifest_free(&m);
        free(text);
        free(path);
    }
}

static void test_hash_forms_by_format(void **state)
{
    (void)state;
    /* Formats 3 and 2 hold both kinds (base_json has both); format 1 only BLAKE2b. */
    json_t *root = base_json();
    assert_int_equal(json_integer_value(json_object_get(root, "format")), 3);
    expect_accept(root);
    root = base_json();
    json_object_set_new(root, "format", json_integer(2));
    expect_accept(root);
    root = base_json();
    json_object_set_new(root, "format", json_integer(1));
    expect_reject(root, "bad hash or object id"); /* its third file is tagged */
    root = base_json();
    json_object_set_new(root, "format", json_integer(1));
    json_t *files = json_object_get(table0(root), "files");
    json_object_set_new(json_array_get(files, 2), "hash", json_string(HASH1));
    expect_accept(root); /* what an older cassette wrote */

    /* Each hash reads back as written, whatever its kind. */
    cs_manifest m, back;
    build(&m);
    char *text = manifest_json(&m);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_manifest_from_json(text, strlen(text), &back, &e), 0);
    assert_string_equal(back.tables[0].files[0].hash, HASH1);
    assert_string_equal(back.tables[0].files[2].hash, HASH3);
    free(text);
    cs_manifest_free(&back);
    cs_manifest_free(&m);
}

static void test_reject_numbers(void **state)
{
    (void)state;
    /* data_dir must index the manifest's data directories (two here). */
    reject_file_field("data_dir", json_integer(2), "\"data_dir\" is missing or out of range");
    reject_file_field("data_dir", json_integer(1000), "\"data_dir\"");
    reject_file_field("data_dir", json_integer(-1), "\"data_dir\"");
    reject_file_field("data_dir", json_string("0"), "\"data_dir\"");
    reject_file_field("data_dir", json_real(1.0), "\"data_dir\"");
    json_t *root = base_json();
    json_object_del(file0(root), "data_dir");
    expect_reject(root, "\"data_dir\"");

    /* No data directories at all: no index is in range, not even 0. */
    for (int absent = 0; absent < 2; absent++) {
        root = base_json();
        if (absent)
            json_object_del(root, "data_dirs");
        else
            json_object_set_new(root, "data_dirs", json_array());
        json_t *files = json_object_get(table0(root), "files");
        size_t i;
        json_t *jf;
        json_array_foreach(files, i, jf)
            json_object_set_new(jf, "data_dir", json_integer(0));
        expect_reject(root, "data_dir");
    }
    /* ... but a manifest without data directories and without files is fine. */
    root = base_json();
    json_object_set_new(root, "data_dirs", json_array());
    json_object_set_new(table0(root), "files", json_array());
    expect_accept(root);

    reject_file_field("size", json_integer(-1), "\"size\"");
    reject_file_field("size", json_string("10"), "\"size\"");
    reject_file_field("size", json_real(10.5), "\"size\"");
    reject_file_field("mtime_ns", json_integer(-5), "\"mtime_ns\"");
    reject_file_field("stored", json_null(), "\"stored\"");
    root = base_json();
    json_object_del(file0(root), "size");
    expect_reject(root, "\"size\"");

    /* The largest allowed size. */
    root = base_json();
    json_object_set_new(file0(root), "size", json_integer(INT64_MAX));
    expect_accept(root);
}

static void test_reject_duplicate_table(void **state)
{
    (void)state;
    json_t *root = base_json();
    json_t *tables = json_object_get(root, "tables");
    json_array_append_new(tables, json_deep_copy(table0(root)));
    expect_reject(root, "table ks.users is listed twice");

    /* Same name, another id: still the same table. */
    root = base_json();
    tables = json_object_get(root, "tables");
    json_t *copy = json_deep_copy(table0(root));
    json_object_set_new(copy, "id", json_string(TABLE_ID2));
    json_array_append_new(tables, copy);
    expect_reject(root, "listed twice");

    /* Same table name in another keyspace is fine. */
    root = base_json();
    tables = json_object_get(root, "tables");
    copy = json_deep_copy(table0(root));
    json_object_set_new(copy, "keyspace", json_string("ks2"));
    json_array_append_new(tables, copy);
    expect_accept(root);
}

static void test_reject_format_and_root(void **state)
{
    (void)state;
    reject_root_field("format", json_integer(4), "unsupported manifest format");
    reject_root_field("format", json_integer(0), "unsupported manifest format");
    reject_root_field("format", json_string("1"), "unsupported manifest format");
    reject_root_field("format", json_real(1.0), "unsupported manifest format");
    json_t *root = base_json();
    json_object_del(root, "format");
    expect_reject(root, "unsupported manifest format");

    const char *arrays[] = { "[]", "[{\"format\":1}]" };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        expect_reject_text(arrays[i], strlen(arrays[i]), "not a JSON object");
    /* Bare scalars do not even parse as a JSON document. */
    const char *scalars[] = { "\"manifest\"", "42", "null", "true" };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        expect_reject_text(scalars[i], strlen(scalars[i]), NULL);

    reject_root_field("backup", json_integer(1), "\"backup\" is not a string");
    reject_root_field("host_id", json_null(), "missing \"host_id\"");
    reject_root_field("address", json_true(), "\"address\" is not a string");
    reject_root_field("tables", json_object(), "no table list");
    reject_root_field("tokens", json_pack("[s, i]", "1", 2), "\"tokens\" holds a non-string");
    reject_root_field("data_dirs", json_string("/d"), "\"data_dirs\" is not a list");
    reject_root_field("schema", json_object(), "\"schema\" is not a list");
    root = base_json();
    json_object_del(root, "backup");
    expect_reject(root, "missing \"backup\"");
    root = base_json();
    json_object_del(root, "tables");
    expect_reject(root, "no table list");

    root = base_json();
    json_array_append_new(json_object_get(root, "tables"), json_string("t"));
    expect_reject(root, "a table entry is not an object");
    reject_table_field("files", json_null(), "has no file list");
    reject_table_field("files", json_pack("[i]", 1), "a file entry is not an object");
}

/* Two files of one pack in the second table: nb-3's Index.db and
 * Statistics.db, frames [0, 40) and [40, 100) of a 100-byte stream. */
static void add_pack(cs_manifest *m)
{
    cs_mtable *t = &m->tables[1];
    add_file(t, "nb-3-big-Index.db", 70, 3, 0, HASH1, OBJ4, 100, true)->pack = (cs_pack_ref){ 0, 40, 160, HASH2 };
    add_file(t, "nb-3-big-Statistics.db", 90, 3, 0, HASH3, OBJ4, 100, true)->pack = (cs_pack_ref){ 40, 60, 160, HASH2 };
}

static json_t *packed_json(void)
{
    cs_manifest m;
    build(&m);
    add_pack(&m);
    char *text = manifest_json(&m);
    cs_manifest_free(&m);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(root);
    return root;
}

static json_t *pack_of(json_t *root, size_t file)
{
    return json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(root, "tables"), 1), "files"),
                                          file),
                           "pack");
}

static void test_packs(void **state)
{
    (void)state;
    cs_manifest m, back;
    build(&m);
    add_pack(&m);
    char *text = manifest_json(&m);
    cs_err e;
    cs_err_clear(&e);
    if (cs_manifest_from_json(text, strlen(text), &back, &e))
        fail_msg("%s", e.msg);
    assert_manifest_equal(&m, &back);
    assert_true(cs_mfile_packed(&back.tables[1].files[1]));
    assert_false(cs_mfile_packed(&back.tables[0].files[0]));
    /* Totals count each member's own frame, not the pack once per member. */
    cs_manifest_totals t;
    cs_manifest_totals_of(&back, &t);
    assert_int_equal(t.files, 5);
    assert_int_equal(t.stored, 430 + 100);
    assert_int_equal(t.stored_new, 400 + 100);
    cs_manifest_free(&back);
    cs_manifest_free(&m);
    free(text);

    /* A pack reference in an older format, or malformed, or out of its object. */
    json_t *root = packed_json();
    json_object_set_new(root, "format", json_integer(2));
    expect_reject(root, "a pack reference in a manifest of format 2");
    const char *bad[] = {
        "[0, 40, 160]", "[0, 0, 160, \"" HASH2 "\"]", "[-1, 40, 160, \"" HASH2 "\"]",
        "[0, 101, 160, \"" HASH2 "\"]", "[90, 20, 160, \"" HASH2 "\"]", "[0, 40, 60, \"" HASH2 "\"]",
        "[0, 40, 160, \"sha256:00\"]", "[0, 40, 160, 7]", "{\"at\": 0}", "[0, 40, 160.5, \"" HASH2 "\"]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        root = packed_json();
        json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(json_array_get(json_object_get(json_array_get(json_object_get(root, "tables"), 1), "files"), 0),
                            "pack", v);
        expect_reject(root, "bad pack reference");
    }
    /* The members of one pack must agree, and not overlap. */
    root = packed_json();
    json_array_set_new(pack_of(root, 1), 0, json_integer(30));
    expect_reject(root, "disagree about their object");
    root = packed_json();
    json_array_set_new(pack_of(root, 1), 2, json_integer(161));
    expect_reject(root, "disagree about their object");
    root = packed_json();
    json_array_set_new(pack_of(root, 1), 3, json_string(HASH3));
    expect_reject(root, "disagree about their object");
    root = packed_json();
    json_object_del(json_array_get(json_object_get(json_array_get(json_object_get(root, "tables"), 1), "files"), 1),
                    "pack");
    expect_reject(root, "disagree about their object");
    /* One frame may serve two files of the same content. */
    root = packed_json();
    json_array_set_new(pack_of(root, 1), 0, json_integer(0));
    json_array_set_new(pack_of(root, 1), 1, json_integer(40));
    expect_accept(root);
}

static void test_reject_relative_data_dir(void **state)
{
    (void)state;
    reject_root_field("data_dirs", json_pack("[s, s]", "/ok", "relative/dir"),
                      "data directory \"relative/dir\" is not absolute");
    reject_root_field("data_dirs", json_pack("[s]", ""), "is not absolute");
    reject_root_field("data_dirs", json_pack("[s, s]", "/ok", "./data"), "is not absolute");
}

static void test_reject_bad_json(void **state)
{
    (void)state;
    json_t *root = base_json();
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t len = strlen(text);

    /* Duplicate keys, at the root and deeper. */
    assert_int_equal(text[0], '{');
    char *dup = cs_sprintf("{\"backup\":\"other\",%s", text + 1);
    expect_reject_text(dup, strlen(dup), "not valid JSON");
    free(dup);
    char *at = strstr(text, "\"hash\":");
    assert_non_null(at);
    dup = cs_sprintf("%.*s\"hash\":\"%s\",%s", (int)(at - text), text, HASH2, at);
    expect_reject_text(dup, strlen(dup), "not valid JSON");
    free(dup);

    /* Every truncation of a valid manifest is rejected. */
    for (size_t n = 0; n < len; n++)
        expect_reject_text(text, n, NULL);

    /* Trailing garbage, an embedded NUL, a NUL escape. */
    char *trail = cs_sprintf("%s}", text);
    expect_reject_text(trail, strlen(trail), "not valid JSON");
    free(trail);
    char *nul = cs_strdup(text);
    nul[len / 2] = '\0';
    expect_reject_text(nul, len, "not valid JSON");
    free(nul);
    const char *esc = "{\"format\":1,\"backup\":\"a\\u0000b\",\"host_id\":\"h\",\"tables\":[]}";
    expect_reject_text(esc, strlen(esc), "not valid JSON");
    const char *bad_utf8 = "{\"format\":1,\"backup\":\"\xff\",\"host_id\":\"h\",\"tables\":[]}";
    expect_reject_text(bad_utf8, strlen(bad_utf8), "not valid JSON");
    expect_reject_text("", 0, "not valid JSON");
    free(text);
}

static void test_invalid_utf8_is_an_error(void **state)
{
    (void)state;
    const char *bad[] = { "caf\xe9", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok\xe2\x82" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_manifest m;
        build(&m);
        free(m.data_dirs.items[0]);
        m.data_dirs.items[0] = strdup(bad[i]);
        char *text = NULL;
        cs_err e;
        cs_err_clear(&e);
        assert_int_equal(cs_manifest_to_json(&m, &text, &e), CS_E_INVAL);
        assert_null(text);
        assert_non_null(strstr(e.msg, "UTF-8"));
        cs_manifest_free(&m);
    }
    cs_manifest m;
    build(&m);
    free(m.tables[0].schema_cql);
    m.tables[0].schema_cql = strdup("-- caf\xc3\xa9 \xf0\x9f\x98\x80");
    char *text = manifest_json(&m);
    free(text);
    cs_manifest_free(&m);
}

static void test_hex32(void **state)
{
    (void)state;
    assert_true(cs_is_hex32("0123456789abcdef0123456789abcdef"));
    assert_false(cs_is_hex32("0123456789abcdef0123456789abcdeF"));
    assert_false(cs_is_hex32("0123456789abcdef0123456789abcde"));
    assert_false(cs_is_hex32("0123456789abcdef0123456789abcdef0"));
    assert_false(cs_is_hex32(""));
    assert_false(cs_is_hex32(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_find),
        cmocka_unit_test(test_totals),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_reject_file_names),
        cmocka_unit_test(test_reject_names),
        cmocka_unit_test(test_reject_table_id),
        cmocka_unit_test(test_reject_object_and_hash),
        cmocka_unit_test(test_hash_forms_by_format),
        cmocka_unit_test(test_corpus_hash_seeds),
        cmocka_unit_test(test_reject_numbers),
        cmocka_unit_test(test_reject_duplicate_table),
        cmocka_unit_test(test_reject_format_and_root),
        cmocka_unit_test(test_reject_relative_data_dir),
        cmocka_unit_test(test_packs),
        cmocka_unit_test(test_reject_bad_json),
        cmocka_unit_test(test_hex32),
        cmocka_unit_test(test_invalid_utf8_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_optable.c - ops/optable and ops/request: requests from JSON (what an
 * agent or a server will send), their checks and errors, the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "cluster/cluster.h"
#include "ops/ops.h"
#include "ops/optable.h"

/* Parse text as a request of op; returns the code, the rendered error
 * (field names bare, as a JSON front end says them) in msg. */
static int from_json(const char *op_name, const char *text, void **req_out, char *msg, size_t cap, cs_err *e)
{
    const cs_op_def *op = cs_op_find(op_name);
    assert_non_null(op);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    cs_err_clear(e);
    void *req = cs_op_request_new(op, e);
    assert_non_null(req);
    int rc = cs_op_request_from_json(op, j, req, e);
    json_decref(j);
    cs_err_render(e, NULL, NULL, msg, cap);
    if (req_out)
        *req_out = req;
    else
        cs_op_request_free(op, req);
    return rc;
}

static void test_backup_request(void **state)
{
    (void)state;
    cs_err e;
    char msg[CS_ERR_MSG_MAX];
    void *r = NULL;
    assert_int_equal(from_json("backup",
                               "{\"repo\": \"s3://b/p\", \"name\": \"nightly-1\", \"keyspaces\": [\"a\", \"b\"],"
                               " \"jobs\": 8, \"lock_wait\": \"2m\", \"lock_stale\": 600}",
                               &r, msg, sizeof msg, &e),
                     0);
    cs_backup_req *req = r;
    assert_string_equal(req->repo, "s3://b/p");
    assert_string_equal(req->name, "nightly-1");
    assert_int_equal(req->keyspaces.n, 2);
    assert_string_equal(req->keyspaces.items[1], "b");
    assert_int_equal(req->jobs, 8);
    assert_int_equal(req->zstd_level, 1); /* default */
    assert_true(req->lock_wait == 120 && req->lock_stale == 600);
    assert_false(req->init);

    /* Out and back in: the same request. */
    const cs_op_def *op = cs_op_find("backup");
    json_t *out = cs_op_request_to_json(op, req);
    cs_backup_req *again = cs_op_request_new(op, &e);
    assert_int_equal(cs_op_request_from_json(op, out, again, &e), 0);
    json_t *out2 = cs_op_request_to_json(op, again);
    assert_true(json_equal(out, out2));
    json_decref(out);
    json_decref(out2);
    cs_op_request_free(op, again);
    cs_op_request_free(op, req);
}

/* Each bad request: one line naming the field, and e.field. */
static void test_bad_requests(void **state)
{
    (void)state;
    static const struct {
        const char *op, *json, *field, *msg;
        int code;
    } cases[] = {
        { "backup", "{\"repo\": \"/r\", \"jbos\": 4}", "jbos", "unknown field \"jbos\" in a backup request",
          CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"jobs\": \"four\"}", "jobs", "jobs wants a whole number, not a string",
          CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"jobs\": 0}", "jobs", "jobs must be between 1 and 64", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"zstd_level\": 20}", "zstd_level",
          "zstd_level wants a zstd level between 1 and 19, not 20", CS_E_USAGE },
        { "backup", "{\"jobs\": 2}", "repo", "backup needs repo", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"name\": \"a b\"}", "name",
          "invalid backup name \"a b\" (letters, digits, '.', '_' and '-')", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"keyspaces\": \"ks\"}", "keyspaces",
          "keyspaces wants a list of strings, not a string", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"keyspaces\": [\"ok\", 3]}", "keyspaces",
          "keyspaces wants a list of strings, not 3", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"keyspaces\": [\"k!\"]}", "keyspaces", "invalid keyspace name \"k!\"",
          CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"init\": true}", "", /* a check across fields */
          "a new repository needs recipients age1... (make a key with cassette key generate), or no_encryption "
          "to store plaintext on purpose",
          CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"lock_stale\": 1}", "lock_stale", "lock_stale must be at least 4s",
          CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"lock_wait\": \"soon\"}", "lock_wait",
          "lock_wait: invalid duration \"soon\" (e.g. 36h, 7d, 2w, 1d12h)", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"lock_wait\": -5}", "lock_wait",
          "lock_wait wants a duration such as 10m (or seconds), not -5", CS_E_USAGE },
        { "backup", "{\"repo\": \"/r\", \"jobs\": 2.5}", "jobs", "jobs wants a whole number, not 2.5", CS_E_USAGE },
        { "backup", "[1]", "", "a backup request is a JSON object, not an array", CS_E_USAGE },
        { "restore", "{\"repo\": \"/r\", \"backup\": \"b\", \"mode\": \"sideways\"}", "mode",
          "mode must be import or replace, not \"sideways\"", CS_E_USAGE },
        { "restore", "{\"repo\": \"/r\"}", "backup", "restore needs backup NAME (see cassette list)", CS_E_USAGE },
        { "restore", "{\"repo\": \"/r\", \"backup\": \"b\", \"fail_fast\": \"yes\"}", "fail_fast",
          "fail_fast wants true or false, not a string", CS_E_USAGE },
        { "verify", "{\"repo\": \"/r\", \"deep\": true, \"sample\": 0}", "sample",
          "sample wants a percentage above 0 and at most 100, not \"0\"", CS_E_USAGE },
        { "verify", "{\"repo\": \"/r\", \"sample\": 10}", "sample",
          "sample needs deep (a fast verify checks every object already)", CS_E_USAGE },
        { "purge", "{\"repo\": \"/r\", \"keep_last\": -1}", "keep_last", "keep_last must be between 0 and 1000000",
          CS_E_USAGE },
        { "cleanup", "{\"dry_run\": true}", "aside",
          "cleanup needs aside (what replace restores moved aside; see cassette status)", CS_E_USAGE },
        { "migrate", "{\"dir\": \"/m\", \"keyspaces\": [\"a\", \"b\"]}", "keyspaces",
          "migrate needs one keyspaces (where the tracking table lives)", CS_E_USAGE },
        { "snapshot clear", "{}", "tag",
          "snapshot clear needs tag (one snapshot), older_than (every snapshot of prefix older than that) or "
          "keyspaces (every snapshot of prefix there)",
          CS_E_USAGE },
        { "snapshot clear", "{\"tag\": \"t1\", \"older_than\": \"1d\"}", "older_than",
          "tag and older_than exclude each other: clear one snapshot, or every old one", CS_E_USAGE },
        { "snapshot clear", "{\"older_than\": 60, \"prefix\": \"../x\"}", "prefix",
          "invalid snapshot tag prefix \"../x\" in prefix (letters, digits, '.', '_' and '-')", CS_E_USAGE },
        { "snapshot clear", "{\"older_than\": \"soon\"}", "older_than",
          "older_than: invalid duration \"soon\" (e.g. 36h, 7d, 2w, 1d12h)", CS_E_USAGE },
        { "cluster snapshot-cleanup", "{\"contact\": \"10.0.0.1\"}", "older_than",
          "cluster snapshot-cleanup needs older_than (e.g. 2d: every snapshot of prefix older than that)",
          CS_E_USAGE },
        { "cluster snapshot-cleanup", "{\"older_than\": 60, \"tag\": \"t\"}", "tag",
          "unknown field \"tag\" in a cluster snapshot-cleanup request", CS_E_USAGE },
        { "cluster drill", "{\"repo\": \"/r\", \"sample_rows\": 20000}", "sample_rows",
          "sample_rows must be between 0 and 10000", CS_E_USAGE },
        { "cluster drill", "{\"repo\": \"/r\", \"backup\": \"../b\"}", "backup",
          "invalid backup name \"../b\" (letters, digits, '.', '_' and '-')", CS_E_USAGE },
        { "cluster drill", "{\"repo\": \"/r\", \"keyspace_map\": []}", "keyspace_map",
          "unknown field \"keyspace_map\" in a cluster drill request", CS_E_USAGE },
        { "delete", "{\"repo\": \"/r\", \"backup\": \"../b1\"}", "backup",
          "invalid backup name \"../b1\" (letters, digits, '.', '_' and '-')", CS_E_USAGE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_err e;
        char msg[CS_ERR_MSG_MAX];
        int rc = from_json(cases[i].op, cases[i].json, NULL, msg, sizeof msg, &e);
        if (rc != cases[i].code || strcmp(msg, cases[i].msg) || strcmp(e.field, cases[i].field))
            fail_msg("%s %s: got %d \"%s\" (field \"%s\"), want %d \"%s\" (field \"%s\")", cases[i].op,
                     cases[i].json, rc, msg, e.field, cases[i].code, cases[i].msg, cases[i].field);
        assert_null(strchr(msg, '\n'));
    }
}

/* snapshot clear: a tag, or older_than with the prefix's default; the
 * cluster operation the same with the target fields. */
static void test_snapshot_cleanup_requests(void **state)
{
    (void)state;
    cs_err e;
    char msg[CS_ERR_MSG_MAX];
    void *r = NULL;
    assert_int_equal(from_json("snapshot clear", "{\"tag\": \"t-1\"}", &r, msg, sizeof msg, &e), 0);
    assert_string_equal(((cs_snapshot_req *)r)->tag, "t-1");
    assert_true(((cs_snapshot_req *)r)->older_than == 0);
    cs_op_request_free(cs_op_find("snapshot clear"), r);
    assert_int_equal(from_json("snapshot clear", "{\"older_than\": \"2d\"}", &r, msg, sizeof msg, &e), 0);
    assert_null(((cs_snapshot_req *)r)->tag);
    assert_true(((cs_snapshot_req *)r)->older_than == 2 * 86400);
    assert_string_equal(((cs_snapshot_req *)r)->prefix, "cassette-");
    cs_op_request_free(cs_op_find("snapshot clear"), r);
    assert_int_equal(from_json("snapshot clear", "{\"older_than\": 1.5, \"prefix\": \"\"}", &r, msg, sizeof msg,
                               &e),
                     0);
    assert_string_equal(((cs_snapshot_req *)r)->prefix, ""); /* every tag, on purpose */
    cs_op_request_free(cs_op_find("snapshot clear"), r);
    const cs_op_def *op = cs_op_find_command("cluster", "snapshot-cleanup");
    assert_non_null(op);
    assert_string_equal(op->name, "cluster snapshot-cleanup");
    assert_int_equal(from_json("cluster snapshot-cleanup",
                               "{\"agents\": [\"https://a:7620\"], \"older_than\": 3600, \"prefix\": \"nightly-\"}",
                               &r, msg, sizeof msg, &e),
                     0);
    cs_cluster_snapshot_cleanup_req *c = r;
    assert_int_equal(c->agents.n, 1);
    assert_true(c->older_than == 3600);
    assert_string_equal(c->prefix, "nightly-");
    assert_string_equal(c->agent_template, "https://{rpc_address}:7620");
    cs_op_request_free(op, r);
}

/* Optional numbers: null, absent and given. */
static void test_optional_number(void **state)
{
    (void)state;
    cs_err e;
    char msg[CS_ERR_MSG_MAX];
    void *r = NULL;
    assert_int_equal(from_json("verify", "{\"repo\": \"/r\", \"sample\": null}", &r, msg, sizeof msg, &e), 0);
    assert_true(isnan(((cs_verify_req *)r)->sample));
    json_t *out = cs_op_request_to_json(cs_op_find("verify"), r);
    assert_true(json_is_null(json_object_get(out, "sample")));
    json_decref(out);
    cs_op_request_free(cs_op_find("verify"), r);
    assert_int_equal(from_json("verify", "{\"repo\": \"/r\", \"deep\": true, \"sample\": 2.5}", &r, msg, sizeof msg,
                               &e),
                     0);
    assert_true(((cs_verify_req *)r)->sample == 2.5);
    cs_op_request_free(cs_op_find("verify"), r);
}

/* The table: names unique, commands known, sub-commands found. */
static void test_table(void **state)
{
    (void)state;
    size_t n;
    const cs_op_def *ops = cs_ops_all(&n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(cs_op_find(ops[i].name), &ops[i]);
        assert_ptr_equal(cs_op_find_command(ops[i].command, ops[i].sub), &ops[i]);
        assert_non_null(ops[i].run);
        assert_non_null(ops[i].result_json);
        assert_non_null(ops[i].result_free);
        /* Every request can be made with its defaults and freed. */
        cs_err e;
        void *req = cs_op_request_new(&ops[i], &e);
        assert_non_null(req);
        cs_op_request_free(&ops[i], req);
    }
    assert_true(cs_command_has_subs("key"));
    assert_false(cs_command_has_subs("backup"));
    assert_null(cs_op_find_command("key", NULL));
    assert_non_null(cs_op_find_command("migrate", NULL));
    assert_non_null(cs_op_find_command("migrate", "status"));
    assert_string_equal(cs_op_field_default("jobs"), "4");
    assert_string_equal(cs_op_field_default("mode"), "import");
    assert_null(cs_op_field_default("repo"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_request),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_optional_number),
        cmocka_unit_test(test_snapshot_cleanup_requests),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

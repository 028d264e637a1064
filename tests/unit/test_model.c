/* test_model.c - server/model: ids, the cluster and task documents'
 * checks and defaults, the kinds' mapping onto operations (target and
 * repo from the cluster, params that may not set them, cluster_consistent
 * backups, restores), new runs, final states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "server/model.h"

static json_t *cluster(void)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "id", "c1", "contact", "127.0.0.4:9042", "repo", "s3://b/c1",
                     "agent_template", "http://{rpc_address}:7620");
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(cs_model_id_ok("c1"));
    assert_true(cs_model_id_ok("a.b_c-d"));
    assert_false(cs_model_id_ok(""));
    assert_false(cs_model_id_ok(NULL));
    assert_false(cs_model_id_ok(".x"));
    assert_false(cs_model_id_ok("-x"));
    assert_false(cs_model_id_ok("a/b"));
    assert_false(cs_model_id_ok("a b"));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    assert_false(cs_model_id_ok(long_id));
    long_id[64] = '\0';
    assert_true(cs_model_id_ok(long_id));
    char *id = cs_model_new_id("r"), *id2 = cs_model_new_id("r");
    assert_true(cs_model_id_ok(id));
    assert_int_equal(strlen(id), strlen("r-20261206T101500Z-1a2b3c"));
    assert_memory_equal(id, "r-", 2);
    assert_int_equal(id[10], 'T');
    assert_int_equal(id[17], 'Z');
    assert_string_not_equal(id, id2);
    free(id);
    free(id2);
}

static void test_cluster_check(void **state)
{
    (void)state;
    cs_err e;
    json_t *c = json_pack("{s:s, s:s}", "contact", "h:9042", "repo", "s3://b/x");
    assert_int_equal(cs_model_cluster_check(c, true, 1000, &e), 0);
    assert_true(cs_model_id_ok(json_string_value(json_object_get(c, "id"))));
    assert_int_equal(json_number_value(json_object_get(c, "created")), 1000);
    assert_int_equal(json_number_value(json_object_get(c, "updated")), 1000);
    /* an update keeps created, moves updated, lets discovered fields stay */
    json_object_set_new(c, "name", json_string("Test Cluster"));
    json_object_set_new(c, "nodes", json_array());
    assert_int_equal(cs_model_cluster_check(c, false, 2000, &e), 0);
    assert_int_equal(json_number_value(json_object_get(c, "created")), 1000);
    assert_int_equal(json_number_value(json_object_get(c, "updated")), 2000);
    json_decref(c);

    struct {
        const char *json, *field;
    } bad[] = {
        { "{\"contact\": \"h\", \"repo\": \"s3://b\", \"colour\": 1}", "colour" },
        { "{\"contact\": \"h\"}", "repo" },
        { "{\"repo\": \"s3://b\"}", "contact" },
        { "{\"repo\": \"s3://b\", \"agents\": []}", "contact" },
        { "{\"repo\": \"s3://b\", \"agents\": [\"ftp://x\"]}", "agents" },
        { "{\"repo\": \"s3://b\", \"agents\": [3]}", "agents" },
        { "{\"repo\": \"s3://b\", \"contact\": 7}", "contact" },
        { "{\"repo\": \"s3://b\", \"contact\": \"h\", \"id\": \"a/b\"}", "id" },
        { "{\"repo\": \"s3://b\", \"contact\": \"h\", \"name\": \"x\"}", "name" },
        { "{\"repo\": \"s3://b\", \"contact\": \"h\", \"labels\": {\"a\": 1}}", "labels" },
        { "{\"repo\": \"s3://b\", \"contact\": \"h\", \"agent_template\": \"x\"}", "agent_template" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *d = json_loads(bad[i].json, 0, NULL);
        assert_non_null(d);
        assert_int_equal(cs_model_cluster_check(d, true, 1, &e), CS_E_INVAL);
        assert_string_equal(e.field, bad[i].field);
        json_decref(d);
    }
    json_t *agents_only = json_pack("{s:s, s:[s]}", "repo", "s3://b", "agents", "https://10.0.0.1:7620");
    assert_int_equal(cs_model_cluster_check(agents_only, true, 1, &e), 0);
    json_decref(agents_only);
}

static void test_task_check(void **state)
{
    (void)state;
    cs_err e;
    json_t *c = cluster();
    json_t *t = json_pack("{s:s, s:s, s:s}", "cluster", "c1", "kind", "backup", "schedule", "@every 20s");
    assert_int_equal(cs_model_task_check(t, c, true, 500, &e), 0);
    assert_true(json_is_true(json_object_get(t, "enabled")));
    assert_int_equal(json_integer_value(json_object_get(t, "retries")), 1);
    assert_int_equal(json_number_value(json_object_get(t, "retry_backoff")), 60);
    assert_string_equal(json_string_value(json_object_get(t, "timezone")), "UTC");
    assert_int_equal(json_number_value(json_object_get(t, "last_slot")), 0);
    assert_int_equal(json_number_value(json_object_get(t, "created")), 500);
    assert_true(json_is_object(json_object_get(t, "params")));
    assert_memory_equal(json_string_value(json_object_get(t, "id")), "t-", 2);
    json_decref(t);

    struct {
        const char *json, *field;
    } bad[] = {
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"schedule\": \"0 0 30 2 *\"}", "schedule" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"schedule\": \"every day\"}", "schedule" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"window\": [\"01:00-05:00\", \"04:00-06:00\"]}", "window" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"timezone\": \"Mars/Olympus\"}", "timezone" },
        { "{\"cluster\": \"c1\", \"kind\": \"repair\"}", "kind" },
        { "{\"cluster\": \"c1\"}", "kind" },
        { "{\"kind\": \"backup\"}", "cluster" },
        { "{\"cluster\": \"c2\", \"kind\": \"backup\"}", "cluster" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"retries\": 11}", "retries" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"retry_backoff\": -1}", "retry_backoff" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"enabled\": \"yes\"}", "enabled" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"owner\": \"me\"}", "owner" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"params\": {\"repo\": \"s3://other\"}}", "repo" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"params\": {\"contact\": \"h\"}}", "contact" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"params\": {\"jobs\": 1000}}", "jobs" },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"params\": {\"nonsense\": 1}}", "nonsense" },
        { "{\"cluster\": \"c1\", \"kind\": \"purge\", \"params\": {\"keep_last\": \"x\"}}", "keep_last" },
        { "{\"cluster\": \"c1\", \"kind\": \"restore\"}", "backup" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *d = json_loads(bad[i].json, 0, NULL);
        assert_non_null(d);
        int rc = cs_model_task_check(d, c, true, 1, &e);
        if (rc != CS_E_INVAL || strcmp(e.field, bad[i].field))
            fail_msg("%s: rc %d field \"%s\" (%s)", bad[i].json, rc, e.field, e.msg);
        json_decref(d);
    }
    json_t *ok = json_pack("{s:s, s:s, s:s, s:s, s:[s], s:{s:i}}", "cluster", "c1", "kind", "purge", "schedule",
                           "30 2 * * *", "timezone", "Europe/Berlin", "window", "sat-00:00-mon-00:00", "params",
                           "keep_last", 3);
    assert_int_equal(cs_model_task_check(ok, c, true, 1, &e), 0);
    json_decref(ok);
    json_decref(c);
}

/* The next run GET /v1/tasks shows. */
static void test_task_next(void **state)
{
    (void)state;
    json_t *t = json_pack("{s:s, s:s, s:f, s:f}", "schedule", "@every 20s", "timezone", "UTC", "created", 1000.0,
                          "last_slot", 0.0);
    assert_true(cs_model_task_next(t, 1005.5) == 1020);   /* the first slot after creation */
    assert_true(cs_model_task_next(t, 1030) == 1020);     /* due, not yet queued: still that one */
    json_object_set_new(t, "last_slot", json_real(1020));
    assert_true(cs_model_task_next(t, 1030) == 1040);
    json_object_set_new(t, "schedule", json_string("0 3 * * *"));
    assert_true(cs_model_task_next(t, 86400 * 10 + 5) == 86400 * 9 + 3 * 3600); /* yesterday's is due */
    json_object_set_new(t, "last_slot", json_real(86400 * 9 + 3 * 3600));
    assert_true(cs_model_task_next(t, 86400 * 10 + 5) == 86400 * 10 + 3 * 3600);
    json_object_set_new(t, "enabled", json_false());
    assert_true(cs_model_task_next(t, 2000) == 0);        /* disabled */
    json_object_set_new(t, "enabled", json_true());
    json_object_set_new(t, "schedule", json_string("every day"));
    assert_true(cs_model_task_next(t, 2000) == 0);        /* does not parse */
    json_object_del(t, "schedule");
    assert_true(cs_model_task_next(t, 2000) == 0);        /* runs only when asked */
    json_decref(t);
}

static void test_request(void **state)
{
    (void)state;
    cs_err e;
    json_t *c = cluster();
    const cs_op_def *op = NULL;
    void *req = NULL;

    assert_int_equal(cs_model_request(c, "backup", NULL, &op, &req, &e), 0);
    assert_string_equal(op->name, "cluster backup");
    json_t *j = cs_op_request_to_json(op, req);
    assert_string_equal(json_string_value(json_object_get(j, "repo")), "s3://b/c1");
    assert_string_equal(json_string_value(json_object_get(j, "contact")), "127.0.0.4:9042");
    assert_string_equal(json_string_value(json_object_get(j, "agent_template")), "http://{rpc_address}:7620");
    json_decref(j);
    cs_op_request_free(op, req);

    json_t *p = json_pack("{s:s}", "type", "cluster_consistent");
    assert_int_equal(cs_model_request(c, "backup", p, &op, &req, &e), CS_E_INVAL);
    assert_string_equal(e.field, "pause_cmd");
    json_object_set_new(p, "pause_cmd", json_string("true"));
    assert_int_equal(cs_model_request(c, "backup", p, &op, &req, &e), CS_E_INVAL);
    assert_string_equal(e.field, "resume_cmd");
    json_object_set_new(p, "resume_cmd", json_string("true"));
    assert_int_equal(cs_model_request(c, "backup", p, &op, &req, &e), 0);
    j = cs_op_request_to_json(op, req);
    assert_string_equal(json_string_value(json_object_get(j, "pause_cmd")), "true");
    assert_null(json_object_get(j, "type"));
    json_decref(j);
    cs_op_request_free(op, req);
    json_object_set_new(p, "type", json_string("snapshot"));
    assert_int_equal(cs_model_request(c, "backup", p, &op, &req, &e), CS_E_INVAL);
    assert_string_equal(e.field, "pause_cmd");
    json_object_set_new(p, "type", json_string("incremental"));
    assert_int_equal(cs_model_request(c, "backup", p, &op, &req, &e), CS_E_INVAL);
    assert_string_equal(e.field, "type");
    json_decref(p);

    p = json_pack("{s:s, s:[s]}", "backup", "b1", "nodes", "127.0.0.4");
    assert_int_equal(cs_model_request(c, "restore", p, &op, &req, &e), 0);
    assert_string_equal(op->name, "cluster restore");
    j = cs_op_request_to_json(op, req);
    assert_true(json_is_true(json_object_get(j, "yes")));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "import");
    assert_int_equal(json_array_size(json_object_get(j, "nodes")), 1);
    json_decref(j);
    cs_op_request_free(op, req);
    json_decref(p);

    p = json_pack("{s:i}", "keep_last", 2);
    assert_int_equal(cs_model_request(c, "purge", p, &op, &req, &e), 0);
    assert_string_equal(op->name, "purge");
    j = cs_op_request_to_json(op, req);
    assert_null(json_object_get(j, "contact")); /* purge has no target */
    assert_string_equal(json_string_value(json_object_get(j, "repo")), "s3://b/c1");
    json_decref(j);
    cs_op_request_free(op, req);
    json_decref(p);

    p = json_pack("{s:b, s:f}", "deep", 1, "sample", 5.0);
    assert_int_equal(cs_model_request(c, "verify", p, &op, &req, &e), 0);
    assert_string_equal(op->name, "verify");
    cs_op_request_free(op, req);
    json_decref(p);

    int rc = cs_model_request(c, "snapshot_cleanup", NULL, &op, &req, &e);
    if (cs_op_find("cluster snapshot-cleanup")) {
        if (!rc) {
            assert_string_equal(op->name, "cluster snapshot-cleanup");
            cs_op_request_free(op, req);
        } else {
            assert_int_equal(rc, CS_E_INVAL); /* it may need params (older_than) */
        }
    } else {
        assert_int_equal(rc, CS_E_INVAL);
        assert_string_equal(e.field, "kind");
        assert_non_null(strstr(e.msg, "not available yet"));
    }
    /* drill: the cluster drill, the cluster's repo and target, the params' own fields */
    p = json_pack("{s:i, s:b, s:[s]}", "sample_rows", 20, "keep", 1, "tables", "ks.t");
    assert_int_equal(cs_model_request(c, "drill", p, &op, &req, &e), 0);
    assert_string_equal(op->name, "cluster drill");
    j = cs_op_request_to_json(op, req);
    assert_string_equal(json_string_value(json_object_get(j, "repo")), "s3://b/c1");
    assert_int_equal(json_integer_value(json_object_get(j, "sample_rows")), 20);
    assert_true(json_is_true(json_object_get(j, "keep")));
    json_decref(j);
    cs_op_request_free(op, req);
    json_decref(p);
    p = json_pack("{s:s}", "repo", "/elsewhere");
    assert_int_equal(cs_model_request(c, "drill", p, &op, &req, &e), CS_E_INVAL);
    json_decref(p);
    assert_int_equal(cs_model_request(c, "fsck", NULL, &op, &req, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "snapshot_cleanup, drill"));
    assert_null(req);
    json_t *arr = json_array();
    assert_int_equal(cs_model_request(c, "backup", arr, &op, &req, &e), CS_E_INVAL);
    json_decref(arr);
    json_decref(c);
}

static void test_run_new(void **state)
{
    (void)state;
    json_t *c = cluster();
    json_t *t = json_pack("{s:s}", "id", "t1");
    json_t *p = json_pack("{s:i}", "keep_last", 2);
    json_t *r = cs_model_run_new(c, t, "purge", p, 1234.5);
    assert_memory_equal(json_string_value(json_object_get(r, "id")), "r-", 2);
    assert_string_equal(json_string_value(json_object_get(r, "task")), "t1");
    assert_string_equal(json_string_value(json_object_get(r, "cluster")), "c1");
    assert_string_equal(json_string_value(json_object_get(r, "op")), "purge");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "queued");
    assert_true(json_number_value(json_object_get(r, "queued_at")) == 1234.5);
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 1);
    assert_true(json_equal(json_object_get(r, "params"), p));
    assert_true(json_is_object(json_object_get(r, "progress")));
    json_decref(r);
    r = cs_model_run_new(c, NULL, "backup", NULL, 1);
    assert_true(json_is_null(json_object_get(r, "task")));
    assert_string_equal(json_string_value(json_object_get(r, "op")), "cluster backup");
    json_decref(r);
    json_decref(p);
    json_decref(t);
    json_decref(c);

    assert_true(cs_model_run_final("done"));
    assert_true(cs_model_run_final("failed"));
    assert_true(cs_model_run_final("cancelled"));
    assert_true(cs_model_run_final("interrupted"));
    assert_false(cs_model_run_final("queued"));
    assert_false(cs_model_run_final("running"));
    assert_false(cs_model_run_final(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_cluster_check),
        cmocka_unit_test(test_task_check),
        cmocka_unit_test(test_task_next),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_run_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

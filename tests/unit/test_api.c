/* test_api.c - server/api through cs_http_dispatch, over a real SQLite
 * state in a temporary directory and fake hooks: the token file, roles
 * (401, 403, an operator limited to one cluster), bad input (400:
 * malformed JSON, unknown fields, a cron that never fires, overlapping
 * windows), unknown ids (404), conflicts (409: cancel of an ended run,
 * delete of a cluster with open runs), an unreachable cluster (502,
 * nothing stored), 204 answers, and the audit log of every change
 * (never a token). */
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
#include "common/err.h"
#include "common/fs.h"
#include "server/api.h"
#include "server/model.h"
#include "server/state.h"

#define ADMIN "admin-token-0123456789"
#define OPER "oper-token-0123456789ab"
#define VIEW "view-token-0123456789ab"
#define WIDE "wide-oper-token-0123456789"

typedef struct fixture {
    char dir[64];
    cs_state *st;
    cs_api *api;
    cs_httpd_opts opts;
    int wakes;
    int ended;   /* runs the API ended itself (the ended hook) */
    int changes; /* requests that the audit log must hold */
} fixture;

static int fake_discover(void *ctx, json_t *cluster, cs_err *e)
{
    (void)ctx;
    const char *contact = json_string_value(json_object_get(cluster, "contact"));
    if (contact && !strcmp(contact, "unreachable:9042"))
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach %s", contact);
    json_object_set_new(cluster, "name", json_string("Test Cluster"));
    json_object_set_new(cluster, "partitioner", json_string("Murmur3Partitioner"));
    json_object_set_new(cluster, "datacenters", json_pack("[s]", "dc1"));
    json_object_set_new(cluster, "nodes", json_pack("[{s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:b}]", "host_id",
                                                    "h1", "address", "127.0.0.4", "rpc_address", "127.0.0.4",
                                                    "datacenter", "dc1", "tokens", "0", "version", "5.0",
                                                    "agent", "http://127.0.0.4:7620", "ok", 1));
    json_object_set_new(cluster, "discovered", json_real(cs_now()));
    return 0;
}

static int fake_backups(void *ctx, const json_t *cluster, json_t **out, cs_err *e)
{
    (void)ctx;
    (void)e;
    (void)cluster;
    *out = json_pack("{s:[{s:s, s:b}]}", "backups", "name", "b1", "complete", 1);
    return 0;
}

static json_t *fake_info(void *ctx)
{
    (void)ctx;
    return json_pack("{s:b, s:i}", "leader", 1, "workers", 2);
}

static void fake_wake(void *ctx)
{
    ((fixture *)ctx)->wakes++;
}

static void fake_ended(void *ctx, const json_t *run)
{
    assert_string_equal(json_string_value(json_object_get(run, "state")), "cancelled");
    ((fixture *)ctx)->ended++;
}

/* The clusters the caller may see, as the exposition's one sample. */
static char *fake_metrics(void *ctx, const cs_strlist *clusters)
{
    (void)ctx;
    cs_buf b;
    memset(&b, 0, sizeof b);
    cs_buf_addstr(&b, "# TYPE cassette_clusters gauge\ncassette_clusters{seen=\"");
    for (size_t i = 0; clusters && i < clusters->n; i++)
        cs_buf_printf(&b, "%s%s", i ? "," : "", clusters->items[i]);
    cs_buf_addstr(&b, "\"} 1\n");
    char *text = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return text;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-api-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char *db = cs_path_join(f->dir, "state.db"), *tokens = cs_path_join(f->dir, "tokens");
    FILE *fp = fopen(tokens, "w");
    fprintf(fp, "# name role token clusters\n"
                "root admin " ADMIN "\n"
                "ops operator " OPER " c1\n"
                "\n"
                "wide operator " WIDE "   # every cluster\n"
                "look viewer " VIEW "\n");
    fclose(fp);
    chmod(tokens, 0600);
    cs_err e;
    int rc = cs_state_open(db, NULL, &f->st, &e);
    cs_api_hooks hooks = { .discover = fake_discover, .backups = fake_backups, .info = fake_info,
                           .wake = fake_wake, .metrics = fake_metrics, .ended = fake_ended, .ctx = f, .version = "9.9.9" };
    if (!rc)
        rc = cs_api_new(f->st, &hooks, tokens, &f->api, &e);
    free(db);
    free(tokens);
    if (rc) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    f->opts = (cs_httpd_opts){ .handler = cs_api_handle, .arg = f->api, .handler_auth = true };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_api_free(f->api);
    cs_state_close(f->st);
    int rc = cs_remove_tree(f->dir, &e);
    free(f);
    return rc;
}

/* One request; the answer's status, and its body in *out (NULL: dropped). */
static unsigned req(fixture *f, const char *method, const char *path, const char *query, const char *token,
                    const char *body, json_t **out)
{
    char *auth = token ? cs_sprintf("Bearer %s", token) : NULL;
    cs_http_request r = { .method = method, .path = path, .query = query, .authorization = auth,
                          .body = body ? body : "", .body_len = body ? strlen(body) : 0 };
    cs_http_answer ans = { 0 };
    cs_http_dispatch(&f->opts, &r, &ans);
    free(auth);
    if (ans.status == 204)
        assert_null(ans.body);
    else
        assert_non_null(ans.body);
    if (ans.status >= 400) {
        const char *msg = json_string_value(json_object_get(ans.body, "error"));
        assert_non_null(msg);
        assert_true(*msg);
    }
    if (token && strcmp(method, "GET") && ans.status != 401)
        f->changes++;
    if (out)
        *out = ans.body;
    else
        json_decref(ans.body);
    return ans.status;
}

static const char *field_of(const json_t *body)
{
    const char *s = json_string_value(json_object_get(body, "field"));
    return s ? s : "";
}

static void add_cluster(fixture *f, const char *id)
{
    char *body = cs_sprintf("{\"id\": \"%s\", \"contact\": \"127.0.0.4:9042\", \"repo\": \"s3://b/%s\"}", id, id);
    json_t *out = NULL;
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN, body, &out), 201);
    assert_string_equal(json_string_value(json_object_get(out, "name")), "Test Cluster");
    json_decref(out);
    free(body);
}

static void test_open_routes_and_auth(void **state)
{
    fixture *f = *state;
    json_t *out = NULL;
    assert_int_equal(req(f, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
    assert_int_equal(req(f, "GET", "/version", NULL, NULL, NULL, &out), 200);
    assert_string_equal(json_string_value(json_object_get(out, "version")), "9.9.9");
    assert_true(json_is_true(json_object_get(out, "tokens"))); /* the status page asks for one */
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/clusters", NULL, NULL, NULL, NULL), 401);
    assert_int_equal(req(f, "GET", "/v1/clusters", NULL, "wrong-token-0123456789", NULL, NULL), 401);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, NULL, "{}", NULL), 401);
    assert_int_equal(req(f, "GET", "/v1/server", NULL, VIEW, NULL, &out), 200);
    assert_true(json_is_true(json_object_get(out, "leader")));
    assert_string_equal(json_string_value(json_object_get(out, "state")), "sqlite");
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/nothing", NULL, VIEW, NULL, NULL), 404);
    assert_int_equal(req(f, "GET", "/v2/clusters", NULL, VIEW, NULL, NULL), 404);
    assert_int_equal(req(f, "PUT", "/v1/clusters", NULL, ADMIN, "{}", NULL), 405);
    assert_int_equal(req(f, "POST", "/healthz", NULL, NULL, NULL, NULL), 405);
}

/* GET /metrics: any role's token (401 without), text, limited to the
 * token's clusters; not audited; without a tokens file, no token needed. */
static void test_metrics_route(void **state)
{
    fixture *f = *state;
    cs_http_request r = { .method = "GET", .path = "/metrics", .body = "" };
    cs_http_answer ans = { 0 };
    cs_http_dispatch(&f->opts, &r, &ans);
    assert_int_equal(ans.status, 401);
    cs_http_answer_clear(&ans);
    const char *tokens[] = { VIEW, OPER, ADMIN };
    const char *want[] = { "seen=\"\"", "seen=\"c1\"", "seen=\"\"" };
    for (size_t i = 0; i < 3; i++) {
        char *auth = cs_sprintf("Bearer %s", tokens[i]);
        r.authorization = auth;
        memset(&ans, 0, sizeof ans);
        cs_http_dispatch(&f->opts, &r, &ans);
        assert_int_equal(ans.status, 200);
        assert_null(ans.body);
        assert_non_null(ans.text);
        assert_non_null(strstr(ans.content_type, "text/plain"));
        assert_non_null(strstr(ans.text, want[i]));
        cs_http_answer_clear(&ans);
        free(auth);
    }
    json_t *out = NULL;
    assert_int_equal(req(f, "POST", "/metrics", NULL, VIEW, "", NULL), 405);
    f->changes--; /* refused past authentication: audited */
    assert_int_equal(req(f, "GET", "/v1/audit", NULL, ADMIN, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "audit")), 1); /* the POST only */
    json_decref(out);

    /* a queued run cancelled ends in the API, not in the runner: told once */
    add_cluster(f, "c1");
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, OPER, "{}", &out), 202);
    char *cancel = cs_sprintf("/v1/runs/%s/cancel", json_string_value(json_object_get(out, "id")));
    json_decref(out);
    assert_int_equal(req(f, "POST", cancel, NULL, OPER, NULL, NULL), 202);
    assert_int_equal(req(f, "POST", cancel, NULL, OPER, NULL, NULL), 409);
    assert_int_equal(f->ended, 1);
    free(cancel);

    /* no tokens file: everyone may scrape */
    cs_api *open = NULL;
    cs_err e;
    cs_api_hooks hooks = { .metrics = fake_metrics };
    assert_int_equal(cs_api_new(f->st, &hooks, NULL, &open, &e), 0);
    cs_httpd_opts o = { .handler = cs_api_handle, .arg = open };
    r.authorization = NULL;
    memset(&ans, 0, sizeof ans);
    cs_http_dispatch(&o, &r, &ans);
    assert_int_equal(ans.status, 200);
    assert_non_null(strstr(ans.text, "cassette_clusters"));
    cs_http_answer_clear(&ans);
    cs_api_free(open);
    /* no metrics hook: 500, never a crash */
    hooks.metrics = NULL;
    assert_int_equal(cs_api_new(f->st, &hooks, NULL, &open, &e), 0);
    o.arg = open;
    memset(&ans, 0, sizeof ans);
    cs_http_dispatch(&o, &r, &ans);
    assert_int_equal(ans.status, 500);
    cs_http_answer_clear(&ans);
    cs_api_free(open);
}

static void test_clusters(void **state)
{
    fixture *f = *state;
    json_t *out = NULL;
    const char *c3 = "{\"id\": \"c3\", \"contact\": \"h:9042\", \"repo\": \"s3://b/c3\"}";
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, VIEW, c3, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, OPER, c3, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN, "{\"id\": ", &out), 400);
    assert_non_null(strstr(json_string_value(json_object_get(out, "error")), "malformed JSON"));
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN, "[1]", NULL), 400);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN, "", NULL), 400);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN,
                         "{\"contact\": \"h\", \"repo\": \"s3://b\", \"flavour\": 1}", &out), 400);
    assert_string_equal(field_of(out), "flavour");
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN, "{\"contact\": \"h\"}", &out), 400);
    assert_string_equal(field_of(out), "repo");
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN,
                         "{\"id\": \"cx\", \"contact\": \"unreachable:9042\", \"repo\": \"s3://b\"}", NULL), 502);
    assert_int_equal(req(f, "GET", "/v1/clusters/cx", NULL, ADMIN, NULL, NULL), 404);

    add_cluster(f, "c1");
    add_cluster(f, "c2");
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN,
                         "{\"id\": \"c1\", \"contact\": \"h\", \"repo\": \"s3://b\"}", NULL), 409);
    assert_int_equal(req(f, "GET", "/v1/clusters", NULL, OPER, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "clusters")), 1);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/clusters", NULL, VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "clusters")), 2);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/clusters/c2", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "GET", "/v1/clusters/c1", NULL, OPER, NULL, NULL), 200);
    assert_int_equal(req(f, "GET", "/v1/clusters/nope", NULL, VIEW, NULL, NULL), 404);

    assert_int_equal(req(f, "PATCH", "/v1/clusters/c2", NULL, ADMIN, "{\"labels\": {\"env\": \"test\"}}", &out),
                     200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "labels"), "env")), "test");
    json_decref(out);
    assert_int_equal(req(f, "PATCH", "/v1/clusters/c2", NULL, ADMIN, "{\"id\": \"c9\"}", &out), 400);
    assert_string_equal(field_of(out), "id");
    json_decref(out);
    assert_int_equal(req(f, "PATCH", "/v1/clusters/c2", NULL, ADMIN, "{\"repo\": null}", &out), 400);
    assert_string_equal(field_of(out), "repo");
    json_decref(out);
    assert_int_equal(req(f, "PATCH", "/v1/clusters/c2", NULL, OPER, "{}", NULL), 403);
    assert_int_equal(req(f, "PATCH", "/v1/clusters/nope", NULL, ADMIN, "{}", NULL), 404);
    assert_int_equal(req(f, "POST", "/v1/clusters/c2/discover", NULL, ADMIN, NULL, NULL), 200);
    assert_int_equal(req(f, "POST", "/v1/clusters/c2/discover", NULL, VIEW, NULL, NULL), 403);

    assert_int_equal(req(f, "GET", "/v1/clusters/c1/backups", NULL, VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "backups")), 1);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/clusters/c1/backups/b1", NULL, VIEW, NULL, NULL), 200);
    assert_int_equal(req(f, "GET", "/v1/clusters/c1/backups/b2", NULL, VIEW, NULL, NULL), 404);
    assert_int_equal(req(f, "GET", "/v1/clusters/c2/backups", NULL, OPER, NULL, NULL), 403);

    assert_int_equal(req(f, "DELETE", "/v1/clusters/c2", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "DELETE", "/v1/clusters/c2", NULL, ADMIN, NULL, NULL), 204);
    assert_int_equal(req(f, "DELETE", "/v1/clusters/c2", NULL, ADMIN, NULL, NULL), 404);
}

static void test_tasks(void **state)
{
    fixture *f = *state;
    add_cluster(f, "c1");
    add_cluster(f, "c2");
    json_t *out = NULL;
    struct {
        const char *body, *field;
        unsigned status;
    } bad[] = {
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"schedule\": \"0 0 30 2 *\"}", "schedule", 400 },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"window\": [\"mon-01:00-mon-05:00\", \"mon-04:00-mon-06:00\"]}",
          "window", 400 },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"extra\": 1}", "extra", 400 },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"params\": {\"repo\": \"s3://x\"}}", "repo", 400 },
        { "{\"cluster\": \"nope\", \"kind\": \"backup\"}", "", 404 },
        { "{\"kind\": \"backup\"}", "cluster", 400 },
        { "{\"cluster\": \"c1\", \"kind\": \"backup\", \"created\": \"yesterday\"}", "created", 400 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned st = req(f, "POST", "/v1/tasks", NULL, ADMIN, bad[i].body, &out);
        if (st != bad[i].status || strcmp(field_of(out), bad[i].field))
            fail_msg("%s: %u %s", bad[i].body, st, json_dumps(out, 0));
        json_decref(out);
    }
    const char *t1 = "{\"id\": \"t1\", \"cluster\": \"c1\", \"kind\": \"backup\", \"schedule\": \"@every 20s\"}";
    const char *t2 = "{\"id\": \"t2\", \"cluster\": \"c2\", \"kind\": \"purge\", \"params\": {\"keep_last\": 2}}";
    assert_int_equal(req(f, "POST", "/v1/tasks", NULL, OPER, t1, NULL), 403);
    double before = cs_now();
    assert_int_equal(req(f, "POST", "/v1/tasks", NULL, ADMIN, t1, &out), 201);
    assert_int_equal(json_integer_value(json_object_get(out, "retries")), 1);
    json_decref(out);
    /* "next": the schedule's next slot (@every 20s from its creation), never stored */
    assert_int_equal(req(f, "GET", "/v1/tasks/t1", NULL, VIEW, NULL, &out), 200);
    double next = json_number_value(json_object_get(out, "next"));
    double created = json_number_value(json_object_get(out, "created"));
    assert_true(next > before && next <= created + 20.5);
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/tasks", NULL, ADMIN, t1, NULL), 409);
    assert_int_equal(req(f, "POST", "/v1/tasks", NULL, ADMIN, t2, NULL), 201);
    assert_int_equal(req(f, "GET", "/v1/tasks", NULL, VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "tasks")), 2);
    assert_true(json_number_value(json_object_get(json_array_get(json_object_get(out, "tasks"), 0), "next")) > 0);
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(out, "tasks"), 1), "next"))); /* none */
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/tasks", "cluster=c2", VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "tasks")), 1);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/tasks", NULL, OPER, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "tasks")), 1);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/tasks", "cluster=c2", OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "GET", "/v1/tasks/t2", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "GET", "/v1/tasks/nope", NULL, VIEW, NULL, NULL), 404);

    assert_int_equal(req(f, "PATCH", "/v1/tasks/t1", NULL, ADMIN, "{\"enabled\": false, \"schedule\": null}", &out),
                     200);
    assert_true(json_is_false(json_object_get(out, "enabled")));
    assert_null(json_object_get(out, "schedule"));
    assert_true(json_is_null(json_object_get(out, "next")));
    json_decref(out);
    assert_int_equal(req(f, "PATCH", "/v1/tasks/t1", NULL, ADMIN, "{\"schedule\": \"61 * * * *\"}", &out), 400);
    assert_string_equal(field_of(out), "schedule");
    json_decref(out);
    assert_int_equal(req(f, "PATCH", "/v1/tasks/t1", NULL, ADMIN, "{\"last_slot\": 5}", NULL), 400);
    assert_int_equal(req(f, "PATCH", "/v1/tasks/t1", NULL, ADMIN, "{\"enabled\": ", NULL), 400);
    assert_int_equal(req(f, "PATCH", "/v1/tasks/nope", NULL, ADMIN, "{}", NULL), 404);

    int wakes = f->wakes;
    assert_int_equal(req(f, "POST", "/v1/tasks/t1/run", NULL, VIEW, NULL, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/tasks/t2/run", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/tasks/t1/run", NULL, OPER, NULL, &out), 202);
    assert_string_equal(json_string_value(json_object_get(out, "task")), "t1");
    assert_string_equal(json_string_value(json_object_get(out, "state")), "queued");
    assert_string_equal(json_string_value(json_object_get(out, "op")), "cluster backup");
    json_decref(out);
    assert_true(f->wakes > wakes);
    assert_int_equal(req(f, "POST", "/v1/tasks/nope/run", NULL, OPER, NULL, NULL), 404);

    assert_int_equal(req(f, "DELETE", "/v1/tasks/t2", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "DELETE", "/v1/tasks/t2", NULL, ADMIN, NULL, NULL), 204);
    assert_int_equal(req(f, "GET", "/v1/tasks/t2", NULL, ADMIN, NULL, NULL), 404);
}

static void test_runs(void **state)
{
    fixture *f = *state;
    add_cluster(f, "c1");
    add_cluster(f, "c2");
    json_t *out = NULL;
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, VIEW, NULL, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/clusters/c2/backups", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, OPER, "{\"type\": \"cluster_consistent\"}",
                         &out), 400);
    assert_string_equal(field_of(out), "pause_cmd");
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, OPER, "{\"repo\": \"s3://elsewhere\"}", &out),
                     400);
    assert_string_equal(field_of(out), "repo");
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters/nope/backups", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/clusters/nope/backups", NULL, WIDE, NULL, NULL), 404);
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, OPER, NULL, &out), 202);
    char *run1 = cs_strdup(json_string_value(json_object_get(out, "id")));
    assert_true(json_is_null(json_object_get(out, "task")));
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, OPER,
                         "{\"type\": \"cluster_consistent\", \"pause_cmd\": \"true\", \"resume_cmd\": \"true\"}", &out),
                     202);
    json_decref(out);

    assert_int_equal(req(f, "POST", "/v1/clusters/c1/restores", NULL, OPER, "{}", &out), 400);
    assert_string_equal(field_of(out), "backup");
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/restores", NULL, OPER,
                         "{\"backup\": \"b1\", \"nodes\": [\"127.0.0.4\"]}", &out), 202);
    assert_string_equal(json_string_value(json_object_get(out, "kind")), "restore");
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/clusters/c1/restores", NULL, VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "restores")), 1);
    json_decref(out);
    assert_int_equal(req(f, "POST", "/v1/clusters/c2/restores", NULL, WIDE, "{\"backup\": \"b1\"}", NULL), 202);

    assert_int_equal(req(f, "GET", "/v1/runs", NULL, VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "runs")), 4);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/runs", NULL, OPER, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "runs")), 3);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/runs", "cluster=c1&kind=backup&state=queued&limit=1", VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "runs")), 1);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/runs", "state=open&since=0", VIEW, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "runs")), 4);
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/runs", "state=sleeping", VIEW, NULL, &out), 400);
    assert_string_equal(field_of(out), "state");
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/runs", "limit=0", VIEW, NULL, NULL), 400);
    assert_int_equal(req(f, "GET", "/v1/runs", "since=soon", VIEW, NULL, NULL), 400);
    assert_int_equal(req(f, "GET", "/v1/runs", "cluster=c2", OPER, NULL, NULL), 403);
    char *path = cs_sprintf("/v1/runs/%s", run1);
    assert_int_equal(req(f, "GET", path, NULL, VIEW, NULL, NULL), 200);
    free(path);
    assert_int_equal(req(f, "GET", "/v1/runs/nope", NULL, VIEW, NULL, NULL), 404);

    /* a cluster with open runs cannot go */
    assert_int_equal(req(f, "DELETE", "/v1/clusters/c1", NULL, ADMIN, NULL, NULL), 409);

    path = cs_sprintf("/v1/runs/%s/cancel", run1);
    assert_int_equal(req(f, "POST", path, NULL, VIEW, NULL, NULL), 403);
    assert_int_equal(req(f, "POST", path, NULL, OPER, NULL, &out), 202);
    assert_string_equal(json_string_value(json_object_get(out, "state")), "cancelled");
    json_decref(out);
    assert_int_equal(req(f, "POST", path, NULL, OPER, NULL, NULL), 409);
    free(path);
    assert_int_equal(req(f, "POST", "/v1/runs/nope/cancel", NULL, OPER, NULL, NULL), 404);
    free(run1);

    /* the others cancelled too, the cluster may go */
    cs_err e;
    json_t *open = NULL;
    cs_run_filter flt = { .cluster = "c1", .state = "open" };
    assert_int_equal(cs_state_run_list(f->st, &flt, &open, &e), 0);
    size_t i;
    json_t *r;
    json_array_foreach(open, i, r) {
        path = cs_sprintf("/v1/runs/%s/cancel", json_string_value(json_object_get(r, "id")));
        assert_int_equal(req(f, "POST", path, NULL, ADMIN, NULL, NULL), 202);
        free(path);
    }
    json_decref(open);
    assert_int_equal(req(f, "DELETE", "/v1/clusters/c1", NULL, ADMIN, NULL, NULL), 204);
}

static void test_audit(void **state)
{
    fixture *f = *state;
    f->changes = 0;
    add_cluster(f, "c1");
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, VIEW, "{}", NULL), 403);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, ADMIN, "{\"x\": ", NULL), 400);
    assert_int_equal(req(f, "POST", "/v1/clusters/c1/backups", NULL, OPER, "{}", NULL), 202);
    assert_int_equal(req(f, "POST", "/v1/clusters", NULL, NULL, "{}", NULL), 401); /* not past authentication */
    assert_int_equal(req(f, "GET", "/v1/audit", NULL, OPER, NULL, NULL), 403);
    assert_int_equal(req(f, "GET", "/v1/audit", "limit=x", ADMIN, NULL, NULL), 400);
    json_t *out = NULL;
    assert_int_equal(req(f, "GET", "/v1/audit", NULL, ADMIN, NULL, &out), 200);
    const json_t *entries = json_object_get(out, "audit");
    assert_int_equal(json_array_size(entries), (size_t)f->changes);
    char *text = json_dumps(out, 0);
    assert_null(strstr(text, ADMIN));
    assert_null(strstr(text, OPER));
    assert_null(strstr(text, VIEW));
    free(text);
    /* newest first: the backup, then the malformed one, the refused one, the registration */
    const json_t *backup = json_array_get(entries, 0), *reg = json_array_get(entries, 3);
    assert_string_equal(json_string_value(json_object_get(backup, "who")), "ops");
    assert_string_equal(json_string_value(json_object_get(backup, "role")), "operator");
    assert_string_equal(json_string_value(json_object_get(backup, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(backup, "path")), "/v1/clusters/c1/backups");
    assert_int_equal(json_integer_value(json_object_get(backup, "status")), 202);
    assert_non_null(strstr(json_string_value(json_object_get(backup, "what")), "queued run"));
    assert_true(json_is_number(json_object_get(backup, "at")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(entries, 1), "status")), 400);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(entries, 2), "status")), 403);
    assert_string_equal(json_string_value(json_object_get(json_array_get(entries, 2), "who")), "look");
    assert_string_equal(json_string_value(json_object_get(reg, "who")), "root");
    assert_non_null(strstr(json_string_value(json_object_get(reg, "what")), "registered cluster c1"));
    json_decref(out);
    assert_int_equal(req(f, "GET", "/v1/audit", "limit=2", ADMIN, NULL, &out), 200);
    assert_int_equal(json_array_size(json_object_get(out, "audit")), 2);
    json_decref(out);
}

static void write_tokens(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    chmod(path, mode);
}

static void test_tokens_file(void **state)
{
    fixture *f = *state;
    char *path = cs_path_join(f->dir, "t2");
    cs_api *api = NULL;
    cs_err e;
    struct {
        const char *text;
        mode_t mode;
        const char *says;
    } bad[] = {
        { "a admin " ADMIN "\n", 0644, "read by others" },
        { "a root " ADMIN "\n", 0600, "line 1" },
        { "# c\na admin short\n", 0600, "line 2" },
        { "a admin\n", 0600, "line 1" },
        { "a admin " ADMIN " c1 extra\n", 0600, "line 1" },
        { "a admin " ADMIN "\na viewer " VIEW "\n", 0600, "twice" },
        { "# nothing\n", 0600, "no token" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_tokens(path, bad[i].text, bad[i].mode);
        assert_int_equal(cs_api_new(f->st, NULL, path, &api, &e), CS_E_INVAL);
        assert_null(api);
        assert_non_null(strstr(e.msg, bad[i].says));
        assert_null(strstr(e.msg, ADMIN));
        assert_null(strstr(e.msg, "short"));
    }
    assert_int_equal(cs_api_new(f->st, NULL, "/nonexistent/tokens", &api, &e), CS_E_INVAL);
    free(path);

    /* no tokens file: everyone is admin */
    assert_int_equal(cs_api_new(f->st, NULL, NULL, &api, &e), 0);
    cs_httpd_opts o = { .handler = cs_api_handle, .arg = api };
    cs_http_request r = { .method = "POST", .path = "/v1/clusters",
                          .body = "{\"id\": \"c5\", \"contact\": \"h\", \"repo\": \"s3://b\"}" };
    r.body_len = strlen(r.body);
    cs_http_answer ans = { 0 };
    cs_http_dispatch(&o, &r, &ans);
    assert_int_equal(ans.status, 201); /* no discover hook: stored as given */
    json_decref(ans.body);
    cs_api_free(api);
    cs_api_free(NULL);
}

/* The status page: served without a token, as text with its policy; nothing else. */
static void test_status_page(void **state)
{
    fixture *f = *state;
    const char *paths[] = { "/", "/status", "/status.js", "/status.css" };
    const char *types[] = { "text/html", "text/html", "text/javascript", "text/css" };
    for (size_t i = 0; i < 4; i++) {
        cs_http_request r = { .method = "GET", .path = paths[i], .body = "" };
        cs_http_answer ans = { 0 };
        cs_http_dispatch(&f->opts, &r, &ans);
        assert_int_equal(ans.status, 200);
        assert_null(ans.body);
        assert_non_null(ans.text);
        assert_false(ans.text_owned);
        assert_true(ans.text_len > 100 && strlen(ans.text) == ans.text_len);
        assert_memory_equal(ans.content_type, types[i], strlen(types[i]));
        assert_non_null(strstr(ans.content_type, "charset=utf-8"));
        assert_non_null(strstr(ans.csp, "default-src 'none'"));
        assert_non_null(strstr(ans.csp, "script-src 'self'"));
        assert_null(strstr(ans.csp, "unsafe"));
        cs_http_answer_clear(&ans);
    }
    cs_http_request r = { .method = "GET", .path = "/", .body = "" };
    cs_http_answer ans = { 0 };
    cs_http_dispatch(&f->opts, &r, &ans);
    assert_non_null(strstr(ans.text, "<script src=\"/status.js\""));
    assert_null(strstr(ans.text, "<script>")); /* nothing inline: the policy would refuse it */
    assert_null(strstr(ans.text, "http://"));  /* nothing from elsewhere */
    assert_null(strstr(ans.text, "https://"));
    r.method = "POST";
    cs_http_dispatch(&f->opts, &r, &ans);
    assert_int_equal(ans.status, 405);
    assert_null(ans.text);
    json_decref(ans.body);
    assert_int_equal(req(f, "GET", "/status.html", NULL, NULL, NULL, NULL), 401); /* not a page path */
    assert_int_equal(req(f, "GET", "/status.html", NULL, VIEW, NULL, NULL), 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_routes_and_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clusters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

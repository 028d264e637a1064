/* test_agent.c - agent/: the routes (paths, methods, unknown and unserved
 * operations, malformed JSON, request errors naming fields, job ids) in
 * dry-run mode, the allowed repositories (--allow-repo: path component
 * boundaries, "..", none allowed, init refused), and one real job through
 * the registry (list of a location that holds no repository: it ends
 * failed with its error), and fencing (X-Cassette-Epoch: kept across
 * agents in <state_dir>/agent-epoch, an older one refused with 409, a
 * malformed one with 400, none accepted), and GET /metrics (its text,
 * the ended jobs counted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"

static cs_host host; /* empty: dry runs touch nothing, list needs no node */

static cs_http_answer call(cs_agent *a, const char *method, const char *path, const char *body)
{
    cs_http_request req = { .method = method, .path = path, .body = body ? body : "",
                            .body_len = body ? strlen(body) : 0 };
    cs_http_answer ans = { 0 };
    cs_agent_handle(a, &req, &ans);
    assert_non_null(ans.body);
    return ans;
}

/* status and, for an error, the message contains want (and field names the field). */
static void expect(cs_agent *a, const char *method, const char *path, const char *body, unsigned status,
                   const char *want, const char *field)
{
    cs_http_answer ans = call(a, method, path, body);
    if (ans.status != status)
        fail_msg("%s %s: status %u, wanted %u", method, path, ans.status, status);
    if (want) {
        const char *msg = json_string_value(json_object_get(ans.body, "error"));
        assert_non_null(msg);
        if (!strstr(msg, want))
            fail_msg("%s %s: \"%s\" does not say \"%s\"", method, path, msg, want);
        const json_t *f = json_object_get(ans.body, "field");
        if (field)
            assert_string_equal(json_string_value(f), field);
        else
            assert_null(f);
    }
    json_decref(ans.body);
}

static void test_routes(void **state)
{
    (void)state;
    cs_agent *a = cs_agent_new(&host);
    cs_agent_set_dry_run(a, true);
    assert_int_equal(cs_agent_allow_repo(a, "/r", NULL), 0);
    expect(a, "GET", "/", NULL, 404, "no such path", NULL);
    expect(a, "GET", "/v1", NULL, 404, "no such path", NULL);
    expect(a, "GET", "/v1/nodes", NULL, 404, "no such path", NULL);
    expect(a, "GET", "/v1/ops/", NULL, 404, "no such path", NULL);
    expect(a, "POST", "/v1/node", NULL, 405, "GET", NULL);
    expect(a, "DELETE", "/v1/ops", NULL, 405, "GET", NULL);
    expect(a, "GET", "/v1/ops/backup", NULL, 405, "POST", NULL);
    expect(a, "GET", "/v1/jobs/1/cancel", NULL, 405, "POST", NULL);
    expect(a, "GET", "/v1/jobs/x", NULL, 404, "number", NULL);
    expect(a, "GET", "/v1/jobs/99999999999999999999", NULL, 404, "number", NULL);
    expect(a, "GET", "/v1/jobs/7", NULL, 404, "no job 7", NULL);
    expect(a, "POST", "/v1/jobs/7/cancel", NULL, 404, "no job 7", NULL);
    expect(a, "GET", "/v1/jobs/7/other", NULL, 404, "no such path", NULL);
    expect(a, "GET", "/v1/node", NULL, 503, "dry run", NULL);
    /* operations: unknown, not served, bad bodies, bad fields */
    expect(a, "POST", "/v1/ops/nope", "{}", 404, "no operation \"nope\"", NULL);
    expect(a, "POST", "/v1/ops/key generate", "{}", 403, "does not serve", NULL);
    expect(a, "POST", "/v1/ops/purge", "{}", 403, "does not serve", NULL);
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":", 400, "malformed JSON", NULL);
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":\"/r\",\"repo\":\"/s\"}", 400, "malformed JSON", NULL);
    expect(a, "POST", "/v1/ops/backup", "[1]", 400, "JSON object", NULL);
    expect(a, "POST", "/v1/ops/backup", "{}", 400, "repo", "repo");
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":\"/r\",\"jobs\":0}", 400, "jobs", "jobs");
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":\"/r\",\"cql_password\":\"x\"}", 400, "cql_password",
           "cql_password"); /* a host setting is never taken from a request */
    expect(a, "POST", "/v1/ops/restore", "{\"repo\":\"/r\"}", 400, "backup", "backup");
    expect(a, "POST", "/v1/ops/snapshot", "{}", 400, "tag", "tag");
    expect(a, "POST", "/v1/ops/snapshot", "{\"tag\":\"../x\"}", 400, "invalid snapshot tag", "tag");
    expect(a, "POST", "/v1/ops/snapshot clear", "{\"tag\":\"t\",\"tables\":[]}", 400, "unknown field",
           "tables");
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":\"/r\",\"snapshot\":\"a/b\"}", 400, "invalid snapshot tag",
           "snapshot");
    cs_http_answer ans = call(a, "POST", "/v1/ops/backup", "{\"repo\":\"/r\",\"keyspaces\":[\"ks\"]}");
    assert_int_equal(ans.status, 202);
    assert_true(json_is_true(json_object_get(ans.body, "dry_run")));
    json_decref(ans.body);
    cs_agent_free(a);
}

/* One request with an X-Cassette-Epoch header (NULL: none); its status. */
static unsigned call_epoch(cs_agent *a, const char *method, const char *path, const char *epoch, const char *want)
{
    cs_http_request req = { .method = method, .path = path, .body = "{\"tag\":\"t\"}", .body_len = 11, .epoch = epoch };
    cs_http_answer ans = { 0 };
    cs_agent_handle(a, &req, &ans);
    assert_non_null(ans.body);
    if (want) {
        const char *msg = json_string_value(json_object_get(ans.body, "error"));
        if (!msg || strcmp(msg, want))
            fail_msg("%s: \"%s\", wanted \"%s\"", epoch ? epoch : "(none)", msg ? msg : "", want);
    }
    unsigned status = ans.status;
    json_decref(ans.body);
    return status;
}

static void test_fence(void **state)
{
    (void)state;
    char dir[] = "/tmp/cs-test-fence-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[64];
    snprintf(sub, sizeof sub, "%s/state", dir); /* made on first use */
    cs_host h;
    memset(&h, 0, sizeof h);
    h.state_dir = sub;
    cs_agent *a = cs_agent_new(&h);
    cs_agent_set_dry_run(a, true);
    const char *op = "/v1/ops/snapshot";
    assert_int_equal(call_epoch(a, "POST", op, NULL, NULL), 202);
    assert_int_equal(call_epoch(a, "POST", op, "1700000000005", NULL), 202);
    assert_int_equal(call_epoch(a, "POST", op, "1700000000005", NULL), 202); /* the same: fine */
    assert_int_equal(call_epoch(a, "POST", op, "1700000000004", "fenced: epoch 1700000000004 is older than 1700000000005"),
                     409);
    assert_int_equal(call_epoch(a, "GET", "/v1/jobs", "7", NULL), 409);
    assert_int_equal(call_epoch(a, "POST", op, NULL, NULL), 202); /* no header: the CLI */
    assert_int_equal(call_epoch(a, "POST", op, "", NULL), 400);
    assert_int_equal(call_epoch(a, "POST", op, "-3", NULL), 400);
    assert_int_equal(call_epoch(a, "POST", op, "12 ", NULL), 400);
    assert_int_equal(call_epoch(a, "POST", op, "99999999999999999999", NULL), 400);
    assert_int_equal(call_epoch(a, "POST", op, "1700000000009", NULL), 202);
    cs_agent_free(a);

    /* a new agent (a restart) remembers the highest epoch from its file */
    char path[96];
    snprintf(path, sizeof path, "%s/agent-epoch", sub);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[32] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "1700000000009\n");
    a = cs_agent_new(&h);
    cs_agent_set_dry_run(a, true);
    assert_int_equal(call_epoch(a, "POST", op, "1700000000008", "fenced: epoch 1700000000008 is older than 1700000000009"),
                     409);
    assert_int_equal(call_epoch(a, "POST", op, "1700000000010", NULL), 202);
    cs_agent_free(a);

    /* a file that holds no epoch: refused, not taken as 0 */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("garbage\n", f);
    fclose(f);
    a = cs_agent_new(&h);
    cs_agent_set_dry_run(a, true);
    assert_int_equal(call_epoch(a, "POST", op, "1700000000011", NULL), 503);
    assert_int_equal(call_epoch(a, "POST", op, NULL, NULL), 202);
    cs_agent_free(a);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

static void test_allow_list(void **state)
{
    (void)state;
    cs_strlist allowed = { NULL, 0 };
    assert_false(cs_agent_repo_allowed(&allowed, "/r")); /* none given: none allowed */
    cs_strlist_add(&allowed, "s3://b/x");
    cs_strlist_add(&allowed, "/srv/backups/");
    assert_true(cs_agent_repo_allowed(&allowed, "s3://b/x"));
    assert_true(cs_agent_repo_allowed(&allowed, "s3://b/x/"));
    assert_true(cs_agent_repo_allowed(&allowed, "s3://b/x/y"));
    assert_true(cs_agent_repo_allowed(&allowed, "s3://b/x/y/z"));
    assert_false(cs_agent_repo_allowed(&allowed, "s3://b/xy"));    /* a sibling with the same prefix */
    assert_false(cs_agent_repo_allowed(&allowed, "s3://b/"));
    assert_false(cs_agent_repo_allowed(&allowed, "s3://b"));
    assert_false(cs_agent_repo_allowed(&allowed, "s3://c/x"));
    assert_false(cs_agent_repo_allowed(&allowed, "s3://b/x/../y"));
    assert_false(cs_agent_repo_allowed(&allowed, "s3://b/x/.."));
    assert_true(cs_agent_repo_allowed(&allowed, "s3://b/x/..y")); /* a name, not a component */
    assert_true(cs_agent_repo_allowed(&allowed, "/srv/backups"));
    assert_true(cs_agent_repo_allowed(&allowed, "/srv/backups/node1"));
    assert_false(cs_agent_repo_allowed(&allowed, "/srv/backups2"));
    assert_false(cs_agent_repo_allowed(&allowed, "/srv/backups/../etc"));
    assert_false(cs_agent_repo_allowed(&allowed, "/srv"));
    assert_false(cs_agent_repo_allowed(&allowed, ""));
    assert_false(cs_agent_repo_allowed(&allowed, NULL));
    cs_strlist_free(&allowed);
    cs_strlist_add(&allowed, "/");
    assert_true(cs_agent_repo_allowed(&allowed, "/anything/below"));
    assert_false(cs_agent_repo_allowed(&allowed, "/a/../b"));
    assert_false(cs_agent_repo_allowed(&allowed, "s3://b/x"));
    cs_strlist_free(&allowed);

    cs_agent *a = cs_agent_new(&host);
    cs_agent_set_dry_run(a, true);
    /* none allowed: no request that names a repository */
    expect(a, "POST", "/v1/ops/list", "{\"repo\":\"/r\"}", 403, "--allow-repo", NULL);
    expect(a, "POST", "/v1/ops/snapshot", "{\"tag\":\"t1\"}", 202, NULL, NULL); /* names none */
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_agent_allow_repo(a, "/r/../s", &e), CS_E_USAGE);
    assert_non_null(strstr(e.msg, ".."));
    assert_int_equal(cs_agent_allow_repo(a, "", &e), CS_E_USAGE);
    assert_int_equal(cs_agent_allow_repo(a, "s3://b/x", &e), 0);
    expect(a, "POST", "/v1/ops/list", "{\"repo\":\"s3://b/x/y\"}", 202, NULL, NULL);
    expect(a, "POST", "/v1/ops/list", "{\"repo\":\"s3://b/xy\"}", 403,
           "repository s3://b/xy is not allowed on this agent (--allow-repo)", NULL);
    expect(a, "POST", "/v1/ops/list", "{\"repo\":\"s3://b/x/../z\"}", 403, "not allowed", NULL);
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":\"s3://b/x\",\"init\":true,\"no_encryption\":true}", 403,
           "the agent does not create repositories; run cassette init", NULL);
    expect(a, "POST", "/v1/ops/backup", "{\"repo\":\"s3://b/x\",\"init\":false,\"snapshot\":\"t1\"}", 202, NULL,
           NULL);
    expect(a, "POST", "/v1/ops/list", "{\"repo\":7}", 400, "repo", "repo"); /* its own check */
    cs_agent_free(a);
}

static void test_ops_listed(void **state)
{
    (void)state;
    cs_agent *a = cs_agent_new(&host);
    cs_http_answer ans = call(a, "GET", "/v1/ops", NULL);
    assert_int_equal(ans.status, 200);
    assert_true(json_is_array(ans.body));
    bool backup = false;
    size_t i;
    json_t *op;
    json_array_foreach(ans.body, i, op) {
        const char *name = json_string_value(json_object_get(op, "name"));
        assert_true(cs_agent_serves(cs_op_find(name)));
        assert_true(json_is_array(json_object_get(op, "fields")));
        backup |= !strcmp(name, "backup");
    }
    assert_true(backup);
    assert_true(cs_agent_serves(cs_op_find("snapshot")));
    assert_true(cs_agent_serves(cs_op_find("snapshot clear")));
    assert_false(cs_agent_serves(cs_op_find("key generate")));
    assert_false(cs_agent_serves(cs_op_find("purge")));
    json_decref(ans.body);
    cs_agent_free(a);
}

/* GET /metrics: the text, its Content-Type; *text owned by the caller. */
static char *metrics(cs_agent *a)
{
    cs_http_request req = { .method = "GET", .path = "/metrics", .body = "" };
    cs_http_answer ans = { 0 };
    cs_agent_handle(a, &req, &ans);
    assert_int_equal(ans.status, 200);
    assert_null(ans.body);
    assert_non_null(ans.text);
    assert_non_null(strstr(ans.content_type, "text/plain; version=0.0.4"));
    char *text = strndup(ans.text, ans.text_len);
    cs_http_answer_clear(&ans);
    return text;
}

static void test_metrics_route(void **state)
{
    (void)state;
    cs_agent *a = cs_agent_new(&host);
    cs_agent_set_dry_run(a, true);
    cs_agent_set_version(a, "1.2.3");
    expect(a, "POST", "/metrics", NULL, 405, "GET", NULL);
    char *text = metrics(a);
    assert_non_null(strstr(text, "# TYPE cassette_agent_info gauge\ncassette_agent_info{version=\"1.2.3\",host_id=\"\"} 1\n"));
    assert_non_null(strstr(text, "\ncassette_agent_epoch 0\n"));
    assert_non_null(strstr(text, "\ncassette_agent_jobs_running 0\n"));
    assert_non_null(strstr(text, "# TYPE cassette_agent_jobs_total counter\n"));
    assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
    /* the families in docs/metrics.md's order */
    assert_true(strstr(text, "cassette_agent_info") < strstr(text, "cassette_agent_epoch"));
    assert_true(strstr(text, "cassette_agent_jobs_total") < strstr(text, "cassette_data_directory_free_ratio"));
    free(text);
    cs_agent_free(a);
}

static void test_job_fails(void **state)
{
    (void)state;
    cs_agent *a = cs_agent_new(&host);
    assert_int_equal(cs_agent_allow_repo(a, "/nonexistent", NULL), 0);
    cs_http_answer ans = call(a, "POST", "/v1/ops/list", "{\"repo\":\"/nonexistent/cassette-test-repo\"}");
    assert_int_equal(ans.status, 202);
    json_int_t id = json_integer_value(json_object_get(ans.body, "job"));
    assert_true(id > 0);
    json_decref(ans.body);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)id);
    const char *st = "running";
    for (int i = 0; i < 500 && !strcmp(st, "running"); i++) { /* up to 5 s: a list of nothing is quick */
        ans = call(a, "GET", path, NULL);
        assert_int_equal(ans.status, 200);
        st = strcmp(json_string_value(json_object_get(ans.body, "state")), "running") ? "over" : "running";
        if (strcmp(st, "running")) {
            assert_string_equal(json_string_value(json_object_get(ans.body, "state")), "failed");
            const json_t *err = json_object_get(ans.body, "error");
            assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "not a cassette repository"));
            assert_string_equal(json_string_value(json_object_get(json_object_get(ans.body, "progress"), "op")),
                                "list");
            assert_null(json_object_get(ans.body, "result"));
        }
        json_decref(ans.body);
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    assert_string_equal(st, "over");
    ans = call(a, "GET", "/v1/jobs", NULL);
    assert_int_equal(json_array_size(ans.body), 1);
    json_decref(ans.body);
    cs_agent_set_dry_run(a, true); /* /metrics asks no node then */
    char *text = metrics(a);
    assert_non_null(strstr(text, "\ncassette_agent_jobs_total{op=\"list\",state=\"failed\"} 1\n"));
    assert_non_null(strstr(text, "\ncassette_agent_jobs_running 0\n"));
    assert_null(strstr(text, "cassette_agent_job_phase{"));
    free(text);
    cs_agent_set_dry_run(a, false);
    ans = call(a, "POST", strcat(path, "/cancel"), NULL); /* over already: left as it is */
    assert_int_equal(ans.status, 202);
    assert_string_equal(json_string_value(json_object_get(ans.body, "state")), "failed");
    json_decref(ans.body);
    cs_agent_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_fence),
        cmocka_unit_test(test_ops_listed),
        cmocka_unit_test(test_job_fails),
        cmocka_unit_test(test_metrics_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

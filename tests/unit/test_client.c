/* test_client.c - cli/client: which command lines are client mode, the
 * request each one makes (method, path, body), usage mistakes, the text of
 * answers and runs, and the one-line error of an answer. No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "common/buf.h"
#include "common/err.h"

#define ARGV(...) ((char *[]){ "cassette", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "cassette", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(call, e, ...) cs_client_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), call, e)

/* The call's body as compact JSON with sorted keys ("" when none). */
static char *body_text(const cs_client_call *c)
{
    return c->body ? json_dumps(c->body, JSON_COMPACT | JSON_SORT_KEYS) : cs_strdup("");
}

static void expect(const char *method, const char *path, const char *body, int argc, char **argv)
{
    cs_client_call c;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_client_parse(argc, argv, &c, &e);
    if (rc)
        fail_msg("%s: %s", argv[1], e.msg);
    assert_string_equal(c.method, method);
    assert_string_equal(c.path, path);
    char *b = body_text(&c);
    assert_string_equal(b, body);
    free(b);
    cs_client_call_free(&c);
}
#define EXPECT(method, path, body, ...) expect(method, path, body, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_which_commands(void **state)
{
    (void)state;
    bool must = false;
    assert_true(cs_client_command(ARGC("task", "list"), ARGV("task", "list"), &must));
    assert_true(must);
    assert_true(cs_client_command(ARGC("--server", "http://x", "run", "show", "r1"),
                                  ARGV("--server", "http://x", "run", "show", "r1"), &must));
    assert_true(must);
    assert_true(cs_client_command(ARGC("--repo", "/r", "backup"), ARGV("--repo", "/r", "backup"), &must));
    assert_false(must);
    assert_true(cs_client_command(ARGC("cluster", "register"), ARGV("cluster", "register"), &must));
    /* the value of an option is not the command */
    assert_true(cs_client_command(ARGC("--keyspace", "list", "restore"), ARGV("--keyspace", "list", "restore"),
                                  &must));
    assert_false(must);
    /* not client mode: cluster backup, verify, no command */
    assert_false(cs_client_command(ARGC("cluster", "backup"), ARGV("cluster", "backup"), &must));
    assert_false(cs_client_command(ARGC("verify"), ARGV("verify"), &must));
    assert_false(cs_client_command(ARGC("--json"), ARGV("--json"), &must));
    assert_true(cs_client_command(ARGC("help", "task"), ARGV("help", "task"), &must));
    assert_true(must);
}

static void test_requests(void **state)
{
    (void)state;
    EXPECT("POST", "/v1/clusters",
           "{\"agent_template\":\"https://{rpc_address}:7620\",\"agents\":[\"https://a:1\",\"https://b:1\"],"
           "\"contact\":\"127.0.0.19\",\"id\":\"prod\",\"repo\":\"s3://b/p\"}",
           "--server", "http://s:7630", "cluster", "register", "--id", "prod", "--contact", "127.0.0.19", "--repo",
           "s3://b/p", "--agent", "https://a:1", "--agent=https://b:1", "--agent-template",
           "https://{rpc_address}:7620");
    EXPECT("GET", "/v1/clusters", "", "cluster", "list");
    EXPECT("GET", "/v1/clusters/prod", "", "cluster", "show", "prod");
    EXPECT("DELETE", "/v1/clusters/prod", "", "cluster", "remove", "prod");
    EXPECT("POST", "/v1/tasks",
           "{\"cluster\":\"prod\",\"kind\":\"backup\",\"params\":{\"deep\":true,\"keyspaces\":[\"a\"],"
           "\"sample\":\"10\",\"type\":\"snapshot\"},\"retries\":3,\"schedule\":\"0 * * * *\",\"timezone\":"
           "\"Europe/Paris\",\"window\":[\"mon-fri 01:00-05:00\",\"sat 00:00-23:59\"]}",
           "task", "add", "--cluster", "prod", "--kind", "backup", "--schedule", "0 * * * *", "--timezone",
           "Europe/Paris", "--window", "mon-fri 01:00-05:00", "--window", "sat 00:00-23:59", "--retries", "3",
           "--param", "type=snapshot", "--param", "deep=true", "--param", "keyspaces=[\"a\"]", "--param",
           "sample=\"10\"");
    EXPECT("GET", "/v1/tasks", "", "task", "list");
    EXPECT("GET", "/v1/tasks?cluster=prod%20x", "", "task", "list", "--cluster", "prod x");
    EXPECT("GET", "/v1/tasks/t-1", "", "task", "show", "t-1");
    EXPECT("POST", "/v1/tasks/t-1/run", "", "task", "run", "t-1");
    EXPECT("PATCH", "/v1/tasks/t-1", "{\"enabled\":false}", "task", "disable", "t-1");
    EXPECT("PATCH", "/v1/tasks/t-1", "{\"enabled\":true}", "task", "enable", "t-1");
    EXPECT("DELETE", "/v1/tasks/t-1", "", "task", "remove", "t-1");
    EXPECT("GET", "/v1/runs?cluster=c&task=t&state=failed", "", "run", "list", "--state", "failed", "--task", "t",
           "--cluster", "c");
    EXPECT("GET", "/v1/runs/r-1", "", "run", "show", "r-1");
    EXPECT("POST", "/v1/runs/r-1/cancel", "", "run", "cancel", "r-1");
    EXPECT("POST", "/v1/clusters/prod/backups", "{\"keyspaces\":[\"ks1\",\"ks2\"],\"type\":\"cluster_consistent\"}",
           "backup", "--cluster", "prod", "--type", "cluster_consistent", "--keyspace", "ks1", "--keyspace", "ks2",
           "--wait");
    EXPECT("POST", "/v1/clusters/prod/backups", "{}", "backup", "--cluster", "prod");
    EXPECT("POST", "/v1/clusters/prod/backups",
           "{\"name\":\"b1\",\"pause_cmd\":\"/bin/p\",\"resume_cmd\":\"/bin/r\",\"type\":\"cluster_consistent\"}",
           "backup", "--cluster", "prod", "--name", "b1", "--type", "cluster_consistent", "--pause-cmd", "/bin/p",
           "--resume-cmd", "/bin/r");
    EXPECT("GET", "/v1/clusters/prod/backups", "", "--json", "list", "--cluster", "prod");
    EXPECT("POST", "/v1/clusters/prod/restores",
           "{\"backup\":\"b1\",\"keyspaces\":[\"ks\"],\"nodes\":[\"127.0.0.1\",\"127.0.0.2\"],\"tables\":[\"ks.t\"]}",
           "restore", "--cluster", "prod", "--backup", "b1", "--keyspace", "ks", "--table", "ks.t", "--node",
           "127.0.0.1", "--node", "127.0.0.2");
}

static void test_globals(void **state)
{
    (void)state;
    cs_client_call c;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(PARSE(&c, &e, "--server=https://s:7630", "--server-token-file", "/t", "--server-ca-file",
                           "/ca.pem", "--json", "-q", "backup", "--cluster", "prod", "--wait"),
                     0);
    assert_string_equal(c.server, "https://s:7630");
    assert_string_equal(c.token_file, "/t");
    assert_string_equal(c.ca_file, "/ca.pem");
    assert_true(c.json);
    assert_true(c.wait);
    assert_int_equal(c.shape, CS_CLIENT_RUN);
    cs_client_call_free(&c);
}

static void usage(const char *want, int argc, char **argv)
{
    cs_client_call c;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_client_parse(argc, argv, &c, &e);
    assert_int_equal(rc, CS_E_USAGE);
    assert_string_equal(e.msg, want);
    assert_null(c.method);
}
#define USAGE(want, ...) usage(want, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_usage_mistakes(void **state)
{
    (void)state;
    USAGE("task add needs --cluster", "task", "add", "--kind", "backup");
    USAGE("list does not take --repo", "list", "--cluster", "c", "--repo", "/r");
    USAGE("unknown option --cql-host (with --server)", "backup", "--cluster", "c", "--cql-host", "h");
    USAGE("usage: cassette --server URL run show ID", "run", "show");
    USAGE("usage: cassette --server URL task add|list|show|run|disable|enable|remove ...", "task", "frob");
    USAGE("\"../etc\" is not an id", "task", "show", "../etc");
    USAGE("--param wants name=value, not \"deep\"", "task", "add", "--cluster", "c", "--kind", "verify", "--param",
          "deep");
    USAGE("--retries wants a whole number, not \"x\"", "task", "add", "--cluster", "c", "--kind", "verify",
          "--retries", "x");
    USAGE("restore needs --backup", "restore", "--cluster", "c");
    USAGE("option --wait takes no value", "backup", "--cluster", "c", "--wait=1");
}

/* What cs_client_render prints for the answer text to the command line. */
static char *rendered(const char *answer, int argc, char **argv)
{
    cs_client_call c;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_client_parse(argc, argv, &c, &e), 0);
    json_t *doc = answer ? json_loads(answer, 0, NULL) : NULL;
    assert_true(!answer || doc);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cs_client_render(f, &c, doc);
    fclose(f);
    json_decref(doc);
    cs_client_call_free(&c);
    return text;
}
#define RENDERED(answer, ...) rendered(answer, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_render(void **state)
{
    (void)state;
    char *t = RENDERED("{\"clusters\": []}", "cluster", "list");
    assert_string_equal(t, "no clusters\n");
    free(t);
    t = RENDERED("{\"clusters\": [{\"id\": \"prod\", \"name\": \"Test Cluster\", \"repo\": \"s3://b/p\", \"nodes\": "
                 "[{}, {}]}]}",
                 "cluster", "list");
    assert_non_null(strstr(t, "ID "));
    assert_non_null(strstr(t, "prod "));
    assert_non_null(strstr(t, "Test Cluster"));
    assert_non_null(strstr(t, "    2  s3://b/p\n"));
    free(t);
    t = RENDERED("{\"id\": \"prod\", \"name\": \"TC\", \"repo\": \"/r\", \"nodes\": [{\"address\": \"127.0.0.19\", "
                 "\"datacenter\": \"dc1\", \"rack\": \"r1\", \"host_id\": \"h\", \"agent\": \"http://a\", \"ok\": "
                 "false}]}",
                 "cluster", "register", "--repo", "/r");
    assert_non_null(strstr(t, "registered cluster prod: TC, 1 nodes, repository /r\n"));
    assert_non_null(strstr(t, "127.0.0.19"));
    assert_non_null(strstr(t, "(unreachable)"));
    free(t);
    t = RENDERED(NULL, "cluster", "remove", "prod");
    assert_string_equal(t, "removed cluster prod\n");
    free(t);
    t = RENDERED("{\"id\": \"t-1\", \"cluster\": \"prod\", \"kind\": \"backup\", \"schedule\": \"@every 1h\", "
                 "\"timezone\": \"UTC\", \"enabled\": false, \"retries\": 1, \"window\": [\"mon 01:00-02:00\"], "
                 "\"params\": {\"type\": \"snapshot\"}}",
                 "task", "disable", "t-1");
    assert_string_equal(t, "disabled task t-1: backup on cluster prod, schedule @every 1h UTC, disabled, retries 1\n"
                           "  window mon 01:00-02:00\n  params {\"type\":\"snapshot\"}\n");
    free(t);
    t = RENDERED("{\"tasks\": [{\"id\": \"t-1\", \"cluster\": \"prod\", \"kind\": \"purge\"}]}", "task", "list");
    assert_non_null(strstr(t, "t-1 "));
    assert_non_null(strstr(t, "purge"));
    free(t);
    t = RENDERED("{\"id\": \"r-1\", \"cluster\": \"prod\", \"kind\": \"backup\", \"state\": \"failed\", "
                 "\"started\": 86400, \"ended\": null, \"error\": \"node 1 down\", \"progress\": {\"phase\": "
                 "\"upload\", \"files_done\": 1, \"files_total\": 4, \"bytes_done\": 0, \"bytes_total\": 0}}",
                 "run", "show", "r-1");
    assert_string_equal(t, "run r-1: backup of cluster prod, failed (started 1970-01-02T00:00:00Z, ended -)\n"
                           "  upload: 1/4 files, 0 B/0 B\n  error: node 1 down\n");
    free(t);
    t = RENDERED("{\"runs\": []}", "run", "list");
    assert_string_equal(t, "no runs\n");
    free(t);
    t = RENDERED("{\"backups\": []}", "list", "--cluster", "prod");
    assert_string_equal(t, "no backups\n");
    free(t);
    t = RENDERED("{\"id\": \"r-2\", \"cluster\": \"prod\", \"kind\": \"backup\", \"state\": \"queued\"}", "backup",
                 "--cluster", "prod");
    assert_non_null(strstr(t, "queued run r-2: backup of cluster prod, queued"));
    free(t);
}

static void test_verdicts_and_errors(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    json_t *run = json_pack("{s:s, s:s}", "id", "r-1", "state", "done");
    assert_int_equal(cs_client_run_verdict(run, &e), 0);
    json_object_set_new(run, "state", json_string("failed"));
    json_object_set_new(run, "error", json_string("node down"));
    json_object_set_new(run, "error_code", json_integer(CS_E_UNAVAIL));
    assert_int_equal(cs_client_run_verdict(run, &e), CS_E_UNAVAIL);
    assert_string_equal(e.msg, "run r-1 failed: node down");
    json_object_set_new(run, "state", json_string("cancelled"));
    json_object_del(run, "error");
    json_object_del(run, "error_code");
    assert_int_equal(cs_client_run_verdict(run, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, "run r-1 cancelled");
    json_decref(run);

    const char *body = "{\"error\": \"no cluster nope\", \"field\": \"id\"}";
    assert_int_equal(cs_client_http_error(404, body, strlen(body), &e), CS_E_NOTFOUND);
    assert_string_equal(e.msg, "no cluster nope (HTTP 404)");
    body = "{\"error\": \"forbidden: viewer\"}";
    assert_int_equal(cs_client_http_error(403, body, strlen(body), &e), CS_E_USAGE);
    assert_string_equal(e.msg, "forbidden: viewer (HTTP 403)");
    assert_int_equal(cs_client_http_error(401, "", 0, &e), CS_E_USAGE);
    assert_string_equal(e.msg, "the server refused the token (HTTP 401)");
    assert_int_equal(cs_client_http_error(502, "<html>", 6, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, "no reason given (HTTP 502)");
    assert_int_equal(cs_client_http_error(409, NULL, 0, &e), CS_E_EXISTS);
}

static void test_usage_text(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cs_client_usage(f);
    fclose(f);
    assert_non_null(strstr(text, "cassette --server URL task add --cluster V --kind V [--id V] [--schedule V]"));
    assert_non_null(strstr(text, "cassette --server URL restore --cluster V --backup V"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_which_commands), cmocka_unit_test(test_requests),
        cmocka_unit_test(test_globals),        cmocka_unit_test(test_usage_mistakes),
        cmocka_unit_test(test_render),         cmocka_unit_test(test_verdicts_and_errors),
        cmocka_unit_test(test_usage_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

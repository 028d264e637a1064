/* test_server_stats.c - server/stats: ended runs counted once into the
 * docs/metrics.md "Server" rows (runs by state, errors by kind, the
 * duration histogram, backup counters from the result document, the
 * newest backup's size and dedup ratio, the newest verify's damage,
 * drills), history seeding only the gauges, the repository listing's
 * newest complete backup, the lease, and the exposition limited to the
 * registered clusters with queue and running from the open runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/metrics.h"
#include "server/stats.h"

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad JSON in the test: %s: %s", je.text, text);
    return j;
}

/* A cluster backup's run as the runner ends it: two nodes. */
static json_t *backup_run(const char *state, double started, double ended)
{
    json_t *run = parse("{\"id\": \"r1\", \"cluster\": \"c1\", \"kind\": \"backup\", \"result\": {\"name\": \"b\","
                        " \"complete\": true, \"nodes\": ["
                        "{\"address\": \"n1\", \"backup\": {\"files\": 10, \"files_new\": 4, \"files_unchanged\": 6,"
                        " \"bytes_read\": 1000, \"bytes_stored\": 400, \"bytes_resumed\": 100, \"size\": 2000,"
                        " \"size_new\": 500}},"
                        "{\"address\": \"n2\", \"backup\": {\"files\": 5, \"files_new\": 1, \"files_unchanged\": 4,"
                        " \"bytes_read\": 300, \"bytes_stored\": 200, \"bytes_resumed\": 0, \"size\": 2000,"
                        " \"size_new\": 300}},"
                        "{\"address\": \"n3\", \"backup\": null}]}}");
    json_object_set_new(run, "state", json_string(state));
    json_object_set_new(run, "started", json_real(started));
    json_object_set_new(run, "ended", json_real(ended));
    return run;
}

static char *render(cs_stats *s, const char *clusters, const char *tasks, const char *open)
{
    json_t *c = parse(clusters), *t = parse(tasks), *o = parse(open);
    cs_stats_live live = { .version = "1.2.3", .server = "srv#1", .clusters = c, .tasks = t, .open_runs = o };
    char *text = cs_stats_render(s, &live);
    json_decref(c);
    json_decref(t);
    json_decref(o);
    return text;
}

/* The value of the sample name{labels} in text (the labels as written). */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    fail_msg("no sample %s in:\n%s", series, text);
    return 0;
}

static bool has(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == ' ' || p[n] == '{'))
            return true;
    return false;
}

#define C1 "[{\"id\": \"c1\"}]"

static void test_backup_runs(void **state)
{
    (void)state;
    cs_stats *s = cs_stats_new();
    json_t *run = backup_run("done", 1000, 1100);
    cs_stats_run_ended(s, run);
    json_decref(run);
    char *t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_task_last_success_timestamp_seconds{cluster=\"c1\",kind=\"backup\"}"), 1100);
    assert_false(has(t, "cassette_task_last_failure_timestamp_seconds"));
    assert_int_equal(value_of(t, "cassette_task_runs_total{cluster=\"c1\",kind=\"backup\",state=\"done\"}"), 1);
    assert_int_equal(value_of(t, "cassette_task_runs_total{cluster=\"c1\",kind=\"backup\",state=\"failed\"}"), 0);
    assert_int_equal(value_of(t, "cassette_task_errors_total{cluster=\"c1\",kind=\"backup\",error=\"storage\"}"), 0);
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_bucket{cluster=\"c1\",kind=\"backup\",le=\"60\"}"), 0);
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_bucket{cluster=\"c1\",kind=\"backup\",le=\"120\"}"), 1);
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_sum{cluster=\"c1\",kind=\"backup\"}"), 100);
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_count{cluster=\"c1\",kind=\"backup\"}"), 1);
    assert_int_equal(value_of(t, "cassette_backup_bytes_read_total{cluster=\"c1\"}"), 1300);
    assert_int_equal(value_of(t, "cassette_backup_bytes_stored_total{cluster=\"c1\"}"), 600);
    assert_int_equal(value_of(t, "cassette_backup_bytes_uploaded_total{cluster=\"c1\"}"), 500);
    assert_int_equal(value_of(t, "cassette_backup_files_new_total{cluster=\"c1\"}"), 5);
    assert_int_equal(value_of(t, "cassette_backup_files_unchanged_total{cluster=\"c1\"}"), 10);
    assert_int_equal(value_of(t, "cassette_backup_last_size_bytes{cluster=\"c1\"}"), 4000);
    assert_true(value_of(t, "cassette_backup_last_dedup_ratio{cluster=\"c1\"}") == 0.8); /* 3200 / 4000 */
    assert_int_equal(value_of(t, "cassette_server_info{version=\"1.2.3\",server=\"srv#1\"}"), 1);
    assert_int_equal(value_of(t, "cassette_clusters"), 1);
    assert_int_equal(value_of(t, "cassette_queue_length{cluster=\"c1\"}"), 0);
    free(t);

    /* a failed one: its counters move (a failed backup may have read bytes), last size stays */
    run = backup_run("failed", 2000, 2010);
    json_object_set_new(run, "error_code", json_string("I/O error"));
    json_object_set_new(run, "error", json_string("cluster backup b is incomplete: node n1: upload of object 3f: S3 "
                                                  "answered 503"));
    json_t *nodes = json_object_get(json_object_get(run, "result"), "nodes");
    json_object_set_new(json_object_get(json_array_get(nodes, 0), "backup"), "size", json_integer(9999));
    cs_stats_run_ended(s, run);
    json_decref(run);
    t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_task_last_failure_timestamp_seconds{cluster=\"c1\",kind=\"backup\"}"), 2010);
    assert_int_equal(value_of(t, "cassette_task_last_success_timestamp_seconds{cluster=\"c1\",kind=\"backup\"}"), 1100);
    assert_int_equal(value_of(t, "cassette_task_runs_total{cluster=\"c1\",kind=\"backup\",state=\"failed\"}"), 1);
    assert_int_equal(value_of(t, "cassette_task_errors_total{cluster=\"c1\",kind=\"backup\",error=\"storage\"}"), 1);
    assert_int_equal(value_of(t, "cassette_backup_bytes_read_total{cluster=\"c1\"}"), 2600);
    assert_int_equal(value_of(t, "cassette_backup_last_size_bytes{cluster=\"c1\"}"), 4000);
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_count{cluster=\"c1\",kind=\"backup\"}"), 2);
    free(t);
    cs_stats_free(s);
}

static void test_seed_moves_gauges_only(void **state)
{
    (void)state;
    cs_stats *s = cs_stats_new();
    json_t *older = backup_run("done", 100, 200), *newer = backup_run("done", 300, 400);
    json_t *failed = parse("{\"cluster\": \"c1\", \"kind\": \"verify\", \"state\": \"failed\", \"started\": 50,"
                           " \"ended\": 60, \"error_code\": \"corrupt data\", \"error\": \"x\"}");
    cs_stats_seed_run(s, newer);
    cs_stats_seed_run(s, older); /* an older end never wins */
    cs_stats_seed_run(s, failed);
    char *t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_task_last_success_timestamp_seconds{cluster=\"c1\",kind=\"backup\"}"), 400);
    assert_int_equal(value_of(t, "cassette_task_last_failure_timestamp_seconds{cluster=\"c1\",kind=\"verify\"}"), 60);
    assert_int_equal(value_of(t, "cassette_task_runs_total{cluster=\"c1\",kind=\"backup\",state=\"done\"}"), 0);
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_count{cluster=\"c1\",kind=\"backup\"}"), 0);
    assert_int_equal(value_of(t, "cassette_backup_bytes_read_total{cluster=\"c1\"}"), 0);
    assert_int_equal(value_of(t, "cassette_backup_last_size_bytes{cluster=\"c1\"}"), 4000);
    free(t);
    json_decref(older);
    json_decref(newer);
    json_decref(failed);
    cs_stats_free(s);
}

static void test_verify_drill_cancel(void **state)
{
    (void)state;
    cs_stats *s = cs_stats_new();
    json_t *v = parse("{\"cluster\": \"c1\", \"kind\": \"verify\", \"state\": \"done\", \"started\": 10, \"ended\": 20,"
                      " \"result\": {\"problems\": [{\"backup\": \"b\", \"object\": \"aa\", \"reason\": \"gone\"},"
                      " {\"backup\": \"b2\", \"object\": \"aa\", \"reason\": \"gone\"},"
                      " {\"backup\": \"b\", \"object\": \"bb\", \"reason\": \"hash\"}]}}");
    json_t *d = parse("{\"cluster\": \"c1\", \"kind\": \"drill\", \"state\": \"done\", \"started\": 10,"
                      " \"ended\": 70, \"result\": {\"rto_seconds\": 42.5}}");
    json_t *x = parse("{\"cluster\": \"c1\", \"kind\": \"purge\", \"state\": \"cancelled\", \"ended\": 70}");
    json_t *q = parse("{\"cluster\": \"c1\", \"kind\": \"purge\", \"state\": \"running\"}");
    cs_stats_run_ended(s, v);
    cs_stats_run_ended(s, d);
    cs_stats_run_ended(s, x);
    cs_stats_run_ended(s, q); /* not final: nothing */
    char *t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_verify_damaged_objects{cluster=\"c1\"}"), 2);
    assert_int_equal(value_of(t, "cassette_drill_last_success_timestamp_seconds{cluster=\"c1\"}"), 70);
    assert_true(value_of(t, "cassette_drill_rto_seconds{cluster=\"c1\"}") == 42.5);
    assert_false(has(t, "cassette_drill_last_failure_timestamp_seconds"));
    assert_int_equal(value_of(t, "cassette_task_runs_total{cluster=\"c1\",kind=\"purge\",state=\"cancelled\"}"), 1);
    /* never started: no duration */
    assert_int_equal(value_of(t, "cassette_task_duration_seconds_count{cluster=\"c1\",kind=\"purge\"}"), 0);
    assert_false(has(t, "cassette_task_last_failure_timestamp_seconds"));
    assert_false(has(t, "cassette_backup_last_size_bytes"));
    free(t);
    /* a verify that finds damage fails, with its result; one without a result leaves the gauge */
    json_t *bad = parse("{\"cluster\": \"c1\", \"kind\": \"verify\", \"state\": \"failed\", \"started\": 80,"
                        " \"ended\": 90, \"error_code\": \"corrupt data\", \"error\": \"verify failed: 1 of 9 files"
                        " are damaged\", \"result\": {\"problems\": [{\"backup\": \"b\", \"object\": null,"
                        " \"reason\": \"manifest missing\"}]}}");
    json_t *nores = parse("{\"cluster\": \"c1\", \"kind\": \"verify\", \"state\": \"failed\", \"started\": 95,"
                          " \"ended\": 99, \"error_code\": \"not found\", \"error\": \"no backup x\"}");
    cs_stats_run_ended(s, bad);
    cs_stats_run_ended(s, nores);
    t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_verify_damaged_objects{cluster=\"c1\"}"), 1);
    assert_int_equal(value_of(t, "cassette_task_last_failure_timestamp_seconds{cluster=\"c1\",kind=\"verify\"}"), 99);
    assert_int_equal(value_of(t, "cassette_task_errors_total{cluster=\"c1\",kind=\"verify\",error=\"storage\"}"), 2); /* corrupt; not found */
    free(t);
    json_decref(bad);
    json_decref(nores);
    json_decref(v);
    json_decref(d);
    json_decref(x);
    json_decref(q);
    cs_stats_free(s);
}

static void test_error_kinds(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        { "locked", "purge: repository lock held by host h", "lock" },
        { "no identity matches", "manifest m: not addressed to our keys", "crypto" },
        { "I/O error", "node n1: agent https://10.0.0.1:7620 does not answer", "agent" },
        { "external command failed", "nodetool snapshot failed (exit 1)", "cassandra" },
        { "I/O error", "S3 PUT objects/3f/...: 503 Slow Down", "storage" },
        { "corrupt data", "object 3f2a: hash mismatch", "storage" },
        { "corrupt data", "decrypting object 3f2a: bad header", "crypto" },
        { "invalid input", "the block size is wrong", "other" },
        { "unavailable", "", "cassandra" },
        { "usage error", "", "other" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *run = json_pack("{s:s, s:s}", "error_code", cases[i][0], "error", cases[i][1]);
        const char *kind = cs_stats_error_kind(run);
        if (strcmp(kind, cases[i][2]))
            fail_msg("%s / %s: %s, not %s", cases[i][0], cases[i][1], kind, cases[i][2]);
        json_decref(run);
    }
}

static void test_repo_listing(void **state)
{
    (void)state;
    /* b1 complete, b2 a set with one node missing, b3 a node backup not complete */
    json_t *list = parse("[{\"name\": \"b1\", \"host_id\": \"h1\", \"finished\": \"2026-12-06T10:00:00Z\","
                         " \"complete\": true, \"set\": {\"complete\": true}},"
                         "{\"name\": \"b1\", \"host_id\": \"h2\", \"finished\": \"2026-12-06T10:00:05Z\","
                         " \"complete\": true, \"set\": {\"complete\": true}},"
                         "{\"name\": \"b2\", \"host_id\": \"h1\", \"finished\": \"2026-12-06T11:00:00Z\","
                         " \"complete\": true, \"set\": {\"complete\": false}},"
                         "{\"name\": \"b3\", \"host_id\": \"h1\", \"finished\": \"\", \"complete\": false,"
                         " \"set\": null}]");
    double want = 1796551205; /* 2026-12-06T10:00:05Z */
    assert_true(cs_stats_newest_complete(list) == want);
    cs_stats *s = cs_stats_new();
    char *t = render(s, C1, "[]", "[]");
    assert_false(has(t, "cassette_repository_size_bytes"));
    assert_false(has(t, "cassette_backup_newest_complete_timestamp_seconds"));
    free(t);
    cs_stats_repo(s, "c1", list, 12345, 17);
    t = render(s, C1, "[]", "[]");
    assert_true(value_of(t, "cassette_backup_newest_complete_timestamp_seconds{cluster=\"c1\"}") == want);
    assert_int_equal(value_of(t, "cassette_repository_size_bytes{cluster=\"c1\"}"), 12345);
    assert_int_equal(value_of(t, "cassette_repository_objects{cluster=\"c1\"}"), 17);
    free(t);
    /* a listing that failed keeps what the last one said */
    cs_stats_repo(s, "c1", NULL, 0, -1);
    t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_repository_objects{cluster=\"c1\"}"), 17);
    free(t);
    json_decref(list);
    cs_stats_free(s);
}

static void test_live_values_and_clusters(void **state)
{
    (void)state;
    cs_stats *s = cs_stats_new();
    json_t *run = backup_run("done", 1, 2);
    json_object_set_new(run, "cluster", json_string("gone"));
    cs_stats_run_ended(s, run);
    json_decref(run);
    cs_stats_lease(s, false, 0);
    cs_stats_lease(s, true, 77);
    cs_stats_lease(s, true, 77);
    char *t = render(s, "[{\"id\": \"c1\"}, {\"id\": \"c2\"}]",
                     "[{\"id\": \"t1\", \"cluster\": \"c2\", \"kind\": \"verify\"}]",
                     "[{\"cluster\": \"c1\", \"state\": \"running\"}, {\"cluster\": \"c1\", \"state\": \"queued\"},"
                     " {\"cluster\": \"c1\", \"state\": \"queued\"}, {\"cluster\": \"c2\", \"state\": \"queued\"}]");
    assert_int_equal(value_of(t, "cassette_clusters"), 2);
    assert_int_equal(value_of(t, "cassette_server_leader"), 1);
    assert_int_equal(value_of(t, "cassette_server_lease_epoch"), 77);
    assert_int_equal(value_of(t, "cassette_server_lease_changes_total"), 1);
    assert_int_equal(value_of(t, "cassette_tasks_running{cluster=\"c1\"}"), 1);
    assert_int_equal(value_of(t, "cassette_queue_length{cluster=\"c1\"}"), 2);
    assert_int_equal(value_of(t, "cassette_queue_length{cluster=\"c2\"}"), 1);
    assert_int_equal(value_of(t, "cassette_tasks_running{cluster=\"c2\"}"), 0);
    assert_int_equal(value_of(t, "cassette_backup_files_new_total{cluster=\"c2\"}"), 0);
    /* a task's series exist before its first run */
    assert_int_equal(value_of(t, "cassette_task_runs_total{cluster=\"c2\",kind=\"verify\",state=\"done\"}"), 0);
    /* a cluster that is no longer registered is not written */
    assert_null(strstr(t, "\"gone\""));
    assert_non_null(strstr(t, "# TYPE cassette_task_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "# TYPE cassette_task_runs_total counter\n"));
    free(t);
    cs_stats_lease(s, false, 78);
    t = render(s, C1, "[]", "[]");
    assert_int_equal(value_of(t, "cassette_server_leader"), 0);
    assert_int_equal(value_of(t, "cassette_server_lease_changes_total"), 2);
    free(t);
    cs_stats_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_runs),
        cmocka_unit_test(test_seed_moves_gauges_only),
        cmocka_unit_test(test_verify_drill_cancel),
        cmocka_unit_test(test_error_kinds),
        cmocka_unit_test(test_repo_listing),
        cmocka_unit_test(test_live_values_and_clusters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

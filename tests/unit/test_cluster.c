/* test_cluster.c - cluster/agentc.h's address template and the agent
 * client's reading of a job's end; common/err.h's code of an error name
 * (what an agent's job document carries back); cluster/coord.h's part of
 * a node from its agent's progress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cluster/agentc.h"
#include "cluster/coord.h"
#include "cluster/cover.h"
#include "common/err.h"

static void expands(const char *tmpl, const char *want)
{
    cs_err e;
    cs_err_clear(&e);
    char *got = cs_agentc_expand(tmpl, "10.0.0.5", "192.168.1.5", "5b6c0000-aaaa-bbbb-cccc-000000000001", &e);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void refused(const char *tmpl, const char *why)
{
    cs_err e;
    cs_err_clear(&e);
    assert_null(cs_agentc_expand(tmpl, "10.0.0.5", "192.168.1.5", "h", &e));
    assert_int_equal(e.code, CS_E_USAGE);
    assert_non_null(strstr(e.msg, why));
}

static void test_template(void **state)
{
    (void)state;
    expands("https://{rpc_address}:7620", "https://10.0.0.5:7620");
    expands("https://{address}:9000/x", "https://192.168.1.5:9000/x");
    expands("http://agent-{host_id}.svc:7620", "http://agent-5b6c0000-aaaa-bbbb-cccc-000000000001.svc:7620");
    refused("ftp://{rpc_address}", "not an http");
    refused("https://{rpc}:7620", "only {rpc_address}");
    refused("https://{rpc_address:7620", "only {rpc_address}");
    cs_err e;
    cs_err_clear(&e);
    char *v6 = cs_agentc_expand("https://{rpc_address}:7620", "::1", "", "h", &e);
    assert_string_equal(v6, "https://[::1]:7620"); /* an IPv6 address goes in brackets */
    free(v6);
}

static void test_job_error(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    json_t *ok = json_pack("{s:s}", "state", "succeeded");
    assert_int_equal(cs_agentc_job_error(ok, &e), 0);
    json_t *failed = json_pack("{s:s, s:{s:s, s:s}}", "state", "failed", "error", "message", "backup x: disk full",
                               "code", cs_err_name(CS_E_IO));
    assert_int_equal(cs_agentc_job_error(failed, &e), CS_E_IO);
    assert_string_equal(e.msg, "backup x: disk full");
    json_t *canceled = json_pack("{s:s}", "state", "canceled");
    assert_int_equal(cs_agentc_job_error(canceled, &e), CS_E_CANCELED);
    json_t *odd = json_pack("{s:s, s:{s:s}}", "state", "failed", "error", "code", "no such code");
    assert_int_equal(cs_agentc_job_error(odd, &e), CS_E_EXTERNAL);
    json_decref(ok);
    json_decref(failed);
    json_decref(canceled);
    json_decref(odd);
}

static void test_code_of(void **state)
{
    (void)state;
    for (int code = CS_E_INVAL; code >= CS_E_STALE; code--)
        assert_int_equal(cs_err_code_of(cs_err_name(code)), code);
    assert_int_equal(cs_err_code_of(NULL), CS_E_EXTERNAL);
    assert_int_equal(cs_err_code_of("ok"), CS_E_EXTERNAL);
}

static void test_replication_factor(void **state)
{
    (void)state;
    assert_int_equal(cs_cover_replication_factor("CREATE KEYSPACE k WITH replication = {'class': "
                                                 "'org.apache.cassandra.locator.SimpleStrategy', "
                                                 "'replication_factor': '3'} AND durable_writes = true;"),
                     3);
    assert_int_equal(cs_cover_replication_factor("CREATE KEYSPACE k WITH replication = {'class': "
                                                 "'org.apache.cassandra.locator.NetworkTopologyStrategy', "
                                                 "'datacenter1': '2'} AND durable_writes = true;"),
                     2);
    /* two DCs, a local strategy, no replication: not told */
    assert_int_equal(cs_cover_replication_factor("CREATE KEYSPACE k WITH replication = {'class': "
                                                 "'org.apache.cassandra.locator.NetworkTopologyStrategy', "
                                                 "'dc1': '3', 'dc2': '3'};"),
                     0);
    assert_int_equal(cs_cover_replication_factor("CREATE KEYSPACE system WITH replication = {'class': "
                                                 "'org.apache.cassandra.locator.LocalStrategy'};"),
                     0);
    assert_int_equal(cs_cover_replication_factor("CREATE KEYSPACE k;"), 0);
    assert_int_equal(cs_cover_replication_factor(NULL), 0);
}

/* Every range is held by a chosen node: node j holds j, j-1, ..., j-rf+1. */
static void assert_covers(size_t n, int rf, size_t want)
{
    bool chosen[64];
    assert_int_equal(cs_cover_choose(n, rf, chosen), want);
    for (size_t range = 0; range < n; range++) {
        bool held = false;
        for (size_t j = 0; j < n; j++)
            for (int k = 0; k < (rf > 0 ? rf : 1) && chosen[j]; k++)
                held |= (j + n * 4 - (size_t)k) % n == range;
        assert_true(held);
    }
}

static void test_cover(void **state)
{
    (void)state;
    assert_covers(3, 3, 1);
    assert_covers(3, 1, 3);
    assert_covers(3, 2, 2);
    assert_covers(6, 3, 2);
    assert_covers(7, 3, 3);
    assert_covers(2, 3, 1);
    assert_covers(5, 0, 5); /* unknown: every node */
    assert_covers(1, 1, 1);
}

static void from(cs_progress_part *part, const char *json)
{
    json_error_t je;
    json_t *p = json_loads(json, 0, &je);
    assert_non_null(p);
    cs_coord_part_from(part, p);
    json_decref(p);
}

static void test_part_from_agent(void **state)
{
    (void)state;
    cs_progress_part part;
    memset(&part, 0, sizeof part);
    from(&part, "{\"phase\":\"scan\",\"files_done\":7,\"files_total\":0,\"bytes_done\":0,\"bytes_total\":0}");
    assert_string_equal(part.phase, "scan");
    assert_int_equal(part.files_done, 7);
    from(&part, "{\"phase\":\"upload\",\"files_done\":1,\"files_total\":9,\"bytes_done\":50,\"bytes_total\":900}");
    assert_int_equal(part.files_done, 1);
    assert_int_equal(part.files_total, 9);
    assert_int_equal(part.bytes_done, 50);
    assert_int_equal(part.bytes_total, 900);
    /* manifest and cleanup count nothing: the upload's numbers stay. */
    from(&part, "{\"phase\":\"manifest\",\"files_done\":0,\"files_total\":0,\"bytes_done\":0,\"bytes_total\":0}");
    assert_string_equal(part.phase, "manifest");
    assert_int_equal(part.bytes_done, 50);
    assert_int_equal(part.files_total, 9);
    /* A restore's import counts tables, not bytes: the download's bytes stay. */
    from(&part, "{\"phase\":\"download\",\"files_done\":3,\"files_total\":3,\"bytes_done\":900,\"bytes_total\":900}");
    from(&part, "{\"phase\":\"import\",\"files_done\":0,\"files_total\":2,\"bytes_done\":0,\"bytes_total\":0}");
    assert_string_equal(part.phase, "import");
    assert_int_equal(part.files_done, 0);
    assert_int_equal(part.files_total, 2);
    assert_int_equal(part.bytes_done, 900);
    assert_int_equal(part.bytes_total, 900);
    /* No phase, odd values: the phase stays, negatives count as 0. */
    from(&part, "{\"bytes_done\":-5,\"bytes_total\":\"x\"}");
    assert_string_equal(part.phase, "import");
    assert_int_equal(part.bytes_done, 900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_job_error),
        cmocka_unit_test(test_code_of),
        cmocka_unit_test(test_replication_factor),
        cmocka_unit_test(test_cover),
        cmocka_unit_test(test_part_from_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

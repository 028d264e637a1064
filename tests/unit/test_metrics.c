/* test_metrics.c - common/metrics: the Prometheus text exposition's
 * escaping, numbers, family order, histograms, the textfile and reading a
 * value back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/metrics.h"

static void test_escaping(void **state)
{
    (void)state;
    cs_metrics *m = cs_metrics_new();
    cs_metrics_family(m, "x_info", "gauge", "a \\ help\nwith \"quotes\"");
    cs_metrics_sample(m, 1, "path", "C:\\data \"d\"\nnext", "empty", NULL, NULL);
    size_t len = 0;
    const char *t = cs_metrics_text(m, &len);
    assert_string_equal(t, "# HELP x_info a \\\\ help\\nwith \"quotes\"\n"
                           "# TYPE x_info gauge\n"
                           "x_info{path=\"C:\\\\data \\\"d\\\"\\nnext\",empty=\"\"} 1\n");
    assert_int_equal(len, strlen(t));
    cs_metrics_free(m);
}

static void test_numbers(void **state)
{
    (void)state;
    char n[32];
    cs_metrics_number(0, n);
    assert_string_equal(n, "0");
    cs_metrics_number(-0.0, n);
    assert_string_equal(n, "0");
    cs_metrics_number(1234567890123.0, n);
    assert_string_equal(n, "1234567890123");
    cs_metrics_number(9007199254740993.0, n); /* 2^53 + 1 rounds to 2^53 */
    assert_string_equal(n, "9007199254740992");
    cs_metrics_number(-42, n);
    assert_string_equal(n, "-42");
    cs_metrics_number(0.25, n);
    assert_string_equal(n, "0.25");
    cs_metrics_number(0.1, n);
    assert_string_equal(n, "0.1");
    cs_metrics_number(1.0 / 3.0, n);
    assert_true(strtod(n, NULL) == 1.0 / 3.0);
    cs_metrics_number(1e300, n);
    assert_true(strtod(n, NULL) == 1e300);
    cs_metrics_number(NAN, n);
    assert_string_equal(n, "NaN");
    cs_metrics_number(INFINITY, n);
    assert_string_equal(n, "+Inf");
    cs_metrics_number(-INFINITY, n);
    assert_string_equal(n, "-Inf");
}

/* Families come out in the order first declared, each with its HELP/TYPE
 * once and all its samples together, however the caller interleaves. */
static void test_order(void **state)
{
    (void)state;
    cs_metrics *m = cs_metrics_new();
    const char *jobs[] = { "j1", "j2" };
    for (size_t i = 0; i < 2; i++) {
        cs_metrics_family(m, "a_done", "gauge", "done");
        cs_metrics_sample(m, (double)i, "job", jobs[i], NULL);
        cs_metrics_family(m, "b_total", "gauge", "total");
        cs_metrics_sample(m, (double)(10 + i), "job", jobs[i], NULL);
    }
    cs_metrics_family(m, "a_done", "counter", "ignored: the first declaration counts");
    cs_metrics_family(m, "c_empty", "counter", "no samples");
    cs_metrics_family(m, "d_plain", "gauge", "no labels");
    cs_metrics_sample(m, 7, NULL);
    assert_string_equal(cs_metrics_text(m, NULL), "# HELP a_done done\n"
                                                   "# TYPE a_done gauge\n"
                                                   "a_done{job=\"j1\"} 0\n"
                                                   "a_done{job=\"j2\"} 1\n"
                                                   "# HELP b_total total\n"
                                                   "# TYPE b_total gauge\n"
                                                   "b_total{job=\"j1\"} 10\n"
                                                   "b_total{job=\"j2\"} 11\n"
                                                   "# HELP c_empty no samples\n"
                                                   "# TYPE c_empty counter\n"
                                                   "# HELP d_plain no labels\n"
                                                   "# TYPE d_plain gauge\n"
                                                   "d_plain 7\n");
    /* The text is made afresh: calling twice gives the same. */
    size_t l1 = 0, l2 = 0;
    cs_metrics_text(m, &l1);
    cs_metrics_text(m, &l2);
    assert_int_equal(l1, l2);
    cs_metrics_free(m);

    m = cs_metrics_new();
    assert_string_equal(cs_metrics_text(m, NULL), "");
    cs_metrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    const double bounds[] = { 1, 2.5, 10 };
    cs_histogram h;
    cs_histogram_init(&h, bounds, 3);
    cs_histogram_observe(&h, 0.5);
    cs_histogram_observe(&h, 1);   /* le is inclusive */
    cs_histogram_observe(&h, 2);
    cs_histogram_observe(&h, 100);
    cs_metrics *m = cs_metrics_new();
    cs_metrics_family(m, "d_seconds", "histogram", "duration");
    cs_metrics_histogram(m, &h, "kind", "backup", NULL);
    cs_histogram empty;
    cs_histogram_init(&empty, bounds, 3);
    cs_metrics_histogram(m, &empty, NULL);
    assert_string_equal(cs_metrics_text(m, NULL), "# HELP d_seconds duration\n"
                                                   "# TYPE d_seconds histogram\n"
                                                   "d_seconds_bucket{kind=\"backup\",le=\"1\"} 2\n"
                                                   "d_seconds_bucket{kind=\"backup\",le=\"2.5\"} 3\n"
                                                   "d_seconds_bucket{kind=\"backup\",le=\"10\"} 3\n"
                                                   "d_seconds_bucket{kind=\"backup\",le=\"+Inf\"} 4\n"
                                                   "d_seconds_sum{kind=\"backup\"} 103.5\n"
                                                   "d_seconds_count{kind=\"backup\"} 4\n"
                                                   "d_seconds_bucket{le=\"1\"} 0\n"
                                                   "d_seconds_bucket{le=\"2.5\"} 0\n"
                                                   "d_seconds_bucket{le=\"10\"} 0\n"
                                                   "d_seconds_bucket{le=\"+Inf\"} 0\n"
                                                   "d_seconds_sum 0\n"
                                                   "d_seconds_count 0\n");
    cs_metrics_free(m);

    /* NaN: counted, in +Inf only, not summed. */
    cs_histogram_observe(&empty, NAN);
    assert_int_equal(empty.count, 1);
    assert_int_equal(empty.counts[3], 1);
    assert_true(empty.sum == 0);
}

static void test_find(void **state)
{
    (void)state;
    cs_metrics *m = cs_metrics_new();
    cs_metrics_family(m, "last_ok", "gauge", "x");
    cs_metrics_sample(m, 1700000000.5, "op", "backup", "repo", "s3://b/p \"q\"", NULL);
    cs_metrics_sample(m, 17, "op", "backupx", "repo", "s3://b/p \"q\"", NULL);
    const char *t = cs_metrics_text(m, NULL);
    const char *want[] = { "op", "backup", "repo", "s3://b/p \"q\"", NULL };
    double v = 0;
    assert_int_equal(cs_metrics_find(t, "last_ok", want, &v), 0);
    assert_true(v == 1700000000.5);
    const char *other[] = { "op", "restore", "repo", "s3://b/p \"q\"", NULL };
    assert_int_equal(cs_metrics_find(t, "last_ok", other, &v), -1);
    assert_int_equal(cs_metrics_find(t, "last", want, &v), -1);
    assert_int_equal(cs_metrics_find(NULL, "last_ok", want, &v), -1);
    cs_metrics_free(m);

    /* Garbled or cut files are "not found", never a crash. */
    const char *plain[] = { NULL };
    assert_int_equal(cs_metrics_find("x 12", "x", plain, &v), 0);
    assert_true(v == 12);
    assert_int_equal(cs_metrics_find("x 12 1700000000000\n", "x", NULL, &v), 0);
    assert_int_equal(cs_metrics_find("x +Inf\n", "x", NULL, &v), 0);
    assert_true(isinf(v));
    assert_int_equal(cs_metrics_find("x \n", "x", NULL, &v), -1);
    assert_int_equal(cs_metrics_find("x abc\n", "x", NULL, &v), -1);
    assert_int_equal(cs_metrics_find("x 12abc\n", "x", NULL, &v), -1);
    assert_int_equal(cs_metrics_find("", "x", NULL, &v), -1);
    assert_int_equal(cs_metrics_find("\n\n\x01\xff", "x", NULL, &v), -1);
}

static void test_write_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_metrics.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cs_path_join(dir, "cassette.prom");
    cs_metrics *m = cs_metrics_new();
    cs_metrics_family(m, "x", "gauge", "x");
    cs_metrics_sample(m, 3, NULL);
    cs_err e;
    cs_err_clear(&e);
    mode_t old = umask(022);
    assert_int_equal(cs_metrics_write_file(m, path, &e), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(cs_read_file(path, 1 << 20, &text, &len, &e), 0);
    assert_string_equal(text, "# HELP x x\n# TYPE x gauge\nx 3\n");
    free(text);
    /* A directory that does not exist: an error, not a crash. */
    char *bad = cs_path_join(dir, "no/such/x.prom");
    assert_int_not_equal(cs_metrics_write_file(m, bad, &e), 0);
    assert_int_equal(e.code, CS_E_IO);
    free(bad);
    cs_metrics_free(m);
    unlink(path);
    rmdir(dir);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_write_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_textfile.c - cli/textfile (--metrics-file): the rows of a run from
 * its result document and error, what is carried over from the previous
 * file (and a garbled one), the repo label without userinfo, the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/textfile.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/metrics.h"

static const char *const labels[] = { "op", "backup", "repo", "s3://bucket/p", NULL };

static double value(const char *text, const char *name, const char *const *l)
{
    double v = -1;
    if (cs_metrics_find(text, name, l, &v))
        fail_msg("no %s in:\n%s", name, text);
    return v;
}

/* Is there a sample of name (a line "name{...")? */
static bool has(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, name, n) && line[n] == '{')
            return true;
    return false;
}

static json_t *backup_doc(void)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "name", "b1", "files", 10, "files_new", 4,
                     "files_unchanged", 6, "bytes_read", 1000, "bytes_stored", 300, "size", 1000, "seconds", 2.5);
}

static void test_success(void **state)
{
    (void)state;
    json_t *doc = backup_doc();
    json_object_set_new(doc, "size_new", json_integer(250));
    cs_textfile_run run = { .op = "backup", .repo = "s3://key:secret@bucket/p", .result = doc, .ended = 1700000000.5,
                            .duration = 9 };
    /* a previous failure is kept; its success is replaced */
    const char *prev = "cassette_last_success_timestamp_seconds{op=\"backup\",repo=\"s3://bucket/p\"} 1600000000\n"
                       "cassette_last_failure_timestamp_seconds{op=\"backup\",repo=\"s3://bucket/p\"} 1650000000\n";
    char *text = cs_textfile_text(&run, prev);
    assert_null(strstr(text, "secret"));
    assert_null(strstr(text, "key:"));
    assert_true(value(text, "cassette_last_success_timestamp_seconds", labels) == 1700000000.5);
    assert_true(value(text, "cassette_last_failure_timestamp_seconds", labels) == 1650000000);
    assert_true(value(text, "cassette_last_duration_seconds", labels) == 2.5); /* the result's */
    assert_true(value(text, "cassette_last_bytes_read", labels) == 1000);
    assert_true(value(text, "cassette_last_bytes_stored", labels) == 300);
    assert_true(value(text, "cassette_last_files_new", labels) == 4);
    assert_true(value(text, "cassette_last_files_unchanged", labels) == 6);
    assert_true(value(text, "cassette_last_dedup_ratio", labels) == 0.75);
    assert_false(has(text, "cassette_last_error_info"));
    assert_non_null(strstr(text, "# TYPE cassette_last_success_timestamp_seconds gauge\n"));
    free(text);
    json_decref(doc);
}

static void test_failure_keeps_success(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_err_set(&e, CS_E_NOTFOUND, "/r: not a cassette repository");
    cs_textfile_run run = { .op = "backup", .repo = "s3://bucket/p", .err = &e, .ended = 1700000100,
                            .duration = 0.25 };
    json_t *doc = backup_doc();
    cs_textfile_run ok = { .op = "backup", .repo = "s3://bucket/p", .result = doc, .ended = 1700000000 };
    char *prev = cs_textfile_text(&ok, NULL);
    char *text = cs_textfile_text(&run, prev);
    assert_true(value(text, "cassette_last_success_timestamp_seconds", labels) == 1700000000);
    assert_true(value(text, "cassette_last_failure_timestamp_seconds", labels) == 1700000100);
    assert_true(value(text, "cassette_last_duration_seconds", labels) == 0.25); /* no result: the job's */
    assert_false(has(text, "cassette_last_bytes_read"));
    const char *err_labels[] = { "op", "backup", "repo", "s3://bucket/p", "error", "storage", NULL };
    assert_true(value(text, "cassette_last_error_info", err_labels) == 1);
    /* and then a success again: the failure stays, the error goes */
    char *again = cs_textfile_text(&ok, text);
    assert_true(value(again, "cassette_last_failure_timestamp_seconds", labels) == 1700000100);
    assert_false(has(again, "cassette_last_error_info"));
    free(again);
    free(text);
    free(prev);
    json_decref(doc);

    /* no previous file, a garbled one, another op's or repo's: nothing carried */
    const char *garbled[] = { NULL, "", "\x01\x02garbage{{{\n",
                              "cassette_last_success_timestamp_seconds{op=\"backup\",repo=\"s3://bucket/p\"} x\n",
                              "cassette_last_success_timestamp_seconds{op=\"backup\",repo=\"s3://bucket/p\"}",
                              "cassette_last_success_timestamp_seconds{op=\"purge\",repo=\"s3://bucket/p\"} 5\n",
                              "cassette_last_success_timestamp_seconds{op=\"backup\",repo=\"s3://bucket/q\"} 5\n" };
    for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
        text = cs_textfile_text(&run, garbled[i]);
        double v;
        assert_int_equal(cs_metrics_find(text, "cassette_last_success_timestamp_seconds", labels, &v), -1);
        assert_true(value(text, "cassette_last_failure_timestamp_seconds", labels) == 1700000100);
        free(text);
    }
}

static void test_ops(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:s, s:I, s:I, s:f}", "backup", "b1", "files", 8, "bytes", 6157, "seconds", 1.0);
    cs_textfile_run run = { .op = "restore", .repo = "/var/backups/r", .result = doc, .ended = 1 };
    char *text = cs_textfile_text(&run, NULL);
    const char *l[] = { "op", "restore", "repo", "/var/backups/r", NULL };
    assert_true(value(text, "cassette_last_bytes_read", l) == 6157);
    assert_false(has(text, "cassette_last_files_new"));
    assert_false(has(text, "cassette_last_dedup_ratio"));
    free(text);
    json_decref(doc);
    /* a backup without size_new: no dedup ratio rather than a wrong one */
    doc = backup_doc();
    run.op = "backup";
    run.result = doc;
    text = cs_textfile_text(&run, NULL);
    assert_false(has(text, "cassette_last_dedup_ratio"));
    free(text);
    json_decref(doc);
}

static void test_repo_label(void **state)
{
    (void)state;
    const char *cases[][2] = {
        { "s3://bucket/prefix", "s3://bucket/prefix" },
        { "s3://AKIA:se@cr@et@bucket/prefix", "s3://bucket/prefix" },
        { "az://user@container/p@x", "az://container/p@x" },
        { "/var/lib/backups/r", "/var/lib/backups/r" },
        { "/var/lib/a@b", "/var/lib/a@b" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = cs_textfile_repo_label(cases[i][0]);
        assert_string_equal(got, cases[i][1]);
        free(got);
    }
    char *none = cs_textfile_repo_label(NULL);
    assert_string_equal(none, "");
    free(none);
}

static void test_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_textfile.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cs_path_join(dir, "cassette-backup.prom");
    json_t *doc = backup_doc();
    cs_textfile_run ok = { .op = "backup", .repo = "s3://bucket/p", .result = doc, .ended = 1700000000 };
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_textfile_write(&ok, path, &e), 0);
    cs_err fail;
    cs_err_clear(&fail);
    cs_err_set(&fail, CS_E_LOCKED, "repository s3://bucket/p is locked");
    cs_textfile_run bad = { .op = "backup", .repo = "s3://bucket/p", .err = &fail, .ended = 1700000200 };
    assert_int_equal(cs_textfile_write(&bad, path, &e), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(cs_read_file(path, 1 << 20, &text, &len, &e), 0);
    assert_true(value(text, "cassette_last_success_timestamp_seconds", labels) == 1700000000);
    const char *err_labels[] = { "op", "backup", "repo", "s3://bucket/p", "error", "lock", NULL };
    assert_true(value(text, "cassette_last_error_info", err_labels) == 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    free(text);
    /* a directory that does not exist: the error names the option */
    char *bad_path = cs_path_join(dir, "no/such.prom");
    assert_int_not_equal(cs_textfile_write(&ok, bad_path, &e), 0);
    assert_non_null(strstr(e.msg, "--metrics-file"));
    free(bad_path);
    unlink(path);
    rmdir(dir);
    free(path);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success),   cmocka_unit_test(test_failure_keeps_success),
        cmocka_unit_test(test_ops),       cmocka_unit_test(test_repo_label),
        cmocka_unit_test(test_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

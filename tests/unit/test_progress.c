/* test_progress.c - cli/progress: the live line's text, rate, ETA, sizes,
 * the JSON events and the choice of consumer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"

#define GIB 1073741824ull
#define MIB 1048576.0

static cs_progress upload(void)
{
    cs_progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.op, sizeof p.op, "backup");
    snprintf(p.phase, sizeof p.phase, "upload");
    snprintf(p.item, sizeof p.item, "ks.t/nb-1-big-Data.db");
    p.files_done = 12;
    p.files_total = 40;
    p.bytes_done = GIB;
    p.bytes_total = 4 * GIB;
    p.started = 1000;
    p.phase_started = 1010;
    p.elapsed = 15;
    return p;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static void test_line_with_totals(void **state)
{
    (void)state;
    cs_progress p = upload();
    char line[256];
    cs_progress_line(line, sizeof line, &p, 100 * MIB, 0.5, 0);
    /* 3 GiB left at 100 MiB/s: 30.72 s. */
    assert_string_equal(line, "backup: upload 12/40 files, 1.0 GiB/4.0 GiB (25%), 100.0 MiB/s, ETA 30s, "
                              "ks.t/nb-1-big-Data.db");
}

static void test_line_without_totals(void **state)
{
    (void)state;
    cs_progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.op, sizeof p.op, "backup");
    snprintf(p.phase, sizeof p.phase, "snapshot");
    p.started = 1000;
    p.phase_started = 1001;
    p.elapsed = 5.5; /* 4.5 s into the phase */
    char line[256];
    cs_progress_line(line, sizeof line, &p, 0, 0, 0);
    assert_string_equal(line, "backup: snapshot 4s");
    /* Counted but not known in advance: the count, no percentage, no ETA. */
    snprintf(p.phase, sizeof p.phase, "scan");
    p.files_done = 120;
    cs_progress_line(line, sizeof line, &p, 0, 30, 0);
    assert_string_equal(line, "backup: scan 120 files, 4s");
    /* Before the first phase. */
    p.phase[0] = '\0';
    p.files_done = 0;
    cs_progress_line(line, sizeof line, &p, 0, 0, 0);
    assert_string_equal(line, "backup: starting 4s");
}

static void test_line_files_only(void **state)
{
    (void)state;
    cs_progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.op, sizeof p.op, "purge");
    snprintf(p.phase, sizeof p.phase, "sweep");
    p.files_done = 10;
    p.files_total = 100;
    char line[256];
    cs_progress_line(line, sizeof line, &p, 0, 5, 0);
    assert_string_equal(line, "purge: sweep 10/100 objects, 10%, 5.0 objects/s, ETA 18s");
    snprintf(p.phase, sizeof p.phase, "import");
    p.files_done = p.files_total = 3;
    cs_progress_line(line, sizeof line, &p, 0, 1, 0);
    assert_string_equal(line, "purge: import 3/3 tables, 100%, 1.0 tables/s, ETA 0s");
}

static void test_line_is_cut_and_clean(void **state)
{
    (void)state;
    cs_progress p = upload();
    snprintf(p.item, sizeof p.item, "ks.t/evil\x1b[2J\rname\n");
    char line[256];
    cs_progress_line(line, sizeof line, &p, 100 * MIB, 0, 0);
    assert_false(has_control(line));
    assert_non_null(strstr(line, "evil?[2J?name?"));
    cs_progress_line(line, sizeof line, &p, 100 * MIB, 0, 30);
    assert_int_equal(strlen(line), 30);
    assert_string_equal(line, "backup: upload 12/40 files, 1.");
    /* A multi-byte character is never cut in two. */
    snprintf(p.op, sizeof p.op, "r\xc3\xa9store"); /* "rsstore" with an e acute: 8 bytes */
    cs_progress_line(line, sizeof line, &p, 0, 0, 2);
    assert_string_equal(line, "r");
    /* A small buffer is filled, never overrun. */
    char small[16];
    cs_progress_line(small, sizeof small, &p, 100 * MIB, 0, 0);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_line_canceled(void **state)
{
    (void)state;
    cs_progress p = upload();
    p.canceled = true;
    p.item[0] = '\0';
    char line[256];
    cs_progress_line(line, sizeof line, &p, 0, 0, 0);
    assert_string_equal(line, "backup: upload 12/40 files, 1.0 GiB/4.0 GiB (25%), 5s, stopping");
}

static void test_sizes(void **state)
{
    (void)state;
    cs_progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.op, sizeof p.op, "verify");
    snprintf(p.phase, sizeof p.phase, "read");
    p.bytes_done = 512;
    p.bytes_total = 2048;
    char line[256];
    cs_progress_line(line, sizeof line, &p, 100, 0, 0);
    assert_string_equal(line, "verify: read 512 B/2.0 KiB (25%), 100 B/s, ETA 15s");
    p.bytes_done = 3 * GIB / 2;
    p.bytes_total = 5 * 1024 * GIB;
    cs_progress_line(line, sizeof line, &p, 0, 0, 0);
    assert_string_equal(line, "verify: read 1.5 GiB/5.0 TiB (0%), 0s");
}

static void test_eta(void **state)
{
    (void)state;
    assert_true(cs_progress_eta(0, 0, 10) < 0);   /* no total */
    assert_true(cs_progress_eta(10, 100, 0) < 0); /* no rate yet */
    assert_true(cs_progress_eta(100, 100, 0) == 0);
    assert_true(cs_progress_eta(120, 100, 5) == 0); /* done past the total (a file read twice) */
    assert_true(cs_progress_eta(40, 100, 10) == 6);
}

static void test_rate(void **state)
{
    (void)state;
    cs_rate r;
    memset(&r, 0, sizeof r);
    cs_rate_reset(&r);
    assert_true(cs_rate_per_second(&r) == 0);
    cs_rate_add(&r, 100.0, 0);
    assert_true(cs_rate_per_second(&r) == 0);     /* one sample */
    cs_rate_add(&r, 100.05, 500);
    assert_true(cs_rate_per_second(&r) == 0);     /* too close to tell */
    cs_rate_add(&r, 102.0, 2000);
    assert_true(cs_rate_per_second(&r) == 1000);  /* 2000 in 2 s */
    /* Only the last window (10 s) counts: a fast start is forgotten. */
    for (int i = 1; i <= 30; i++)
        cs_rate_add(&r, 102.0 + i, 2000 + (uint64_t)i * 100);
    double rate = cs_rate_per_second(&r);
    assert_true(rate > 99.0 && rate < 101.0);
    /* The counter starting again (a new phase) starts the rate again. */
    cs_rate_add(&r, 140.0, 10);
    assert_true(cs_rate_per_second(&r) == 0);
    cs_rate_add(&r, 141.0, 60);
    assert_true(cs_rate_per_second(&r) == 50);
    /* Many samples in the window: the ring keeps the newest. */
    cs_rate_reset(&r);
    for (int i = 0; i < 3 * CS_RATE_SAMPLES; i++)
        cs_rate_add(&r, 200.0 + i * 0.1, (uint64_t)i * 10);
    assert_true(cs_rate_per_second(&r) > 99.0 && cs_rate_per_second(&r) < 101.0);
}

static void test_nouns(void **state)
{
    (void)state;
    assert_string_equal(cs_progress_noun("upload"), "files");
    assert_string_equal(cs_progress_noun("download"), "files");
    assert_string_equal(cs_progress_noun("import"), "tables");
    assert_string_equal(cs_progress_noun("read"), "objects");
    assert_string_equal(cs_progress_noun("sweep"), "objects");
    assert_string_equal(cs_progress_noun(NULL), "files");
}

static void test_mode(void **state)
{
    (void)state;
    cs_progress_mode m;
    assert_true(cs_progress_mode_of("auto", true, 0, false, &m) && m == CS_PROGRESS_TTY);
    assert_true(cs_progress_mode_of(NULL, true, 0, false, &m) && m == CS_PROGRESS_TTY);
    assert_true(cs_progress_mode_of("auto", false, 0, false, &m) && m == CS_PROGRESS_NONE);
    assert_true(cs_progress_mode_of("auto", false, 1, false, &m) && m == CS_PROGRESS_PLAIN);
    assert_true(cs_progress_mode_of("auto", true, 0, true, &m) && m == CS_PROGRESS_NONE); /* -q */
    assert_true(cs_progress_mode_of("tty", false, 0, false, &m) && m == CS_PROGRESS_TTY);
    assert_true(cs_progress_mode_of("plain", true, 0, false, &m) && m == CS_PROGRESS_PLAIN);
    assert_true(cs_progress_mode_of("json", true, 0, true, &m) && m == CS_PROGRESS_JSON);
    assert_true(cs_progress_mode_of("none", true, 2, false, &m) && m == CS_PROGRESS_NONE);
    assert_false(cs_progress_mode_of("bar", true, 0, false, &m));
    assert_false(cs_progress_mode_of("", true, 0, false, &m));
}

static void test_event(void **state)
{
    (void)state;
    cs_progress p = upload();
    char *text = cs_progress_event("progress", &p, 100 * MIB, 0.5);
    assert_null(strchr(text, '\n'));
    json_error_t je;
    json_t *ev = json_loads(text, 0, &je);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "progress");
    assert_string_equal(json_string_value(json_object_get(ev, "op")), "backup");
    assert_string_equal(json_string_value(json_object_get(ev, "phase")), "upload");
    assert_string_equal(json_string_value(json_object_get(ev, "item")), "ks.t/nb-1-big-Data.db");
    assert_int_equal(json_integer_value(json_object_get(ev, "files_done")), 12);
    assert_int_equal(json_integer_value(json_object_get(ev, "files_total")), 40);
    assert_int_equal(json_integer_value(json_object_get(ev, "bytes_done")), GIB);
    assert_int_equal(json_integer_value(json_object_get(ev, "bytes_total")), 4 * GIB);
    assert_int_equal(json_integer_value(json_object_get(ev, "bytes_per_second")), 100 * 1048576);
    assert_true(json_real_value(json_object_get(ev, "elapsed")) == 15.0);
    assert_true(json_real_value(json_object_get(ev, "phase_elapsed")) == 5.0);
    assert_true(json_real_value(json_object_get(ev, "eta")) == 30.72);
    assert_true(json_is_false(json_object_get(ev, "canceled")));
    json_decref(ev);
    free(text);
    /* Unknown ETA is null. */
    p.bytes_total = 0;
    p.files_total = 0;
    text = cs_progress_event("phase", &p, 0, 0);
    ev = json_loads(text, 0, &je);
    assert_true(json_is_null(json_object_get(ev, "eta")));
    json_decref(ev);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_with_totals), cmocka_unit_test(test_line_without_totals),
        cmocka_unit_test(test_line_files_only),  cmocka_unit_test(test_line_is_cut_and_clean),
        cmocka_unit_test(test_line_canceled),    cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_eta),              cmocka_unit_test(test_rate),
        cmocka_unit_test(test_nouns),            cmocka_unit_test(test_mode),
        cmocka_unit_test(test_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

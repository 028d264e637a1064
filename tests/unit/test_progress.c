/* test_progress.c - cli/progress: the live line's text, rate, ETA, sizes,
 * the block of a job with parts (a cluster command's nodes), the JSON
 * events and the choice of consumer. */
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

static cs_progress_part node(const char *name, const char *phase, cs_part_state st, uint64_t bd, uint64_t bt)
{
    cs_progress_part part;
    memset(&part, 0, sizeof part);
    snprintf(part.name, sizeof part.name, "%s", name);
    snprintf(part.phase, sizeof part.phase, "%s", phase);
    part.state = st;
    part.bytes_done = bd;
    part.bytes_total = bt;
    return part;
}

/* Three nodes and their sum, as cluster/coord.c's job record gives them. */
static cs_progress cluster_upload(cs_progress_part *parts)
{
    parts[0] = node("127.0.0.21", "upload", CS_PART_RUNNING, GIB, 4 * GIB);
    parts[1] = node("127.0.0.22", "manifest", CS_PART_DONE, 2 * GIB, 2 * GIB);
    parts[2] = node("127.0.0.23", "", CS_PART_WAITING, 0, 0);
    cs_progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.op, sizeof p.op, "cluster backup");
    snprintf(p.phase, sizeof p.phase, "upload");
    p.bytes_done = 3 * GIB;
    p.bytes_total = 6 * GIB;
    p.n_parts = 3;
    return p;
}

static void test_block(void **state)
{
    (void)state;
    cs_progress_part parts[3];
    cs_progress p = cluster_upload(parts);
    double rates[3] = { 100 * MIB, 0, 0 };
    char buf[2048];
    size_t n = cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, CS_PROGRESS_MAX_PARTS, 0);
    assert_int_equal(n, 4);
    assert_string_equal(buf,
        "127.0.0.21  upload    1.0 GiB/4.0 GiB   25%  100.0 MiB/s  ETA 30s  running\n"
        "127.0.0.22  manifest  2.0 GiB/2.0 GiB  100%  -            -        done\n"
        "127.0.0.23  -         -                      -            -        waiting\n"
        "overall     upload    3.0 GiB/6.0 GiB   50%  100.0 MiB/s  ETA 30s  1/3 done");
    assert_false(has_control(strchr(buf, '\0') - 1));
    /* Narrower than a line: none (the caller draws the one line). */
    assert_int_equal(cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, 16, 60), 0);
    assert_string_equal(buf, "");
    assert_int_equal(cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, 16, 80), 4);
    /* No parts: none. */
    assert_int_equal(cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 0, 16, 0), 0);
    /* A failure and files only. */
    parts[2] = node("127.0.0.23", "snapshot", CS_PART_FAILED, 0, 0);
    parts[2].files_done = 2;
    parts[2].files_total = 5;
    n = cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, 16, 0);
    assert_non_null(strstr(buf, "127.0.0.23  snapshot  2/5 files         40%"));
    assert_non_null(strstr(buf, "1/3 done, 1 failed"));
    /* A part the phase leaves out: neither shown nor counted. */
    parts[2] = node("127.0.0.23", "", CS_PART_SKIPPED, 0, 0);
    n = cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, 16, 0);
    assert_int_equal(n, 3);
    assert_null(strstr(buf, "127.0.0.23"));
    assert_non_null(strstr(buf, "  1/2 done"));
    parts[0].state = parts[1].state = CS_PART_SKIPPED;
    assert_int_equal(cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, 16, 0), 0);
    parts[0].state = CS_PART_RUNNING;
    parts[1].state = CS_PART_DONE;
    /* A name with a control character is shown without it. */
    snprintf(parts[0].name, sizeof parts[0].name, "bad\033[2Jname");
    cs_progress_block(buf, sizeof buf, &p, 100 * MIB, 0, parts, rates, 3, 16, 0);
    for (const char *c = buf; *c; c++)
        assert_true(*c == '\n' || (unsigned char)*c >= 0x20);
}

static void test_block_many(void **state)
{
    (void)state;
    enum { N = 40 };
    cs_progress_part parts[N];
    double rates[N];
    cs_progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.op, sizeof p.op, "cluster restore");
    snprintf(p.phase, sizeof p.phase, "restore");
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "10.0.0.%d", i);
        /* 0..9 done, 10..29 running (the faster the higher), 30..39 waiting */
        cs_part_state st = i < 10 ? CS_PART_DONE : i < 30 ? CS_PART_RUNNING : CS_PART_WAITING;
        parts[i] = node(name, st == CS_PART_WAITING ? "" : "download", st, (uint64_t)i * 1000, 100000);
        rates[i] = st == CS_PART_RUNNING ? (double)i * 1000 : 0;
        p.bytes_done += parts[i].bytes_done;
        p.bytes_total += parts[i].bytes_total;
    }
    char buf[8192];
    size_t n = cs_progress_block(buf, sizeof buf, &p, 5000, 0, parts, rates, N, CS_PROGRESS_MAX_PARTS, 0);
    /* 15 busiest, "... 25 more", overall. */
    assert_int_equal(n, CS_PROGRESS_MAX_PARTS + 1);
    assert_null(strstr(buf, "10.0.0.14 ")); /* the slowest running ones are left out */
    assert_non_null(strstr(buf, "10.0.0.15 "));
    assert_non_null(strstr(buf, "10.0.0.29 "));
    assert_null(strstr(buf, "10.0.0.9 "));
    assert_non_null(strstr(buf, "\n... 25 more (5 running, 10 waiting, 10 done)\noverall "));
    assert_non_null(strstr(buf, "10/40 done"));
}

static void test_event_nodes(void **state)
{
    (void)state;
    cs_progress_part parts[3];
    cs_progress p = cluster_upload(parts);
    double rates[3] = { 100 * MIB, 0, 0 };
    char *text = cs_progress_event_parts("progress", &p, 100 * MIB, 0, parts, rates, 3);
    json_error_t je;
    json_t *ev = json_loads(text, 0, &je);
    assert_non_null(ev);
    json_t *nodes = json_object_get(ev, "nodes");
    assert_int_equal(json_array_size(nodes), 3);
    json_t *a = json_array_get(nodes, 0);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "127.0.0.21");
    assert_string_equal(json_string_value(json_object_get(a, "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(a, "bytes_done")), GIB);
    assert_int_equal(json_integer_value(json_object_get(a, "bytes_per_second")), 100 * 1048576);
    assert_true(json_real_value(json_object_get(a, "eta")) == 30.72);
    assert_true(json_is_null(json_object_get(json_array_get(nodes, 2), "eta")));
    assert_int_equal(json_integer_value(json_object_get(ev, "bytes_done")), 3 * GIB);
    json_decref(ev);
    free(text);
    /* Without parts: no "nodes". */
    text = cs_progress_event("progress", &p, 0, 0);
    ev = json_loads(text, 0, &je);
    assert_null(json_object_get(ev, "nodes"));
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
        cmocka_unit_test(test_event),            cmocka_unit_test(test_block),
        cmocka_unit_test(test_block_many),       cmocka_unit_test(test_event_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

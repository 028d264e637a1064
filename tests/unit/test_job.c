/* test_job.c - common/job: progress record, per-job cancel, log routing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cancel.h"
#include "common/job.h"
#include "common/log.h"
#include "common/parallel.h"

typedef struct seen {
    int progress_calls, phase_changes, log_lines, finals;
    uint64_t final_files; /* of the last final report */
    char last_phase[32];
    char last_line[128];
} seen;

static void on_progress(void *arg, const cs_progress *p, bool phase_changed)
{
    seen *s = arg;
    s->progress_calls++;
    if (phase_changed)
        s->phase_changes++;
    if (p->final) {
        s->finals++;
        s->final_files = p->files_done;
    }
    snprintf(s->last_phase, sizeof s->last_phase, "%s", p->phase);
}

static void on_log(void *arg, int level, const char *line)
{
    seen *s = arg;
    (void)level;
    s->log_lines++;
    snprintf(s->last_line, sizeof s->last_line, "%s", line);
}

static void test_progress_counts(void **state)
{
    (void)state;
    seen s = { 0 };
    cs_job_observer obs = { on_progress, NULL, &s, 3600 }; /* only phase changes get through */
    cs_job *job = cs_job_new("backup", &obs);
    cs_job_phase(job, "upload", 3, 300);
    cs_job_add_bytes(job, 100);
    cs_job_add_files(job, 1);
    cs_job_add_total(job, 1, 50);
    cs_job_item(job, "ks.t/nb-1-big-Data.db");
    cs_progress p;
    cs_job_progress(job, &p);
    assert_string_equal(p.op, "backup");
    assert_string_equal(p.phase, "upload");
    assert_string_equal(p.item, "ks.t/nb-1-big-Data.db");
    assert_int_equal(p.files_done, 1);
    assert_int_equal(p.files_total, 4);
    assert_int_equal(p.bytes_done, 100);
    assert_int_equal(p.bytes_total, 350);
    assert_false(p.canceled);
    assert_int_equal(s.phase_changes, 1);
    assert_int_equal(s.progress_calls, 1); /* the interval holds back the rest */
    cs_job_phase(job, "manifest", 0, 0);   /* a new phase starts its counters at 0 */
    assert_int_equal(s.finals, 1);         /* but upload's last counters were said first */
    assert_int_equal(s.final_files, 1);
    assert_int_equal(s.phase_changes, 2);
    cs_job_progress(job, &p);
    assert_int_equal(p.files_done, 0);
    assert_int_equal(p.bytes_done, 0);
    assert_string_equal(p.item, "");
    assert_string_equal(s.last_phase, "manifest");
    cs_job_free(job);
    /* No job: reports are no-ops. */
    cs_job_phase(NULL, "x", 1, 1);
    cs_job_add_bytes(NULL, 1);
    cs_job_progress(NULL, &p);
    assert_int_equal(p.bytes_done, 0);
}

static void *worker_checks_cancel(void *arg)
{
    cs_job *job = arg;
    cs_job_attach(job);
    bool *r = malloc(sizeof *r);
    *r = cs_cancel_requested();
    cs_job_attach(NULL);
    return r;
}

static bool canceled_on_thread(cs_job *job)
{
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, worker_checks_cancel, job);
    pthread_join(t, &r);
    bool v = *(bool *)r;
    free(r);
    return v;
}

static void test_cancel_is_per_job(void **state)
{
    (void)state;
    cs_cancel_reset();
    cs_job *a = cs_job_new("backup", NULL), *b = cs_job_new("restore", NULL);
    cs_job_cancel(a);
    assert_true(cs_job_canceled(a));
    assert_false(cs_job_canceled(b));
    assert_true(canceled_on_thread(a));  /* a worker of a sees it through cs_cancel_requested */
    assert_false(canceled_on_thread(b)); /* b's workers go on */
    assert_false(cs_cancel_requested()); /* this thread has no job */
    cs_cancel_request();                 /* a signal stops every job */
    assert_true(cs_job_canceled(b));
    assert_true(canceled_on_thread(b));
    cs_cancel_reset();
    cs_job_free(a);
    cs_job_free(b);
}

static void test_log_goes_to_the_threads_job(void **state)
{
    (void)state;
    seen s = { 0 };
    cs_job_observer obs = { NULL, on_log, &s, 0 };
    cs_job *job = cs_job_new("verify", &obs);
    int level = cs_log_get_level();
    cs_log_set_level(CS_LOG_INFO);
    cs_job *prev = cs_job_attach(job);
    assert_null(prev);
    cs_info("checked %d objects", 7);
    assert_int_equal(s.log_lines, 1);
    assert_string_equal(s.last_line, "checked 7 objects");
    assert_ptr_equal(cs_job_current(), job);
    cs_job_attach(NULL);
    assert_false(cs_job_log(CS_LOG_INFO, "nobody listens"));
    cs_log_set_level(level);
    cs_job_free(job);
}

static void *thread_sees(void *arg)
{
    *(cs_job **)arg = cs_job_current();
    cs_info("from a worker");
    return NULL;
}

/* Threads an operation starts work for its job: cancel and log lines. */
static void test_thread_inherits_job(void **state)
{
    (void)state;
    seen s = { 0 };
    cs_job_observer obs = { NULL, on_log, &s, 0 };
    cs_job *job = cs_job_new("backup", &obs);
    int level = cs_log_get_level();
    cs_log_set_level(CS_LOG_INFO);
    cs_job_attach(job);
    cs_job *seen_there = NULL;
    pthread_t t;
    assert_int_equal(cs_job_thread_create(&t, thread_sees, &seen_there), 0);
    pthread_join(t, NULL);
    assert_ptr_equal(seen_there, job);
    assert_int_equal(s.log_lines, 1);
    assert_string_equal(s.last_line, "from a worker");
    cs_job_attach(NULL); /* a thread without a job starts one without */
    assert_int_equal(cs_job_thread_create(&t, thread_sees, &seen_there), 0);
    pthread_join(t, NULL);
    assert_null(seen_there);
    cs_log_set_level(level);
    cs_job_free(job);
}

/* cs_job_end: observers hear it once, with ended set, and nothing after. */
static void test_end_is_the_last_report(void **state)
{
    (void)state;
    seen s = { 0 };
    cs_job_observer obs = { on_progress, NULL, &s, 0.000001 };
    cs_job *job = cs_job_new("verify", &obs);
    cs_job_phase(job, "read", 2, 10);
    assert_int_equal(s.phase_changes, 1);
    cs_job_add_files(job, 2);
    cs_job_end(job);
    assert_int_equal(s.phase_changes, 2);
    assert_int_equal(s.finals, 1); /* the end is the last phase's final report */
    assert_int_equal(s.final_files, 2);
    cs_progress p;
    cs_job_progress(job, &p);
    assert_true(p.ended);
    int calls = s.progress_calls;
    cs_job_phase(job, "late", 0, 0);
    cs_job_add_bytes(job, 5);
    cs_job_end(job);
    assert_int_equal(s.progress_calls, calls);
    cs_job_end(NULL);
    cs_job_free(job);
}

typedef struct par_seen {
    cs_job *job;
    pthread_mutex_t mu;
    size_t ran;
    bool all_on_job;
} par_seen;

static int par_item(void *arg, size_t i, cs_err *e)
{
    par_seen *s = arg;
    (void)e;
    pthread_mutex_lock(&s->mu);
    s->ran++;
    s->all_on_job = s->all_on_job && cs_job_current() == s->job;
    pthread_mutex_unlock(&s->mu);
    if (i == 3)
        cs_job_cancel(s->job);
    return 0;
}

/* cs_parallel_for's workers work for the caller's job, and a cancel stops
 * them from taking new items. */
static void test_parallel_for_is_the_jobs(void **state)
{
    (void)state;
    par_seen s = { cs_job_new("restore", NULL), PTHREAD_MUTEX_INITIALIZER, 0, true };
    cs_job_attach(s.job);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_parallel_for(1000, 4, par_item, &s, &e);
    assert_int_equal(rc, CS_E_CANCELED);
    assert_int_equal(e.code, CS_E_CANCELED);
    assert_true(s.ran >= 4 && s.ran < 1000);
    assert_true(s.all_on_job);
    cs_job_attach(NULL);
    cs_job_free(s.job);
    pthread_mutex_destroy(&s.mu);
}

static void set_part(cs_job *job, size_t i, const char *phase, cs_part_state st, uint64_t fd, uint64_t ft,
                     uint64_t bd, uint64_t bt)
{
    cs_progress_part p = { .state = st, .files_done = fd, .files_total = ft, .bytes_done = bd, .bytes_total = bt };
    snprintf(p.phase, sizeof p.phase, "%s", phase);
    cs_job_part_set(job, i, &p);
}

/* The job's counters are its own plus the sum of its parts', at one moment. */
static void test_parts_sum(void **state)
{
    (void)state;
    cs_job *job = cs_job_new("cluster backup", NULL);
    const char *names[] = { "127.0.0.21", "127.0.0.22", "127.0.0.23" };
    cs_job_set_parts(job, names, 3);
    cs_job_phase(job, "upload", 0, 0);
    set_part(job, 0, "upload", CS_PART_RUNNING, 1, 4, 100, 400);
    set_part(job, 1, "upload", CS_PART_RUNNING, 2, 2, 300, 300);
    set_part(job, 2, "scan", CS_PART_RUNNING, 5, 0, 0, 0);
    set_part(job, 7, "upload", CS_PART_RUNNING, 9, 9, 9, 9); /* no such part: nothing */
    cs_progress p;
    cs_progress_part parts[4];
    size_t n = cs_job_progress_parts(job, &p, parts, 4);
    assert_int_equal(n, 3);
    assert_int_equal(p.n_parts, 3);
    assert_int_equal(p.files_done, 8);
    assert_int_equal(p.files_total, 6);
    assert_int_equal(p.bytes_done, 400);
    assert_int_equal(p.bytes_total, 700);
    assert_string_equal(parts[0].name, "127.0.0.21");
    assert_string_equal(parts[2].phase, "scan");
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += parts[i].bytes_done;
    assert_int_equal(sum, p.bytes_done);
    /* A part set again replaces its numbers (never adds them twice). */
    set_part(job, 0, "upload", CS_PART_DONE, 4, 4, 400, 400);
    cs_job_progress(job, &p);
    assert_int_equal(p.bytes_done, 700);
    assert_int_equal(p.files_done, 11);
    /* What is added to the job itself counts too. */
    cs_job_add_bytes(job, 5);
    cs_job_add_total(job, 0, 5);
    cs_job_progress(job, &p);
    assert_int_equal(p.bytes_done, 705);
    assert_int_equal(p.bytes_total, 705);
    /* Only 2 asked: 2 copied, the record still says 3. */
    assert_int_equal(cs_job_progress_parts(job, &p, parts, 2), 2);
    assert_int_equal(p.n_parts, 3);
    /* A new phase: every part waiting, nothing counted, names kept. */
    cs_job_phase(job, "manifest", 0, 0);
    n = cs_job_progress_parts(job, &p, parts, 4);
    assert_int_equal(p.bytes_done, 0);
    assert_int_equal(p.files_total, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(parts[i].state, CS_PART_WAITING);
        assert_string_equal(parts[i].phase, "");
        assert_string_equal(parts[i].name, names[i]);
    }
    cs_progress_part one;
    assert_true(cs_job_part(job, 1, &one));
    assert_string_equal(one.name, "127.0.0.22");
    assert_false(cs_job_part(job, 3, &one));
    assert_string_equal(cs_part_state_name(CS_PART_FAILED), "failed");
    /* No parts: as before. */
    cs_job_set_parts(job, NULL, 0);
    cs_job_progress(job, &p);
    assert_int_equal(p.n_parts, 0);
    cs_job_free(job);
}

/* Parts written from many threads at once: the sum is always whole. */
typedef struct writer {
    cs_job *job;
    size_t i;
} writer;

static void *write_part(void *arg)
{
    writer *w = arg;
    for (uint64_t k = 1; k <= 2000; k++)
        set_part(w->job, w->i, "upload", CS_PART_RUNNING, 0, 0, k, 2000);
    return NULL;
}

static void test_parts_concurrent(void **state)
{
    (void)state;
    cs_job *job = cs_job_new("cluster backup", NULL);
    const char *names[] = { "a", "b", "c", "d" };
    cs_job_set_parts(job, names, 4);
    pthread_t t[4];
    writer w[4];
    for (size_t i = 0; i < 4; i++) {
        w[i] = (writer){ job, i };
        assert_int_equal(pthread_create(&t[i], NULL, write_part, &w[i]), 0);
    }
    for (int round = 0; round < 200; round++) {
        cs_progress p;
        cs_progress_part parts[4];
        size_t n = cs_job_progress_parts(job, &p, parts, 4);
        uint64_t done = 0, total = 0;
        for (size_t i = 0; i < n; i++) {
            done += parts[i].bytes_done;
            total += parts[i].bytes_total;
        }
        assert_int_equal(done, p.bytes_done);
        assert_int_equal(total, p.bytes_total);
    }
    for (size_t i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cs_progress p;
    cs_job_progress(job, &p);
    assert_int_equal(p.bytes_done, 8000);
    cs_job_free(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_counts),
        cmocka_unit_test(test_cancel_is_per_job),
        cmocka_unit_test(test_thread_inherits_job),
        cmocka_unit_test(test_end_is_the_last_report),
        cmocka_unit_test(test_parallel_for_is_the_jobs),
        cmocka_unit_test(test_log_goes_to_the_threads_job),
        cmocka_unit_test(test_parts_sum),
        cmocka_unit_test(test_parts_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

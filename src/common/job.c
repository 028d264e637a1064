/* job.c - one operation's cancel flag, progress record and log sink. */
#include "common/job.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cancel.h"

struct cs_job {
    cs_job_observer obs;
    volatile sig_atomic_t canceled; /* written by cs_job_cancel, maybe from a handler */
    pthread_mutex_t mu;             /* guards p (but the counters) and last_report */
    cs_progress p;                  /* op, phase, item, totals, times */
    _Atomic uint64_t files_done, bytes_done;
    _Atomic uint64_t fence;         /* the lease epoch its agent commands carry (0: none) */
    double t0;                      /* monotonic start */
    double last_report;             /* monotonic time of the last on_progress */
    bool ended;                     /* cs_job_end was called: nothing more is reported */
    cs_progress_part *parts;        /* under mu: the named parts (cs_job_set_parts) */
    size_t n_parts;
};

static _Thread_local cs_job *current_job;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

cs_job *cs_job_new(const char *op, const cs_job_observer *obs)
{
    cs_job *job = calloc(1, sizeof *job);
    if (!job)
        abort();
    if (obs)
        job->obs = *obs;
    if (job->obs.progress_interval <= 0)
        job->obs.progress_interval = 0.2;
    pthread_mutex_init(&job->mu, NULL);
    snprintf(job->p.op, sizeof job->p.op, "%s", op ? op : "");
    job->t0 = mono_now();
    job->p.started = job->p.phase_started = wall_now();
    return job;
}

void cs_job_free(cs_job *job)
{
    if (!job)
        return;
    if (current_job == job)
        current_job = NULL;
    pthread_mutex_destroy(&job->mu);
    free(job->parts);
    free(job);
}

cs_job *cs_job_attach(cs_job *job)
{
    cs_job *prev = current_job;
    current_job = job;
    return prev;
}

cs_job *cs_job_current(void)
{
    return current_job;
}

typedef struct thread_start {
    void *(*fn)(void *);
    void *arg;
    cs_job *job;
} thread_start;

static void *thread_main(void *v)
{
    thread_start start = *(thread_start *)v;
    free(v);
    cs_job_attach(start.job);
    return start.fn(start.arg);
}

int cs_job_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    thread_start *start = malloc(sizeof *start);
    if (!start)
        return EAGAIN; /* what pthread_create says when it lacks resources */
    start->fn = fn;
    start->arg = arg;
    start->job = current_job;
    int rc = pthread_create(thread, NULL, thread_main, start);
    if (rc)
        free(start);
    return rc;
}

void cs_job_cancel(cs_job *job)
{
    if (job)
        job->canceled = 1;
}

bool cs_job_canceled(const cs_job *job)
{
    return (job && job->canceled) || cs_cancel_process_requested();
}

/* Copy the record with the counters as they are now: the job's own and
 * its parts'; mu held. */
static void snapshot_locked(const cs_job *job, cs_progress *out)
{
    *out = job->p;
    out->files_done = atomic_load(&job->files_done);
    out->bytes_done = atomic_load(&job->bytes_done);
    for (size_t i = 0; i < job->n_parts; i++) {
        out->files_done += job->parts[i].files_done;
        out->files_total += job->parts[i].files_total;
        out->bytes_done += job->parts[i].bytes_done;
        out->bytes_total += job->parts[i].bytes_total;
    }
    out->n_parts = job->n_parts;
    out->elapsed = mono_now() - job->t0;
    out->canceled = cs_job_canceled(job);
    out->ended = job->ended;
}

/* A part as a new phase finds it: waiting, nothing counted. */
static void reset_part(cs_progress_part *p)
{
    p->phase[0] = '\0';
    p->state = CS_PART_WAITING;
    p->files_done = p->files_total = p->bytes_done = p->bytes_total = 0;
}

/* Tell the observer, on a phase change always, otherwise at most every
 * progress_interval seconds. The callback runs outside the mutex, so that
 * an observer may read the job again. */
static void report(cs_job *job, bool phase_changed)
{
    if (!job->obs.on_progress)
        return;
    cs_progress copy;
    pthread_mutex_lock(&job->mu);
    double now = mono_now();
    if (job->ended || (!phase_changed && now - job->last_report < job->obs.progress_interval)) {
        pthread_mutex_unlock(&job->mu);
        return;
    }
    job->last_report = now;
    snapshot_locked(job, &copy);
    pthread_mutex_unlock(&job->mu);
    job->obs.on_progress(job->obs.arg, &copy, phase_changed);
}

/* The phase that ends, once more as it leaves it (whatever the interval),
 * so that consumers see its final counters. */
static void report_final(cs_job *job)
{
    if (!job->obs.on_progress)
        return;
    cs_progress copy;
    pthread_mutex_lock(&job->mu);
    bool any = job->p.phase[0] && !job->ended;
    snapshot_locked(job, &copy);
    pthread_mutex_unlock(&job->mu);
    copy.final = true;
    if (any)
        job->obs.on_progress(job->obs.arg, &copy, false);
}

void cs_job_phase(cs_job *job, const char *phase, uint64_t files_total, uint64_t bytes_total)
{
    if (!job)
        return;
    report_final(job);
    pthread_mutex_lock(&job->mu);
    snprintf(job->p.phase, sizeof job->p.phase, "%s", phase ? phase : "");
    job->p.item[0] = '\0';
    job->p.files_total = files_total;
    job->p.bytes_total = bytes_total;
    job->p.phase_started = wall_now();
    atomic_store(&job->files_done, 0);
    atomic_store(&job->bytes_done, 0);
    for (size_t i = 0; i < job->n_parts; i++)
        reset_part(&job->parts[i]);
    pthread_mutex_unlock(&job->mu);
    report(job, true);
}

const char *cs_part_state_name(cs_part_state s)
{
    static const char *const names[] = { "waiting", "running", "done", "failed", "skipped" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void cs_job_set_parts(cs_job *job, const char *const *names, size_t n)
{
    if (!job)
        return;
    cs_progress_part *parts = n ? calloc(n, sizeof *parts) : NULL;
    if (n && !parts)
        abort();
    for (size_t i = 0; i < n; i++)
        snprintf(parts[i].name, sizeof parts[i].name, "%s", names[i] ? names[i] : "");
    pthread_mutex_lock(&job->mu);
    free(job->parts);
    job->parts = parts;
    job->n_parts = n;
    pthread_mutex_unlock(&job->mu);
}

void cs_job_part_set(cs_job *job, size_t i, const cs_progress_part *p)
{
    if (!job)
        return;
    pthread_mutex_lock(&job->mu);
    bool in = i < job->n_parts;
    if (in) {
        cs_progress_part *to = &job->parts[i];
        snprintf(to->phase, sizeof to->phase, "%s", p->phase);
        to->state = p->state;
        to->files_done = p->files_done;
        to->files_total = p->files_total;
        to->bytes_done = p->bytes_done;
        to->bytes_total = p->bytes_total;
    }
    pthread_mutex_unlock(&job->mu);
    if (in)
        report(job, false);
}

bool cs_job_part(const cs_job *job, size_t i, cs_progress_part *out)
{
    memset(out, 0, sizeof *out);
    if (!job)
        return false;
    cs_job *j = (cs_job *)job; /* the mutex is not part of the value */
    pthread_mutex_lock(&j->mu);
    bool in = i < j->n_parts;
    if (in)
        *out = j->parts[i];
    pthread_mutex_unlock(&j->mu);
    return in;
}

void cs_job_add_total(cs_job *job, uint64_t files, uint64_t bytes)
{
    if (!job)
        return;
    pthread_mutex_lock(&job->mu);
    job->p.files_total += files;
    job->p.bytes_total += bytes;
    pthread_mutex_unlock(&job->mu);
    report(job, false);
}

void cs_job_add_bytes(cs_job *job, uint64_t bytes)
{
    if (!job)
        return;
    atomic_fetch_add(&job->bytes_done, bytes);
    report(job, false);
}

void cs_job_add_files(cs_job *job, uint64_t files)
{
    if (!job)
        return;
    atomic_fetch_add(&job->files_done, files);
    report(job, false);
}

void cs_job_item(cs_job *job, const char *item)
{
    if (!job)
        return;
    pthread_mutex_lock(&job->mu);
    snprintf(job->p.item, sizeof job->p.item, "%s", item ? item : "");
    pthread_mutex_unlock(&job->mu);
}

void cs_job_end(cs_job *job)
{
    if (!job)
        return;
    cs_progress copy;
    pthread_mutex_lock(&job->mu);
    bool first = !job->ended;
    job->ended = true;
    snapshot_locked(job, &copy);
    pthread_mutex_unlock(&job->mu);
    copy.final = true;
    if (first && job->obs.on_progress)
        job->obs.on_progress(job->obs.arg, &copy, true);
}

void cs_job_progress(const cs_job *job, cs_progress *out)
{
    memset(out, 0, sizeof *out);
    if (!job)
        return;
    cs_job *j = (cs_job *)job; /* the mutex is not part of the value */
    pthread_mutex_lock(&j->mu);
    snapshot_locked(j, out);
    pthread_mutex_unlock(&j->mu);
}

size_t cs_job_progress_parts(const cs_job *job, cs_progress *out, cs_progress_part *parts, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!job)
        return 0;
    cs_job *j = (cs_job *)job;
    pthread_mutex_lock(&j->mu);
    snapshot_locked(j, out);
    size_t n = j->n_parts < cap ? j->n_parts : cap;
    if (n)
        memcpy(parts, j->parts, n * sizeof *parts);
    pthread_mutex_unlock(&j->mu);
    return n;
}

bool cs_job_log(int level, const char *line)
{
    cs_job *job = current_job;
    if (!job || !job->obs.on_log)
        return false;
    job->obs.on_log(job->obs.arg, level, line);
    return true;
}

void cs_job_set_fence(cs_job *job, uint64_t fence)
{
    if (job)
        atomic_store(&job->fence, fence);
}

uint64_t cs_job_fence(const cs_job *job)
{
    return job ? atomic_load(&((cs_job *)job)->fence) : 0;
}

/* jobs.c - the agent's job registry (see the header). */
#include "agent/jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/progress.h"
#include "net/httpd.h"

#define LOG_LINES 32   /* the last lines of a job's log, kept for its record */
#define LOG_LINE_MAX 512

typedef enum job_state { JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED } job_state;

static const char *const state_names[] = { "running", "succeeded", "failed", "canceled" };

typedef struct entry {
    uint64_t id;
    const cs_op_def *op;
    void *req;
    cs_job *job;
    pthread_t thread;
    bool thread_started;
    cs_jobs *owner;
    uint64_t epoch;       /* the fencing epoch it was started with (0: none) */
    /* under owner->mu */
    job_state state;
    cs_err err;           /* failed or canceled: why */
    json_t *result;       /* the result document, when the operation returned one */
    double started, ended; /* seconds since the epoch */
    cs_progress last;     /* the progress as the operation left it (not running) */
    /* under mu: written by the observer on the job's threads */
    pthread_mutex_t mu;
    cs_rate bytes, files;
    char *log[LOG_LINES];
    size_t log_n, log_head;
    struct entry *next;   /* newer first */
} entry;

/* Jobs ended with one op and state (the finished entries are pruned;
 * these counts never are). */
typedef struct ended_count {
    const cs_op_def *op;
    job_state state;
    uint64_t n;
} ended_count;

struct cs_jobs {
    const cs_host *host;
    pthread_mutex_t mu;
    entry *head;          /* newest first */
    uint64_t next_id;
    ended_count *ended;   /* under mu */
    size_t n_ended;
};

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the observer: on the job's threads ---- */

static void on_progress(void *arg, const cs_progress *p, bool phase_changed)
{
    entry *en = arg;
    pthread_mutex_lock(&en->mu);
    if (phase_changed) {
        cs_rate_reset(&en->bytes);
        cs_rate_reset(&en->files);
    }
    double t = now_mono();
    cs_rate_add(&en->bytes, t, p->bytes_done);
    cs_rate_add(&en->files, t, p->files_done);
    pthread_mutex_unlock(&en->mu);
}

/* A job's log lines go to its record (the last LOG_LINES) and to the
 * agent's stderr, named by the job. */
static void on_log(void *arg, int level, const char *line)
{
    entry *en = arg;
    char text[LOG_LINE_MAX];
    snprintf(text, sizeof text, "%s: %s", cs_log_level_name(level), line);
    fprintf(stderr, "cassette agent: job %llu (%s): %s\n", (unsigned long long)en->id, en->op->name, text);
    pthread_mutex_lock(&en->mu);
    size_t at = (en->log_head + en->log_n) % LOG_LINES;
    if (en->log_n == LOG_LINES) {
        free(en->log[en->log_head]);
        en->log_head = (en->log_head + 1) % LOG_LINES;
        at = (en->log_head + en->log_n - 1) % LOG_LINES;
    } else {
        en->log_n++;
    }
    en->log[at] = cs_strdup(text);
    pthread_mutex_unlock(&en->mu);
}

/* ---- running ---- */

/* One more job of op ended in state (mu held). */
static void count_ended(cs_jobs *jobs, const cs_op_def *op, job_state state)
{
    for (size_t i = 0; i < jobs->n_ended; i++)
        if (jobs->ended[i].op == op && jobs->ended[i].state == state) {
            jobs->ended[i].n++;
            return;
        }
    jobs->ended = cs_realloc(jobs->ended, (jobs->n_ended + 1) * sizeof *jobs->ended);
    jobs->ended[jobs->n_ended++] = (ended_count){ op, state, 1 };
}

static void *job_main(void *arg)
{
    entry *en = arg;
    cs_err err;
    cs_err_clear(&err);
    void *res = NULL;
    cs_job_attach(en->job);
    int rc = cs_op_run(en->op, en->job, en->owner->host, en->req, &res, &err);
    cs_job_end(en->job);
    cs_progress last;
    cs_job_progress(en->job, &last);
    json_t *doc = NULL;
    if (!rc) {
        doc = cs_op_result_json(en->op, en->req, res);
        rc = cs_op_verdict(en->op, en->req, res, &err);
    }
    cs_op_result_free(en->op, res);
    cs_job_attach(NULL);
    pthread_mutex_lock(&en->owner->mu);
    en->result = doc;
    en->last = last;
    en->err = err;
    en->state = !rc ? JOB_SUCCEEDED : rc == CS_E_CANCELED ? JOB_CANCELED : JOB_FAILED;
    en->ended = now_real();
    count_ended(en->owner, en->op, en->state);
    pthread_mutex_unlock(&en->owner->mu);
    return NULL;
}

static void entry_free(entry *en)
{
    if (en->thread_started)
        pthread_join(en->thread, NULL);
    cs_job_free(en->job);
    cs_op_request_free(en->op, en->req);
    json_decref(en->result);
    for (size_t i = 0; i < en->log_n; i++)
        free(en->log[(en->log_head + i) % LOG_LINES]);
    pthread_mutex_destroy(&en->mu);
    free(en);
}

cs_jobs *cs_jobs_new(const cs_host *host)
{
    cs_jobs *jobs = cs_calloc(1, sizeof *jobs);
    jobs->host = host;
    jobs->next_id = 1;
    pthread_mutex_init(&jobs->mu, NULL);
    return jobs;
}

void cs_jobs_cancel_all(cs_jobs *jobs)
{
    pthread_mutex_lock(&jobs->mu);
    for (entry *en = jobs->head; en; en = en->next)
        if (en->state == JOB_RUNNING)
            cs_job_cancel(en->job);
    pthread_mutex_unlock(&jobs->mu);
}

/* Running jobs started with an epoch in (0, epoch) (mu held); cancel them
 * too when cancel is set. */
static size_t fenced_running(cs_jobs *jobs, uint64_t epoch, bool cancel)
{
    size_t n = 0;
    for (entry *en = jobs->head; en; en = en->next)
        if (en->state == JOB_RUNNING && en->epoch && en->epoch < epoch) {
            if (cancel)
                cs_job_cancel(en->job);
            n++;
        }
    return n;
}

size_t cs_jobs_cancel_fenced(cs_jobs *jobs, uint64_t epoch, double wait_s)
{
    pthread_mutex_lock(&jobs->mu);
    size_t canceled = fenced_running(jobs, epoch, true);
    double until = now_mono() + wait_s;
    /* A canceled job stops at its next safe point (a part, a file): short. */
    while (fenced_running(jobs, epoch, false) && now_mono() < until) {
        pthread_mutex_unlock(&jobs->mu);
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&jobs->mu);
    }
    pthread_mutex_unlock(&jobs->mu);
    return canceled;
}

void cs_jobs_free(cs_jobs *jobs)
{
    if (!jobs)
        return;
    cs_jobs_cancel_all(jobs);
    for (entry *en = jobs->head, *next; en; en = next) {
        next = en->next;
        entry_free(en); /* joins a running job's thread: it stops at its next safe point */
    }
    pthread_mutex_destroy(&jobs->mu);
    free(jobs->ended);
    free(jobs);
}

/* Drop the oldest finished jobs past the bound (mu held). */
static void prune(cs_jobs *jobs)
{
    size_t finished = 0;
    entry **link = &jobs->head;
    while (*link) {
        entry *en = *link;
        if (en->state != JOB_RUNNING && ++finished > CS_JOBS_MAX_FINISHED) {
            *link = en->next;
            entry_free(en); /* its thread has returned or is returning: the join is short */
            continue;
        }
        link = &en->next;
    }
}

int cs_jobs_start(cs_jobs *jobs, const cs_op_def *op, void *req, uint64_t epoch, uint64_t *id, cs_err *e)
{
    pthread_mutex_lock(&jobs->mu);
    size_t running = 0;
    for (entry *en = jobs->head; en; en = en->next)
        running += en->state == JOB_RUNNING;
    if (running >= CS_JOBS_MAX_RUNNING) {
        pthread_mutex_unlock(&jobs->mu);
        cs_op_request_free(op, req);
        return cs_err_set(e, CS_E_LOCKED, "%d operations are running already; wait for one to end",
                          CS_JOBS_MAX_RUNNING);
    }
    entry *en = cs_calloc(1, sizeof *en);
    en->id = jobs->next_id++;
    en->op = op;
    en->req = req;
    en->owner = jobs;
    en->epoch = epoch;
    en->state = JOB_RUNNING;
    en->started = now_real();
    pthread_mutex_init(&en->mu, NULL);
    cs_job_observer obs = { on_progress, on_log, en, 1.0 };
    en->job = cs_job_new(op->name, &obs);
    /* The job's thread is the agent's own, not a worker of another job. */
    int prc = pthread_create(&en->thread, NULL, job_main, en);
    if (prc) {
        pthread_mutex_unlock(&jobs->mu);
        entry_free(en);
        return cs_err_sys(e, CS_E_IO, prc, "cannot start a thread for %s", op->name);
    }
    en->thread_started = true;
    en->next = jobs->head;
    jobs->head = en;
    *id = en->id;
    prune(jobs);
    pthread_mutex_unlock(&jobs->mu);
    return 0;
}

static entry *find(cs_jobs *jobs, uint64_t id)
{
    for (entry *en = jobs->head; en; en = en->next)
        if (en->id == id)
            return en;
    return NULL;
}

/* id, op, state, times and progress (mu held). */
static json_t *summary(entry *en)
{
    cs_progress p = en->last;
    if (en->state == JOB_RUNNING)
        cs_job_progress(en->job, &p);
    pthread_mutex_lock(&en->mu);
    double byte_rate = cs_rate_per_second(&en->bytes), file_rate = cs_rate_per_second(&en->files);
    pthread_mutex_unlock(&en->mu);
    if (en->state != JOB_RUNNING)
        byte_rate = file_rate = 0;
    json_t *doc = json_object();
    json_object_set_new(doc, "id", json_integer((json_int_t)en->id));
    json_object_set_new(doc, "op", json_string(en->op->name));
    json_object_set_new(doc, "state", json_string(state_names[en->state]));
    json_object_set_new(doc, "started", json_real((double)(long long)en->started));
    json_object_set_new(doc, "ended", en->state == JOB_RUNNING ? json_null() : json_real((double)(long long)en->ended));
    json_object_set_new(doc, "progress", cs_progress_json(&p, byte_rate, file_rate));
    return doc;
}

static json_t *error_json(const cs_err *e)
{
    char msg[CS_ERR_MSG_MAX + 256];
    cs_err_render(e, NULL, NULL, msg, sizeof msg);
    json_t *err = json_object();
    json_object_set_new(err, "message", cs_http_text_json(msg));
    json_object_set_new(err, "code", json_string(cs_err_name(e->code)));
    json_object_set_new(err, "exit_code", json_integer(cs_exit_code(e->code)));
    if (e->field[0])
        json_object_set_new(err, "field", cs_http_text_json(e->field));
    return err;
}

json_t *cs_jobs_get(cs_jobs *jobs, uint64_t id)
{
    pthread_mutex_lock(&jobs->mu);
    entry *en = find(jobs, id);
    json_t *doc = en ? summary(en) : NULL;
    if (en) {
        json_object_set_new(doc, "request", cs_op_request_to_json(en->op, en->req));
        json_t *log = json_array();
        pthread_mutex_lock(&en->mu);
        for (size_t i = 0; i < en->log_n; i++)
            json_array_append_new(log, cs_http_text_json(en->log[(en->log_head + i) % LOG_LINES]));
        pthread_mutex_unlock(&en->mu);
        json_object_set_new(doc, "log", log);
        if (en->result)
            json_object_set(doc, "result", en->result);
        if (en->state == JOB_FAILED || en->state == JOB_CANCELED)
            json_object_set_new(doc, "error", error_json(&en->err));
    }
    pthread_mutex_unlock(&jobs->mu);
    return doc;
}

json_t *cs_jobs_list(cs_jobs *jobs)
{
    json_t *list = json_array();
    pthread_mutex_lock(&jobs->mu);
    for (entry *en = jobs->head; en; en = en->next)
        json_array_append_new(list, summary(en));
    pthread_mutex_unlock(&jobs->mu);
    return list;
}

int cs_jobs_cancel(cs_jobs *jobs, uint64_t id, cs_err *e)
{
    pthread_mutex_lock(&jobs->mu);
    entry *en = find(jobs, id);
    if (en && en->state == JOB_RUNNING)
        cs_job_cancel(en->job);
    pthread_mutex_unlock(&jobs->mu);
    return en ? 0 : cs_err_set(e, CS_E_NOTFOUND, "no job %llu", (unsigned long long)id);
}

void cs_jobs_walk(cs_jobs *jobs, const cs_jobs_visitor *v)
{
    pthread_mutex_lock(&jobs->mu);
    for (entry *en = jobs->head; v->running && en; en = en->next) {
        if (en->state != JOB_RUNNING)
            continue;
        cs_progress p;
        cs_job_progress(en->job, &p);
        pthread_mutex_lock(&en->mu);
        double rate = cs_rate_per_second(&en->bytes);
        pthread_mutex_unlock(&en->mu);
        v->running(v->arg, en->id, en->op->name, &p, rate);
    }
    for (size_t i = 0; v->ended && i < jobs->n_ended; i++)
        v->ended(v->arg, jobs->ended[i].op->name, state_names[jobs->ended[i].state], jobs->ended[i].n);
    pthread_mutex_unlock(&jobs->mu);
}

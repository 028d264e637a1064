/* runner.c - the server's workers (see runner.h). */
#include "server/runner.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"
#include "common/progress.h"
#include "ops/optable.h"
#include "server/model.h"
#include "server/schedule.h"

/* Why a running job was stopped by the server (not by its operation). */
enum stop_why { WHY_NONE, WHY_CANCEL, WHY_WINDOW, WHY_LOST, WHY_STOP };

typedef struct slot {
    char *run_id;      /* NULL: idle */
    cs_job *job;
    enum stop_why why;
} slot;

struct cs_runner {
    cs_runner_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool leader, stopping;
    uint64_t epoch;
    long n;
    slot *slots;
    pthread_t *threads;
    struct worker_arg {
        cs_runner *r;
        long i;
    } *args;
};

#define PROGRESS_EVERY 2.0 /* seconds between progress writes of a run */
#define POLL 0.5           /* seconds between a running job's checks */

static const char *text(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static double number(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void sleep_for(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* The task's window (NULL: none, or no task). */
static cs_window *task_window(const json_t *task)
{
    json_t *spans = json_object_get(task, "window");
    size_t n = json_array_size(spans);
    if (!n)
        return NULL;
    const char **v = cs_calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(spans, i));
    cs_window *w = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_window_parse(v, n, text(task, "timezone"), &w, &e))
        cs_warn("task %s: window: %s", text(task, "id"), e.msg);
    free(v);
    return w;
}

static json_t *task_of(cs_state *st, const json_t *run)
{
    const char *id = text(run, "task");
    json_t *task = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (id && cs_state_task_get(st, id, &task, &e))
        task = NULL;
    return task;
}

/* A follow-up run of run: a retry (attempt + 1, retry_of) or a resumption
 * (same attempt, resumed_from), not before t. */
static void queue_follow_up(cs_state *st, const json_t *run, bool retry, double t, double now)
{
    cs_err e;
    cs_err_clear(&e);
    json_t *cluster = NULL;
    if (cs_state_cluster_get(st, text(run, "cluster"), &cluster, &e)) {
        cs_warn("run %s: no follow-up: %s", text(run, "id"), e.msg);
        return;
    }
    json_t *task = task_of(st, run);
    json_t *next = cs_model_run_new(cluster, task, text(run, "kind"), json_object_get(run, "params"), now);
    json_int_t attempt = json_integer_value(json_object_get(run, "attempt"));
    if (attempt < 1)
        attempt = 1;
    json_object_set_new(next, "attempt", json_integer(retry ? attempt + 1 : attempt));
    json_object_set_new(next, retry ? "retry_of" : "resumed_from", json_string(text(run, "id")));
    json_object_set_new(next, "not_before", json_real(t));
    if (cs_state_run_add(st, next, &e))
        cs_warn("run %s: no follow-up: %s", text(run, "id"), e.msg);
    else
        cs_info("run %s: %s queued as %s", text(run, "id"), retry ? "retry" : "resumption", text(next, "id"));
    json_decref(next);
    json_decref(task);
    json_decref(cluster);
}

/* Has run attempts left (its task's retries)? The backoff of its retry. */
static bool retry_left(cs_state *st, const json_t *run, double *backoff)
{
    json_t *task = task_of(st, run);
    json_int_t retries = task ? json_integer_value(json_object_get(task, "retries")) : 0;
    double base = task && json_is_number(json_object_get(task, "retry_backoff"))
                      ? number(task, "retry_backoff") : 60;
    json_decref(task);
    json_int_t attempt = json_integer_value(json_object_get(run, "attempt"));
    if (attempt < 1)
        attempt = 1;
    *backoff = base;
    for (json_int_t k = 1; k < attempt && k < 32; k++)
        *backoff *= 2;
    return attempt <= retries;
}

static int recover(cs_state *st, const char *owner, uint64_t epoch, double now, const cs_runner_opts *o, cs_err *e)
{
    cs_run_filter f = { .state = "running", .limit = 1000, .oldest_first = true };
    json_t *runs = NULL;
    int rc = cs_state_run_list(st, &f, &runs, e);
    if (rc)
        return rc;
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) {
        const char *server = text(run, "server");
        if (server && owner && !strcmp(server, owner) &&
            (uint64_t)json_integer_value(json_object_get(run, "epoch")) == epoch)
            continue; /* ours, under this lease */
        json_t *doc = json_deep_copy(run);
        json_object_set_new(doc, "state", json_string("interrupted"));
        json_object_set_new(doc, "ended", json_real(now));
        char *why = cs_sprintf("the server running it (%s) stopped", server ? server : "unknown");
        json_object_set_new(doc, "error", json_string(why));
        json_object_set_new(doc, "error_code", json_string(cs_err_name(CS_E_CANCELED)));
        free(why);
        bool applied = false;
        cs_err e2;
        cs_err_clear(&e2);
        if (!cs_state_run_cas(st, "running", doc, &applied, &e2) && applied) {
            cs_warn("run %s: left running by %s: interrupted", text(run, "id"), server ? server : "?");
            if (o && o->ended)
                o->ended(o->ended_ctx, doc);
            double backoff;
            if (retry_left(st, run, &backoff))
                queue_follow_up(st, run, true, now, now);
        }
        json_decref(doc);
    }
    json_decref(runs);
    return 0;
}

int cs_runner_recover(cs_state *st, const char *owner, uint64_t epoch, double now, cs_err *e)
{
    return recover(st, owner, epoch, now, NULL, e);
}

/* ---- taking a run ---- */

static bool in_set(const json_t *set, const char *s)
{
    return s && json_object_get(set, s) != NULL;
}

/* May run start now: its not_before has passed and its task's window is open. */
static bool ready(cs_state *st, const json_t *run, double now)
{
    if (number(run, "not_before") > now)
        return false;
    json_t *task = task_of(st, run);
    cs_window *w = task_window(task);
    bool open = cs_window_open(w, now);
    cs_window_free(w);
    json_decref(task);
    return open;
}

/* Take the oldest ready queued run of a cluster that has none running
 * (r->mu held: one worker picks at a time). */
static json_t *pick(cs_runner *r, double now)
{
    cs_err e;
    cs_err_clear(&e);
    json_t *running = NULL, *queued = NULL, *busy = json_object(), *taken = NULL;
    cs_run_filter fr = { .state = "running", .limit = 1000 };
    cs_run_filter fq = { .state = "queued", .limit = 1000, .oldest_first = true };
    if (cs_state_run_list(r->o.state, &fr, &running, &e) || cs_state_run_list(r->o.state, &fq, &queued, &e)) {
        cs_warn("runner: %s", e.msg);
        goto out;
    }
    size_t i;
    json_t *run;
    json_array_foreach(running, i, run)
        json_object_set_new(busy, text(run, "cluster"), json_true());
    json_array_foreach(queued, i, run) {
        const char *cluster = text(run, "cluster");
        if (!cluster || in_set(busy, cluster) || !ready(r->o.state, run, now))
            continue;
        json_t *doc = json_deep_copy(run);
        json_object_set_new(doc, "state", json_string("running"));
        json_object_set_new(doc, "started", json_real(now));
        json_object_set_new(doc, "server", json_string(r->o.server_id));
        json_object_set_new(doc, "epoch", json_integer((json_int_t)r->epoch));
        bool applied = false;
        if (!cs_state_run_cas(r->o.state, "queued", doc, &applied, &e) && applied) {
            taken = doc;
            break;
        }
        json_decref(doc);
        json_object_set_new(busy, cluster, json_true()); /* someone else moved it: look again next time */
    }
out:
    json_decref(running);
    json_decref(queued);
    json_decref(busy);
    return taken;
}

/* ---- running one ---- */

typedef struct op_run {
    const cs_op_def *op;
    cs_job *job;
    const cs_host *host;
    void *req, *res;
    int rc;
    cs_err e;
    bool done;
    pthread_mutex_t *mu;
    pthread_mutex_t seen_mu;
    uint64_t files_seen, bytes_seen; /* the most any phase counted: phases start again at 0 */
} op_run;

/* The job's observer: the most files and bytes any phase has done. */
static void on_progress(void *arg, const cs_progress *p, bool phase_changed)
{
    (void)phase_changed;
    op_run *o = arg;
    pthread_mutex_lock(&o->seen_mu);
    if (p->files_done > o->files_seen)
        o->files_seen = p->files_done;
    if (p->bytes_done > o->bytes_seen)
        o->bytes_seen = p->bytes_done;
    pthread_mutex_unlock(&o->seen_mu);
}

/* Files and bytes of the run: the most a phase counted, now included. */
static void counts(op_run *o, const cs_progress *p, uint64_t *files, uint64_t *bytes)
{
    on_progress(o, p, false);
    pthread_mutex_lock(&o->seen_mu);
    *files = o->files_seen;
    *bytes = o->bytes_seen;
    pthread_mutex_unlock(&o->seen_mu);
}

static void *op_thread(void *arg)
{
    op_run *o = arg;
    cs_job_attach(o->job);
    cs_err_clear(&o->e);
    o->rc = cs_op_run(o->op, o->job, o->host, o->req, &o->res, &o->e);
    if (!o->rc)
        o->rc = cs_op_verdict(o->op, o->req, o->res, &o->e);
    cs_job_end(o->job);
    cs_job_attach(NULL);
    pthread_mutex_lock(o->mu);
    o->done = true;
    pthread_mutex_unlock(o->mu);
    return NULL;
}

/* The run's progress document: the job's record and, for a cluster
 * operation, its nodes (the job's parts, read at the same moment). */
static json_t *progress_json(const cs_job *job, cs_progress *p)
{
    cs_progress_part *parts = NULL;
    size_t n = cs_job_progress_parts(job, p, NULL, 0);
    while (n < p->n_parts) { /* room for them, and read again (until none came meanwhile) */
        parts = cs_realloc(parts, p->n_parts * sizeof *parts);
        n = cs_job_progress_parts(job, p, parts, p->n_parts);
    }
    json_t *doc = json_pack("{s:s, s:I, s:I, s:I, s:I}", "phase", p->phase, "files_done", (json_int_t)p->files_done,
                            "files_total", (json_int_t)p->files_total, "bytes_done", (json_int_t)p->bytes_done,
                            "bytes_total", (json_int_t)p->bytes_total);
    if (n) {
        json_t *nodes = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(nodes, cs_progress_part_json(&parts[i], -1, 0));
        json_object_set_new(doc, "nodes", nodes);
    }
    free(parts);
    return doc;
}

static void write_progress(cs_runner *r, json_t *run, op_run *o)
{
    cs_progress p;
    json_t *progress = progress_json(o->job, &p);
    uint64_t files, bytes;
    counts(o, &p, &files, &bytes);
    json_object_set_new(run, "progress", progress);
    json_object_set_new(run, "files", json_integer((json_int_t)files));
    json_object_set_new(run, "bytes", json_integer((json_int_t)bytes));
    cs_err e;
    cs_err_clear(&e);
    if (cs_state_run_update(r->o.state, run, &e))
        cs_debug("run %s: progress not written: %s", text(run, "id"), e.msg);
}

static bool op_done(op_run *o)
{
    pthread_mutex_lock(o->mu);
    bool d = o->done;
    pthread_mutex_unlock(o->mu);
    return d;
}

/* Watch the job until its operation returns: cancels, the window, progress. */
static void watch(cs_runner *r, long i, json_t *run, op_run *o, const cs_window *w)
{
    double last = 0;
    while (!op_done(o)) {
        sleep_for(POLL);
        double now = cs_now();
        bool asked = false;
        cs_err e;
        cs_err_clear(&e);
        enum stop_why why = WHY_NONE;
        if (!cs_state_run_cancel_asked(r->o.state, text(run, "id"), &asked, &e) && asked)
            why = WHY_CANCEL;
        else if (w && !cs_window_open(w, now))
            why = WHY_WINDOW;
        pthread_mutex_lock(&r->mu);
        if (why != WHY_NONE && r->slots[i].why == WHY_NONE) {
            r->slots[i].why = why;
            cs_job_cancel(o->job);
            cs_info("run %s: %s", text(run, "id"), why == WHY_CANCEL ? "cancel asked" : "its window closed");
        }
        pthread_mutex_unlock(&r->mu);
        if (now - last >= PROGRESS_EVERY) {
            write_progress(r, run, o);
            last = now;
        }
    }
}

/* The largest of doc's counts of keys (0: none). */
static json_int_t largest(const json_t *doc, const char *const *keys)
{
    json_int_t best = 0;
    for (size_t k = 0; keys[k]; k++)
        if (json_integer_value(json_object_get(doc, keys[k])) > best)
            best = json_integer_value(json_object_get(doc, keys[k]));
    return best;
}

/* A count a result document gives: its own (a node operation's), else the
 * sum over its "nodes" of theirs or their node operation's ("backup", ...). */
static json_int_t result_count(const json_t *doc, const char *const *keys)
{
    json_int_t own = largest(doc, keys), sum = 0;
    if (own)
        return own;
    size_t i;
    json_t *node;
    json_array_foreach(json_object_get(doc, "nodes"), i, node) {
        json_int_t best = largest(node, keys);
        const char *key;
        json_t *v;
        json_object_foreach(node, key, v)
            if (json_is_object(v) && largest(v, keys) > best)
                best = largest(v, keys);
        sum += best;
    }
    return sum;
}

/* Counters the result gives, when progress counted none. */
static void counts_from_result(json_t *doc, const json_t *result)
{
    static const char *const files[] = { "files", NULL };
    static const char *const bytes[] = { "bytes", "bytes_read", "size", NULL };
    if (json_integer_value(json_object_get(doc, "files")) == 0)
        json_object_set_new(doc, "files", json_integer(result_count(result, files)));
    if (json_integer_value(json_object_get(doc, "bytes")) == 0)
        json_object_set_new(doc, "bytes", json_integer(result_count(result, bytes)));
}

/* End run (running) as its operation left it; queue what follows. */
static void finish(cs_runner *r, json_t *run, op_run *o, enum stop_why why, const cs_window *w)
{
    double now = cs_now();
    cs_progress p;
    json_t *progress = progress_json(o->job, &p);
    const char *state = "done";
    if (o->rc)
        state = why == WHY_CANCEL ? "cancelled" : why == WHY_NONE ? "failed" : "interrupted";
    json_object_set_new(run, "state", json_string(state));
    json_object_set_new(run, "ended", json_real(now));
    uint64_t files, bytes;
    counts(o, &p, &files, &bytes);
    json_object_set_new(run, "progress", progress);
    json_object_set_new(run, "files", json_integer((json_int_t)files));
    json_object_set_new(run, "bytes", json_integer((json_int_t)bytes));
    if (o->res) {
        json_t *result = cs_op_result_json(o->op, o->req, o->res);
        counts_from_result(run, result);
        json_object_set_new(run, "result", result ? result : json_null());
    }
    if (o->rc) {
        char msg[CS_ERR_MSG_MAX + 64];
        cs_err_render(&o->e, NULL, NULL, msg, sizeof msg);
        json_object_set_new(run, "error", json_string(msg));
        json_object_set_new(run, "error_code", json_string(cs_err_name(o->e.code)));
    }
    bool applied = false;
    cs_err e;
    cs_err_clear(&e);
    if (cs_state_run_cas(r->o.state, "running", run, &applied, &e) || !applied) {
        cs_warn("run %s: its end (%s) not stored: %s", text(run, "id"), state, applied ? e.msg : "moved meanwhile");
        return;
    }
    cs_info("run %s: %s", text(run, "id"), state);
    if (r->o.ended)
        r->o.ended(r->o.ended_ctx, run);
    double backoff;
    if (!strcmp(state, "failed") && retry_left(r->o.state, run, &backoff))
        queue_follow_up(r->o.state, run, true, now + backoff, now);
    else if (!strcmp(state, "interrupted"))
        queue_follow_up(r->o.state, run, false, why == WHY_WINDOW ? cs_window_next_open(w, now) : now, now);
}

/* A run that could not start: failed at once (with its retry). */
static void fail_early(cs_runner *r, json_t *run, const cs_err *err)
{
    op_run o;
    memset(&o, 0, sizeof o);
    pthread_mutex_init(&o.seen_mu, NULL);
    o.rc = err->code ? err->code : CS_E_EXTERNAL;
    o.e = *err;
    o.job = cs_job_new(text(run, "kind") ? text(run, "kind") : "run", NULL);
    finish(r, run, &o, WHY_NONE, NULL);
    cs_job_free(o.job);
    pthread_mutex_destroy(&o.seen_mu);
}

/* Re-read the cluster's topology (stored when it changed). */
static int rediscover(cs_runner *r, json_t **cluster, cs_err *e)
{
    if (!r->o.discover)
        return 0;
    json_t *c = json_deep_copy(*cluster);
    int rc = r->o.discover(r->o.discover_ctx, c, e);
    if (rc) {
        json_decref(c);
        return rc;
    }
    cs_err e2;
    cs_err_clear(&e2);
    if (cs_state_cluster_put(r->o.state, c, false, &e2))
        cs_debug("cluster %s: topology not stored: %s", text(c, "id"), e2.msg);
    json_decref(*cluster);
    *cluster = c;
    return 0;
}

static void execute(cs_runner *r, long i, json_t *run)
{
    cs_err e;
    cs_err_clear(&e);
    json_t *cluster = NULL, *task = task_of(r->o.state, run);
    op_run o;
    memset(&o, 0, sizeof o);
    pthread_mutex_init(&o.seen_mu, NULL);
    o.mu = &r->mu;
    o.host = r->o.host;
    cs_info("run %s: %s of cluster %s started", text(run, "id"), text(run, "kind"), text(run, "cluster"));
    int rc = cs_state_cluster_get(r->o.state, text(run, "cluster"), &cluster, &e);
    if (!rc)
        rc = rediscover(r, &cluster, &e);
    if (!rc)
        rc = cs_model_request(cluster, text(run, "kind"), json_object_get(run, "params"), &o.op, &o.req, &e);
    if (rc) {
        fail_early(r, run, &e);
        goto out;
    }
    json_object_set_new(run, "op", json_string(o.op->name));
    cs_job_observer obs = { .on_progress = on_progress, .arg = &o, .progress_interval = 1 };
    o.job = cs_job_new(o.op->name, &obs);
    /* The lease's epoch goes to every agent command: agents refuse an older one. */
    cs_job_set_fence(o.job, (uint64_t)json_integer_value(json_object_get(run, "epoch")));
    pthread_mutex_lock(&r->mu);
    r->slots[i].job = o.job;
    enum stop_why early = r->slots[i].why;
    pthread_mutex_unlock(&r->mu);
    if (early != WHY_NONE)
        cs_job_cancel(o.job);
    cs_window *w = task_window(task);
    pthread_t t;
    if (pthread_create(&t, NULL, op_thread, &o)) {
        cs_err_set(&e, CS_E_NOMEM, "cannot start a thread for the run");
        fail_early(r, run, &e);
    } else {
        watch(r, i, run, &o, w);
        pthread_join(t, NULL);
        pthread_mutex_lock(&r->mu);
        enum stop_why why = r->slots[i].why;
        r->slots[i].job = NULL;
        pthread_mutex_unlock(&r->mu);
        finish(r, run, &o, why, w);
    }
    cs_window_free(w);
    cs_op_result_free(o.op, o.res);
    cs_job_free(o.job);
out:
    if (o.op)
        cs_op_request_free(o.op, o.req);
    json_decref(cluster);
    json_decref(task);
    pthread_mutex_destroy(&o.seen_mu);
}

static void *worker(void *arg)
{
    struct worker_arg *a = arg;
    cs_runner *r = a->r;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        json_t *run = r->leader ? pick(r, cs_now()) : NULL;
        if (!run) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            continue;
        }
        r->slots[a->i].run_id = cs_strdup(text(run, "id"));
        r->slots[a->i].why = WHY_NONE;
        pthread_mutex_unlock(&r->mu);
        execute(r, a->i, run);
        json_decref(run);
        pthread_mutex_lock(&r->mu);
        free(r->slots[a->i].run_id);
        r->slots[a->i].run_id = NULL;
        pthread_cond_broadcast(&r->cv); /* its cluster is free */
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int cs_runner_start(const cs_runner_opts *o, cs_runner **out, cs_err *e)
{
    if (o->workers < 1 || o->workers > 256)
    {
        cs_err_set(e, CS_E_USAGE, "{workers} must be 1 to 256, not %ld", o->workers);
        return cs_err_field(e, "workers");
    }
    cs_runner *r = cs_calloc(1, sizeof *r);
    r->o = *o;
    r->n = o->workers;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->slots = cs_calloc((size_t)r->n, sizeof *r->slots);
    r->threads = cs_calloc((size_t)r->n, sizeof *r->threads);
    r->args = cs_calloc((size_t)r->n, sizeof *r->args);
    for (long i = 0; i < r->n; i++) {
        r->args[i].r = r;
        r->args[i].i = i;
        if (pthread_create(&r->threads[i], NULL, worker, &r->args[i])) {
            r->n = i;
            cs_runner_stop(r);
            return cs_err_set(e, CS_E_NOMEM, "cannot start the server's workers");
        }
    }
    *out = r;
    return 0;
}

/* Stop every running job for why (r->mu held). */
static void stop_all(cs_runner *r, enum stop_why why)
{
    for (long i = 0; i < r->n; i++)
        if (r->slots[i].run_id) {
            if (r->slots[i].why == WHY_NONE)
                r->slots[i].why = why;
            if (r->slots[i].job)
                cs_job_cancel(r->slots[i].job);
        }
}

void cs_runner_lead(cs_runner *r, bool leader, uint64_t epoch)
{
    pthread_mutex_lock(&r->mu);
    bool was = r->leader;
    r->leader = leader;
    r->epoch = epoch;
    if (!leader && was) {
        cs_warn("server: the lease is lost: running jobs are stopped");
        stop_all(r, WHY_LOST);
    }
    if (leader && !was) {
        cs_err e;
        cs_err_clear(&e);
        if (recover(r->o.state, r->o.server_id, epoch, cs_now(), &r->o, &e))
            cs_warn("server: recovering runs: %s", e.msg);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void cs_runner_wake(cs_runner *r)
{
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

json_t *cs_runner_info(cs_runner *r)
{
    json_t *running = json_array();
    pthread_mutex_lock(&r->mu);
    for (long i = 0; i < r->n; i++)
        if (r->slots[i].run_id)
            json_array_append_new(running, json_string(r->slots[i].run_id));
    json_t *doc = json_pack("{s:I, s:o, s:b, s:I}", "workers", (json_int_t)r->n, "running", running, "leader",
                            r->leader, "epoch", (json_int_t)r->epoch);
    pthread_mutex_unlock(&r->mu);
    return doc;
}

void cs_runner_stop(cs_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    stop_all(r, WHY_STOP);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (long i = 0; i < r->n; i++)
        pthread_join(r->threads[i], NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->slots);
    free(r->threads);
    free(r->args);
    free(r);
}

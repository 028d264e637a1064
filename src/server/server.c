/* server.c - the `cassette server` daemon (see server.h). */
#include "server/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/coord.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"
#include "net/httpd.h"
#include "ops/ops.h"
#include "ops/optable.h"
#include "repo/repo.h"
#include "server/api.h"
#include "server/model.h"
#include "server/runner.h"
#include "server/schedule.h"
#include "server/stats.h"

#define EXPORT_PREFIX "server/state-"
#define EXPORTS_KEPT 7
#define REPO_REFRESH 600.0 /* seconds between listings of a cluster's repository for /metrics */

/* When a cluster's repository was last listed for the metrics, and
 * whether a run that changes it (backup, purge) ended since. */
typedef struct repo_seen {
    char *cluster;
    double at;
    bool dirty;
} repo_seen;

typedef struct server {
    const cs_host *host;
    cs_server_opts o;
    char owner[320];          /* "<server-id>#<nonce>" */
    cs_state *st;
    cs_runner *runner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool leader, stopping, woken;
    uint64_t epoch;
    double last_export;
    cs_stats *stats;
    repo_seen *seen; /* under mu */
    size_t n_seen;
} server;

static const char *text(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- hooks ---- */

static json_t *node_doc(const cs_cluster_node *n)
{
    json_t *o = cs_cluster_node_json(n);
    const char *v = n->facts ? text(n->facts, "release_version") : NULL;
    json_object_set_new(o, "version", v ? json_string(v) : json_null());
    return o;
}

/* The cluster as its contact point and agents show it: name, partitioner,
 * nodes, datacenters. CS_E_EXTERNAL when no node's agent answers. */
static int discover(void *ctx, json_t *cluster, cs_err *e)
{
    server *s = ctx;
    cs_strlist agents = { NULL, 0 };
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(cluster, "agents"), i, a)
        if (json_is_string(a))
            cs_strlist_add(&agents, json_string_value(a));
    cs_coord_target t = { .contact = text(cluster, "contact"), .agents = &agents,
                          .agent_template = text(cluster, "agent_template") };
    cs_coord c;
    cs_job *job = cs_job_new("discover", NULL);
    int rc = cs_coord_open(&c, job, s->host, &t, e);
    size_t ok = 0;
    for (size_t k = 0; !rc && k < c.n; k++)
        ok += c.nodes[k].ok;
    if (rc) {
        rc = cs_err_set(e, CS_E_EXTERNAL, "cluster %s cannot be reached: %s", text(cluster, "id"), e->msg);
    } else if (!ok) {
        rc = cs_err_set(e, CS_E_EXTERNAL, "cluster %s: none of its %zu nodes' agents answers%s%s",
                        text(cluster, "id"), c.n, c.n ? ": " : "", c.n ? c.nodes[0].reason : "");
    } else {
        json_t *nodes = json_array(), *dcs = json_array();
        for (size_t k = 0; k < c.n; k++) {
            json_array_append_new(nodes, node_doc(&c.nodes[k]));
            const char *dc = c.nodes[k].datacenter;
            bool seen = !dc;
            for (size_t j = 0; !seen && j < json_array_size(dcs); j++)
                seen = !strcmp(json_string_value(json_array_get(dcs, j)), dc);
            if (!seen)
                json_array_append_new(dcs, json_string(dc));
        }
        json_object_set_new(cluster, "name", c.cluster ? json_string(c.cluster) : json_null());
        json_object_set_new(cluster, "partitioner", c.partitioner ? json_string(c.partitioner) : json_null());
        json_object_set_new(cluster, "nodes", nodes);
        json_object_set_new(cluster, "datacenters", dcs);
        json_object_set_new(cluster, "discovered", json_real(cs_now()));
    }
    cs_coord_close(&c);
    cs_job_free(job);
    cs_strlist_free(&agents);
    return rc;
}

/* The backups of the cluster's repository, as `cassette list --json`. */
static int backups(void *ctx, const json_t *cluster, json_t **out, cs_err *e)
{
    server *s = ctx;
    const cs_op_def *op = cs_op_find("list");
    void *req = op ? cs_op_request_new(op, e) : NULL, *res = NULL;
    if (!req)
        return op ? e->code : cs_err_set(e, CS_E_INVAL, "no list operation");
    json_t *q = json_pack("{s:s?}", "repo", text(cluster, "repo"));
    cs_job *job = cs_job_new("list", NULL);
    int rc = cs_op_request_from_json(op, q, req, e);
    if (!rc)
        rc = cs_op_run(op, job, s->host, req, &res, e);
    if (!rc) {
        json_t *doc = cs_op_result_json(op, req, res);
        if (json_is_array(doc))
            *out = json_pack("{s:o}", "backups", doc);
        else if (json_is_object(doc) && json_object_get(doc, "backups"))
            *out = doc;
        else
            *out = json_pack("{s:o}", "backups", doc ? doc : json_array());
    }
    cs_job_free(job);
    json_decref(q);
    cs_op_result_free(op, res);
    cs_op_request_free(op, req);
    return rc;
}

static json_t *info(void *ctx)
{
    server *s = ctx;
    json_t *doc = cs_runner_info(s->runner);
    pthread_mutex_lock(&s->mu);
    json_object_set_new(doc, "server", json_string(s->owner));
    json_object_set_new(doc, "leader", json_boolean(s->leader));
    json_object_set_new(doc, "epoch", json_integer((json_int_t)s->epoch));
    pthread_mutex_unlock(&s->mu);
    json_object_set_new(doc, "state", json_string(cs_state_kind(s->st)));
    json_t *lease = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (!cs_state_lease_get(s->st, &lease, &e))
        json_object_set_new(doc, "lease", lease);
    json_t *queues = json_object(), *runs = NULL;
    cs_run_filter f = { .state = "open", .limit = 1000 };
    if (!cs_state_run_list(s->st, &f, &runs, &e)) {
        size_t i;
        json_t *run;
        json_array_foreach(runs, i, run) {
            const char *c = text(run, "cluster");
            if (c) {
                json_t *q = json_object_get(queues, c);
                json_object_set_new(queues, c, json_integer(json_integer_value(q) + 1));
            }
        }
    }
    json_decref(runs);
    json_object_set_new(doc, "queues", queues);
    return doc;
}

/* ---- metrics (server/stats.h) ---- */

/* Keep only the clusters (documents with "id", or runs and tasks with
 * "cluster") that visible names (NULL or empty: every one). */
static void only_visible(json_t *arr, const char *key, const cs_strlist *visible)
{
    if (!visible || !visible->n)
        return;
    for (size_t i = json_array_size(arr); i-- > 0;) {
        const char *id = text(json_array_get(arr, i), key);
        if (!id || !cs_strlist_has(visible, id))
            json_array_remove(arr, i);
    }
}

/* GET /metrics: the aggregate and what the store says now (never a
 * repository: those are listed by housekeeping). */
static char *metrics(void *ctx, const cs_strlist *visible)
{
    server *s = ctx;
    json_t *clusters = NULL, *tasks = NULL, *open = NULL;
    cs_err e;
    cs_err_clear(&e);
    cs_run_filter f = { .state = "open", .limit = 1000 };
    if (cs_state_cluster_list(s->st, &clusters, &e) || cs_state_task_list(s->st, NULL, &tasks, &e) ||
        cs_state_run_list(s->st, &f, &open, &e))
        cs_warn("metrics: %s", e.msg); /* what could be read is shown */
    only_visible(clusters, "id", visible);
    only_visible(tasks, "cluster", visible);
    only_visible(open, "cluster", visible);
    cs_stats_live live = { .version = s->o.version, .server = s->owner, .clusters = clusters, .tasks = tasks,
                           .open_runs = open };
    char *text_ = cs_stats_render(s->stats, &live);
    json_decref(clusters);
    json_decref(tasks);
    json_decref(open);
    return text_;
}

/* The run kinds whose newest runs seed the gauges at start. */
static const char *const seed_kinds[] = { "backup", "purge", "verify", "restore", "snapshot_cleanup", "drill", NULL };

/* The last success and failure (and the newest backup's, verify's and
 * drill's gauges) of each cluster and kind from the run history, so that
 * a restarted server does not forget them. Counters start at 0. */
static void seed_stats(server *s)
{
    json_t *clusters = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_state_cluster_list(s->st, &clusters, &e)) {
        cs_warn("metrics: no history: %s", e.msg);
        return;
    }
    static const char *const states[] = { "done", "failed", NULL };
    size_t i;
    json_t *c;
    json_array_foreach(clusters, i, c)
        for (size_t k = 0; seed_kinds[k]; k++)
            for (size_t st = 0; states[st]; st++) {
                /* newest first by queued_at: a few, since ends may come in another order */
                cs_run_filter f = { .cluster = text(c, "id"), .kind = seed_kinds[k], .state = states[st], .limit = 5 };
                json_t *runs = NULL, *run;
                size_t j;
                if (cs_state_run_list(s->st, &f, &runs, &e))
                    continue;
                json_array_foreach(runs, j, run)
                    cs_stats_seed_run(s->stats, run);
                json_decref(runs);
            }
    json_decref(clusters);
}


/* The index of cluster's entry in s->seen, added (dirty: never listed) when
 * it has none yet. s->mu held. */
static size_t repo_seen_of(server *s, const char *cluster)
{
    size_t i = 0;
    while (i < s->n_seen && strcmp(s->seen[i].cluster, cluster))
        i++;
    if (i == s->n_seen) {
        s->seen = cs_realloc(s->seen, (s->n_seen + 1) * sizeof *s->seen);
        s->seen[s->n_seen++] = (repo_seen){ .cluster = cs_strdup(cluster), .dirty = true };
    }
    return i;
}

/* A run ended (the runner says so once): count it; a backup or a purge
 * changed its repository: list it again soon. */
static void run_ended(void *ctx, const json_t *run)
{
    server *s = ctx;
    cs_stats_run_ended(s->stats, run);
    const char *kind = text(run, "kind"), *cluster = text(run, "cluster");
    if (!kind || !cluster || (strcmp(kind, "backup") && strcmp(kind, "purge")))
        return;
    pthread_mutex_lock(&s->mu);
    size_t i = repo_seen_of(s, cluster);
    s->seen[i].dirty = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Is cluster's repository due for a listing (now: taken as done)? */
static bool repo_due(server *s, const char *cluster, double now)
{
    pthread_mutex_lock(&s->mu);
    size_t i = repo_seen_of(s, cluster);
    bool due = s->seen[i].dirty || now - s->seen[i].at >= REPO_REFRESH;
    if (due) {
        s->seen[i].dirty = false;
        s->seen[i].at = now;
    }
    pthread_mutex_unlock(&s->mu);
    return due;
}

typedef struct repo_sum {
    uint64_t bytes;
    int64_t objects;
} repo_sum;

static int sum_key(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)key;
    repo_sum *r = arg;
    r->bytes += st ? st->size : 0;
    r->objects++;
    return 0;
}

/* List cluster's repository: its backups (the backups hook: the list
 * operation) and every key under its location (size, count). */
static void list_repo(server *s, const json_t *cluster)
{
    const char *id = text(cluster, "id"), *location = text(cluster, "repo");
    json_t *doc = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (backups(s, cluster, &doc, &e))
        cs_debug("metrics: cluster %s: backups not listed: %s", id, e.msg);
    repo_sum sum = { 0, 0 };
    cs_repo *repo = NULL;
    cs_err_clear(&e);
    if (!location || cs_ops_open_repo(s->host, location, NULL, false, &repo, &e) ||
        cs_storage_list(repo->st, "", sum_key, &sum, &e)) {
        if (location)
            cs_debug("metrics: cluster %s: repository not listed: %s", id, e.msg);
        sum.objects = -1;
    }
    cs_repo_free(repo);
    cs_stats_repo(s->stats, id, json_object_get(doc, "backups"), sum.bytes, sum.objects);
    json_decref(doc);
}

/* The repositories that are due (housekeeping's thread). */
static void refresh_repos(server *s)
{
    json_t *clusters = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_state_cluster_list(s->st, &clusters, &e))
        return;
    size_t i;
    json_t *c;
    json_array_foreach(clusters, i, c) {
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping)
            break;
        if (text(c, "id") && repo_due(s, text(c, "id"), cs_now()))
            list_repo(s, c);
    }
    json_decref(clusters);
}

static void wake(void *ctx)
{
    server *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->woken = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    cs_runner_wake(s->runner);
}

/* ---- the scheduler ---- */

/* Does the task have a queued run already (a slot then only moves last_slot)? */
static bool has_queued(cs_state *st, const char *task)
{
    cs_run_filter f = { .task = task, .state = "queued", .limit = 1 };
    json_t *runs = NULL;
    cs_err e;
    cs_err_clear(&e);
    bool yes = !cs_state_run_list(st, &f, &runs, &e) && json_array_size(runs) > 0;
    json_decref(runs);
    return yes;
}

/* Queue task's run when its schedule is due at now; store the slot. */
static bool schedule_task(server *s, json_t *task, double now)
{
    const char *sched = text(task, "schedule");
    json_t *en = json_object_get(task, "enabled");
    if (!sched || !*sched || (en && !json_is_true(en)))
        return false;
    cs_schedule *sc = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_schedule_parse(sched, text(task, "timezone"), &sc, &e)) {
        cs_warn("task %s: %s", text(task, "id"), e.msg);
        return false;
    }
    double slot = cs_schedule_due(sc, json_number_value(json_object_get(task, "created")),
                                  json_number_value(json_object_get(task, "last_slot")), now);
    cs_schedule_free(sc);
    if (slot <= 0)
        return false;
    json_t *cluster = NULL;
    bool queued = false;
    if (cs_state_cluster_get(s->st, text(task, "cluster"), &cluster, &e))
        return false;
    if (!has_queued(s->st, text(task, "id"))) {
        json_t *run = cs_model_run_new(cluster, task, text(task, "kind"), json_object_get(task, "params"), now);
        if (cs_state_run_add(s->st, run, &e))
            cs_warn("task %s: run not queued: %s", text(task, "id"), e.msg);
        else
            queued = true;
        json_decref(run);
    }
    json_object_set_new(task, "last_slot", json_real(slot));
    if (cs_state_task_put(s->st, task, false, &e))
        cs_warn("task %s: last slot not stored: %s", text(task, "id"), e.msg);
    json_decref(cluster);
    return queued;
}

static void tick(server *s)
{
    json_t *tasks = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_state_task_list(s->st, NULL, &tasks, &e)) {
        cs_warn("scheduler: %s", e.msg);
        return;
    }
    double now = cs_now();
    bool any = false;
    size_t i;
    json_t *task;
    json_array_foreach(tasks, i, task)
        any |= schedule_task(s, task, now);
    json_decref(tasks);
    if (any)
        cs_runner_wake(s->runner);
}

/* Take or renew the lease; tell the runner when leadership changed. */
static void renew(server *s)
{
    bool held = false;
    uint64_t epoch = 0;
    cs_err e;
    cs_err_clear(&e);
    if (cs_state_lease(s->st, s->owner, s->o.lease, &held, &epoch, &e)) {
        cs_warn("server: lease: %s", e.msg);
        held = false;
    }
    cs_stats_lease(s->stats, held, epoch);
    pthread_mutex_lock(&s->mu);
    bool changed = held != s->leader || (held && epoch != s->epoch);
    s->leader = held;
    if (held)
        s->epoch = epoch;
    pthread_mutex_unlock(&s->mu);
    if (changed) {
        if (held) {
            cs_info("server: %s leads (epoch %llu)", s->owner, (unsigned long long)epoch);
            /* A standby saw none of the runs the old leader ended: without this its
             * last-success gauges would be as old as its own start, and the alerts
             * (which follow the leader) would fire on a healthy cluster. */
            seed_stats(s);
        }
        cs_runner_lead(s->runner, held, epoch);
    }
}

/* ---- housekeeping: history, exports ---- */

typedef struct key_list {
    cs_strlist keys;
} key_list;

static int collect_key(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)st;
    key_list *l = arg;
    if (!strncmp(key, EXPORT_PREFIX, strlen(EXPORT_PREFIX)) && strstr(key, ".json"))
        cs_strlist_add(&l->keys, key);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The exports in the repository, oldest first. */
static int list_exports(cs_repo *repo, cs_strlist *out, cs_err *e)
{
    key_list l = { { NULL, 0 } };
    int rc = cs_storage_list(repo->st, EXPORT_PREFIX, collect_key, &l, e);
    if (l.keys.n)
        qsort(l.keys.items, l.keys.n, sizeof *l.keys.items, cmp_str);
    *out = l.keys;
    return rc;
}

static int export_state(server *s, cs_err *e)
{
    cs_repo *repo = NULL;
    json_t *doc = NULL;
    int rc = cs_ops_open_repo(s->host, s->o.export_repo, NULL, false, &repo, e);
    if (!rc)
        rc = cs_state_export(s->st, &doc, e);
    if (!rc) {
        char stamp[32], key[96];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(key, sizeof key, EXPORT_PREFIX "%s.json", stamp);
        char *text_doc = json_dumps(doc, JSON_COMPACT);
        rc = cs_repo_put_doc(repo, key, 0, text_doc, strlen(text_doc), e);
        free(text_doc);
        if (!rc)
            cs_info("server: state exported to %s/%s", s->o.export_repo, key);
    }
    cs_strlist keys = { NULL, 0 };
    if (!rc && !list_exports(repo, &keys, e))
        for (size_t i = 0; keys.n > EXPORTS_KEPT && i < keys.n - EXPORTS_KEPT; i++) {
            cs_err e2;
            cs_err_clear(&e2);
            cs_storage_del(repo->st, keys.items[i], &e2);
        }
    cs_strlist_free(&keys);
    json_decref(doc);
    cs_repo_free(repo);
    return rc;
}

/* An empty store (no cluster, no task) starts from the newest export. */
static int import_state(server *s, cs_err *e)
{
    json_t *clusters = NULL, *tasks = NULL;
    int rc = cs_state_cluster_list(s->st, &clusters, e);
    if (!rc)
        rc = cs_state_task_list(s->st, NULL, &tasks, e);
    bool empty = !rc && !json_array_size(clusters) && !json_array_size(tasks);
    json_decref(clusters);
    json_decref(tasks);
    if (rc || !empty)
        return rc;
    cs_repo *repo = NULL;
    cs_strlist keys = { NULL, 0 };
    rc = cs_ops_open_repo(s->host, s->o.export_repo, NULL, false, &repo, e);
    if (!rc)
        rc = list_exports(repo, &keys, e);
    if (!rc && keys.n) {
        cs_buf b;
        memset(&b, 0, sizeof b);
        const char *key = keys.items[keys.n - 1];
        rc = cs_repo_get_doc(repo, key, 256u << 20, &b, e);
        json_error_t je;
        json_t *doc = rc ? NULL : json_loadb((const char *)b.data, b.len, 0, &je);
        if (!rc && !doc)
            rc = cs_err_set(e, CS_E_CORRUPT, "%s: not JSON: %s", key, je.text);
        size_t added = 0;
        if (!rc)
            rc = cs_state_import(s->st, doc, &added, e);
        if (!rc)
            fprintf(stderr, "cassette server: imported %zu records from %s/%s\n", added, s->o.export_repo, key);
        json_decref(doc);
        cs_buf_free(&b);
    }
    cs_strlist_free(&keys);
    cs_repo_free(repo);
    return rc;
}

/* The newest export's time (0: none), from its key. */
static double newest_export(server *s)
{
    cs_repo *repo = NULL;
    cs_strlist keys = { NULL, 0 };
    cs_err e;
    cs_err_clear(&e);
    double t = 0;
    if (!cs_ops_open_repo(s->host, s->o.export_repo, NULL, false, &repo, &e) && !list_exports(repo, &keys, &e) &&
        keys.n) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *p = keys.items[keys.n - 1] + strlen(EXPORT_PREFIX);
        if (sscanf(p, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec) == 6) {
            tm.tm_year -= 1900;
            tm.tm_mon -= 1;
            t = (double)timegm(&tm);
        }
    }
    cs_strlist_free(&keys);
    cs_repo_free(repo);
    return t;
}

static void *housekeeping(void *arg)
{
    server *s = arg;
    double last_prune = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        bool leader = s->leader;
        pthread_mutex_unlock(&s->mu);
        double now = cs_now();
        cs_err e;
        cs_err_clear(&e);
        if (now - last_prune >= 3600) {
            if (cs_state_prune(s->st, now - s->o.history, &e))
                cs_warn("server: pruning history: %s", e.msg);
            last_prune = now;
        }
        if (leader && s->o.export_repo) {
            if (s->last_export == 0)
                s->last_export = newest_export(s);
            if (now - s->last_export >= s->o.export_every) {
                if (export_state(s, &e))
                    cs_warn("server: export to %s: %s", s->o.export_repo, e.msg);
                s->last_export = now; /* a failed one is tried again next period */
            }
        }
        refresh_repos(s);
        pthread_mutex_lock(&s->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        if (!s->stopping)
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- life ---- */

static void defaults(server *s)
{
    if (s->o.workers <= 0)
        s->o.workers = 2;
    if (s->o.lease <= 0)
        s->o.lease = 15;
    if (s->o.history <= 0)
        s->o.history = 30 * 86400.0;
    if (s->o.export_every <= 0)
        s->o.export_every = 86400;
    char host[256] = "cassette";
    if (!s->o.server_id || !*s->o.server_id) {
        if (gethostname(host, sizeof host - 1))
            strcpy(host, "cassette");
        host[sizeof host - 1] = '\0';
    }
    snprintf(s->owner, sizeof s->owner, "%s#%08x", s->o.server_id && *s->o.server_id ? s->o.server_id : host,
             randombytes_random());
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The lease and the scheduler, until a signal in stop comes. */
static int main_loop(server *s, const sigset_t *stop)
{
    double last_renew = 0, last_tick = 0;
    for (;;) {
        double now = mono();
        if (now - last_renew >= s->o.lease / 3) {
            renew(s);
            last_renew = now;
        }
        pthread_mutex_lock(&s->mu);
        bool leader = s->leader, woken = s->woken;
        s->woken = false;
        pthread_mutex_unlock(&s->mu);
        if (leader && (woken || now - last_tick >= 1)) {
            tick(s);
            last_tick = now;
        }
        struct timespec ts = { 0, 200 * 1000 * 1000 };
        int sig = sigtimedwait(stop, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            return sig;
    }
}

static int serve(server *s, const sigset_t *stop, cs_err *e)
{
    cs_api *api = NULL;
    cs_httpd *d = NULL;
    pthread_t hk;
    cs_api_hooks hooks = { .discover = discover, .backups = backups, .info = info, .wake = wake,
                           .metrics = metrics, .ended = run_ended, .ctx = s, .version = s->o.version };
    cs_runner_opts ro = { .state = s->st, .host = s->host, .server_id = s->owner, .workers = s->o.workers,
                          .discover = discover, .discover_ctx = s, .ended = run_ended, .ended_ctx = s };
    seed_stats(s);
    int rc = cs_runner_start(&ro, &s->runner, e);
    if (!rc)
        rc = cs_api_new(s->st, &hooks, s->o.tokens_file, &api, e);
    cs_httpd_opts ho = { .host = s->o.listen_host, .port = s->o.port, .tls_cert = s->o.tls_cert,
                         .tls_key = s->o.tls_key, .tls_client_ca = s->o.tls_client_ca,
                         .handler_auth = s->o.tokens_file != NULL, .handler = cs_api_handle, .arg = api };
    if (!rc)
        rc = cs_httpd_start(&ho, &d, e);
    if (rc) {
        cs_runner_stop(s->runner);
        cs_api_free(api);
        return rc;
    }
    bool v6 = strchr(ho.host, ':') != NULL;
    fprintf(stderr, "cassette server: %s listening on %s://%s%s%s:%d (state %s, %ld workers, %s)\n", s->owner,
            ho.tls_cert ? "https" : "http", v6 ? "[" : "", ho.host, v6 ? "]" : "", cs_httpd_port(d),
            cs_state_kind(s->st), s->o.workers, s->o.tokens_file ? "bearer tokens required" : "no tokens: loopback only");
    pthread_create(&hk, NULL, housekeeping, s);
    int sig = main_loop(s, stop);
    fprintf(stderr, "cassette server: %s: stopping (running runs are interrupted and queued again)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    cs_httpd_stop(d);
    cs_runner_stop(s->runner);
    pthread_join(hk, NULL);
    cs_err e2;
    cs_err_clear(&e2);
    if (cs_state_lease_release(s->st, s->owner, &e2))
        cs_warn("server: lease not released: %s", e2.msg);
    cs_api_free(api);
    return 0;
}

int cs_server_run(const cs_host *host, const cs_server_opts *o, cs_err *e)
{
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    signal(SIGPIPE, SIG_IGN);
    server s;
    memset(&s, 0, sizeof s);
    s.host = host;
    s.o = *o;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    defaults(&s);
    s.stats = cs_stats_new();
    int rc = cs_state_open(o->state_url, &o->state_opts, &s.st, e);
    cs_err ie;
    cs_err_clear(&ie);
    if (!rc && s.o.export_repo && import_state(&s, &ie))
        cs_warn("server: no import from %s: %s", s.o.export_repo, ie.msg);
    if (!rc)
        rc = serve(&s, &stop, e);
    cs_state_close(s.st);
    cs_stats_free(s.stats);
    for (size_t i = 0; i < s.n_seen; i++)
        free(s.seen[i].cluster);
    free(s.seen);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* stats.c - what the server's GET /metrics shows (see stats.h). */
#include "server/stats.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/metrics.h"

/* Run durations: from a few seconds (a purge of an empty repository) to a day. */
static const double duration_bounds[] = { 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400 };

static const char *const final_states[] = { "done", "failed", "cancelled", "interrupted" };
#define N_STATES (sizeof final_states / sizeof *final_states)
static const char *const error_kinds[] = { "storage", "cassandra", "crypto", "lock", "agent", "other" };
#define N_ERRORS (sizeof error_kinds / sizeof *error_kinds)

/* One cluster and kind. */
typedef struct kind_stats {
    char *cluster, *kind;
    double last_success, last_failure; /* 0: none */
    uint64_t runs[N_STATES];
    uint64_t errors[N_ERRORS];
    cs_histogram duration;
} kind_stats;

/* One cluster. */
typedef struct cluster_stats {
    char *cluster;
    uint64_t bytes_read, bytes_stored, bytes_uploaded, files_new, files_unchanged;
    double last_backup_end; /* the newest backup whose size and dedup ratio these are */
    double last_size, last_dedup;
    bool has_size, has_dedup;
    double verify_end;
    uint64_t damaged;
    bool has_verify;
    double drill_success, drill_failure, drill_rto_end, drill_rto;
    bool has_rto;
    bool repo_known, objects_known;
    uint64_t repo_bytes, repo_objects;
    double newest_complete; /* 0: none (or not known) */
    bool newest_known;
} cluster_stats;

struct cs_stats {
    pthread_mutex_t mu;
    kind_stats *kinds;
    size_t n_kinds;
    cluster_stats *clusters;
    size_t n_clusters;
    bool leader;
    uint64_t epoch, lease_changes;
};

static const char *text(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static double number(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

cs_stats *cs_stats_new(void)
{
    cs_stats *s = cs_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void cs_stats_free(cs_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_kinds; i++) {
        free(s->kinds[i].cluster);
        free(s->kinds[i].kind);
    }
    for (size_t i = 0; i < s->n_clusters; i++)
        free(s->clusters[i].cluster);
    free(s->kinds);
    free(s->clusters);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- finding (s->mu held) ---- */

static kind_stats *kind_of(cs_stats *s, const char *cluster, const char *kind)
{
    for (size_t i = 0; i < s->n_kinds; i++)
        if (!strcmp(s->kinds[i].cluster, cluster) && !strcmp(s->kinds[i].kind, kind))
            return &s->kinds[i];
    s->kinds = cs_realloc(s->kinds, (s->n_kinds + 1) * sizeof *s->kinds);
    kind_stats *k = &s->kinds[s->n_kinds++];
    memset(k, 0, sizeof *k);
    k->cluster = cs_strdup(cluster);
    k->kind = cs_strdup(kind);
    cs_histogram_init(&k->duration, duration_bounds, sizeof duration_bounds / sizeof *duration_bounds);
    return k;
}

static cluster_stats *cluster_of(cs_stats *s, const char *cluster)
{
    for (size_t i = 0; i < s->n_clusters; i++)
        if (!strcmp(s->clusters[i].cluster, cluster))
            return &s->clusters[i];
    s->clusters = cs_realloc(s->clusters, (s->n_clusters + 1) * sizeof *s->clusters);
    cluster_stats *c = &s->clusters[s->n_clusters++];
    memset(c, 0, sizeof *c);
    c->cluster = cs_strdup(cluster);
    return c;
}

/* ---- what a result document says ---- */

/* The node backup results a backup run's result holds: its own (a node
 * operation's result), or each node's "backup" (a cluster backup's). */
typedef struct backup_sums {
    uint64_t bytes_read, bytes_stored, bytes_resumed, files_new, files_unchanged, size, size_new;
    bool any, size_new_known;
} backup_sums;

static uint64_t count(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

static void add_node_backup(backup_sums *b, const json_t *r)
{
    if (!json_is_object(r))
        return;
    b->any = true;
    b->bytes_read += count(r, "bytes_read");
    b->bytes_stored += count(r, "bytes_stored");
    b->bytes_resumed += count(r, "bytes_resumed");
    b->files_new += count(r, "files_new");
    b->files_unchanged += count(r, "files_unchanged");
    b->size += count(r, "size");
    if (json_is_integer(json_object_get(r, "size_new")))
        b->size_new += count(r, "size_new");
    else
        b->size_new_known = false;
}

static backup_sums backup_sums_of(const json_t *result)
{
    backup_sums b;
    memset(&b, 0, sizeof b);
    b.size_new_known = true;
    if (json_object_get(result, "bytes_read")) {
        add_node_backup(&b, result);
    } else {
        size_t i;
        json_t *node;
        json_array_foreach(json_object_get(result, "nodes"), i, node)
            add_node_backup(&b, json_object_get(node, "backup"));
    }
    return b;
}

/* Objects a verify found missing or damaged: its problems that name an
 * object, each once (a problem without one counts too: it is damage). */
static uint64_t damaged_of(const json_t *result)
{
    const json_t *problems = json_object_get(result, "problems");
    uint64_t n = 0;
    size_t i, j;
    json_t *p, *q;
    json_array_foreach(problems, i, p) {
        const char *obj = text(p, "object");
        bool seen = false;
        json_array_foreach(problems, j, q) {
            if (j >= i)
                break;
            seen = obj && text(q, "object") && !strcmp(obj, text(q, "object"));
            if (seen)
                break;
        }
        n += !seen;
    }
    return n;
}

/* The seconds a drill took to restore: its result's "rto_seconds" (the
 * cluster drill's and the node drill's), else the run's own duration. */
static double drill_rto(const json_t *run)
{
    const json_t *result = json_object_get(run, "result");
    if (json_is_number(json_object_get(result, "rto_seconds")))
        return number(result, "rto_seconds");
    return number(run, "ended") - number(run, "started");
}

const char *cs_stats_error_kind(const json_t *run)
{
    const char *code = text(run, "error_code");
    return cs_err_kind(code ? cs_err_code_of(code) : CS_OK, text(run, "error"));
}

/* ---- runs ---- */

static size_t state_index(const char *state)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (state && !strcmp(state, final_states[i]))
            return i;
    return N_STATES;
}

static size_t error_index(const char *kind)
{
    for (size_t i = 0; i < N_ERRORS; i++)
        if (!strcmp(kind, error_kinds[i]))
            return i;
    return N_ERRORS - 1;
}

/* The gauges a final run moves (a newer end wins), s->mu held. */
static void gauges(cs_stats *s, const json_t *run, const char *cluster, const char *kind, size_t st)
{
    double ended = number(run, "ended");
    kind_stats *k = kind_of(s, cluster, kind);
    cluster_stats *c = cluster_of(s, cluster);
    const json_t *result = json_object_get(run, "result");
    bool done = st == 0, failed = st == 1;
    if (done && ended > k->last_success)
        k->last_success = ended;
    if (failed && ended > k->last_failure)
        k->last_failure = ended;
    if (done && !strcmp(kind, "backup") && json_is_object(result) && ended > c->last_backup_end) {
        backup_sums b = backup_sums_of(result);
        if (b.any) {
            c->last_backup_end = ended;
            c->last_size = (double)b.size;
            c->has_size = true;
            c->has_dedup = b.size_new_known && b.size > 0;
            c->last_dedup = c->has_dedup && b.size >= b.size_new ? (double)(b.size - b.size_new) / (double)b.size
                                                                : 0;
        }
    }
    /* A verify that found damage fails, with its result: it counts too. */
    if ((done || failed) && !strcmp(kind, "verify") && json_is_array(json_object_get(result, "problems")) &&
        ended > c->verify_end) {
        c->verify_end = ended;
        c->damaged = damaged_of(result);
        c->has_verify = true;
    }
    if (!strcmp(kind, "drill")) {
        if (done && ended > c->drill_success)
            c->drill_success = ended;
        if (failed && ended > c->drill_failure)
            c->drill_failure = ended;
        if (done && ended > c->drill_rto_end) {
            c->drill_rto_end = ended;
            c->drill_rto = drill_rto(run);
            c->has_rto = true;
        }
    }
}

void cs_stats_seed_run(cs_stats *s, const json_t *run)
{
    const char *cluster = text(run, "cluster"), *kind = text(run, "kind");
    size_t st = state_index(text(run, "state"));
    if (!cluster || !kind || st == N_STATES)
        return;
    pthread_mutex_lock(&s->mu);
    gauges(s, run, cluster, kind, st);
    pthread_mutex_unlock(&s->mu);
}

void cs_stats_run_ended(cs_stats *s, const json_t *run)
{
    const char *cluster = text(run, "cluster"), *kind = text(run, "kind");
    size_t st = state_index(text(run, "state"));
    if (!cluster || !kind || st == N_STATES)
        return;
    const char *error = st == 1 ? cs_stats_error_kind(run) : NULL;
    pthread_mutex_lock(&s->mu);
    gauges(s, run, cluster, kind, st);
    kind_stats *k = kind_of(s, cluster, kind);
    k->runs[st]++;
    if (error)
        k->errors[error_index(error)]++;
    double started = number(run, "started"), ended = number(run, "ended");
    if (started > 0 && ended >= started)
        cs_histogram_observe(&k->duration, ended - started);
    const json_t *result = json_object_get(run, "result");
    if (!strcmp(kind, "backup") && json_is_object(result)) {
        backup_sums b = backup_sums_of(result);
        cluster_stats *c = cluster_of(s, cluster);
        c->bytes_read += b.bytes_read;
        c->bytes_stored += b.bytes_stored;
        c->bytes_uploaded += b.bytes_stored > b.bytes_resumed ? b.bytes_stored - b.bytes_resumed : 0;
        c->files_new += b.files_new;
        c->files_unchanged += b.files_unchanged;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- repositories ---- */

/* "2026-12-06T10:15:00Z" -> seconds since the epoch (0: not a time). */
static double iso_time(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char z = 0;
    if (!t || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec, &z) != 7 || z != 'Z')
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm);
}

/* Is backup name (entries of a listing) complete, and when did it finish? */
static bool backup_complete(const json_t *backups, const char *name, double *finished)
{
    bool complete = true, any = false;
    *finished = 0;
    size_t i;
    json_t *b;
    json_array_foreach(backups, i, b) {
        if (!text(b, "name") || strcmp(text(b, "name"), name))
            continue;
        const json_t *set = json_object_get(b, "set");
        if (json_is_object(set) && !json_is_true(json_object_get(set, "complete")))
            complete = false;
        const char *host = text(b, "host_id");
        if (host && !*host && json_is_object(set))
            continue; /* a set's placeholder: the set says whether it is complete */
        any = true;
        if (!json_is_true(json_object_get(b, "complete")))
            complete = false;
        double f = iso_time(text(b, "finished"));
        if (f > *finished)
            *finished = f;
    }
    return any && complete && *finished > 0;
}

double cs_stats_newest_complete(const json_t *backups)
{
    double newest = 0;
    size_t i;
    json_t *b;
    json_array_foreach(backups, i, b) {
        double f;
        const char *name = text(b, "name");
        if (name && backup_complete(backups, name, &f) && f > newest)
            newest = f;
    }
    return newest;
}

void cs_stats_repo(cs_stats *s, const char *cluster, const json_t *backups, uint64_t bytes, int64_t objects)
{
    double newest = backups ? cs_stats_newest_complete(backups) : 0;
    pthread_mutex_lock(&s->mu);
    cluster_stats *c = cluster_of(s, cluster);
    if (backups) {
        c->newest_complete = newest;
        c->newest_known = true;
    }
    if (objects >= 0) {
        c->repo_known = true;
        c->repo_bytes = bytes;
        c->repo_objects = (uint64_t)objects;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the lease ---- */

void cs_stats_lease(cs_stats *s, bool held, uint64_t epoch)
{
    pthread_mutex_lock(&s->mu);
    if (held != s->leader)
        s->lease_changes++;
    s->leader = held;
    if (epoch)
        s->epoch = epoch;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the exposition ---- */

static bool registered(const cs_stats_live *live, const char *cluster)
{
    size_t i;
    json_t *c;
    json_array_foreach(live->clusters, i, c)
        if (text(c, "id") && !strcmp(text(c, "id"), cluster))
            return true;
    return false;
}

/* Open runs of cluster in state (queued or running). */
static double open_count(const cs_stats_live *live, const char *cluster, const char *state)
{
    double n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(live->open_runs, i, r)
        if (text(r, "cluster") && !strcmp(text(r, "cluster"), cluster) && text(r, "state") &&
            !strcmp(text(r, "state"), state))
            n++;
    return n;
}

static void write_server(cs_metrics *m, const cs_stats *s, const cs_stats_live *live)
{
    cs_metrics_family(m, "cassette_server_info", "gauge", "The server's version and id (value 1).");
    cs_metrics_sample(m, 1, "version", live->version ? live->version : "unknown", "server",
                      live->server ? live->server : "", NULL);
    cs_metrics_family(m, "cassette_server_leader", "gauge", "1 while this server holds the leader lease.");
    cs_metrics_sample(m, s->leader ? 1 : 0, NULL);
    cs_metrics_family(m, "cassette_server_lease_epoch", "gauge", "The lease epoch this server last saw.");
    cs_metrics_sample(m, (double)s->epoch, NULL);
    cs_metrics_family(m, "cassette_server_lease_changes_total", "counter",
                      "Times this server took or lost the leader lease.");
    cs_metrics_sample(m, (double)s->lease_changes, NULL);
    cs_metrics_family(m, "cassette_clusters", "gauge", "Registered clusters.");
    cs_metrics_sample(m, (double)json_array_size(live->clusters), NULL);
}

static void write_kind(cs_metrics *m, const kind_stats *k)
{
    const char *labels[] = { "cluster", k->cluster, "kind", k->kind, NULL, NULL, NULL };
    if (k->last_success > 0) {
        cs_metrics_family(m, "cassette_task_last_success_timestamp_seconds", "gauge",
                          "End of the newest run of this kind that succeeded.");
        cs_metrics_sample_v(m, NULL, k->last_success, labels);
    }
    if (k->last_failure > 0) {
        cs_metrics_family(m, "cassette_task_last_failure_timestamp_seconds", "gauge",
                          "End of the newest run of this kind that failed.");
        cs_metrics_sample_v(m, NULL, k->last_failure, labels);
    }
    cs_metrics_family(m, "cassette_task_runs_total", "counter", "Runs ended, by final state.");
    labels[4] = "state";
    for (size_t i = 0; i < N_STATES; i++) {
        labels[5] = final_states[i];
        cs_metrics_sample_v(m, NULL, (double)k->runs[i], labels);
    }
    cs_metrics_family(m, "cassette_task_errors_total", "counter", "Failed runs by error kind.");
    labels[4] = "error";
    for (size_t i = 0; i < N_ERRORS; i++) {
        labels[5] = error_kinds[i];
        cs_metrics_sample_v(m, NULL, (double)k->errors[i], labels);
    }
    labels[4] = NULL;
    cs_metrics_family(m, "cassette_task_duration_seconds", "histogram", "Duration of ended runs.");
    cs_metrics_histogram_v(m, &k->duration, labels);
}

static void gauge(cs_metrics *m, const char *name, const char *help, const char *cluster, double v)
{
    cs_metrics_family(m, name, "gauge", help);
    cs_metrics_sample(m, v, "cluster", cluster, NULL);
}

static void counter(cs_metrics *m, const char *name, const char *help, const char *cluster, uint64_t v)
{
    cs_metrics_family(m, name, "counter", help);
    cs_metrics_sample(m, (double)v, "cluster", cluster, NULL);
}

static void write_cluster(cs_metrics *m, const cluster_stats *c, const cs_stats_live *live)
{
    const char *id = c->cluster;
    gauge(m, "cassette_queue_length", "Runs queued, not started.", id, open_count(live, id, "queued"));
    gauge(m, "cassette_tasks_running", "Runs running (0 or 1).", id, open_count(live, id, "running"));
    counter(m, "cassette_backup_bytes_read_total", "Bytes read from the nodes' disks by backups.", id, c->bytes_read);
    counter(m, "cassette_backup_bytes_stored_total", "Bytes stored (compressed, encrypted) by backups.", id,
            c->bytes_stored);
    counter(m, "cassette_backup_bytes_uploaded_total", "Bytes sent to the repository by backups.", id,
            c->bytes_uploaded);
    counter(m, "cassette_backup_files_new_total", "Files stored by backups.", id, c->files_new);
    counter(m, "cassette_backup_files_unchanged_total", "Files backups found stored already.", id,
            c->files_unchanged);
    if (c->has_size)
        gauge(m, "cassette_backup_last_size_bytes", "Size of the newest complete backup (bytes of its files).", id,
              c->last_size);
    if (c->has_dedup)
        gauge(m, "cassette_backup_last_dedup_ratio", "Newest backup: bytes not stored again / bytes in the backup.",
              id, c->last_dedup);
    if (c->newest_known && c->newest_complete > 0)
        gauge(m, "cassette_backup_newest_complete_timestamp_seconds",
              "When the newest complete backup in the repository finished.", id, c->newest_complete);
    if (c->repo_known) {
        gauge(m, "cassette_repository_size_bytes", "Bytes of the repository's objects (as of its last listing).", id,
              (double)c->repo_bytes);
        gauge(m, "cassette_repository_objects", "Objects in the repository (as of its last listing).", id,
              (double)c->repo_objects);
    }
    if (c->has_verify)
        gauge(m, "cassette_verify_damaged_objects", "Objects the newest verify found missing or damaged.", id,
              (double)c->damaged);
    if (c->drill_success > 0)
        gauge(m, "cassette_drill_last_success_timestamp_seconds", "End of the newest drill that succeeded.", id,
              c->drill_success);
    if (c->drill_failure > 0)
        gauge(m, "cassette_drill_last_failure_timestamp_seconds", "End of the newest drill that failed.", id,
              c->drill_failure);
    if (c->has_rto)
        gauge(m, "cassette_drill_rto_seconds", "Time the newest successful drill took to restore.", id, c->drill_rto);
}

char *cs_stats_render(cs_stats *s, const cs_stats_live *live)
{
    cs_metrics *m = cs_metrics_new();
    pthread_mutex_lock(&s->mu);
    write_server(m, s, live);
    size_t i;
    json_t *doc;
    json_array_foreach(live->clusters, i, doc)
        if (text(doc, "id"))
            cluster_of(s, text(doc, "id"));
    json_array_foreach(live->tasks, i, doc)
        if (text(doc, "cluster") && text(doc, "kind") && registered(live, text(doc, "cluster")))
            kind_of(s, text(doc, "cluster"), text(doc, "kind"));
    for (size_t c = 0; c < s->n_clusters; c++)
        if (registered(live, s->clusters[c].cluster))
            write_cluster(m, &s->clusters[c], live);
    for (size_t k = 0; k < s->n_kinds; k++)
        if (registered(live, s->kinds[k].cluster))
            write_kind(m, &s->kinds[k]);
    pthread_mutex_unlock(&s->mu);
    char *out = cs_strdup(cs_metrics_text(m, NULL));
    cs_metrics_free(m);
    return out;
}

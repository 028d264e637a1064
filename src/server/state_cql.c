/* state_cql.c - the state store in a Cassandra keyspace (see state.h and
 * state_impl.h: arguments arrive checked), through cassette's own CQL
 * client (cassandra/cql.h).
 *
 * Tables (created with the keyspace when absent, then schema agreement is
 * waited for):
 *   clusters(id, doc), tasks(id, cluster, doc): one row per record;
 *   runs((day), id, n, seq, doc): every version of a run, append-only,
 *     with a TTL (history_seconds). day is the day of queued_at; n counts
 *     the run's state changes; seq orders the writes within one state
 *     (0: the state change itself). A state change inserts (n+1, 0) IF
 *     NOT EXISTS: of two servers moving the same run, exactly one wins;
 *     progress inserts (n, now in microseconds). The newest version is the
 *     first row of the run (n DESC, seq DESC), so a write of a server that
 *     lost the run (an older n) is never read. No row is updated in place;
 *   run_ids(id, day): the bucket of each run (IF NOT EXISTS: ids are
 *     unique); run_days(k, day): which buckets exist (lists scan them);
 *   run_cancel(id): a cancel asked of a running run;
 *   audit((day), at, uid, doc): append-only with the same TTL;
 *   lease(name, owner, epoch, expires): one row, taken, renewed and given
 *     up by lightweight transactions conditioned on the epoch and owner
 *     read (at SERIAL), the epoch from cs_state_epoch_after (it only grows).
 * Values go into statements as literals (the client has no bind values):
 * strings quoted with '' doubled, documents as ASCII-only JSON.
 * One connection per handle, guarded by a mutex; a connection that failed
 * (not a server's error answer) is dropped and made again by the next call.
 * prune does nothing: the TTL forgets runs and audit entries. */
#include "server/state_impl.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cassandra/cql.h"
#include "common/buf.h"
#include "common/fs.h"

#define LEASE_NAME "leader"
#define DAY 86400.0
#define SCHEMA_WAIT_S 60

typedef struct cq_state {
    cs_state base;
    pthread_mutex_t mu;
    cql_conn *conn;
    char *host;
    int port;
    char *ks;
    char *user, *password, *ca, *cert, *key;
    bool tls;
    int timeout_ms;
    long ttl; /* seconds every run version and audit entry lives */
    char *label;
} cq_state;

/* ---- plumbing ---- */

static int conn_of(cq_state *q, cs_err *e)
{
    if (q->conn)
        return 0;
    cql_conn_opts o = {
        .host = q->host,
        .port = q->port,
        .timeout_ms = q->timeout_ms,
        .username = q->user,
        .password = q->password,
        .tls = q->tls,
        .ca_file = q->ca,
        .cert_file = q->cert,
        .key_file = q->key,
    };
    if (cql_connect(&o, &q->conn, e))
        return cs_err_prefix(e, "%s", q->label);
    return 0;
}

/* One statement at cl; *out may be NULL when no rows are wanted. */
static int run_q(cq_state *q, uint16_t cl, const char *cql, cql_result **out, cs_err *e)
{
    if (out)
        *out = NULL;
    int rc = conn_of(q, e);
    if (rc)
        return rc;
    cql_result *r = NULL;
    rc = cql_query_at(q->conn, cql, cl, &r, e);
    if (rc) {
        if (rc != CS_E_EXTERNAL) { /* the connection, not the statement */
            cql_close(q->conn);
            q->conn = NULL;
        }
        return cs_err_prefix(e, "%s", q->label);
    }
    if (out)
        *out = r;
    else
        cql_result_free(r);
    return 0;
}

static int exec_q(cq_state *q, const char *cql, cs_err *e)
{
    return run_q(q, CQL_CL_QUORUM, cql, NULL, e);
}

/* A CQL string literal of s (quotes doubled), appended to b. */
static void add_lit(cs_buf *b, const char *s)
{
    cs_buf_addstr(b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            cs_buf_addstr(b, "''");
        else
            cs_buf_add(b, p, 1);
    }
    cs_buf_addstr(b, "'");
}

static char *encode(const json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!text)
        abort();
    return text;
}

static int decode(cq_state *q, const char *text, json_t **out, cs_err *e)
{
    json_error_t je;
    *out = text ? json_loads(text, 0, &je) : NULL;
    if (!*out)
        return cs_err_set(e, CS_E_CORRUPT, "%s: a stored document is not JSON", q->label);
    return 0;
}

static int not_found(const char *what, const char *id, cs_err *e)
{
    return cs_err_set(e, CS_E_NOTFOUND, "%s %s not found", what, id);
}

/* The [applied] column of a lightweight transaction's answer. */
static bool applied_of(const cql_result *r)
{
    const char *a = cql_result_rows(r) ? cql_result_text(r, 0, "[applied]") : NULL;
    return a && !strcmp(a, "true");
}

/* Run a lightweight transaction; *applied says whether it was. */
static int lwt(cq_state *q, char *cql, bool *applied, cs_err *e)
{
    cql_result *r;
    int rc = run_q(q, CQL_CL_QUORUM, cql, &r, e);
    free(cql);
    *applied = !rc && applied_of(r);
    cql_result_free(r);
    return rc;
}

static int exec_free(cq_state *q, char *cql, cs_err *e)
{
    int rc = exec_q(q, cql, e);
    free(cql);
    return rc;
}

static int select_free(cq_state *q, uint16_t cl, char *cql, cql_result **out, cs_err *e)
{
    int rc = run_q(q, cl, cql, out, e);
    free(cql);
    return rc;
}

static cq_state *lock(cs_state *s)
{
    cq_state *q = (cq_state *)s;
    pthread_mutex_lock(&q->mu);
    return q;
}

static int unlock(cq_state *q, int rc)
{
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

/* Sort array's documents with cmp (jansson arrays cannot be sorted in place). */
static json_t *sorted(json_t *array, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(array);
    json_t **items = cs_calloc(n ? n : 1, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(array, i));
    qsort(items, n, sizeof *items, cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, items[i]);
    free(items);
    json_decref(array);
    return out;
}

/* ---- clusters and tasks ---- */

static int get_doc(cq_state *q, const char *table, const char *what, const char *id, json_t **out, cs_err *e)
{
    cql_result *r;
    cs_buf b = { 0 };
    cs_buf_printf(&b, "SELECT doc FROM %s.%s WHERE id = ", q->ks, table);
    add_lit(&b, id);
    int rc = select_free(q, CQL_CL_SERIAL, cs_buf_detach(&b), &r, e);
    if (!rc)
        rc = cql_result_rows(r) ? decode(q, cql_result_text(r, 0, "doc"), out, e) : not_found(what, id, e);
    cql_result_free(r);
    return rc;
}

/* Every document of table (optionally where column cluster = cluster), by id. */
static int list_table(cq_state *q, const char *table, const char *cluster, json_t **out, cs_err *e)
{
    cs_buf b = { 0 };
    cs_buf_printf(&b, "SELECT doc%s FROM %s.%s", cluster ? ", cluster" : "", q->ks, table);
    cql_result *r;
    int rc = select_free(q, CQL_CL_QUORUM, cs_buf_detach(&b), &r, e);
    if (rc)
        return rc;
    json_t *array = json_array();
    for (size_t i = 0; !rc && i < cql_result_rows(r); i++) {
        const char *c = cluster ? cql_result_text(r, i, "cluster") : NULL;
        if (cluster && (!c || strcmp(c, cluster)))
            continue;
        json_t *doc;
        rc = decode(q, cql_result_text(r, i, "doc"), &doc, e);
        if (!rc)
            json_array_append_new(array, doc);
    }
    cql_result_free(r);
    if (rc) {
        json_decref(array);
        return rc;
    }
    *out = sorted(array, cmp_id);
    return 0;
}

static int put_row(cq_state *q, const char *table, const char *what, const json_t *doc, const char *cluster,
                   bool create, cs_err *e)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    char *text = encode(doc);
    cs_buf b = { 0 };
    if (create) {
        cs_buf_printf(&b, "INSERT INTO %s.%s (id, doc%s) VALUES (", q->ks, table, cluster ? ", cluster" : "");
        add_lit(&b, id);
        cs_buf_addstr(&b, ", ");
        add_lit(&b, text);
        if (cluster) {
            cs_buf_addstr(&b, ", ");
            add_lit(&b, cluster);
        }
        cs_buf_addstr(&b, ") IF NOT EXISTS");
    } else {
        cs_buf_printf(&b, "UPDATE %s.%s SET doc = ", q->ks, table);
        add_lit(&b, text);
        if (cluster) {
            cs_buf_addstr(&b, ", cluster = ");
            add_lit(&b, cluster);
        }
        cs_buf_addstr(&b, " WHERE id = ");
        add_lit(&b, id);
        cs_buf_addstr(&b, " IF EXISTS");
    }
    free(text);
    bool applied;
    int rc = lwt(q, cs_buf_detach(&b), &applied, e);
    if (rc || applied)
        return rc;
    return create ? cs_err_set(e, CS_E_EXISTS, "%s %s exists already", what, id) : not_found(what, id, e);
}

static int delete_row(cq_state *q, const char *table, const char *what, const char *id, cs_err *e)
{
    cs_buf b = { 0 };
    cs_buf_printf(&b, "DELETE FROM %s.%s WHERE id = ", q->ks, table);
    add_lit(&b, id);
    cs_buf_addstr(&b, " IF EXISTS");
    bool applied;
    int rc = lwt(q, cs_buf_detach(&b), &applied, e);
    return rc ? rc : applied ? 0 : not_found(what, id, e);
}

static int cq_cluster_put(cs_state *s, const json_t *doc, bool create, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, put_row(q, "clusters", "cluster", doc, NULL, create, e));
}

static int cq_cluster_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, get_doc(q, "clusters", "cluster", id, out, e));
}

static int cq_cluster_list(cs_state *s, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, list_table(q, "clusters", NULL, out, e));
}

static int cq_cluster_delete(cs_state *s, const char *id, cs_err *e)
{
    cq_state *q = lock(s);
    int rc = delete_row(q, "clusters", "cluster", id, e);
    json_t *tasks = NULL;
    if (!rc)
        rc = list_table(q, "tasks", id, &tasks, e);
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t)
    {
        cs_err ignored;
        if (!rc)
            delete_row(q, "tasks", "task", json_string_value(json_object_get(t, "id")), &ignored);
    }
    json_decref(tasks);
    return unlock(q, rc);
}

static int cq_task_put(cs_state *s, const json_t *doc, bool create, cs_err *e)
{
    const char *cluster = json_string_value(json_object_get(doc, "cluster"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    cq_state *q = lock(s);
    json_t *c = NULL;
    int rc = get_doc(q, "clusters", "cluster", cluster, &c, e);
    json_decref(c);
    if (rc == CS_E_NOTFOUND) {
        cs_err_set(e, CS_E_NOTFOUND, "task %s: cluster %s is not registered", id, cluster);
        rc = cs_err_field(e, "cluster");
    }
    if (!rc)
        rc = put_row(q, "tasks", "task", doc, cluster, create, e);
    return unlock(q, rc);
}

static int cq_task_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, get_doc(q, "tasks", "task", id, out, e));
}

static int cq_task_list(cs_state *s, const char *cluster, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, list_table(q, "tasks", cluster, out, e));
}

static int cq_task_delete(cs_state *s, const char *id, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, delete_row(q, "tasks", "task", id, e));
}

/* ---- runs ---- */

static long day_of(double t)
{
    double d = t / DAY;
    long day = (long)d;
    return (double)day > d ? day - 1 : day; /* floor, also before 1970 */
}

static long doc_day(const json_t *doc)
{
    return day_of(json_number_value(json_object_get(doc, "queued_at")));
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The newest version of run id: its document, n and bucket. */
typedef struct run_row {
    json_t *doc;
    long n;
    long day;
} run_row;

static int run_day(cq_state *q, const char *id, long *day, cs_err *e)
{
    cs_buf b = { 0 };
    cs_buf_printf(&b, "SELECT day FROM %s.run_ids WHERE id = ", q->ks);
    add_lit(&b, id);
    cql_result *r;
    int rc = select_free(q, CQL_CL_SERIAL, cs_buf_detach(&b), &r, e);
    if (!rc && !cql_result_rows(r))
        rc = not_found("run", id, e);
    if (!rc)
        *day = strtol(cql_result_text(r, 0, "day"), NULL, 10);
    cql_result_free(r);
    return rc;
}

static int read_run(cq_state *q, const char *id, run_row *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    int rc = run_day(q, id, &out->day, e);
    if (rc)
        return rc;
    cs_buf b = { 0 };
    cs_buf_printf(&b, "SELECT n, doc FROM %s.runs WHERE day = %ld AND id = ", q->ks, out->day);
    add_lit(&b, id);
    cs_buf_addstr(&b, " LIMIT 1");
    cql_result *r;
    rc = select_free(q, CQL_CL_SERIAL, cs_buf_detach(&b), &r, e);
    if (!rc && !cql_result_rows(r))
        rc = not_found("run", id, e);
    if (!rc) {
        out->n = strtol(cql_result_text(r, 0, "n"), NULL, 10);
        rc = decode(q, cql_result_text(r, 0, "doc"), &out->doc, e);
    }
    cql_result_free(r);
    return rc;
}

/* Insert a version of doc at (n, seq); seq 0 is a state change, taken
 * only if nobody took it (*applied). */
static int write_version(cq_state *q, long day, const json_t *doc, long n, int64_t seq, bool *applied, cs_err *e)
{
    char *text = encode(doc);
    cs_buf b = { 0 };
    cs_buf_printf(&b, "INSERT INTO %s.runs (day, id, n, seq, doc) VALUES (%ld, ", q->ks, day);
    add_lit(&b, json_string_value(json_object_get(doc, "id")));
    cs_buf_printf(&b, ", %ld, %" PRId64 ", ", n, seq);
    add_lit(&b, text);
    free(text);
    cs_buf_printf(&b, ")%s USING TTL %ld", seq == 0 ? " IF NOT EXISTS" : "", q->ttl);
    if (seq == 0)
        return lwt(q, cs_buf_detach(&b), applied, e);
    *applied = true;
    return exec_free(q, cs_buf_detach(&b), e);
}

static int run_add(cq_state *q, const json_t *doc, cs_err *e)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    long day = doc_day(doc);
    cs_buf b = { 0 };
    cs_buf_printf(&b, "INSERT INTO %s.run_ids (id, day) VALUES (", q->ks);
    add_lit(&b, id);
    cs_buf_printf(&b, ", %ld) IF NOT EXISTS USING TTL %ld", day, q->ttl);
    bool applied;
    int rc = lwt(q, cs_buf_detach(&b), &applied, e);
    if (!rc && !applied)
        return cs_err_set(e, CS_E_EXISTS, "run %s exists already", id);
    if (!rc)
        rc = exec_free(q, cs_sprintf("INSERT INTO %s.run_days (k, day) VALUES (0, %ld) USING TTL %ld", q->ks, day,
                                     q->ttl),
                       e);
    if (!rc)
        rc = write_version(q, day, doc, 0, 0, &applied, e);
    return rc;
}

static int cq_run_add(cs_state *s, const json_t *doc, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, run_add(q, doc, e));
}

static const char *state_of(const json_t *doc)
{
    const char *s = json_string_value(json_object_get(doc, "state"));
    return s ? s : "";
}

static int cq_run_update(cs_state *s, const json_t *doc, cs_err *e)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    cq_state *q = lock(s);
    run_row r;
    int rc = read_run(q, id, &r, e);
    if (!rc && strcmp(state_of(r.doc), state_of(doc))) {
        cs_err_set(e, CS_E_EXISTS, "run %s is %s now, not %s: conflict", id, state_of(r.doc), state_of(doc));
        rc = cs_err_field(e, "state");
    }
    bool applied;
    if (!rc)
        rc = write_version(q, r.day, doc, r.n, now_us(), &applied, e);
    json_decref(r.doc);
    return unlock(q, rc);
}

static int run_cas(cq_state *q, const char *from, const json_t *doc, bool *applied, cs_err *e)
{
    *applied = false;
    run_row r;
    int rc = read_run(q, json_string_value(json_object_get(doc, "id")), &r, e);
    if (!rc && !strcmp(state_of(r.doc), from))
        rc = write_version(q, r.day, doc, r.n + 1, 0, applied, e);
    json_decref(r.doc);
    return rc;
}

static int cq_run_cas(cs_state *s, const char *from, const json_t *doc, bool *applied, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, run_cas(q, from, doc, applied, e));
}

static int cq_run_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    run_row r;
    int rc = read_run(q, id, &r, e);
    if (!rc)
        *out = r.doc;
    return unlock(q, rc);
}

/* The buckets that hold runs, every one. */
static int run_days(cq_state *q, long **days, size_t *n, cs_err *e)
{
    cql_result *r;
    int rc = select_free(q, CQL_CL_QUORUM, cs_sprintf("SELECT day FROM %s.run_days WHERE k = 0", q->ks), &r, e);
    *n = 0;
    *days = NULL;
    if (rc)
        return rc;
    size_t rows = cql_result_rows(r);
    *days = cs_calloc(rows ? rows : 1, sizeof **days);
    for (size_t i = 0; i < rows; i++)
        (*days)[(*n)++] = strtol(cql_result_text(r, i, "day"), NULL, 10);
    cql_result_free(r);
    return 0;
}

/* Append the newest version of every run in bucket day to out. */
static int day_runs(cq_state *q, long day, json_t *out, cs_err *e)
{
    cql_result *r;
    int rc = select_free(q, CQL_CL_QUORUM, cs_sprintf("SELECT id, doc FROM %s.runs WHERE day = %ld", q->ks, day),
                         &r, e);
    if (rc)
        return rc;
    const char *last = NULL;
    for (size_t i = 0; !rc && i < cql_result_rows(r); i++) {
        const char *id = cql_result_text(r, i, "id");
        if (!id || (last && !strcmp(last, id)))
            continue; /* an older version of the run before */
        last = id;
        json_t *doc;
        rc = decode(q, cql_result_text(r, i, "doc"), &doc, e);
        if (!rc)
            json_array_append_new(out, doc);
    }
    cql_result_free(r);
    return rc;
}

/* The newest version of every run queued at or after since (0: all). */
static int all_runs(cq_state *q, double since, json_t **out, cs_err *e)
{
    long *days;
    size_t n;
    int rc = run_days(q, &days, &n, e);
    json_t *array = json_array();
    for (size_t i = 0; !rc && i < n; i++)
        if (since <= 0 || days[i] >= day_of(since))
            rc = day_runs(q, days[i], array, e);
    free(days);
    if (rc)
        json_decref(array);
    else
        *out = array;
    return rc;
}

static bool text_is(const json_t *doc, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(doc, key));
    return !want || (v && !strcmp(v, want));
}

static bool run_matches(const json_t *doc, const cs_run_filter *f)
{
    const char *st = state_of(doc);
    if (!text_is(doc, "cluster", f->cluster) || !text_is(doc, "task", f->task) || !text_is(doc, "kind", f->kind))
        return false;
    if (f->state && !strcmp(f->state, "open") && strcmp(st, "queued") && strcmp(st, "running"))
        return false;
    if (f->state && strcmp(f->state, "open") && strcmp(st, f->state))
        return false;
    return f->since <= 0 || json_number_value(json_object_get(doc, "queued_at")) >= f->since;
}

static int cmp_queued(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    double tx = json_number_value(json_object_get(x, "queued_at"));
    double ty = json_number_value(json_object_get(y, "queued_at"));
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return cmp_id(a, b);
}

static int run_list(cq_state *q, const cs_run_filter *f, json_t **out, cs_err *e)
{
    json_t *all;
    int rc = all_runs(q, f->since, &all, e);
    if (rc)
        return rc;
    all = sorted(all, cmp_queued);
    json_t *list = json_array();
    size_t n = json_array_size(all);
    for (size_t k = 0; k < n && json_array_size(list) < f->limit; k++) {
        json_t *doc = json_array_get(all, f->oldest_first ? k : n - 1 - k);
        if (run_matches(doc, f))
            json_array_append(list, doc);
    }
    json_decref(all);
    *out = list;
    return 0;
}

static int cq_run_list(cs_state *s, const cs_run_filter *f, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, run_list(q, f, out, e));
}

static int run_cancel(cq_state *q, const char *id, char state_out[16], cs_err *e)
{
    for (int tries = 0; tries < 10; tries++) {
        run_row r;
        int rc = read_run(q, id, &r, e);
        if (rc)
            return rc;
        snprintf(state_out, 16, "%s", state_of(r.doc));
        if (cs_state_final(state_out)) {
            json_decref(r.doc);
            return 0;
        }
        if (!strcmp(state_out, "running")) {
            json_decref(r.doc);
            cs_buf b = { 0 };
            cs_buf_printf(&b, "INSERT INTO %s.run_cancel (id) VALUES (", q->ks);
            add_lit(&b, id);
            cs_buf_printf(&b, ") USING TTL %ld", q->ttl);
            return exec_free(q, cs_buf_detach(&b), e);
        }
        json_object_set_new(r.doc, "state", json_string("cancelled"));
        json_object_set_new(r.doc, "ended", json_real(cs_now()));
        bool applied;
        rc = write_version(q, r.day, r.doc, r.n + 1, 0, &applied, e);
        json_decref(r.doc);
        if (rc)
            return rc;
        if (applied) {
            snprintf(state_out, 16, "cancelled");
            return 0;
        }
        /* taken meanwhile: look again */
    }
    return cs_err_set(e, CS_E_LOCKED, "run %s keeps changing: try the cancel again", id);
}

static int cq_run_cancel(cs_state *s, const char *id, char state_out[16], cs_err *e)
{
    cq_state *q = lock(s);
    return unlock(q, run_cancel(q, id, state_out, e));
}

static int cq_run_cancel_asked(cs_state *s, const char *id, bool *asked, cs_err *e)
{
    cq_state *q = lock(s);
    long day;
    int rc = run_day(q, id, &day, e);
    cql_result *r = NULL;
    if (!rc) {
        cs_buf b = { 0 };
        cs_buf_printf(&b, "SELECT id FROM %s.run_cancel WHERE id = ", q->ks);
        add_lit(&b, id);
        rc = select_free(q, CQL_CL_QUORUM, cs_buf_detach(&b), &r, e);
    }
    *asked = !rc && cql_result_rows(r) > 0;
    cql_result_free(r);
    return unlock(q, rc);
}

static int cq_export_runs(cs_state *s, double since, json_t *out, cs_err *e)
{
    cq_state *q = lock(s);
    json_t *all;
    int rc = all_runs(q, since, &all, e);
    if (!rc) {
        all = sorted(all, cmp_queued);
        size_t i;
        json_t *doc;
        json_array_foreach(all, i, doc)
            if (cs_state_final(state_of(doc)) && json_number_value(json_object_get(doc, "queued_at")) >= since)
                json_array_append(out, doc);
        json_decref(all);
    }
    return unlock(q, rc);
}

static int cq_prune(cs_state *s, double before, cs_err *e)
{
    (void)s;
    (void)before;
    (void)e;
    return 0; /* the TTL forgets runs and audit entries */
}

/* ---- audit ---- */

static int cq_audit_add(cs_state *s, const json_t *entry, cs_err *e)
{
    double at = json_number_value(json_object_get(entry, "at"));
    char *text = encode(entry);
    cq_state *q = lock(s);
    cs_buf b = { 0 };
    cs_buf_printf(&b, "INSERT INTO %s.audit (day, at, uid, doc) VALUES (%ld, %.17g, now(), ", q->ks, day_of(at), at);
    add_lit(&b, text);
    free(text);
    cs_buf_printf(&b, ") USING TTL %ld", q->ttl);
    int rc = exec_free(q, cs_buf_detach(&b), e);
    if (!rc)
        rc = exec_free(q, cs_sprintf("INSERT INTO %s.audit_days (k, day) VALUES (0, %ld) USING TTL %ld", q->ks,
                                     day_of(at), q->ttl),
                       e);
    return unlock(q, rc);
}

static int cmp_long_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int cq_audit_list(cs_state *s, size_t limit, json_t **out, cs_err *e)
{
    cq_state *q = lock(s);
    cql_result *r;
    int rc = select_free(q, CQL_CL_QUORUM, cs_sprintf("SELECT day FROM %s.audit_days WHERE k = 0", q->ks), &r, e);
    if (rc)
        return unlock(q, rc);
    size_t n = cql_result_rows(r);
    long *days = cs_calloc(n ? n : 1, sizeof *days);
    for (size_t i = 0; i < n; i++)
        days[i] = strtol(cql_result_text(r, i, "day"), NULL, 10);
    cql_result_free(r);
    qsort(days, n, sizeof *days, cmp_long_desc);
    json_t *list = json_array();
    for (size_t i = 0; !rc && i < n && json_array_size(list) < limit; i++) {
        rc = select_free(q, CQL_CL_QUORUM,
                         cs_sprintf("SELECT doc FROM %s.audit WHERE day = %ld LIMIT %zu", q->ks, days[i],
                                    limit - json_array_size(list)),
                         &r, e);
        for (size_t k = 0; !rc && k < cql_result_rows(r); k++) {
            json_t *doc;
            rc = decode(q, cql_result_text(r, k, "doc"), &doc, e);
            if (!rc)
                json_array_append_new(list, doc);
        }
        cql_result_free(r);
    }
    free(days);
    if (rc)
        json_decref(list);
    else
        *out = list;
    return unlock(q, rc);
}

/* ---- the lease ---- */

typedef struct lease_row {
    bool present;
    char owner[CS_STATE_ID_MAX + 1]; /* "" when nobody holds it */
    uint64_t epoch;
    double expires;
} lease_row;

static int read_lease(cq_state *q, lease_row *l, cs_err *e)
{
    memset(l, 0, sizeof *l);
    cql_result *r;
    int rc = select_free(q, CQL_CL_SERIAL,
                         cs_sprintf("SELECT owner, epoch, expires FROM %s.lease WHERE name = '" LEASE_NAME "'", q->ks),
                         &r, e);
    if (rc)
        return rc;
    if (cql_result_rows(r)) {
        const char *owner = cql_result_text(r, 0, "owner");
        const char *epoch = cql_result_text(r, 0, "epoch");
        const char *expires = cql_result_text(r, 0, "expires");
        l->present = true;
        snprintf(l->owner, sizeof l->owner, "%s", owner ? owner : "");
        l->epoch = epoch ? strtoull(epoch, NULL, 10) : 0;
        l->expires = expires ? strtod(expires, NULL) : 0;
    }
    cql_result_free(r);
    return 0;
}

/* As the SQLite store: renew while owner holds it; take it with a new
 * epoch when it is free or lapsed (also owner's own lapsed lease). Every
 * write is conditioned on the epoch read, so of two servers at once
 * exactly one gets it. */
static int lease(cq_state *q, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e)
{
    lease_row l;
    int rc = read_lease(q, &l, e);
    if (rc)
        return rc;
    double now = cs_now();
    bool live = l.present && l.owner[0] && l.expires > now;
    *epoch = l.epoch;
    if (live && strcmp(l.owner, owner))
        return 0;
    uint64_t next = live ? l.epoch : cs_state_epoch_after(l.epoch, now);
    cs_buf b = { 0 };
    if (!l.present) {
        cs_buf_printf(&b, "INSERT INTO %s.lease (name, owner, epoch, expires) VALUES ('" LEASE_NAME "', ", q->ks);
        add_lit(&b, owner);
        cs_buf_printf(&b, ", %" PRIu64 ", %.17g) IF NOT EXISTS", next, now + ttl);
    } else {
        cs_buf_printf(&b, "UPDATE %s.lease SET owner = ", q->ks);
        add_lit(&b, owner);
        cs_buf_printf(&b, ", epoch = %" PRIu64 ", expires = %.17g WHERE name = '" LEASE_NAME "' IF epoch = %" PRIu64
                          " AND owner = ",
                      next, now + ttl, l.epoch);
        add_lit(&b, l.owner);
    }
    rc = lwt(q, cs_buf_detach(&b), held, e);
    if (!rc && *held)
        *epoch = next;
    if (!rc && !*held) { /* someone else won: say whose epoch it is now */
        lease_row now_l;
        if (read_lease(q, &now_l, e) == 0)
            *epoch = now_l.epoch;
    }
    return rc;
}

static int cq_lease(cs_state *s, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e)
{
    *held = false;
    cq_state *q = lock(s);
    int rc = lease(q, owner, ttl, held, epoch, e);
    if (rc)
        *held = false;
    return unlock(q, rc);
}

static int cq_lease_release(cs_state *s, const char *owner, cs_err *e)
{
    cq_state *q = lock(s);
    cs_buf b = { 0 };
    cs_buf_printf(&b, "UPDATE %s.lease SET owner = '', expires = 0 WHERE name = '" LEASE_NAME "' IF owner = ", q->ks);
    add_lit(&b, owner);
    bool applied;
    int rc = lwt(q, cs_buf_detach(&b), &applied, e);
    return unlock(q, rc);
}

static int cq_lease_get(cs_state *s, json_t **out, cs_err *e)
{
    lease_row l;
    cq_state *q = lock(s);
    int rc = unlock(q, read_lease(q, &l, e));
    if (rc)
        return rc;
    *out = cs_state_lease_doc(l.owner, l.epoch, l.expires, cs_now());
    return 0;
}

/* ---- opening ---- */

static void cq_close(cs_state *s)
{
    cq_state *q = (cq_state *)s;
    cql_close(q->conn);
    pthread_mutex_destroy(&q->mu);
    free(q->host);
    free(q->ks);
    free(q->user);
    if (q->password) {
        memset(q->password, 0, strlen(q->password));
        free(q->password);
    }
    free(q->ca);
    free(q->cert);
    free(q->key);
    free(q->label);
    free(q);
}

static const cs_state_ops CQL_OPS = {
    .kind = "cassandra",
    .close = cq_close,
    .cluster_put = cq_cluster_put,
    .cluster_get = cq_cluster_get,
    .cluster_list = cq_cluster_list,
    .cluster_delete = cq_cluster_delete,
    .task_put = cq_task_put,
    .task_get = cq_task_get,
    .task_list = cq_task_list,
    .task_delete = cq_task_delete,
    .run_add = cq_run_add,
    .run_update = cq_run_update,
    .run_cas = cq_run_cas,
    .run_get = cq_run_get,
    .run_list = cq_run_list,
    .run_cancel = cq_run_cancel,
    .run_cancel_asked = cq_run_cancel_asked,
    .export_runs = cq_export_runs,
    .prune = cq_prune,
    .audit_add = cq_audit_add,
    .audit_list = cq_audit_list,
    .lease = cq_lease,
    .lease_release = cq_lease_release,
    .lease_get = cq_lease_get,
};

/* "cassandra://HOST[:PORT]/KEYSPACE" ("[v6]:PORT" too). */
static int parse_url(const char *url, cq_state *q, cs_err *e)
{
    const char *p = url + strlen("cassandra://");
    const char *slash = strchr(p, '/');
    if (!slash || slash == p)
        return cs_err_set(e, CS_E_USAGE, "state: %s: want cassandra://HOST[:PORT]/KEYSPACE", url);
    const char *ks = slash + 1;
    size_t kn = strlen(ks);
    if (!kn || kn > 48 || strspn(ks, "abcdefghijklmnopqrstuvwxyz0123456789_") != kn || ks[0] == '_')
        return cs_err_set(e, CS_E_USAGE,
                          "state: %s: the keyspace must be 1 to 48 lowercase letters, digits or '_'", url);
    const char *hend = slash, *port = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(slash - p));
        if (!close)
            return cs_err_set(e, CS_E_USAGE, "state: %s: an IPv6 host wants its ']'", url);
        q->host = cs_strndup(p + 1, (size_t)(close - p - 1));
        port = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = memchr(p, ':', (size_t)(slash - p));
        if (colon)
            hend = colon, port = colon + 1;
        q->host = cs_strndup(p, (size_t)(hend - p));
    }
    q->port = 9042;
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (end != slash || v < 1 || v > 65535)
            return cs_err_set(e, CS_E_USAGE, "state: %s: the port must be 1 to 65535", url);
        q->port = (int)v;
    }
    if (!*q->host)
        return cs_err_set(e, CS_E_USAGE, "state: %s names no host", url);
    q->ks = cs_strdup(ks);
    return 0;
}

/* Every node's schema version the same (or SCHEMA_WAIT_S passed). */
static int wait_schema(cq_state *q, cs_err *e)
{
    for (int i = 0; i < SCHEMA_WAIT_S * 5; i++) {
        cql_result *l, *p;
        int rc = run_q(q, CQL_CL_ONE, "SELECT schema_version FROM system.local", &l, e);
        if (rc)
            return rc;
        rc = run_q(q, CQL_CL_ONE, "SELECT schema_version FROM system.peers", &p, e);
        if (rc) {
            cql_result_free(l);
            return rc;
        }
        const char *mine = cql_result_rows(l) ? cql_result_text(l, 0, "schema_version") : NULL;
        bool agreed = mine != NULL;
        for (size_t k = 0; agreed && k < cql_result_rows(p); k++) {
            const char *v = cql_result_text(p, k, "schema_version");
            agreed = v && !strcmp(v, mine);
        }
        cql_result_free(l);
        cql_result_free(p);
        if (agreed)
            return 0;
        usleep(200000);
    }
    return cs_err_set(e, CS_E_UNAVAIL, "%s: the nodes do not agree on the schema after %d s", q->label, SCHEMA_WAIT_S);
}

/* ddl with every "KS." naming the keyspace. */
static char *with_keyspace(const char *ddl, const char *ks)
{
    cs_buf b = { 0 };
    for (const char *p = ddl; *p;) {
        const char *at = strstr(p, "KS.");
        size_t n = at ? (size_t)(at - p) : strlen(p);
        cs_buf_add(&b, p, n);
        p += n;
        if (at) {
            cs_buf_printf(&b, "%s.", ks);
            p += 3;
        }
    }
    return cs_buf_detach(&b);
}

static int init_schema(cq_state *q, long rf, cs_err *e)
{
    static const char *const tables[] = {
        "CREATE TABLE IF NOT EXISTS KS.clusters (id text PRIMARY KEY, doc text)",
        "CREATE TABLE IF NOT EXISTS KS.tasks (id text PRIMARY KEY, cluster text, doc text)",
        "CREATE TABLE IF NOT EXISTS KS.runs (day bigint, id text, n int, seq bigint, doc text,"
        " PRIMARY KEY ((day), id, n, seq)) WITH CLUSTERING ORDER BY (id ASC, n DESC, seq DESC)",
        "CREATE TABLE IF NOT EXISTS KS.run_ids (id text PRIMARY KEY, day bigint)",
        "CREATE TABLE IF NOT EXISTS KS.run_days (k int, day bigint, PRIMARY KEY ((k), day))",
        "CREATE TABLE IF NOT EXISTS KS.run_cancel (id text PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS KS.audit (day bigint, at double, uid timeuuid, doc text,"
        " PRIMARY KEY ((day), at, uid)) WITH CLUSTERING ORDER BY (at DESC, uid DESC)",
        "CREATE TABLE IF NOT EXISTS KS.audit_days (k int, day bigint, PRIMARY KEY ((k), day))",
        "CREATE TABLE IF NOT EXISTS KS.lease (name text PRIMARY KEY, owner text, epoch bigint, expires double)",
    };
    int rc = exec_free(q,
                       cs_sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication ="
                                  " {'class': 'SimpleStrategy', 'replication_factor': %ld}",
                                  q->ks, rf),
                       e);
    if (!rc)
        rc = wait_schema(q, e);
    for (size_t i = 0; !rc && i < sizeof tables / sizeof tables[0]; i++) {
        rc = exec_free(q, with_keyspace(tables[i], q->ks), e);
        if (!rc)
            rc = wait_schema(q, e);
    }
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? cs_strdup(s) : NULL;
}

int cs_state_cql_open(const char *url, const cs_state_opts *o, cs_state **out, cs_err *e)
{
    *out = NULL;
    cq_state *q = cs_calloc(1, sizeof *q);
    q->base.ops = &CQL_OPS;
    pthread_mutex_init(&q->mu, NULL);
    int rc = parse_url(url, q, e);
    q->label = cs_sprintf("state store %s", url);
    q->user = dup_or_null(o->cql_user);
    q->password = dup_or_null(o->cql_password);
    q->ca = dup_or_null(o->cql_ca_file);
    q->cert = dup_or_null(o->cql_cert);
    q->key = dup_or_null(o->cql_key);
    q->tls = o->cql_tls || q->ca;
    q->timeout_ms = o->cql_timeout > 0 ? (int)(o->cql_timeout * 1000) : 10000;
    double hist = o->history_seconds > 0 ? o->history_seconds : 30 * DAY;
    q->ttl = hist > 630720000 ? 630720000 : (long)hist + ((double)(long)hist < hist); /* Cassandra's TTL limit: 20 years */
    if (!rc)
        rc = init_schema(q, o->replication_factor > 0 ? o->replication_factor : 1, e);
    if (rc) {
        cq_close(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}

/* state_sqlite.c - the state store in one SQLite file (see state.h and
 * state_impl.h: arguments arrive checked).
 *
 * Every record is its document as compact JSON with sorted keys, beside
 * copies of the fields the store looks records up by (a run's task,
 * cluster, kind, state, queued_at). One connection per handle, guarded by
 * a mutex: the server's threads share the handle. Several processes share
 * the file through SQLite's own locking (WAL, a busy timeout); what must
 * happen once (a state change, taking the lease) is one UPDATE with its
 * condition, or a BEGIN IMMEDIATE transaction when it reads first. */
#include "server/state_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/sqlite.h"

#define STORE_MARK "cassette server state"
#define STORE_SCHEMA "1"
#define BUSY_MS 10000 /* how long a write waits for another process's */
#define LEASE_NAME "leader"
#define FINAL_STATES "('done', 'failed', 'cancelled', 'interrupted')"

/* runs.queued_at orders every run listing (newest or oldest first, then
 * by id); each filter has an index leading with its column. The lease's
 * epoch counter lives in meta (lease_epoch) so that it only ever grows. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS clusters(id TEXT PRIMARY KEY, doc TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tasks(id TEXT PRIMARY KEY,"
    " cluster TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE, doc TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tasks_cluster ON tasks(cluster, id);"
    "CREATE TABLE IF NOT EXISTS runs(id TEXT PRIMARY KEY, task TEXT, cluster TEXT, kind TEXT,"
    " state TEXT NOT NULL, queued_at REAL NOT NULL, cancel_asked INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS runs_queued ON runs(queued_at, id);"
    "CREATE INDEX IF NOT EXISTS runs_cluster ON runs(cluster, queued_at);"
    "CREATE INDEX IF NOT EXISTS runs_task ON runs(task, queued_at);"
    "CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind, queued_at);"
    "CREATE INDEX IF NOT EXISTS runs_state ON runs(state, queued_at);"
    "CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, at REAL NOT NULL, doc TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_at ON audit(at);"
    "CREATE TABLE IF NOT EXISTS lease(name TEXT PRIMARY KEY, owner TEXT, epoch INTEGER NOT NULL,"
    " expires REAL NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('store', '" STORE_MARK "'), ('schema', '" STORE_SCHEMA "'),"
    " ('lease_epoch', '0');";

typedef struct sq_state {
    cs_state base;
    pthread_mutex_t mu; /* one thread at a time on db */
    sqlite3 *db;
    char *label; /* "state store PATH": what its errors begin with */
} sq_state;

static sq_state *lock(cs_state *s)
{
    sq_state *q = (sq_state *)s;
    pthread_mutex_lock(&q->mu);
    return q;
}

static int unlock(sq_state *q, int rc)
{
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- plumbing ---- */

static sqlite3_stmt *prepare(sq_state *q, const char *sql, cs_err *e)
{
    return cs_sqlite_prepare(q->db, q->label, sql, e);
}

static int db_err(sq_state *q, const char *what, cs_err *e)
{
    return cs_sqlite_err(q->db, q->label, what, e);
}

/* Run a statement that changes rows: 0, or SQLite's extended error code
 * (callers tell constraints apart by it) with e set. */
static int step_write(sq_state *q, sqlite3_stmt *st, int *changes, cs_err *e)
{
    int rc = sqlite3_step(st);
    *changes = rc == SQLITE_DONE ? sqlite3_changes(q->db) : 0;
    if (rc == SQLITE_DONE)
        return 0;
    int ext = sqlite3_extended_errcode(q->db);
    db_err(q, "write", e);
    return ext ? ext : SQLITE_ERROR;
}

static int begin(sq_state *q, cs_err *e)
{
    return cs_sqlite_exec(q->db, q->label, "BEGIN IMMEDIATE", e);
}

/* Commit when rc is 0, else roll back; returns the outcome. */
static int end(sq_state *q, int rc, cs_err *e)
{
    if (!rc)
        rc = cs_sqlite_exec(q->db, q->label, "COMMIT", e);
    if (rc && sqlite3_get_autocommit(q->db) == 0)
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static char *encode(const json_t *doc, const char *what, cs_err *e)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        cs_err_set(e, CS_E_INVAL, "%s: the document cannot be written as JSON", what);
    return text;
}

static int decode(sq_state *q, const char *text, json_t **out, cs_err *e)
{
    json_error_t jerr;
    *out = json_loads(text, 0, &jerr);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return cs_err_set(e, CS_E_CORRUPT, "%s: a stored document is not a JSON object", q->label);
    }
    return 0;
}

static int not_found(const char *what, const char *id, cs_err *e)
{
    return cs_err_set(e, CS_E_NOTFOUND, "%s %s not found", what, id);
}

/* The one document sql (binding ?1 to id) selects. */
static int get_doc(sq_state *q, const char *sql, const char *id, const char *what, json_t **out, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, sql, e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW    ? decode(q, cs_sqlite_col_text(st, 0), out, e)
             : step == SQLITE_DONE ? not_found(what, id, e)
                                   : db_err(q, "read", e);
    sqlite3_finalize(st);
    return rc;
}

/* Append the documents st selects (column 0) to array. */
static int read_docs(sq_state *q, sqlite3_stmt *st, json_t *array, cs_err *e)
{
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc;
        int rc = decode(q, cs_sqlite_col_text(st, 0), &doc, e);
        if (rc)
            return rc;
        json_array_append_new(array, doc);
    }
    return step == SQLITE_DONE ? 0 : db_err(q, "read", e);
}

/* The documents st selects, as an array into *out; finalizes st. */
static int collect(sq_state *q, sqlite3_stmt *st, json_t **out, cs_err *e)
{
    json_t *array = json_array();
    int rc = read_docs(q, st, array, e);
    sqlite3_finalize(st);
    if (rc)
        json_decref(array);
    else
        *out = array;
    return rc;
}

/* The documents sql selects, binding ?1 to arg (NULL: nothing bound). */
static int list_docs(sq_state *q, const char *sql, const char *arg, json_t **out, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, sql, e);
    if (!st)
        return e->code;
    if (arg)
        cs_sqlite_bind_text(st, 1, arg);
    return collect(q, st, out, e);
}

/* Run sql binding ?1 to id; *changes: rows it changed. */
static int write_id(sq_state *q, const char *sql, const char *id, int *changes, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, sql, e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, id);
    int rc = step_write(q, st, changes, e) ? e->code : 0;
    sqlite3_finalize(st);
    return rc;
}

static int delete_row(sq_state *q, const char *sql, const char *what, const char *id, cs_err *e)
{
    int changes;
    int rc = write_id(q, sql, id, &changes, e);
    return rc ? rc : changes ? 0 : not_found(what, id, e);
}

/* ---- clusters and tasks ---- */

/* Insert (create) or update a cluster or task: ?1 its id, ?2 its
 * document, ?3 its cluster (tasks). */
static int put_row(sq_state *q, const char *sql, const json_t *doc, const char *what, const char *cluster, bool create,
                   cs_err *e)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    char *text = encode(doc, what, e);
    if (!text)
        return e->code;
    sqlite3_stmt *st = prepare(q, sql, e);
    int rc = st ? 0 : e->code, changes = 0;
    if (st) {
        cs_sqlite_bind_text(st, 1, id);
        cs_sqlite_bind_text(st, 2, text);
        if (cluster)
            cs_sqlite_bind_text(st, 3, cluster);
        int step = step_write(q, st, &changes, e);
        if (step == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = cs_err_set(e, CS_E_EXISTS, "%s %s exists already", what, id);
        else if (step == SQLITE_CONSTRAINT_FOREIGNKEY) {
            cs_err_set(e, CS_E_NOTFOUND, "%s %s: cluster %s is not registered", what, id, cluster);
            rc = cs_err_field(e, "cluster");
        } else if (step)
            rc = e->code;
        else if (!create && !changes)
            rc = not_found(what, id, e);
    }
    sqlite3_finalize(st);
    free(text);
    return rc;
}

static int sq_cluster_put(cs_state *s, const json_t *doc, bool create, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, put_row(q,
                             create ? "INSERT INTO clusters(id, doc) VALUES(?1, ?2)"
                                    : "UPDATE clusters SET doc = ?2 WHERE id = ?1",
                             doc, "cluster", NULL, create, e));
}

static int sq_cluster_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, get_doc(q, "SELECT doc FROM clusters WHERE id = ?1", id, "cluster", out, e));
}

static int sq_cluster_list(cs_state *s, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, list_docs(q, "SELECT doc FROM clusters ORDER BY id", NULL, out, e));
}

static int sq_cluster_delete(cs_state *s, const char *id, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, delete_row(q, "DELETE FROM clusters WHERE id = ?1", "cluster", id, e));
}

static int sq_task_put(cs_state *s, const json_t *doc, bool create, cs_err *e)
{
    const char *cluster = json_string_value(json_object_get(doc, "cluster"));
    sq_state *q = lock(s);
    return unlock(q, put_row(q,
                             create ? "INSERT INTO tasks(id, doc, cluster) VALUES(?1, ?2, ?3)"
                                    : "UPDATE tasks SET doc = ?2, cluster = ?3 WHERE id = ?1",
                             doc, "task", cluster, create, e));
}

static int sq_task_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, get_doc(q, "SELECT doc FROM tasks WHERE id = ?1", id, "task", out, e));
}

static int sq_task_list(cs_state *s, const char *cluster, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, list_docs(q,
                               cluster ? "SELECT doc FROM tasks WHERE cluster = ?1 ORDER BY id"
                                       : "SELECT doc FROM tasks ORDER BY id",
                               cluster, out, e));
}

static int sq_task_delete(cs_state *s, const char *id, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, delete_row(q, "DELETE FROM tasks WHERE id = ?1", "task", id, e));
}

/* ---- runs ---- */

/* What a run statement binds: ?1 id, ?2 task, ?3 cluster, ?4 kind,
 * ?5 state, ?6 queued_at, ?7 the document (then ?8: a cas's `from`). */
static int write_run(sq_state *q, const char *sql, const json_t *doc, const char *from, int *changes, cs_err *e)
{
    *changes = 0;
    char *text = encode(doc, "run", e);
    if (!text)
        return e->code;
    sqlite3_stmt *st = prepare(q, sql, e);
    int rc = st ? 0 : e->code;
    if (st) {
        static const char *const keys[] = { "id", "task", "cluster", "kind", "state" };
        for (int i = 0; i < 5; i++)
            cs_sqlite_bind_text(st, i + 1, json_string_value(json_object_get(doc, keys[i])));
        sqlite3_bind_double(st, 6, json_number_value(json_object_get(doc, "queued_at")));
        cs_sqlite_bind_text(st, 7, text);
        if (from)
            cs_sqlite_bind_text(st, 8, from);
        int step = step_write(q, st, changes, e);
        if (step == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = cs_err_set(e, CS_E_EXISTS, "run %s exists already", json_string_value(json_object_get(doc, "id")));
        else if (step)
            rc = e->code;
    }
    sqlite3_finalize(st);
    free(text);
    return rc;
}

/* The stored state of run id into state (16 bytes); CS_E_NOTFOUND. */
static int run_state(sq_state *q, const char *id, char state[16], cs_err *e)
{
    sqlite3_stmt *st = prepare(q, "SELECT state FROM runs WHERE id = ?1", e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? 0 : step == SQLITE_DONE ? not_found("run", id, e) : db_err(q, "read", e);
    if (!rc)
        snprintf(state, 16, "%s", cs_sqlite_col_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

static int sq_run_add(cs_state *s, const json_t *doc, cs_err *e)
{
    int changes;
    sq_state *q = lock(s);
    return unlock(q, write_run(q,
                               "INSERT INTO runs(id, task, cluster, kind, state, queued_at, cancel_asked, doc)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
                               doc, NULL, &changes, e));
}

static int run_update(sq_state *q, const json_t *doc, cs_err *e)
{
    int changes;
    int rc = write_run(q,
                       "UPDATE runs SET task = ?2, cluster = ?3, kind = ?4, queued_at = ?6, doc = ?7"
                       " WHERE id = ?1 AND state = ?5",
                       doc, NULL, &changes, e);
    if (rc || changes)
        return rc;
    const char *id = json_string_value(json_object_get(doc, "id"));
    char stored[16];
    rc = run_state(q, id, stored, e);
    if (rc)
        return rc;
    cs_err_set(e, CS_E_EXISTS, "run %s is %s now, not %s: conflict", id, stored,
               json_string_value(json_object_get(doc, "state")));
    return cs_err_field(e, "state");
}

static int sq_run_update(cs_state *s, const json_t *doc, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, run_update(q, doc, e));
}

static int run_cas(sq_state *q, const char *from, const json_t *doc, bool *applied, cs_err *e)
{
    int changes;
    int rc = write_run(q,
                       "UPDATE runs SET task = ?2, cluster = ?3, kind = ?4, state = ?5, queued_at = ?6, doc = ?7"
                       " WHERE id = ?1 AND state = ?8",
                       doc, from, &changes, e);
    *applied = !rc && changes > 0;
    if (rc || changes)
        return rc;
    char stored[16];
    return run_state(q, json_string_value(json_object_get(doc, "id")), stored, e);
}

static int sq_run_cas(cs_state *s, const char *from, const json_t *doc, bool *applied, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, run_cas(q, from, doc, applied, e));
}

static int sq_run_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, get_doc(q, "SELECT doc FROM runs WHERE id = ?1", id, "run", out, e));
}

/* SELECT doc FROM runs with f's conditions, binding ?1.. in order. */
static char *run_list_sql(const cs_run_filter *f)
{
    cs_buf b = { 0 };
    cs_buf_addstr(&b, "SELECT doc FROM runs WHERE 1");
    int n = 0;
    if (f->cluster)
        cs_buf_printf(&b, " AND cluster = ?%d", ++n);
    if (f->task)
        cs_buf_printf(&b, " AND task = ?%d", ++n);
    if (f->kind)
        cs_buf_printf(&b, " AND kind = ?%d", ++n);
    if (f->state && !strcmp(f->state, "open"))
        cs_buf_addstr(&b, " AND state IN ('queued', 'running')");
    else if (f->state)
        cs_buf_printf(&b, " AND state = ?%d", ++n);
    if (f->since > 0)
        cs_buf_printf(&b, " AND queued_at >= ?%d", ++n);
    cs_buf_printf(&b, " ORDER BY queued_at %s, id %s LIMIT ?%d", f->oldest_first ? "ASC" : "DESC",
                  f->oldest_first ? "ASC" : "DESC", ++n);
    return cs_buf_detach(&b);
}

static int run_list(sq_state *q, const cs_run_filter *f, json_t **out, cs_err *e)
{
    char *sql = run_list_sql(f);
    sqlite3_stmt *st = prepare(q, sql, e);
    free(sql);
    if (!st)
        return e->code;
    int n = 0;
    const char *const texts[] = { f->cluster, f->task, f->kind };
    for (size_t i = 0; i < 3; i++)
        if (texts[i])
            cs_sqlite_bind_text(st, ++n, texts[i]);
    if (f->state && strcmp(f->state, "open"))
        cs_sqlite_bind_text(st, ++n, f->state);
    if (f->since > 0)
        sqlite3_bind_double(st, ++n, f->since);
    sqlite3_bind_int64(st, ++n, (sqlite3_int64)f->limit);
    return collect(q, st, out, e);
}

static int sq_run_list(cs_state *s, const cs_run_filter *f, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, run_list(q, f, out, e));
}

/* A queued run ends as cancelled now; a running one is marked. */
static int run_cancel(sq_state *q, const char *id, char state_out[16], cs_err *e)
{
    int rc = run_state(q, id, state_out, e), changes;
    if (rc || cs_state_final(state_out))
        return rc;
    if (!strcmp(state_out, "running"))
        return write_id(q, "UPDATE runs SET cancel_asked = 1 WHERE id = ?1", id, &changes, e);
    json_t *doc;
    rc = get_doc(q, "SELECT doc FROM runs WHERE id = ?1", id, "run", &doc, e);
    if (rc)
        return rc;
    json_object_set_new(doc, "state", json_string("cancelled"));
    json_object_set_new(doc, "ended", json_real(cs_now()));
    bool applied;
    rc = run_cas(q, "queued", doc, &applied, e);
    json_decref(doc);
    if (!rc)
        snprintf(state_out, 16, "cancelled");
    return rc;
}

static int sq_run_cancel(cs_state *s, const char *id, char state_out[16], cs_err *e)
{
    sq_state *q = lock(s);
    /* Read and write in one transaction: no other process moves the run
     * between the two. */
    int rc = begin(q, e);
    if (!rc)
        rc = end(q, run_cancel(q, id, state_out, e), e);
    return unlock(q, rc);
}

static int run_cancel_asked(sq_state *q, const char *id, bool *asked, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, "SELECT cancel_asked FROM runs WHERE id = ?1", e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? 0 : step == SQLITE_DONE ? not_found("run", id, e) : db_err(q, "read", e);
    *asked = !rc && sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return rc;
}

static int sq_run_cancel_asked(cs_state *s, const char *id, bool *asked, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, run_cancel_asked(q, id, asked, e));
}

/* Run sql binding ?1 to t (no rows wanted). */
static int write_time(sq_state *q, const char *sql, double t, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, sql, e);
    if (!st)
        return e->code;
    sqlite3_bind_double(st, 1, t);
    int rc = cs_sqlite_step_done(q->db, q->label, st, e);
    sqlite3_finalize(st);
    return rc;
}

static int sq_export_runs(cs_state *s, double since, json_t *out, cs_err *e)
{
    sq_state *q = lock(s);
    sqlite3_stmt *st = prepare(q,
                               "SELECT doc FROM runs WHERE queued_at >= ?1 AND state IN " FINAL_STATES
                               " ORDER BY queued_at, id",
                               e);
    int rc = st ? 0 : e->code;
    if (st) {
        sqlite3_bind_double(st, 1, since);
        rc = read_docs(q, st, out, e);
    }
    sqlite3_finalize(st);
    return unlock(q, rc);
}

/* Runs are forgotten by the time they were queued (a run lasts far less
 * than the history is kept). */
static int sq_prune(cs_state *s, double before, cs_err *e)
{
    sq_state *q = lock(s);
    int rc = begin(q, e);
    if (!rc) {
        rc = write_time(q, "DELETE FROM runs WHERE queued_at < ?1 AND state IN " FINAL_STATES, before, e);
        if (!rc)
            rc = write_time(q, "DELETE FROM audit WHERE at < ?1", before, e);
        rc = end(q, rc, e);
    }
    return unlock(q, rc);
}

/* ---- audit ---- */

static int audit_add(sq_state *q, const json_t *entry, cs_err *e)
{
    char *text = encode(entry, "audit", e);
    sqlite3_stmt *st = text ? prepare(q, "INSERT INTO audit(at, doc) VALUES(?1, ?2)", e) : NULL;
    int rc = st ? 0 : e->code;
    if (st) {
        sqlite3_bind_double(st, 1, json_number_value(json_object_get(entry, "at")));
        cs_sqlite_bind_text(st, 2, text);
        rc = cs_sqlite_step_done(q->db, q->label, st, e);
    }
    sqlite3_finalize(st);
    free(text);
    return rc;
}

static int sq_audit_add(cs_state *s, const json_t *entry, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, audit_add(q, entry, e));
}

static int audit_list(sq_state *q, size_t limit, json_t **out, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, "SELECT doc FROM audit ORDER BY seq DESC LIMIT ?1", e);
    if (!st)
        return e->code;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
    return collect(q, st, out, e);
}

static int sq_audit_list(cs_state *s, size_t limit, json_t **out, cs_err *e)
{
    sq_state *q = lock(s);
    return unlock(q, audit_list(q, limit, out, e));
}

/* ---- the lease ---- */

typedef struct lease_row {
    bool present;
    char owner[CS_STATE_ID_MAX + 1]; /* "" when nobody holds it */
    uint64_t epoch;
    double expires;
} lease_row;

static int read_lease(sq_state *q, lease_row *r, cs_err *e)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = prepare(q, "SELECT owner, epoch, expires FROM lease WHERE name = '" LEASE_NAME "'", e);
    if (!st)
        return e->code;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        r->present = true;
        snprintf(r->owner, sizeof r->owner, "%s", cs_sqlite_col_text(st, 0));
        sqlite3_int64 epoch = sqlite3_column_int64(st, 1);
        r->epoch = epoch > 0 ? (uint64_t)epoch : 0;
        r->expires = sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : db_err(q, "read", e);
}

/* The next epoch from meta's counter, which it advances. */
static int next_epoch(sq_state *q, uint64_t *epoch, cs_err *e)
{
    char *last = cs_sqlite_meta_get(q->db, "lease_epoch");
    if (!last)
        return cs_err_set(e, CS_E_CORRUPT, "%s: the lease epoch counter is missing", q->label);
    *epoch = cs_state_epoch_after(strtoull(last, NULL, 10), cs_now());
    free(last);
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)*epoch);
    return cs_sqlite_meta_set(q->db, q->label, "lease_epoch", text, e);
}

static int write_lease(sq_state *q, const char *owner, uint64_t epoch, double expires, cs_err *e)
{
    sqlite3_stmt *st =
        prepare(q, "INSERT OR REPLACE INTO lease(name, owner, epoch, expires) VALUES('" LEASE_NAME "', ?1, ?2, ?3)", e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, owner);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)epoch);
    sqlite3_bind_double(st, 3, expires);
    int rc = cs_sqlite_step_done(q->db, q->label, st, e);
    sqlite3_finalize(st);
    return rc;
}

/* Renew it while owner holds it; take it (a new epoch) when it is free or
 * lapsed, also when owner held it before it lapsed: whatever owner did
 * under the old epoch may have been fenced off meanwhile. */
static int lease(sq_state *q, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e)
{
    lease_row r;
    int rc = read_lease(q, &r, e);
    if (rc)
        return rc;
    double now = cs_now();
    bool live = r.present && r.owner[0] && r.expires > now;
    *epoch = r.epoch;
    if (live && strcmp(r.owner, owner))
        return 0;
    if (!live)
        rc = next_epoch(q, epoch, e);
    if (!rc)
        rc = write_lease(q, owner, *epoch, now + ttl, e);
    *held = !rc;
    return rc;
}

static int sq_lease(cs_state *s, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e)
{
    sq_state *q = lock(s);
    int rc = begin(q, e);
    if (!rc)
        rc = end(q, lease(q, owner, ttl, held, epoch, e), e);
    if (rc)
        *held = false;
    return unlock(q, rc);
}

static int sq_lease_release(cs_state *s, const char *owner, cs_err *e)
{
    int changes;
    sq_state *q = lock(s);
    return unlock(q, write_id(q,
                              "UPDATE lease SET owner = NULL, expires = 0"
                              " WHERE name = '" LEASE_NAME "' AND owner = ?1",
                              owner, &changes, e));
}

static int sq_lease_get(cs_state *s, json_t **out, cs_err *e)
{
    lease_row r;
    sq_state *q = lock(s);
    int rc = unlock(q, read_lease(q, &r, e));
    if (rc)
        return rc;
    *out = cs_state_lease_doc(r.owner, r.epoch, r.expires, cs_now());
    return 0;
}

/* ---- opening ---- */

static void sq_close(cs_state *s)
{
    sq_state *q = (sq_state *)s;
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->mu);
    free(q->label);
    free(q);
}

static const cs_state_ops SQLITE_OPS = {
    .kind = "sqlite",
    .close = sq_close,
    .cluster_put = sq_cluster_put,
    .cluster_get = sq_cluster_get,
    .cluster_list = sq_cluster_list,
    .cluster_delete = sq_cluster_delete,
    .task_put = sq_task_put,
    .task_get = sq_task_get,
    .task_list = sq_task_list,
    .task_delete = sq_task_delete,
    .run_add = sq_run_add,
    .run_update = sq_run_update,
    .run_cas = sq_run_cas,
    .run_get = sq_run_get,
    .run_list = sq_run_list,
    .run_cancel = sq_run_cancel,
    .run_cancel_asked = sq_run_cancel_asked,
    .export_runs = sq_export_runs,
    .prune = sq_prune,
    .audit_add = sq_audit_add,
    .audit_list = sq_audit_list,
    .lease = sq_lease,
    .lease_release = sq_lease_release,
    .lease_get = sq_lease_get,
};

static int table_count(sq_state *q, int *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(q, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", e);
    if (!st)
        return e->code;
    int step = sqlite3_step(st);
    *n = step == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return step == SQLITE_ROW ? 0 : db_err(q, "read", e);
}

/* Make the file a state store of this schema, or refuse it: another
 * program's database, or a newer schema, is left as it is. */
static int init_schema(sq_state *q, cs_err *e)
{
    int tables = 0;
    int rc = table_count(q, &tables, e);
    char *mark = rc || !tables ? NULL : cs_sqlite_meta_get(q->db, "store");
    if (!rc && tables && (!mark || strcmp(mark, STORE_MARK)))
        rc = cs_err_set(e, CS_E_INVAL, "%s: an SQLite file of something else, not a cassette state store", q->label);
    free(mark);
    if (!rc)
        rc = cs_sqlite_exec(q->db, q->label, SCHEMA, e);
    char *schema = rc ? NULL : cs_sqlite_meta_get(q->db, "schema");
    if (!rc && (!schema || strcmp(schema, STORE_SCHEMA)))
        rc = cs_err_set(e, CS_E_INVAL, "%s: schema version %s, this cassette knows version %s", q->label,
                        schema ? schema : "(none)", STORE_SCHEMA);
    free(schema);
    return rc;
}

int cs_state_sqlite_open(const char *path, const cs_state_opts *o, cs_state **out, cs_err *e)
{
    (void)o;
    *out = NULL;
    sq_state *q = cs_calloc(1, sizeof *q);
    q->base.ops = &SQLITE_OPS;
    pthread_mutex_init(&q->mu, NULL);
    q->label = cs_sprintf("state store %s", path);
    /* synchronous=FULL: a lease epoch or a run taken must survive a crash
     * of the machine, not only of the process. */
    int rc = cs_sqlite_open(path, q->label, BUSY_MS, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", &q->db, e);
    if (!rc)
        rc = begin(q, e);
    if (!rc)
        rc = end(q, init_schema(q, e), e);
    if (rc) {
        sq_close(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}

/* migrate.c - CQL schema migrations, Fluxer style: `<timestamp>_<name>.cql`
 * files applied in timestamp order, each once, recorded in a tracking table.
 *
 * Every file is read, checksummed (BLAKE2b-256) and split into statements
 * before anything runs, so a file that cannot be parsed stops the run with
 * nothing applied. Applied files are recorded in KS.cassette_migrations
 * (version, name, checksum, applied_at, duration_ms, applied_by); a file
 * whose content changed after it was applied stops the run unless
 * --force-checksum. Two runs never apply a file twice: a run takes a
 * lightweight-transaction lock row (KS.cassette_migrations_lock, with a TTL
 * so a killed run's lock expires, renewed before each file) and reads the
 * tracking table again once it holds the lock. Statements run one at a
 * time; after each schema change the run waits until every node agrees on
 * the schema version. The first failing statement stops the run naming file
 * and line; that file is not recorded (CQL has no transactions: statements
 * of that file before the failing one stay applied, and the message says
 * so). */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cassandra/cql.h"
#include "cassandra/cqlsplit.h"
#include "cassandra/node.h"
#include "ops/nodeopts.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"

#define MIGRATION_FILE_MAX (16u << 20)
#define LOCK_TTL_S 600
#define AGREEMENT_WAIT_S 60

typedef struct migrate_ctx {
    const cs_migrate_req *req;
    const char *ks;
    cql_conn *conn;
    uint16_t consistency;
    char owner[96];
    bool locked;
    cs_migrate_result *res;
} migrate_ctx;

/* ---- the files ---- */

/* "<digits>_<name>.cql" -> version and name; false for any other name. */
static bool parse_file_name(const char *file, char **version, char **name)
{
    size_t n = strlen(file), digits = strspn(file, "0123456789");
    if (n < 5 || strcmp(file + n - 4, ".cql") || digits < 8 || file[digits] != '_' || digits + 1 >= n - 4)
        return false;
    for (size_t i = digits + 1; i < n - 4; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", file[i]))
            return false;
    *version = cs_strndup(file, digits);
    *name = cs_strndup(file + digits + 1, n - 4 - digits - 1);
    return true;
}

static int compare_migrations(const void *a, const void *b)
{
    const cs_migration *x = a, *y = b;
    size_t lx = strlen(x->version), ly = strlen(y->version);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x->version, y->version);
}

static void checksum_hex(const char *text, size_t len, char out[65])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, (const uint8_t *)text, len, NULL, 0);
    sodium_bin2hex(out, 65, h, sizeof h);
}

static int read_one(cs_migration *m, cs_err *e)
{
    char *text = NULL;
    size_t len = 0;
    int rc = cs_read_file(m->path, MIGRATION_FILE_MAX, &text, &len, e);
    if (rc)
        return rc;
    checksum_hex(text, len, m->checksum);
    rc = cql_split(text, len, &m->stmts, &m->n_stmts, e);
    free(text);
    if (rc)
        return cs_err_prefix(e, "%s", m->file);
    return 0;
}

static int read_dir(migrate_ctx *c, cs_err *e)
{
    DIR *d = opendir(c->req->dir);
    if (!d)
        return cs_err_sys(e, CS_E_NOTFOUND, errno, "cannot read migration directory %s", c->req->dir);
    cs_migrate_result *res = c->res;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 4, ".cql"))
            continue; /* READMEs and the like */
        char *version = NULL, *name = NULL;
        if (!parse_file_name(de->d_name, &version, &name)) {
            rc = cs_err_set(e, CS_E_INVAL, "migration file %s: the name must be <timestamp>_<name>.cql", de->d_name);
            break;
        }
        res->items = cs_realloc(res->items, (res->n + 1) * sizeof *res->items);
        cs_migration *m = &res->items[res->n++];
        memset(m, 0, sizeof *m);
        m->version = version;
        m->name = name;
        m->file = cs_strdup(de->d_name);
        m->path = cs_path_join(c->req->dir, de->d_name);
        rc = read_one(m, e);
    }
    closedir(d);
    if (rc)
        return rc;
    if (res->n)
        qsort(res->items, res->n, sizeof *res->items, compare_migrations);
    for (size_t i = 1; i < res->n; i++)
        if (!compare_migrations(&res->items[i - 1], &res->items[i]))
            return cs_err_set(e, CS_E_INVAL, "migrations %s and %s have the same version", res->items[i - 1].file,
                              res->items[i].file);
    return 0;
}

/* ---- talking to the cluster ---- */

/* 'text' with quotes doubled (caller frees). */
static char *literal(const char *s)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_addch(&b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            cs_buf_addch(&b, '\'');
        cs_buf_addch(&b, *p);
    }
    cs_buf_addch(&b, '\'');
    return cs_buf_detach(&b);
}

static int run(migrate_ctx *c, const char *cql, cql_result **out, cs_err *e)
{
    cql_result *r = NULL;
    int rc = cql_query_at(c->conn, cql, c->consistency, &r, e);
    if (out && !rc)
        *out = r;
    else
        cql_result_free(r);
    return rc;
}

/* For cassette's own tables right after they were created: two runs that
 * create them at once may see the other's table id for a moment ("does not
 * exist"), until the schema settles. */
static int run_own(migrate_ctx *c, const char *cql, cql_result **out, cs_err *e)
{
    for (int attempt = 0;; attempt++) {
        int rc = run(c, cql, out, e);
        if (!rc || attempt >= 40 || (!strstr(e->msg, "does not exist") && !strstr(e->msg, "unconfigured table")))
            return rc;
        struct timespec ts = { 0, 250 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* Poll until every node reports the same schema version. */
static int wait_schema_agreement(migrate_ctx *c, cs_err *e)
{
    return cs_node_wait_schema_agreement(c->conn, AGREEMENT_WAIT_S, e);
}

static int keyspace_exists(migrate_ctx *c, bool *yes, cs_err *e)
{
    char *lit = literal(c->ks);
    char *q = cs_sprintf("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", lit);
    cql_result *r = NULL;
    int rc = cql_query(c->conn, q, &r, e);
    *yes = !rc && cql_result_rows(r) > 0;
    cql_result_free(r);
    free(q);
    free(lit);
    return rc;
}

static int tracking_exists(migrate_ctx *c, bool *yes, cs_err *e)
{
    char *ks = literal(c->ks);
    char *q = cs_sprintf("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s"
                         " AND table_name = 'cassette_migrations'",
                         ks);
    cql_result *r = NULL;
    int rc = cql_query(c->conn, q, &r, e);
    *yes = !rc && cql_result_rows(r) > 0;
    cql_result_free(r);
    free(q);
    free(ks);
    return rc;
}

static int create_tracking(migrate_ctx *c, cs_err *e)
{
    char *t1 = cs_sprintf("CREATE TABLE IF NOT EXISTS \"%s\".cassette_migrations (version text PRIMARY KEY,"
                          " name text, checksum text, applied_at timestamp, duration_ms int, applied_by text)",
                          c->ks);
    char *t2 = cs_sprintf("CREATE TABLE IF NOT EXISTS \"%s\".cassette_migrations_lock (id text PRIMARY KEY,"
                          " owner text, since timestamp)",
                          c->ks);
    int rc = run_own(c, t1, NULL, e);
    if (!rc)
        rc = run_own(c, t2, NULL, e);
    if (!rc)
        rc = wait_schema_agreement(c, e);
    free(t1);
    free(t2);
    return rc ? cs_err_prefix(e, "creating the tracking table") : 0;
}

static cs_migration *find_version(cs_migrate_result *res, const char *version)
{
    for (size_t i = 0; i < res->n; i++)
        if (!strcmp(res->items[i].version, version))
            return &res->items[i];
    return NULL;
}

/* What the tracking table says, merged into the files. */
static int read_applied(migrate_ctx *c, cs_err *e)
{
    bool exists = false;
    int rc = tracking_exists(c, &exists, e);
    if (rc || !exists)
        return rc;
    char *q = cs_sprintf("SELECT version, name, checksum, applied_at, duration_ms FROM \"%s\".cassette_migrations",
                         c->ks);
    cql_result *r = NULL;
    rc = run_own(c, q, &r, e);
    free(q);
    for (size_t i = 0; !rc && i < cql_result_rows(r); i++) {
        const char *version = cql_result_text(r, i, "version");
        cs_migration *m = version ? find_version(c->res, version) : NULL;
        if (!m) {
            cs_strlist_add(&c->res->unknown, version ? version : "?");
            continue;
        }
        const char *sum = cql_result_text(r, i, "checksum");
        const char *at = cql_result_text(r, i, "applied_at");
        const char *ms = cql_result_text(r, i, "duration_ms");
        m->applied = true;
        m->applied_at_ms = at ? strtoll(at, NULL, 10) : 0;
        m->duration_ms = ms ? strtol(ms, NULL, 10) : 0;
        m->changed = !sum || strcmp(sum, m->checksum);
    }
    cql_result_free(r);
    return rc;
}

static int refuse_changed(migrate_ctx *c, cs_err *e)
{
    for (size_t i = 0; i < c->res->n; i++) {
        const cs_migration *m = &c->res->items[i];
        if (m->applied && m->changed && !c->req->force_checksum)
            return cs_err_set(e, CS_E_INVAL,
                              "migration %s changed after it was applied (checksum %.12s... now); refusing to go on"
                              " ({force_checksum} records the new checksum)",
                              m->file, m->checksum);
    }
    return 0;
}

/* ---- the lock row ---- */

static int try_lock(migrate_ctx *c, bool *got, char **holder, cs_err *e)
{
    char *owner = literal(c->owner);
    char *q = cs_sprintf("INSERT INTO \"%s\".cassette_migrations_lock (id, owner, since) VALUES ('lock', %s,"
                         " toTimestamp(now())) IF NOT EXISTS USING TTL %d",
                         c->ks, owner, LOCK_TTL_S);
    cql_result *r = NULL;
    int rc = run_own(c, q, &r, e);
    free(q);
    free(owner);
    if (!rc) {
        const char *applied = cql_result_text(r, 0, "[applied]");
        const char *who = cql_result_text(r, 0, "owner");
        *got = applied && !strcmp(applied, "true");
        *holder = cs_strdup(who ? who : "?");
    }
    cql_result_free(r);
    return rc;
}

static int take_lock(migrate_ctx *c, cs_err *e)
{
    double deadline = (double)time(NULL) + c->req->lock_wait;
    bool said = false;
    for (;;) {
        bool got = false;
        char *holder = NULL;
        int rc = try_lock(c, &got, &holder, e);
        if (rc || got) {
            free(holder);
            c->locked = got;
            return rc;
        }
        if ((double)time(NULL) >= deadline) {
            rc = cs_err_set(e, CS_E_EXISTS, "another migrate (%s) holds %s.cassette_migrations_lock", holder, c->ks);
            free(holder);
            return rc;
        }
        if (!said)
            cs_info("waiting for the migration lock held by %s", holder);
        said = true;
        free(holder);
        struct timespec ts = { 0, 500 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* Renew the TTL before each file, only if the lock is still ours. */
static int renew_lock(migrate_ctx *c, cs_err *e)
{
    char *owner = literal(c->owner);
    char *q = cs_sprintf("UPDATE \"%s\".cassette_migrations_lock USING TTL %d SET since = toTimestamp(now())"
                         " WHERE id = 'lock' IF owner = %s",
                         c->ks, LOCK_TTL_S, owner);
    cql_result *r = NULL;
    int rc = run_own(c, q, &r, e);
    const char *applied = rc ? NULL : cql_result_text(r, 0, "[applied]");
    if (!rc && !(applied && !strcmp(applied, "true")))
        rc = cs_err_set(e, CS_E_EXISTS, "the migration lock expired or was taken by another run");
    cql_result_free(r);
    free(q);
    free(owner);
    return rc;
}

static void release_lock(migrate_ctx *c)
{
    if (!c->locked)
        return;
    char *owner = literal(c->owner);
    char *q = cs_sprintf("DELETE FROM \"%s\".cassette_migrations_lock WHERE id = 'lock' IF owner = %s", c->ks, owner);
    cs_err e;
    if (run(c, q, NULL, &e))
        cs_info("could not release the migration lock (it expires in %d s): %s", LOCK_TTL_S, e.msg);
    free(q);
    free(owner);
    c->locked = false;
}

/* ---- applying ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int record(migrate_ctx *c, cs_migration *m, long ms, cs_err *e)
{
    char *name = literal(m->name), *version = literal(m->version), *by = literal(c->owner);
    char *q = cs_sprintf("INSERT INTO \"%s\".cassette_migrations (version, name, checksum, applied_at, duration_ms,"
                         " applied_by) VALUES (%s, %s, '%s', toTimestamp(now()), %ld, %s)",
                         c->ks, version, name, m->checksum, ms, by);
    int rc = run_own(c, q, NULL, e);
    free(q);
    free(name);
    free(version);
    free(by);
    return rc;
}

static int apply_one(migrate_ctx *c, cs_migration *m, cs_err *e)
{
    double t0 = now_s();
    int rc = renew_lock(c, e);
    for (size_t i = 0; !rc && i < m->n_stmts; i++) {
        cql_result *r = NULL;
        rc = run(c, m->stmts[i].text, &r, e);
        bool ddl = !rc && cql_result_schema_changed(r);
        cql_result_free(r);
        if (rc) {
            cs_err_prefix(e, "%s:%zu", m->file, m->stmts[i].line);
            if (i)
                cs_err_prefix(e, "%zu earlier statement(s) of this file stay applied; nothing after it ran", i);
            return rc;
        }
        if (ddl)
            rc = wait_schema_agreement(c, e);
    }
    long ms = (long)((now_s() - t0) * 1000);
    if (!rc)
        rc = record(c, m, ms, e);
    if (!rc) {
        m->applied = true;
        m->applied_now = true;
        m->changed = false;
        m->duration_ms = ms;
        c->res->applied_now++;
        cs_info("applied %s (%zu statements, %ld ms)", m->file, m->n_stmts, ms);
    }
    return rc;
}

static int apply_pending(migrate_ctx *c, cs_err *e)
{
    int rc = create_tracking(c, e);
    if (!rc)
        rc = take_lock(c, e);
    /* Another run may have applied files while this one waited. */
    if (!rc)
        rc = read_applied(c, e);
    if (!rc)
        rc = refuse_changed(c, e);
    char *use = cs_sprintf("USE \"%s\"", c->ks);
    if (!rc)
        rc = run(c, use, NULL, e);
    free(use);
    for (size_t i = 0; !rc && i < c->res->n; i++) {
        cs_migration *m = &c->res->items[i];
        if (m->applied && m->changed) /* --force-checksum: take the new content as applied */
            rc = record(c, m, m->duration_ms, e);
        else if (!m->applied)
            rc = apply_one(c, m, e);
    }
    release_lock(c);
    return rc;
}

/* ---- the op ---- */

static int migrate(const cs_host *host, const cs_migrate_req *req, bool status_only, cs_migrate_result *res,
                   cs_err *e)
{
    memset(res, 0, sizeof *res);
    res->dry_run = req->dry_run;
    res->status_only = status_only;
    migrate_ctx c = { .req = req, .res = res };
    cs_cql_opts cql_opts;
    cs_ops_cql_opts(host, "migrate", &cql_opts);
    c.ks = req->keyspaces.items[0];
    int rc = cql_consistency_parse(req->cql_consistency, &c.consistency, e);
    if (!rc)
        rc = read_dir(&c, e);
    if (!rc)
        rc = cs_cluster_connect(&cql_opts, &c.conn, e);
    bool ks_exists = false;
    if (!rc)
        rc = keyspace_exists(&c, &ks_exists, e);
    if (!rc && !ks_exists)
        rc = cs_err_set(e, CS_E_NOTFOUND,
                        "keyspace %s does not exist: create it first (CREATE KEYSPACE %s WITH replication = ...)", c.ks,
                        c.ks);
    if (!rc)
        rc = read_applied(&c, e);
    if (!rc && !res->status_only)
        rc = refuse_changed(&c, e);
    if (!rc && !res->status_only && !res->dry_run) {
        char host_name[64] = "";
        gethostname(host_name, sizeof host_name - 1);
        uint32_t rnd = randombytes_random();
        snprintf(c.owner, sizeof c.owner, "%s:%ld:%08x", host_name, (long)getpid(), rnd);
        rc = apply_pending(&c, e);
    }
    cql_close(c.conn);
    return rc ? cs_err_prefix(e, "migrate") : 0;
}

int cs_op_migrate(cs_job *job, const cs_host *host, const cs_migrate_req *req, cs_migrate_result *res, cs_err *e)
{
    (void)job;
    return migrate(host, req, false, res, e);
}

int cs_op_migrate_status(cs_job *job, const cs_host *host, const cs_migrate_req *req, cs_migrate_result *res,
                         cs_err *e)
{
    (void)job;
    return migrate(host, req, true, res, e);
}

void cs_migrate_result_free(cs_migrate_result *res)
{
    for (size_t i = 0; i < res->n; i++) {
        cs_migration *m = &res->items[i];
        free(m->version);
        free(m->name);
        free(m->file);
        free(m->path);
        cql_statements_free(m->stmts, m->n_stmts);
    }
    free(res->items);
    cs_strlist_free(&res->unknown);
    memset(res, 0, sizeof *res);
}

/* ---- schema dump ---- */

static bool wanted(const cs_schema_req *req, const char *ks)
{
    return !req->keyspaces.n || cs_strlist_has(&req->keyspaces, ks);
}

int cs_op_schema_dump(cs_job *job, const cs_host *host, const cs_schema_req *req, cs_schema_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    cs_buf *out = &res->text;
    cql_conn *conn = NULL;
    json_t *rows = NULL;
    cs_cql_opts cql_opts;
    cs_ops_cql_opts(host, "schema dump", &cql_opts);
    int rc = cs_cluster_connect(&cql_opts, &conn, e);
    if (!rc)
        rc = cs_node_read_schema(conn, &rows, e);
    cql_close(conn);
    cs_strlist seen = { NULL, 0 };
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *ks = json_string_value(json_object_get(row, "keyspace"));
        const char *cql = json_string_value(json_object_get(row, "cql"));
        if (!ks || !cql || !wanted(req, ks))
            continue;
        if (!cs_strlist_has(&seen, ks))
            cs_strlist_add(&seen, ks);
        size_t n = strlen(cql);
        while (n && (cql[n - 1] == '\n' || cql[n - 1] == ' '))
            n--;
        cs_buf_add(out, cql, n);
        cs_buf_addstr(out, n && cql[n - 1] == ';' ? "\n\n" : ";\n\n");
    }
    json_decref(rows);
    for (size_t k = 0; !rc && k < req->keyspaces.n; k++)
        if (!cs_strlist_has(&seen, req->keyspaces.items[k]))
            rc = cs_err_set(e, CS_E_USAGE, "keyspace %s does not exist", req->keyspaces.items[k]);
    cs_strlist_free(&seen);
    return rc ? cs_err_prefix(e, "schema dump") : 0;
}

void cs_schema_result_free(cs_schema_result *res)
{
    cs_buf_free(&res->text);
}

/* drill.c - cluster drill: a restore drill of a whole cluster (see cluster.h).
 *
 * The backup set: the one named, else the newest complete set of this
 * cluster. Scratch keyspaces an earlier drill left (cassette_drill_...) are
 * dropped first. The chosen tables of every node's backup are restored by
 * that node's agent into cassette_drill_<id>_<ks> on the same node (the
 * cluster restore in place, with a keyspace map: the first node alone makes
 * the keyspaces, then the others); the time from the restore's start to the
 * last node's import is the RTO achieved. Each table is then compared with
 * its live table over CQL at QUORUM (ops/drill.h), and the scratch
 * keyspaces are dropped once, over CQL, and the "dropped-..." snapshots
 * Cassandra takes of them are cleared on every node by its agent (in those
 * keyspaces only). A table some node could not restore (a damaged object:
 * the node's reason names the file) is reported and not checked. */
#include "cluster/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "cassandra/cql.h"
#include "cassandra/node.h"
#include "cluster/coord.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "ops/drill.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo/set.h"

#define DROPPED_PREFIX "dropped-" /* Cassandra's auto_snapshot of what is dropped */

typedef struct cdrill {
    cs_job *job;
    const cs_host *host;
    const cs_cluster_drill_req *req;
    cs_cluster_drill_result *res;
    cql_conn *conn;
    cs_strlist keyspace_map; /* "SRC=DST" */
} cdrill;

static int connect_cluster(cdrill *d, cs_err *e)
{
    cs_cql_opts o;
    cs_ops_cql_opts(d->host, "cluster drill", &o);
    if (d->req->contact && *d->req->contact)
        o.hosts = d->req->contact;
    int rc = cs_cluster_connect(&o, &d->conn, e);
    cql_result *r = NULL;
    if (!rc)
        rc = cql_query(d->conn, "SELECT cluster_name FROM system.local", &r, e);
    const char *name = rc ? NULL : cql_result_text(r, 0, "cluster_name");
    if (name)
        d->res->cluster = cs_strdup(name);
    cql_result_free(r);
    return rc;
}

/* ---- the backup and its tables ---- */

static int choose_backup(cdrill *d, cs_repo *repo, cs_err *e)
{
    cs_cluster_drill_result *res = d->res;
    if (d->req->backup) {
        cs_backup_set set;
        memset(&set, 0, sizeof set);
        int rc = cs_repo_read_set(repo, d->req->backup, &set, e);
        if (rc == CS_E_NOTFOUND)
            rc = cs_err_set(e, CS_E_NOTFOUND, "there is no cluster backup named %s (cassette list shows the backups)",
                            d->req->backup);
        if (!rc) {
            res->backup = cs_strdup(d->req->backup);
            res->backup_started = set.started;
        }
        cs_backup_set_free(&set);
        return rc;
    }
    cs_coord_sets sets;
    int rc = cs_coord_read_sets(repo, res->cluster, &sets, e);
    if (!rc && !sets.newest)
        rc = cs_err_set(e, CS_E_NOTFOUND, "the repository holds no complete cluster backup of cluster %s",
                        res->cluster ? res->cluster : "?");
    if (!rc) {
        res->backup = sets.newest;
        res->backup_started = sets.newest_started;
        sets.newest = NULL;
    }
    cs_coord_sets_free(&sets);
    return rc;
}

static bool table_wanted(const cs_cluster_drill_req *req, const char *ks, const char *table)
{
    if (cs_node_is_system_keyspace(ks) || !strncmp(ks, CS_DRILL_PREFIX, strlen(CS_DRILL_PREFIX)))
        return false;
    if (!req->keyspaces.n && !req->tables.n)
        return true;
    if (cs_strlist_has(&req->keyspaces, ks))
        return true;
    char *full = cs_sprintf("%s.%s", ks, table);
    bool yes = cs_strlist_has(&req->tables, full);
    free(full);
    return yes;
}

/* "ks.table" of every table some node's backup of the set holds: the
 * cluster manifest's schema is the whole cluster's, also of keyspaces a
 * backup with --keyspace left out. */
static int backed_up_tables(cs_repo *repo, const char *backup, const json_t *m, cs_strlist *out, cs_err *e)
{
    size_t i;
    json_t *node;
    json_array_foreach(json_object_get(m, "nodes"), i, node) {
        const char *host_id = json_string_value(json_object_get(node, "host_id"));
        if (!json_is_true(json_object_get(node, "ok")) || !host_id)
            continue;
        cs_manifest nm;
        memset(&nm, 0, sizeof nm);
        int rc = cs_repo_read_manifest(repo, backup, host_id, &nm, e);
        for (size_t t = 0; !rc && t < nm.n_tables; t++) {
            char *full = cs_sprintf("%s.%s", nm.tables[t].keyspace, nm.tables[t].table);
            if (!cs_strlist_has(out, full))
                cs_strlist_add(out, full);
            free(full);
        }
        cs_manifest_free(&nm);
        if (rc)
            return rc;
    }
    return 0;
}

/* The tables of the set's schema (the cluster manifest's) that its nodes
 * backed up, to drill. */
static int choose_tables(cdrill *d, cs_repo *repo, cs_err *e)
{
    cs_cluster_drill_result *res = d->res;
    json_t *m = NULL;
    int rc = cs_cluster_read_manifest(repo, res->backup, &m, e);
    if (rc)
        return rc;
    cs_strlist held = { NULL, 0 };
    rc = backed_up_tables(repo, res->backup, m, &held, e);
    if (rc) {
        json_decref(m);
        cs_strlist_free(&held);
        return rc;
    }
    cs_strlist all = { NULL, 0 };
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(m, "schema"), i, row) {
        const char *type = json_string_value(json_object_get(row, "type"));
        const char *ks = json_string_value(json_object_get(row, "keyspace"));
        const char *name = json_string_value(json_object_get(row, "name"));
        if (type && !strcmp(type, "table") && ks && name && cs_node_is_valid_name(ks) &&
            cs_node_is_valid_name(name) && table_wanted(d->req, ks, name)) {
            char *full_ = cs_sprintf("%s.%s", ks, name);
            bool in_backup = cs_strlist_has(&held, full_);
            free(full_);
            if (!in_backup)
                continue;
            if (!cs_drill_table_is_live(d->conn, ks, name)) {
                cs_info("%s.%s is not live any more: nothing to compare it with, left out", ks, name);
                continue;
            }
            char *full = cs_sprintf("%s.%s", ks, name);
            if (!cs_strlist_has(&all, full))
                cs_strlist_add(&all, full);
            free(full);
        }
    }
    json_decref(m);
    cs_strlist_free(&held);
    cs_drill_pick_tables(&all, d->req->sample_tables > 0 ? (size_t)d->req->sample_tables : 0, &res->tables);
    cs_strlist_free(&all);
    if (!res->tables.n)
        return cs_err_set(e, CS_E_USAGE, "backup %s holds no live table to drill (only system keyspaces, or none of "
                          "{keyspaces} and {tables})", res->backup);
    return 0;
}

/* The scratch keyspace of each keyspace drilled, and the restore's map. */
static int name_scratch(cdrill *d, cs_err *e)
{
    cs_drill_new_id(d->res->drill_id);
    int rc = cs_drill_scratch_map(d->res->drill_id, &d->res->tables, &d->keyspace_map, &d->res->scratch_keyspaces, e);
    return rc ? rc : cs_restore_check_map(&d->keyspace_map, e);
}

static const char *scratch_of(const cdrill *d, const char *table, char *ks_out, size_t cap)
{
    size_t n = (size_t)(strchr(table, '.') - table);
    snprintf(ks_out, cap, "%.*s", (int)n, table);
    return cs_restore_map_lookup(&d->keyspace_map, ks_out);
}

/* ---- scratch keyspaces over CQL ---- */

/* Each DROP waits for every node to have the schema first: after an
 * interrupt a node may not have heard yet of a keyspace another one just
 * created, and a DROP ... IF EXISTS there does nothing (the keyspace then
 * arrives and stays; seen on the test cluster). Afterwards every node has
 * the drop, also after an interrupt (a second SIGINT exits at once). */
static int drop_keyspaces(cdrill *d, const cs_strlist *names, cs_err *e)
{
    if (!names->n)
        return 0;
    cs_err first;
    cs_err_clear(&first);
    (void)cs_node_settle_schema(d->conn, 30, &first); /* best effort: the drops are wanted anyway */
    int rc = 0;
    for (size_t i = 0; !rc && i < names->n; i++) {
        char *q = cs_sprintf("DROP KEYSPACE IF EXISTS \"%s\"", names->items[i]);
        cql_result *r = NULL;
        rc = cql_query_at(d->conn, q, CQL_CL_ONE, &r, e);
        cql_result_free(r);
        free(q);
    }
    if (!rc)
        rc = cs_node_settle_schema(d->conn, 60, e);
    return rc;
}

/* Scratch keyspaces an earlier drill left (killed, or kept). */
static int drop_leftovers(cdrill *d, cs_err *e)
{
    int rc = cs_drill_find_scratch(d->conn, &d->res->leftovers, e);
    if (!rc && d->res->leftovers.n) {
        cs_info("dropping %zu scratch keyspace%s of earlier drills", d->res->leftovers.n,
                d->res->leftovers.n == 1 ? "" : "s");
        rc = drop_keyspaces(d, &d->res->leftovers, e);
    }
    return rc;
}

/* ---- the restore ---- */

static int restore(cdrill *d, cs_err *e)
{
    const cs_cluster_drill_req *req = d->req;
    cs_cluster_restore_req r;
    memset(&r, 0, sizeof r);
    r.repo = req->repo;
    r.backup = d->res->backup;
    r.contact = req->contact;
    r.agents = req->agents;
    r.agent_template = req->agent_template;
    r.tables = d->res->tables;
    r.mode = "import";
    r.parallel_nodes = req->parallel_nodes;
    r.jobs = req->jobs;
    r.yes = true;
    r.lock_wait = req->lock_wait;
    r.lock_stale = req->lock_stale;
    r.keyspace_map = d->keyspace_map;
    double t0 = cs_now();
    d->res->restore_ran = true;
    int rc = cs_op_cluster_restore(d->job, d->host, &r, &d->res->restore, e);
    d->res->rto_seconds = cs_now() - t0;
    return rc;
}

/* Is name table's scratch copy ("cassette_drill_<id>_ks.t" for "ks.t")? */
static bool is_scratch_of(const cdrill *d, const char *name, const char *table)
{
    char ks[256];
    const char *scratch = scratch_of(d, table, ks, sizeof ks);
    size_t n = scratch ? strlen(scratch) : 0;
    return scratch && !strncmp(name, scratch, n) && name[n] == '.' && !strcmp(name + n + 1, strchr(table, '.') + 1);
}

/* Why table was not restored on some node, or NULL (a new string); *code:
 * that node's error (the restore's first damaged table's). */
static char *not_restored(const cdrill *d, const char *table, int *code)
{
    const cs_cluster_restore_result *rr = &d->res->restore;
    for (size_t i = 0; i < rr->n_moves; i++) {
        const cs_cluster_node *t = &rr->moves[i].target;
        if (t->ok)
            continue;
        *code = t->code ? t->code : CS_E_CORRUPT;
        size_t k;
        json_t *f;
        bool listed = false;
        json_array_foreach(json_object_get(t->result, "not_restored"), k, f) {
            const char *name = json_string_value(json_object_get(f, "table"));
            const char *why = json_string_value(json_object_get(f, "reason"));
            if (name && (!strcmp(name, table) || is_scratch_of(d, name, table)))
                return cs_sprintf("node %s: %s not restored: %s", cs_cluster_node_name(t), table, why ? why : "?");
            listed = true;
        }
        if (!listed) /* the node's restore failed as a whole */
            return cs_sprintf("node %s: %s not restored: %s", cs_cluster_node_name(t), table,
                              t->reason ? t->reason : "failed");
    }
    return NULL;
}

static void fail_first(cs_cluster_drill_result *res, int code, const char *why)
{
    if (res->failure)
        return;
    res->failure = cs_strdup(why);
    res->failure_code = code;
}

/* ---- the checks ---- */

static int check(cdrill *d, cs_err *e)
{
    cs_cluster_drill_result *res = d->res;
    res->reports = json_array();
    cs_job_phase(d->job, "check", res->tables.n, 0);
    cs_drill_opts o = {
        .sample_rows = d->req->sample_rows > 0 ? (size_t)d->req->sample_rows : 0,
        .consistency = CQL_CL_QUORUM,
        .backup_start_us = (int64_t)(res->backup_started * 1e6),
    };
    for (size_t i = 0; i < res->tables.n; i++) {
        const char *full = res->tables.items[i];
        char ks[256];
        const char *scratch = scratch_of(d, full, ks, sizeof ks);
        int code = 0;
        char *why = not_restored(d, full, &code);
        json_t *report = NULL;
        if (why) {
            report = json_pack("{s:s, s:b, s:s}", "table", full, "restored", 0, "reason", why);
            fail_first(res, code, why);
        } else {
            cs_err err;
            cs_err_clear(&err);
            if (cs_drill_check_table(d->conn, ks, strchr(full, '.') + 1, scratch, &o, d->job, &report, &err)) {
                if (err.code == CS_E_CANCELED || cs_cancel_requested()) {
                    free(why);
                    json_decref(report);
                    return cs_cancel_error(e);
                }
                char *msg = cs_sprintf("%s could not be checked: %s", full, err.msg);
                json_decref(report);
                report = json_pack("{s:s, s:b, s:b, s:s}", "table", full, "restored", 1, "checked", 0, "reason", msg);
                fail_first(res, err.code ? err.code : CS_E_EXTERNAL, msg);
                free(msg);
            }
        }
        if (why || !report || json_object_get(report, "reason"))
            cs_job_add_files(d->job, 1); /* a table checked counts itself (ops/drill.h) */
        free(why);
        json_array_append_new(res->reports, report);
    }
    return 0;
}

/* ---- clean up ---- */

typedef struct cleaner {
    cs_coord coord;
    cdrill *d;
    const cs_strlist *keyspaces;
} cleaner;

static int clear_one(void *arg, size_t i, cs_err *e)
{
    (void)e;
    cleaner *c = arg;
    cs_cluster_node *n = &c->d->res->cleaned[i];
    if (!n->ok || !n->agent || n->stopped)
        return 0;
    json_t *ks = json_array();
    for (size_t k = 0; k < c->keyspaces->n; k++)
        json_array_append_new(ks, json_string(c->keyspaces->items[k]));
    json_t *req = json_pack("{s:o, s:s}", "keyspaces", ks, "prefix", DROPPED_PREFIX);
    json_t *doc = NULL;
    cs_err err;
    cs_err_clear(&err);
    if (cs_coord_run(&c->coord, i, "snapshot clear", req, &doc, &err))
        cs_cluster_node_fail(n, &err);
    else
        n->result = doc;
    return 0;
}

static void problem(cs_cluster_drill_result *res, char *p /* taken */)
{
    cs_warn("%s", p);
    cs_strlist_add(&res->cleanup_problems, p);
    free(p);
}

/* The dropped keyspaces' snapshots on every node, by its agent. */
static void clear_dropped(cdrill *d, const cs_strlist *keyspaces)
{
    cs_cluster_drill_result *res = d->res;
    cleaner c = { .d = d, .keyspaces = keyspaces };
    cs_coord_target t = { d->req->contact, &d->req->agents, d->req->agent_template, NULL, 0, false };
    cs_err err;
    cs_err_clear(&err);
    if (cs_coord_open(&c.coord, d->job, d->host, &t, &err)) {
        problem(res, cs_sprintf("the snapshots of the dropped scratch keyspaces could not be cleared: %s", err.msg));
        cs_coord_close(&c.coord);
        return;
    }
    res->n_cleaned = c.coord.n;
    res->cleaned = cs_calloc(c.coord.n ? c.coord.n : 1, sizeof *res->cleaned);
    for (size_t i = 0; i < c.coord.n; i++)
        cs_cluster_node_copy(&res->cleaned[i], &c.coord.nodes[i]);
    cs_parallel_for(c.coord.n, (unsigned)(c.coord.n > 16 ? 16 : c.coord.n ? c.coord.n : 1), clear_one, &c, &err);
    for (size_t i = 0; i < res->n_cleaned; i++) {
        const cs_cluster_node *n = &res->cleaned[i];
        if (!n->ok || n->stopped)
            problem(res, cs_sprintf("node %s: the snapshots of the dropped scratch keyspaces are left: %s",
                                    cs_cluster_node_name(n), n->reason ? n->reason : "failed"));
        res->snapshots_cleared += json_array_size(json_object_get(n->result, "cleared_tags"));
    }
    cs_coord_close(&c.coord);
}

static void clean_up(cdrill *d)
{
    cs_cluster_drill_result *res = d->res;
    cs_job_phase(d->job, "clean up", 0, 0);
    cs_strlist dropped = { NULL, 0 };
    for (size_t i = 0; i < res->leftovers.n; i++)
        cs_strlist_add(&dropped, res->leftovers.items[i]);
    if (d->req->keep) {
        res->kept = true;
    } else if (d->conn) {
        cs_err err;
        cs_err_clear(&err);
        if (drop_keyspaces(d, &res->scratch_keyspaces, &err))
            problem(res, cs_sprintf("the scratch keyspaces could not be dropped: %s", err.msg));
        for (size_t i = 0; i < res->scratch_keyspaces.n; i++)
            cs_strlist_add(&dropped, res->scratch_keyspaces.items[i]);
    }
    if (dropped.n && cs_cancel_requested()) {
        cs_buf names = CS_BUF_INIT;
        for (size_t i = 0; i < dropped.n; i++)
            cs_buf_printf(&names, "%s%s", i ? "," : "", dropped.items[i]);
        problem(res, cs_sprintf("interrupted: the snapshots of the dropped scratch keyspaces stay on the nodes "
                                "(cassette snapshot clear --prefix dropped- --keyspace %s, on each node)",
                                cs_buf_str(&names)));
        cs_buf_free(&names);
    } else if (dropped.n) {
        clear_dropped(d, &dropped);
    }
    cs_strlist_free(&dropped);
}

/* ---- the operation ---- */

int cs_op_cluster_drill(cs_job *job, const cs_host *host, const cs_cluster_drill_req *req,
                        cs_cluster_drill_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    cdrill d = { .job = job, .host = host, .req = req, .res = res };
    cs_repo *repo = NULL;
    cs_job_phase(job, "prepare", 0, 0);
    int rc = connect_cluster(&d, e);
    if (!rc)
        rc = cs_ops_open_repo(host, req->repo, NULL, false, &repo, e);
    if (!rc)
        rc = choose_backup(&d, repo, e);
    if (!rc)
        rc = choose_tables(&d, repo, e);
    cs_repo_free(repo);
    if (!rc)
        rc = name_scratch(&d, e);
    if (!rc)
        rc = drop_leftovers(&d, e);
    if (!rc)
        rc = restore(&d, e);
    if (!rc)
        rc = check(&d, e);
    if (res->restore_ran || res->leftovers.n)
        clean_up(&d); /* also after an error: nothing of the drill is left */
    cql_close(d.conn);
    cs_strlist_free(&d.keyspace_map);
    res->seconds = cs_now() - t0;
    if (rc && cs_cancel_requested())
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted (its scratch keyspaces are dropped)");
    if (rc)
        cs_err_prefix(e, "cluster drill%s%s", res->backup ? " " : "", res->backup ? res->backup : "");
    return rc;
}

int cs_op_cluster_drill_verdict(const cs_cluster_drill_req *req, const cs_cluster_drill_result *res, cs_err *e)
{
    (void)req;
    int rc = 0;
    if (res->failure)
        rc = cs_err_set(e, res->failure_code ? res->failure_code : CS_E_EXTERNAL, "%s", res->failure);
    else if (res->reports)
        rc = cs_drill_reports_verdict(res->reports, e);
    if (rc)
        cs_err_prefix(e, "cluster drill %s", res->backup ? res->backup : "?");
    return rc;
}


json_t *cs_cluster_drill_result_json(const cs_cluster_drill_req *req, const cs_cluster_drill_result *res)
{
    (void)req;
    json_t *d = json_object();
    json_object_set_new(d, "backup", res->backup ? json_string(res->backup) : json_null());
    json_object_set_new(d, "cluster", res->cluster ? json_string(res->cluster) : json_null());
    json_object_set_new(d, "drill_id", res->drill_id[0] ? json_string(res->drill_id) : json_null());
    json_object_set_new(d, "backup_started", json_real(res->backup_started));
    json_object_set_new(d, "tables", res->reports ? json_incref(res->reports) : json_array());
    json_object_set_new(d, "rto_seconds", json_real(res->rto_seconds));
    json_object_set_new(d, "seconds", json_real(res->seconds));
    json_object_set_new(d, "scratch_keyspaces", cs_strlist_json(&res->scratch_keyspaces));
    json_object_set_new(d, "kept", json_boolean(res->kept));
    json_object_set_new(d, "leftovers_dropped", cs_strlist_json(&res->leftovers));
    /* per node: the cluster restore's record of its restore */
    json_t *restore = cs_cluster_restore_result_json(NULL, &res->restore);
    json_object_set_new(d, "nodes_restored", json_incref(json_object_get(restore, "nodes_restored")));
    json_object_set_new(d, "nodes", json_incref(json_object_get(restore, "nodes")));
    json_object_set_new(d, "bytes", json_incref(json_object_get(restore, "bytes")));
    json_decref(restore);
    json_t *cleaned = json_array();
    for (size_t i = 0; i < res->n_cleaned; i++) {
        const cs_cluster_node *n = &res->cleaned[i];
        json_t *tags = n->result ? json_object_get(n->result, "cleared_tags") : NULL;
        json_array_append_new(cleaned, json_pack("{s:s?, s:s?, s:b, s:s?, s:o}", "host_id", n->host_id, "address",
                                                 n->address, "ok", n->ok && !n->stopped, "reason", n->reason,
                                                 "cleared_tags", tags ? json_incref(tags) : json_array()));
    }
    json_object_set_new(d, "snapshots_cleared", json_integer((json_int_t)res->snapshots_cleared));
    json_object_set_new(d, "cleanup", cleaned);
    json_object_set_new(d, "cleanup_problems", cs_strlist_json(&res->cleanup_problems));
    return d;
}

void cs_cluster_drill_result_free(cs_cluster_drill_result *res)
{
    free(res->backup);
    free(res->cluster);
    cs_strlist_free(&res->tables);
    cs_strlist_free(&res->scratch_keyspaces);
    cs_strlist_free(&res->leftovers);
    cs_cluster_restore_result_free(&res->restore);
    json_decref(res->reports);
    for (size_t i = 0; i < res->n_cleaned; i++)
        cs_cluster_node_free(&res->cleaned[i]);
    free(res->cleaned);
    cs_strlist_free(&res->cleanup_problems);
    free(res->failure);
    memset(res, 0, sizeof *res);
}

/* drillop.c - cassette drill: a restore drill on this node (ops.h).
 *
 * Picks tables of a backup of this node (the newest complete one unless
 * named), restores them with the restore op into scratch keyspaces
 * (keyspace_map: cassette_drill_<id>_<ks>, new tables beside the live
 * ones), checks each against its live table (ops/drill.h), then drops the
 * scratch keyspaces, clears the snapshots Cassandra takes of dropped tables
 * (in those keyspaces only) and removes the keyspaces' directories. Scratch
 * keyspaces an earlier drill left are dropped first. The restore's time is
 * the RTO achieved. */
#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/node.h"
#include "common/fs.h"
#include "common/log.h"
#include "ops/aside.h"
#include "ops/drill.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"
#include "ops/optable.h"
#include "ops/snapshot.h"

typedef struct drill_ctx {
    cs_job *job;
    const cs_host *host;
    const cs_drill_req *req;
    cs_drill_result *res;
    cs_node_info node;
    cs_node_dirs dirs;
    cql_conn *conn;
    cs_nodetool *nt;
    cs_manifest m;
    cs_strlist tables;     /* "ks.table" to restore and check */
    cs_strlist map;        /* "ks=scratch" */
} drill_ctx;

/* ---- scratch keyspaces ---- */

/* The snapshots Cassandra took of the dropped tables of keyspace ks
 * (auto_snapshot: "dropped-<ms>-<table>"), cleared in ks only. */
static int clear_dropped_snapshots(drill_ctx *c, const char *ks, cs_err *e)
{
    char *name = (char *)ks;
    cs_strlist one = { &name, 1 }, old = { NULL, 0 }, young = { NULL, 0 };
    cs_snapshot_find_old_in(&c->dirs.data_dirs, &one, "dropped-", cs_now() + 86400.0, &old, &young);
    int rc = 0;
    for (size_t i = 0; !rc && i < old.n; i++) {
        bool cleared = false;
        rc = cs_snapshot_clear_in(c->nt, c->node.release_version, &c->dirs.data_dirs, &one, old.items[i], &cleared,
                                  e);
        if (!rc && cleared)
            cs_info("cleared snapshot %s of dropped scratch keyspace %s", old.items[i], ks);
    }
    cs_strlist_free(&old);
    cs_strlist_free(&young);
    return rc;
}

/* Drop keyspace ks (IF EXISTS), clear the snapshots of its dropped tables,
 * then remove its directories (nothing else lives there). */
static int drop_scratch(drill_ctx *c, const char *ks, cs_err *e)
{
    if (strncmp(ks, CS_DRILL_PREFIX, strlen(CS_DRILL_PREFIX)) || !cs_node_is_valid_name(ks))
        return cs_err_set(e, CS_E_INVAL, "%s is not a scratch keyspace (a bug)", ks);
    char *q = cs_sprintf("DROP KEYSPACE IF EXISTS \"%s\"", ks);
    cql_result *r = NULL;
    int rc = cql_query(c->conn, q, &r, e);
    cql_result_free(r);
    free(q);
    if (!rc)
        rc = clear_dropped_snapshots(c, ks, e);
    for (size_t i = 0; !rc && i < c->dirs.data_dirs.n; i++) {
        char *dir = cs_path_join(c->dirs.data_dirs.items[i], ks);
        if (cs_is_dir(dir))
            rc = cs_remove_tree(dir, e);
        free(dir);
    }
    if (rc)
        cs_err_prefix(e, "dropping scratch keyspace %s", ks);
    return rc;
}

/* Scratch keyspaces left by an earlier drill (killed, or --keep): in the
 * schema, or only their directories. */
static int drop_leftovers(drill_ctx *c, cs_err *e)
{
    cs_strlist old = { NULL, 0 };
    int rc = cs_drill_find_scratch(c->conn, &old, e);
    for (size_t d = 0; !rc && d < c->dirs.data_dirs.n; d++) {
        DIR *dir = opendir(c->dirs.data_dirs.items[d]);
        struct dirent *de;
        while (dir && (de = readdir(dir)) != NULL)
            if (!strncmp(de->d_name, CS_DRILL_PREFIX, strlen(CS_DRILL_PREFIX)) && cs_node_is_valid_name(de->d_name) &&
                !cs_strlist_has(&old, de->d_name))
                cs_strlist_add(&old, de->d_name);
        if (dir)
            closedir(dir);
    }
    for (size_t i = 0; !rc && i < old.n; i++) {
        cs_info("dropping scratch keyspace %s, left by an earlier drill", old.items[i]);
        rc = drop_scratch(c, old.items[i], e);
    }
    cs_strlist_free(&old);
    return rc;
}

/* ---- the backup and its tables ---- */

static int newest_backup(drill_ctx *c, cs_repo *repo, char **name, cs_err *e)
{
    cs_backup_entry *b = NULL;
    size_t n = 0;
    int rc = cs_repo_list_backups(repo, &b, &n, e);
    for (size_t i = n; !rc && i-- > 0;)
        if (b[i].complete && !b[i].damage && !strcmp(b[i].host_id, c->node.host_id)) {
            *name = cs_strdup(b[i].name);
            break;
        }
    if (!rc && !*name)
        rc = cs_err_set(e, CS_E_NOTFOUND, "the repository holds no complete backup of this node (host id %s)",
                        c->node.host_id);
    cs_backup_entries_free(b, n);
    return rc;
}

static int read_backup(drill_ctx *c, cs_err *e)
{
    cs_repo *repo = NULL;
    int rc = cs_ops_open_repo(c->host, c->req->repo, NULL, false, &repo, e);
    if (!rc)
        rc = cs_ops_require_identity(repo, e);
    c->res->backup = c->req->backup ? cs_strdup(c->req->backup) : NULL;
    if (!rc && !c->res->backup)
        rc = newest_backup(c, repo, &c->res->backup, e);
    if (!rc)
        rc = cs_repo_read_manifest(repo, c->res->backup, c->node.host_id, &c->m, e);
    if (rc == CS_E_NOTFOUND && c->req->backup)
        cs_err_prefix(e, "a drill restores a backup of this node (host id %s)", c->node.host_id);
    cs_repo_free(repo);
    return rc;
}

/* Tables of the backup that the drill may take: not Cassandra's, not an
 * earlier drill's, wanted by keyspaces and tables, still live. */
static int candidate_tables(drill_ctx *c, cs_strlist *out, cs_err *e)
{
    int rc = cs_restore_check_filters(&c->m, &c->req->keyspaces, &c->req->tables, e);
    for (size_t i = 0; !rc && i < c->m.n_tables; i++) {
        const cs_mtable *t = &c->m.tables[i];
        if (cs_node_is_system_keyspace(t->keyspace) || !strncmp(t->keyspace, CS_DRILL_PREFIX, strlen(CS_DRILL_PREFIX)) ||
            !cs_restore_table_wanted(&c->req->keyspaces, &c->req->tables, t))
            continue;
        if (!cs_drill_table_is_live(c->conn, t->keyspace, t->table)) {
            cs_info("%s.%s is not live any more: nothing to compare it with, left out", t->keyspace, t->table);
            continue;
        }
        char *full = cs_sprintf("%s.%s", t->keyspace, t->table);
        cs_strlist_add(out, full);
        free(full);
    }
    if (!rc && !out->n)
        rc = cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no live table of the node to drill with", c->m.backup);
    return rc;
}

static const char *scratch_of(const drill_ctx *c, const char *ks)
{
    return cs_restore_map_lookup(&c->map, ks);
}

/* ---- restore, check ---- */

static json_t *not_restored(const char *table, const char *reason)
{
    return json_pack("{s:s, s:b, s:s}", "table", table, "restored", false, "reason", reason);
}

/* The restore op, into the scratch keyspaces; tables it could not restore
 * (damaged objects) go into the reports, anything else is the error. */
static int restore(drill_ctx *c, cs_strlist *restored, cs_err *e)
{
    const cs_op_def *op = cs_op_find("restore");
    cs_restore_req *rq = cs_op_request_new(op, e);
    if (!rq)
        return e->code;
    rq->repo = cs_strdup(c->req->repo);
    rq->backup = cs_strdup(c->res->backup);
    rq->source_host = cs_strdup(c->node.host_id);
    rq->jobs = c->req->jobs;
    rq->lock_wait = c->req->lock_wait;
    rq->lock_stale = c->req->lock_stale;
    for (size_t i = 0; i < c->tables.n; i++)
        cs_strlist_add(&rq->tables, c->tables.items[i]);
    for (size_t i = 0; i < c->map.n; i++)
        cs_strlist_add(&rq->keyspace_map, c->map.items[i]);
    cs_restore_result *rr = NULL;
    cs_info("restoring %zu tables of backup %s into %s%s", c->tables.n, c->res->backup,
            c->res->scratch_keyspaces.items[0], c->res->scratch_keyspaces.n > 1 ? " and more" : "");
    int rc = cs_op_run(op, c->job, c->host, rq, (void **)&rr, e);
    c->res->rto_seconds = rr->seconds;
    for (size_t i = 0; i < rr->n_failed; i++) {
        json_array_append_new(c->res->tables, not_restored(rr->failed[i].table, rr->failed[i].reason));
        if (!c->res->restore_code)
            c->res->restore_code = rr->failed_code;
    }
    if (rc && rr->n_failed) { /* no table could be restored: the reports say why */
        cs_err_clear(e);
        rc = 0;
    }
    for (size_t i = 0; !rc && i < rr->restored.n; i++)
        cs_strlist_add(restored, rr->restored.items[i]);
    cs_op_result_free(op, rr);
    cs_op_request_free(op, rq);
    return rc;
}

static int check_tables(drill_ctx *c, const cs_strlist *restored, cs_err *e)
{
    cs_drill_opts o = { (size_t)c->req->sample_rows, CQL_CL_ONE, (int64_t)(c->m.started * 1e6) };
    cs_job_phase(c->job, "check", restored->n, 0); /* files: tables checked */
    int rc = 0;
    for (size_t i = 0; !rc && i < restored->n; i++) {
        const char *full = restored->items[i];
        char *ks = cs_strndup(full, strcspn(full, "."));
        json_t *report = NULL;
        rc = cs_drill_check_table(c->conn, ks, full + strlen(ks) + 1, scratch_of(c, ks), &o, c->job, &report, e);
        if (!rc)
            json_array_append_new(c->res->tables, report);
        free(ks);
    }
    return rc;
}

static void clean_up(drill_ctx *c)
{
    if (c->req->keep) {
        c->res->kept = true;
        for (size_t i = 0; i < c->res->scratch_keyspaces.n; i++)
            cs_info("keeping scratch keyspace %s (the next drill drops it)", c->res->scratch_keyspaces.items[i]);
        return;
    }
    cs_job_phase(c->job, "clean up", c->res->scratch_keyspaces.n, 0);
    for (size_t i = 0; i < c->res->scratch_keyspaces.n; i++) {
        cs_err err;
        cs_err_clear(&err);
        if (drop_scratch(c, c->res->scratch_keyspaces.items[i], &err))
            cs_warn("%s (the next drill drops it)", err.msg);
        cs_job_add_files(c->job, 1);
    }
}

static int connect_node(drill_ctx *c, cs_err *e)
{
    cs_cql_opts cql_opts;
    cs_ops_cql_opts(c->host, "drill", &cql_opts);
    int rc = cs_node_connect(&cql_opts, &c->conn, e);
    if (!rc)
        rc = cs_node_read_info(c->conn, &c->node, e);
    if (!rc && !c->node.host_id)
        rc = cs_err_set(e, CS_E_PROTO, "the node did not say its host id");
    if (!rc)
        rc = cs_ops_node_dirs(c->host, &c->node, &c->dirs, e);
    cs_nodetool_opts nodetool_opts;
    cs_ops_nodetool_opts(c->host, &nodetool_opts);
    if (!rc)
        rc = cs_nodetool_new(&nodetool_opts, &c->nt, e);
    return rc;
}

static int run_drill(drill_ctx *c, cs_err *e)
{
    cs_strlist all = { NULL, 0 }, restored = { NULL, 0 };
    cs_job_phase(c->job, "prepare", 0, 0);
    int rc = connect_node(c, e);
    if (!rc)
        rc = read_backup(c, e);
    if (!rc)
        rc = candidate_tables(c, &all, e);
    if (!rc) {
        cs_drill_pick_tables(&all, c->req->sample_tables > 0 ? (size_t)c->req->sample_tables : 0, &c->tables);
        rc = cs_drill_scratch_map(c->res->drill_id, &c->tables, &c->map, &c->res->scratch_keyspaces, e);
    }
    if (!rc)
        rc = drop_leftovers(c, e);
    bool made = false;
    if (!rc) {
        made = true; /* from here on the scratch keyspaces may exist */
        rc = restore(c, &restored, e);
    }
    if (!rc)
        rc = check_tables(c, &restored, e);
    if (made)
        clean_up(c);
    cs_strlist_free(&all);
    cs_strlist_free(&restored);
    return rc;
}

int cs_op_drill(cs_job *job, const cs_host *host, const cs_drill_req *req, cs_drill_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    res->tables = json_array();
    cs_drill_new_id(res->drill_id);
    drill_ctx c;
    memset(&c, 0, sizeof c);
    c.job = job;
    c.host = host;
    c.req = req;
    c.res = res;
    int rc = run_drill(&c, e);
    if (rc && cs_job_canceled(job))
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; the scratch keyspaces were dropped");
    if (rc)
        cs_err_prefix(e, "drill %s", res->drill_id);
    res->seconds = cs_now() - t0;
    cql_close(c.conn);
    cs_nodetool_free(c.nt);
    cs_node_info_free(&c.node);
    cs_node_dirs_free(&c.dirs);
    cs_manifest_free(&c.m);
    cs_strlist_free(&c.tables);
    cs_strlist_free(&c.map);
    return rc;
}

int cs_op_drill_verdict(const cs_drill_req *req, const cs_drill_result *res, cs_err *e)
{
    (void)req;
    size_t i;
    const json_t *r;
    json_array_foreach(res->tables, i, r) {
        if (json_is_false(json_object_get(r, "restored")))
            return cs_err_set(e, res->restore_code ? res->restore_code : CS_E_CORRUPT,
                              "drill of backup %s: %s could not be restored: %s", res->backup,
                              json_string_value(json_object_get(r, "table")),
                              json_string_value(json_object_get(r, "reason")));
    }
    int rc = cs_drill_reports_verdict(res->tables, e);
    if (rc)
        cs_err_prefix(e, "drill of backup %s", res->backup);
    return rc;
}

void cs_drill_result_free(cs_drill_result *res)
{
    free(res->backup);
    json_decref(res->tables);
    cs_strlist_free(&res->scratch_keyspaces);
    memset(res, 0, sizeof *res);
}

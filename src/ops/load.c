/* load.c - stream one source host's backed-up SSTables into a cluster with
 * Cassandra's own bulk loader (restore into a different topology).
 *
 * The files are downloaded and checked as restore downloads them
 * (cs_ops_fetch_file, the same staging root and stage names, so that
 * status and cleanup know a load's leftovers), table by table into
 * <stage>/<keyspace>/<table>/ (the layout sstableloader reads the table's
 * name from); the loader streams that directory to the replicas that own
 * each row, and the directory goes before the next table: the disk holds
 * one table at a time. Nothing of the node the load runs on is touched:
 * its data directory only lends the staging space. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/loader.h"
#include "cassandra/node.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "ops/aside.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"

typedef struct load_ctx {
    cs_job *job;
    const cs_host *host;
    const cs_load_req *req;
    cs_load_result *res;
    cs_repo *repo;
    cs_manifest m;
    bool *selected;         /* per manifest table */
    cs_strlist targets;     /* the request's, or the host's cql_host */
    char unique[CS_UNIQUE_MAX];
    /* the table being downloaded */
    const cs_mfile **files;
    size_t n_files;
    size_t *groups;  /* downloads: [start, end) of files, a file alone or the files of one pack */
    size_t n_groups;
    const char *dir;
} load_ctx;

/* ---- which host, which tables ---- */

/* {source_host}, else the backup's only host; a backup of several nodes
 * needs the operator (or the coordinator) to say whose files. */
static int read_source_manifest(load_ctx *c, cs_err *e)
{
    const char *backup = c->req->backup;
    if (c->req->source_host)
        return cs_repo_read_manifest(c->repo, backup, c->req->source_host, &c->m, e);
    cs_strlist hosts = { NULL, 0 };
    int rc = cs_repo_backup_hosts(c->repo, backup, &hosts, e);
    if (!rc && hosts.n > 1)
        rc = cs_restore_name_the_hosts(c->repo, backup, &hosts, e);
    if (!rc)
        rc = cs_repo_read_manifest(c->repo, backup, NULL, &c->m, e);
    cs_strlist_free(&hosts);
    return rc;
}

static int select_tables(load_ctx *c, cs_err *e)
{
    int rc = cs_restore_check_filters(&c->m, &c->req->keyspaces, &c->req->tables, e);
    if (rc)
        return rc;
    c->selected = cs_calloc(c->m.n_tables + 1, sizeof *c->selected);
    size_t n = 0;
    for (size_t i = 0; i < c->m.n_tables; i++) {
        const cs_mtable *t = &c->m.tables[i];
        if (!cs_restore_table_wanted(&c->req->keyspaces, &c->req->tables, t))
            continue;
        if (cs_node_is_system_keyspace(t->keyspace)) { /* the target cluster's own, never loaded */
            if (c->req->keyspaces.n || c->req->tables.n)
                return cs_err_set(e, CS_E_USAGE, "%s.%s is a system table: load never loads system keyspaces",
                                  t->keyspace, t->table);
            continue;
        }
        c->selected[i] = true;
        n++;
    }
    if (!n)
        return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no table to load", c->m.backup);
    return 0;
}

/* ---- the target cluster ---- */

static char *joined_targets(const load_ctx *c)
{
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < c->targets.n; i++)
        cs_buf_printf(&b, "%s%s", i ? "," : "", c->targets.items[i]);
    char *s = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return s;
}

/* The loader skips a directory whose table the cluster lacks and still
 * exits 0: look first, and say which table before anything is downloaded. */
static int check_target_schema(load_ctx *c, cs_err *e)
{
    cs_cql_opts o;
    cs_ops_cql_opts(c->host, "load", &o);
    char *hosts = joined_targets(c);
    o.hosts = hosts;
    cql_conn *conn = NULL;
    int rc = cs_cluster_connect(&o, &conn, e);
    for (size_t i = 0; !rc && i < c->m.n_tables; i++) {
        if (!c->selected[i])
            continue;
        const cs_mtable *t = &c->m.tables[i];
        /* Names were checked to be plain identifiers when the manifest was read. */
        char *q = cs_sprintf("SELECT id FROM system_schema.tables WHERE keyspace_name = '%s' AND table_name = '%s'",
                             t->keyspace, t->table);
        cql_result *r = NULL;
        rc = cql_query(conn, q, &r, e);
        if (!rc && cql_result_rows(r) == 0)
            rc = cs_err_set(e, CS_E_NOTFOUND, "table %s.%s does not exist on the target cluster (%s): create its "
                                              "schema first (cluster restore does)", t->keyspace, t->table, hosts);
        cql_result_free(r);
        free(q);
    }
    cql_close(conn);
    free(hosts);
    return rc;
}

/* ---- one table ---- */

/* Runs on a worker thread: touches only its own files. */
static int fetch_one(void *arg, size_t i, cs_err *e)
{
    load_ctx *c = arg;
    size_t from = c->groups[2 * i], n = c->groups[2 * i + 1] - from;
    /* Through the page cache (no CS_FILE_DIRECT): sstableloader reads the
     * staged file right after, from there. */
    int rc = cs_ops_fetch_files(c->repo, &c->files[from], n, c->dir, 0, e);
    if (!rc)
        cs_job_add_files(c->job, n);
    return rc;
}

/* Packed files first, by object: a pack's files side by side. */
static int by_object(const void *a, const void *b)
{
    const cs_mfile *x = *(const cs_mfile *const *)a, *y = *(const cs_mfile *const *)b;
    if (cs_mfile_packed(x) != cs_mfile_packed(y))
        return cs_mfile_packed(x) ? -1 : 1;
    return cs_mfile_packed(x) ? strcmp(x->object, y->object) : 0;
}

/* One download per pack (its files in one request), one per other file. */
static void group_files(load_ctx *c)
{
    qsort(c->files, c->n_files, sizeof *c->files, by_object);
    c->groups = cs_calloc(2 * c->n_files + 2, sizeof *c->groups);
    c->n_groups = 0;
    for (size_t i = 0; i < c->n_files;) {
        size_t k = i + 1;
        while (k < c->n_files && cs_mfile_packed(c->files[i]) && cs_mfile_packed(c->files[k]) &&
               !strcmp(c->files[i]->object, c->files[k]->object))
            k++;
        c->groups[2 * c->n_groups] = i;
        c->groups[2 * c->n_groups + 1] = k;
        c->n_groups++;
        i = k;
    }
}

/* Every file of table t into dir, --jobs at a time. Secondary index files
 * (in subdirectories) are left out: the nodes that receive the rows build
 * their indexes from them. */
static int download_table(load_ctx *c, const cs_mtable *t, const char *dir, cs_load_table *out, cs_err *e)
{
    c->files = cs_calloc(t->n_files + 1, sizeof *c->files);
    c->n_files = 0;
    c->dir = dir;
    out->files = out->bytes = 0;
    for (size_t j = 0; j < t->n_files; j++)
        if (!strchr(t->files[j].name, '/')) {
            c->files[c->n_files++] = &t->files[j];
            out->files++;
            out->bytes += t->files[j].size;
        }
    cs_job_phase(c->job, "download", out->files, out->bytes); /* bytes: cs_ops_fetch_object's, as they stream */
    group_files(c);
    int rc = cs_parallel_for(c->n_groups, (unsigned)c->req->jobs, fetch_one, c, e);
    free(c->groups);
    c->groups = NULL;
    free(c->files);
    c->files = NULL;
    return rc;
}

/* Damage in the repository fails its table only; anything else (the disk,
 * the network) would fail the next ones too. */
static bool is_table_damage(int code)
{
    return code == CS_E_CORRUPT || code == CS_E_NOTFOUND || code == CS_E_NOKEY;
}

static void loader_opts(const load_ctx *c, cs_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->command = c->host->sstableloader;
    o->targets = &c->targets;
    o->port = c->host->cql_port > 0 && c->host->cql_port != 9042 ? (int)c->host->cql_port : 0;
    o->user = c->host->cql_user;
    o->password = c->host->cql_password;
}

/* Download table i into <stage>/<ks>/<table>, load it, remove it. */
static int load_table(load_ctx *c, size_t i, const char *stage, cs_load_table *out, cs_err *e)
{
    const cs_mtable *t = &c->m.tables[i];
    double t0 = cs_now();
    char *ksdir = cs_path_join(stage, t->keyspace);
    char *dir = cs_path_join(ksdir, t->table);
    cs_job_item(c->job, out->table);
    int rc = cs_mkdirs(dir, 0755, e);
    if (!rc)
        rc = download_table(c, t, dir, out, e);
    if (!rc) {
        cs_loader_opts o;
        loader_opts(c, &o);
        cs_job_phase(c->job, "load", 1, out->bytes);
        rc = cs_loader_run(&o, dir, e);
        if (!rc) {
            cs_job_add_files(c->job, 1);
            cs_job_add_bytes(c->job, out->bytes);
        }
    }
    cs_err rm;
    cs_err_clear(&rm);
    if (cs_remove_tree(ksdir, &rm)) /* one table on disk at a time */
        cs_warn("%s", rm.msg);
    out->seconds = cs_now() - t0;
    free(dir);
    free(ksdir);
    return rc;
}

static void table_failed(load_ctx *c, cs_load_table *t, int code, const char *why)
{
    t->reason = cs_strdup(why);
    if (!c->res->failed_code)
        c->res->failed_code = code == CS_E_NOTFOUND ? CS_E_CORRUPT : code;
    cs_info("%s is not loaded: %s", t->table, why);
}

/* Table by table; a damaged table or one the loader refuses is named and
 * the others go on; anything else stops the load. */
static int load_tables(load_ctx *c, const char *stage, cs_err *e)
{
    cs_load_result *r = c->res;
    r->per_table = cs_calloc(c->m.n_tables + 1, sizeof *r->per_table);
    int rc = 0;
    for (size_t i = 0; !rc && i < c->m.n_tables; i++) {
        if (!c->selected[i])
            continue;
        if (cs_job_canceled(c->job))
            return cs_err_set(e, CS_E_CANCELED, "interrupted");
        cs_load_table *t = &r->per_table[r->n_tables++];
        t->table = cs_sprintf("%s.%s", c->m.tables[i].keyspace, c->m.tables[i].table);
        rc = load_table(c, i, stage, t, e);
        if (!rc) {
            t->loaded = true;
            r->tables++;
            r->files += t->files;
            r->bytes += t->bytes;
        } else if (is_table_damage(rc) || rc == CS_E_EXTERNAL) {
            table_failed(c, t, rc, e->msg);
            cs_err_clear(e);
            rc = 0;
        } else {
            cs_err_prefix(e, "%s", t->table);
        }
    }
    if (!rc && !r->tables) {
        const cs_load_table *f = &r->per_table[0];
        rc = cs_err_set(e, r->failed_code, "no table could be loaded: %s: %s", f->table, f->reason);
    }
    return rc;
}

/* ---- where to download ---- */

/* {staging_dir}, else the node's first data directory (from the host's
 * settings, else asked from the node): restore's staging root. */
static int staging_root(load_ctx *c, char **root, cs_err *e)
{
    cs_node_dirs dirs;
    memset(&dirs, 0, sizeof dirs);
    int rc = 0;
    if (!c->host->staging_dir) {
        rc = cs_ops_node_dirs(c->host, NULL, &dirs, e);
        if (!rc && !dirs.data_dirs.n) {
            cs_node_info node;
            memset(&node, 0, sizeof node);
            cs_node_dirs_free(&dirs);
            rc = cs_ops_read_node(c->host, "load", &node, NULL, e);
            if (!rc)
                rc = cs_ops_node_dirs(c->host, &node, &dirs, e);
            cs_node_info_free(&node);
            if (rc)
                cs_err_prefix(e, "where to download (set {staging_dir})");
        }
    }
    if (!rc)
        rc = cs_restore_staging_root(c->host, &dirs, root, e);
    cs_node_dirs_free(&dirs);
    return rc;
}

/* ---- the operation ---- */

static int run_load(load_ctx *c, cs_err *e)
{
    int rc = cs_ops_open_repo(c->host, c->req->repo, NULL, false, &c->repo, e);
    if (!rc)
        rc = cs_ops_require_identity(c->repo, e);
    /* Shared: a purge must not delete objects while they are read. */
    cs_lock *lock = NULL;
    char *purpose = cs_sprintf("load %s", c->req->backup);
    cs_job_phase(c->job, "lock", 0, 0);
    if (!rc)
        rc = cs_ops_lock(&(cs_ops_lock_opts){ c->req->lock_wait, c->req->lock_stale, false }, c->repo,
                         CS_LOCK_SHARED, purpose, &lock, e);
    free(purpose);
    if (!rc)
        cs_job_phase(c->job, "manifest", 0, 0);
    if (!rc)
        rc = read_source_manifest(c, e);
    if (!rc)
        rc = select_tables(c, e);
    if (!rc) {
        c->res->source_host = cs_strdup(c->m.host_id);
        cs_job_phase(c->job, "schema", 0, 0);
        rc = check_target_schema(c, e);
    }
    char *root = NULL, *stage = NULL;
    if (!rc)
        rc = staging_root(c, &root, e);
    if (!rc) {
        cs_restore_unique(c->unique);
        rc = cs_restore_make_stage(root, c->unique, &stage, e);
    }
    if (!rc)
        rc = load_tables(c, stage, e);
    if (stage) {
        cs_err rm;
        cs_err_clear(&rm);
        if (cs_remove_tree(stage, &rm))
            cs_warn("%s", rm.msg);
    }
    free(stage);
    free(root);
    cs_lock_release(lock);
    return rc;
}

int cs_op_load(cs_job *job, const cs_host *host, const cs_load_req *req, cs_load_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    load_ctx c;
    memset(&c, 0, sizeof c);
    c.job = job;
    c.host = host;
    c.req = req;
    c.res = res;
    for (size_t i = 0; i < req->targets.n; i++)
        cs_strlist_add(&c.targets, req->targets.items[i]);
    if (!c.targets.n)
        cs_strlist_add(&c.targets, host->cql_host ? host->cql_host : "127.0.0.1");
    for (size_t i = 0; i < c.targets.n; i++)
        cs_strlist_add(&res->targets, c.targets.items[i]);
    int rc = run_load(&c, e);
    if (rc && cs_job_canceled(job))
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; the staged downloads were removed, tables loaded already "
                                          "stay loaded");
    if (rc)
        cs_err_prefix(e, "load %s", req->backup);
    res->seconds = cs_now() - t0;
    free(c.selected);
    cs_strlist_free(&c.targets);
    cs_manifest_free(&c.m);
    cs_repo_free(c.repo);
    return rc;
}

int cs_op_load_verdict(const cs_load_req *req, const cs_load_result *res, cs_err *e)
{
    size_t failed = res->n_tables - res->tables;
    if (!failed)
        return 0;
    const cs_load_table *first = NULL;
    for (size_t i = 0; !first && i < res->n_tables; i++)
        if (!res->per_table[i].loaded)
            first = &res->per_table[i];
    return cs_err_set(e, res->failed_code, "load %s: %zu of %zu tables not loaded: %s (%s)%s", req->backup, failed,
                      res->n_tables, first->table, first->reason, failed > 1 ? " and more, listed above" : "");
}

void cs_load_result_free(cs_load_result *res)
{
    free(res->source_host);
    cs_strlist_free(&res->targets);
    for (size_t i = 0; i < res->n_tables; i++) {
        free(res->per_table[i].table);
        free(res->per_table[i].reason);
    }
    free(res->per_table);
    memset(res, 0, sizeof *res);
}

/* restore.c - bring a backup back into a node: import (running node) or
 * replace (stopped node). Nothing live is ever deleted: replace moves what
 * is there aside first, import only adds SSTables. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cassandra/node.h"
#include "cassandra/nodetool.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "io/sink.h"
#include "ops/ops.h"
#include "ops/state.h"

/* A file to download into dir, planned first and then placed --jobs at a
 * time. */
typedef struct placement {
    const cs_mtable *t;
    const cs_mfile *f;
    char *dir;
    bool done;
} placement;

typedef struct restore_ctx {
    const cs_config *cfg;
    cs_repo *repo;
    cs_manifest m;
    bool *selected;        /* per manifest table */
    cs_restore_result *res;
    placement *plan;
    size_t n_plan;
} restore_ctx;

static bool is_replace(const cs_config *cfg)
{
    return !strcmp(cfg->mode, "replace");
}

static int check_args(const cs_config *cfg, cs_err *e)
{
    if (!cfg->repo)
        return cs_err_set(e, CS_E_USAGE, "restore needs --repo");
    if (!cfg->backup)
        return cs_err_set(e, CS_E_USAGE, "restore needs --backup NAME (see cassette list)");
    if (strcmp(cfg->mode, "import") && strcmp(cfg->mode, "replace"))
        return cs_err_set(e, CS_E_USAGE, "--mode must be import or replace, not \"%s\"", cfg->mode);
    if (cfg->jobs < 1 || cfg->jobs > 64)
        return cs_err_set(e, CS_E_USAGE, "--jobs must be between 1 and 64");
    return 0;
}

/* ---- choosing tables ---- */

static bool table_wanted(const cs_config *cfg, const cs_mtable *t)
{
    if (!cfg->keyspaces.n && !cfg->tables.n)
        return true;
    if (cs_strlist_has(&cfg->keyspaces, t->keyspace))
        return true;
    char *full = cs_sprintf("%s.%s", t->keyspace, t->table);
    bool hit = cs_strlist_has(&cfg->tables, full);
    free(full);
    return hit;
}

static int check_filters_exist(restore_ctx *c, cs_err *e)
{
    for (size_t i = 0; i < c->cfg->keyspaces.n; i++) {
        const char *ks = c->cfg->keyspaces.items[i];
        bool found = false;
        for (size_t j = 0; j < c->m.n_tables && !found; j++)
            found = !strcmp(c->m.tables[j].keyspace, ks);
        if (!found)
            return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no keyspace %s", c->m.backup, ks);
    }
    for (size_t i = 0; i < c->cfg->tables.n; i++) {
        const char *full = c->cfg->tables.items[i];
        const char *dot = strchr(full, '.');
        char *ks = dot ? cs_strndup(full, (size_t)(dot - full)) : NULL;
        bool found = dot && cs_manifest_find_table(&c->m, ks, dot + 1);
        free(ks);
        if (!found)
            return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no table %s%s", c->m.backup, full,
                              dot ? "" : " (write it as KEYSPACE.TABLE)");
    }
    return 0;
}

static int select_tables(restore_ctx *c, cs_err *e)
{
    int rc = check_filters_exist(c, e);
    if (rc)
        return rc;
    c->selected = cs_calloc(c->m.n_tables ? c->m.n_tables : 1, sizeof *c->selected);
    bool import = !is_replace(c->cfg);
    bool explicit = c->cfg->keyspaces.n || c->cfg->tables.n;
    for (size_t i = 0; i < c->m.n_tables; i++) {
        const cs_mtable *t = &c->m.tables[i];
        if (!table_wanted(c->cfg, t))
            continue;
        if (import && cs_node_is_system_keyspace(t->keyspace)) {
            if (explicit)
                return cs_err_set(e, CS_E_INVAL, "%s.%s is a system table: restore it with --mode replace",
                                  t->keyspace, t->table);
            continue;
        }
        c->selected[i] = true;
        c->res->tables++;
    }
    if (c->res->tables == 0)
        return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no table to restore", c->m.backup);
    return 0;
}

/* ---- placing one file ---- */

/* Runs on a worker thread: touches only its own file. */
static int place_file(restore_ctx *c, const cs_mfile *f, const char *dir, cs_err *e)
{
    char *path = cs_path_join(dir, f->name);
    char *parent = cs_dirname(path);
    cs_sink *out = NULL;
    int rc = cs_mkdirs(parent, 0755, e);
    if (!rc) {
        out = cs_file_sink_new(path, 0644, e);
        rc = out ? 0 : e->code;
    }
    if (!rc)
        rc = cs_ops_fetch_object(c->repo, f, out, e); /* takes out */
    else
        cs_sink_free(out);
    if (rc)
        cs_err_prefix(e, "%s", f->name);
    free(parent);
    free(path);
    return rc;
}

static void plan_file(restore_ctx *c, const cs_mtable *t, const cs_mfile *f, char *dir /* taken */)
{
    c->plan = cs_realloc(c->plan, (c->n_plan + 1) * sizeof *c->plan);
    c->plan[c->n_plan++] = (placement){ t, f, dir, false };
}

static int place_run(void *arg, size_t i, cs_err *e)
{
    restore_ctx *c = arg;
    placement *p = &c->plan[i];
    int rc = place_file(c, p->f, p->dir, e);
    if (rc)
        cs_err_prefix(e, "%s.%s", p->t->keyspace, p->t->table);
    p->done = rc == 0;
    return rc;
}

static int by_size_desc(const void *a, const void *b)
{
    const placement *x = a, *y = b;
    return x->f->size < y->f->size ? 1 : x->f->size > y->f->size ? -1 : 0;
}

static void free_plan(restore_ctx *c)
{
    for (size_t i = 0; i < c->n_plan; i++)
        free(c->plan[i].dir);
    free(c->plan);
    c->plan = NULL;
    c->n_plan = 0;
}

/* Download every planned file, the largest first, --jobs at a time. */
static int place_planned(restore_ctx *c, cs_err *e)
{
    if (c->n_plan > 1)
        qsort(c->plan, c->n_plan, sizeof *c->plan, by_size_desc);
    int rc = cs_parallel_for(c->n_plan, (unsigned)c->cfg->jobs, place_run, c, e);
    for (size_t i = 0; i < c->n_plan; i++)
        if (c->plan[i].done) {
            c->res->files++;
            c->res->bytes += c->plan[i].f->size;
        }
    free_plan(c);
    return rc;
}

/* ---- import ---- */

/* "CREATE TABLE x" -> "CREATE TABLE IF NOT EXISTS x", so that restoring
 * into a node that has the schema already changes nothing. */
static char *if_not_exists(const char *cql)
{
    static const char *const kinds[] = { "CREATE KEYSPACE ", "CREATE TYPE ", "CREATE TABLE ",
                                         "CREATE CUSTOM INDEX ", "CREATE INDEX " };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i]);
        if (!strncmp(cql, kinds[i], n)) {
            if (!strncmp(cql + n, "IF NOT EXISTS ", 14))
                return cs_strdup(cql);
            return cs_sprintf("%sIF NOT EXISTS %s", kinds[i], cql + n);
        }
    }
    return NULL;
}

static bool index_is_on(const char *cql, const char *ks, const char *table)
{
    char *needle = cs_sprintf(" ON %s.%s ", ks, table);
    char *needle2 = cs_sprintf(" ON %s.%s(", ks, table);
    bool hit = strstr(cql, needle) || strstr(cql, needle2);
    free(needle);
    free(needle2);
    return hit;
}

static bool schema_row_needed(restore_ctx *c, const char *ks, const char *type, const char *name, const char *cql)
{
    for (size_t i = 0; i < c->m.n_tables; i++) {
        const cs_mtable *t = &c->m.tables[i];
        if (!c->selected[i] || strcmp(t->keyspace, ks))
            continue;
        if (!strcmp(type, "keyspace") || !strcmp(type, "type"))
            return true;
        if (!strcmp(type, "table") && !strcmp(name, t->table))
            return true;
        if (!strcmp(type, "index") && index_is_on(cql, ks, t->table))
            return true;
    }
    return false;
}

/* One row of the manifest's schema (DESCRIBE SCHEMA): false if a field is
 * missing. */
typedef struct schema_row {
    const char *ks, *type, *name, *cql;
} schema_row;

static bool read_schema_row(const json_t *row, schema_row *out)
{
    out->ks = json_string_value(json_object_get(row, "keyspace"));
    out->type = json_string_value(json_object_get(row, "type"));
    out->name = json_string_value(json_object_get(row, "name"));
    out->cql = json_string_value(json_object_get(row, "cql"));
    return out->ks && out->type && out->name && out->cql;
}

static bool is_one_of(const char *word, const char *const *words)
{
    for (; *words; words++)
        if (!strcmp(word, *words))
            return true;
    return false;
}

/* Create what the selected tables need of the schema rows whose type is
 * one of types (NULL-terminated), IF NOT EXISTS. */
static int ensure_schema(restore_ctx *c, cql_conn *conn, const char *const *types, cs_err *e)
{
    size_t i;
    json_t *row;
    json_array_foreach(c->m.schema, i, row) {
        schema_row s;
        if (!read_schema_row(row, &s) || !is_one_of(s.type, types) || !schema_row_needed(c, s.ks, s.type, s.name, s.cql))
            continue;
        char *stmt = if_not_exists(s.cql);
        if (!stmt)
            continue; /* views, functions: not created by restore yet */
        cql_result *r = NULL;
        int rc = cql_query(conn, stmt, &r, e);
        cql_result_free(r);
        free(stmt);
        if (rc)
            return cs_err_prefix(e, "creating %s %s.%s", s.type, s.ks, s.name);
    }
    return 0;
}

static char *staging_root(const cs_config *cfg, const cs_node_info *node)
{
    if (cfg->staging_dir)
        return cs_strdup(cfg->staging_dir);
    /* Beside the data: same file system, so nodetool import can move the
     * files in instead of copying them. */
    const char *first = cfg->data_dirs.n ? cfg->data_dirs.items[0] : node->data_dirs.items[0];
    char *parent = cs_dirname(first);
    char *root = cs_path_join(parent, "cassette-staging");
    free(parent);
    return root;
}

/* Staging directories are "<backup>-<pid>"; one whose restore is no longer
 * running was left by a killed restore and only holds copies. */
static void clean_stale_staging(const char *root)
{
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        const char *dash = strrchr(de->d_name, '-');
        char *end = NULL;
        long pid = dash ? strtol(dash + 1, &end, 10) : 0;
        if (pid <= 0 || !end || *end || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *path = cs_path_join(root, de->d_name);
        cs_err err;
        cs_err_clear(&err);
        cs_info("removing %s, left by an interrupted restore", path);
        cs_remove_tree(path, &err);
        free(path);
    }
    if (d)
        closedir(d);
}

/* Plan every file of table t into <stage>/<ks>/<table> (made now, so that
 * a table without files still has its directory). Secondary index files
 * (in subdirectories) are left out: import rebuilds indexes from the base
 * table. */
static int stage_table(restore_ctx *c, const cs_mtable *t, const char *stage, cs_err *e)
{
    char *dir = cs_sprintf("%s/%s/%s", stage, t->keyspace, t->table);
    int rc = cs_mkdirs(dir, 0755, e);
    for (size_t j = 0; !rc && j < t->n_files; j++)
        if (!strchr(t->files[j].name, '/'))
            plan_file(c, t, &t->files[j], cs_strdup(dir));
    free(dir);
    if (rc)
        cs_err_prefix(e, "%s.%s", t->keyspace, t->table);
    return rc;
}

static int import_table(cs_nodetool *nt, const cs_mtable *t, const char *stage, cs_err *e)
{
    char *dir = cs_sprintf("%s/%s/%s", stage, t->keyspace, t->table);
    cs_info("importing %s.%s", t->keyspace, t->table);
    int rc = cs_nodetool_import(nt, t->keyspace, t->table, dir, e);
    free(dir);
    if (rc)
        cs_err_prefix(e, "%s.%s", t->keyspace, t->table);
    return rc;
}

/* ---- tables the node does not have: files first, then CREATE TABLE ---- */

/* The schema row that creates table t, or NULL. */
static const char *table_cql(const restore_ctx *c, const cs_mtable *t)
{
    size_t i;
    json_t *row;
    json_array_foreach(c->m.schema, i, row) {
        schema_row r;
        if (read_schema_row(row, &r) && !strcmp(r.type, "table") && !strcmp(r.ks, t->keyspace) &&
            !strcmp(r.name, t->table))
            return r.cql;
    }
    return NULL;
}

/* "CREATE TABLE ks.t (...) WITH a AND b" -> "... WITH ID = <id> AND a AND b":
 * the column list is skipped by matching parentheses outside quotes. NULL
 * when the statement does not have that shape. */
static char *with_table_id(const char *cql, const char *id32)
{
    const char *p = strchr(cql, '(');
    int depth = 0;
    char quote = 0;
    for (; p && *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '(') {
            depth++;
        } else if (*p == ')' && --depth == 0) {
            break;
        }
    }
    if (!p || *p != ')')
        return NULL;
    char uuid[37];
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", id32, id32 + 8, id32 + 12, id32 + 16, id32 + 20);
    const char *rest = p + 1;
    while (*rest == ' ' || *rest == '\n' || *rest == '\t')
        rest++;
    int head = (int)(p + 1 - cql);
    if (!strncmp(rest, "WITH ", 5))
        return cs_sprintf("%.*s WITH ID = %s AND %s", head, cql, uuid, rest + 5);
    return cs_sprintf("%.*s WITH ID = %s %s", head, cql, uuid, rest);
}

static int table_exists(cql_conn *conn, const cs_mtable *t, bool *exists, cs_err *e)
{
    /* Names were checked to be plain identifiers when the manifest was read. */
    char *q = cs_sprintf("SELECT id FROM system_schema.tables WHERE keyspace_name = '%s' AND table_name = '%s'",
                         t->keyspace, t->table);
    cql_result *r = NULL;
    int rc = cql_query(conn, q, &r, e);
    if (!rc)
        *exists = cql_result_rows(r) > 0;
    cql_result_free(r);
    free(q);
    return rc;
}

/* Move every file of dir `from` into dir `to` (same file system). */
static int move_files(const char *from, const char *to, cs_err *e)
{
    DIR *d = opendir(from);
    if (!d)
        return cs_err_sys(e, CS_E_IO, errno, "cannot read %s", from);
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *a = cs_path_join(from, de->d_name), *b = cs_path_join(to, de->d_name);
        if (rename(a, b) != 0)
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot move %s to %s", a, b);
        free(a);
        free(b);
    }
    closedir(d);
    return rc;
}

/* Cassandra loads the SSTables it finds in a table's directory when the
 * table is created: for a table the node does not have, the checked files
 * go into <data dir>/<ks>/<table>-<id>/ and CREATE TABLE ... WITH ID makes
 * them live at once, with no nodetool (whose JVM start-up is most of an
 * import). *adopted is false when this path does not apply (the table
 * exists, was created meanwhile by someone else, or its directory is not
 * empty): the files are then back in the stage, for nodetool import. */
static int adopt_table(restore_ctx *c, cql_conn *conn, const cs_mtable *t, const char *data_dir, const char *stage,
                       bool *adopted, cs_err *e)
{
    *adopted = false;
    bool exists = true;
    const char *cql = table_cql(c, t);
    char *stmt = cql ? with_table_id(cql, t->id) : NULL;
    char *create = stmt ? if_not_exists(stmt) : NULL;
    char *from = cs_sprintf("%s/%s/%s", stage, t->keyspace, t->table);
    char *dir = cs_sprintf("%s/%s/%s-%s", data_dir, t->keyspace, t->table, t->id);
    struct stat a, b;
    bool same_fs = stat(from, &a) == 0 && stat(data_dir, &b) == 0 && a.st_dev == b.st_dev; /* rename works */
    int rc = create && same_fs ? table_exists(conn, t, &exists, e) : 0;
    if (rc || exists || (cs_is_dir(dir) && rmdir(dir) != 0)) /* only an empty leftover may go */
        goto out;
    rc = cs_mkdirs(dir, 0755, e);
    if (!rc)
        rc = move_files(from, dir, e);
    cql_result *r = NULL;
    if (!rc)
        rc = cql_query(conn, create, &r, e);
    bool created = !rc && cql_result_schema_changed(r);
    cql_result_free(r);
    if (created) {
        cs_info("created %s.%s with its files", t->keyspace, t->table);
        *adopted = true;
        goto out;
    }
    /* Not ours to load: put the files back for nodetool import. */
    cs_err back;
    cs_err_clear(&back);
    if (move_files(dir, from, &back) == 0)
        rmdir(dir);
    else if (!rc)
        rc = cs_err_set(e, back.code, "%s", back.msg);
out:
    if (rc)
        cs_err_prefix(e, "creating %s.%s", t->keyspace, t->table);
    free(dir);
    free(from);
    free(create);
    free(stmt);
    return rc;
}

typedef struct import_run {
    restore_ctx *c;
    cs_nodetool *nt;
    const char *stage;
    size_t *tables; /* indexes of the selected tables */
} import_run;

/* Runs on a worker thread: one nodetool process per table. Start-up of the
 * nodetool JVM is most of an import, so tables are imported --jobs at a
 * time. */
static int import_one(void *arg, size_t i, cs_err *e)
{
    import_run *r = arg;
    return import_table(r->nt, &r->c->m.tables[r->tables[i]], r->stage, e);
}

/* Tables the node has already: nodetool import, --jobs at a time. */
static int import_tables(restore_ctx *c, cs_nodetool *nt, const char *stage, const bool *adopted, cs_err *e)
{
    import_run r = { c, nt, stage, cs_calloc(c->m.n_tables + 1, sizeof(size_t)) };
    size_t n = 0;
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (c->selected[i] && !adopted[i])
            r.tables[n++] = i;
    int rc = cs_parallel_for(n, (unsigned)c->cfg->jobs, import_one, &r, e);
    free(r.tables);
    return rc;
}

/* nodetool import renames what it loads: tell the node's backup state
 * which contents the node now holds, so that its next backup reuses these
 * objects instead of storing the files again (issue 17, point 8). A
 * failure costs only that: a warning. */
static void learn_placed(restore_ctx *c, const char *host_id)
{
    cs_err err;
    cs_err_clear(&err);
    if (host_id && cs_state_learn(c->cfg, c->repo, host_id, &c->m, c->selected, &err))
        cs_warn("the next backup may store the restored files again: %s", err.msg);
}

/* Import: every file is downloaded and checked first; only when all of
 * them are good does the node see anything (schema, then SSTables). A bad
 * object or a wrong key leaves the node exactly as it was. */
static int restore_import(restore_ctx *c, cs_err *e)
{
    cql_conn *conn = NULL;
    cs_nodetool *nt = NULL;
    cs_node_info node;
    memset(&node, 0, sizeof node);
    char *root = NULL, *stage = NULL;
    int rc = cs_node_connect(c->cfg, &conn, e);
    if (!rc)
        rc = cs_node_read_info(conn, &node, e);
    if (!rc && !c->cfg->data_dirs.n && !node.data_dirs.n)
        rc = cs_err_set(e, CS_E_INVAL, "the node did not say where its data directories are; set --data-dir");
    if (!rc)
        rc = cs_nodetool_new(c->cfg, &nt, e);
    if (rc)
        goto out;
    root = staging_root(c->cfg, &node);
    clean_stale_staging(root);
    stage = cs_sprintf("%s/%s-%ld", root, c->m.backup, (long)getpid());
    for (size_t i = 0; !rc && i < c->m.n_tables; i++)
        if (c->selected[i])
            rc = stage_table(c, &c->m.tables[i], stage, e);
    if (!rc)
        rc = place_planned(c, e);
    if (!rc)
        rc = ensure_schema(c, conn, (const char *const[]){ "keyspace", "type", NULL }, e);
    bool *adopted = cs_calloc(c->m.n_tables + 1, sizeof *adopted);
    const char *data_dir = c->cfg->data_dirs.n ? c->cfg->data_dirs.items[0] : node.data_dirs.items[0];
    for (size_t i = 0; !rc && i < c->m.n_tables; i++)
        if (c->selected[i])
            rc = adopt_table(c, conn, &c->m.tables[i], data_dir, stage, &adopted[i], e);
    if (!rc)
        rc = ensure_schema(c, conn, (const char *const[]){ "table", NULL }, e); /* not adopted: IF NOT EXISTS */
    if (!rc)
        rc = import_tables(c, nt, stage, adopted, e);
    if (!rc)
        rc = ensure_schema(c, conn, (const char *const[]){ "index", NULL }, e); /* built from the data */
    if (!rc)
        learn_placed(c, node.host_id);
    free(adopted);
    cs_err cleanup;
    cs_err_clear(&cleanup);
    cs_remove_tree(stage, &cleanup);
    rmdir(root); /* only if empty: another restore may be using it */
out:
    free(stage);
    free(root);
    cs_nodetool_free(nt);
    cs_node_info_free(&node);
    cql_close(conn);
    return rc;
}

/* ---- replace ---- */

static void aside_suffix(char out[48])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 48, ".cassette-aside-%Y%m%d-%H%M%S", &tm);
}

/* Rename path to path+suffix if it exists; never delete anything. */
static int move_aside(restore_ctx *c, const char *path, const char *suffix, cs_err *e)
{
    if (!cs_exists(path))
        return 0;
    char *aside = cs_sprintf("%s%s", path, suffix);
    int rc = 0;
    if (cs_exists(aside))
        rc = cs_err_set(e, CS_E_EXISTS, "cannot move %s aside: %s exists", path, aside);
    else if (rename(path, aside) != 0)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot move %s aside to %s", path, aside);
    if (!rc) {
        cs_strlist_add(&c->res->moved_aside, aside);
        cs_info("moved %s aside to %s", path, aside);
    }
    free(aside);
    return rc;
}

static const cs_strlist *target_data_dirs(const restore_ctx *c)
{
    return c->cfg->data_dirs.n ? &c->cfg->data_dirs : &c->m.data_dirs;
}

/* Files come in beside each data directory (same file system, so putting
 * them in place is a rename) and replace nothing until all are checked. */
static char *incoming_dir(const char *data_dir)
{
    return cs_sprintf("%s.cassette-incoming", data_dir);
}

static void remove_incoming(const cs_strlist *dirs)
{
    for (size_t d = 0; d < dirs->n; d++) {
        char *in = incoming_dir(dirs->items[d]);
        cs_err err;
        cs_err_clear(&err);
        cs_remove_tree(in, &err);
        free(in);
    }
}

static int stage_replace(restore_ctx *c, const cs_strlist *dirs, cs_err *e)
{
    remove_incoming(dirs); /* left by a killed restore: only copies */
    int rc = 0;
    for (size_t i = 0; i < c->m.n_tables; i++) {
        if (!c->selected[i])
            continue;
        const cs_mtable *t = &c->m.tables[i];
        for (size_t j = 0; j < t->n_files; j++) {
            const cs_mfile *f = &t->files[j];
            char *in = incoming_dir(dirs->items[f->data_dir < dirs->n ? f->data_dir : 0]);
            plan_file(c, t, f, cs_sprintf("%s/%s/%s-%s", in, t->keyspace, t->table, t->id));
            free(in);
        }
    }
    rc = place_planned(c, e);
    for (size_t d = 0; !rc && d < dirs->n; d++) {
        char *in = incoming_dir(dirs->items[d]);
        rc = cs_mkdirs(in, 0755, e); /* a data dir that gets no file still gets replaced */
        free(in);
    }
    return rc;
}

/* A whole-node replace: every data directory, the commitlog, hints and
 * saved caches go aside; the incoming directories take the data
 * directories' place, fresh empty ones the others'. */
static int swap_node(restore_ctx *c, const cs_strlist *dirs, const char *suffix, cs_err *e)
{
    const char *others[] = { c->cfg->commitlog_dir ? c->cfg->commitlog_dir : c->m.commitlog_dir,
                             c->cfg->hints_dir ? c->cfg->hints_dir : c->m.hints_dir,
                             c->cfg->saved_caches_dir ? c->cfg->saved_caches_dir : c->m.saved_caches_dir };
    int rc = 0;
    for (size_t i = 0; !rc && i < dirs->n; i++) {
        char *in = incoming_dir(dirs->items[i]);
        rc = move_aside(c, dirs->items[i], suffix, e);
        if (!rc && rename(in, dirs->items[i]) != 0)
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot move %s to %s", in, dirs->items[i]);
        free(in);
    }
    for (size_t i = 0; !rc && i < sizeof others / sizeof others[0]; i++)
        if (others[i] && others[i][0] == '/') {
            rc = move_aside(c, others[i], suffix, e);
            if (!rc)
                rc = cs_mkdirs(others[i], 0755, e);
        }
    return rc;
}

/* A partial replace: only the chosen tables' directories go aside, into
 * "<data dir><suffix>/<ks>/<table dir>", and the incoming ones take their
 * place. */
static int swap_table_dir(restore_ctx *c, const char *data_dir, const cs_mtable *t, const char *suffix, cs_err *e)
{
    char *in = incoming_dir(data_dir);
    char *src = cs_sprintf("%s/%s/%s-%s", in, t->keyspace, t->table, t->id);
    char *ks_dir = cs_sprintf("%s/%s", data_dir, t->keyspace);
    char *dst = cs_sprintf("%s/%s-%s", ks_dir, t->table, t->id);
    char *aside_parent = cs_sprintf("%s%s/%s", data_dir, suffix, t->keyspace);
    char *aside = cs_sprintf("%s/%s-%s", aside_parent, t->table, t->id);
    int rc = 0;
    if (cs_exists(dst)) {
        rc = cs_mkdirs(aside_parent, 0755, e);
        if (!rc && rename(dst, aside) != 0)
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot move %s aside to %s", dst, aside);
        if (!rc)
            cs_strlist_add(&c->res->moved_aside, aside);
    }
    if (!rc && cs_exists(src)) {
        rc = cs_mkdirs(ks_dir, 0755, e);
        if (!rc && rename(src, dst) != 0)
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot move %s to %s", src, dst);
    }
    free(in);
    free(src);
    free(ks_dir);
    free(dst);
    free(aside_parent);
    free(aside);
    return rc;
}

static int swap_tables(restore_ctx *c, const cs_strlist *dirs, const char *suffix, cs_err *e)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < c->m.n_tables; i++)
        for (size_t d = 0; !rc && c->selected[i] && d < dirs->n; d++)
            rc = swap_table_dir(c, dirs->items[d], &c->m.tables[i], suffix, e);
    if (!rc)
        remove_incoming(dirs);
    return rc;
}

static int restore_replace(restore_ctx *c, cs_err *e)
{
    if (cs_node_is_listening(c->cfg->cql_host, (int)c->cfg->cql_port))
        return cs_err_set(e, CS_E_INVAL,
                          "the node at %s:%ld is running; stop it before restoring with --mode replace",
                          c->cfg->cql_host, c->cfg->cql_port);
    const cs_strlist *dirs = target_data_dirs(c);
    if (!dirs->n)
        return cs_err_set(e, CS_E_INVAL, "no data directory known; set --data-dir");
    bool whole = !c->cfg->keyspaces.n && !c->cfg->tables.n;
    if (whole && !cs_manifest_find_table(&c->m, "system_schema", "tables"))
        return cs_err_set(e, CS_E_INVAL, "backup %s does not hold the system keyspaces (it was taken with "
                                         "--keyspace); replace it table by table with --keyspace or --table",
                          c->m.backup);
    int rc = stage_replace(c, dirs, e);
    if (rc) {
        remove_incoming(dirs);
        return rc;
    }
    char suffix[48];
    aside_suffix(suffix);
    rc = whole ? swap_node(c, dirs, suffix, e) : swap_tables(c, dirs, suffix, e);
    if (rc && c->res->moved_aside.n)
        cs_err_prefix(e, "the node's previous files are kept in %s", c->res->moved_aside.items[0]);
    return rc;
}

int cs_op_restore(const cs_config *cfg, cs_restore_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    restore_ctx c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.res = res;
    int rc = check_args(cfg, e);
    if (rc)
        return rc;
    res->mode = cs_strdup(cfg->mode);
    rc = cs_ops_open_repo(cfg, false, &c.repo, e);
    if (!rc)
        rc = cs_ops_require_identity(c.repo, e);
    /* Shared: a purge must not delete objects while they are read. */
    cs_lock *lock = NULL;
    char *purpose = cs_sprintf("restore %s", cfg->backup);
    if (!rc)
        rc = cs_ops_lock(cfg, c.repo, CS_LOCK_SHARED, purpose, &lock, e);
    free(purpose);
    if (!rc)
        rc = cs_repo_read_manifest(c.repo, cfg->backup, NULL, &c.m, e);
    if (!rc)
        rc = select_tables(&c, e);
    if (!rc)
        rc = is_replace(cfg) ? restore_replace(&c, e) : restore_import(&c, e);
    if (rc)
        cs_err_prefix(e, "restore %s", cfg->backup);
    res->seconds = cs_now() - t0;
    free_plan(&c);
    free(c.selected);
    cs_manifest_free(&c.m);
    cs_lock_release(lock);
    cs_repo_free(c.repo);
    return rc;
}

void cs_restore_result_free(cs_restore_result *res)
{
    free(res->mode);
    cs_strlist_free(&res->moved_aside);
}

/* restore.c - bring a backup back into a node: import (running node) or
 * replace (stopped node). Nothing live is ever deleted: replace moves what
 * is there aside first, import only adds SSTables.
 *
 * Where: only the node's own directories (--data-dir and friends, its
 * --cassandra-yaml, or what the running node reports); a manifest's
 * directories are information, never a destination. Every file is
 * downloaded and checked in a staging directory made fresh inside the
 * directory it is for (the same file system: a mount point works, putting a
 * file in place is a rename), and nothing is placed before every file of
 * its table is good. A table with a damaged or missing object is left out
 * and named, the healthy ones are restored (--fail-fast: the first is the
 * error and nothing is placed). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cassandra/node.h"
#include "cassandra/nodetool.h"
#include "ops/nodeopts.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "io/sink.h"
#include "ops/aside.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"
#include "ops/state.h"

#define ALL_TABLES SIZE_MAX /* not one table: every one */

/* A download into dir: a file, or the files of one pack that go to the
 * same directory (one request for them all), planned first and then placed
 * --jobs at a time. */
typedef struct placement {
    size_t table;  /* index into the manifest's tables */
    const cs_mfile *f;    /* the first file */
    const cs_mfile **fs;  /* every file: f, then the rest of its pack */
    size_t n;
    uint64_t bytes;       /* their plaintext */
    char *dir;
    bool done;
    uint64_t table_bytes; /* all of its table's planned files (download order) */
    int code;      /* why it failed, when it did and the table is given up alone */
    char *why;
} placement;

/* Tables whose files have all been downloaded (or failed), handed from the
 * download workers to the thread that makes them live while the others
 * download (import without --fail-fast). */
typedef struct table_feed {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t *left;     /* per manifest table: its planned files not finished yet */
    size_t *ready;    /* tables all of whose files finished, in that order */
    size_t n_ready, taken;
    bool done;        /* every download has returned */
    bool stop;        /* the tables' side failed: take no new file */
    int rc;           /* the downloads' failure, in err */
    cs_err err;
} table_feed;

typedef struct restore_ctx {
    cs_job *job;           /* progress: download (files, bytes), then placing or importing */
    const cs_restore_req *req;
    const cs_host *host;
    cs_repo *repo;
    cs_manifest m;
    bool *selected;        /* per manifest table: to restore (a failed table is taken out) */
    char *host_id;         /* the running node's (import), for its backup state; NULL in replace */
    cs_restore_result *res;
    placement *plan;
    size_t n_plan;
    table_feed *feed;      /* set while tables are made live as their downloads finish */
    cs_node_dirs dirs;     /* the node's own directories */
    char unique[CS_UNIQUE_MAX];
} restore_ctx;

static bool is_replace(const cs_restore_req *req)
{
    return !strcmp(req->mode, "replace");
}

/* ---- restoring into other keyspaces (keyspace_map) ---- */

const char *cs_restore_map_lookup(const cs_strlist *map, const char *ks)
{
    size_t n = strlen(ks);
    for (size_t i = 0; i < map->n; i++)
        if (!strncmp(map->items[i], ks, n) && map->items[i][n] == '=')
            return map->items[i] + n + 1;
    return NULL;
}

/* The keyspace table t goes into. */
static const char *target_ks(const restore_ctx *c, const cs_mtable *t)
{
    const char *dst = cs_restore_map_lookup(&c->req->keyspace_map, t->keyspace);
    return dst ? dst : t->keyspace;
}

static bool is_mapped(const restore_ctx *c, const char *ks)
{
    return cs_restore_map_lookup(&c->req->keyspace_map, ks) != NULL;
}

static int check_map_entry(const cs_strlist *map, size_t i, cs_err *e)
{
    const char *entry = map->items[i];
    const char *eq = strchr(entry, '=');
    char *src = eq ? cs_strndup(entry, (size_t)(eq - entry)) : NULL;
    const char *dst = eq ? eq + 1 : NULL;
    int rc = 0;
    if (!eq || !cs_node_is_valid_name(src) || !cs_node_is_valid_name(dst))
        rc = cs_err_set(e, CS_E_USAGE, "{keyspace_map} wants SOURCE=TARGET, two keyspace names, not \"%s\"", entry);
    else if (strlen(dst) > 48)
        rc = cs_err_set(e, CS_E_USAGE, "{keyspace_map} %s: a keyspace name has at most 48 characters", entry);
    else if (cs_node_is_system_keyspace(dst) || cs_node_is_system_keyspace(src))
        rc = cs_err_set(e, CS_E_USAGE, "{keyspace_map} %s: Cassandra's own keyspaces are not restored elsewhere, "
                                       "nor overwritten", entry);
    else if (!strcmp(src, dst))
        rc = cs_err_set(e, CS_E_USAGE, "{keyspace_map} %s maps a keyspace onto itself", entry);
    for (size_t k = 0; !rc && k < i; k++) {
        const char *other = strchr(map->items[k], '=');
        if (!strncmp(map->items[k], entry, (size_t)(eq - entry) + 1) || (other && !strcmp(other + 1, dst)))
            rc = cs_err_set(e, CS_E_USAGE, "{keyspace_map} %s and %s: each keyspace once, on each side",
                            map->items[k], entry);
    }
    free(src);
    return rc;
}

int cs_restore_check_map(const cs_strlist *map, cs_err *e)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < map->n; i++)
        rc = check_map_entry(map, i, e);
    return rc;
}

static const char *read_ident(const char *p, char *out, size_t cap);

char *cs_restore_rename_keyspace(const char *cql, const char *type, const char *dst)
{
    static const struct {
        const char *type, *prefix;
    } kinds[] = { { "keyspace", "CREATE KEYSPACE " }, { "type", "CREATE TYPE " }, { "table", "CREATE TABLE " } };
    const char *p = NULL;
    for (size_t i = 0; !p && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(type, kinds[i].type) && !strncmp(cql, kinds[i].prefix, strlen(kinds[i].prefix)))
            p = cql + strlen(kinds[i].prefix);
    if (p && !strncmp(p, "IF NOT EXISTS ", 14))
        p += 14;
    char ks[256];
    const char *rest = p ? read_ident(p, ks, sizeof ks) : NULL;
    bool keyspace = !strcmp(type, "keyspace");
    if (!rest || (keyspace ? !(*rest == ' ' || *rest == '\0' || *rest == ';') : *rest != '.'))
        return NULL;
    char *q = cs_node_quote_name(dst); /* always quoted: exactly the name given */
    char *out = cs_sprintf("%.*s%s%s", (int)(p - cql), cql, q, rest);
    free(q);
    return out;
}

/* ---- choosing tables ---- */

bool cs_restore_table_wanted(const cs_strlist *keyspaces, const cs_strlist *tables, const cs_mtable *t)
{
    if (!keyspaces->n && !tables->n)
        return true;
    if (cs_strlist_has(keyspaces, t->keyspace))
        return true;
    char *full = cs_sprintf("%s.%s", t->keyspace, t->table);
    bool hit = cs_strlist_has(tables, full);
    free(full);
    return hit;
}

/* With a keyspace_map and no other filter: only the mapped keyspaces. */
static bool table_wanted(const cs_restore_req *req, const cs_mtable *t)
{
    if (req->keyspace_map.n && !req->keyspaces.n && !req->tables.n)
        return cs_restore_map_lookup(&req->keyspace_map, t->keyspace) != NULL;
    return cs_restore_table_wanted(&req->keyspaces, &req->tables, t);
}

int cs_restore_check_filters(const cs_manifest *m, const cs_strlist *keyspaces, const cs_strlist *tables, cs_err *e)
{
    for (size_t i = 0; i < keyspaces->n; i++) {
        const char *ks = keyspaces->items[i];
        bool found = false;
        for (size_t j = 0; j < m->n_tables && !found; j++)
            found = !strcmp(m->tables[j].keyspace, ks);
        if (!found)
            return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no keyspace %s", m->backup, ks);
    }
    for (size_t i = 0; i < tables->n; i++) {
        const char *full = tables->items[i];
        const char *dot = strchr(full, '.');
        char *ks = dot ? cs_strndup(full, (size_t)(dot - full)) : NULL;
        bool found = dot && cs_manifest_find_table(m, ks, dot + 1);
        free(ks);
        if (!found)
            return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no table %s%s", m->backup, full,
                              dot ? "" : " (write it as KEYSPACE.TABLE)");
    }
    return 0;
}

static int check_filters_exist(restore_ctx *c, cs_err *e)
{
    return cs_restore_check_filters(&c->m, &c->req->keyspaces, &c->req->tables, e);
}

/* Is ks a keyspace of the backup (a table of it, or a schema row)? */
static bool backup_has_keyspace(const restore_ctx *c, const char *ks)
{
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (!strcmp(c->m.tables[i].keyspace, ks))
            return true;
    size_t i;
    json_t *row;
    json_array_foreach(c->m.schema, i, row) {
        const char *name = json_string_value(json_object_get(row, "keyspace"));
        if (name && !strcmp(name, ks))
            return true;
    }
    return false;
}

/* Each SRC of the map has a table to restore; no DST is a keyspace of the
 * backup (restoring into one would mix the two). */
static int check_map_against_backup(restore_ctx *c, cs_err *e)
{
    const cs_strlist *map = &c->req->keyspace_map;
    for (size_t k = 0; k < map->n; k++) {
        const char *dst = strchr(map->items[k], '=') + 1;
        bool found = false;
        for (size_t i = 0; i < c->m.n_tables && !found; i++)
            found = c->selected[i] && target_ks(c, &c->m.tables[i]) == dst;
        if (!found)
            return cs_err_set(e, CS_E_NOTFOUND, "{keyspace_map} %s: backup %s holds no table of that keyspace to "
                                                "restore", map->items[k], c->m.backup);
        if (backup_has_keyspace(c, dst))
            return cs_err_set(e, CS_E_USAGE, "{keyspace_map} %s: %s is a keyspace of backup %s; restore into a new "
                                             "one", map->items[k], dst, c->m.backup);
    }
    return 0;
}

static int select_tables(restore_ctx *c, cs_err *e)
{
    int rc = check_filters_exist(c, e);
    for (size_t k = 0; !rc && k < c->req->keyspace_map.n; k++) {
        const char *entry = c->req->keyspace_map.items[k];
        bool found = false;
        for (size_t i = 0; i < c->m.n_tables && !found; i++)
            found = cs_restore_map_lookup(&c->req->keyspace_map, c->m.tables[i].keyspace) == strchr(entry, '=') + 1;
        if (!found)
            rc = cs_err_set(e, CS_E_NOTFOUND, "{keyspace_map} %s: backup %s holds no keyspace %.*s", entry,
                            c->m.backup, (int)strcspn(entry, "="), entry);
    }
    if (rc)
        return rc;
    c->selected = cs_calloc(c->m.n_tables ? c->m.n_tables : 1, sizeof *c->selected);
    bool import = !is_replace(c->req);
    bool explicit = c->req->keyspaces.n || c->req->tables.n;
    size_t n = 0;
    for (size_t i = 0; i < c->m.n_tables; i++) {
        const cs_mtable *t = &c->m.tables[i];
        if (!table_wanted(c->req, t))
            continue;
        if (import && cs_node_is_system_keyspace(t->keyspace)) {
            if (explicit)
                return cs_err_set(e, CS_E_USAGE, "%s.%s is a system table: restore it with {mode} replace",
                                  t->keyspace, t->table);
            continue;
        }
        c->selected[i] = true;
        n++;
    }
    if (n == 0)
        return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no table to restore", c->m.backup);
    return check_map_against_backup(c, e);
}

static size_t count_selected(const restore_ctx *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->m.n_tables; i++)
        n += c->selected[i];
    return n;
}

/* ---- tables that cannot be restored ---- */

/* Damage in the repository (a corrupt, missing or foreign object) is one
 * table's problem; anything else (the disk, the network, the node) would
 * fail the other tables too, and stops the restore. */
static bool is_table_damage(int code)
{
    return code == CS_E_CORRUPT || code == CS_E_NOTFOUND || code == CS_E_NOKEY;
}

/* Take table i out of the restore, with the reason. */
static void table_failed(restore_ctx *c, size_t i, int code, const char *why)
{
    if (!c->selected[i])
        return;
    c->selected[i] = false;
    const cs_mtable *t = &c->m.tables[i];
    cs_restore_result *r = c->res;
    r->failed = cs_realloc(r->failed, (r->n_failed + 1) * sizeof *r->failed);
    r->failed[r->n_failed].table = cs_sprintf("%s.%s", t->keyspace, t->table);
    r->failed[r->n_failed].reason = cs_strdup(why);
    if (!r->n_failed++) /* a missing object is damage too (exit 3), like a corrupt one */
        r->failed_code = code == CS_E_NOTFOUND ? CS_E_CORRUPT : code;
    cs_info("%s.%s is not restored: %s", t->keyspace, t->table, why);
}

/* When nothing is left to restore, the failures are the error. */
static int something_left(restore_ctx *c, cs_err *e)
{
    if (count_selected(c))
        return 0;
    const cs_restore_failure *f = &c->res->failed[0];
    if (c->res->n_failed == 1)
        return cs_err_set(e, c->res->failed_code, "%s: %s", f->table, f->reason);
    return cs_err_set(e, c->res->failed_code, "no table could be restored: %s: %s (and %zu more tables)", f->table,
                      f->reason, c->res->n_failed - 1);
}

/* ---- placing files ---- */

/* Runs on a worker thread: touches only its own files. */
static int place_files(restore_ctx *c, const placement *p, cs_err *e)
{
    /* Each file is written once and read by the node later, if at all: no page cache (CS_FILE_DIRECT). */
    return cs_ops_fetch_files(c->repo, p->fs, p->n, p->dir, CS_FILE_NO_DIR_SYNC | CS_FILE_DIRECT,
                              e); /* sync_planned_dirs */
}

/* Each file is synced as it is closed; the names of the placed files of
 * table t (ALL_TABLES: of every table) are made durable here, one fsync per
 * directory instead of one per file. */
static int sync_planned_dirs(const restore_ctx *c, size_t t, cs_err *e)
{
    cs_strlist synced = { NULL, 0 };
    int rc = 0;
    for (size_t i = 0; !rc && i < c->n_plan; i++) {
        const placement *p = &c->plan[i];
        if ((t != ALL_TABLES && p->table != t) || !p->done)
            continue;
        for (size_t k = 0; !rc && k < p->n; k++) {
            char *path = cs_path_join(p->dir, p->fs[k]->name);
            char *dir = cs_dirname(path);
            if (!cs_strlist_has(&synced, dir)) {
                rc = cs_fsync_dir(dir, e);
                cs_strlist_add(&synced, dir);
            }
            free(dir);
            free(path);
        }
    }
    cs_strlist_free(&synced);
    return rc;
}

static void plan_file(restore_ctx *c, size_t table, const cs_mfile *f, char *dir /* taken */)
{
    c->plan = cs_realloc(c->plan, (c->n_plan + 1) * sizeof *c->plan);
    const cs_mfile **fs = cs_calloc(1, sizeof *fs);
    fs[0] = f;
    c->plan[c->n_plan++] = (placement){ table, f, fs, 1, f->size, dir, false, 0, 0, NULL };
}

/* Packed files first, by table, directory, object and offset: the files
 * of one pack for one directory side by side. */
static int by_pack(const void *a, const void *b)
{
    const placement *x = a, *y = b;
    bool px = cs_mfile_packed(x->f), py = cs_mfile_packed(y->f);
    if (px != py)
        return px ? -1 : 1;
    if (!px)
        return 0;
    if (x->table != y->table)
        return x->table < y->table ? -1 : 1;
    int c = strcmp(x->dir, y->dir);
    if (!c)
        c = strcmp(x->f->object, y->f->object);
    if (!c)
        c = x->f->pack.at < y->f->pack.at ? -1 : x->f->pack.at > y->f->pack.at ? 1 : 0;
    return c;
}

static bool same_download(const placement *x, const placement *y)
{
    return cs_mfile_packed(x->f) && cs_mfile_packed(y->f) && x->table == y->table && !strcmp(x->dir, y->dir) &&
           !strcmp(x->f->object, y->f->object);
}

/* One placement per pack and directory: its files in one download. */
static void group_packs(restore_ctx *c)
{
    if (c->n_plan < 2)
        return;
    qsort(c->plan, c->n_plan, sizeof *c->plan, by_pack);
    size_t kept = 0;
    for (size_t i = 0; i < c->n_plan; i++) {
        placement *p = &c->plan[i];
        placement *last = kept ? &c->plan[kept - 1] : NULL;
        if (last && same_download(last, p)) {
            last->fs = cs_realloc(last->fs, (last->n + 1) * sizeof *last->fs);
            last->fs[last->n++] = p->f;
            last->bytes += p->f->size;
            free(p->fs);
            free(p->dir);
            free(p->why);
            continue;
        }
        c->plan[kept++] = *p;
    }
    c->n_plan = kept;
}

/* Runs on a worker thread: file i of its table has finished (placed, or
 * failed alone); the last one hands the table over. */
static void feed_file_done(table_feed *f, size_t table)
{
    pthread_mutex_lock(&f->lock);
    if (--f->left[table] == 0) {
        f->ready[f->n_ready++] = table;
        pthread_cond_signal(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
}

static bool feed_stopped(table_feed *f)
{
    pthread_mutex_lock(&f->lock);
    bool stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

/* A damaged object fails its table only (the others go on) unless
 * --fail-fast; any other failure stops every worker. */
static int place_run(void *arg, size_t i, cs_err *e)
{
    restore_ctx *c = arg;
    placement *p = &c->plan[i];
    const cs_mtable *t = &c->m.tables[p->table];
    if (c->feed && feed_stopped(c->feed))
        return cs_err_set(e, CS_E_CANCELED, "stopped: making a table live failed");
    char *item = cs_sprintf("%s.%s/%s", t->keyspace, t->table, p->f->name);
    cs_job_item(c->job, item);
    free(item);
    int rc = place_files(c, p, e);
    p->done = rc == 0;
    if (!rc)
        cs_job_add_files(c->job, p->n);
    if (rc && !c->req->fail_fast && is_table_damage(rc)) {
        p->code = rc;
        p->why = cs_strdup(e->msg);
        rc = 0;
    }
    if (rc)
        return cs_err_prefix(e, "%s.%s", t->keyspace, t->table);
    if (c->feed)
        feed_file_done(c->feed, p->table);
    return 0;
}

static int by_size_desc(const void *a, const void *b)
{
    const placement *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static void free_plan(restore_ctx *c)
{
    for (size_t i = 0; i < c->n_plan; i++) {
        free(c->plan[i].fs);
        free(c->plan[i].dir);
        free(c->plan[i].why);
    }
    free(c->plan);
    c->plan = NULL;
    c->n_plan = 0;
}

/* Pipelined: the smallest tables first, each table's files the largest
 * first, so that the first tables are ready at once and the node's schema
 * changes (serial, about half a second each) run while the big tables
 * download. */
static int by_table_size(const void *a, const void *b)
{
    const placement *x = a, *y = b;
    if (x->table_bytes != y->table_bytes)
        return x->table_bytes < y->table_bytes ? -1 : 1;
    if (x->table != y->table)
        return x->table < y->table ? -1 : 1;
    return by_size_desc(a, b);
}

static void start_downloads(restore_ctx *c)
{
    group_packs(c);
    if (c->feed) {
        uint64_t *sum = cs_calloc(c->m.n_tables + 1, sizeof *sum);
        for (size_t i = 0; i < c->n_plan; i++)
            sum[c->plan[i].table] += c->plan[i].bytes;
        for (size_t i = 0; i < c->n_plan; i++)
            c->plan[i].table_bytes = sum[c->plan[i].table];
        free(sum);
    }
    if (c->n_plan > 1)
        qsort(c->plan, c->n_plan, sizeof *c->plan, c->feed ? by_table_size : by_size_desc);
    uint64_t bytes = 0, files = 0;
    for (size_t i = 0; i < c->n_plan; i++) {
        bytes += c->plan[i].bytes;
        files += c->plan[i].n;
    }
    cs_job_phase(c->job, "download", files, bytes); /* bytes: cs_ops_fetch_object's, as they stream */
}

static int download_planned(restore_ctx *c, cs_err *e)
{
    return cs_parallel_for(c->n_plan, (unsigned)c->req->jobs, place_run, c, e);
}

/* Download every planned file, the largest first, --jobs at a time; a
 * table with a file that failed is taken out (in manifest order). */
static int place_planned(restore_ctx *c, cs_err *e)
{
    start_downloads(c);
    int rc = download_planned(c, e);
    if (!rc)
        rc = sync_planned_dirs(c, ALL_TABLES, e);
    const placement **first = cs_calloc(c->m.n_tables + 1, sizeof *first);
    for (size_t i = 0; i < c->n_plan; i++) {
        const placement *p = &c->plan[i];
        if (p->why && !first[p->table])
            first[p->table] = p;
    }
    for (size_t t = 0; t < c->m.n_tables; t++)
        if (first[t])
            table_failed(c, t, first[t]->code, first[t]->why);
    free(first);
    free_plan(c);
    return rc;
}

/* A fresh, empty directory of our own: mkdir never follows a link that
 * was put in its place, and fails on anything already there. */
static int make_own_dir(const char *path, cs_err *e)
{
    if (mkdir(path, 0755) != 0)
        return cs_err_sys(e, CS_E_IO, errno, "cannot create %s", path);
    return 0;
}

/* Remove the downloads left in root by restores whose process is gone
 * (only copies); a link there is removed, never followed. */
static void clean_stale_staging(const char *root)
{
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, CS_STAGING_PREFIX, strlen(CS_STAGING_PREFIX)) || cs_restore_name_in_use(de->d_name))
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

int cs_restore_make_stage(const char *root, const char *unique, char **out, cs_err *e)
{
    clean_stale_staging(root);
    char *stage = cs_sprintf("%s/%s%s", root, CS_STAGING_PREFIX, unique);
    int rc = make_own_dir(stage, e);
    if (rc) {
        free(stage);
        return rc;
    }
    *out = stage;
    return 0;
}

static int make_stage(restore_ctx *c, const char *root, char **out, cs_err *e)
{
    return cs_restore_make_stage(root, c->unique, out, e);
}

static void remove_tree_quietly(const char *path)
{
    cs_err err;
    cs_err_clear(&err);
    if (cs_remove_tree(path, &err))
        cs_warn("%s", err.msg);
}

/* "12.5 MiB": for messages (the CLI formats results its own way). */
static void size_text(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
}

/* Bytes planned into each stage (stages->items[i]). */
static void planned_bytes(const restore_ctx *c, const cs_strlist *stages, uint64_t *need)
{
    for (size_t i = 0; i < c->n_plan; i++)
        for (size_t d = 0; d < stages->n; d++) {
            size_t n = strlen(stages->items[d]);
            if (!strncmp(c->plan[i].dir, stages->items[d], n) && c->plan[i].dir[n] == '/') {
                need[d] += c->plan[i].bytes;
                break;
            }
        }
}

/* Refuse before downloading what the file systems cannot hold (a backup
 * bigger than the disk, or a manifest that claims so): stages on one file
 * system add up. */
static int check_space(const restore_ctx *c, const cs_strlist *stages, cs_err *e)
{
    uint64_t *need = cs_calloc(stages->n + 1, sizeof *need);
    planned_bytes(c, stages, need);
    int rc = 0;
    for (size_t d = 0; !rc && d < stages->n; d++) {
        struct stat st, other;
        struct statvfs vfs;
        if (stat(stages->items[d], &st) != 0 || statvfs(stages->items[d], &vfs) != 0)
            continue; /* cannot tell: the writes will say */
        uint64_t total = need[d];
        for (size_t k = d + 1; k < stages->n; k++)
            if (stat(stages->items[k], &other) == 0 && other.st_dev == st.st_dev) {
                total += need[k];
                need[k] = 0;
            }
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        if (total > avail) {
            char want[32], have[32];
            size_text(total, want, sizeof want);
            size_text(avail, have, sizeof have);
            char *where = cs_dirname(stages->items[d]);
            rc = cs_err_set(e, CS_E_IO, "restoring needs %s on the file system of %s, which has %s free", want,
                            where, have);
            free(where);
        }
    }
    free(need);
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

/* One CQL identifier at p, as Cassandra resolves it (unquoted: lower
 * case) into out; the text after it, or NULL. */
static const char *read_ident(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && !(p[0] == '"' && p[1] != '"'); p++) {
            if (*p == '"')
                p++; /* "" is one quote */
            if (n + 1 >= cap)
                return NULL;
            out[n++] = *p;
        }
        if (*p != '"')
            return NULL;
        p++;
    } else {
        for (; isalnum((unsigned char)*p) || *p == '_'; p++) {
            if (n + 1 >= cap)
                return NULL;
            out[n++] = (char)tolower((unsigned char)*p);
        }
    }
    out[n] = '\0';
    return n ? p : NULL;
}

/* p at an identifier that must be `want`: the text after it, or NULL. */
static const char *expect_ident(const char *p, const char *want)
{
    char got[256];
    p = p ? read_ident(p, got, sizeof got) : NULL;
    return p && !strcmp(got, want) ? p : NULL;
}

/* One row of the manifest's schema (DESCRIBE SCHEMA, which quotes names
 * that need it: "QK"), with its keyspace and name as Cassandra stores them
 * (QK); false if a field is missing or not an identifier. */
typedef struct schema_row {
    const char *type, *cql;
    char ks[256], name[256];
} schema_row;

static bool read_schema_row(const json_t *row, schema_row *out)
{
    const char *ks = json_string_value(json_object_get(row, "keyspace"));
    const char *name = json_string_value(json_object_get(row, "name"));
    out->type = json_string_value(json_object_get(row, "type"));
    out->cql = json_string_value(json_object_get(row, "cql"));
    const char *end_ks = ks ? read_ident(ks, out->ks, sizeof out->ks) : NULL;
    const char *end_name = name ? read_ident(name, out->name, sizeof out->name) : NULL;
    return end_ks && !*end_ks && end_name && !*end_name && out->type && out->cql;
}

/* After "CREATE <kind> [IF NOT EXISTS] " of the row's kind, or NULL. */
static const char *after_create(const schema_row *r)
{
    static const struct {
        const char *type, *prefix;
    } kinds[] = { { "keyspace", "CREATE KEYSPACE " }, { "type", "CREATE TYPE " }, { "table", "CREATE TABLE " },
                  { "index", "CREATE INDEX " }, { "index", "CREATE CUSTOM INDEX " } };
    const char *p = NULL;
    for (size_t i = 0; !p && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(r->type, kinds[i].type) && !strncmp(r->cql, kinds[i].prefix, strlen(kinds[i].prefix)))
            p = r->cql + strlen(kinds[i].prefix);
    if (p && !strncmp(p, "IF NOT EXISTS ", 14))
        p += 14;
    return p;
}

/* The table an index row's statement ("... INDEX name ON ks.table (...)")
 * is on, into table; false if the statement is not of that shape, for
 * the row's name and keyspace. */
static bool index_table(const schema_row *r, char *table, size_t cap)
{
    const char *p = expect_ident(after_create(r), r->name);
    p = p && !strncmp(p, " ON ", 4) ? expect_ident(p + 4, r->ks) : NULL;
    p = p && *p == '.' ? read_ident(p + 1, table, cap) : NULL;
    return p && (*p == ' ' || *p == '(');
}

/* Does the row's statement create exactly what the row names: its kind,
 * in its keyspace, under its name? A manifest comes from the repository,
 * which someone may have forged: a "keyspace" row whose statement creates
 * a table in another keyspace must not run. */
static bool statement_matches_row(const schema_row *r)
{
    char table[256];
    const char *p = after_create(r);
    if (!p)
        return false;
    if (!strcmp(r->type, "keyspace")) {
        p = expect_ident(p, r->ks);
        return p && (*p == ' ' || *p == '\0' || *p == ';');
    }
    if (!strcmp(r->type, "index"))
        return index_table(r, table, sizeof table);
    p = expect_ident(p, r->ks);
    p = p && *p == '.' ? expect_ident(p + 1, r->name) : NULL;
    return p && (*p == ' ' || *p == '(');
}

/* Does selected table i need row r (`on`: the table of an index row)? */
static bool row_needed_by(const restore_ctx *c, const schema_row *r, const char *on, size_t i)
{
    const cs_mtable *t = &c->m.tables[i];
    if (!c->selected[i] || strcmp(t->keyspace, r->ks))
        return false;
    if (!strcmp(r->type, "keyspace") || !strcmp(r->type, "type"))
        return true;
    if (!strcmp(r->type, "table") && !strcmp(r->name, t->table))
        return true;
    return !strcmp(r->type, "index") && !strcmp(on, t->table);
}

/* Is row r needed by table `only`, or (ALL_TABLES) by any selected one? */
static bool schema_row_needed_by(const restore_ctx *c, const schema_row *r, size_t only)
{
    char on[256] = "";
    if (!strcmp(r->type, "index") && !index_table(r, on, sizeof on))
        return false;
    if (only != ALL_TABLES)
        return row_needed_by(c, r, on, only);
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (row_needed_by(c, r, on, i))
            return true;
    return false;
}

static bool schema_row_needed(const restore_ctx *c, const schema_row *r)
{
    return schema_row_needed_by(c, r, ALL_TABLES);
}

static bool is_one_of(const char *word, const char *const *words)
{
    for (; *words; words++)
        if (!strcmp(word, *words))
            return true;
    return false;
}

/* The statement that makes what row s makes, IF NOT EXISTS: in its own
 * keyspace, or (keyspace_map) in the target keyspace, where indexes are
 * not made. NULL: nothing to run (views, functions, a mapped index). */
static char *schema_statement(const restore_ctx *c, const schema_row *s)
{
    const char *dst = cs_restore_map_lookup(&c->req->keyspace_map, s->ks);
    if (!dst)
        return if_not_exists(s->cql);
    if (!strcmp(s->type, "index"))
        return NULL;
    char *renamed = cs_restore_rename_keyspace(s->cql, s->type, dst);
    char *stmt = renamed ? if_not_exists(renamed) : NULL;
    free(renamed);
    return stmt;
}

static bool keyspace_selected(const restore_ctx *c, const char *ks)
{
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (c->selected[i] && !strcmp(c->m.tables[i].keyspace, ks))
            return true;
    return false;
}

/* Indexes and views of a mapped keyspace are not made in the target: named
 * in the result and the log. */
static void note_not_created(restore_ctx *c, const schema_row *s)
{
    bool index = !strcmp(s->type, "index") && schema_row_needed(c, s);
    bool view = !strcmp(s->type, "materialized_view") && keyspace_selected(c, s->ks);
    if (!is_mapped(c, s->ks) || !(index || view))
        return;
    char *what = cs_sprintf("%s %s.%s", index ? "index" : "materialized view", s->ks, s->name);
    cs_info("%s is not made in %s (a restore into another keyspace makes only its types and tables)", what,
            cs_restore_map_lookup(&c->req->keyspace_map, s->ks));
    cs_strlist_add(&c->res->not_created, what);
    free(what);
}

/* Create what the selected tables (or table `only`) need of the schema rows
 * whose type is one of types (NULL-terminated), IF NOT EXISTS. */
static int ensure_schema_of(restore_ctx *c, cql_conn *conn, const char *const *types, size_t only, cs_err *e)
{
    size_t i;
    json_t *row;
    json_array_foreach(c->m.schema, i, row) {
        schema_row s;
        if (!read_schema_row(row, &s))
            continue;
        if (is_one_of("index", types))
            note_not_created(c, &s);
        if (!is_one_of(s.type, types) || !schema_row_needed_by(c, &s, only))
            continue;
        char *stmt = schema_statement(c, &s);
        if (!stmt)
            continue; /* views, functions: not created by restore yet */
        if (!statement_matches_row(&s)) {
            free(stmt);
            return cs_err_set(e, CS_E_CORRUPT, "the backup's schema row for %s %s.%s creates something else: "
                                               "the manifest is damaged or forged, so it was not run",
                              s.type, s.ks, s.name);
        }
        cql_result *r = NULL;
        int rc = cql_query(conn, stmt, &r, e);
        cql_result_free(r);
        free(stmt);
        if (rc)
            return cs_err_prefix(e, "creating %s %s.%s", s.type, s.ks, s.name);
    }
    return 0;
}

static int ensure_schema(restore_ctx *c, cql_conn *conn, const char *const *types, cs_err *e)
{
    return ensure_schema_of(c, conn, types, ALL_TABLES, e);
}

/* Check every schema row the restore would run before running any. */
static int check_schema_rows(restore_ctx *c, cs_err *e)
{
    size_t i;
    json_t *row;
    json_array_foreach(c->m.schema, i, row) {
        schema_row s;
        char *stmt = read_schema_row(row, &s) && schema_row_needed(c, &s)
                         ? schema_statement(c, &s) : NULL;
        bool bad = stmt && !statement_matches_row(&s);
        free(stmt);
        if (bad)
            return cs_err_set(e, CS_E_CORRUPT, "the backup's schema row for %s %s.%s creates something else: the "
                                               "manifest is damaged or forged, so none of its schema was run",
                              s.type, s.ks, s.name);
    }
    return 0;
}

static int import_table(cs_nodetool *nt, const cs_mtable *t, const char *into_ks, const char *stage, cs_err *e)
{
    char *dir = cs_sprintf("%s/%s/%s", stage, t->keyspace, t->table);
    if (strcmp(into_ks, t->keyspace))
        cs_info("importing %s.%s into %s.%s", t->keyspace, t->table, into_ks, t->table);
    else
        cs_info("importing %s.%s", t->keyspace, t->table);
    int rc = cs_nodetool_import(nt, into_ks, t->table, dir, e);
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
            return statement_matches_row(&r) ? r.cql : NULL; /* a mismatch is refused by ensure_schema */
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
    if (is_mapped(c, t->keyspace))
        return 0; /* a new table of another keyspace: made by ensure_schema, filled by nodetool import */
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
    if (!rc)
        rc = cs_fsync_dir(dir, e); /* the names durable before the table is */
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

int cs_restore_staging_root(const cs_host *host, const cs_node_dirs *dirs, char **root, cs_err *e)
{
    const char *dir = host->staging_dir;
    struct stat st;
    if (!dir && dirs->data_dirs.n) {
        *root = cs_strdup(dirs->data_dirs.items[0]);
        return 0;
    }
    if (!dir)
        return cs_err_set(e, CS_E_INVAL, "no directory to download to: set {staging_dir} (or {data_dirs})");
    if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
        return cs_err_set(e, CS_E_USAGE, "{staging_dir} %s is a symbolic link: give the directory itself "
                                         "(cassette does not write through links)", dir);
    int rc = cs_mkdirs(dir, 0755, e);
    if (!rc)
        *root = cs_strdup(dir);
    return rc;
}

static int import_staging_root(restore_ctx *c, char **root, cs_err *e)
{
    return cs_restore_staging_root(c->host, &c->dirs, root, e);
}

/* Plan every file of table i into <stage>/<ks>/<table> (made now, so that
 * a table without files still has its directory). Secondary index files
 * (in subdirectories) are left out: import rebuilds indexes from the base
 * table. */
static int stage_table(restore_ctx *c, size_t i, const char *stage, cs_err *e)
{
    const cs_mtable *t = &c->m.tables[i];
    char *ks = cs_path_join(stage, t->keyspace);
    char *dir = cs_path_join(ks, t->table);
    int rc = (cs_is_dir(ks) ? 0 : make_own_dir(ks, e));
    if (!rc)
        rc = make_own_dir(dir, e);
    for (size_t j = 0; !rc && j < t->n_files; j++)
        if (!strchr(t->files[j].name, '/'))
            plan_file(c, i, &t->files[j], cs_strdup(dir));
    free(dir);
    free(ks);
    if (rc)
        cs_err_prefix(e, "%s.%s", t->keyspace, t->table);
    return rc;
}

/* Tables taken out after staging: their downloads go now. */
static void unstage_failed(restore_ctx *c, const char *stage, const bool *staged)
{
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (staged[i] && !c->selected[i]) {
            char *dir = cs_sprintf("%s/%s/%s", stage, c->m.tables[i].keyspace, c->m.tables[i].table);
            remove_tree_quietly(dir);
            free(dir);
        }
}

/* A table that failed after its files were checked (creating it, importing
 * it): the others go on unless --fail-fast. */
static int table_step_failed(restore_ctx *c, size_t i, int rc, cs_err *e)
{
    if (!rc || c->req->fail_fast)
        return rc;
    table_failed(c, i, rc, e->msg);
    cs_err_clear(e);
    return 0;
}

typedef struct import_run {
    restore_ctx *c;
    cs_nodetool *nt;
    const char *stage;
    size_t *tables;  /* indexes of the tables to import */
    int *codes;      /* per item: how it failed, for the tables given up alone */
    char **whys;
} import_run;

/* Runs on a worker thread: one nodetool process per table. Start-up of the
 * nodetool JVM is most of an import, so tables are imported --jobs at a
 * time. */
static int import_one(void *arg, size_t i, cs_err *e)
{
    import_run *r = arg;
    const cs_mtable *t = &r->c->m.tables[r->tables[i]];
    char *item = cs_sprintf("%s.%s", t->keyspace, t->table);
    cs_job_item(r->c->job, item);
    free(item);
    int rc = import_table(r->nt, t, target_ks(r->c, t), r->stage, e);
    cs_job_add_files(r->c->job, 1);
    if (rc && !r->c->req->fail_fast) {
        r->codes[i] = rc;
        r->whys[i] = cs_strdup(e->msg);
        return 0;
    }
    return rc;
}

/* Tables the node has already: nodetool import, --jobs at a time. */
static int import_tables(restore_ctx *c, cs_nodetool *nt, const char *stage, const bool *adopted, cs_err *e)
{
    size_t cap = c->m.n_tables + 1;
    import_run r = { c, nt, stage, cs_calloc(cap, sizeof(size_t)), cs_calloc(cap, sizeof(int)),
                     cs_calloc(cap, sizeof(char *)) };
    size_t n = 0;
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (c->selected[i] && !adopted[i])
            r.tables[n++] = i;
    cs_job_phase(c->job, "import", n, 0); /* files: tables, one nodetool import each */
    int rc = cs_parallel_for(n, (unsigned)c->req->jobs, import_one, &r, e);
    for (size_t k = 0; k < n; k++) {
        if (r.whys[k]) {
            const char *colon = strstr(r.whys[k], ": "); /* the reason without "ks.table: " */
            table_failed(c, r.tables[k], r.codes[k], colon ? colon + 2 : r.whys[k]);
        }
        free(r.whys[k]);
    }
    free(r.whys);
    free(r.codes);
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
    bool *same = cs_calloc(c->m.n_tables + 1, sizeof *same); /* tables restored into themselves */
    bool any = false;
    for (size_t i = 0; i < c->m.n_tables; i++)
        any |= same[i] = c->selected[i] && !is_mapped(c, c->m.tables[i].keyspace);
    if (host_id && any && cs_state_learn(c->host, c->repo, host_id, &c->m, same, &err))
        cs_warn("the next backup may store the restored files again: %s", err.msg);
    free(same);
}

static int import_connect(restore_ctx *c, cql_conn **conn, cs_nodetool **nt, cs_err *e)
{
    cs_node_info node;
    memset(&node, 0, sizeof node);
    cs_cql_opts cql_opts;
    cs_nodetool_opts nodetool_opts;
    cs_ops_cql_opts(c->host, "restore", &cql_opts);
    cs_ops_nodetool_opts(c->host, &nodetool_opts);
    int rc = cs_node_connect(&cql_opts, conn, e);
    if (!rc)
        rc = cs_node_read_info(*conn, &node, e);
    if (!rc)
        rc = cs_ops_node_dirs(c->host, &node, &c->dirs, e);
    if (!rc && node.host_id)
        c->host_id = cs_strdup(node.host_id); /* whose backup state learns what is placed */
    if (!rc && !c->dirs.data_dirs.n)
        rc = cs_err_set(e, CS_E_INVAL, "the node did not say where its data directories are; set {data_dirs} "
                                       "(or {cassandra_yaml} FILE)");
    if (!rc)
        rc = cs_nodetool_new(&nodetool_opts, nt, e);
    cs_node_info_free(&node);
    return rc;
}

/* Does the restore put table `name` into keyspace dst? */
static bool restores_into(const restore_ctx *c, const char *dst, const char *name)
{
    for (size_t i = 0; i < c->m.n_tables; i++)
        if (c->selected[i] && !strcmp(target_ks(c, &c->m.tables[i]), dst) && !strcmp(c->m.tables[i].table, name))
            return true;
    return false;
}

/* A target keyspace of keyspace_map may exist only with tables this
 * restore puts there (a rerun): never mix restored rows into other data. */
static int check_map_targets(restore_ctx *c, cql_conn *conn, cs_err *e)
{
    int rc = 0;
    for (size_t k = 0; !rc && k < c->req->keyspace_map.n; k++) {
        const char *dst = strchr(c->req->keyspace_map.items[k], '=') + 1;
        char *q = cs_sprintf("SELECT table_name FROM system_schema.tables WHERE keyspace_name = '%s'", dst);
        cql_result *r = NULL;
        rc = cql_query(conn, q, &r, e); /* dst: a plain name, checked */
        for (size_t i = 0; !rc && i < cql_result_rows(r); i++) {
            const char *name = cql_result_text(r, i, "table_name");
            if (name && !restores_into(c, dst, name))
                rc = cs_err_set(e, CS_E_INVAL, "keyspace %s exists and holds table %s, which this restore does not "
                                               "restore: restore into a new keyspace ({keyspace_map})", dst, name);
        }
        cql_result_free(r);
        free(q);
    }
    return rc;
}

/* ---- making tables live while the others download ---- */

/* The next table whose downloads have all finished; false once every
 * download has returned and every such table was taken. */
static bool feed_next(table_feed *f, size_t *table)
{
    pthread_mutex_lock(&f->lock);
    while (f->taken == f->n_ready && !f->done)
        pthread_cond_wait(&f->cond, &f->lock);
    bool got = f->taken < f->n_ready;
    if (got)
        *table = f->ready[f->taken++];
    pthread_mutex_unlock(&f->lock);
    return got;
}

static void feed_stop(table_feed *f)
{
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_mutex_unlock(&f->lock);
}

static void *download_thread(void *arg)
{
    restore_ctx *c = arg;
    table_feed *f = c->feed;
    cs_err err;
    cs_err_clear(&err);
    int rc = download_planned(c, &err);
    pthread_mutex_lock(&f->lock);
    f->rc = rc;
    f->err = err;
    f->done = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* The first failed download of table t (all of its files have finished:
 * their entries are read only after that), or NULL. */
static const placement *download_failure(const restore_ctx *c, size_t t)
{
    for (size_t i = 0; i < c->n_plan; i++)
        if (c->plan[i].table == t && c->plan[i].why)
            return &c->plan[i];
    return NULL;
}

/* Table i's files are all checked in the stage: its keyspace and types
 * (IF NOT EXISTS), then, when the node lacks it, the table with its files. */
static int make_table_live(restore_ctx *c, cql_conn *conn, size_t i, const char *stage, bool *adopted, cs_err *e)
{
    int rc = ensure_schema_of(c, conn, (const char *const[]){ "keyspace", "type", NULL }, i, e);
    if (rc)
        return rc;
    rc = adopt_table(c, conn, &c->m.tables[i], c->dirs.data_dirs.items[0], stage, adopted, e);
    return table_step_failed(c, i, rc, e);
}

/* Download every planned file on other threads and make each table live
 * (schema, adopt) here as soon as its last file is checked: the CREATE
 * statements overlap the downloads instead of following them. A table
 * with a damaged file is taken out alone; any other failure stops both. */
static int place_and_make_live(restore_ctx *c, cql_conn *conn, const char *stage, const bool *staged, bool *adopted,
                               cs_err *e)
{
    table_feed f;
    memset(&f, 0, sizeof f);
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.cond, NULL);
    f.left = cs_calloc(c->m.n_tables + 1, sizeof *f.left);
    f.ready = cs_calloc(c->m.n_tables + 1, sizeof *f.ready);
    c->feed = &f;
    start_downloads(c); /* groups the files of a pack first: a table's downloads are counted */
    for (size_t i = 0; i < c->n_plan; i++)
        f.left[c->plan[i].table]++;
    for (size_t t = 0; t < c->m.n_tables; t++)
        if (staged[t] && !f.left[t])
            f.ready[f.n_ready++] = t; /* nothing to download */
    pthread_t thread;
    bool threaded = cs_job_thread_create(&thread, download_thread, c) == 0;
    if (!threaded)
        download_thread(c);
    int rc = 0;
    size_t t;
    while (feed_next(&f, &t)) {
        const placement *bad = rc ? NULL : download_failure(c, t);
        if (bad)
            table_failed(c, t, bad->code, bad->why);
        else if (!rc && (rc = sync_planned_dirs(c, t, e)) == 0)
            rc = make_table_live(c, conn, t, stage, &adopted[t], e);
        if (rc)
            feed_stop(&f);
    }
    if (threaded)
        pthread_join(thread, NULL);
    c->feed = NULL;
    if (!rc && f.rc) {
        rc = f.rc;
        *e = f.err;
    }
    free_plan(c);
    free(f.left);
    free(f.ready);
    pthread_cond_destroy(&f.cond);
    pthread_mutex_destroy(&f.lock);
    return rc;
}

/* Import without --fail-fast: tables are made live as their files arrive
 * (above); nodetool imports the ones the node had already at the end.
 * With --fail-fast, every file is downloaded and checked first; only then
 * does the node see anything (schema, then SSTables). Either way only
 * the tables whose files are all good are placed. */
static int restore_import(restore_ctx *c, cs_err *e)
{
    cql_conn *conn = NULL;
    cs_nodetool *nt = NULL;
    char *root = NULL, *stage = NULL;
    bool *staged = cs_calloc(c->m.n_tables + 1, sizeof *staged);
    bool *adopted = cs_calloc(c->m.n_tables + 1, sizeof *adopted);
    int rc = import_connect(c, &conn, &nt, e);
    if (!rc)
        rc = check_map_targets(c, conn, e);
    if (!rc)
        rc = import_staging_root(c, &root, e);
    if (!rc)
        rc = make_stage(c, root, &stage, e);
    if (rc)
        goto out;
    for (size_t i = 0; !rc && i < c->m.n_tables; i++)
        if (c->selected[i]) {
            rc = stage_table(c, i, stage, e);
            staged[i] = !rc;
        }
    cs_strlist one = { &stage, 1 };
    bool pipelined = !c->req->fail_fast;
    if (!rc)
        rc = check_space(c, &one, e);
    if (!rc)
        rc = pipelined ? place_and_make_live(c, conn, stage, staged, adopted, e) : place_planned(c, e);
    unstage_failed(c, stage, staged);
    if (!rc)
        rc = something_left(c, e);
    if (!rc)
        cs_job_phase(c->job, "schema", 0, 0); /* keyspaces, types, tables the node lacks */
    if (!rc && !pipelined)
        rc = ensure_schema(c, conn, (const char *const[]){ "keyspace", "type", NULL }, e);
    const char *data_dir = c->dirs.data_dirs.items[0];
    for (size_t i = 0; !rc && !pipelined && i < c->m.n_tables; i++)
        if (c->selected[i])
            rc = table_step_failed(c, i, adopt_table(c, conn, &c->m.tables[i], data_dir, stage, &adopted[i], e), e);
    if (!rc)
        rc = ensure_schema(c, conn, (const char *const[]){ "table", NULL }, e); /* not adopted: IF NOT EXISTS */
    if (!rc)
        rc = import_tables(c, nt, stage, adopted, e);
    if (!rc)
        rc = ensure_schema(c, conn, (const char *const[]){ "index", NULL }, e); /* built from the data */
out:
    if (stage)
        remove_tree_quietly(stage);
    free(stage);
    free(root);
    free(adopted);
    free(staged);
    cs_nodetool_free(nt);
    cql_close(conn);
    return rc;
}

/* ---- replace ---- */

/* Every rename and every directory a replace makes, so that a failure
 * puts the node back as it was: renames are undone newest first, then the
 * directories made are removed if empty (never anything with files). */
typedef struct journal {
    cs_strlist from, to;
    cs_strlist made;
} journal;

/* rename() that never replaces what is at `to` (rename would silently
 * replace an empty directory). */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (cs_exists(to)) { /* a file system without RENAME_NOREPLACE */
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

static int journal_move(journal *j, const char *from, const char *to, cs_err *e)
{
    if (rename_noreplace(from, to) != 0)
        return cs_err_sys(e, CS_E_IO, errno, "cannot move %s to %s", from, to);
    cs_strlist_add(&j->from, from);
    cs_strlist_add(&j->to, to);
    return 0;
}

static int journal_mkdir(journal *j, const char *path, cs_err *e)
{
    int rc = make_own_dir(path, e);
    if (!rc)
        cs_strlist_add(&j->made, path);
    return rc;
}

/* mkdir -p, remembering each level it made. */
static int journal_mkdirs(journal *j, const char *path, cs_err *e)
{
    if (cs_is_dir(path))
        return 0;
    char *parent = cs_dirname(path);
    int rc = strcmp(parent, path) ? journal_mkdirs(j, parent, e) : 0;
    free(parent);
    return rc ? rc : journal_mkdir(j, path, e);
}

/* Put everything back; false if something could not be. */
static bool journal_undo(journal *j)
{
    bool all = true;
    for (size_t i = j->from.n; i-- > 0;)
        if (rename_noreplace(j->to.items[i], j->from.items[i]) != 0) {
            cs_warn("cannot move %s back to %s: %s", j->to.items[i], j->from.items[i], strerror(errno));
            all = false;
        }
    return all;
}

static void journal_remove_made(journal *j)
{
    for (size_t i = j->made.n; i-- > 0;)
        rmdir(j->made.items[i]); /* only if empty */
}

static void journal_free(journal *j)
{
    cs_strlist_free(&j->from);
    cs_strlist_free(&j->to);
    cs_strlist_free(&j->made);
}

/* Is path one of the node's directories other than self, or above one?
 * (A commitlog kept inside the data directory is not the data's to move.) */
static bool is_within(const char *dir, const char *path)
{
    size_t n = strlen(path);
    return dir && !strncmp(dir, path, n) && (dir[n] == '\0' || dir[n] == '/');
}

static bool holds_node_dir(const cs_node_dirs *d, const char *path, const char *self)
{
    const char *others[] = { d->commitlog_dir, d->hints_dir, d->saved_caches_dir };
    for (size_t i = 0; i < d->data_dirs.n; i++)
        if (d->data_dirs.items[i] != self && is_within(d->data_dirs.items[i], path))
            return true;
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] && others[i] != self && is_within(others[i], path))
            return true;
    return false;
}

/* The entries of dir that belong to the node: not our own staging and
 * aside directories, not lost+found (the file system's), not another of
 * the node's directories. */
static void node_entries(const restore_ctx *c, const char *dir, cs_strlist *out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "lost+found") ||
            !strncmp(n, CS_ASIDE_PREFIX, strlen(CS_ASIDE_PREFIX)) ||
            !strncmp(n, CS_STAGING_PREFIX, strlen(CS_STAGING_PREFIX)))
            continue;
        char *path = cs_path_join(dir, n);
        if (holds_node_dir(&c->dirs, path, dir))
            cs_info("leaving %s in place: it holds another of the node's directories", path);
        else
            cs_strlist_add(out, n);
        free(path);
    }
    if (d)
        closedir(d);
}

/* Move the contents of dir (never dir itself: it may be a mount point)
 * into dir/.cassette-aside-<unique>. Nothing to move: nothing made. */
static int move_contents_aside(restore_ctx *c, journal *j, const char *dir, cs_err *e)
{
    cs_strlist names = { NULL, 0 };
    node_entries(c, dir, &names);
    char *aside = cs_sprintf("%s/%s%s", dir, CS_ASIDE_PREFIX, c->unique);
    int rc = names.n ? journal_mkdir(j, aside, e) : 0;
    for (size_t i = 0; !rc && i < names.n; i++) {
        char *from = cs_path_join(dir, names.items[i]), *to = cs_path_join(aside, names.items[i]);
        rc = journal_move(j, from, to, e);
        free(from);
        free(to);
    }
    if (!rc && names.n) {
        cs_strlist_add(&c->res->moved_aside, aside);
        cs_info("moved the contents of %s aside to %s", dir, aside);
    }
    free(aside);
    cs_strlist_free(&names);
    return rc;
}

/* Move every entry of `from` into `to`. */
static int move_contents(journal *j, const char *from, const char *to, cs_err *e)
{
    DIR *d = opendir(from);
    if (!d)
        return cs_err_sys(e, CS_E_IO, errno, "cannot read %s", from);
    cs_strlist names = { NULL, 0 };
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            cs_strlist_add(&names, de->d_name);
    closedir(d);
    int rc = 0;
    for (size_t i = 0; !rc && i < names.n; i++) {
        char *a = cs_path_join(from, names.items[i]), *b = cs_path_join(to, names.items[i]);
        rc = journal_move(j, a, b, e);
        free(a);
        free(b);
    }
    cs_strlist_free(&names);
    return rc;
}

/* Where restore writes in replace mode: the node's own directories, never
 * the manifest's. Data directories are needed; a whole-node replace needs
 * the commitlog too (replaying it over restored data would mix times). */
static int replace_targets(restore_ctx *c, bool whole, cs_err *e)
{
    int rc = cs_ops_node_dirs(c->host, NULL, &c->dirs, e);
    if (rc)
        return rc;
    if (!c->dirs.data_dirs.n)
        return cs_err_set(e, CS_E_USAGE, "restore {mode} replace needs the node's data directories: set {data_dirs} "
                                         "(or {cassandra_yaml} FILE); a backup's own directories are never used");
    if (whole && !c->dirs.commitlog_dir)
        return cs_err_set(e, CS_E_USAGE, "a whole-node replace moves the node's commitlog aside too: set "
                                         "{commitlog_dir} (or {cassandra_yaml} FILE)");
    if (whole && !c->dirs.hints_dir)
        cs_warn("the node's hints directory is not known (--hints-dir): it is left as it is");
    if (whole && !c->dirs.saved_caches_dir)
        cs_warn("the node's saved caches directory is not known (--saved-caches-dir): it is left as it is");
    return 0;
}

/* One staging directory inside each data directory (made, as the data
 * directory itself, when missing: a lost disk). */
static int make_replace_stages(restore_ctx *c, journal *j, cs_strlist *stages, cs_err *e)
{
    int rc = 0;
    for (size_t d = 0; !rc && d < c->dirs.data_dirs.n; d++) {
        const char *dir = c->dirs.data_dirs.items[d];
        char *legacy = cs_sprintf("%s%s", dir, CS_LEGACY_INCOMING); /* left by a killed restore: copies */
        remove_tree_quietly(legacy);
        free(legacy);
        char *stage = NULL;
        rc = journal_mkdirs(j, dir, e);
        if (!rc)
            rc = make_stage(c, dir, &stage, e);
        if (!rc)
            cs_strlist_add(stages, stage);
        free(stage);
    }
    return rc;
}

/* The data directory a file goes to: its index in the backup, if the node
 * has that many, else the first. */
static size_t dir_index(const restore_ctx *c, const cs_mfile *f)
{
    return f->data_dir < c->dirs.data_dirs.n ? f->data_dir : 0;
}

static void plan_replace(restore_ctx *c, const cs_strlist *stages)
{
    for (size_t i = 0; i < c->m.n_tables; i++) {
        if (!c->selected[i])
            continue;
        const cs_mtable *t = &c->m.tables[i];
        for (size_t j = 0; j < t->n_files; j++) {
            const cs_mfile *f = &t->files[j];
            plan_file(c, i, f, cs_sprintf("%s/%s/%s-%s", stages->items[dir_index(c, f)], t->keyspace, t->table, t->id));
        }
    }
}

static void unstage_failed_replace(restore_ctx *c, const cs_strlist *stages)
{
    for (size_t i = 0; i < c->res->n_failed; i++) {
        const char *dot = strchr(c->res->failed[i].table, '.');
        const cs_mtable *t = NULL;
        if (dot) {
            char *ks = cs_strndup(c->res->failed[i].table, (size_t)(dot - c->res->failed[i].table));
            t = cs_manifest_find_table(&c->m, ks, dot + 1);
            free(ks);
        }
        for (size_t d = 0; t && d < stages->n; d++) {
            char *dir = cs_sprintf("%s/%s/%s-%s", stages->items[d], t->keyspace, t->table, t->id);
            remove_tree_quietly(dir);
            free(dir);
        }
    }
}

/* A node needs every one of its system tables: a whole-node replace with
 * one of them damaged changes nothing. */
static int system_tables_whole(const restore_ctx *c, cs_err *e)
{
    for (size_t i = 0; i < c->res->n_failed; i++) {
        const cs_restore_failure *f = &c->res->failed[i];
        char *ks = cs_strndup(f->table, strcspn(f->table, "."));
        bool system = cs_node_is_system_keyspace(ks);
        free(ks);
        if (system)
            return cs_err_set(e, c->res->failed_code, "%s: %s; a node needs all of its system tables, so nothing "
                                                      "was changed", f->table, f->reason);
    }
    return 0;
}

/* A whole-node replace: the contents of every data directory, of the
 * commitlog, hints and saved caches go aside; the staged files take the
 * data directories' place. */
static int swap_node(restore_ctx *c, journal *j, const cs_strlist *stages, cs_err *e)
{
    const char *others[] = { c->dirs.commitlog_dir, c->dirs.hints_dir, c->dirs.saved_caches_dir };
    int rc = 0;
    for (size_t i = 0; !rc && i < c->dirs.data_dirs.n; i++) {
        rc = move_contents_aside(c, j, c->dirs.data_dirs.items[i], e);
        if (!rc)
            rc = move_contents(j, stages->items[i], c->dirs.data_dirs.items[i], e);
    }
    for (size_t i = 0; !rc && i < sizeof others / sizeof others[0]; i++)
        if (others[i] && cs_is_dir(others[i]))
            rc = move_contents_aside(c, j, others[i], e);
    return rc;
}

/* A partial replace: only the chosen tables' directories go aside, into
 * "<data dir>/.cassette-aside-<unique>/<ks>/<table dir>", and the staged
 * ones take their place. */
static int swap_table_dir(restore_ctx *c, journal *j, const char *data_dir, const char *stage, const cs_mtable *t,
                          cs_err *e)
{
    char *src = cs_sprintf("%s/%s/%s-%s", stage, t->keyspace, t->table, t->id);
    char *ks_dir = cs_path_join(data_dir, t->keyspace);
    char *dst = cs_sprintf("%s/%s-%s", ks_dir, t->table, t->id);
    char *aside_parent = cs_sprintf("%s/%s%s/%s", data_dir, CS_ASIDE_PREFIX, c->unique, t->keyspace);
    char *aside = cs_sprintf("%s/%s-%s", aside_parent, t->table, t->id);
    int rc = 0;
    if (cs_exists(dst)) {
        rc = journal_mkdirs(j, aside_parent, e);
        if (!rc)
            rc = journal_move(j, dst, aside, e);
        if (!rc)
            cs_strlist_add(&c->res->moved_aside, aside);
    }
    if (!rc && cs_exists(src)) {
        rc = journal_mkdirs(j, ks_dir, e);
        if (!rc)
            rc = journal_move(j, src, dst, e);
    }
    free(src);
    free(ks_dir);
    free(dst);
    free(aside_parent);
    free(aside);
    return rc;
}

static int swap_tables(restore_ctx *c, journal *j, const cs_strlist *stages, cs_err *e)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < c->m.n_tables; i++)
        for (size_t d = 0; !rc && c->selected[i] && d < c->dirs.data_dirs.n; d++)
            rc = swap_table_dir(c, j, c->dirs.data_dirs.items[d], stages->items[d], &c->m.tables[i], e);
    return rc;
}

/* Download and check into the stages, then swap; on any failure the
 * journal puts back what was moved and the stages go. */
static int replace_staged(restore_ctx *c, bool whole, journal *j, cs_strlist *stages, cs_err *e)
{
    int rc = make_replace_stages(c, j, stages, e);
    if (rc)
        return rc;
    plan_replace(c, stages);
    rc = check_space(c, stages, e);
    if (!rc)
        rc = place_planned(c, e);
    unstage_failed_replace(c, stages);
    if (!rc)
        rc = something_left(c, e);
    if (!rc && whole)
        rc = system_tables_whole(c, e);
    if (!rc)
        cs_job_phase(c->job, "place", 0, 0); /* renames only: no safe point until done */
    if (!rc)
        rc = whole ? swap_node(c, j, stages, e) : swap_tables(c, j, stages, e);
    return rc;
}

static int restore_replace(restore_ctx *c, cs_err *e)
{
    bool whole = !c->req->keyspaces.n && !c->req->tables.n;
    if (cs_node_is_listening(c->host->cql_host, (int)c->host->cql_port))
        return cs_err_set(e, CS_E_INVAL,
                          "the node at %s:%ld is running; stop it before restoring with {mode} replace",
                          c->host->cql_host, c->host->cql_port);
    if (whole && !cs_manifest_find_table(&c->m, "system_schema", "tables"))
        return cs_err_set(e, CS_E_USAGE, "backup %s does not hold the system keyspaces (it was taken with "
                                         "{keyspaces}); replace it table by table with {keyspaces} or {tables}",
                          c->m.backup);
    journal j;
    memset(&j, 0, sizeof j);
    cs_strlist stages = { NULL, 0 };
    int rc = replace_staged(c, whole, &j, &stages, e);
    bool restored = true;
    if (rc)
        restored = journal_undo(&j);
    for (size_t i = 0; i < stages.n; i++)
        remove_tree_quietly(stages.items[i]);
    if (rc && restored) {
        journal_remove_made(&j);
        cs_strlist_free(&c->res->moved_aside);
    } else if (rc && c->res->moved_aside.n) {
        cs_err_prefix(e, "the node's previous files are kept in %s", c->res->moved_aside.items[0]);
    }
    cs_strlist_free(&stages);
    journal_free(&j);
    return rc;
}

/* ---- the operation ---- */

/* Files and bytes of the tables restored (import leaves index files out:
 * it rebuilds indexes). */
static void count_restored(restore_ctx *c)
{
    bool import = !is_replace(c->req);
    for (size_t i = 0; i < c->m.n_tables; i++) {
        if (!c->selected[i])
            continue;
        c->res->tables++;
        const cs_mtable *t = &c->m.tables[i];
        char *from = cs_sprintf("%s.%s", t->keyspace, t->table), *into = cs_sprintf("%s.%s", target_ks(c, t), t->table);
        cs_strlist_add(&c->res->restored, from);
        cs_strlist_add(&c->res->restored_into, into);
        free(from);
        free(into);
        for (size_t j = 0; j < c->m.tables[i].n_files; j++) {
            const cs_mfile *f = &c->m.tables[i].files[j];
            if (import && strchr(f->name, '/'))
                continue;
            c->res->files++;
            c->res->bytes += f->size;
        }
    }
}

static void record_dirs(restore_ctx *c)
{
    for (size_t i = 0; i < c->dirs.data_dirs.n; i++)
        cs_strlist_add(&c->res->data_dirs, c->dirs.data_dirs.items[i]);
    for (size_t i = 0; i < c->m.data_dirs.n; i++)
        cs_strlist_add(&c->res->backup_data_dirs, c->m.data_dirs.items[i]);
    bool same = c->dirs.data_dirs.n == c->m.data_dirs.n;
    for (size_t i = 0; same && i < c->m.data_dirs.n; i++)
        same = !strcmp(c->dirs.data_dirs.items[i], c->m.data_dirs.items[i]);
    if (!same && c->m.data_dirs.n)
        cs_info("the backup's node kept its data in %s%s; restoring into the node's own %s", c->m.data_dirs.items[0],
                c->m.data_dirs.n > 1 ? " (and more)" : "", c->dirs.data_dirs.items[0]);
}

/* The running node's host id, or NULL (a stopped node: replace). */
static char *own_host_id(restore_ctx *c)
{
    cs_cql_opts cql_opts;
    cs_ops_cql_opts(c->host, "restore", &cql_opts);
    cql_conn *conn = NULL;
    cs_node_info node;
    memset(&node, 0, sizeof node);
    cs_err err;
    cs_err_clear(&err);
    char *id = NULL;
    if (!cs_node_connect(&cql_opts, &conn, &err) && !cs_node_read_info(conn, &node, &err) && node.host_id)
        id = cs_strdup(node.host_id);
    if (!id)
        cs_debug("the node's own host id is not known: %s", err.msg);
    cs_node_info_free(&node);
    cql_close(conn);
    return id;
}

int cs_restore_name_the_hosts(cs_repo *repo, const char *backup, const cs_strlist *hosts, cs_err *e)
{
    cs_buf list = CS_BUF_INIT;
    for (size_t i = 0; i < hosts->n; i++) {
        cs_index ix;
        cs_err err;
        cs_err_clear(&err);
        bool known = !cs_repo_read_index(repo, backup, hosts->items[i], &ix, &err);
        cs_buf_printf(&list, "%s%s (%s)", i ? ", " : "", hosts->items[i], known && *ix.address ? ix.address : "?");
        if (known)
            cs_index_free(&ix);
    }
    cs_err_set(e, CS_E_INVAL, "backup %s holds %zu nodes; say which with {source_host}: %s", backup, hosts->n,
               cs_buf_str(&list));
    cs_buf_free(&list);
    return cs_err_field(e, "source_host");
}

static int name_the_hosts(restore_ctx *c, const cs_strlist *hosts, cs_err *e)
{
    return cs_restore_name_the_hosts(c->repo, c->req->backup, hosts, e);
}

/* Whose manifest to restore: {source_host}; else the backup's only host;
 * else the node's own host id when the backup holds it; else the operator
 * must say (a node may restore another host's files: a new cluster). */
static int read_source_manifest(restore_ctx *c, cs_err *e)
{
    if (c->req->source_host)
        return cs_repo_read_manifest(c->repo, c->req->backup, c->req->source_host, &c->m, e);
    cs_strlist hosts = { NULL, 0 };
    int rc = cs_repo_backup_hosts(c->repo, c->req->backup, &hosts, e);
    char *own = NULL;
    if (!rc && hosts.n > 1) {
        own = own_host_id(c);
        if (!own || !cs_strlist_has(&hosts, own))
            rc = name_the_hosts(c, &hosts, e);
    }
    if (!rc)
        rc = cs_repo_read_manifest(c->repo, c->req->backup, own, &c->m, e);
    free(own);
    cs_strlist_free(&hosts);
    return rc;
}

static int run_restore(restore_ctx *c, cs_err *e)
{
    bool whole = !c->req->keyspaces.n && !c->req->tables.n;
    int rc = 0;
    if (is_replace(c->req))
        rc = replace_targets(c, whole, e); /* before anything is read: a missing setting is said at once */
    if (!rc)
        rc = cs_ops_open_repo(c->host, c->req->repo, NULL, false, &c->repo, e);
    if (!rc)
        rc = cs_ops_require_identity(c->repo, e);
    /* Shared: a purge must not delete objects while they are read. */
    cs_lock *lock = NULL;
    char *purpose = cs_sprintf("restore %s", c->req->backup);
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
    if (!rc && !is_replace(c->req))
        rc = check_schema_rows(c, e); /* before anything is downloaded or run */
    if (!rc) {
        cs_restore_unique(c->unique);
        rc = is_replace(c->req) ? restore_replace(c, e) : restore_import(c, e);
    }
    if (!rc)
        rc = something_left(c, e);
    if (!rc) {
        record_dirs(c);
        count_restored(c); /* c->selected: the tables restored */
        learn_placed(c, c->host_id);
    }
    cs_lock_release(lock);
    return rc;
}

int cs_op_restore(cs_job *job, const cs_host *host, const cs_restore_req *req, cs_restore_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    restore_ctx c;
    memset(&c, 0, sizeof c);
    c.job = job;
    c.req = req;
    c.host = host;
    c.res = res;
    res->mode = cs_strdup(req->mode);
    int rc = run_restore(&c, e);
    /* A cancel (SIGINT or SIGTERM in the CLI) stops at the next safe point
     * as a failure would: the staging directories are gone, a replace has
     * put back what it moved, tables imported already stay. */
    if (rc && cs_job_canceled(job))
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; the staged downloads were removed, run restore again");
    if (rc)
        cs_err_prefix(e, "restore %s", req->backup);
    res->seconds = cs_now() - t0;
    free_plan(&c);
    free(c.selected);
    free(c.host_id);
    cs_node_dirs_free(&c.dirs);
    cs_manifest_free(&c.m);
    cs_repo_free(c.repo);
    return rc;
}

/* The others were restored; these were not. */
int cs_op_restore_verdict(const cs_restore_req *req, const cs_restore_result *res, cs_err *e)
{
    if (!res->n_failed)
        return 0;
    return cs_err_set(e, res->failed_code, "restore %s: %zu of %zu tables not restored: %s (%s)%s", req->backup,
                      res->n_failed, res->n_failed + res->tables, res->failed[0].table, res->failed[0].reason,
                      res->n_failed > 1 ? " and more, listed above" : "");
}

void cs_restore_result_free(cs_restore_result *res)
{
    free(res->mode);
    cs_strlist_free(&res->moved_aside);
    cs_strlist_free(&res->data_dirs);
    cs_strlist_free(&res->backup_data_dirs);
    for (size_t i = 0; i < res->n_failed; i++) {
        free(res->failed[i].table);
        free(res->failed[i].reason);
    }
    free(res->failed);
    cs_strlist_free(&res->restored);
    cs_strlist_free(&res->restored_into);
    cs_strlist_free(&res->not_created);
    memset(res, 0, sizeof *res);
}

/* snapshot.c - a node's snapshots: the ops `snapshot` and `snapshot clear`,
 * and finding and clearing snapshots on disk (see ops/snapshot.h). */
#include "ops/snapshot.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"

/* ---- snapshots on disk ---- */

/* Calls fn for every <data dir>/<keyspace>/<table>/snapshots/<tag>
 * directory entry (of keyspace only, unless NULL), with its path and tag. */
typedef void (*snapshot_fn)(const char *path, const char *tag, void *arg);

static void each_in_table(const char *table_dir, snapshot_fn fn, void *arg)
{
    char *snaps = cs_path_join(table_dir, "snapshots");
    DIR *sd = opendir(snaps);
    struct dirent *tag;
    while (sd && (tag = readdir(sd)) != NULL) {
        if (!strcmp(tag->d_name, ".") || !strcmp(tag->d_name, ".."))
            continue;
        char *path = cs_path_join(snaps, tag->d_name);
        fn(path, tag->d_name, arg);
        free(path);
    }
    if (sd)
        closedir(sd);
    free(snaps);
}

static void each_snapshot(const cs_strlist *data_dirs, const char *keyspace, snapshot_fn fn, void *arg)
{
    for (size_t d = 0; d < data_dirs->n; d++) {
        DIR *dd = opendir(data_dirs->items[d]);
        struct dirent *ks;
        while (dd && (ks = readdir(dd)) != NULL) {
            if (!cs_node_is_valid_name(ks->d_name) || (keyspace && strcmp(ks->d_name, keyspace)))
                continue;
            char *ks_dir = cs_path_join(data_dirs->items[d], ks->d_name);
            DIR *kd = opendir(ks_dir);
            struct dirent *td;
            while (kd && (td = readdir(kd)) != NULL) {
                if (td->d_name[0] == '.')
                    continue;
                char *table_dir = cs_path_join(ks_dir, td->d_name);
                each_in_table(table_dir, fn, arg);
                free(table_dir);
            }
            if (kd)
                closedir(kd);
            free(ks_dir);
        }
        if (dd)
            closedir(dd);
    }
}

/* each_snapshot over keyspaces (NULL or empty: every keyspace). */
static void each_snapshot_in(const cs_strlist *data_dirs, const cs_strlist *keyspaces, snapshot_fn fn, void *arg)
{
    if (!keyspaces || !keyspaces->n)
        each_snapshot(data_dirs, NULL, fn, arg);
    for (size_t i = 0; keyspaces && i < keyspaces->n; i++)
        each_snapshot(data_dirs, keyspaces->items[i], fn, arg);
}

typedef struct tags_arg {
    const char *prefix;
    cs_strlist *tags;
} tags_arg;

static void add_tag(const char *path, const char *tag, void *arg)
{
    (void)path;
    tags_arg *a = arg;
    if (!strncmp(tag, a->prefix, strlen(a->prefix)) && !cs_strlist_has(a->tags, tag))
        cs_strlist_add(a->tags, tag);
}

void cs_snapshot_find_tags(const cs_strlist *data_dirs, const char *prefix, cs_strlist *tags)
{
    tags_arg a = { prefix, tags };
    each_snapshot(data_dirs, NULL, add_tag, &a);
}

bool cs_snapshot_in_keyspace(const cs_strlist *data_dirs, const char *keyspace, const char *tag)
{
    cs_strlist tags = { NULL, 0 };
    tags_arg a = { tag, &tags };
    each_snapshot(data_dirs, keyspace, add_tag, &a);
    bool found = cs_strlist_has(&tags, tag);
    cs_strlist_free(&tags);
    return found;
}

bool cs_snapshot_on_disk(const cs_strlist *data_dirs, const char *tag)
{
    return cs_snapshot_in_keyspace(data_dirs, NULL, tag);
}

/* ---- when a snapshot was taken ---- */

/* "2026-12-06T17:39:21.325Z" (Java's Instant: 0 to 9 digits of fraction)
 * to epoch seconds; 0 when it is not that. */
static double parse_instant(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec, &used) != 6)
        return 0;
    const char *p = s + used;
    double frac = 0, scale = 0.1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    if (strcmp(p, "Z"))
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t > 0 ? (double)t + frac : 0;
}

/* When a table's snapshot was taken: the created_at of its manifest.json,
 * which Cassandra (4.1 and later) writes as it takes the snapshot and which
 * `nodetool listsnapshots` shows as the creation time (it reads the same
 * field); else the time that manifest was written (older versions: it is
 * written once, as the snapshot is taken, and never changed); else the
 * directory's own. Not `nodetool listsnapshots` itself: a JVM start per
 * node, text for people whose columns differ between versions, and nothing
 * from a stopped node. Not the SSTables' times: they are hard links with
 * the times of the live files, often days older than the snapshot. */
double cs_snapshot_dir_time(const char *dir, bool *ephemeral)
{
    *ephemeral = false;
    char *manifest = cs_path_join(dir, "manifest.json");
    char *text = NULL;
    cs_err ignored;
    cs_err_clear(&ignored);
    double t = 0;
    if (cs_read_file(manifest, 16u << 20, &text, NULL, &ignored) == 0) {
        json_t *m = json_loads(text, 0, NULL);
        t = parse_instant(json_string_value(json_object_get(m, "created_at")));
        *ephemeral = json_is_true(json_object_get(m, "ephemeral"));
        json_decref(m);
        free(text);
    }
    struct stat st;
    if (t <= 0 && (stat(manifest, &st) == 0 || stat(dir, &st) == 0))
        t = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    free(manifest);
    return t;
}

typedef struct age_arg {
    const char *prefix;
    cs_strlist tags;        /* each tag with the prefix once */
    double *newest;         /* per tag: its youngest table's time */
    bool *ephemeral;
} age_arg;

static void add_age(const char *path, const char *tag, void *arg)
{
    age_arg *a = arg;
    if (strncmp(tag, a->prefix, strlen(a->prefix)) || !cs_repo_is_valid_backup_name(tag))
        return;
    size_t i = 0;
    while (i < a->tags.n && strcmp(a->tags.items[i], tag))
        i++;
    if (i == a->tags.n) {
        cs_strlist_add(&a->tags, tag);
        a->newest = cs_realloc(a->newest, a->tags.n * sizeof *a->newest);
        a->ephemeral = cs_realloc(a->ephemeral, a->tags.n * sizeof *a->ephemeral);
        a->newest[i] = 0;
        a->ephemeral[i] = false;
    }
    bool eph;
    double t = cs_snapshot_dir_time(path, &eph);
    /* unknown (0): taken now, as far as anyone can tell: never old */
    a->newest[i] = t <= 0 ? INFINITY : t > a->newest[i] ? t : a->newest[i];
    a->ephemeral[i] = a->ephemeral[i] || eph;
}

static int cmp_text(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

void cs_snapshot_find_old(const cs_strlist *data_dirs, const char *prefix, double before, cs_strlist *old,
                          cs_strlist *young)
{
    cs_snapshot_find_old_in(data_dirs, NULL, prefix, before, old, young);
}

void cs_snapshot_find_old_in(const cs_strlist *data_dirs, const cs_strlist *keyspaces, const char *prefix,
                             double before, cs_strlist *old, cs_strlist *young)
{
    age_arg a = { prefix ? prefix : "", { NULL, 0 }, NULL, NULL };
    each_snapshot_in(data_dirs, keyspaces, add_age, &a);
    for (size_t i = 0; i < a.tags.n; i++)
        if (!a.ephemeral[i])
            cs_strlist_add(a.newest[i] < before ? old : young, a.tags.items[i]);
    if (old->n > 1)
        qsort(old->items, old->n, sizeof *old->items, cmp_text);
    if (young->n > 1)
        qsort(young->items, young->n, sizeof *young->items, cmp_text);
    cs_strlist_free(&a.tags);
    free(a.newest);
    free(a.ephemeral);
}

typedef struct dirs_arg {
    const char *tag;
    cs_strlist *dirs;
} dirs_arg;

static void add_dir(const char *path, const char *tag, void *arg)
{
    dirs_arg *a = arg;
    if (!strcmp(tag, a->tag))
        cs_strlist_add(a->dirs, path);
}

/* Cassandra up to 5.0 keeps no record of a snapshot without a TTL: clearing
 * one is deleting its directories, which is all `nodetool clearsnapshot`
 * does on the node. Doing it here saves starting a nodetool JVM (a second or
 * more, most of a backup in which nothing changed). Later versions track
 * every snapshot in memory: there, and whenever a directory cannot be
 * removed or the tag is still found afterwards, nodetool does it. */
static bool snapshots_untracked(const char *release)
{
    return release && (!strncmp(release, "4.", 2) || !strcmp(release, "5.0") || !strncmp(release, "5.0.", 4));
}

int cs_snapshot_clear(cs_nodetool *nt, const char *release, const cs_strlist *data_dirs, const char *tag,
                      bool *cleared, cs_err *e)
{
    return cs_snapshot_clear_in(nt, release, data_dirs, NULL, tag, cleared, e);
}

/* Is snapshot tag under data_dirs in one of keyspaces (NULL or empty: any)? */
static bool tag_left(const cs_strlist *data_dirs, const cs_strlist *keyspaces, const char *tag)
{
    if (!keyspaces || !keyspaces->n)
        return cs_snapshot_on_disk(data_dirs, tag);
    for (size_t i = 0; i < keyspaces->n; i++)
        if (cs_snapshot_in_keyspace(data_dirs, keyspaces->items[i], tag))
            return true;
    return false;
}

int cs_snapshot_clear_in(cs_nodetool *nt, const char *release, const cs_strlist *data_dirs,
                         const cs_strlist *keyspaces, const char *tag, bool *cleared, cs_err *e)
{
    cs_strlist dirs = { NULL, 0 };
    dirs_arg a = { tag, &dirs };
    each_snapshot_in(data_dirs, keyspaces, add_dir, &a);
    *cleared = dirs.n > 0;
    int rc = 0;
    if (!nt || snapshots_untracked(release)) {
        for (size_t i = 0; rc == 0 && i < dirs.n; i++)
            rc = cs_remove_tree(dirs.items[i], e);
        if (rc == 0 && !tag_left(data_dirs, keyspaces, tag)) {
            cs_strlist_free(&dirs);
            return 0;
        }
        if (!nt) {
            cs_strlist_free(&dirs);
            return rc ? rc : cs_err_set(e, CS_E_IO, "some directories of snapshot %s are left", tag);
        }
        cs_debug("snapshot %s: %s; asking nodetool", tag, rc ? e->msg : "some directories are left");
        cs_err_clear(e);
    }
    cs_strlist_free(&dirs);
    return cs_nodetool_clearsnapshot(nt, tag, keyspaces, e);
}

/* ---- the ops ---- */

/* Epoch seconds to the millisecond, as the result documents give times. */
static double ms(double t)
{
    return floor(t * 1000.0) / 1000.0;
}

static void take_identity(cs_snapshot_result *res, cs_node_info *info)
{
    res->host_id = info->host_id;
    res->address = info->address;
    info->host_id = info->address = NULL;
}

int cs_op_snapshot(cs_job *job, const cs_host *host, const cs_snapshot_req *req, cs_snapshot_result *res,
                   cs_err *e)
{
    memset(res, 0, sizeof *res);
    res->tag = cs_strdup(req->tag);
    cs_node_info info;
    json_t *schema = NULL;
    cs_nodetool *nt = NULL;
    cs_nodetool_opts nodetool_opts;
    cs_ops_nodetool_opts(host, &nodetool_opts);
    cs_job_phase(job, "node", 0, 0);
    int rc = cs_ops_read_node(host, "snapshot", &info, req->keyspaces.n ? &schema : NULL, e);
    if (!rc)
        take_identity(res, &info);
    if (!rc && req->keyspaces.n) /* a typo stops before nodetool snapshots anything */
        rc = cs_node_check_keyspaces(schema, &req->keyspaces, e);
    /* A tag taken already would mix two snapshots' files. */
    if (!rc && cs_snapshot_on_disk(&info.data_dirs, req->tag))
        rc = cs_err_set(e, CS_E_EXISTS, "the node has this snapshot already: clear it first (snapshot clear)");
    if (!rc)
        rc = cs_nodetool_new(&nodetool_opts, &nt, e);
    if (!rc && cs_cancel_requested())
        rc = cs_cancel_error(e);
    if (!rc) {
        cs_job_phase(job, "snapshot", 0, 0); /* nodetool flushes first */
        res->started = ms(cs_now());
        rc = cs_nodetool_snapshot(nt, req->tag, &req->keyspaces, e);
        res->finished = ms(cs_now());
    }
    if (rc)
        cs_err_prefix(e, "snapshot %s", req->tag);
    cs_nodetool_free(nt);
    json_decref(schema);
    cs_node_info_free(&info);
    return rc;
}

/* Clear every snapshot of the prefix older than req->older_than. */
static int clear_old(cs_job *job, cs_nodetool *nt, const cs_node_info *info, const cs_snapshot_req *req,
                     cs_snapshot_result *res, cs_err *e)
{
    cs_job_phase(job, "find", 0, 0);
    /* Without older_than (keyspaces given): every one of them, whatever its age. */
    cs_snapshot_find_old_in(&info->data_dirs, &req->keyspaces, req->prefix,
                            req->older_than > 0 ? cs_now() - req->older_than : INFINITY, &res->cleared_tags,
                            &res->kept_tags);
    if (!(req->older_than > 0)) { /* a time find_old cannot tell is young to it: asked for all the same */
        for (size_t i = 0; i < res->kept_tags.n; i++)
            cs_strlist_add(&res->cleared_tags, res->kept_tags.items[i]);
        cs_strlist_free(&res->kept_tags);
    }
    cs_job_phase(job, "clear", res->cleared_tags.n, 0);
    int rc = 0;
    size_t done = 0;
    for (size_t i = 0; !rc && i < res->cleared_tags.n; i++) {
        const char *tag = res->cleared_tags.items[i];
        bool there = false;
        cs_job_item(job, tag);
        rc = cs_snapshot_clear_in(nt, info->release_version, &info->data_dirs, &req->keyspaces, tag, &there, e);
        if (rc)
            cs_err_prefix(e, "snapshot %s", tag);
        else
            done++;
        cs_job_add_files(job, 1);
    }
    /* What an error left: only the tags cleared are named so. */
    while (res->cleared_tags.n > done)
        free(res->cleared_tags.items[--res->cleared_tags.n]);
    return rc;
}

/* Does the tree at path hold anything but directories? */
static bool holds_files(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return cs_exists(path);
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *child = cs_path_join(path, de->d_name);
        struct stat st;
        found = lstat(child, &st) != 0 || !S_ISDIR(st.st_mode) || holds_files(child);
        free(child);
    }
    closedir(d);
    return found;
}

static bool schema_has(const json_t *schema, const char *ks)
{
    size_t i;
    const json_t *row;
    json_array_foreach(schema, i, row) {
        const char *name = json_string_value(json_object_get(row, "keyspace"));
        if (name && !strcmp(name, ks))
            return true;
    }
    return false;
}

/* After a clear in keyspaces: the directories of those that the node's
 * schema has no more (dropped) and that hold no file, only the empty table
 * directories Cassandra leaves of a dropped keyspace, go whole. A keyspace
 * of the schema keeps its directories, even empty ones. */
static void remove_dropped_dirs(const cs_host *host, const cs_node_info *info, const cs_strlist *keyspaces)
{
    cs_node_info now;
    json_t *schema = NULL;
    cs_err err;
    cs_err_clear(&err);
    if (cs_ops_read_node(host, "snapshot clear", &now, &schema, &err)) {
        cs_debug("snapshot clear: no schema to tell dropped keyspaces by (%s): their directories stay", err.msg);
        return;
    }
    for (size_t k = 0; k < keyspaces->n; k++) {
        if (schema_has(schema, keyspaces->items[k]))
            continue;
        for (size_t d = 0; d < info->data_dirs.n; d++) {
            char *dir = cs_path_join(info->data_dirs.items[d], keyspaces->items[k]);
            if (cs_is_dir(dir) && !holds_files(dir)) {
                cs_info("removing %s: the empty directories of dropped keyspace %s", dir, keyspaces->items[k]);
                if (cs_remove_tree(dir, &err))
                    cs_warn("%s", err.msg);
            }
            free(dir);
        }
    }
    json_decref(schema);
    cs_node_info_free(&now);
}

int cs_op_snapshot_clear(cs_job *job, const cs_host *host, const cs_snapshot_req *req, cs_snapshot_result *res,
                         cs_err *e)
{
    memset(res, 0, sizeof *res);
    res->tag = req->tag ? cs_strdup(req->tag) : NULL;
    cs_node_info info;
    cs_nodetool *nt = NULL;
    cs_nodetool_opts nodetool_opts;
    cs_ops_nodetool_opts(host, &nodetool_opts);
    bool live = true;
    cs_job_phase(job, "node", 0, 0);
    int rc = cs_ops_read_node_or_cached(host, "snapshot clear", &info, &live, e);
    if (!rc)
        take_identity(res, &info);
    /* A stopped node has nothing in memory: its directories are all. */
    if (!rc && live)
        rc = cs_nodetool_new(&nodetool_opts, &nt, e);
    if (!rc && !req->tag) {
        rc = clear_old(job, nt, &info, req, res, e);
    } else if (!rc) {
        cs_job_phase(job, "clear", 0, 0);
        rc = cs_snapshot_clear_in(nt, info.release_version, &info.data_dirs, &req->keyspaces, req->tag, &res->cleared,
                                  e);
    }
    if (!rc && live && req->keyspaces.n)
        remove_dropped_dirs(host, &info, &req->keyspaces);
    if (rc && req->tag)
        cs_err_prefix(e, "snapshot clear %s", req->tag);
    else if (rc)
        cs_err_prefix(e, "snapshot clear");
    cs_nodetool_free(nt);
    cs_node_info_free(&info);
    return rc;
}

void cs_snapshot_result_free(cs_snapshot_result *res)
{
    free(res->tag);
    cs_strlist_free(&res->cleared_tags);
    cs_strlist_free(&res->kept_tags);
    free(res->host_id);
    free(res->address);
    memset(res, 0, sizeof *res);
}

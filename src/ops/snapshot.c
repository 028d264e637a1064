/* snapshot.c - a node's snapshots: the ops `snapshot` and `snapshot clear`,
 * and finding and clearing snapshots on disk (see ops/snapshot.h). */
#include "ops/snapshot.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    cs_strlist dirs = { NULL, 0 };
    dirs_arg a = { tag, &dirs };
    each_snapshot(data_dirs, NULL, add_dir, &a);
    *cleared = dirs.n > 0;
    int rc = 0;
    if (!nt || snapshots_untracked(release)) {
        for (size_t i = 0; rc == 0 && i < dirs.n; i++)
            rc = cs_remove_tree(dirs.items[i], e);
        if (rc == 0 && !cs_snapshot_on_disk(data_dirs, tag)) {
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
    return cs_nodetool_clearsnapshot(nt, tag, e);
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

int cs_op_snapshot_clear(cs_job *job, const cs_host *host, const cs_snapshot_req *req, cs_snapshot_result *res,
                         cs_err *e)
{
    memset(res, 0, sizeof *res);
    res->tag = cs_strdup(req->tag);
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
    if (!rc) {
        cs_job_phase(job, "clear", 0, 0);
        rc = cs_snapshot_clear(nt, info.release_version, &info.data_dirs, req->tag, &res->cleared, e);
    }
    if (rc)
        cs_err_prefix(e, "snapshot clear %s", req->tag);
    cs_nodetool_free(nt);
    cs_node_info_free(&info);
    return rc;
}

void cs_snapshot_result_free(cs_snapshot_result *res)
{
    free(res->tag);
    free(res->host_id);
    free(res->address);
    memset(res, 0, sizeof *res);
}

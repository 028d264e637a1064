/* backup.c - cluster backup: one backup set for every node (see cluster.h).
 *
 * In the order it happens:
 *   1. the nodes and their agents (cluster/coord.h); a node that cannot be
 *      backed up stops everything here unless --allow-partial: nothing has
 *      been written yet;
 *   2. the set record (repo/set.h): the name is the set's from now on;
 *   3. the pause command, the snapshots on all nodes at once, the resume
 *      command (always, once the pause ran);
 *   4. each node's backup of its snapshot by its agent, --parallel-nodes at
 *      a time, retried with backoff; a node that still fails is named in
 *      the commit, the others' uploads stay (the next backup reuses them);
 *   5. the cluster manifest, then the commit;
 *   6. every snapshot cleared (a node's own backup clears its snapshot; this
 *      is for the nodes whose backup never ran). */
#include "cluster/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/coord.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "common/proc.h"
#include "ops/ops.h"
#include "repo/set.h"

typedef struct cbackup {
    cs_coord coord;
    const cs_cluster_backup_req *req;
    cs_cluster_backup_result *res;
    char *tag;
    char *set_id;
} cbackup;

static void default_name(char out[32])
{
    cs_utc_stamp((int64_t)time(NULL), out);
}

/* ---- hooks ---- */

/* Run an operator's hook command (no shell: common/proc.h). */
static int run_hook(const char *what, const char *cmd, cs_err *e)
{
    cs_strlist argv = { NULL, 0 };
    cs_proc_result pr;
    memset(&pr, 0, sizeof pr);
    int rc = cs_split_command(cmd, &argv, e);
    if (!rc && argv.n == 0)
        rc = cs_err_set(e, CS_E_USAGE, "{%s} is empty", what);
    if (!rc)
        rc = cs_proc_run(&argv, &pr, e);
    if (!rc && pr.exit_code != 0) {
        char line[256];
        cs_last_line(cs_buf_str(&pr.err), line, sizeof line);
        rc = cs_err_set(e, CS_E_EXTERNAL, "{%s} exited with %d%s%s", what, pr.exit_code, line[0] ? ": " : "",
                        line);
    }
    cs_proc_result_free(&pr);
    cs_strlist_free(&argv);
    return rc;
}

/* ---- snapshots ---- */


static int snapshot_one(void *arg, size_t i, cs_err *e)
{
    (void)e;
    cbackup *b = arg;
    cs_cluster_node *n = &b->coord.nodes[i];
    if (!n->ok)
        return 0;
    json_t *req = json_pack("{s:s, s:o}", "tag", b->tag, "keyspaces", cs_strlist_json(&b->req->keyspaces));
    json_t *doc = NULL;
    cs_err err;
    cs_err_clear(&err);
    double asked = cs_now();
    if (cs_coord_run(&b->coord, i, "snapshot", req, &doc, &err)) {
        cs_err_prefix(&err, "snapshot");
        cs_cluster_node_fail(n, &err);
        return 0; /* the other nodes go on: this one is left out */
    }
    json_t *started = json_object_get(doc, "started"), *finished = json_object_get(doc, "finished");
    n->snapshot_started = json_is_number(started) ? json_number_value(started) : asked;
    n->snapshot_finished = json_is_number(finished) ? json_number_value(finished) : cs_now();
    json_decref(doc);
    return 0;
}

/* All snapshots at once: one thread per node, so that they start as close
 * together as the agents answer. */
static int take_snapshots(cbackup *b, cs_err *e)
{
    cs_coord_phase(&b->coord, "snapshot");
    size_t n = b->coord.n;
    return cs_parallel_for(n, (unsigned)(n > 64 ? 64 : n), snapshot_one, b, e);
}

static void measure_spread(cbackup *b)
{
    double lo = 0, hi = 0;
    for (size_t i = 0; i < b->coord.n; i++) {
        double t = b->coord.nodes[i].snapshot_started;
        if (!b->coord.nodes[i].ok || t <= 0)
            continue;
        if (lo == 0 || t < lo)
            lo = t;
        if (t > hi)
            hi = t;
    }
    b->res->snapshot_spread = hi - lo;
}

/* The pause window around the snapshots; resume runs whenever pause ran. */
static int snapshots_in_pause(cbackup *b, cs_err *e)
{
    const cs_cluster_backup_req *req = b->req;
    b->res->pause_seconds = -1;
    if (!req->pause_cmd || !*req->pause_cmd)
        return take_snapshots(b, e);
    cs_job_phase(b->coord.job, "pause", 0, 0);
    double t0 = cs_now();
    int rc = run_hook("pause_cmd", req->pause_cmd, e);
    if (rc)
        return cs_err_prefix(e, "the application could not be paused; no snapshot was taken");
    rc = take_snapshots(b, e);
    cs_err resume_err;
    cs_err_clear(&resume_err);
    int rrc = req->resume_cmd && *req->resume_cmd ? run_hook("resume_cmd", req->resume_cmd, &resume_err) : 0;
    b->res->pause_seconds = cs_now() - t0;
    b->res->resumed = rrc == 0;
    if (rrc && !rc) {
        *e = resume_err;
        rc = cs_err_prefix(e, "the snapshots are taken but the application was not resumed");
    } else if (rrc) {
        cs_warn("%s", resume_err.msg);
    }
    return rc;
}

/* ---- the nodes' backups ---- */

static bool worth_retrying(int code)
{
    return code != CS_E_USAGE && code != CS_E_INVAL && code != CS_E_EXISTS && code != CS_E_CANCELED &&
           code != CS_E_NOKEY;
}

static json_t *backup_request(const cbackup *b)
{
    const cs_cluster_backup_req *req = b->req;
    json_t *r = json_object();
    json_object_set_new(r, "repo", json_string(req->repo));
    json_object_set_new(r, "name", json_string(b->res->name));
    json_object_set_new(r, "set", json_string(b->set_id));
    json_object_set_new(r, "snapshot", json_string(b->tag));
    json_object_set_new(r, "keyspaces", cs_strlist_json(&req->keyspaces));
    json_object_set_new(r, "jobs", json_integer(req->jobs));
    json_object_set_new(r, "zstd_level", json_integer(req->zstd_level));
    json_object_set_new(r, "lock_wait", json_real(req->lock_wait));
    json_object_set_new(r, "lock_stale", json_real(req->lock_stale));
    return r;
}

static int backup_one(void *arg, size_t i, cs_err *e)
{
    cbackup *b = arg;
    cs_cluster_node *n = &b->coord.nodes[i];
    if (!n->ok)
        return 0;
    cs_err err;
    cs_err_clear(&err);
    double wait = 1;
    for (unsigned attempt = 0;; attempt++) {
        n->attempts = attempt + 1;
        json_t *doc = NULL;
        int rc = cs_coord_run(&b->coord, i, "backup", backup_request(b), &doc, &err);
        if (!rc) {
            n->result = doc;
            return 0;
        }
        if (rc == CS_E_CANCELED || cs_cancel_requested()) {
            *e = err;
            return rc; /* stop the others too */
        }
        if (attempt >= (unsigned)b->req->retries || !worth_retrying(rc))
            break;
        cs_warn("node %s: %s; trying again in %.0f s", cs_cluster_node_name(n), err.msg, wait);
        if (cs_cancel_sleep(wait, e))
            return e->code;
        wait *= 2;
        cs_err_clear(&err);
    }
    cs_cluster_node_fail(n, &err);
    return 0;
}

static int backup_nodes(cbackup *b, cs_err *e)
{
    cs_coord_phase(&b->coord, "upload");
    long k = b->req->parallel_nodes > 0 ? b->req->parallel_nodes : 1;
    return cs_parallel_for(b->coord.n, (unsigned)k, backup_one, b, e);
}

/* ---- the set ---- */

static void set_hosts(const cbackup *b, cs_backup_set *s)
{
    s->n_hosts = b->coord.n;
    s->hosts = cs_calloc(s->n_hosts ? s->n_hosts : 1, sizeof *s->hosts);
    for (size_t i = 0; i < s->n_hosts; i++) {
        const cs_cluster_node *n = &b->coord.nodes[i];
        s->hosts[i].host_id = cs_strdup(n->host_id);
        s->hosts[i].address = cs_strdup(n->address ? n->address : "");
        s->hosts[i].datacenter = cs_strdup(n->datacenter ? n->datacenter : "");
        s->hosts[i].rack = cs_strdup(n->rack ? n->rack : "");
    }
}

static void set_outcomes(const cbackup *b, cs_backup_set *s)
{
    for (size_t i = 0; i < s->n_hosts; i++) {
        const cs_cluster_node *n = &b->coord.nodes[i];
        s->hosts[i].ok = n->ok && n->result;
        free(s->hosts[i].reason);
        s->hosts[i].reason = s->hosts[i].ok ? NULL : cs_strdup(n->reason ? n->reason : "not backed up");
    }
}

static json_t *cluster_manifest(const cbackup *b)
{
    json_t *m = json_object();
    json_object_set_new(m, "type", json_string("cassette-cluster-manifest"));
    json_object_set_new(m, "format", json_integer(1));
    json_object_set_new(m, "name", json_string(b->res->name));
    json_object_set_new(m, "set_id", json_string(b->set_id));
    json_object_set_new(m, "cluster", json_string(b->coord.cluster ? b->coord.cluster : ""));
    json_object_set_new(m, "partitioner", json_string(b->coord.partitioner ? b->coord.partitioner : ""));
    json_object_set_new(m, "schema", b->coord.schema ? json_incref(b->coord.schema) : json_null());
    json_object_set_new(m, "snapshot_spread", json_real(b->res->snapshot_spread));
    json_object_set_new(m, "pause_seconds",
                        b->res->pause_seconds >= 0 ? json_real(b->res->pause_seconds) : json_null());
    json_t *nodes = json_array();
    for (size_t i = 0; i < b->coord.n; i++) {
        const cs_cluster_node *n = &b->coord.nodes[i];
        json_t *o = cs_cluster_node_json(n);
        json_object_del(o, "agent");
        json_object_set_new(o, "ok", json_boolean(n->ok && n->result));
        json_object_set_new(o, "snapshot_started", json_real(n->snapshot_started));
        json_object_set_new(o, "snapshot_finished", json_real(n->snapshot_finished));
        char *key = cs_repo_backup_key(b->res->name, n->host_id, "manifest");
        json_object_set_new(o, "manifest", n->ok && n->result ? json_string(key) : json_null());
        free(key);
        json_array_append_new(nodes, o);
    }
    json_object_set_new(m, "nodes", nodes);
    return m;
}

static int commit_set(cbackup *b, cs_repo *repo, cs_backup_set *s, cs_err *e)
{
    cs_job_phase(b->coord.job, "manifest", 0, 0);
    json_t *m = cluster_manifest(b);
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(m);
    int rc = cs_repo_set_put_manifest(repo, s->name, text, strlen(text), e);
    free(text);
    set_outcomes(b, s);
    s->finished = cs_now();
    if (!rc)
        rc = cs_repo_set_commit(repo, s, e);
    return rc;
}

static int clear_one(void *arg, size_t i, cs_err *e)
{
    (void)e;
    cbackup *b = arg;
    cs_cluster_node *n = &b->coord.nodes[i];
    if (!n->agent || n->result) /* its own backup cleared it */
        return 0;
    json_t *doc = NULL;
    cs_err err;
    cs_err_clear(&err);
    if (cs_coord_run(&b->coord, i, "snapshot clear", json_pack("{s:s}", "tag", b->tag), &doc, &err))
        cs_warn("node %s: snapshot %s could not be cleared: %s", cs_cluster_node_name(n), b->tag, err.msg);
    json_decref(doc);
    return 0;
}

static void clear_snapshots(cbackup *b)
{
    cs_job_phase(b->coord.job, "cleanup", 0, 0);
    cs_err ignored;
    cs_err_clear(&ignored);
    cs_parallel_for(b->coord.n, (unsigned)(b->coord.n > 64 ? 64 : b->coord.n), clear_one, b, &ignored);
}

/* Without --allow-partial every node must be able to take part before
 * anything is written. */
static int check_nodes(cbackup *b, cs_err *e)
{
    size_t down = 0;
    const cs_cluster_node *first = NULL;
    for (size_t i = 0; i < b->coord.n; i++) {
        cs_cluster_node *n = &b->coord.nodes[i];
        if (n->ok && n->stopped)
            n->ok = false;
        if (!n->ok) {
            down++;
            first = first ? first : n;
            cs_warn("node %s cannot be backed up: %s", cs_cluster_node_name(n), n->reason);
        }
    }
    if (!down)
        return 0;
    if (down == b->coord.n)
        return cs_err_set(e, first->code ? first->code : CS_E_UNAVAIL, "no node can be backed up: %s: %s",
                          cs_cluster_node_name(first), first->reason);
    if (b->req->allow_partial)
        return 0;
    return cs_err_set(e, first->code ? first->code : CS_E_UNAVAIL,
                      "node %s cannot be backed up: %s; nothing was backed up (%zu of %zu nodes; "
                      "{allow_partial} backs up the others)",
                      cs_cluster_node_name(first), first->reason, b->coord.n - down, b->coord.n);
}

static void fill_result(cbackup *b)
{
    cs_cluster_backup_result *res = b->res;
    res->cluster = b->coord.cluster ? cs_strdup(b->coord.cluster) : NULL;
    res->n_nodes = b->coord.n;
    res->nodes = cs_calloc(b->coord.n ? b->coord.n : 1, sizeof *res->nodes);
    for (size_t i = 0; i < b->coord.n; i++) {
        cs_cluster_node *n = &b->coord.nodes[i];
        cs_cluster_node_copy(&res->nodes[i], n);
        res->nodes[i].attempts = n->attempts;
        res->nodes[i].result = json_incref(n->result);
        res->nodes[i].ok = n->ok && n->result;
        res->complete += res->nodes[i].ok;
    }
}

int cs_op_cluster_backup(cs_job *job, const cs_host *host, const cs_cluster_backup_req *req,
                         cs_cluster_backup_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    res->pause_seconds = -1;
    res->allow_partial = req->allow_partial;
    char name[32];
    default_name(name);
    res->name = cs_strdup(req->name ? req->name : name);
    cbackup b = { .req = req, .res = res };
    b.tag = cs_sprintf("cassette-%s", res->name);
    cs_repo *repo = NULL;
    cs_backup_set set;
    memset(&set, 0, sizeof set);
    bool begun = false;

    cs_job_phase(job, "discover", 0, 0);
    cs_coord_target t = { req->contact, &req->agents, req->agent_template, NULL, 0, true };
    int rc = cs_coord_open(&b.coord, job, host, &t, e);
    if (!rc)
        rc = check_nodes(&b, e);
    if (!rc)
        rc = cs_ops_open_repo(host, req->repo, NULL, false, &repo, e);
    if (!rc) {
        b.set_id = cs_repo_set_new_id();
        set.name = cs_strdup(res->name);
        set.set_id = cs_strdup(b.set_id);
        set.cluster = cs_strdup(b.coord.cluster ? b.coord.cluster : "");
        char hostname[256] = "";
        gethostname(hostname, sizeof hostname - 1);
        set.coordinator = cs_strdup(hostname[0] ? hostname : "unknown");
        set.started = t0;
        set_hosts(&b, &set);
        rc = cs_repo_set_begin(repo, &set, e);
        begun = rc == 0;
    }
    if (!rc)
        rc = snapshots_in_pause(&b, e);
    if (begun && !rc) {
        measure_spread(&b);
        rc = backup_nodes(&b, e);
    }
    /* Whatever happened, a begun set is committed with what each node did
     * (an interrupted one too: its nodes are named), and the snapshots go. */
    if (begun) {
        cs_err commit_err;
        cs_err_clear(&commit_err);
        if (commit_set(&b, repo, &set, &commit_err) && !rc) {
            *e = commit_err;
            rc = e->code;
        }
        clear_snapshots(&b);
    }
    res->set_id = b.set_id ? cs_strdup(b.set_id) : NULL;
    fill_result(&b);
    res->seconds = cs_now() - t0;
    if (rc && cs_cancel_requested())
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; the nodes' stored files are kept for the next backup");
    if (rc)
        cs_err_prefix(e, "cluster backup %s", res->name);
    cs_backup_set_free(&set);
    cs_repo_free(repo);
    cs_coord_close(&b.coord);
    free(b.tag);
    free(b.set_id);
    return rc;
}

int cs_op_cluster_backup_verdict(const cs_cluster_backup_req *req, const cs_cluster_backup_result *res, cs_err *e)
{
    if (res->complete == res->n_nodes || req->allow_partial)
        return 0;
    const cs_cluster_node *first = NULL;
    for (size_t i = 0; i < res->n_nodes && !first; i++)
        if (!res->nodes[i].ok)
            first = &res->nodes[i];
    return cs_err_set(e, first && first->code ? first->code : CS_E_EXTERNAL,
                      "cluster backup %s is incomplete: %zu of %zu nodes (node %s: %s)", res->name, res->complete,
                      res->n_nodes, first ? cs_cluster_node_name(first) : "?",
                      first && first->reason ? first->reason : "failed");
}

json_t *cs_cluster_backup_result_json(const cs_cluster_backup_req *req, const cs_cluster_backup_result *res)
{
    (void)req;
    json_t *d = json_object();
    json_object_set_new(d, "name", json_string(res->name));
    json_object_set_new(d, "set_id", res->set_id ? json_string(res->set_id) : json_null());
    json_object_set_new(d, "cluster", res->cluster ? json_string(res->cluster) : json_null());
    json_object_set_new(d, "complete", json_boolean(res->n_nodes && res->complete == res->n_nodes));
    json_object_set_new(d, "nodes_complete", json_integer((json_int_t)res->complete));
    json_object_set_new(d, "nodes_expected", json_integer((json_int_t)res->n_nodes));
    json_object_set_new(d, "allow_partial", json_boolean(res->allow_partial));
    json_object_set_new(d, "snapshot_spread", json_real(res->snapshot_spread));
    json_object_set_new(d, "pause_seconds", res->pause_seconds >= 0 ? json_real(res->pause_seconds) : json_null());
    json_object_set_new(d, "seconds", json_real(res->seconds));
    json_t *nodes = json_array();
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_cluster_node *n = &res->nodes[i];
        json_t *o = cs_cluster_node_json(n);
        json_object_set_new(o, "attempts", json_integer(n->attempts));
        json_object_set_new(o, "snapshot_started", n->snapshot_started > 0 ? json_real(n->snapshot_started)
                                                                           : json_null());
        json_object_set_new(o, "snapshot_finished", n->snapshot_finished > 0 ? json_real(n->snapshot_finished)
                                                                             : json_null());
        json_object_set_new(o, "backup", n->result ? json_incref(n->result) : json_null());
        json_array_append_new(nodes, o);
    }
    json_object_set_new(d, "nodes", nodes);
    return d;
}

void cs_cluster_backup_result_free(cs_cluster_backup_result *res)
{
    for (size_t i = 0; i < res->n_nodes; i++)
        cs_cluster_node_free(&res->nodes[i]);
    free(res->nodes);
    free(res->name);
    free(res->set_id);
    free(res->cluster);
    memset(res, 0, sizeof *res);
}

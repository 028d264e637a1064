/* snapclean.c - cluster snapshot-cleanup (see cluster.h): every node's
 * agent runs `snapshot clear` with older_than and prefix, all nodes at
 * once; the result is what each node cleared, or why it could not. */
#include "cluster/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/coord.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/cancel.h"
#include "common/parallel.h"

typedef struct sclean {
    cs_coord coord;
    const cs_cluster_snapshot_cleanup_req *req;
    cs_cluster_snapshot_cleanup_result *res;
} sclean;

/* Node i: its agent clears; a node it could not reach keeps its reason. */
static int clean_one(void *arg, size_t i, cs_err *e)
{
    (void)e;
    sclean *s = arg;
    cs_cluster_node *n = &s->res->nodes[i];
    if (!n->ok || !n->agent)
        return 0;
    json_t *req = json_pack("{s:f, s:s}", "older_than", s->req->older_than, "prefix",
                            s->req->prefix ? s->req->prefix : "");
    json_t *doc = NULL;
    cs_err err;
    cs_err_clear(&err);
    if (cs_coord_run(&s->coord, i, "snapshot clear", req, &doc, &err))
        cs_cluster_node_fail(n, &err);
    else
        n->result = doc;
    return 0;
}

int cs_op_cluster_snapshot_cleanup(cs_job *job, const cs_host *host, const cs_cluster_snapshot_cleanup_req *req,
                                   cs_cluster_snapshot_cleanup_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    sclean s = { .req = req, .res = res };
    cs_job_phase(job, "discover", 0, 0);
    cs_coord_target t = { req->contact, &req->agents, req->agent_template, NULL, 0, false };
    int rc = cs_coord_open(&s.coord, job, host, &t, e);
    if (!rc) {
        res->cluster = s.coord.cluster ? cs_strdup(s.coord.cluster) : NULL;
        res->n_nodes = s.coord.n;
        res->nodes = cs_calloc(s.coord.n ? s.coord.n : 1, sizeof *res->nodes);
        for (size_t i = 0; i < s.coord.n; i++)
            cs_cluster_node_copy(&res->nodes[i], &s.coord.nodes[i]);
        cs_coord_phase(&s.coord, "clear");
        cs_err ignored;
        cs_err_clear(&ignored);
        rc = cs_parallel_for(s.coord.n, (unsigned)(s.coord.n > 16 ? 16 : s.coord.n ? s.coord.n : 1), clean_one, &s,
                             &ignored);
        if (rc == CS_E_CANCELED)
            rc = cs_cancel_error(e);
        else
            rc = 0; /* clean_one fails nodes, never the operation */
        for (size_t i = 0; i < res->n_nodes; i++) {
            res->failed += !res->nodes[i].ok;
            res->cleared += json_array_size(json_object_get(res->nodes[i].result, "cleared_tags"));
        }
    }
    cs_coord_close(&s.coord);
    res->seconds = cs_now() - t0;
    if (rc)
        cs_err_prefix(e, "cluster snapshot-cleanup");
    return rc;
}

int cs_op_cluster_snapshot_cleanup_verdict(const cs_cluster_snapshot_cleanup_req *req,
                                           const cs_cluster_snapshot_cleanup_result *res, cs_err *e)
{
    (void)req;
    if (!res->failed)
        return 0;
    const cs_cluster_node *first = NULL;
    for (size_t i = 0; i < res->n_nodes && !first; i++)
        if (!res->nodes[i].ok)
            first = &res->nodes[i];
    return cs_err_set(e, first && first->code ? first->code : CS_E_EXTERNAL,
                      "snapshots of %zu of %zu nodes could not be cleaned up (node %s: %s)", res->failed,
                      res->n_nodes, cs_cluster_node_name(first), first->reason ? first->reason : "failed");
}

json_t *cs_cluster_snapshot_cleanup_result_json(const cs_cluster_snapshot_cleanup_req *req,
                                                const cs_cluster_snapshot_cleanup_result *res)
{
    json_t *d = json_object();
    json_object_set_new(d, "cluster", res->cluster ? json_string(res->cluster) : json_null());
    json_object_set_new(d, "older_than", json_real(req->older_than));
    json_object_set_new(d, "prefix", json_string(req->prefix ? req->prefix : ""));
    json_t *nodes = json_array();
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_cluster_node *n = &res->nodes[i];
        json_t *o = cs_cluster_node_json(n);
        json_object_del(o, "tokens");
        json_t *cleared = n->result ? json_object_get(n->result, "cleared_tags") : NULL;
        json_t *kept = n->result ? json_object_get(n->result, "kept_tags") : NULL;
        json_object_set_new(o, "cleared_tags", cleared ? json_incref(cleared) : json_array());
        json_object_set_new(o, "kept_tags", kept ? json_incref(kept) : json_array());
        json_array_append_new(nodes, o);
    }
    json_object_set_new(d, "nodes", nodes);
    json_object_set_new(d, "nodes_failed", json_integer((json_int_t)res->failed));
    json_object_set_new(d, "cleared", json_integer((json_int_t)res->cleared));
    json_object_set_new(d, "seconds", json_real(res->seconds));
    return d;
}

void cs_cluster_snapshot_cleanup_result_free(cs_cluster_snapshot_cleanup_result *res)
{
    for (size_t i = 0; i < res->n_nodes; i++)
        cs_cluster_node_free(&res->nodes[i]);
    free(res->nodes);
    free(res->cluster);
    memset(res, 0, sizeof *res);
}

/* status.c - cluster status and cluster tokens (see cluster.h). */
#include "cluster/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/coord.h"
#include "common/buf.h"
#include "common/fs.h"
#include "ops/ops.h"
#include "repo/set.h"

/* The newest complete backup set of the repository. */
static int newest_complete(const cs_host *host, const char *location, cs_cluster_status_result *res, cs_err *e)
{
    cs_repo *repo = NULL;
    cs_coord_sets sets;
    memset(&sets, 0, sizeof sets);
    int rc = cs_ops_open_repo(host, location, NULL, false, &repo, e);
    if (!rc)
        rc = cs_coord_read_sets(repo, NULL, &sets, e);
    if (!rc) {
        res->sets = sets.sets;
        res->sets_complete = sets.complete;
        res->newest = sets.newest;
        res->newest_finished = sets.newest_finished;
        sets.newest = NULL;
    }
    cs_coord_sets_free(&sets);
    cs_repo_free(repo);
    return rc;
}

int cs_op_cluster_status(cs_job *job, const cs_host *host, const cs_cluster_status_req *req,
                         cs_cluster_status_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    cs_coord c;
    cs_job_phase(job, "discover", 0, 0);
    cs_coord_target t = { req->contact, &req->agents, req->agent_template, NULL, 0, false };
    int rc = cs_coord_open(&c, job, host, &t, e);
    if (!rc) {
        res->cluster = c.cluster ? cs_strdup(c.cluster) : NULL;
        res->n_nodes = c.n;
        res->nodes = cs_calloc(c.n ? c.n : 1, sizeof *res->nodes);
        for (size_t i = 0; i < c.n; i++) {
            cs_cluster_node_copy(&res->nodes[i], &c.nodes[i]);
            res->nodes[i].facts = json_incref(c.nodes[i].facts);
            res->reachable += c.nodes[i].ok;
        }
    }
    cs_coord_close(&c);
    if (!rc && req->repo && *req->repo) {
        cs_job_phase(job, "repository", 0, 0);
        rc = newest_complete(host, req->repo, res, e);
    }
    return rc;
}

int cs_op_cluster_status_verdict(const cs_cluster_status_req *req, const cs_cluster_status_result *res, cs_err *e)
{
    (void)req;
    if (res->reachable == res->n_nodes)
        return 0;
    return cs_err_set(e, CS_E_UNAVAIL, "%zu of %zu agents cannot be reached", res->n_nodes - res->reachable,
                      res->n_nodes);
}

json_t *cs_cluster_status_result_json(const cs_cluster_status_req *req, const cs_cluster_status_result *res)
{
    (void)req;
    json_t *d = json_object();
    json_object_set_new(d, "cluster", res->cluster ? json_string(res->cluster) : json_null());
    json_t *nodes = json_array();
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_cluster_node *n = &res->nodes[i];
        json_t *o = cs_cluster_node_json(n);
        json_object_set_new(o, "reachable", json_boolean(n->ok));
        json_object_set_new(o, "cassandra_up", json_boolean(n->ok && !n->stopped));
        json_t *version = n->facts ? json_object_get(n->facts, "version") : NULL;
        json_object_set(o, "agent_version", version ? version : json_null());
        json_t *release = n->facts ? json_object_get(n->facts, "release_version") : NULL;
        json_object_set(o, "release_version", release ? release : json_null());
        json_array_append_new(nodes, o);
    }
    json_object_set_new(d, "nodes", nodes);
    json_object_set_new(d, "reachable", json_integer((json_int_t)res->reachable));
    if (req->repo && *req->repo) {
        json_t *r = json_object();
        json_object_set_new(r, "sets", json_integer((json_int_t)res->sets));
        json_object_set_new(r, "sets_complete", json_integer((json_int_t)res->sets_complete));
        json_object_set_new(r, "newest_complete", res->newest ? json_string(res->newest) : json_null());
        json_object_set_new(r, "newest_finished", res->newest ? json_real(res->newest_finished) : json_null());
        json_object_set_new(r, "newest_age", res->newest ? json_real(cs_now() - res->newest_finished) : json_null());
        json_object_set_new(d, "repository", r);
    }
    return d;
}

void cs_cluster_status_result_free(cs_cluster_status_result *res)
{
    for (size_t i = 0; i < res->n_nodes; i++)
        cs_cluster_node_free(&res->nodes[i]);
    free(res->nodes);
    free(res->cluster);
    free(res->newest);
    memset(res, 0, sizeof *res);
}

/* ---- cluster tokens ---- */

int cs_cluster_read_manifest(cs_repo *repo, const char *name, json_t **out, cs_err *e)
{
    cs_buf b = CS_BUF_INIT;
    int rc = cs_repo_set_get_manifest(repo, name, &b, e);
    if (rc == CS_E_NOTFOUND)
        rc = cs_err_set(e, CS_E_NOTFOUND, "there is no cluster backup named %s (cassette list shows the backups; a "
                                          "node backup taken alone is restored with cassette restore)", name);
    if (!rc) {
        json_error_t je;
        *out = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, &je);
        bool parsed = *out != NULL;
        if (!parsed || !json_is_array(json_object_get(*out, "nodes"))) {
            json_decref(*out);
            *out = NULL;
            rc = cs_err_set(e, CS_E_CORRUPT, "the cluster manifest of %s is damaged: %s", name,
                            parsed ? "it lists no nodes" : je.text);
        }
    }
    cs_buf_free(&b);
    return rc;
}

static char *text_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? cs_strdup(s) : NULL;
}

int cs_op_cluster_tokens(cs_job *job, const cs_host *host, const cs_cluster_tokens_req *req,
                         cs_cluster_tokens_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    res->backup = cs_strdup(req->backup);
    cs_repo *repo = NULL;
    json_t *m = NULL;
    int rc = cs_ops_open_repo(host, req->repo, NULL, false, &repo, e);
    if (!rc)
        rc = cs_cluster_read_manifest(repo, req->backup, &m, e);
    if (!rc) {
        res->cluster = text_of(m, "cluster");
        res->partitioner = text_of(m, "partitioner");
        json_t *nodes = json_object_get(m, "nodes");
        res->n_nodes = json_array_size(nodes);
        res->nodes = cs_calloc(res->n_nodes ? res->n_nodes : 1, sizeof *res->nodes);
        for (size_t i = 0; i < res->n_nodes; i++) {
            json_t *o = json_array_get(nodes, i), *t;
            cs_cluster_node *n = &res->nodes[i];
            n->host_id = text_of(o, "host_id");
            n->address = text_of(o, "address");
            n->datacenter = text_of(o, "datacenter");
            n->rack = text_of(o, "rack");
            n->ok = json_is_true(json_object_get(o, "ok"));
            size_t k;
            json_array_foreach(json_object_get(o, "tokens"), k, t)
                if (json_is_string(t))
                    cs_strlist_add(&n->tokens, json_string_value(t));
        }
    }
    if (rc)
        cs_err_prefix(e, "cluster tokens %s", req->backup);
    json_decref(m);
    cs_repo_free(repo);
    return rc;
}

json_t *cs_cluster_tokens_result_json(const cs_cluster_tokens_req *req, const cs_cluster_tokens_result *res)
{
    (void)req;
    json_t *d = json_object();
    json_object_set_new(d, "backup", json_string(res->backup));
    json_object_set_new(d, "cluster", res->cluster ? json_string(res->cluster) : json_null());
    json_object_set_new(d, "partitioner", res->partitioner ? json_string(res->partitioner) : json_null());
    json_t *nodes = json_array();
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_cluster_node *n = &res->nodes[i];
        json_t *o = cs_cluster_node_json(n);
        json_object_del(o, "agent");
        json_object_del(o, "rpc_address");
        json_object_del(o, "reason");
        cs_buf line = CS_BUF_INIT;
        cs_buf_addstr(&line, "initial_token: ");
        for (size_t k = 0; k < n->tokens.n; k++)
            cs_buf_printf(&line, "%s%s", k ? "," : "", n->tokens.items[k]);
        json_object_set_new(o, "initial_token", json_string(cs_buf_str(&line)));
        json_object_set_new(o, "num_tokens", json_integer((json_int_t)n->tokens.n));
        cs_buf_free(&line);
        json_array_append_new(nodes, o);
    }
    json_object_set_new(d, "nodes", nodes);
    return d;
}

void cs_cluster_tokens_result_free(cs_cluster_tokens_result *res)
{
    for (size_t i = 0; i < res->n_nodes; i++)
        cs_cluster_node_free(&res->nodes[i]);
    free(res->nodes);
    free(res->backup);
    free(res->cluster);
    free(res->partitioner);
    memset(res, 0, sizeof *res);
}

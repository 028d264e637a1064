/* catalog.c - the ops that read the repository's catalog: init, list,
 * status and catalog rebuild. list and status need no identity: they read
 * start marks, summaries and (when a summary is damaged) indexes, which
 * stay plaintext; a damaged backup is listed as damaged, with why. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/units.h"
#include "ops/ops.h"
#include "repo/set.h"

int cs_op_init(cs_job *job, const cs_host *host, const cs_init_req *req, cs_init_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    cs_repo *repo = NULL;
    cs_storage *st = NULL;
    cs_repo_opts opts = { &req->recipients };
    int rc = cs_ops_open_storage(host, req->repo, true, &st, e);
    if (!rc)
        rc = cs_repo_init(st, &opts, &repo, e);
    if (rc)
        return rc;
    res->location = cs_strdup(req->repo);
    res->id = cs_strdup(repo->id);
    cs_repo_free(repo);
    return 0;
}

void cs_init_result_free(cs_init_result *res)
{
    free(res->location);
    free(res->id);
    memset(res, 0, sizeof *res);
}

/* Open the repository and its catalog, optionally starting the catalog
 * over, sync it and return every backup. */
static int read_catalog(const cs_host *host, const char *location, bool rebuild, cs_repo **repo_out,
                        cs_backup_entry **out, size_t *n, cs_err *e)
{
    cs_repo *repo = NULL;
    cs_catalog *cat = NULL;
    int rc = cs_ops_open_repo(host, location, NULL, false, &repo, e);
    if (!rc)
        rc = cs_ops_open_catalog(host, repo, &cat, e);
    if (!rc && rebuild)
        rc = cs_catalog_clear(cat, e);
    /* A rebuild learns every backup's objects when it can read manifests
     * or every backup has an index (format 2); list needs only summaries. */
    bool refs = rebuild && repo && (!cs_repo_is_encrypted(repo) || repo->n_identities || repo->format >= 2);
    if (!rc)
        rc = cs_catalog_sync(cat, repo, refs ? CS_LOAD_REFS : CS_LOAD_ENTRY, e);
    if (!rc)
        rc = cs_catalog_backups(cat, out, n, e);
    if (!rc)
        rc = cs_ops_attach_sets(repo, out, n, CS_SET_RUNNING_GRACE, true, NULL, NULL, e);
    if (!rc)
        rc = cs_catalog_put_sets(cat, *out, *n, e); /* the catalog knows the sets too */
    cs_catalog_close(cat);
    if (repo_out && !rc)
        *repo_out = repo;
    else
        cs_repo_free(repo);
    return rc;
}

int cs_op_list(cs_job *job, const cs_host *host, const cs_list_req *req, cs_list_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    return read_catalog(host, req->repo, false, NULL, &res->entries, &res->n, e);
}

int cs_op_catalog_rebuild(cs_job *job, const cs_host *host, const cs_list_req *req, cs_list_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    int rc = read_catalog(host, req->repo, true, NULL, &res->entries, &res->n, e);
    return rc ? cs_err_prefix(e, "catalog rebuild") : 0;
}

void cs_list_result_free(cs_list_result *res)
{
    cs_backup_entries_free(res->entries, res->n);
    memset(res, 0, sizeof *res);
}

/* ---- status ---- */

static cs_status_node *node_of(cs_status_result *res, const cs_backup_entry *b)
{
    for (size_t i = 0; i < res->n_nodes; i++)
        if (!strcmp(res->nodes[i].host_id, b->host_id))
            return &res->nodes[i];
    res->nodes = cs_realloc(res->nodes, (res->n_nodes + 1) * sizeof *res->nodes);
    cs_status_node *node = &res->nodes[res->n_nodes++];
    memset(node, 0, sizeof *node);
    node->host_id = cs_strdup(b->host_id);
    node->address = cs_strdup(b->address);
    return node;
}

static int add_lock_line(const cs_lock_info *l, void *arg)
{
    char *line = cs_lock_describe(l);
    cs_strlist_add(arg, line);
    free(line);
    return 0;
}

int cs_op_status(cs_job *job, const cs_host *host, const cs_status_req *req, cs_status_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    cs_repo *repo = NULL;
    int rc = read_catalog(host, req->repo, false, &repo, &res->entries, &res->n_entries, e);
    if (rc)
        return cs_err_prefix(e, "status");
    res->location = cs_strdup(repo->location);
    res->id = cs_strdup(repo->id);
    res->encrypted = cs_repo_is_encrypted(repo);
    for (size_t i = 0; i < res->n_entries; i++) {
        const cs_backup_entry *b = &res->entries[i]; /* oldest first */
        if (!*b->host_id)
            continue; /* a set none of whose hosts has a backup: in the sets, not a node */
        cs_status_node *node = node_of(res, b);
        if (b->damage) {
            node->damaged++;
            continue;
        }
        if (!b->complete) {
            node->incomplete++;
            continue;
        }
        node->complete++;
        if (!node->oldest)
            node->oldest = b;
        node->newest = b;
        res->stored_new += b->stored_new;
    }
    rc = cs_lock_list(repo->st, add_lock_line, &res->locks, e);
    cs_repo_free(repo);
    if (rc)
        return cs_err_prefix(e, "status: reading locks");
    rc = cs_ops_list_aside(host, &res->aside, &res->n_aside, e); /* the node's directories, when configured */
    return rc ? cs_err_prefix(e, "status") : 0;
}

void cs_status_result_free(cs_status_result *res)
{
    for (size_t i = 0; i < res->n_nodes; i++) {
        free(res->nodes[i].host_id);
        free(res->nodes[i].address);
    }
    free(res->nodes);
    cs_backup_entries_free(res->entries, res->n_entries);
    cs_strlist_free(&res->locks);
    cs_aside_entries_free(res->aside, res->n_aside);
    free(res->location);
    free(res->id);
    memset(res, 0, sizeof *res);
}

/* status --max-age: every node's newest complete backup must have started
 * within max_age (a repository without any is too old as well). */
int cs_op_status_verdict(const cs_status_req *req, const cs_status_result *res, cs_err *e)
{
    double max_age = req->max_age;
    if (max_age <= 0)
        return 0;
    char limit[32], age[32];
    cs_human_duration(max_age, limit, sizeof limit);
    if (!res->n_nodes)
        return cs_err_set(e, CS_E_STALE, "no complete backup in %s ({max_age} %s)", res->location, limit);
    size_t n_old = 0;
    const cs_status_node *first = NULL;
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_status_node *n = &res->nodes[i];
        if (n->newest && (double)time(NULL) - n->newest->started <= max_age)
            continue;
        first = first ? first : n;
        n_old++;
    }
    if (!first)
        return 0;
    if (first->newest)
        cs_human_duration((double)time(NULL) - first->newest->started, age, sizeof age);
    char others[64] = "";
    if (n_old > 1)
        snprintf(others, sizeof others, " (and %zu more nodes)", n_old - 1);
    return first->newest ? cs_err_set(e, CS_E_STALE,
                                      "node %s%s: newest complete backup %s is %s old, older than {max_age} %s",
                                      first->address, others, first->newest->name, age, limit)
                         : cs_err_set(e, CS_E_STALE, "node %s%s has no complete backup ({max_age} %s)",
                                      first->address, others, limit);
}

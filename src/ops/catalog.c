/* catalog.c - the ops that read the repository's catalog: init, list,
 * status and catalog rebuild. list and status need no identity: they read
 * start marks, summaries and (when a summary is damaged) indexes, which
 * stay plaintext; a damaged backup is listed as damaged, with why. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "ops/ops.h"

int cs_op_init(cs_job *job, const cs_config *cfg, char **repo_id, cs_err *e)
{
    (void)job;
    if (!cfg->repo)
        return cs_err_set(e, CS_E_USAGE, "init needs --repo");
    int rc = cs_ops_check_new_repo(cfg, e);
    if (rc)
        return rc;
    cs_repo *repo = NULL;
    cs_storage *st = NULL;
    cs_repo_opts opts = { &cfg->recipients };
    rc = cs_ops_open_storage(cfg, true, &st, e);
    if (!rc)
        rc = cs_repo_init(st, &opts, &repo, e);
    if (rc)
        return rc;
    *repo_id = cs_strdup(repo->id);
    cs_repo_free(repo);
    return 0;
}

/* Open the repository and its catalog, optionally starting the catalog
 * over, sync it and return every backup. */
static int read_catalog(const cs_config *cfg, bool rebuild, cs_repo **repo_out, cs_backup_entry **out, size_t *n,
                        cs_err *e)
{
    cs_repo *repo = NULL;
    cs_catalog *cat = NULL;
    int rc = cs_ops_open_repo(cfg, false, &repo, e);
    if (!rc)
        rc = cs_ops_open_catalog(cfg, repo, &cat, e);
    if (!rc && rebuild)
        rc = cs_catalog_clear(cat, e);
    /* A rebuild learns every backup's objects when it can read manifests
     * or every backup has an index (format 2); list needs only summaries. */
    bool refs = rebuild && repo && (!cs_repo_is_encrypted(repo) || repo->n_identities || repo->format >= 2);
    if (!rc)
        rc = cs_catalog_sync(cat, repo, refs ? CS_LOAD_REFS : CS_LOAD_ENTRY, e);
    if (!rc)
        rc = cs_catalog_backups(cat, out, n, e);
    cs_catalog_close(cat);
    if (repo_out && !rc)
        *repo_out = repo;
    else
        cs_repo_free(repo);
    return rc;
}

int cs_op_list(cs_job *job, const cs_config *cfg, cs_backup_entry **out, size_t *n, cs_err *e)
{
    (void)job;
    return read_catalog(cfg, false, NULL, out, n, e);
}

int cs_op_catalog_rebuild(cs_job *job, const cs_config *cfg, cs_backup_entry **out, size_t *n, cs_err *e)
{
    (void)job;
    int rc = read_catalog(cfg, true, NULL, out, n, e);
    return rc ? cs_err_prefix(e, "catalog rebuild") : 0;
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

int cs_op_status(cs_job *job, const cs_config *cfg, cs_status_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    cs_repo *repo = NULL;
    int rc = read_catalog(cfg, false, &repo, &res->entries, &res->n_entries, e);
    if (rc)
        return cs_err_prefix(e, "status");
    res->location = cs_strdup(repo->location);
    res->id = cs_strdup(repo->id);
    res->encrypted = cs_repo_is_encrypted(repo);
    for (size_t i = 0; i < res->n_entries; i++) {
        const cs_backup_entry *b = &res->entries[i]; /* oldest first */
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
    rc = cs_ops_list_aside(cfg, &res->aside, &res->n_aside, e); /* the node's directories, when configured */
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

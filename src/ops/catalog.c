/* catalog.c - the small ops over the repository's catalog: init and list. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "ops/ops.h"

int cs_op_init(const cs_config *cfg, char **repo_id, cs_err *e)
{
    if (!cfg->repo)
        return cs_err_set(e, CS_E_INVAL, "init needs --repo");
    cs_repo *repo = NULL;
    cs_s3_opts s3;
    cs_ops_s3_opts(cfg, &s3);
    cs_repo_opts opts = { &cfg->recipients, &s3 };
    int rc = cs_repo_init(cfg->repo, &opts, &repo, e);
    if (rc)
        return rc;
    *repo_id = cs_strdup(repo->id);
    cs_repo_free(repo);
    return 0;
}

int cs_op_list(const cs_config *cfg, cs_backup_entry **out, size_t *n, cs_err *e)
{
    if (!cfg->repo)
        return cs_err_set(e, CS_E_INVAL, "list needs --repo");
    cs_repo *repo = NULL;
    int rc = cs_ops_open_repo(cfg, false, &repo, e);
    if (!rc)
        rc = cs_repo_list_backups(repo, out, n, e);
    cs_repo_free(repo);
    return rc;
}

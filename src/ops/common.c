/* common.c - what every op does with a repository: open it as the config
 * says, and read one stored file back, checked. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "io/filters.h"
#include "ops/ops.h"

void cs_ops_s3_opts(const cs_config *cfg, cs_s3_opts *o)
{
    memset(o, 0, sizeof *o);
    o->endpoint = cfg->s3_endpoint;
    o->region = cfg->s3_region;
    o->access_key_id = cfg->s3_access_key_id;
    o->secret_access_key = cfg->s3_secret_access_key;
    o->session_token = cfg->s3_session_token;
    o->bucket = cfg->s3_bucket;
    o->addressing = cfg->s3_addressing;
    o->sign_payload = cfg->s3_sign_payload;
    o->ca_file = cfg->s3_ca_file;
    o->part_size = cfg->s3_part_size;
    o->concurrency = (unsigned)cfg->s3_concurrency;
    o->retries = (unsigned)cfg->s3_retries;
    o->timeout_s = cfg->s3_timeout;
    o->rate_limit = cfg->rate_limit;
}

int cs_ops_open_repo(const cs_config *cfg, bool create, cs_repo **out, cs_err *e)
{
    if (!cfg->repo)
        return cs_err_set(e, CS_E_USAGE, "%s needs --repo", cfg->command ? cfg->command : "this command");
    cs_repo *repo = NULL;
    cs_s3_opts s3;
    cs_ops_s3_opts(cfg, &s3);
    cs_repo_opts opts = { &cfg->recipients, &s3 };
    int rc = cs_repo_open(cfg->repo, create, &opts, &repo, e);
    if (!rc && cfg->identity)
        rc = cs_repo_load_identities(repo, cfg->identity, e);
    if (rc) {
        cs_repo_free(repo);
        return rc;
    }
    *out = repo;
    return 0;
}

int cs_ops_require_identity(const cs_repo *repo, cs_err *e)
{
    if (cs_repo_is_encrypted(repo) && !repo->n_identities)
        return cs_err_set(e, CS_E_NOKEY,
                          "repository %s is encrypted: give an identity file with --identity (or CASSETTE_IDENTITY)",
                          repo->location);
    return 0;
}

int cs_ops_check_new_repo(const cs_config *cfg, cs_err *e)
{
    if (cfg->recipients.n && cfg->no_encryption)
        return cs_err_set(e, CS_E_USAGE, "--no-encryption and --recipient contradict each other: choose one");
    if (!cfg->recipients.n && !cfg->no_encryption)
        return cs_err_set(e, CS_E_USAGE,
                          "a new repository needs --recipient age1... (make a key with cassette key generate), "
                          "or --no-encryption to store plaintext on purpose");
    return 0;
}

int cs_ops_fetch_object(cs_repo *repo, const cs_mfile *f, cs_sink *dst, cs_err *e)
{
    char *key = cs_repo_object_key(f->object);
    /* The check runs before dst is closed, so a file sink never commits
     * bytes that do not match the manifest. */
    cs_sink *head = cs_hash_verify_new(dst, f->hash, f->size);
    head = cs_progress_filter_new(head, cs_job_current()); /* plaintext bytes, for the caller's job */
    head = cs_zstd_decompress_new(head, e);
    int rc = head ? cs_repo_reader(repo, head, &head, e) : e->code;
    if (!rc)
        rc = cs_storage_get(repo->st, key, head, e);
    if (!rc)
        rc = cs_sink_close(head, e);
    cs_sink_free(head);
    if (rc)
        cs_err_prefix(e, "object %s", f->object);
    free(key);
    return rc;
}

int cs_ops_open_catalog(const cs_config *cfg, cs_repo *repo, cs_catalog **out, cs_err *e)
{
    char *path = cfg->catalog ? cs_strdup(cfg->catalog) : cs_catalog_default_path(repo->id);
    int rc = cs_catalog_open(path, repo, out, e);
    free(path);
    return rc;
}

int cs_ops_lock(const cs_config *cfg, cs_repo *repo, cs_lock_kind kind, const char *purpose, cs_lock **out,
                cs_err *e)
{
    /* A backup clears what killed processes of this host left (see lock.h). */
    cs_lock_opts o = { cfg->lock_stale, cfg->lock_wait, purpose, cfg->command && !strcmp(cfg->command, "backup") };
    return cs_lock_acquire(repo->st, kind, &o, out, e);
}

/* common.c - what every op does with a repository: open it with the
 * host's storage settings and identity, and read one stored file back,
 * checked. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "io/filters.h"
#include "ops/ops.h"

void cs_ops_s3_opts(const cs_host *host, cs_s3_opts *o)
{
    memset(o, 0, sizeof *o);
    o->endpoint = host->s3_endpoint;
    o->region = host->s3_region;
    o->access_key_id = host->s3_access_key_id;
    o->secret_access_key = host->s3_secret_access_key;
    o->session_token = host->s3_session_token;
    o->bucket = host->s3_bucket;
    o->addressing = host->s3_addressing;
    o->sign_payload = host->s3_sign_payload;
    o->ca_file = host->s3_ca_file;
    o->part_size = host->s3_part_size;
    o->concurrency = (unsigned)host->s3_concurrency;
    o->retries = (unsigned)host->s3_retries;
    o->timeout_s = host->s3_timeout;
    o->rate_limit = host->rate_limit;
}

int cs_ops_open_repo(const cs_host *host, const char *location, const cs_strlist *recipients, bool create,
                     cs_repo **out, cs_err *e)
{
    static const cs_strlist none = { NULL, 0 };
    cs_repo *repo = NULL;
    cs_s3_opts s3;
    cs_ops_s3_opts(host, &s3);
    cs_repo_opts opts = { recipients ? recipients : &none, &s3 };
    int rc = cs_repo_open(location, create, &opts, &repo, e);
    if (!rc && host->identity)
        rc = cs_repo_load_identities(repo, host->identity, e);
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
                          "repository %s is encrypted: give an identity file with {identity}",
                          repo->location);
    return 0;
}

int cs_ops_check_new_repo(const cs_strlist *recipients, bool no_encryption, cs_err *e)
{
    if (recipients->n && no_encryption)
        return cs_err_set(e, CS_E_USAGE, "{no_encryption} and {recipients} contradict each other: choose one");
    if (!recipients->n && !no_encryption)
        return cs_err_set(e, CS_E_USAGE,
                          "a new repository needs {recipients} age1... (make a key with cassette key generate), "
                          "or {no_encryption} to store plaintext on purpose");
    return 0;
}

int cs_ops_fetch_object(cs_repo *repo, const cs_mfile *f, cs_sink *dst, cs_err *e)
{
    char *key = cs_repo_object_key(f->object);
    /* The check runs before dst is closed, so a file sink never commits
     * bytes that do not match the manifest. */
    cs_sink *head = cs_hash_verify_new(dst, f->hash, f->size);
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

int cs_ops_open_catalog(const cs_host *host, cs_repo *repo, cs_catalog **out, cs_err *e)
{
    char *path = host->catalog ? cs_strdup(host->catalog) : cs_catalog_default_path(repo->id);
    int rc = cs_catalog_open(path, repo, out, e);
    free(path);
    return rc;
}

int cs_ops_lock(const cs_ops_lock_opts *o, cs_repo *repo, cs_lock_kind kind, const char *purpose, cs_lock **out,
                cs_err *e)
{
    cs_lock_opts lo = { o->stale, o->wait, purpose, o->clear_own };
    return cs_lock_acquire(repo->st, kind, &lo, out, e);
}

/* fetch.c - reading one stored file back, checked. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "io/filters.h"
#include "ops/ops.h"

int cs_ops_fetch_object(cs_repo *repo, const cs_mfile *f, cs_sink *dst, cs_err *e)
{
    char *key = cs_repo_object_key(f->object);
    /* The check runs before dst is closed, so a file sink never commits
     * bytes that do not match the manifest. */
    cs_sink *head = cs_hash_verify_new(dst, f->hash, f->size);
    head = cs_zstd_decompress_new(head, e);
    int rc = head ? 0 : e->code;
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

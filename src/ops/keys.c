/* keys.c - age identities for encrypted repositories: make one, show the
 * public keys of one. Secrets go only into the identity file (0600) or to
 * stdout when asked; they are wiped from memory after use. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "crypto/age.h"
#include "ops/ops.h"

static int write_new_file(const char *path, const cs_buf *text, cs_err *e)
{
    /* O_EXCL: never overwrite an identity, the only copy of a key. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return cs_err_sys(e, errno == EEXIST ? CS_E_EXISTS : CS_E_IO, errno, "cannot create %s", path);
    size_t done = 0;
    int rc = 0;
    while (done < text->len) {
        ssize_t w = write(fd, text->data + done, text->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot write %s", path);
            break;
        }
        done += (size_t)w;
    }
    if (!rc && fsync(fd) != 0)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot write %s", path);
    close(fd);
    if (rc)
        unlink(path);
    return rc;
}

int cs_op_key_generate(cs_job *job, const cs_host *host, const cs_key_generate_req *req, cs_key_result *res,
                       cs_err *e)
{
    (void)job;
    (void)host;
    memset(res, 0, sizeof *res);
    age_identity *id = age_keygen();
    cs_buf secret = CS_BUF_INIT;
    int rc = age_identity_public_string(id, &res->public_key, e);
    if (!rc)
        rc = age_identity_secret_string(id, &secret, e);
    if (!rc) {
        char created[21];
        cs_iso8601((int64_t)time(NULL), created);
        cs_buf_printf(&res->identity_text, "# created: %s\n# public key: %s\n%s\n", created,
                      cs_buf_str(&res->public_key), cs_buf_str(&secret));
    }
    if (!rc && req->output) {
        rc = write_new_file(req->output, &res->identity_text, e);
        age_buf_wipe(&res->identity_text);
        if (!rc)
            res->file = cs_strdup(req->output);
    }
    age_buf_wipe(&secret);
    age_identity_free(id);
    return rc;
}

void cs_key_result_free(cs_key_result *res)
{
    age_buf_wipe(&res->identity_text);
    cs_buf_free(&res->public_key);
    free(res->file);
    memset(res, 0, sizeof *res);
}

int cs_op_key_public(cs_job *job, const cs_host *host, const cs_key_public_req *req, cs_key_public_result *res,
                     cs_err *e)
{
    (void)job;
    (void)host;
    memset(res, 0, sizeof *res);
    age_identity **ids = NULL;
    size_t n = 0;
    int rc = age_identities_load(req->file, &ids, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        cs_buf pub = CS_BUF_INIT;
        rc = age_identity_public_string(ids[i], &pub, e);
        if (!rc)
            cs_strlist_add(&res->keys, cs_buf_str(&pub));
        cs_buf_free(&pub);
    }
    age_identities_free(ids, n);
    if (rc)
        cs_err_prefix(e, "identity file %s", req->file);
    return rc;
}

void cs_key_public_result_free(cs_key_public_result *res)
{
    cs_strlist_free(&res->keys);
}

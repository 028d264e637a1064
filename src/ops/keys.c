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

int cs_op_key_generate(cs_job *job, const cs_config *cfg, cs_buf *public_key, cs_buf *identity_text, cs_err *e)
{
    (void)job;
    age_identity *id = age_keygen();
    cs_buf secret = CS_BUF_INIT;
    int rc = age_identity_public_string(id, public_key, e);
    if (!rc)
        rc = age_identity_secret_string(id, &secret, e);
    if (!rc) {
        char created[21];
        cs_iso8601((int64_t)time(NULL), created);
        cs_buf_printf(identity_text, "# created: %s\n# public key: %s\n%s\n", created, cs_buf_str(public_key),
                      cs_buf_str(&secret));
    }
    if (!rc && cfg->output) {
        rc = write_new_file(cfg->output, identity_text, e);
        age_buf_wipe(identity_text);
    }
    age_buf_wipe(&secret);
    age_identity_free(id);
    return rc;
}

int cs_op_key_public(cs_job *job, const cs_config *cfg, const char *path, cs_strlist *keys, cs_err *e)
{
    (void)job;
    (void)cfg;
    age_identity **ids = NULL;
    size_t n = 0;
    int rc = age_identities_load(path, &ids, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        cs_buf pub = CS_BUF_INIT;
        rc = age_identity_public_string(ids[i], &pub, e);
        if (!rc)
            cs_strlist_add(keys, cs_buf_str(&pub));
        cs_buf_free(&pub);
    }
    age_identities_free(ids, n);
    if (rc)
        cs_err_prefix(e, "identity file %s", path);
    return rc;
}

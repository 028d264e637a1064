/* posix.c - the local-directory storage driver.
 *
 * Keys map to files under the root. Writers write a temporary file
 * ".tmp-<name>-<pid>-<random>" beside the final name and rename (or, for
 * exclusive puts, hard-link) it into place on close, so readers and list
 * never see a partial object. Registered for plain paths and file:// URLs. */
#include "storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/fs.h"

#define DIR_MODE 0750
#define FILE_MODE 0640
#define READ_CHUNK ((size_t)1 << 20)
#define TMP_PREFIX ".tmp-"
#define TMP_NAME_MAX 128 /* keep temporary names well under NAME_MAX */

typedef struct posix_storage {
    cs_storage base;
    char *root;
} posix_storage;

/* ---- writer ------------------------------------------------------------- */

typedef struct posix_writer {
    cs_sink base;
    int fd;
    int flags;
    int tmp_exists; /* the temporary file is still there */
    char *key;
    char *final;
    char *dir;
    char *tmp;
} posix_writer;

static int pw_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    posix_writer *w = (posix_writer *)s;
    if (w->fd < 0)
        return cs_err_set(e, CS_E_IO, "cannot write object %s: writer already closed", w->key);
    while (n > 0) {
        ssize_t r = write(w->fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return cs_err_sys(e, CS_E_IO, errno, "cannot write object %s", w->key);
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Move the temporary file to the final name without replacing anything. */
static int commit_exclusive(posix_writer *w, cs_err *e)
{
    if (link(w->tmp, w->final) == 0) {
        if (unlink(w->tmp) == 0)
            w->tmp_exists = 0;
        return 0;
    }
    int err = errno;
    if (err == EEXIST)
        return cs_err_set(e, CS_E_EXISTS, "object %s already exists", w->key);
#ifdef RENAME_NOREPLACE
    /* Some file systems have no hard links. */
    if (err == EPERM || err == EOPNOTSUPP || err == ENOSYS || err == EMLINK) {
        if (renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->final, RENAME_NOREPLACE) == 0) {
            w->tmp_exists = 0;
            return 0;
        }
        err = errno;
        if (err == EEXIST)
            return cs_err_set(e, CS_E_EXISTS, "object %s already exists", w->key);
    }
#endif
    return cs_err_sys(e, CS_E_IO, err, "cannot store object %s", w->key);
}

static int pw_close(cs_sink *s, cs_err *e)
{
    posix_writer *w = (posix_writer *)s;
    int rc = 0;
    if (w->fd < 0) {
        rc = cs_err_set(e, CS_E_IO, "cannot store object %s: writer already closed", w->key);
        goto out;
    }
    if (fsync(w->fd) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot sync object %s", w->key);
        goto out;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot store object %s", w->key);
        goto out;
    }
    if (w->flags & CS_PUT_EXCLUSIVE) {
        rc = commit_exclusive(w, e);
        if (rc)
            goto out;
    } else {
        if (rename(w->tmp, w->final) != 0) {
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot store object %s", w->key);
            goto out;
        }
        w->tmp_exists = 0;
    }
    rc = cs_fsync_dir(w->dir, e);
    if (rc)
        cs_err_prefix(e, "object %s", w->key);
out:
    return rc;
}

static void pw_free(cs_sink *s)
{
    posix_writer *w = (posix_writer *)s;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_exists)
        unlink(w->tmp);
    free(w->key);
    free(w->final);
    free(w->dir);
    free(w->tmp);
    free(w);
}

static const cs_sink_ops pw_ops = { pw_write, pw_close, pw_free };

static int posix_put(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e)
{
    posix_storage *ps = (posix_storage *)st;
    char *final = cs_path_join(ps->root, key);
    char *dir = cs_dirname(final);
    char *tmp = NULL;
    int rc = 0;
    if (!cs_is_dir(dir)) {
        rc = cs_mkdirs(dir, DIR_MODE, e);
        if (rc) {
            cs_err_prefix(e, "cannot store object %s", key);
            goto out;
        }
    }
    if ((flags & CS_PUT_EXCLUSIVE) && cs_exists(final)) {
        rc = cs_err_set(e, CS_E_EXISTS, "object %s already exists", key);
        goto out;
    }
    const char *name = strrchr(key, '/');
    name = name ? name + 1 : key;
    size_t name_len = strlen(name);
    if (name_len > TMP_NAME_MAX)
        name_len = TMP_NAME_MAX;
    uint8_t rnd[8];
    char rnd_hex[2 * sizeof rnd + 1];
    randombytes_buf(rnd, sizeof rnd);
    cs_hex(rnd, sizeof rnd, rnd_hex);
    tmp = cs_sprintf("%s/" TMP_PREFIX "%.*s-%ld-%s", dir, (int)name_len, name, (long)getpid(), rnd_hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
    if (fd < 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot store object %s", key);
        goto out;
    }
    posix_writer *w = cs_calloc(1, sizeof *w);
    w->base.ops = &pw_ops;
    w->fd = fd;
    w->flags = flags;
    w->tmp_exists = 1;
    w->key = cs_strdup(key);
    w->final = final;
    w->dir = dir;
    w->tmp = tmp;
    final = dir = tmp = NULL;
    *out = &w->base;
out:
    free(final);
    free(dir);
    free(tmp);
    return rc;
}

/* ---- get, stat, del ----------------------------------------------------- */

static int posix_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    posix_storage *ps = (posix_storage *)st;
    char *path = cs_path_join(ps->root, key);
    uint8_t *chunk = NULL;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = cs_err_set(e, CS_E_NOTFOUND, "object %s not found", key);
        else
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot open object %s", key);
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot stat object %s", key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = cs_err_set(e, CS_E_NOTFOUND, "object %s not found", key);
        goto out;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    chunk = cs_malloc(READ_CHUNK);
    for (;;) {
        ssize_t r = read(fd, chunk, READ_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot read object %s", key);
            goto out;
        }
        if (r == 0)
            break;
        rc = cs_sink_write(dst, chunk, (size_t)r, e);
        if (rc)
            goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    free(chunk);
    free(path);
    return rc;
}

static int posix_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    posix_storage *ps = (posix_storage *)st;
    char *path = cs_path_join(ps->root, key);
    int rc = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = cs_err_set(e, CS_E_NOTFOUND, "object %s not found", key);
        else
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot stat object %s", key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = cs_err_set(e, CS_E_NOTFOUND, "object %s not found", key);
        goto out;
    }
    out->size = (uint64_t)sb.st_size;
    out->mtime = (int64_t)sb.st_mtime;
out:
    free(path);
    return rc;
}

static int posix_del(cs_storage *st, const char *key, cs_err *e)
{
    posix_storage *ps = (posix_storage *)st;
    char *path = cs_path_join(ps->root, key);
    int rc = 0;
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot delete object %s", key);
    free(path);
    return rc;
}

/* ---- list --------------------------------------------------------------- */

typedef struct list_ctx {
    const char *prefix;
    size_t prefix_len;
    cs_storage_list_cb cb;
    void *arg;
    cs_buf key; /* key of the entry being looked at */
} list_ctx;

static void key_truncate(cs_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* Walk the directory open on dfd (ownership taken), whose keys start with
 * ctx->key. */
static int walk(list_ctx *ctx, int dfd, cs_err *e)
{
    size_t base = ctx->key.len;
    int rc = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot list %s", base ? cs_buf_str(&ctx->key) : "/");
        close(dfd);
        goto out;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) {
                key_truncate(&ctx->key, base);
                rc = cs_err_sys(e, CS_E_IO, errno, "cannot list %s", base ? cs_buf_str(&ctx->key) : "/");
            }
            break;
        }
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || !strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)))
            continue;
        key_truncate(&ctx->key, base);
        cs_buf_addstr(&ctx->key, name);
        struct stat sb;
        if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue; /* deleted while we looked */
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot list %s", ctx->key.data);
            break;
        }
        if (S_ISDIR(sb.st_mode)) {
            cs_buf_addch(&ctx->key, '/');
            size_t n = ctx->key.len < ctx->prefix_len ? ctx->key.len : ctx->prefix_len;
            if (strncmp(ctx->key.data, ctx->prefix, n) != 0)
                continue;
            int cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                if (errno == ENOENT)
                    continue;
                rc = cs_err_sys(e, CS_E_IO, errno, "cannot list %s", ctx->key.data);
                break;
            }
            rc = walk(ctx, cfd, e);
            if (rc)
                break;
        } else if (S_ISREG(sb.st_mode)) {
            if (strncmp(ctx->key.data, ctx->prefix, ctx->prefix_len) != 0)
                continue;
            cs_storage_stat ss = { (uint64_t)sb.st_size, (int64_t)sb.st_mtime };
            rc = ctx->cb(ctx->key.data, &ss, ctx->arg);
            if (rc)
                break;
        }
        /* symlinks and special files are not objects */
    }
    closedir(d);
out:
    key_truncate(&ctx->key, base);
    return rc;
}

static int posix_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    posix_storage *ps = (posix_storage *)st;
    list_ctx ctx = { prefix, strlen(prefix), cb, arg, CS_BUF_INIT };
    char *path = NULL;
    int rc = 0;
    const char *slash = strrchr(prefix, '/');
    if (slash) {
        cs_buf_add(&ctx.key, prefix, (size_t)(slash - prefix) + 1);
        char *sub = cs_strndup(prefix, (size_t)(slash - prefix));
        path = cs_path_join(ps->root, sub);
        free(sub);
    } else {
        path = cs_strdup(ps->root);
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot list %s", *prefix ? prefix : "/");
        goto out;
    }
    rc = walk(&ctx, fd, e);
out:
    cs_buf_free(&ctx.key);
    free(path);
    return rc;
}

/* ---- driver ------------------------------------------------------------- */

static void posix_free(cs_storage *st)
{
    posix_storage *ps = (posix_storage *)st;
    free(ps->base.location);
    free(ps->root);
    free(ps);
}

static const cs_storage_ops posix_ops = {
    "posix", posix_put, posix_get, posix_stat, posix_list, posix_del, NULL, posix_free, NULL, NULL, NULL,
};

int cs_posix_storage_new(const char *root, bool create, cs_storage **out, cs_err *e)
{
    *out = NULL;
    if (!root || !*root)
        return cs_err_set(e, CS_E_INVAL, "empty storage directory");
    if (sodium_init() < 0)
        return cs_err_set(e, CS_E_IO, "cannot initialise libsodium");
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    char *r = cs_strndup(root, n);
    int rc = 0;
    if (create) {
        rc = cs_mkdirs(r, DIR_MODE, e);
        if (rc)
            goto out;
    } else if (!cs_is_dir(r)) {
        if (cs_exists(r))
            rc = cs_err_set(e, CS_E_INVAL, "storage location %s is not a directory", r);
        else
            rc = cs_err_set(e, CS_E_NOTFOUND, "storage directory %s does not exist", r);
        goto out;
    }
    posix_storage *ps = cs_calloc(1, sizeof *ps);
    ps->base.ops = &posix_ops;
    ps->base.location = cs_strdup(r);
    ps->root = r;
    r = NULL;
    *out = &ps->base;
out:
    free(r);
    return rc;
}

/* A plain path, or a file:// URL with an absolute path (file://localhost/
 * too). The posix driver has no options. */
static int posix_open(const char *location, const cs_storage_opts *opts, bool create, cs_storage **out, cs_err *e)
{
    (void)opts;
    const char *path = location;
    if (!strncasecmp(location, "file://", 7)) {
        path = location + 7;
        if (strncmp(path, "localhost/", 10) == 0)
            path += 9;
        if (path[0] != '/')
            return cs_err_set(e, CS_E_INVAL, "invalid storage location %s: a file:// URL needs an absolute path",
                              location);
    }
    return cs_posix_storage_new(path, create, out, e);
}

static const char *const posix_options[] = { NULL };

const cs_storage_driver cs_posix_driver = { "file", posix_options, posix_open };

#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

char *cs_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    if (la == 0)
        return cs_strdup(b);
    cs_buf out = CS_BUF_INIT;
    cs_buf_add(&out, a, la);
    if (!(la == 1 && a[0] == '/'))
        cs_buf_addch(&out, '/');
    cs_buf_addstr(&out, b);
    return cs_buf_detach(&out);
}

bool cs_path_is_safe_relative(const char *rel)
{
    if (!rel || !*rel || rel[0] == '/')
        return false;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0)
            return false;
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++)
            if (p[i] == '\\' || (unsigned char)p[i] < 0x20)
                return false;
        if (!slash)
            break;
        p = slash + 1;
        if (!*p)
            return false; /* trailing slash */
    }
    return true;
}

int cs_mkdirs(const char *path, mode_t mode, cs_err *e)
{
    if (!*path)
        return cs_err_set(e, CS_E_INVAL, "cannot create a directory with an empty name");
    char *copy = cs_strdup(path);
    int rc = 0;
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, mode) != 0 && errno != EEXIST) {
                rc = cs_err_sys(e, CS_E_IO, errno, "cannot create directory %s", copy);
                goto out;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    if (!cs_is_dir(path))
        rc = cs_err_set(e, CS_E_IO, "%s exists and is not a directory", path);
out:
    free(copy);
    return rc;
}

int cs_fsync_dir(const char *dir, cs_err *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cs_err_sys(e, CS_E_IO, errno, "cannot open directory %s", dir);
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot sync directory %s", dir);
    close(fd);
    return rc;
}

bool cs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

bool cs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *cs_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cs_strdup(".");
    if (slash == path)
        return cs_strdup("/");
    return cs_strndup(path, (size_t)(slash - path));
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int cs_write_file_atomic(const char *path, const void *p, size_t n, mode_t mode, cs_err *e)
{
    char *tmp = cs_sprintf("%s.tmp.%ld", path, (long)getpid());
    char *dir = cs_dirname(path);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot create %s", tmp);
        goto out;
    }
    if (write_all(fd, p, n) != 0 || fsync(fd) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot write %s", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot rename %s", tmp);
        unlink(tmp);
        goto out;
    }
    rc = cs_fsync_dir(dir, e);
out:
    free(tmp);
    free(dir);
    return rc;
}

int cs_read_file(const char *path, size_t max, char **out, size_t *out_len, cs_err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_err_sys(e, errno == ENOENT ? CS_E_NOTFOUND : CS_E_IO, errno, "cannot open %s", path);
    cs_buf b = CS_BUF_INIT;
    int rc = 0;
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot read %s", path);
            break;
        }
        if (r == 0)
            break;
        if (b.len + (size_t)r > max) {
            rc = cs_err_set(e, CS_E_INVAL, "%s is larger than %zu bytes", path, max);
            break;
        }
        cs_buf_add(&b, chunk, (size_t)r);
    }
    close(fd);
    if (rc) {
        cs_buf_free(&b);
        return rc;
    }
    if (out_len)
        *out_len = b.len;
    *out = cs_buf_detach(&b);
    return 0;
}

int cs_remove_tree(const char *path, cs_err *e)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : cs_err_sys(e, CS_E_IO, errno, "cannot stat %s", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return cs_err_sys(e, CS_E_IO, errno, "cannot remove %s", path);
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return cs_err_sys(e, CS_E_IO, errno, "cannot open directory %s", path);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *child = cs_path_join(path, de->d_name);
        rc = cs_remove_tree(child, e);
        free(child);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot remove directory %s", path);
    return rc;
}

double cs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cs_sleep(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void cs_utc_stamp(int64_t t, char out[16])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 16, "%Y%m%d-%H%M%S", &tm);
}

void cs_iso8601(int64_t t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

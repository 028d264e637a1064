/* cleanup.c - where the node keeps its files, what restores left there
 * (moved aside, or staged by an interrupted restore), and cleanup --aside,
 * which removes it once the operator trusts the restore. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cassandra/node.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "ops/aside.h"
#include "ops/ops.h"

/* ---- names ---- */

void cs_restore_unique(char out[CS_UNIQUE_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[24];
    strftime(when, sizeof when, "%Y%m%d-%H%M%S", &tm);
    unsigned short r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned short)(ts.tv_nsec ^ (long)getpid());
    snprintf(out, CS_UNIQUE_MAX, "%s.%06ld-%ld-%04x", when, ts.tv_nsec / 1000, (long)getpid(), (unsigned)r);
}

/* The pid in "<time>.<us>-<pid>-<random>" after prefix, or 0. */
static long pid_of(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n))
        return 0;
    const char *last = strrchr(name + n, '-');
    if (!last)
        return 0;
    const char *p = last;
    while (p > name + n && p[-1] != '-')
        p--;
    char *end = NULL;
    long pid = strtol(p, &end, 10);
    return p > name + n && end == last && pid > 0 ? pid : 0;
}

bool cs_restore_name_in_use(const char *name)
{
    long pid = pid_of(name, CS_STAGING_PREFIX);
    if (!pid)
        pid = pid_of(name, CS_ASIDE_PREFIX);
    if (!pid)
        return false;
    if (pid == (long)getpid())
        return true;
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/* ---- the node's directories ---- */

static void copy_dirs_from(cs_node_dirs *out, const cs_strlist *data, const char *cl, const char *hints,
                           const char *caches)
{
    if (!out->data_dirs.n)
        for (size_t i = 0; data && i < data->n; i++)
            cs_strlist_add(&out->data_dirs, data->items[i]);
    if (!out->commitlog_dir && cl)
        out->commitlog_dir = cs_strdup(cl);
    if (!out->hints_dir && hints)
        out->hints_dir = cs_strdup(hints);
    if (!out->saved_caches_dir && caches)
        out->saved_caches_dir = cs_strdup(caches);
}

int cs_ops_node_dirs(const cs_host *host, const struct cs_node_info *node, cs_node_dirs *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    copy_dirs_from(out, &host->data_dirs, host->commitlog_dir, host->hints_dir, host->saved_caches_dir);
    if (host->cassandra_yaml) {
        cs_node_dirs y;
        int rc = cs_yaml_read_node_dirs(host->cassandra_yaml, &y, e);
        if (rc) {
            cs_node_dirs_free(out);
            return cs_err_prefix(e, "{cassandra_yaml}");
        }
        copy_dirs_from(out, &y.data_dirs, y.commitlog_dir, y.hints_dir, y.saved_caches_dir);
        cs_node_dirs_free(&y);
    }
    if (node)
        copy_dirs_from(out, &node->data_dirs, node->commitlog_dir, node->hints_dir, node->saved_caches_dir);
    return 0;
}

/* ---- what restores left ---- */

/* Bytes and count of the regular files under path; links are not followed. */
static void tree_size(const char *path, uint64_t *bytes, uint64_t *files)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISREG(st.st_mode)) {
        *bytes += (uint64_t)st.st_size;
        (*files)++;
        return;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *child = cs_path_join(path, de->d_name);
        tree_size(child, bytes, files);
        free(child);
    }
    if (d)
        closedir(d);
}

typedef struct aside_list {
    cs_aside_entry *items;
    size_t n;
} aside_list;

/* Add path if it is a real directory (a link is never ours) not listed yet. */
static void add_entry(aside_list *l, const char *path, const char *name, bool staging)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].path, path))
            return;
    bool in_use = cs_restore_name_in_use(name);
    if (staging && in_use)
        return; /* the downloads of a running restore: not left over */
    l->items = cs_realloc(l->items, (l->n + 1) * sizeof *l->items);
    cs_aside_entry *a = &l->items[l->n++];
    memset(a, 0, sizeof *a);
    a->path = cs_strdup(path);
    a->staging = staging;
    a->in_use = in_use;
    a->age_s = cs_now() - (double)st.st_mtime;
    if (a->age_s < 0)
        a->age_s = 0;
    tree_size(path, &a->bytes, &a->files);
}

static bool starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* "<dir>/.cassette-aside-*" and "<dir>/.cassette-staging-*". */
static void scan_inside(aside_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        bool aside = starts_with(de->d_name, CS_ASIDE_PREFIX), staging = starts_with(de->d_name, CS_STAGING_PREFIX);
        if (!aside && !staging)
            continue;
        char *path = cs_path_join(dir, de->d_name);
        add_entry(l, path, de->d_name, staging);
        free(path);
    }
    if (d)
        closedir(d);
}

/* The names of before issue 17, beside dir: "<dir>.cassette-aside-<time>"
 * and "<dir>.cassette-incoming". */
static void scan_beside(aside_list *l, const char *dir)
{
    char *trimmed = cs_strdup(dir);
    size_t n = strlen(trimmed);
    while (n > 1 && trimmed[n - 1] == '/')
        trimmed[--n] = '\0';
    char *parent = cs_dirname(trimmed);
    const char *slash = strrchr(trimmed, '/');
    const char *base = slash ? slash + 1 : trimmed;
    char *aside = cs_sprintf("%s%s", base, CS_LEGACY_ASIDE), *incoming = cs_sprintf("%s%s", base, CS_LEGACY_INCOMING);
    DIR *d = *base ? opendir(parent) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        bool is_aside = starts_with(de->d_name, aside), is_incoming = !strcmp(de->d_name, incoming);
        if (!is_aside && !is_incoming)
            continue;
        char *path = cs_path_join(parent, de->d_name);
        add_entry(l, path, de->d_name, is_incoming);
        free(path);
    }
    if (d)
        closedir(d);
    free(aside);
    free(incoming);
    free(parent);
    free(trimmed);
}

static void scan_dir(aside_list *l, const char *dir)
{
    if (!dir)
        return;
    scan_inside(l, dir);
    scan_beside(l, dir);
}

int cs_ops_list_aside(const cs_host *host, cs_aside_entry **out, size_t *n, cs_err *e)
{
    *out = NULL;
    *n = 0;
    cs_node_dirs dirs;
    int rc = cs_ops_node_dirs(host, NULL, &dirs, e);
    if (rc)
        return rc;
    aside_list l = { NULL, 0 };
    for (size_t i = 0; i < dirs.data_dirs.n; i++)
        scan_dir(&l, dirs.data_dirs.items[i]);
    scan_dir(&l, dirs.commitlog_dir);
    scan_dir(&l, dirs.hints_dir);
    scan_dir(&l, dirs.saved_caches_dir);
    cs_node_dirs_free(&dirs);
    *out = l.items;
    *n = l.n;
    return 0;
}

void cs_aside_entries_free(cs_aside_entry *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i].path);
    free(a);
}

/* ---- cleanup --aside ---- */

static void take_entry(cs_aside_entry **list, size_t *n, cs_aside_entry *a)
{
    *list = cs_realloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = *a;
    memset(a, 0, sizeof *a);
}

int cs_op_cleanup(cs_job *job, const cs_host *host, const cs_cleanup_req *req, cs_cleanup_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    res->dry_run = req->dry_run;
    cs_node_dirs dirs;
    int rc = cs_ops_node_dirs(host, NULL, &dirs, e);
    bool none = !rc && !dirs.data_dirs.n && !dirs.commitlog_dir && !dirs.hints_dir && !dirs.saved_caches_dir;
    if (!rc)
        cs_node_dirs_free(&dirs);
    if (none)
        return cs_err_set(e, CS_E_USAGE, "cleanup needs the node's directories: set {data_dirs} (or "
                                         "{cassandra_yaml} FILE)");
    cs_aside_entry *found = NULL;
    size_t n = 0;
    if (!rc)
        rc = cs_ops_list_aside(host, &found, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        if (found[i].in_use) {
            take_entry(&res->kept, &res->n_kept, &found[i]);
            continue;
        }
        if (!req->dry_run) {
            cs_info("removing %s", found[i].path);
            rc = cs_remove_tree(found[i].path, e);
        }
        if (rc)
            break;
        res->bytes += found[i].bytes;
        take_entry(&res->removed, &res->n_removed, &found[i]);
    }
    cs_aside_entries_free(found, n);
    return rc ? cs_err_prefix(e, "cleanup") : 0;
}

void cs_cleanup_result_free(cs_cleanup_result *res)
{
    cs_aside_entries_free(res->removed, res->n_removed);
    cs_aside_entries_free(res->kept, res->n_kept);
    memset(res, 0, sizeof *res);
}

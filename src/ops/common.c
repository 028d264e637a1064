/* common.c - what every op does with a repository: open it with the
 * host's storage settings and identity, and read one stored file back,
 * checked; and read the local node the host reaches. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "io/filters.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"
#include "ops/state.h"

int cs_ops_open_storage(const cs_host *host, const char *location, bool create, cs_storage **out, cs_err *e)
{
    if (!location) {
        cs_err_set(e, CS_E_USAGE, "no repository location: give {repo}");
        return cs_err_field(e, "repo");
    }
    int rc = cs_storage_open(location, &host->storage_opts, create, out, e);
    if (rc == CS_E_NOTFOUND && !create)
        return cs_err_set(e, CS_E_NOTFOUND, "%s is not a cassette repository (it does not exist): %s", location,
                          CS_REPO_NO_REPO_HINT);
    if (rc == CS_E_USAGE)
        return rc; /* a bad option value: the message names it */
    return rc ? cs_err_prefix(e, "cannot open repository %s", location) : 0;
}

int cs_ops_open_repo(const cs_host *host, const char *location, const cs_strlist *recipients, bool create,
                     cs_repo **out, cs_err *e)
{
    static const cs_strlist none = { NULL, 0 };
    cs_storage *st = NULL;
    cs_repo *repo = NULL;
    cs_repo_opts opts = { recipients ? recipients : &none };
    int rc = cs_ops_open_storage(host, location, create, &st, e);
    if (!rc)
        rc = cs_repo_open(st, create, &opts, &repo, e);
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

/* What checks one file's plaintext on its way to dst (owned): its zstd
 * frames decoded, counted for the job, hashed against the manifest. */
static cs_sink *file_chain(const cs_mfile *f, cs_sink *dst, cs_err *e)
{
    /* The check runs before dst is closed, so a file sink never commits
     * bytes that do not match the manifest. */
    cs_sink *head = cs_hash_verify_new(dst, f->hash, f->size);
    head = cs_progress_filter_new(head, cs_job_current()); /* plaintext bytes, for the caller's job */
    return cs_zstd_decompress_new(head, e);
}

/* Download object into head (the stored stream's sink; owned, NULL: the
 * error is in e already). */
static int fetch_into(cs_repo *repo, const char *object, cs_sink *head, cs_err *e)
{
    char *key = cs_repo_object_key(object);
    int rc = head ? cs_repo_reader(repo, head, &head, e) : e->code;
    if (!rc)
        rc = cs_storage_get(repo->st, key, head, e);
    if (!rc)
        rc = cs_sink_close(head, e);
    cs_sink_free(head);
    if (rc)
        cs_err_prefix(e, "object %s", object);
    free(key);
    return rc;
}

int cs_ops_fetch_object(cs_repo *repo, const cs_mfile *f, cs_sink *dst, cs_err *e)
{
    if (cs_mfile_packed(f))
        return cs_ops_fetch_members(repo, &f, &dst, 1, e);
    return fetch_into(repo, f->object, file_chain(f, dst, e), e);
}

typedef struct member {
    const cs_mfile *f;
    cs_sink *dst;
} member;

static int by_pack_offset(const void *a, const void *b)
{
    const member *x = a, *y = b;
    return x->f->pack.at < y->f->pack.at ? -1 : x->f->pack.at > y->f->pack.at ? 1 : 0;
}

int cs_ops_fetch_members(cs_repo *repo, const cs_mfile *const *fs, cs_sink **dsts, size_t n, cs_err *e)
{
    member *mv = cs_calloc(n ? n : 1, sizeof *mv);
    for (size_t i = 0; i < n; i++)
        mv[i] = (member){ fs[i], dsts[i] };
    qsort(mv, n, sizeof *mv, by_pack_offset);
    cs_split_range *r = cs_calloc(n ? n : 1, sizeof *r);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const cs_mfile *f = mv[i].f;
        r[i] = (cs_split_range){ f->pack.at, f->pack.len, NULL, f->name };
        if (!rc && (!cs_mfile_packed(f) || strcmp(f->object, fs[0]->object) || f->stored != fs[0]->stored))
            rc = cs_err_set(e, CS_E_INVAL, "%s is not a file of the pack %s", f->name, fs[0]->object);
        if (rc) {
            cs_sink_free(mv[i].dst);
            continue;
        }
        r[i].out = file_chain(f, mv[i].dst, e); /* takes dst, also on failure */
        if (!r[i].out)
            rc = e->code;
    }
    cs_sink *split = NULL;
    if (rc) {
        for (size_t i = 0; i < n; i++)
            cs_sink_free(r[i].out);
    } else {
        split = cs_split_new(r, n, e);
        rc = split ? 0 : e->code;
    }
    if (!rc)
        rc = fetch_into(repo, fs[0]->object, split, e);
    else if (n)
        cs_err_prefix(e, "object %s", fs[0]->object);
    free(r);
    free(mv);
    return rc;
}

int cs_ops_fetch_file(cs_repo *repo, const cs_mfile *f, const char *dir, cs_err *e)
{
    return cs_ops_fetch_file_flags(repo, f, dir, 0, e);
}

int cs_ops_fetch_file_flags(cs_repo *repo, const cs_mfile *f, const char *dir, int flags, cs_err *e)
{
    return cs_ops_fetch_files(repo, &f, 1, dir, flags, e);
}

/* The file sink for dir/<f->name>, its parent directories made. */
static cs_sink *open_placed(const cs_mfile *f, const char *dir, int flags, cs_err *e)
{
    char *path = cs_path_join(dir, f->name);
    char *parent = cs_dirname(path);
    cs_sink *out = NULL;
    if (!cs_mkdirs(parent, 0755, e))
        out = cs_file_sink_open(path, 0644, flags, e);
    free(parent);
    free(path);
    return out;
}

int cs_ops_fetch_files(cs_repo *repo, const cs_mfile *const *fs, size_t n, const char *dir, int flags, cs_err *e)
{
    cs_sink **out = cs_calloc(n ? n : 1, sizeof *out);
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        out[i] = open_placed(fs[i], dir, flags, e);
        rc = out[i] ? 0 : e->code;
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            cs_sink_free(out[i]);
    } else if (n == 1 && !cs_mfile_packed(fs[0])) {
        rc = cs_ops_fetch_object(repo, fs[0], out[0], e); /* takes out[0] */
    } else {
        rc = cs_ops_fetch_members(repo, fs, out, n, e); /* takes out */
    }
    if (rc && n == 1)
        cs_err_prefix(e, "%s", fs[0]->name);
    free(out);
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

/* ---- the node facts cache ---- */

static const struct {
    const char *name;
    size_t offset;
} fact_strings[] = {
    { "host_id", offsetof(cs_node_info, host_id) },
    { "address", offsetof(cs_node_info, address) },
    { "cluster_name", offsetof(cs_node_info, cluster_name) },
    { "datacenter", offsetof(cs_node_info, datacenter) },
    { "rack", offsetof(cs_node_info, rack) },
    { "release_version", offsetof(cs_node_info, release_version) },
    { "partitioner", offsetof(cs_node_info, partitioner) },
    { "commitlog_dir", offsetof(cs_node_info, commitlog_dir) },
    { "hints_dir", offsetof(cs_node_info, hints_dir) },
    { "saved_caches_dir", offsetof(cs_node_info, saved_caches_dir) },
};
#define N_FACT_STRINGS (sizeof fact_strings / sizeof fact_strings[0])
#define FACT(info, i) ((char **)(void *)((char *)(info) + fact_strings[i].offset))
#define CFACT(info, i) (*(char *const *)(const void *)((const char *)(info) + fact_strings[i].offset))


static void strlist_from_json(const json_t *a, cs_strlist *out)
{
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
        if (json_is_string(v))
            cs_strlist_add(out, json_string_value(v));
}

static char *node_cache_path(const cs_host *host)
{
    char *dir = cs_state_dir(host);
    char *path = cs_path_join(dir, "node.json");
    free(dir);
    return path;
}

/* Only when the facts changed: most reads find them as they were. */
static int write_node_cache(const cs_host *host, const cs_node_info *info, cs_err *e)
{
    json_t *doc = json_pack("{s:s, s:i}", "type", "cassette-node", "format", 1);
    for (size_t i = 0; i < N_FACT_STRINGS; i++) {
        const char *v = CFACT(info, i);
        json_object_set_new(doc, fact_strings[i].name, v ? json_string(v) : json_null());
    }
    json_object_set_new(doc, "tokens", cs_strlist_json(&info->tokens));
    json_object_set_new(doc, "data_dirs", cs_strlist_json(&info->data_dirs));
    char *text = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(1));
    json_decref(doc);
    char *path = node_cache_path(host);
    char *dir = cs_state_dir(host);
    char *old = NULL;
    int rc = 0;
    if (cs_read_file(path, 1 << 20, &old, NULL, NULL) || strcmp(old, text)) {
        rc = cs_mkdirs(dir, 0700, e);
        if (!rc)
            rc = cs_write_file_atomic(path, text, strlen(text), 0600, e);
    }
    free(old);
    free(dir);
    free(path);
    free(text);
    return rc;
}

int cs_ops_cached_node(const cs_host *host, cs_node_info *info, cs_err *e)
{
    memset(info, 0, sizeof *info);
    char *path = node_cache_path(host);
    char *text = NULL;
    size_t len = 0;
    int rc = cs_read_file(path, 1 << 20, &text, &len, e);
    json_error_t jerr;
    json_t *doc = rc ? NULL : json_loadb(text, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (!rc && (!json_is_object(doc) || !type || strcmp(type, "cassette-node")))
        rc = cs_err_set(e, CS_E_CORRUPT, "%s is not a node facts cache of cassette", path);
    else if (rc == CS_E_NOTFOUND)
        rc = cs_err_set(e, CS_E_NOTFOUND, "no node facts cached in %s (the node was never read)", path);
    for (size_t i = 0; !rc && i < N_FACT_STRINGS; i++) {
        const char *v = json_string_value(json_object_get(doc, fact_strings[i].name));
        *FACT(info, i) = v ? cs_strdup(v) : NULL;
    }
    if (!rc) {
        strlist_from_json(json_object_get(doc, "tokens"), &info->tokens);
        strlist_from_json(json_object_get(doc, "data_dirs"), &info->data_dirs);
    }
    if (!rc && !info->host_id)
        rc = cs_err_set(e, CS_E_CORRUPT, "%s names no host id", path);
    if (rc)
        cs_node_info_free(info);
    json_decref(doc);
    free(text);
    free(path);
    return rc;
}

int cs_ops_read_node_or_cached(const cs_host *host, const char *purpose, cs_node_info *info, bool *live, cs_err *e)
{
    *live = true;
    int rc = cs_ops_read_node(host, purpose, info, NULL, e);
    if (rc != CS_E_UNAVAIL)
        return rc;
    cs_err cache_err;
    cs_err_clear(&cache_err);
    if (cs_ops_cached_node(host, info, &cache_err))
        return rc; /* the node's own error says more */
    cs_debug("%s: the node is not reachable (%s): its cached facts", purpose, e->msg);
    cs_err_clear(e);
    *live = false;
    return 0;
}

int cs_ops_read_node(const cs_host *host, const char *purpose, cs_node_info *info, json_t **schema, cs_err *e)
{
    cql_conn *conn = NULL;
    memset(info, 0, sizeof *info);
    cs_cql_opts cql_opts;
    cs_ops_cql_opts(host, purpose, &cql_opts);
    int rc = cs_node_connect(&cql_opts, &conn, e);
    if (!rc)
        rc = cs_node_read_info(conn, info, e);
    if (!rc && schema)
        rc = cs_node_read_schema(conn, schema, e);
    cql_close(conn);
    if (rc) {
        cs_node_info_free(info);
        return rc;
    }
    /* The host's own settings win over what the node says (a container's
     * paths differ from the node's view of them). */
    const struct {
        const char *setting;
        char **dir;
    } dirs[] = { { host->commitlog_dir, &info->commitlog_dir },
                 { host->hints_dir, &info->hints_dir },
                 { host->saved_caches_dir, &info->saved_caches_dir } };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (dirs[i].setting) {
            free(*dirs[i].dir);
            *dirs[i].dir = cs_strdup(dirs[i].setting);
        }
    if (host->data_dirs.n) {
        cs_strlist_free(&info->data_dirs);
        for (size_t i = 0; i < host->data_dirs.n; i++)
            cs_strlist_add(&info->data_dirs, host->data_dirs.items[i]);
    }
    if (info->data_dirs.n == 0) {
        cs_node_info_free(info);
        return cs_err_set(e, CS_E_INVAL, "the node did not say where its data directories are; set {data_dirs}");
    }
    /* A lost cache costs only the answers about a stopped node. */
    cs_err cache_err;
    cs_err_clear(&cache_err);
    if (write_node_cache(host, info, &cache_err))
        cs_warn("could not write the node facts cache: %s", cache_err.msg);
    return 0;
}

#include "ops/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"

struct cs_state {
    cs_state_entry *entries; /* sorted by key */
    size_t n;
    char *anchor;            /* the newest complete backup when loaded; NULL: none */
};

static char *entry_key(const char *data_dir, const char *table_id, const char *name)
{
    return cs_sprintf("%s\t%s\t%s", data_dir, table_id, name);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(((const cs_state_entry *)a)->key, ((const cs_state_entry *)b)->key);
}

static void add_entry(cs_state *s, char *key, uint64_t size, int64_t mtime, const char *hash, const char *object,
                      uint64_t stored)
{
    s->entries = cs_realloc(s->entries, (s->n + 1) * sizeof *s->entries);
    cs_state_entry *en = &s->entries[s->n++];
    en->key = key;
    en->size = size;
    en->mtime_ns = mtime;
    memcpy(en->hash, hash, CS_HASH_HEX);
    memcpy(en->object, object, CS_OBJECT_ID_HEX);
    en->stored = stored;
}

/* Entries for the files of m (only those stored by m itself if only_new). */
static void fill_from_manifest(cs_state *s, const cs_manifest *m, bool only_new)
{
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++) {
            const cs_mfile *f = &m->tables[i].files[j];
            if (only_new && !f->is_new)
                continue;
            add_entry(s, entry_key(m->data_dirs.items[f->data_dir], m->tables[i].id, f->name), f->size,
                      f->mtime_ns, f->hash, f->object, f->stored);
        }
}

char *cs_state_dir(const cs_config *cfg)
{
    const char *home = getenv("HOME");
    return cfg->state_dir ? cs_strdup(cfg->state_dir)
                          : cs_sprintf("%s/.cache/cassette/state", home && *home ? home : "/tmp");
}

int cs_state_lock(const cs_config *cfg, const char *host_id, int *fd_out, cs_err *e)
{
    char *dir = cs_state_dir(cfg);
    char *path = cs_sprintf("%s/%s.lock", dir, host_id);
    int rc = cs_mkdirs(dir, 0700, e);
    int fd = -1;
    if (!rc) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot open lock %s", path);
    }
    if (!rc && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? cs_err_set(e, CS_E_EXISTS, "another backup of node %s is running", host_id)
                                  : cs_err_sys(e, CS_E_IO, errno, "cannot lock %s", path);
        close(fd);
        fd = -1;
    }
    *fd_out = fd;
    free(dir);
    free(path);
    return rc;
}

void cs_state_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing drops the flock */
}

static char *state_path(const cs_config *cfg, const cs_repo *repo, const char *host_id)
{
    char *dir = cs_state_dir(cfg);
    char *path = cs_sprintf("%s/%s/%s.json", dir, repo->id, host_id);
    free(dir);
    return path;
}

/* The newest complete backup of host_id, or NULL (caller frees). */
static int newest_backup_of(cs_repo *repo, const char *host_id, char **name, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    *name = NULL;
    int rc = cs_repo_list_backups(repo, &entries, &n, e);
    if (rc)
        return rc;
    for (size_t i = n; i-- > 0;)
        if (entries[i].complete && !strcmp(entries[i].host_id, host_id)) {
            *name = cs_strdup(entries[i].name);
            break;
        }
    cs_backup_entries_free(entries, n);
    return 0;
}

/* Read the cache file if it was written against `backup` (NULL: against
 * no backup at all); false if not usable. */
static bool load_file(cs_state *s, const char *path, const char *backup)
{
    char *text = NULL;
    size_t len = 0;
    if (cs_read_file(path, CS_MANIFEST_MAX, &text, &len, NULL))
        return false;
    json_t *root = json_loadb(text, len, 0, NULL);
    free(text);
    const char *owner = json_string_value(json_object_get(root, "backup"));
    json_t *files = json_object_get(root, "files");
    bool same = backup ? owner && !strcmp(owner, backup) : json_is_null(json_object_get(root, "backup"));
    bool ok = same && json_is_array(files);
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *key = json_string_value(json_array_get(f, 0));
        const char *hash = json_string_value(json_array_get(f, 3));
        const char *object = json_string_value(json_array_get(f, 4));
        if (!ok || !key || !hash || strlen(hash) != CS_HASH_HEX - 1 || !cs_is_hex32(object)) {
            ok = false;
            break;
        }
        add_entry(s, cs_strdup(key), (uint64_t)json_integer_value(json_array_get(f, 1)),
                  (int64_t)json_integer_value(json_array_get(f, 2)), hash, object,
                  (uint64_t)json_integer_value(json_array_get(f, 5)));
    }
    json_decref(root);
    return ok;
}

static void clear_entries(cs_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->entries[i].key);
    free(s->entries);
    s->entries = NULL;
    s->n = 0;
}

int cs_state_load(const cs_config *cfg, cs_repo *repo, const char *host_id, cs_state **out, cs_err *e)
{
    cs_state *s = cs_calloc(1, sizeof *s);
    char *newest = NULL;
    char *path = state_path(cfg, repo, host_id);
    int rc = newest_backup_of(repo, host_id, &newest, e);
    if (rc)
        goto out;
    s->anchor = newest ? cs_strdup(newest) : NULL;
    if (!load_file(s, path, newest)) {
        clear_entries(s);
        if (!newest)
            goto out; /* nothing to rebuild from: start empty */
        if (cs_repo_is_encrypted(repo) && !repo->n_identities) {
            /* A backup host holds only public keys: it cannot read old
             * manifests, so without its cache every file is stored anew. */
            cs_warn("no dedup cache for this node and no identity to rebuild it from backup %s: "
                    "every file is stored again", newest);
            goto out;
        }
        cs_info("rebuilding the dedup cache from backup %s", newest);
        cs_manifest m;
        rc = cs_repo_read_manifest(repo, newest, host_id, &m, e);
        if (rc)
            goto out;
        fill_from_manifest(s, &m, false);
        cs_manifest_free(&m);
    }
    if (s->n)
        qsort(s->entries, s->n, sizeof *s->entries, compare_keys);
out:
    free(newest);
    free(path);
    if (rc) {
        cs_state_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

const cs_state_entry *cs_state_find(const cs_state *s, const char *data_dir, const char *table_id,
                                    const char *name, uint64_t size, int64_t mtime_ns)
{
    if (!s || !s->n)
        return NULL;
    cs_state_entry probe = { .key = entry_key(data_dir, table_id, name) };
    const cs_state_entry *hit = bsearch(&probe, s->entries, s->n, sizeof *s->entries, compare_keys);
    free(probe.key);
    if (hit && hit->size == size && hit->mtime_ns == mtime_ns)
        return hit;
    return NULL;
}

static int write_state(const cs_config *cfg, cs_repo *repo, const char *host_id, const char *anchor,
                       const cs_state *s, cs_err *e)
{
    json_t *files = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const cs_state_entry *en = &s->entries[i];
        json_array_append_new(files, json_pack("[s, I, I, s, s, I]", en->key, (json_int_t)en->size,
                                               (json_int_t)en->mtime_ns, en->hash, en->object,
                                               (json_int_t)en->stored));
    }
    json_t *root = json_pack("{s:o, s:o}", "backup", anchor ? json_string(anchor) : json_null(), "files", files);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *path = state_path(cfg, repo, host_id);
    char *dir = cs_dirname(path);
    int rc = cs_mkdirs(dir, 0700, e);
    if (!rc)
        rc = cs_write_file_atomic(path, text, strlen(text), 0600, e);
    free(text);
    free(path);
    free(dir);
    return rc;
}

int cs_state_save(const cs_config *cfg, cs_repo *repo, const cs_manifest *m, cs_err *e)
{
    cs_state s = { NULL, 0, NULL };
    fill_from_manifest(&s, m, false);
    int rc = write_state(cfg, repo, m->host_id, m->backup, &s, e);
    clear_entries(&s);
    return rc;
}

int cs_state_save_partial(const cs_config *cfg, cs_repo *repo, const cs_state *old, const cs_manifest *m,
                          cs_err *e)
{
    cs_state s = { NULL, 0, NULL };
    for (size_t i = 0; old && i < old->n; i++) {
        const cs_state_entry *en = &old->entries[i];
        add_entry(&s, cs_strdup(en->key), en->size, en->mtime_ns, en->hash, en->object, en->stored);
    }
    fill_from_manifest(&s, m, true);
    int rc = write_state(cfg, repo, m->host_id, old ? old->anchor : NULL, &s, e);
    clear_entries(&s);
    return rc;
}

void cs_state_free(cs_state *s)
{
    if (!s)
        return;
    clear_entries(s);
    free(s->anchor);
    free(s);
}

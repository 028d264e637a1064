#include "ops/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"

/* Entries in the order they were added; sort_unique makes them a set. */
typedef struct entry_set {
    cs_state_entry *v;
    size_t n;
} entry_set;

struct cs_state {
    entry_set set;           /* sorted by key, one entry per key */
    char *anchor;            /* the newest complete backup when loaded; NULL: none */
    pthread_mutex_t mu;      /* guards the journal (cs_state_record runs on workers) */
    int journal_fd;          /* O_APPEND; -1: not recording */
    char *journal_path;
};

static char *entry_key(const char *data_dir, const char *table_id, const char *name)
{
    return cs_sprintf("%s\t%s\t%s", data_dir, table_id, name);
}

/* The file name part of a key, for messages. */
static const char *key_name(const char *key)
{
    const char *tab = strrchr(key, '\t');
    return tab ? tab + 1 : key;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(((const cs_state_entry *)a)->key, ((const cs_state_entry *)b)->key);
}

static void add_entry(entry_set *s, char *key, uint64_t size, int64_t mtime, const char *hash, const char *object,
                      uint64_t stored, bool unreferenced)
{
    s->v = cs_realloc(s->v, (s->n + 1) * sizeof *s->v);
    cs_state_entry *en = &s->v[s->n++];
    en->key = key;
    en->size = size;
    en->mtime_ns = mtime;
    memcpy(en->hash, hash, CS_HASH_HEX);
    memcpy(en->object, object, CS_OBJECT_ID_HEX);
    en->stored = stored;
    en->unreferenced = unreferenced;
}

static void clear_entries(entry_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].key);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Move every entry of src to the end of dst. */
static void move_entries(entry_set *dst, entry_set *src)
{
    if (src->n) {
        dst->v = cs_realloc(dst->v, (dst->n + src->n) * sizeof *dst->v);
        memcpy(dst->v + dst->n, src->v, src->n * sizeof *src->v);
        dst->n += src->n;
    }
    free(src->v);
    src->v = NULL;
    src->n = 0;
}

typedef struct ranked {
    cs_state_entry en;
    size_t seq;
} ranked;

static int compare_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    int c = strcmp(x->en.key, y->en.key);
    if (c)
        return c;
    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0; /* the later first */
}

/* Sort by key and keep, of each key, the entry added last. */
static void sort_unique(entry_set *s)
{
    if (s->n < 2)
        return;
    ranked *r = cs_calloc(s->n, sizeof *r);
    for (size_t i = 0; i < s->n; i++)
        r[i] = (ranked){ s->v[i], i };
    qsort(r, s->n, sizeof *r, compare_ranked);
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (kept && !strcmp(s->v[kept - 1].key, r[i].en.key))
            free(r[i].en.key);
        else
            s->v[kept++] = r[i].en;
    }
    s->n = kept;
    free(r);
}

/* Entries for the files of m (only those stored by m itself if only_new). */
static void fill_from_manifest(entry_set *s, const cs_manifest *m, bool only_new, bool unreferenced)
{
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++) {
            const cs_mfile *f = &m->tables[i].files[j];
            if (only_new && !f->is_new)
                continue;
            add_entry(s, entry_key(m->data_dirs.items[f->data_dir], m->tables[i].id, f->name), f->size,
                      f->mtime_ns, f->hash, f->object, f->stored, unreferenced);
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

/* <state dir>/<repo id>/<host id>.<suffix> (caller frees). */
static char *state_path(const cs_config *cfg, const cs_repo *repo, const char *host_id, const char *suffix)
{
    char *dir = cs_state_dir(cfg);
    char *path = cs_sprintf("%s/%s/%s.%s", dir, repo->id, host_id, suffix);
    free(dir);
    return path;
}

/* The newest complete backup of host_id (NULL: none; caller frees), and
 * whether `owner` (may be NULL) is a complete backup of host_id. */
static int find_backups(cs_repo *repo, const char *host_id, const char *owner, char **newest, bool *owner_complete,
                        cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    *newest = NULL;
    *owner_complete = false;
    int rc = cs_repo_list_backups(repo, &entries, &n, e);
    if (rc)
        return rc;
    for (size_t i = n; i-- > 0;) {
        if (!entries[i].complete || strcmp(entries[i].host_id, host_id))
            continue;
        if (!*newest)
            *newest = cs_strdup(entries[i].name);
        if (owner && !strcmp(entries[i].name, owner))
            *owner_complete = true;
    }
    cs_backup_entries_free(entries, n);
    return 0;
}

static bool is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* One entry: [key, size, mtime_ns, hash, object, stored, unreferenced]
 * (files written before the flag existed have six elements: referenced).
 * Added to s if valid (unreferenced whatever it says if force_unref). */
static bool parse_entry(entry_set *s, const json_t *f, bool force_unref)
{
    size_t n = json_array_size(f);
    const char *key = json_string_value(json_array_get(f, 0));
    const char *hash = json_string_value(json_array_get(f, 3));
    const char *object = json_string_value(json_array_get(f, 4));
    const json_t *flag = json_array_get(f, 6);
    if ((n != 6 && n != 7) || !key || !is_count(json_array_get(f, 1)) || !json_is_integer(json_array_get(f, 2)) ||
        !hash || strlen(hash) != CS_HASH_HEX - 1 || strspn(hash, "0123456789abcdef") != CS_HASH_HEX - 1 ||
        !cs_is_hex32(object) || !is_count(json_array_get(f, 5)) || (n == 7 && !json_is_boolean(flag)))
        return false;
    add_entry(s, cs_strdup(key), (uint64_t)json_integer_value(json_array_get(f, 1)),
              (int64_t)json_integer_value(json_array_get(f, 2)), hash, object,
              (uint64_t)json_integer_value(json_array_get(f, 5)), force_unref || json_is_true(flag));
    return true;
}

/* Read the cache file into s; *owner is the backup it was written against
 * (NULL: none). False, with s empty, if missing or not valid. */
static bool load_file(entry_set *s, const char *path, char **owner)
{
    char *text = NULL;
    size_t len = 0;
    *owner = NULL;
    if (cs_read_file(path, CS_MANIFEST_MAX, &text, &len, NULL))
        return false;
    json_t *root = json_loadb(text, len, 0, NULL);
    free(text);
    json_t *backup = json_object_get(root, "backup");
    json_t *files = json_object_get(root, "files");
    bool ok = (json_is_string(backup) || json_is_null(backup)) && json_is_array(files);
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        /* Without an anchor no entry can be referenced (older versions did
         * not mark them). */
        if (!ok || !parse_entry(s, f, json_is_null(backup))) {
            ok = false;
            break;
        }
    }
    if (ok && json_is_string(backup))
        *owner = cs_strdup(json_string_value(backup));
    json_decref(root);
    if (!ok)
        clear_entries(s);
    return ok;
}

/* Read the journal's whole lines into s (all unreferenced, in order); a
 * bad or torn line is skipped. *good is the length of the whole lines: the
 * journal is cut back to it before appending (to 0 if it cannot be read:
 * none of its lines were used). */
static void load_journal(entry_set *s, const char *path, size_t *good)
{
    char *text = NULL;
    size_t len = 0;
    cs_err err;
    cs_err_clear(&err);
    *good = 0;
    int rc = cs_read_file(path, CS_MANIFEST_MAX, &text, &len, &err);
    if (rc) {
        if (rc != CS_E_NOTFOUND)
            cs_debug("dedup journal: %s: starting it anew", err.msg);
        return;
    }
    size_t lineno = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (!nl) {
            cs_debug("dedup journal %s: line %zu is torn: ignored", path, lineno);
            break;
        }
        json_t *f = json_loadb(p, (size_t)(nl - p), 0, NULL);
        if (!parse_entry(s, f, true))
            cs_debug("dedup journal %s: line %zu is not valid: ignored", path, lineno);
        json_decref(f);
        p = nl + 1;
        *good = (size_t)(p - text);
    }
    free(text);
}

/* Drop the unreferenced entries of s whose object is missing or does not
 * have the size the entry says. Any other error stat-ing one is returned
 * (s then keeps the entries not checked yet). */
static int check_objects(cs_repo *repo, entry_set *s, cs_err *e)
{
    size_t kept = 0;
    int rc = 0;
    for (size_t i = 0; i < s->n; i++) {
        cs_state_entry *en = &s->v[i];
        bool keep = true;
        if (en->unreferenced && !rc) {
            char *key = cs_repo_object_key(en->object);
            cs_storage_stat ss;
            uint64_t want = cs_repo_stored_size(repo, en->stored);
            rc = cs_storage_stat(repo->st, key, &ss, e);
            if (rc == CS_E_NOTFOUND) {
                cs_debug("dedup cache: object %s of %s is gone: the file is stored again", en->object,
                         key_name(en->key));
                cs_err_clear(e);
                rc = 0;
                keep = false;
            } else if (rc) {
                cs_err_prefix(e, "checking object %s of the dedup cache", en->object);
            } else if (ss.size != want) {
                cs_debug("dedup cache: object %s of %s holds %llu bytes, not %llu: the file is stored again",
                         en->object, key_name(en->key), (unsigned long long)ss.size, (unsigned long long)want);
                keep = false;
            }
            free(key);
        }
        if (keep)
            s->v[kept++] = *en;
        else
            free(en->key);
    }
    s->n = kept;
    return rc;
}

/* Entries of t whose object is the one the anchor's files (sorted) hold for
 * the same key are referenced after all: nothing to check. (A backup killed
 * after writing its manifest leaves its journal behind.) */
static void mark_referenced(entry_set *t, const entry_set *anchor)
{
    for (size_t i = 0; anchor->n && i < t->n; i++) {
        cs_state_entry *en = &t->v[i];
        const cs_state_entry *hit = bsearch(en, anchor->v, anchor->n, sizeof *anchor->v, compare_keys);
        if (hit && !hit->unreferenced && !strcmp(hit->object, en->object))
            en->unreferenced = false;
    }
}

/* Open the journal for appending, cut back to its first good bytes. */
static void open_journal(cs_state *s, size_t good)
{
    char *dir = cs_dirname(s->journal_path);
    cs_err err;
    cs_err_clear(&err);
    int fd = -1;
    if (cs_mkdirs(dir, 0700, &err) == 0) {
        fd = open(s->journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)good) != 0)
            cs_err_sys(&err, CS_E_IO, errno, "cannot open %s", s->journal_path);
    }
    if (err.code) {
        cs_warn("dedup journal: %s: a backup killed before its end will store its files again", err.msg);
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    free(dir);
    s->journal_fd = fd;
}

int cs_state_load(const cs_config *cfg, cs_repo *repo, const char *host_id, cs_state **out, cs_err *e)
{
    cs_state *s = cs_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->journal_fd = -1;
    s->journal_path = state_path(cfg, repo, host_id, "journal");
    entry_set cache = { NULL, 0 }, stale = { NULL, 0 }, journal = { NULL, 0 };
    char *owner = NULL, *newest = NULL;
    bool owner_complete = false;
    char *path = state_path(cfg, repo, host_id, "json");
    bool ok = load_file(&cache, path, &owner);
    int rc = find_backups(repo, host_id, owner, &newest, &owner_complete, e);
    if (rc)
        goto out;
    s->anchor = newest ? cs_strdup(newest) : NULL;
    bool same = ok && (newest ? owner && !strcmp(owner, newest) : !owner);
    if (!same) {
        /* Written against another backup (or not readable: then empty). */
        stale = cache;
        cache = (entry_set){ NULL, 0 };
        bool rebuilt = false;
        if (newest && cs_repo_is_encrypted(repo) && !repo->n_identities) {
            /* A backup host holds only public keys: it cannot read old
             * manifests. The files of the cache's own backup, if it is
             * still complete, are safe to reuse: below. */
            if (owner_complete)
                cs_info("using the dedup cache of backup %s: no identity to rebuild it from the newer backup %s",
                        owner, newest);
            else
                cs_warn("no dedup cache for this node and no identity to rebuild it from backup %s: "
                        "every file is stored again", newest);
        } else if (newest) {
            cs_info("rebuilding the dedup cache from backup %s", newest);
            cs_manifest m;
            rc = cs_repo_read_manifest(repo, newest, host_id, &m, e);
            if (rc)
                goto out;
            fill_from_manifest(&cache, &m, false, false);
            cs_manifest_free(&m);
            rebuilt = true;
        }
        /* What a failed backup stored is worth keeping whatever the
         * anchor (checked like the rest); files of the cache's own backup
         * only when there is nothing better, and no longer as referenced:
         * they are not files of the anchor. */
        size_t kept = 0;
        for (size_t i = 0; i < stale.n; i++) {
            if (stale.v[i].unreferenced || (!rebuilt && owner_complete))
                stale.v[kept++] = stale.v[i];
            else
                free(stale.v[i].key);
        }
        stale.n = kept;
    }
    size_t good = 0;
    load_journal(&journal, s->journal_path, &good);
    /* Later sources win: stale < cache < journal. Checked before they are
     * merged so that the files of a complete backup are never stat'ed. */
    sort_unique(&cache);
    mark_referenced(&stale, &cache);
    mark_referenced(&journal, &cache);
    rc = check_objects(repo, &stale, e);
    if (!rc)
        rc = check_objects(repo, &cache, e);
    if (!rc)
        rc = check_objects(repo, &journal, e);
    if (rc)
        goto out;
    for (size_t i = 0; i < stale.n; i++)
        stale.v[i].unreferenced = true;
    move_entries(&s->set, &stale);
    move_entries(&s->set, &cache);
    move_entries(&s->set, &journal);
    sort_unique(&s->set);
    open_journal(s, good);
out:
    clear_entries(&cache);
    clear_entries(&stale);
    clear_entries(&journal);
    free(owner);
    free(newest);
    free(path);
    if (rc) {
        cs_state_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cs_state_record(cs_state *s, const char *data_dir, const char *table_id, const cs_mfile *f)
{
    if (!s)
        return;
    char *key = entry_key(data_dir, table_id, f->name);
    json_t *a = json_pack("[s, I, I, s, s, I, b]", key, (json_int_t)f->size, (json_int_t)f->mtime_ns, f->hash,
                          f->object, (json_int_t)f->stored, 1);
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    char *line = text ? cs_sprintf("%s\n", text) : NULL;
    json_decref(a);
    free(text);
    free(key);
    pthread_mutex_lock(&s->mu);
    if (s->journal_fd >= 0 && !line) {
        /* Not valid UTF-8, say: the manifest cannot hold it either. */
        cs_debug("dedup journal: cannot encode %s: not recorded", f->name);
    } else if (s->journal_fd >= 0) {
        /* One write(2) on an O_APPEND descriptor: a kill leaves at most a
         * torn last line, which load ignores and cuts off. */
        size_t len = strlen(line);
        ssize_t n;
        do
            n = write(s->journal_fd, line, len);
        while (n < 0 && errno == EINTR);
        if (n < 0 || (size_t)n != len) {
            /* Stop here: a short write is a torn line, and lines after it
             * would be joined to it. Warned once: nothing more is written. */
            cs_warn("dedup journal: cannot write %s: %s: a backup killed before its end will store its files "
                    "again",
                    s->journal_path, n < 0 ? strerror(errno) : "short write");
            close(s->journal_fd);
            s->journal_fd = -1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(line);
}

const cs_state_entry *cs_state_find(const cs_state *s, const char *data_dir, const char *table_id,
                                    const char *name, uint64_t size, int64_t mtime_ns)
{
    if (!s || !s->set.n)
        return NULL;
    cs_state_entry probe = { .key = entry_key(data_dir, table_id, name) };
    const cs_state_entry *hit = bsearch(&probe, s->set.v, s->set.n, sizeof *s->set.v, compare_keys);
    free(probe.key);
    if (hit && hit->size == size && hit->mtime_ns == mtime_ns)
        return hit;
    return NULL;
}

static int write_state(const cs_config *cfg, cs_repo *repo, const char *host_id, const char *anchor,
                       const entry_set *s, cs_err *e)
{
    json_t *files = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const cs_state_entry *en = &s->v[i];
        json_array_append_new(files, json_pack("[s, I, I, s, s, I, b]", en->key, (json_int_t)en->size,
                                               (json_int_t)en->mtime_ns, en->hash, en->object,
                                               (json_int_t)en->stored, (int)en->unreferenced));
    }
    json_t *root = json_pack("{s:o, s:o}", "backup", anchor ? json_string(anchor) : json_null(), "files", files);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *path = state_path(cfg, repo, host_id, "json");
    char *dir = cs_dirname(path);
    int rc = cs_mkdirs(dir, 0700, e);
    if (!rc)
        rc = cs_write_file_atomic(path, text, strlen(text), 0600, e);
    free(text);
    free(path);
    free(dir);
    return rc;
}

/* Once the cache holds everything the journal did. A journal left behind
 * costs only stats at the next load. */
static void remove_journal(const cs_config *cfg, cs_repo *repo, const char *host_id)
{
    char *path = state_path(cfg, repo, host_id, "journal");
    if (unlink(path) != 0 && errno != ENOENT)
        cs_warn("dedup journal: cannot remove %s: %s", path, strerror(errno));
    free(path);
}

int cs_state_save(const cs_config *cfg, cs_repo *repo, const cs_manifest *m, cs_err *e)
{
    entry_set s = { NULL, 0 };
    fill_from_manifest(&s, m, false, false);
    int rc = write_state(cfg, repo, m->host_id, m->backup, &s, e);
    clear_entries(&s);
    /* Every file this backup stored is in m; what earlier killed backups
     * stored and m does not hold is no longer needed. */
    if (!rc)
        remove_journal(cfg, repo, m->host_id);
    return rc;
}

int cs_state_save_partial(const cs_config *cfg, cs_repo *repo, const cs_state *old, const cs_manifest *m,
                          cs_err *e)
{
    entry_set s = { NULL, 0 };
    for (size_t i = 0; old && i < old->set.n; i++) {
        const cs_state_entry *en = &old->set.v[i];
        add_entry(&s, cs_strdup(en->key), en->size, en->mtime_ns, en->hash, en->object, en->stored,
                  en->unreferenced);
    }
    fill_from_manifest(&s, m, true, true);
    sort_unique(&s); /* a file stored again replaces what old knew of it */
    int rc = write_state(cfg, repo, m->host_id, old ? old->anchor : NULL, &s, e);
    clear_entries(&s);
    /* The journal adds nothing to this cache: what it held at load is in
     * old (or was dropped because its object is gone), and every line
     * recorded since is a file m stored (is_new). Removing it keeps it from
     * growing over repeated failures, and its lines from being checked at
     * every load. Without old, its lines were never merged: keep it. */
    if (!rc && old)
        remove_journal(cfg, repo, m->host_id);
    return rc;
}

void cs_state_free(cs_state *s)
{
    if (!s)
        return;
    clear_entries(&s->set);
    if (s->journal_fd >= 0)
        close(s->journal_fd);
    pthread_mutex_destroy(&s->mu);
    free(s->journal_path);
    free(s->anchor);
    free(s);
}

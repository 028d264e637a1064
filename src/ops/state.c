#include "ops/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
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
    entry_set known;         /* learned contents: key NULL, mtime_ns the time learned (s) */
    const cs_state_entry **by_content; /* set and known, by size, hash, object */
    size_t n_content;
    uint64_t repo_objects;   /* estimated objects in the repository */
    char *anchor;            /* the newest complete backup when loaded; NULL: none */
    pthread_mutex_t mu;      /* guards the journal (cs_state_record runs on workers) */
    int journal_fd;          /* O_APPEND; -1: not recording */
    char *journal_path;
};

static char *entry_key(const char *data_dir, const char *table_id, const char *name)
{
    return cs_sprintf("%s\t%s\t%s", data_dir, table_id, name);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(((const cs_state_entry *)a)->key, ((const cs_state_entry *)b)->key);
}

static void add_entry(entry_set *s, char *key, uint64_t size, int64_t mtime, const char *hash, const char *object,
                      uint64_t stored, const cs_pack_ref *pack, bool unreferenced)
{
    s->v = cs_realloc(s->v, (s->n + 1) * sizeof *s->v);
    cs_state_entry *en = &s->v[s->n++];
    en->key = key;
    en->size = size;
    en->mtime_ns = mtime;
    snprintf(en->hash, sizeof en->hash, "%s", hash);
    memcpy(en->object, object, CS_OBJECT_ID_HEX);
    en->stored = stored;
    if (pack)
        en->pack = *pack;
    else
        memset(&en->pack, 0, sizeof en->pack);
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
                      f->mtime_ns, f->hash, f->object, f->stored, &f->pack, unreferenced);
        }
}

char *cs_state_dir(const cs_host *host)
{
    const char *home = getenv("HOME");
    return host->state_dir ? cs_strdup(host->state_dir)
                          : cs_sprintf("%s/.cache/cassette/state", home && *home ? home : "/tmp");
}

int cs_state_lock(const cs_host *host, const char *host_id, int *fd_out, cs_err *e)
{
    char *dir = cs_state_dir(host);
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
static char *state_path(const cs_host *host, const cs_repo *repo, const char *host_id, const char *suffix)
{
    char *dir = cs_state_dir(host);
    char *path = cs_sprintf("%s/%s/%s.%s", dir, repo->id, host_id, suffix);
    free(dir);
    return path;
}

/* The newest complete backup of host_id (NULL: none; caller frees),
 * whether `owner` (may be NULL) is a complete backup of host_id, and how
 * many objects the repository holds, as the backups' summaries tell (what
 * each stored itself; all it stored when a summary does not say). */
static int find_backups(cs_repo *repo, const char *host_id, const char *owner, char **newest, bool *owner_complete,
                        uint64_t *objects, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    *newest = NULL;
    *owner_complete = false;
    *objects = 0;
    int rc = cs_repo_list_backups(repo, &entries, &n, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        *objects += entries[i].has_new ? entries[i].files_new : entries[i].files;
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

/* A content hash of either form (io/filters.h): a state written before
 * SHA-256 holds BLAKE2b hashes, kept as they are. */
static bool is_hash(const char *hash)
{
    return cs_content_hash_parse(hash, NULL);
}

/* One entry: [key, size, mtime_ns, hash, object, stored, unreferenced]
 * and, for a file of a pack, its pack reference (manifest.h) last (files
 * written before the flag existed have six elements: referenced).
 * Added to s if valid (unreferenced whatever it says if force_unref). */
static bool parse_entry(entry_set *s, const json_t *f, bool force_unref)
{
    size_t n = json_array_size(f);
    const char *key = json_string_value(json_array_get(f, 0));
    const char *hash = json_string_value(json_array_get(f, 3));
    const char *object = json_string_value(json_array_get(f, 4));
    const json_t *flag = json_array_get(f, 6);
    if ((n != 6 && n != 7 && n != 8) || !key || !is_count(json_array_get(f, 1)) ||
        !json_is_integer(json_array_get(f, 2)) || !is_hash(hash) || !cs_is_hex32(object) ||
        !is_count(json_array_get(f, 5)) || (n >= 7 && !json_is_boolean(flag)))
        return false;
    cs_pack_ref pack;
    cs_err e;
    cs_err_clear(&e);
    if (n == 8 && cs_pack_ref_parse(json_array_get(f, 7), (uint64_t)json_integer_value(json_array_get(f, 5)),
                                    (uint64_t)json_integer_value(json_array_get(f, 1)), &pack, &e))
        return false;
    add_entry(s, cs_strdup(key), (uint64_t)json_integer_value(json_array_get(f, 1)),
              (int64_t)json_integer_value(json_array_get(f, 2)), hash, object,
              (uint64_t)json_integer_value(json_array_get(f, 5)), n == 8 ? &pack : NULL,
              force_unref || json_is_true(flag));
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

/* ---- known contents ---- */

/* Learned contents older than this are forgotten: by then compaction has
 * usually rewritten the files, and the file must not grow for ever. */
#define CONTENT_TTL (30 * 86400)

/* One line of <host id>.content: [size, hash, object, stored, learned]
 * and a pack reference last for a file of a pack (learned: seconds since
 * the epoch). Added to s if valid and learned at
 * or after `oldest`. */
static void parse_content(entry_set *s, const json_t *f, int64_t oldest)
{
    const char *hash = json_string_value(json_array_get(f, 1));
    const char *object = json_string_value(json_array_get(f, 2));
    const json_t *learned = json_array_get(f, 4);
    size_t n = json_array_size(f);
    if ((n != 5 && n != 6) || !is_count(json_array_get(f, 0)) || !is_hash(hash) || !cs_is_hex32(object) ||
        !is_count(json_array_get(f, 3)) || !json_is_integer(learned) || json_integer_value(learned) < oldest)
        return;
    cs_pack_ref pack;
    cs_err e;
    cs_err_clear(&e);
    if (n == 6 && cs_pack_ref_parse(json_array_get(f, 5), (uint64_t)json_integer_value(json_array_get(f, 3)),
                                    (uint64_t)json_integer_value(json_array_get(f, 0)), &pack, &e))
        return;
    add_entry(s, NULL, (uint64_t)json_integer_value(json_array_get(f, 0)), (int64_t)json_integer_value(learned),
              hash, object, (uint64_t)json_integer_value(json_array_get(f, 3)), n == 6 ? &pack : NULL, true);
}

/* The valid, unexpired lines of the content file at path (none if it is
 * missing); a bad or torn line is skipped. */
static void load_content(entry_set *s, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (cs_read_file(path, CS_MANIFEST_MAX, &text, &len, NULL))
        return;
    int64_t oldest = (int64_t)time(NULL) - CONTENT_TTL;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        json_t *f = json_loadb(p, (size_t)(nl - p), 0, NULL);
        parse_content(s, f, oldest);
        json_decref(f);
        p = nl + 1;
    }
    free(text);
}

static void add_content_line(cs_buf *b, uint64_t size, const char *hash, const char *object, uint64_t stored,
                             const cs_pack_ref *pack, int64_t learned)
{
    json_t *a = json_pack("[I, s, s, I, I]", (json_int_t)size, hash, object, (json_int_t)stored, (json_int_t)learned);
    if (a && pack->len)
        json_array_append_new(a, cs_pack_ref_json(pack));
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    if (text)
        cs_buf_printf(b, "%s\n", text);
    free(text);
    json_decref(a);
}

static int compare_content(const void *a, const void *b)
{
    const cs_state_entry *x = *(const cs_state_entry *const *)a, *y = *(const cs_state_entry *const *)b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    int c = strcmp(x->hash, y->hash);
    return c ? c : strcmp(x->object, y->object);
}

/* Index every entry of the cache and every learned content by content. */
static void index_contents(cs_state *s)
{
    s->n_content = s->set.n + s->known.n;
    s->by_content = cs_calloc(s->n_content ? s->n_content : 1, sizeof *s->by_content);
    for (size_t i = 0; i < s->set.n; i++)
        s->by_content[i] = &s->set.v[i];
    for (size_t i = 0; i < s->known.n; i++)
        s->by_content[s->set.n + i] = &s->known.v[i];
    if (s->n_content > 1)
        qsort(s->by_content, s->n_content, sizeof *s->by_content, compare_content);
}

/* The content file is appended to by restores and rewritten by backups:
 * both hold <host id>.content.lock meanwhile (flock: released at close or
 * exit). -1, with a warning, if it cannot be taken. */
static int lock_content(const char *content_path)
{
    char *path = cs_sprintf("%s.lock", content_path);
    char *dir = cs_dirname(path);
    cs_err err;
    cs_err_clear(&err);
    int fd = -1;
    if (cs_mkdirs(dir, 0700, &err) == 0) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            cs_err_sys(&err, CS_E_IO, errno, "cannot lock %s", path);
    }
    if (err.code) {
        cs_warn("known contents: %s", err.msg);
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    free(dir);
    free(path);
    return fd;
}

int cs_state_learn(const cs_host *host, const cs_repo *repo, const char *host_id, const cs_manifest *m,
                   const bool *tables, cs_err *e)
{
    cs_buf lines = CS_BUF_INIT;
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; (!tables || tables[i]) && j < m->tables[i].n_files; j++) {
            const cs_mfile *f = &m->tables[i].files[j];
            add_content_line(&lines, f->size, f->hash, f->object, f->stored, &f->pack, now);
        }
    char *path = state_path(host, repo, host_id, "content");
    int lock = lines.len ? lock_content(path) : -1;
    int rc = 0;
    if (lock >= 0) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        ssize_t n = fd < 0 ? -1 : write(fd, lines.data, lines.len);
        if (n < 0 || (size_t)n != lines.len)
            rc = cs_err_sys(e, CS_E_IO, n < 0 ? errno : EIO, "cannot write %s", path);
        if (fd >= 0)
            close(fd);
        close(lock);
    }
    cs_buf_free(&lines);
    free(path);
    return rc;
}

static int compare_object(const void *a, const void *b)
{
    return strcmp(((const cs_state_entry *)a)->object, ((const cs_state_entry *)b)->object);
}

static int compare_mfile_content(const void *a, const void *b)
{
    const cs_mfile *x = *(const cs_mfile *const *)a, *y = *(const cs_mfile *const *)b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return strcmp(x->hash, y->hash);
}

/* The files of m, sorted by content (pointers into m; caller frees the
 * array). */
static const cs_mfile **files_by_content(const cs_manifest *m, size_t *n)
{
    return cs_manifest_files(m, compare_mfile_content, n);
}

/* Rewrite the content file with only what is worth keeping. */
static int rewrite_content(const char *path, const cs_manifest *m, cs_err *e)
{
    entry_set known = { NULL, 0 };
    load_content(&known, path);
    if (known.n > 1)
        qsort(known.v, known.n, sizeof *known.v, compare_object);
    size_t n_used = 0;
    const cs_mfile **used = files_by_content(m, &n_used);
    cs_buf kept = CS_BUF_INIT;
    for (size_t i = 0; i < known.n; i++) {
        const cs_state_entry *en = &known.v[i];
        cs_mfile probe = { .size = en->size };
        memcpy(probe.hash, en->hash, sizeof probe.hash);
        const cs_mfile *key = &probe;
        if ((i && !strcmp(known.v[i - 1].object, en->object)) ||
            (n_used && bsearch(&key, used, n_used, sizeof *used, compare_mfile_content)))
            continue;
        add_content_line(&kept, en->size, en->hash, en->object, en->stored, &en->pack, en->mtime_ns);
    }
    int rc = 0;
    if (kept.len)
        rc = cs_write_file_atomic(path, kept.data, kept.len, 0600, e);
    else if (unlink(path) != 0 && errno != ENOENT)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot remove %s", path);
    cs_buf_free(&kept);
    free(used);
    clear_entries(&known);
    return rc;
}

/* After a complete backup: the learned contents m holds are in the cache
 * now (by name); forget them and those expired, and keep one line per
 * object. A failure costs only a larger file: a warning. */
static void prune_content(const cs_host *host, cs_repo *repo, const cs_manifest *m)
{
    char *path = state_path(host, repo, m->host_id, "content");
    int lock = cs_exists(path) ? lock_content(path) : -1;
    cs_err err;
    cs_err_clear(&err);
    if (lock >= 0 && rewrite_content(path, m, &err))
        cs_warn("known contents: %s", err.msg);
    if (lock >= 0)
        close(lock);
    free(path);
}

const cs_state_entry *const *cs_state_contents(const cs_state *s, uint64_t size, const char *hash, size_t *n)
{
    *n = 0;
    if (!s || !s->n_content)
        return NULL;
    /* The first entry not below (size, hash), then as many as match. */
    size_t lo = 0, hi = s->n_content;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const cs_state_entry *en = s->by_content[mid];
        int c = en->size != size ? (en->size < size ? -1 : 1) : hash ? strcmp(en->hash, hash) : 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < s->n_content && s->by_content[end]->size == size && (!hash || !strcmp(s->by_content[end]->hash, hash)))
        end++;
    *n = end - lo;
    return *n ? s->by_content + lo : NULL;
}

uint64_t cs_state_repo_objects(const cs_state *s)
{
    return s ? s->repo_objects : 0;
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

int cs_state_load(const cs_host *host, cs_repo *repo, const char *host_id, cs_state **out, cs_err *e)
{
    cs_state *s = cs_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->journal_fd = -1;
    s->journal_path = state_path(host, repo, host_id, "journal");
    entry_set cache = { NULL, 0 }, stale = { NULL, 0 }, journal = { NULL, 0 };
    char *owner = NULL, *newest = NULL;
    bool owner_complete = false;
    char *path = state_path(host, repo, host_id, "json");
    bool ok = load_file(&cache, path, &owner);
    int rc = find_backups(repo, host_id, owner, &newest, &owner_complete, &s->repo_objects, e);
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
    /* Later sources win: stale < cache < journal. No object is checked
     * here: the backup checks every object it reuses (ops/present.h). */
    sort_unique(&cache);
    mark_referenced(&stale, &cache);
    mark_referenced(&journal, &cache);
    for (size_t i = 0; i < stale.n; i++)
        stale.v[i].unreferenced = true;
    move_entries(&s->set, &stale);
    move_entries(&s->set, &cache);
    move_entries(&s->set, &journal);
    sort_unique(&s->set);
    char *content = state_path(host, repo, host_id, "content");
    load_content(&s->known, content);
    free(content);
    index_contents(s);
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
    if (a && cs_mfile_packed(f))
        json_array_append_new(a, cs_pack_ref_json(&f->pack));
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

static int write_state(const cs_host *host, cs_repo *repo, const char *host_id, const char *anchor,
                       const entry_set *s, cs_err *e)
{
    json_t *files = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const cs_state_entry *en = &s->v[i];
        json_t *a = json_pack("[s, I, I, s, s, I, b]", en->key, (json_int_t)en->size, (json_int_t)en->mtime_ns,
                              en->hash, en->object, (json_int_t)en->stored, (int)en->unreferenced);
        if (a && en->pack.len)
            json_array_append_new(a, cs_pack_ref_json(&en->pack));
        json_array_append_new(files, a);
    }
    json_t *root = json_pack("{s:o, s:o}", "backup", anchor ? json_string(anchor) : json_null(), "files", files);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *path = state_path(host, repo, host_id, "json");
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
static void remove_journal(const cs_host *host, cs_repo *repo, const char *host_id)
{
    char *path = state_path(host, repo, host_id, "journal");
    if (unlink(path) != 0 && errno != ENOENT)
        cs_warn("dedup journal: cannot remove %s: %s", path, strerror(errno));
    free(path);
}

int cs_state_save(const cs_host *host, cs_repo *repo, const cs_manifest *m, cs_err *e)
{
    entry_set s = { NULL, 0 };
    fill_from_manifest(&s, m, false, false);
    int rc = write_state(host, repo, m->host_id, m->backup, &s, e);
    clear_entries(&s);
    /* Every file this backup stored is in m; what earlier killed backups
     * stored and m does not hold is no longer needed. */
    if (!rc)
        remove_journal(host, repo, m->host_id);
    if (!rc)
        prune_content(host, repo, m);
    return rc;
}

int cs_state_save_partial(const cs_host *host, cs_repo *repo, const cs_state *old, const cs_manifest *m,
                          cs_err *e)
{
    entry_set s = { NULL, 0 };
    for (size_t i = 0; old && i < old->set.n; i++) {
        const cs_state_entry *en = &old->set.v[i];
        add_entry(&s, cs_strdup(en->key), en->size, en->mtime_ns, en->hash, en->object, en->stored, &en->pack,
                  en->unreferenced);
    }
    fill_from_manifest(&s, m, true, true);
    sort_unique(&s); /* a file stored again replaces what old knew of it */
    int rc = write_state(host, repo, m->host_id, old ? old->anchor : NULL, &s, e);
    clear_entries(&s);
    /* The journal adds nothing to this cache: what it held at load is in
     * old (or was dropped because its object is gone), and every line
     * recorded since is a file m stored (is_new). Removing it keeps it from
     * growing over repeated failures, and its lines from being checked at
     * every load. Without old, its lines were never merged: keep it. */
    if (!rc && old)
        remove_journal(host, repo, m->host_id);
    return rc;
}

void cs_state_free(cs_state *s)
{
    if (!s)
        return;
    clear_entries(&s->set);
    clear_entries(&s->known);
    free(s->by_content);
    if (s->journal_fd >= 0)
        close(s->journal_fd);
    pthread_mutex_destroy(&s->mu);
    free(s->journal_path);
    free(s->anchor);
    free(s);
}

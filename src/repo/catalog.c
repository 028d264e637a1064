/* catalog.c - the SQLite cache of a repository (see catalog.h). */
#include "repo/catalog.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"

#define CATALOG_SCHEMA "2"
#define CACHE_KIB 16384 /* SQLite page cache: 16 MiB whatever the repository's size */

struct cs_catalog {
    sqlite3 *db;
    char *path;
    int depth;               /* open savepoints */
    sqlite3_stmt *add_listed; /* between listing_begin and listing_end */
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS backups("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, host_id TEXT NOT NULL, address TEXT NOT NULL,"
    " started REAL NOT NULL, finished REAL NOT NULL, complete INTEGER NOT NULL,"
    " files INTEGER NOT NULL, size INTEGER NOT NULL, stored INTEGER NOT NULL,"
    " files_new INTEGER, size_new INTEGER, stored_new INTEGER,"
    " source TEXT NOT NULL, source_size INTEGER NOT NULL, source_mtime INTEGER NOT NULL,"
    " has_refs INTEGER NOT NULL, UNIQUE(name, host_id));"
    "CREATE TABLE IF NOT EXISTS objects("
    " id INTEGER PRIMARY KEY, oid TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, stored INTEGER NOT NULL,"
    " hash TEXT NOT NULL, nrefs INTEGER NOT NULL, conflict INTEGER NOT NULL DEFAULT 0, verified REAL);"
    "CREATE TABLE IF NOT EXISTS refs(backup INTEGER NOT NULL, object INTEGER NOT NULL,"
    " PRIMARY KEY(backup, object)) WITHOUT ROWID;";

/* ---- SQLite plumbing ---- */

static int db_err(cs_catalog *c, cs_err *e, const char *what)
{
    return cs_err_set(e, CS_E_IO, "catalog %s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

static int exec(cs_catalog *c, const char *sql, cs_err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int rc = cs_err_set(e, CS_E_IO, "catalog %s: %s", c->path, msg ? msg : sqlite3_errmsg(c->db));
    sqlite3_free(msg);
    return rc;
}

static sqlite3_stmt *prepare(cs_catalog *c, const char *sql, cs_err *e)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_err(c, e, "prepare");
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* Step a statement that returns no rows, then reset it for reuse. */
static int step_done(cs_catalog *c, sqlite3_stmt *st, cs_err *e)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(c, e, "write");
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    return v > 0 ? (uint64_t)v : 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

int cs_catalog_begin(cs_catalog *c, cs_err *e)
{
    int rc = exec(c, "SAVEPOINT cs", e);
    if (!rc)
        c->depth++;
    return rc;
}

int cs_catalog_commit(cs_catalog *c, cs_err *e)
{
    int rc = exec(c, "RELEASE cs", e);
    if (!rc)
        c->depth--;
    return rc;
}

void cs_catalog_rollback(cs_catalog *c)
{
    if (c->depth <= 0)
        return;
    sqlite3_exec(c->db, "ROLLBACK TO cs; RELEASE cs", NULL, NULL, NULL);
    c->depth--;
}

/* ---- opening ---- */

char *cs_catalog_default_path(const char *repo_id)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg == '/')
        return cs_sprintf("%s/cassette/catalog/%s.db", xdg, repo_id);
    const char *home = getenv("HOME");
    return cs_sprintf("%s/.cache/cassette/catalog/%s.db", home && *home ? home : "/tmp", repo_id);
}

static char *meta_value(cs_catalog *c, const char *key)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) == SQLITE_OK) {
        bind_text(st, 1, key);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = cs_strdup(col_text(st, 0));
    }
    sqlite3_finalize(st);
    return v;
}

static int set_meta(cs_catalog *c, const char *key, const char *value, cs_err *e)
{
    sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", e);
    if (!st)
        return e->code;
    bind_text(st, 1, key);
    bind_text(st, 2, value);
    int rc = step_done(c, st, e);
    sqlite3_finalize(st);
    return rc;
}

/* Open the file and make it this repository's catalog of this schema. A
 * mismatch is not an error: the file is a cache and starts over. */
static int open_db(cs_catalog *c, const char *repo_id, bool *mismatch, cs_err *e)
{
    *mismatch = false;
    if (sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        *mismatch = true;
        return 0;
    }
    /* Another cassette may be syncing the same catalog: wait for it. */
    sqlite3_busy_timeout(c->db, 120000);
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-%d; PRAGMA temp_store=FILE",
             CACHE_KIB);
    if (exec(c, pragmas, e) || exec(c, SCHEMA, e)) {
        cs_err_clear(e);
        *mismatch = true;
        return 0;
    }
    char *schema = meta_value(c, "schema");
    char *repo = meta_value(c, "repository");
    if (!schema && !repo) {
        int rc = set_meta(c, "schema", CATALOG_SCHEMA, e);
        if (!rc)
            rc = set_meta(c, "repository", repo_id, e);
        free(schema);
        free(repo);
        return rc;
    }
    *mismatch = !schema || !repo || strcmp(schema, CATALOG_SCHEMA) || strcmp(repo, repo_id);
    free(schema);
    free(repo);
    return 0;
}

static void remove_files(const char *path)
{
    static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char *p = cs_sprintf("%s%s", path, suffixes[i]);
        unlink(p);
        free(p);
    }
}

int cs_catalog_open(const char *path, const cs_repo *repo, cs_catalog **out, cs_err *e)
{
    cs_catalog *c = cs_calloc(1, sizeof *c);
    c->path = cs_strdup(path);
    char *dir = cs_dirname(path);
    int rc = cs_mkdirs(dir, 0700, e);
    free(dir);
    bool mismatch = false;
    if (!rc)
        rc = open_db(c, repo->id, &mismatch, e);
    if (!rc && mismatch) {
        cs_info("catalog %s belongs to another repository or version, or is damaged: starting it over", path);
        sqlite3_close(c->db);
        c->db = NULL;
        remove_files(path);
        rc = open_db(c, repo->id, &mismatch, e);
        if (!rc && mismatch)
            rc = cs_err_set(e, CS_E_IO, "cannot create the catalog %s", path);
    }
    if (rc) {
        cs_err_prefix(e, "catalog");
        cs_catalog_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cs_catalog_close(cs_catalog *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->add_listed);
    while (c->depth > 0)
        cs_catalog_rollback(c);
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

int cs_catalog_clear(cs_catalog *c, cs_err *e)
{
    return exec(c, "DELETE FROM refs; DELETE FROM objects; DELETE FROM backups", e);
}

/* ---- what the repository holds ---- */

enum { K_STARTED, K_SUMMARY, K_MANIFEST, K_KINDS };

/* The keys of one backup of one host. */
typedef struct repo_backup {
    char *name, *host;
    bool has[K_KINDS];
    uint64_t size[K_KINDS];
    int64_t mtime[K_KINDS];
} repo_backup;

typedef struct repo_scan {
    repo_backup *items;
    size_t n;
} repo_scan;

static int kind_of(const char *suffix)
{
    if (!strcmp(suffix, ".started"))
        return K_STARTED;
    if (!strcmp(suffix, ".summary"))
        return K_SUMMARY;
    if (!strcmp(suffix, ".manifest"))
        return K_MANIFEST;
    return -1;
}

static int scan_key(const char *key, const cs_storage_stat *st, void *arg)
{
    repo_scan *s = arg;
    const char *name = key + strlen("backups/");
    const char *slash = strchr(name, '/');
    const char *dot = slash ? strrchr(slash, '.') : NULL;
    int kind = dot ? kind_of(dot) : -1;
    if (kind < 0 || strchr(slash + 1, '/'))
        return 0; /* not a backup's file: nothing of ours */
    s->items = cs_realloc(s->items, (s->n + 1) * sizeof *s->items);
    repo_backup *b = &s->items[s->n++];
    memset(b, 0, sizeof *b);
    b->name = cs_strndup(name, (size_t)(slash - name));
    b->host = cs_strndup(slash + 1, (size_t)(dot - slash - 1));
    b->has[kind] = true;
    b->size[kind] = st->size;
    b->mtime[kind] = st->mtime;
    return 0;
}

static int compare_backups(const void *a, const void *b)
{
    const repo_backup *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->host, y->host);
}

/* One entry per (name, host), sorted, with the kinds merged. */
static void merge_scan(repo_scan *s)
{
    if (!s->n)
        return;
    qsort(s->items, s->n, sizeof *s->items, compare_backups);
    size_t w = 0;
    for (size_t i = 1; i < s->n; i++) {
        repo_backup *into = &s->items[w], *b = &s->items[i];
        if (!compare_backups(into, b)) {
            for (int k = 0; k < K_KINDS; k++)
                if (b->has[k]) {
                    into->has[k] = true;
                    into->size[k] = b->size[k];
                    into->mtime[k] = b->mtime[k];
                }
            free(b->name);
            free(b->host);
        } else {
            s->items[++w] = *b;
        }
    }
    s->n = w + 1;
}

static void free_scan(repo_scan *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].name);
        free(s->items[i].host);
    }
    free(s->items);
}

/* ---- sync ---- */

/* A catalog row as far as sync cares. */
typedef struct cat_row {
    int64_t id;
    char *name, *host, *source;
    uint64_t source_size;
    int64_t source_mtime;
    bool has_refs;
} cat_row;

static int load_rows(cs_catalog *c, cat_row **out, size_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT id, name, host_id, source, source_size, source_mtime, has_refs FROM backups"
                               " ORDER BY name, host_id",
                               e);
    if (!st)
        return e->code;
    cat_row *rows = NULL;
    size_t count = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rows = cs_realloc(rows, (count + 1) * sizeof *rows);
        cat_row *r = &rows[count++];
        r->id = sqlite3_column_int64(st, 0);
        r->name = cs_strdup(col_text(st, 1));
        r->host = cs_strdup(col_text(st, 2));
        r->source = cs_strdup(col_text(st, 3));
        r->source_size = col_u64(st, 4);
        r->source_mtime = sqlite3_column_int64(st, 5);
        r->has_refs = sqlite3_column_int(st, 6) != 0;
    }
    int rc = step == SQLITE_DONE ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    *out = rows;
    *n = count;
    return rc;
}

static void free_rows(cat_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].host);
        free(rows[i].source);
    }
    free(rows);
}

static int forget_row(cs_catalog *c, int64_t id, cs_err *e)
{
    static const char *const sql[] = {
        "DELETE FROM objects WHERE nrefs <= 1 AND id IN (SELECT object FROM refs WHERE backup = ?1)",
        "UPDATE objects SET nrefs = nrefs - 1 WHERE id IN (SELECT object FROM refs WHERE backup = ?1)",
        "DELETE FROM refs WHERE backup = ?1",
        "DELETE FROM backups WHERE id = ?1",
    };
    int rc = cs_catalog_begin(c, e);
    for (size_t i = 0; !rc && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = prepare(c, sql[i], e);
        if (!st) {
            rc = e->code;
            break;
        }
        sqlite3_bind_int64(st, 1, id);
        rc = step_done(c, st, e);
        sqlite3_finalize(st);
    }
    if (!rc)
        return cs_catalog_commit(c, e);
    cs_catalog_rollback(c);
    return rc;
}

/* Where a backup's row comes from: its manifest when complete, else its
 * start mark. */
static int source_kind(const repo_backup *b)
{
    return b->has[K_MANIFEST] ? K_MANIFEST : K_STARTED;
}

static const char *const KIND_SUFFIX[K_KINDS] = { "started", "summary", "manifest" };

static int insert_row(cs_catalog *c, const cs_backup_entry *en, const repo_backup *b, bool has_refs, int64_t *id,
                      cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "INSERT INTO backups(name, host_id, address, started, finished, complete, files, size,"
                               " stored, files_new, size_new, stored_new, source, source_size, source_mtime, has_refs)"
                               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                               e);
    if (!st)
        return e->code;
    int k = source_kind(b);
    bind_text(st, 1, b->name);
    bind_text(st, 2, b->host);
    bind_text(st, 3, en->address ? en->address : "");
    sqlite3_bind_double(st, 4, en->started);
    sqlite3_bind_double(st, 5, en->complete ? en->finished : 0.0);
    sqlite3_bind_int(st, 6, k == K_MANIFEST);
    bind_u64(st, 7, en->files);
    bind_u64(st, 8, en->size);
    bind_u64(st, 9, en->stored);
    if (en->has_new) {
        bind_u64(st, 10, en->files_new);
        bind_u64(st, 11, en->size_new);
        bind_u64(st, 12, en->stored_new);
    }
    sqlite3_bind_text(st, 13, KIND_SUFFIX[k], -1, SQLITE_STATIC);
    bind_u64(st, 14, b->size[k]);
    sqlite3_bind_int64(st, 15, b->mtime[k]);
    sqlite3_bind_int(st, 16, has_refs);
    int rc = step_done(c, st, e);
    sqlite3_finalize(st);
    *id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int compare_file_objects(const void *a, const void *b)
{
    return strcmp((*(const cs_mfile *const *)a)->object, (*(const cs_mfile *const *)b)->object);
}

/* The objects of manifest m, each once, referenced by backup row id. */
static int insert_refs(cs_catalog *c, const cs_manifest *m, int64_t id, cs_err *e)
{
    size_t n = 0;
    for (size_t t = 0; t < m->n_tables; t++)
        n += m->tables[t].n_files;
    const cs_mfile **files = cs_calloc(n ? n : 1, sizeof *files);
    n = 0;
    for (size_t t = 0; t < m->n_tables; t++)
        for (size_t f = 0; f < m->tables[t].n_files; f++)
            files[n++] = &m->tables[t].files[f];
    if (n)
        qsort(files, n, sizeof *files, compare_file_objects);
    sqlite3_stmt *up = prepare(c,
                               "INSERT INTO objects(oid, size, stored, hash, nrefs) VALUES(?1, ?2, ?3, ?4, 1)"
                               " ON CONFLICT(oid) DO UPDATE SET nrefs = nrefs + 1,"
                               " conflict = conflict OR size <> excluded.size OR hash <> excluded.hash RETURNING id",
                               e);
    sqlite3_stmt *ref = up ? prepare(c, "INSERT OR IGNORE INTO refs(backup, object) VALUES(?1, ?2)", e) : NULL;
    int rc = ref ? 0 : e->code;
    for (size_t i = 0; !rc && i < n; i++) {
        if (i && !strcmp(files[i]->object, files[i - 1]->object))
            continue; /* one object, two files: counted once per backup */
        bind_text(up, 1, files[i]->object);
        bind_u64(up, 2, files[i]->size);
        bind_u64(up, 3, files[i]->stored);
        bind_text(up, 4, files[i]->hash);
        int step = sqlite3_step(up);
        sqlite3_int64 object = sqlite3_column_int64(up, 0);
        while (step == SQLITE_ROW)
            step = sqlite3_step(up);
        sqlite3_reset(up);
        if (step != SQLITE_DONE) {
            rc = db_err(c, e, "write");
            break;
        }
        sqlite3_bind_int64(ref, 1, id);
        sqlite3_bind_int64(ref, 2, object);
        rc = step_done(c, ref, e);
    }
    sqlite3_finalize(up);
    sqlite3_finalize(ref);
    free(files);
    return rc;
}

/* (Re)read one backup of the repository into the catalog. */
static int load_backup(cs_catalog *c, cs_repo *repo, const repo_backup *b, const cat_row *old, bool with_refs,
                       cs_err *e)
{
    int k = source_kind(b);
    bool read_manifest = k == K_MANIFEST && (with_refs || !b->has[K_SUMMARY]);
    cs_backup_entry en;
    cs_manifest m;
    bool have_manifest = false;
    int rc;
    if (read_manifest) {
        rc = cs_repo_read_manifest(repo, b->name, b->host, &m, e);
        if (!rc) {
            have_manifest = true;
            cs_repo_entry_of_manifest(&m, &en);
        }
    } else {
        char *key = cs_repo_backup_key(b->name, b->host, k == K_MANIFEST ? "summary" : "started");
        rc = cs_repo_read_entry(repo, key, &en, e);
        free(key);
    }
    if (rc == CS_E_NOTFOUND && !read_manifest) {
        /* Deleted since the listing (a purge, or the backup finished). */
        cs_err_clear(e);
        return old ? forget_row(c, old->id, e) : 0;
    }
    if (rc)
        return rc;
    en.complete = k == K_MANIFEST;
    int64_t id = 0;
    rc = cs_catalog_begin(c, e);
    if (!rc && old)
        rc = forget_row(c, old->id, e);
    if (!rc)
        rc = insert_row(c, &en, b, have_manifest, &id, e);
    if (!rc && have_manifest)
        rc = insert_refs(c, &m, id, e);
    if (!rc)
        rc = cs_catalog_commit(c, e);
    else
        cs_catalog_rollback(c);
    free(en.name);
    free(en.host_id);
    free(en.address);
    if (have_manifest)
        cs_manifest_free(&m);
    return rc;
}

static bool row_is_current(const cat_row *r, const repo_backup *b, bool with_refs)
{
    int k = source_kind(b);
    return !strcmp(r->source, KIND_SUFFIX[k]) && r->source_size == b->size[k] && r->source_mtime == b->mtime[k] &&
           (k != K_MANIFEST || !with_refs || r->has_refs);
}

static int compare_row_backup(const cat_row *r, const repo_backup *b)
{
    int c = strcmp(r->name, b->name);
    return c ? c : strcmp(r->host, b->host);
}

/* A damaged start mark hides nothing (that backup is incomplete either
 * way): it is skipped with a warning, as list always did. */
static int sync_one(cs_catalog *c, cs_repo *repo, const repo_backup *b, const cat_row *old, bool with_refs,
                    cs_err *e)
{
    int rc = load_backup(c, repo, b, old, with_refs, e);
    if (rc && source_kind(b) == K_STARTED && rc != CS_E_IO && rc != CS_E_UNAVAIL) {
        cs_warn("%s", e->msg);
        cs_err_clear(e);
        return 0;
    }
    return rc;
}

int cs_catalog_sync(cs_catalog *c, cs_repo *repo, bool with_refs, cs_err *e)
{
    repo_scan s = { NULL, 0 };
    cat_row *rows = NULL;
    size_t n_rows = 0;
    int rc = cs_storage_list(repo->st, "backups/", scan_key, &s, e);
    if (!rc) {
        merge_scan(&s);
        rc = load_rows(c, &rows, &n_rows, e);
    }
    size_t i = 0, j = 0;
    while (!rc && (i < s.n || j < n_rows)) {
        /* cmp < 0: only the repository has it; > 0: only the catalog. */
        int cmp = i == s.n ? 1 : j == n_rows ? -1 : -compare_row_backup(&rows[j], &s.items[i]);
        repo_backup *b = i < s.n ? &s.items[i] : NULL;
        if (b && !b->has[K_MANIFEST] && !b->has[K_STARTED]) {
            /* A summary alone: the rest was deleted (a purge under way). */
            if (cmp == 0)
                rc = forget_row(c, rows[j++].id, e);
            i++;
        } else if (cmp < 0) {
            rc = sync_one(c, repo, b, NULL, with_refs, e);
            i++;
        } else if (cmp > 0) {
            rc = forget_row(c, rows[j++].id, e);
        } else {
            if (!row_is_current(&rows[j], b, with_refs))
                rc = sync_one(c, repo, b, &rows[j], with_refs, e);
            i++;
            j++;
        }
    }
    free_rows(rows, n_rows);
    free_scan(&s);
    if (rc)
        cs_err_prefix(e, "catalog sync");
    return rc;
}

/* ---- reading ---- */

int cs_catalog_backups(cs_catalog *c, cs_backup_entry **out, size_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT name, host_id, address, started, finished, complete, files, size, stored,"
                               " files_new, size_new, stored_new FROM backups ORDER BY started, name, host_id",
                               e);
    if (!st)
        return e->code;
    cs_backup_entry *entries = NULL;
    size_t count = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        entries = cs_realloc(entries, (count + 1) * sizeof *entries);
        cs_backup_entry *b = &entries[count++];
        memset(b, 0, sizeof *b);
        b->name = cs_strdup(col_text(st, 0));
        b->host_id = cs_strdup(col_text(st, 1));
        b->address = cs_strdup(col_text(st, 2));
        b->started = sqlite3_column_double(st, 3);
        b->finished = sqlite3_column_double(st, 4);
        b->complete = sqlite3_column_int(st, 5) != 0;
        b->files = col_u64(st, 6);
        b->size = col_u64(st, 7);
        b->stored = col_u64(st, 8);
        b->has_new = sqlite3_column_type(st, 11) != SQLITE_NULL;
        b->files_new = col_u64(st, 9);
        b->size_new = col_u64(st, 10);
        b->stored_new = col_u64(st, 11);
    }
    int rc = step == SQLITE_DONE ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    if (rc) {
        cs_backup_entries_free(entries, count);
        return rc;
    }
    *out = entries;
    *n = count;
    return 0;
}

int cs_catalog_forget(cs_catalog *c, const char *name, const char *host_id, cs_err *e)
{
    sqlite3_stmt *st = prepare(c, "SELECT id FROM backups WHERE name = ?1 AND host_id = ?2", e);
    if (!st)
        return e->code;
    bind_text(st, 1, name);
    bind_text(st, 2, host_id);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        rc = forget_row(c, id, e);
    }
    sqlite3_finalize(st);
    return rc;
}

int cs_catalog_count_without_refs(cs_catalog *c, uint64_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c, "SELECT count(*) FROM backups WHERE complete = 1 AND has_refs = 0", e);
    if (!st)
        return e->code;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : db_err(c, e, "read");
    *n = rc ? 0 : col_u64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* ---- choosing objects to verify ---- */

int cs_catalog_select(cs_catalog *c, const char *backup, double sample_pct, uint64_t *count, cs_err *e)
{
    const char *base = backup ? "SELECT DISTINCT r.object AS id FROM refs r JOIN backups b ON b.id = r.backup"
                                " WHERE b.complete = 1 AND b.name = ?1"
                              : "SELECT id FROM objects WHERE nrefs > 0";
    int rc = exec(c, "CREATE TEMP TABLE IF NOT EXISTS sel(row INTEGER PRIMARY KEY); DELETE FROM temp.sel", e);
    if (rc)
        return rc;
    char *sql = cs_sprintf("INSERT INTO temp.sel(row) %s", base);
    sqlite3_stmt *st = prepare(c, sql, e);
    free(sql);
    if (!st)
        return e->code;
    if (backup)
        bind_text(st, 1, backup);
    rc = step_done(c, st, e);
    sqlite3_finalize(st);
    uint64_t total = (uint64_t)sqlite3_changes64(c->db);
    if (!rc && sample_pct > 0 && sample_pct < 100 && total) {
        /* Keep that share of the stored bytes (not of the objects: a few
         * large Data.db files hold most of them), those read back longest
         * ago (never first) first, so successive runs walk through the whole
         * repository: an object is kept while the bytes before it in that
         * order are under the share. */
        st = prepare(c,
                     "DELETE FROM temp.sel WHERE row NOT IN (SELECT id FROM (SELECT o.id, SUM(o.stored) OVER"
                     " (ORDER BY o.verified IS NOT NULL, o.verified, o.id ROWS UNBOUNDED PRECEDING) - o.stored AS"
                     " before, SUM(o.stored) OVER () AS bytes FROM temp.sel s JOIN objects o ON o.id = s.row)"
                     " WHERE before < bytes * ?1 / 100.0 OR before = 0)",
                     e);
        if (!st)
            return e->code;
        sqlite3_bind_double(st, 1, sample_pct);
        rc = step_done(c, st, e);
        sqlite3_finalize(st);
        total -= rc ? 0 : (uint64_t)sqlite3_changes64(c->db);
    }
    *count = rc ? 0 : total;
    return rc;
}

static void read_object(sqlite3_stmt *st, cs_catalog_object *o)
{
    memset(o, 0, sizeof *o);
    o->row = sqlite3_column_int64(st, 0);
    snprintf(o->id, sizeof o->id, "%s", col_text(st, 1));
    o->size = col_u64(st, 2);
    o->stored = col_u64(st, 3);
    snprintf(o->hash, sizeof o->hash, "%s", col_text(st, 4));
    o->conflict = sqlite3_column_int(st, 5) != 0;
}

int cs_catalog_selected(cs_catalog *c, int64_t after, cs_catalog_object *out, size_t max, size_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT o.id, o.oid, o.size, o.stored, o.hash, o.conflict FROM temp.sel s"
                               " JOIN objects o ON o.id = s.row WHERE s.row > ?1 ORDER BY s.row LIMIT ?2",
                               e);
    if (!st)
        return e->code;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    size_t count = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && count < max)
        read_object(st, &out[count++]);
    int rc = step == SQLITE_DONE || step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    *n = count;
    return rc;
}

int cs_catalog_mark_verified(cs_catalog *c, const cs_catalog_object *objs, size_t n, double now, cs_err *e)
{
    sqlite3_stmt *st = prepare(c, "UPDATE objects SET verified = ?1 WHERE id = ?2", e);
    if (!st)
        return e->code;
    int rc = cs_catalog_begin(c, e);
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_bind_double(st, 1, now);
        sqlite3_bind_int64(st, 2, objs[i].row);
        rc = step_done(c, st, e);
    }
    sqlite3_finalize(st);
    if (!rc)
        return cs_catalog_commit(c, e);
    cs_catalog_rollback(c);
    return rc;
}

int cs_catalog_mark_bad(cs_catalog *c, int64_t row, cs_err *e)
{
    int rc = exec(c, "CREATE TEMP TABLE IF NOT EXISTS bad(row INTEGER PRIMARY KEY)", e);
    sqlite3_stmt *st = rc ? NULL : prepare(c, "INSERT OR IGNORE INTO temp.bad(row) VALUES(?1)", e);
    if (!st)
        return e->code;
    sqlite3_bind_int64(st, 1, row);
    rc = step_done(c, st, e);
    sqlite3_finalize(st);
    return rc;
}

int cs_catalog_bad_refs(cs_catalog *c, cs_catalog_ref_cb cb, void *arg, cs_err *e)
{
    int rc = exec(c, "CREATE TEMP TABLE IF NOT EXISTS bad(row INTEGER PRIMARY KEY)", e);
    sqlite3_stmt *st = rc ? NULL
                          : prepare(c,
                                    "SELECT b.name, b.host_id, o.oid FROM refs r JOIN temp.bad x ON x.row = r.object"
                                    " JOIN backups b ON b.id = r.backup JOIN objects o ON o.id = r.object"
                                    " WHERE b.complete = 1 ORDER BY b.name, b.host_id, o.oid",
                                    e);
    if (!st)
        return e->code;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if (cb(col_text(st, 0), col_text(st, 1), col_text(st, 2), arg))
            break;
    rc = step == SQLITE_DONE || step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    return rc;
}

/* ---- a listing of objects/ ---- */

int cs_catalog_listing_begin(cs_catalog *c, cs_err *e)
{
    int rc = exec(c,
                  "DROP TABLE IF EXISTS temp.listing;"
                  "CREATE TEMP TABLE listing(row INTEGER PRIMARY KEY, oid TEXT NOT NULL UNIQUE,"
                  " size INTEGER NOT NULL, mtime INTEGER NOT NULL)",
                  e);
    if (!rc)
        c->add_listed = prepare(c, "INSERT OR IGNORE INTO temp.listing(oid, size, mtime) VALUES(?1, ?2, ?3)", e);
    if (!c->add_listed)
        return e->code;
    return cs_catalog_begin(c, e);
}

int cs_catalog_listing_add(cs_catalog *c, const char *id, uint64_t size, int64_t mtime, cs_err *e)
{
    sqlite3_stmt *st = c->add_listed;
    bind_text(st, 1, id);
    bind_u64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime);
    return step_done(c, st, e);
}

int cs_catalog_listing_end(cs_catalog *c, cs_err *e)
{
    sqlite3_finalize(c->add_listed);
    c->add_listed = NULL;
    return cs_catalog_commit(c, e);
}

int cs_catalog_check_listing(cs_catalog *c, cs_catalog_listed_cb cb, void *arg, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT o.id, o.oid, o.size, o.stored, o.hash, o.conflict, l.size FROM temp.sel s"
                               " JOIN objects o ON o.id = s.row LEFT JOIN temp.listing l ON l.oid = o.oid"
                               " ORDER BY s.row",
                               e);
    if (!st)
        return e->code;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        cs_catalog_object o;
        read_object(st, &o);
        int64_t listed = sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 6);
        if (cb(&o, listed, arg))
            break;
    }
    int rc = step == SQLITE_DONE || step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    return rc;
}

int cs_catalog_unreferenced(cs_catalog *c, int64_t cutoff, int64_t after, char (*ids)[CS_OBJECT_ID_HEX],
                            int64_t *rows, size_t max, size_t *n, uint64_t *bytes, cs_err *e)
{
    *n = 0;
    uint64_t missing = 0;
    int rc = cs_catalog_count_without_refs(c, &missing, e);
    if (!rc && missing)
        return cs_err_set(e, CS_E_INVAL,
                          "the catalog does not know the objects of %llu complete backups: cannot tell which "
                          "objects are unreferenced",
                          (unsigned long long)missing);
    sqlite3_stmt *st = rc ? NULL
                          : prepare(c,
                                    "SELECT l.row, l.oid, l.size FROM temp.listing l LEFT JOIN objects o ON o.oid = l.oid"
                                    " WHERE (o.id IS NULL OR o.nrefs <= 0) AND l.mtime < ?1 AND l.row > ?2"
                                    " ORDER BY l.row LIMIT ?3",
                                    e);
    if (!st)
        return e->code;
    sqlite3_bind_int64(st, 1, cutoff);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        rows[*n] = sqlite3_column_int64(st, 0);
        snprintf(ids[*n], CS_OBJECT_ID_HEX, "%s", col_text(st, 1));
        *bytes += col_u64(st, 2);
        (*n)++;
    }
    rc = step == SQLITE_DONE || step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    return rc;
}

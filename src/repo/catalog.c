/* catalog.c - the SQLite cache of a repository (see catalog.h). */
#include "repo/catalog.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/sqlite.h"

#define CATALOG_SCHEMA "3"
#define CACHE_KIB 16384 /* SQLite page cache: 16 MiB whatever the repository's size */

struct cs_catalog {
    sqlite3 *db;
    char *path;
    char *label;             /* "catalog PATH", what its errors begin with */
    int depth;               /* open savepoints */
    sqlite3_stmt *add_listed; /* between listing_begin and listing_end */
};

/* backups.committed: its manifest is present; complete: committed and not
 * damaged. refs: where its references came from (0 none, 1 its index,
 * 2 its manifest); level: the cs_load_level it was read at; sig: the
 * sizes and times of its files when it was read (any change: read again).
 * objects.size and hash are NULL when only indexes named the object. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS backups("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, host_id TEXT NOT NULL, address TEXT NOT NULL,"
    " started REAL NOT NULL, finished REAL NOT NULL, committed INTEGER NOT NULL, complete INTEGER NOT NULL,"
    " files INTEGER NOT NULL, size INTEGER NOT NULL, stored INTEGER NOT NULL,"
    " files_new INTEGER, size_new INTEGER, stored_new INTEGER,"
    " scope TEXT, scope_names TEXT, scope_id TEXT, damage TEXT,"
    " sig TEXT NOT NULL, level INTEGER NOT NULL, refs INTEGER NOT NULL, UNIQUE(name, host_id));"
    "CREATE TABLE IF NOT EXISTS objects("
    " id INTEGER PRIMARY KEY, oid TEXT NOT NULL UNIQUE, size INTEGER, stored INTEGER NOT NULL,"
    " hash TEXT, nrefs INTEGER NOT NULL, conflict INTEGER NOT NULL DEFAULT 0, verified REAL);"
    "CREATE TABLE IF NOT EXISTS refs(backup INTEGER NOT NULL, object INTEGER NOT NULL,"
    " PRIMARY KEY(backup, object)) WITHOUT ROWID;"
    /* backup sets as list, status and verify last saw them (added in
     * place: an older cassette ignores the table) */
    "CREATE TABLE IF NOT EXISTS sets(name TEXT PRIMARY KEY, set_id TEXT NOT NULL, cluster TEXT NOT NULL,"
    " started REAL NOT NULL, expected INTEGER NOT NULL, complete_hosts INTEGER NOT NULL,"
    " complete INTEGER NOT NULL);";

/* ---- SQLite plumbing ---- */

/* The shared plumbing (common/sqlite.h), bound to this catalog. */
static int db_err(cs_catalog *c, cs_err *e, const char *what)
{
    return cs_sqlite_err(c->db, c->label, what, e);
}

static int exec(cs_catalog *c, const char *sql, cs_err *e)
{
    return cs_sqlite_exec(c->db, c->label, sql, e);
}

static sqlite3_stmt *prepare(cs_catalog *c, const char *sql, cs_err *e)
{
    return cs_sqlite_prepare(c->db, c->label, sql, e);
}

static int step_done(cs_catalog *c, sqlite3_stmt *st, cs_err *e)
{
    return cs_sqlite_step_done(c->db, c->label, st, e);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    return v > 0 ? (uint64_t)v : 0;
}

static char *col_opt_text(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : cs_strdup(cs_sqlite_col_text(st, i));
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

/* Open the file and make it this repository's catalog of this schema. A
 * mismatch is not an error: the file is a cache and starts over. */
static int open_db(cs_catalog *c, const char *repo_id, bool *mismatch, cs_err *e)
{
    *mismatch = false;
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-%d; PRAGMA temp_store=FILE",
             CACHE_KIB);
    /* Another cassette may be syncing the same catalog: wait for it. */
    if (cs_sqlite_open(c->path, c->label, 120000, pragmas, &c->db, e) || exec(c, SCHEMA, e)) {
        cs_err_clear(e);
        *mismatch = true;
        return 0;
    }
    char *schema = cs_sqlite_meta_get(c->db, "schema");
    char *repo = cs_sqlite_meta_get(c->db, "repository");
    if (!schema && !repo) {
        int rc = cs_sqlite_meta_set(c->db, c->label, "schema", CATALOG_SCHEMA, e);
        if (!rc)
            rc = cs_sqlite_meta_set(c->db, c->label, "repository", repo_id, e);
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
    c->label = cs_sprintf("catalog %s", path);
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
    free(c->label);
    free(c);
}

int cs_catalog_clear(cs_catalog *c, cs_err *e)
{
    return exec(c, "DELETE FROM refs; DELETE FROM objects; DELETE FROM backups; DELETE FROM sets", e);
}

/* ---- sync ---- */

/* The sizes and times of a backup's files: what tells that it changed. */
static char *signature(const cs_backup_files *f)
{
    cs_buf b = CS_BUF_INIT;
    for (int k = 0; k < CS_BK_KINDS; k++)
        if (f->has[k])
            cs_buf_printf(&b, "%s:%llu:%lld;", cs_backup_suffix[k], (unsigned long long)f->size[k],
                          (long long)f->mtime[k]);
    return cs_buf_detach(&b);
}

/* A catalog row as far as sync cares. */
typedef struct cat_row {
    char *name, *host, *sig;
    int level;
    int refs;          /* where its references came from (0 none, 1 index, 2 manifest) */
    bool committed;
} cat_row;

static int load_rows(cs_catalog *c, cat_row **out, size_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT name, host_id, sig, level, refs, committed FROM backups"
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
        r->name = cs_strdup(cs_sqlite_col_text(st, 0));
        r->host = cs_strdup(cs_sqlite_col_text(st, 1));
        r->sig = cs_strdup(cs_sqlite_col_text(st, 2));
        r->level = sqlite3_column_int(st, 3);
        r->refs = sqlite3_column_int(st, 4);
        r->committed = sqlite3_column_int(st, 5) != 0;
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
        free(rows[i].sig);
    }
    free(rows);
}

/* Drop backup (name, host) and its references, if the catalog has it. By
 * name, not by a row id read earlier: another process syncing the same
 * catalog (the server's housekeeping beside a task) may have replaced the
 * row since, under a new id. */
static int forget_row(cs_catalog *c, const char *name, const char *host, cs_err *e)
{
#define THE_ROW "(SELECT id FROM backups WHERE name = ?1 AND host_id = ?2)"
    static const char *const sql[] = {
        "DELETE FROM objects WHERE nrefs <= 1 AND id IN (SELECT object FROM refs WHERE backup = " THE_ROW ")",
        "UPDATE objects SET nrefs = nrefs - 1 WHERE id IN (SELECT object FROM refs WHERE backup = " THE_ROW ")",
        "DELETE FROM refs WHERE backup = " THE_ROW,
        "DELETE FROM backups WHERE name = ?1 AND host_id = ?2",
    };
#undef THE_ROW
    int rc = cs_catalog_begin(c, e);
    for (size_t i = 0; !rc && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = prepare(c, sql[i], e);
        if (!st) {
            rc = e->code;
            break;
        }
        cs_sqlite_bind_text(st, 1, name);
        cs_sqlite_bind_text(st, 2, host);
        rc = step_done(c, st, e);
        sqlite3_finalize(st);
    }
    if (!rc)
        return cs_catalog_commit(c, e);
    cs_catalog_rollback(c);
    return rc;
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        cs_sqlite_bind_text(st, i, s);
    else
        sqlite3_bind_null(st, i);
}

static int insert_row(cs_catalog *c, const cs_backup_info *info, const cs_backup_files *f, cs_load_level level,
                      int64_t *id, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "INSERT INTO backups(name, host_id, address, started, finished, committed, complete,"
                               " files, size, stored, files_new, size_new, stored_new, scope, scope_names, scope_id,"
                               " damage, sig, level, refs) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
                               " ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                               e);
    if (!st)
        return e->code;
    const cs_backup_entry *en = &info->entry;
    char *sig = signature(f);
    cs_sqlite_bind_text(st, 1, f->name);
    cs_sqlite_bind_text(st, 2, f->host);
    cs_sqlite_bind_text(st, 3, en->address ? en->address : "");
    sqlite3_bind_double(st, 4, en->started);
    sqlite3_bind_double(st, 5, f->has[CS_BK_MANIFEST] ? en->finished : 0.0);
    sqlite3_bind_int(st, 6, f->has[CS_BK_MANIFEST]);
    sqlite3_bind_int(st, 7, en->complete);
    bind_u64(st, 8, en->files);
    bind_u64(st, 9, en->size);
    bind_u64(st, 10, en->stored);
    if (en->has_new) {
        bind_u64(st, 11, en->files_new);
        bind_u64(st, 12, en->size_new);
        bind_u64(st, 13, en->stored_new);
    }
    bind_opt_text(st, 14, en->scope);
    bind_opt_text(st, 15, en->scope_names);
    bind_opt_text(st, 16, en->scope_id);
    bind_opt_text(st, 17, en->damage);
    cs_sqlite_bind_text(st, 18, sig);
    sqlite3_bind_int(st, 19, (int)level);
    sqlite3_bind_int(st, 20, info->refs);
    int rc = step_done(c, st, e);
    sqlite3_finalize(st);
    free(sig);
    *id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

/* One object of a backup: size and hash are NULL when known from an index only. */
typedef struct ref_item {
    const char *oid;
    uint64_t stored;
    const uint64_t *size;
    const char *hash;
} ref_item;

static int compare_refs(const void *a, const void *b)
{
    return strcmp(((const ref_item *)a)->oid, ((const ref_item *)b)->oid);
}

static ref_item *refs_of(const cs_backup_info *info, size_t *n)
{
    ref_item *items = NULL;
    *n = 0;
    if (info->refs == 2) {
        const cs_manifest *m = &info->manifest;
        size_t total = 0;
        for (size_t t = 0; t < m->n_tables; t++)
            total += m->tables[t].n_files;
        items = cs_calloc(total ? total : 1, sizeof *items);
        for (size_t t = 0; t < m->n_tables; t++)
            for (size_t f = 0; f < m->tables[t].n_files; f++) {
                const cs_mfile *mf = &m->tables[t].files[f];
                /* A pack's members all name the pack's size and hash: what its object holds. */
                const uint64_t *size = cs_mfile_packed(mf) ? &mf->pack.size : &mf->size;
                items[(*n)++] = (ref_item){ mf->object, mf->stored, size, cs_mfile_object_hash(mf) };
            }
    } else if (info->refs == 1) {
        const cs_index *ix = &info->index;
        items = cs_calloc(ix->n_objects ? ix->n_objects : 1, sizeof *items);
        for (size_t i = 0; i < ix->n_objects; i++)
            items[(*n)++] = (ref_item){ ix->objects[i].id, ix->objects[i].stored, NULL, NULL };
    }
    if (*n)
        qsort(items, *n, sizeof *items, compare_refs);
    return items;
}

/* The objects of one backup, each once, referenced by backup row id. Two
 * sources that disagree about an object (size, hash or stored size, where
 * both know them) mark it as a conflict. */
static int insert_refs(cs_catalog *c, const cs_backup_info *info, int64_t id, cs_err *e)
{
    size_t n = 0;
    ref_item *items = refs_of(info, &n);
    sqlite3_stmt *up = prepare(c,
                               "INSERT INTO objects(oid, size, stored, hash, nrefs) VALUES(?1, ?2, ?3, ?4, 1)"
                               " ON CONFLICT(oid) DO UPDATE SET nrefs = nrefs + 1,"
                               " conflict = conflict OR stored <> excluded.stored"
                               " OR coalesce(size <> excluded.size, 0) OR coalesce(hash <> excluded.hash, 0),"
                               " size = coalesce(size, excluded.size), hash = coalesce(hash, excluded.hash)"
                               " RETURNING id",
                               e);
    sqlite3_stmt *ref = up ? prepare(c, "INSERT OR IGNORE INTO refs(backup, object) VALUES(?1, ?2)", e) : NULL;
    int rc = ref ? 0 : e->code;
    for (size_t i = 0; !rc && i < n; i++) {
        if (i && !strcmp(items[i].oid, items[i - 1].oid))
            continue; /* one object, two files: counted once per backup */
        cs_sqlite_bind_text(up, 1, items[i].oid);
        if (items[i].size)
            bind_u64(up, 2, *items[i].size);
        else
            sqlite3_bind_null(up, 2);
        bind_u64(up, 3, items[i].stored);
        bind_opt_text(up, 4, items[i].hash);
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
    free(items);
    return rc;
}

/* (Re)read one backup of the repository into the catalog. */
static int load_backup(cs_catalog *c, cs_repo *repo, const cs_backup_files *f, cs_load_level level, cs_err *e)
{
    cs_backup_info info;
    int rc = cs_repo_load_backup(repo, f, level, &info, e);
    if (rc == CS_E_NOTFOUND) {
        /* Deleted since the listing (a purge, or the backup finished). */
        cs_err_clear(e);
        return forget_row(c, f->name, f->host, e);
    }
    if (rc)
        return rc;
    if (info.entry.damage)
        cs_debug("backup %s of %s is damaged: %s", f->name, f->host, info.entry.damage);
    int64_t id = 0;
    rc = cs_catalog_begin(c, e);
    if (!rc) /* whatever row it has now: another sync may have added one since the listing */
        rc = forget_row(c, f->name, f->host, e);
    if (!rc)
        rc = insert_row(c, &info, f, level, &id, e);
    if (!rc)
        rc = insert_refs(c, &info, id, e);
    if (!rc)
        rc = cs_catalog_commit(c, e);
    else
        cs_catalog_rollback(c);
    cs_backup_info_free(&info);
    return rc;
}

/* With an identity at hand, references learnt from an index (or not at
 * all, when both index and manifest were unreadable) are learnt again
 * from the manifest, the authority (it knows plaintext sizes and hashes). */
static bool row_is_current(const cat_row *r, const cs_backup_files *f, cs_load_level level, bool readable)
{
    char *sig = signature(f);
    bool same = !strcmp(r->sig, sig) && r->level >= (int)level;
    if (level >= CS_LOAD_REFS && r->committed && (r->refs == 0 || (readable && r->refs < 2)))
        same = false;
    free(sig);
    return same;
}

static int compare_row_backup(const cat_row *r, const cs_backup_files *b)
{
    int c = strcmp(r->name, b->name);
    return c ? c : strcmp(r->host, b->host);
}

int cs_catalog_sync(cs_catalog *c, cs_repo *repo, cs_load_level level, cs_err *e)
{
    cs_backup_files *files = NULL;
    size_t n_files = 0;
    cat_row *rows = NULL;
    size_t n_rows = 0;
    bool readable = !cs_repo_is_encrypted(repo) || repo->n_identities;
    int rc = cs_repo_scan_backups(repo, &files, &n_files, e);
    if (!rc)
        rc = load_rows(c, &rows, &n_rows, e);
    size_t i = 0, j = 0;
    while (!rc && (i < n_files || j < n_rows)) {
        /* cmp < 0: only the repository has it; > 0: only the catalog. */
        int cmp = i == n_files ? 1 : j == n_rows ? -1 : -compare_row_backup(&rows[j], &files[i]);
        cs_backup_files *b = i < n_files ? &files[i] : NULL;
        if (b && cmp <= 0 && cs_backup_files_is_leftover(b)) {
            /* A summary or index alone: the rest was deleted (a purge under way). */
            if (cmp == 0) {
                rc = forget_row(c, rows[j].name, rows[j].host, e);
                j++;
            }
            i++;
        } else if (cmp < 0) {
            rc = load_backup(c, repo, b, level, e);
            i++;
        } else if (cmp > 0) {
            rc = forget_row(c, rows[j].name, rows[j].host, e);
            j++;
        } else {
            if (!row_is_current(&rows[j], b, level, readable))
                rc = load_backup(c, repo, b, level, e);
            i++;
            j++;
        }
    }
    free_rows(rows, n_rows);
    cs_backup_files_free(files, n_files);
    if (rc)
        cs_err_prefix(e, "catalog sync");
    return rc;
}

/* ---- reading ---- */

int cs_catalog_backups(cs_catalog *c, cs_backup_entry **out, size_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT name, host_id, address, started, finished, complete, files, size, stored,"
                               " files_new, size_new, stored_new, scope, scope_names, scope_id, damage FROM backups"
                               " ORDER BY started, name, host_id",
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
        b->name = cs_strdup(cs_sqlite_col_text(st, 0));
        b->host_id = cs_strdup(cs_sqlite_col_text(st, 1));
        b->address = cs_strdup(cs_sqlite_col_text(st, 2));
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
        b->scope = col_opt_text(st, 12);
        b->scope_names = col_opt_text(st, 13);
        b->scope_id = col_opt_text(st, 14);
        b->damage = col_opt_text(st, 15);
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
    return forget_row(c, name, host_id, e);
}

int cs_catalog_put_sets(cs_catalog *c, const cs_backup_entry *entries, size_t n, cs_err *e)
{
    int rc = cs_catalog_begin(c, e);
    if (rc)
        return rc;
    rc = exec(c, "DELETE FROM sets", e);
    sqlite3_stmt *st = rc ? NULL : prepare(c, "INSERT OR REPLACE INTO sets(name, set_id, cluster, started, expected,"
                                              " complete_hosts, complete) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)", e);
    if (!rc && !st)
        rc = e->code;
    for (size_t i = 0; !rc && i < n; i++) {
        const cs_set_info *s = entries[i].set;
        if (!s)
            continue;
        cs_sqlite_bind_text(st, 1, entries[i].name);
        cs_sqlite_bind_text(st, 2, s->id);
        cs_sqlite_bind_text(st, 3, s->cluster);
        sqlite3_bind_double(st, 4, entries[i].started);
        bind_u64(st, 5, s->expected);
        bind_u64(st, 6, s->complete_hosts);
        sqlite3_bind_int(st, 7, s->complete);
        rc = step_done(c, st, e);
    }
    sqlite3_finalize(st);
    if (rc) {
        cs_catalog_rollback(c);
        return rc;
    }
    return cs_catalog_commit(c, e);
}

int cs_catalog_sets(cs_catalog *c, cs_catalog_set **out, size_t *n, cs_err *e)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = prepare(c, "SELECT name, set_id, cluster, started, expected, complete_hosts, complete FROM sets"
                                  " ORDER BY started, name", e);
    if (!st)
        return e->code;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        *out = cs_realloc(*out, (*n + 1) * sizeof **out);
        cs_catalog_set *x = &(*out)[(*n)++];
        x->name = cs_strdup(cs_sqlite_col_text(st, 0));
        x->set_id = cs_strdup(cs_sqlite_col_text(st, 1));
        x->cluster = cs_strdup(cs_sqlite_col_text(st, 2));
        x->started = sqlite3_column_double(st, 3);
        x->expected = (size_t)col_u64(st, 4);
        x->complete_hosts = (size_t)col_u64(st, 5);
        x->complete = sqlite3_column_int(st, 6) != 0;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        cs_catalog_sets_free(*out, *n);
        *out = NULL;
        *n = 0;
        return db_err(c, e, "read sets");
    }
    return 0;
}

void cs_catalog_sets_free(cs_catalog_set *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].name);
        free(s[i].set_id);
        free(s[i].cluster);
    }
    free(s);
}

int cs_catalog_only_refs(cs_catalog *c, const char *name, const char *host_id, uint64_t *objects, uint64_t *stored,
                         cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT count(*), coalesce(sum(o.stored), 0) FROM refs r JOIN backups b ON b.id = r.backup"
                               " JOIN objects o ON o.id = r.object WHERE b.name = ?1 AND b.host_id = ?2 AND o.nrefs = 1",
                               e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, name);
    cs_sqlite_bind_text(st, 2, host_id);
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : db_err(c, e, "read");
    *objects = rc ? 0 : col_u64(st, 0);
    *stored = rc ? 0 : col_u64(st, 1);
    sqlite3_finalize(st);
    return rc;
}

int cs_catalog_without_refs(cs_catalog *c, cs_catalog_backup_cb cb, void *arg, cs_err *e)
{
    sqlite3_stmt *st = prepare(c,
                               "SELECT name, host_id, damage FROM backups WHERE committed = 1 AND refs = 0"
                               " ORDER BY name, host_id",
                               e);
    if (!st)
        return e->code;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if (cb(cs_sqlite_col_text(st, 0), cs_sqlite_col_text(st, 1), sqlite3_column_type(st, 2) == SQLITE_NULL ? NULL : cs_sqlite_col_text(st, 2),
               arg))
            break;
    int rc = step == SQLITE_DONE || step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    return rc;
}

int cs_catalog_count_without_refs(cs_catalog *c, uint64_t *n, cs_err *e)
{
    sqlite3_stmt *st = prepare(c, "SELECT count(*) FROM backups WHERE committed = 1 AND refs = 0", e);
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
                              : "SELECT DISTINCT r.object AS id FROM refs r JOIN backups b ON b.id = r.backup"
                                " WHERE b.complete = 1";
    int rc = exec(c, "CREATE TEMP TABLE IF NOT EXISTS sel(row INTEGER PRIMARY KEY); DELETE FROM temp.sel", e);
    if (rc)
        return rc;
    char *sql = cs_sprintf("INSERT INTO temp.sel(row) %s", base);
    sqlite3_stmt *st = prepare(c, sql, e);
    free(sql);
    if (!st)
        return e->code;
    if (backup)
        cs_sqlite_bind_text(st, 1, backup);
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
    snprintf(o->id, sizeof o->id, "%s", cs_sqlite_col_text(st, 1));
    o->size = col_u64(st, 2);
    o->stored = col_u64(st, 3);
    snprintf(o->hash, sizeof o->hash, "%s", cs_sqlite_col_text(st, 4));
    o->conflict = sqlite3_column_int(st, 5) != 0;
}

int cs_catalog_selected_size(cs_catalog *c, uint64_t *bytes, cs_err *e)
{
    sqlite3_stmt *st = prepare(c, "SELECT COALESCE(SUM(o.size), 0) FROM temp.sel s JOIN objects o ON o.id = s.row", e);
    if (!st)
        return e->code;
    int step = sqlite3_step(st);
    *bytes = step == SQLITE_ROW ? col_u64(st, 0) : 0;
    int rc = step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    return rc;
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
        if (cb(cs_sqlite_col_text(st, 0), cs_sqlite_col_text(st, 1), cs_sqlite_col_text(st, 2), arg))
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
    cs_sqlite_bind_text(st, 1, id);
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
        snprintf(ids[*n], CS_OBJECT_ID_HEX, "%s", cs_sqlite_col_text(st, 1));
        *bytes += col_u64(st, 2);
        (*n)++;
    }
    rc = step == SQLITE_DONE || step == SQLITE_ROW ? 0 : db_err(c, e, "read");
    sqlite3_finalize(st);
    return rc;
}

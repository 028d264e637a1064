/* sqlite.c - SQLite plumbing (see sqlite.h). */
#include "common/sqlite.h"

#include <stdlib.h>

#include "common/buf.h"


int cs_sqlite_err(sqlite3 *db, const char *label, const char *what, cs_err *e)
{
    return cs_err_set(e, CS_E_IO, "%s: %s: %s", label, what, db ? sqlite3_errmsg(db) : "out of memory");
}

int cs_sqlite_exec(sqlite3 *db, const char *label, const char *sql, cs_err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int rc = cs_err_set(e, CS_E_IO, "%s: %s", label, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
}

sqlite3_stmt *cs_sqlite_prepare(sqlite3 *db, const char *label, const char *sql, cs_err *e)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        cs_sqlite_err(db, label, "prepare", e);
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

int cs_sqlite_step_done(sqlite3 *db, const char *label, sqlite3_stmt *st, cs_err *e)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : cs_sqlite_err(db, label, "write", e);
}

int cs_sqlite_open(const char *path, const char *label, int busy_ms, const char *pragmas, sqlite3 **db, cs_err *e)
{
    *db = NULL;
    sqlite3 *h = NULL;
    int rc = 0;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        rc = cs_sqlite_err(h, label, "cannot open", e);
    if (!rc) {
        /* Another process may be writing the same file: wait for it. */
        sqlite3_busy_timeout(h, busy_ms);
        rc = cs_sqlite_exec(h, label, "PRAGMA journal_mode=WAL", e);
    }
    if (!rc && pragmas)
        rc = cs_sqlite_exec(h, label, pragmas, e);
    if (rc) {
        sqlite3_close(h);
        return rc;
    }
    *db = h;
    return 0;
}

char *cs_sqlite_meta_get(sqlite3 *db, const char *key)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) == SQLITE_OK) {
        cs_sqlite_bind_text(st, 1, key);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = cs_strdup(cs_sqlite_col_text(st, 0));
    }
    sqlite3_finalize(st);
    return v;
}

int cs_sqlite_meta_set(sqlite3 *db, const char *label, const char *key, const char *value, cs_err *e)
{
    sqlite3_stmt *st = cs_sqlite_prepare(db, label, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", e);
    if (!st)
        return e->code;
    cs_sqlite_bind_text(st, 1, key);
    cs_sqlite_bind_text(st, 2, value);
    int rc = cs_sqlite_step_done(db, label, st, e);
    sqlite3_finalize(st);
    return rc;
}

const char *cs_sqlite_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

void cs_sqlite_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

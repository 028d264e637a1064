/* sqlite.h - the SQLite plumbing shared by cassette's SQLite files (the
 * repository catalog, repo/catalog.h; the server's state, server/state.h).
 *
 * Owns: how cassette opens such a file (WAL journal, a busy timeout so that
 * several processes wait for each other instead of failing, pragmas of the
 * caller's) and how an SQLite failure becomes one cs_err sentence:
 * "LABEL: what: SQLite's message" (CS_E_IO), LABEL naming the file
 * ("catalog /path/x.db"). The handles are the caller's, and so is their
 * locking between threads (files are opened SQLITE_OPEN_NOMUTEX).
 * Must not: know a schema, or log. */
#ifndef CS_SQLITE_H
#define CS_SQLITE_H

#include <sqlite3.h>

#include "common/err.h"

/* Open (creating) path, set the busy timeout, WAL, then run pragmas (SQL,
 * may be NULL). A file that is no SQLite database fails here. On failure
 * *db is NULL. */
int cs_sqlite_open(const char *path, const char *label, int busy_ms, const char *pragmas, sqlite3 **db, cs_err *e);

/* The error of db's last call: "LABEL: what: message". Returns CS_E_IO. */
int cs_sqlite_err(sqlite3 *db, const char *label, const char *what, cs_err *e);
/* Run sql (one or more statements, no rows wanted). */
int cs_sqlite_exec(sqlite3 *db, const char *label, const char *sql, cs_err *e);
/* A prepared statement, or NULL with e set. */
sqlite3_stmt *cs_sqlite_prepare(sqlite3 *db, const char *label, const char *sql, cs_err *e);
/* Step a statement that returns no rows (or whose rows are not wanted),
 * then reset it for reuse. */
int cs_sqlite_step_done(sqlite3 *db, const char *label, sqlite3_stmt *st, cs_err *e);

/* The meta(key TEXT PRIMARY KEY, value TEXT) table in which cassette's
 * SQLite files keep their schema version and such: the value of key
 * (caller frees), NULL when there is none or no such table. */
char *cs_sqlite_meta_get(sqlite3 *db, const char *key);
int cs_sqlite_meta_set(sqlite3 *db, const char *label, const char *key, const char *value, cs_err *e);

/* Column i as text, "" when NULL. */
const char *cs_sqlite_col_text(sqlite3_stmt *st, int i);
/* Bind a copy of s (NULL binds NULL). */
void cs_sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);

#endif

/* fs.h - small file-system helpers shared by every layer.
 *
 * Owns: path joining, directory creation, durable renames, and the check
 * that a relative path read from outside (a manifest, a storage key) stays
 * inside its target directory. Must not: know about repositories or
 * Cassandra. */
#ifndef CS_FS_H
#define CS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* "a" + "/" + "b" (no doubled slash); caller frees. */
char *cs_path_join(const char *a, const char *b);

/* True if rel is a non-empty relative path made only of normal components:
 * no leading '/', no "." or ".." component, no empty component, no NUL,
 * no backslash. This is what lets a manifest name a file. */
bool cs_path_is_safe_relative(const char *rel);

/* mkdir -p with the given mode. */
int cs_mkdirs(const char *path, mode_t mode, cs_err *e);

/* fsync a directory so a rename or create inside it is durable. */
int cs_fsync_dir(const char *dir, cs_err *e);

/* Does the path exist (lstat)? */
bool cs_exists(const char *path);
bool cs_is_dir(const char *path);

/* Parent directory of path (caller frees); "." if none. */
char *cs_dirname(const char *path);

/* Write a whole small file atomically (tmp + fsync + rename + fsync dir). */
int cs_write_file_atomic(const char *path, const void *p, size_t n, mode_t mode, cs_err *e);

/* Read a whole small file; fails if it is larger than max bytes. */
int cs_read_file(const char *path, size_t max, char **out, size_t *out_len, cs_err *e);

/* Remove a directory tree (does not follow symlinks). Missing is fine. */
int cs_remove_tree(const char *path, cs_err *e);

/* Current time: seconds since the epoch with fractions, and an ISO-8601 UTC
 * string "2026-11-22T01:02:03Z" for t (out must hold 21 bytes). */
double cs_now(void);
/* Sleep for seconds (nothing for 0 or less), resumed across signals: not
 * woken by a stop request (common/cancel.h's cs_cancel_sleep is). */
void cs_sleep(double seconds);
void cs_iso8601(int64_t t, char out[21]);
/* The UTC time t as a name part, "20261122-010203" (backup names, exports). */
void cs_utc_stamp(int64_t t, char out[16]);

#endif

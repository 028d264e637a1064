/* storage_conformance.h - the storage driver conformance suite: one set of
 * checks of the contract in storage/storage.h that every driver passes
 * (posix and mem in the unit tests, S3 and others against real servers in
 * the integration tests, through the storage-conformance runner).
 *
 * Owns: the checks. Each writes only under its own prefix (BASE/NAME/) and
 * removes what it wrote when it ends, pass or fail, so a shared bucket can
 * take several runs at once. Must not: know which driver it checks (what a
 * driver lacks, such as resumable writers, it learns from the interface). */
#ifndef CS_STORAGE_CONFORMANCE_H
#define CS_STORAGE_CONFORMANCE_H

#include <stddef.h>
#include <stdio.h>

#include "storage/storage.h"

/* The size of the large object: more than 3 parts of 5 MiB, the smallest
 * part S3 allows, so a multipart driver sends several parts. */
#define SC_LARGE_SIZE ((size_t)(3 * (5u << 20) + 12345))

enum sc_result { SC_PASS = 0, SC_FAIL = 1, SC_SKIP = 2 };

typedef struct sc_check {
    const char *name;
    const char *what; /* one line: the rule it checks */
} sc_check;

/* The checks, in the order they run. */
extern const sc_check sc_checks[];
extern const size_t sc_n_checks;

/* Run check i on st with keys under base (a key prefix, no trailing '/').
 * why gets the reason of a failure or a skip (one line). */
enum sc_result sc_run_check(cs_storage *st, const char *base, size_t i, char *why, size_t why_size);

/* Run the checks whose names are in only (NULL: all), one line each on
 * report ("ok NAME (1.2 s)", "FAIL NAME: why", "skip NAME: why"); the number
 * of failures (an unknown name in only counts as one). */
size_t sc_run(cs_storage *st, const char *base, const char *const *only, size_t n_only, FILE *report);

#endif

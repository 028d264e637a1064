/* present.h - which of the objects a backup wants to reuse are really in
 * the repository, seen during this run.
 *
 * Owns: a set of wanted objects (id and the payload size its writer was
 * given) and checking them in one of two ways: one listing of objects/
 * (one request per 1000 objects of the whole repository, as the fast
 * verify does) or one stat per wanted object, --jobs at a time (cheaper
 * when few are wanted in a large repository). An object is present only if
 * it exists with the size its payload gives (cs_repo_stored_size); an
 * object lost, truncated or replaced is not, so the file is stored again.
 * The answer holds while the caller keeps the repository's shared lock
 * (purge, which deletes objects, takes it exclusively).
 * Must not: read data files or decide what a backup stores. */
#ifndef CS_PRESENT_H
#define CS_PRESENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct cs_present cs_present;

typedef struct cs_present_stats {
    size_t wanted;   /* distinct (object, size) pairs checked */
    size_t missing;  /* of those, absent or of another size */
    bool listed;     /* checked with one listing of objects/ (else one stat each) */
} cs_present_stats;

cs_present *cs_present_new(void);
void cs_present_free(cs_present *p);

/* Want object (32 hex digits) with a payload of `stored` bytes. */
void cs_present_want(cs_present *p, const char *object, uint64_t stored);

/* A listing or a stat per object: whichever takes fewer requests, given
 * an estimate of how many objects the repository holds (0: unknown, taken
 * as one listing page). Stats run `jobs` at a time. */
bool cs_present_should_list(size_t wanted, uint64_t repo_objects, unsigned jobs);

/* Check every wanted object, listing when cs_present_should_list says
 * so. Errors other than a missing object fail the check: nothing is
 * assumed present then. */
int cs_present_check(cs_present *p, cs_repo *repo, uint64_t repo_objects, unsigned jobs, cs_err *e);

/* After the check: is the object there with the size a payload of
 * `stored` bytes gives? False for anything not wanted before the check. */
bool cs_present_has(const cs_present *p, const char *object, uint64_t stored);

void cs_present_get_stats(const cs_present *p, cs_present_stats *out);

#endif

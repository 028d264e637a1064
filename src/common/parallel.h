/* parallel.h - run the items of a list on a few threads.
 *
 * Owns: cs_parallel_for, the one way commands spread independent items
 * (files to store, restore or verify) over --jobs threads. Items are taken
 * in index order; the first failure stops the others from taking new items
 * (those already running finish) and is the error returned. A cancel
 * request (common/cancel.h) is such a failure, CS_E_CANCELED, seen before
 * each item. The threads work for the caller's job (common/job.h). fn must
 * touch only what belongs to its item, or guard shared state itself. */
#ifndef CS_PARALLEL_H
#define CS_PARALLEL_H

#include <stddef.h>

#include "common/err.h"

typedef int (*cs_parallel_fn)(void *arg, size_t i, cs_err *e);

/* Run fn(arg, i, e) for every i in [0, n) on up to jobs threads (the
 * calling thread is one of them; fewer when threads cannot be made). */
int cs_parallel_for(size_t n, unsigned jobs, cs_parallel_fn fn, void *arg, cs_err *e);

#endif

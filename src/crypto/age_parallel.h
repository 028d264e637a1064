/* age_parallel.h - a small pool of worker threads for the age STREAM payload.
 *
 * Owns: the threads that seal and open a batch of independent 64 KiB chunks
 * at once (crypto/age.c). A pool belongs to one age sink: it is created on
 * the sink's first batch and its threads are joined when the sink is freed.
 * age_pool_run(p, fn, arg, n) calls fn(arg, i, slot) once for every i in
 * [0, n), on the workers and on the calling thread, and returns when all n
 * calls have returned. slot names the thread that runs the call: 0 for the
 * caller, 1..threads-1 for the workers, so fn can keep per-thread state (a
 * cipher context) in an array the caller owns. Items are handed out one at a time under the pool's mutex,
 * so a slow or descheduled thread never holds up the others; whatever fn
 * writes is visible to the caller when run returns (the mutex orders it).
 * Between batches a worker polls for up to 250 us while batches keep coming
 * that fast, and sleeps otherwise (see age_parallel.c).
 *
 * Must not: share anything between pools (each sink has its own), know what
 * the items are, or touch key material (fn does, through arg). Workers block
 * every signal: signals go to the program's own threads. */
#ifndef CS_CRYPTO_AGE_PARALLEL_H
#define CS_CRYPTO_AGE_PARALLEL_H

#include <stddef.h>

#define AGE_POOL_MAX_THREADS 4 /* the calling thread included */

typedef struct age_pool age_pool;
typedef void (*age_pool_fn)(void *arg, size_t i, int slot);

/* How many threads a batch should use, the caller's included: the CPUs this
 * process may run on, at most AGE_POOL_MAX_THREADS, or CASSETTE_AGE_THREADS
 * (1..AGE_POOL_MAX_THREADS) when it is set. 1 means: stay serial. */
int age_pool_threads(void);

/* A pool of threads - 1 workers (threads >= 2). NULL when no worker could be
 * started: the caller then stays serial. */
age_pool *age_pool_new(int threads);

void age_pool_run(age_pool *p, age_pool_fn fn, void *arg, size_t n);

/* Stops and joins the workers. NULL is fine. */
void age_pool_free(age_pool *p);

#endif

/* age_parallel.c - the worker pool of the age STREAM payload (see the header).
 *
 * One mutex guards the whole state. A batch is published by bumping gen;
 * workers wait for gen to move (or stop), then take items while next < n.
 * The caller takes items too and then sleeps on `done` until every item has
 * completed; it does not wait for workers that never woke up for this batch
 * (they find nothing left and go back to waiting). Items cost tens of
 * microseconds (a 64 KiB chunk), so one lock round per item is noise.
 *
 * Waking a sleeping thread costs tens of microseconds on a virtual machine,
 * a tenth of a batch of 16 chunks. So a worker that finds nothing left first
 * polls `posted` (an atomic copy of gen, only a hint: everything else is
 * read under the mutex) for up to SPIN_NS before it sleeps on the condition
 * variable. It polls only while batches have been coming that fast: when a
 * wait outlasts SPIN_NS, the next wait sleeps at once, and polling resumes
 * after a batch comes within SPIN_NS again. A slow pipeline (storage,
 * compression) thus costs no spinning; a fast one (a file, the benchmark)
 * gets its batches at once. */
#include "crypto/age_parallel.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#endif
#endif

#include "common/buf.h"

#define SPIN_NS 250000 /* 250 us: longer than the caller's I/O between two batches */

struct age_pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* workers: a new batch, or stop */
    pthread_cond_t done; /* the caller: every item completed */
    unsigned long gen;   /* batches published so far (and the stop) */
    atomic_ulong posted; /* gen, for polling without the mutex */
    int stop;
    age_pool_fn fn;      /* the current batch */
    void *arg;
    size_t n;
    size_t next;         /* the next item to hand out */
    size_t completed;    /* items whose fn returned */
    int nworkers;
    pthread_t tid[AGE_POOL_MAX_THREADS - 1];
    struct age_worker {
        struct age_pool *pool;
        int slot; /* 1.. */
    } w[AGE_POOL_MAX_THREADS - 1];
};

int age_pool_threads(void)
{
    const char *env = getenv("CASSETTE_AGE_THREADS");
    if (env && env[0] >= '1' && env[0] <= '0' + AGE_POOL_MAX_THREADS && env[1] == '\0')
        return env[0] - '0';
    long n = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > AGE_POOL_MAX_THREADS ? AGE_POOL_MAX_THREADS : (int)n;
}

/* Take and run items of the current batch; called and returns with mu held. */
static void drain(age_pool *p, int slot)
{
    while (p->next < p->n) {
        size_t i = p->next++;
        age_pool_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, i, slot);
        pthread_mutex_lock(&p->mu);
        if (++p->completed == p->n)
            pthread_cond_signal(&p->done);
    }
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Poll for a batch after seen for up to SPIN_NS, without the mutex. */
static void spin_for_batch(age_pool *p, unsigned long seen)
{
    uint64_t start = now_ns();
    for (;;) {
        for (int k = 0; k < 64; k++) {
            if (atomic_load_explicit(&p->posted, memory_order_acquire) != seen)
                return;
            cpu_relax();
        }
        if (now_ns() - start > SPIN_NS)
            return;
    }
}

static void *worker(void *v)
{
    const struct age_worker *me = v;
    age_pool *p = me->pool;
    unsigned long seen = 0;
    int spin = 0; /* the last batch came within SPIN_NS */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->gen == seen) {
            uint64_t idle = now_ns();
            if (spin) {
                pthread_mutex_unlock(&p->mu);
                spin_for_batch(p, seen);
                pthread_mutex_lock(&p->mu);
            }
            while (p->gen == seen)
                pthread_cond_wait(&p->work, &p->mu);
            spin = now_ns() - idle <= SPIN_NS;
        }
        if (p->stop)
            break;
        seen = p->gen;
        drain(p, me->slot);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

age_pool *age_pool_new(int threads)
{
    if (threads < 2)
        return NULL;
    if (threads > AGE_POOL_MAX_THREADS)
        threads = AGE_POOL_MAX_THREADS;
    age_pool *p = cs_calloc(1, sizeof *p);
    atomic_init(&p->posted, 0);
#ifdef VALGRIND_HG_DISABLE_CHECKING
    /* A hint polled without the mutex; helgrind does not know atomics. */
    VALGRIND_HG_DISABLE_CHECKING(&p->posted, sizeof p->posted);
#endif
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    /* Workers start with every signal blocked (they inherit this mask). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < threads - 1; i++) {
        p->w[p->nworkers].pool = p;
        p->w[p->nworkers].slot = p->nworkers + 1;
        if (pthread_create(&p->tid[p->nworkers], NULL, worker, &p->w[p->nworkers]) != 0)
            break;
        p->nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nworkers == 0) {
        age_pool_free(p);
        return NULL;
    }
    return p;
}

void age_pool_run(age_pool *p, age_pool_fn fn, void *arg, size_t n)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->next = 0;
    p->completed = 0;
    p->gen++;
    atomic_store_explicit(&p->posted, p->gen, memory_order_release);
    pthread_cond_broadcast(&p->work);
    drain(p, 0);
    while (p->completed < p->n)
        pthread_cond_wait(&p->done, &p->mu);
    p->fn = NULL;
    p->arg = NULL;
    p->n = 0;
    pthread_mutex_unlock(&p->mu);
}

void age_pool_free(age_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    p->gen++;
    atomic_store_explicit(&p->posted, p->gen, memory_order_release);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
#ifdef VALGRIND_HG_ENABLE_CHECKING
    VALGRIND_HG_ENABLE_CHECKING(&p->posted, sizeof p->posted);
#endif
    memset(p, 0, sizeof *p);
    free(p);
}

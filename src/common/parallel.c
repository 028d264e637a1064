/* parallel.c - a fixed set of threads taking items from a shared counter. */
#include "common/parallel.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/job.h"

typedef struct par_run {
    size_t n;
    cs_parallel_fn fn;
    void *arg;
    pthread_mutex_t lock;
    size_t next; /* the next item to take */
    int rc;      /* the first failure, kept in err */
    cs_err err;
} par_run;

static void *par_worker(void *v)
{
    par_run *r = v;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        size_t i = r->next;
        int stop = r->rc != 0 || i >= r->n;
        if (!stop && cs_cancel_requested()) { /* a safe point: between two items */
            r->rc = cs_cancel_error(&r->err);
            stop = 1;
        }
        if (!stop)
            r->next++;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            return NULL;
        cs_err e;
        cs_err_clear(&e);
        int rc = r->fn(r->arg, i, &e);
        if (rc) {
            pthread_mutex_lock(&r->lock);
            if (!r->rc) {
                r->rc = rc;
                r->err = e;
            }
            pthread_mutex_unlock(&r->lock);
        }
    }
}

int cs_parallel_for(size_t n, unsigned jobs, cs_parallel_fn fn, void *arg, cs_err *e)
{
    par_run r = { .n = n, .fn = fn, .arg = arg };
    pthread_mutex_init(&r.lock, NULL);
    size_t want = jobs < n ? jobs : n;
    pthread_t *tids = cs_calloc(want ? want : 1, sizeof *tids);
    size_t started = 0;
    while (started + 1 < want && cs_job_thread_create(&tids[started], par_worker, &r) == 0)
        started++;
    par_worker(&r); /* the caller works too */
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    pthread_mutex_destroy(&r.lock);
    if (r.rc)
        *e = r.err;
    return r.rc;
}

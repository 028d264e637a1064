/* runner.h - the server's workers: runs taken from the store and run.
 *
 * Owns: a fixed pool of worker threads that take queued runs from the
 * state store (server/state.h) and run them through the op table, with the
 * rules of the queues:
 *   - one FIFO queue per cluster (its queued runs by queued_at): a run
 *     starts only when its cluster has none running (in the store, so also
 *     across servers); different clusters run in parallel;
 *   - a run is taken with a compare-and-set queued -> running (with
 *     "started", "server", "epoch"), so it runs once;
 *   - progress is written to the run at most every 2 s; a cancel asked of
 *     the run cancels its job; a window's end interrupts it and queues its
 *     resumption at the next opening; a failure with attempts left queues a
 *     retry after retry_backoff * 2^(attempt-1);
 *   - crash recovery: runs left running by a server that is not this one's
 *     lease are interrupted and retried;
 *   - every run it ends (finished, or interrupted by recovery) is told to
 *     opts.ended once: the one place where a server learns that a run ended.
 * Workers run only while the server is the leader (cs_runner_lead); losing
 * the lease cancels the running jobs (they end "interrupted").
 * Must not: read the schedule (server.c queues scheduled runs) or know HTTP. */
#ifndef CS_SERVER_RUNNER_H
#define CS_SERVER_RUNNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "ops/host.h"
#include "server/state.h"

typedef struct cs_runner cs_runner;

/* Discover the cluster doc describes and fill its discovered fields (the
 * server's discovery; the runner calls it before each run). */
typedef int (*cs_runner_discover_fn)(void *ctx, json_t *cluster, cs_err *e);
/* A run the runner ended (its final document, as stored: state, ended,
 * result, error): called once per run, on the worker's thread, after the
 * end is stored (the server's metrics count it there: server/stats.h). */
typedef void (*cs_runner_ended_fn)(void *ctx, const json_t *run);

typedef struct cs_runner_opts {
    cs_state *state;          /* borrowed */
    const cs_host *host;      /* borrowed: the server's own host settings */
    const char *server_id;    /* borrowed: "id#nonce" as the lease names it */
    long workers;             /* 1.. */
    cs_runner_discover_fn discover;
    void *discover_ctx;
    cs_runner_ended_fn ended; /* NULL: nobody is told */
    void *ended_ctx;
} cs_runner_opts;

int cs_runner_start(const cs_runner_opts *o, cs_runner **out, cs_err *e);
/* Become the leader with epoch (first: recover runs another server left
 * running), or stop being it (leader false: the running jobs are
 * canceled and end "interrupted"). */
void cs_runner_lead(cs_runner *r, bool leader, uint64_t epoch);
/* Look at the store again now (a run queued or cancelled). */
void cs_runner_wake(cs_runner *r);
/* Running runs and workers ({"workers", "running": [ids]}, new reference). */
json_t *cs_runner_info(cs_runner *r);
/* Cancel what runs (it ends "interrupted" and its resumption is queued),
 * join the workers, free. NULL is fine. */
void cs_runner_stop(cs_runner *r);

/* Runs left running by servers other than the one holding (owner, epoch)
 * -> "interrupted", retried per their task. Called on taking the lease. */
int cs_runner_recover(cs_state *st, const char *owner, uint64_t epoch, double now, cs_err *e);

#endif

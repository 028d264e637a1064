/* jobs.h - the agent's running and finished operations.
 *
 * Owns: the registry of jobs an agent runs: each an operation of the op
 * table with its request, run on a thread of its own with a cs_job whose
 * observer keeps the progress rates and the last log lines; its state
 * (running, succeeded, failed, canceled), and when it is over its result
 * document (cs_op_result_json: exactly the CLI's --json document) or its
 * error. Finished jobs are kept up to a bound (the oldest go first);
 * running jobs are bounded too. Stopping the registry cancels the running
 * jobs and waits for them. Each job keeps the fencing epoch of the request
 * that started it, so that a newer server's first command can stop the
 * jobs a deposed one left running (cs_jobs_cancel_fenced). It counts
 * the jobs that ended, by op and state (cs_jobs_walk), for /metrics.
 * Must not: parse HTTP or JSON requests (agent/agent.h does), or take a
 * host from anyone but its owner. */
#ifndef CS_AGENT_JOBS_H
#define CS_AGENT_JOBS_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"
#include "common/job.h"
#include "ops/host.h"
#include "ops/optable.h"

typedef struct cs_jobs cs_jobs;

#define CS_JOBS_MAX_RUNNING 4   /* operations at once (each has its own --jobs workers) */
#define CS_JOBS_MAX_FINISHED 64 /* finished jobs kept for GET /v1/jobs */

/* A registry running operations with host (borrowed: it must outlive the
 * registry). */
cs_jobs *cs_jobs_new(const cs_host *host);
/* Cancel every running job, wait for them, free. NULL is fine. */
void cs_jobs_free(cs_jobs *jobs);

/* Start op with req (taken over: the registry frees it) as a new job;
 * epoch is the X-Cassette-Epoch it came with (0: none, the CLI's); *id is
 * its number. CS_E_LOCKED when CS_JOBS_MAX_RUNNING run already. */
int cs_jobs_start(cs_jobs *jobs, const cs_op_def *op, void *req, uint64_t epoch, uint64_t *id, cs_err *e);
/* The job as a JSON document (new reference), or NULL when there is no
 * such job (never was, or dropped): {"id", "op", "state", "progress",
 * "log", "result" | "error"}. */
json_t *cs_jobs_get(cs_jobs *jobs, uint64_t id);
/* Every job kept, newest first, without result documents. */
json_t *cs_jobs_list(cs_jobs *jobs);
/* Ask a job to stop: CS_E_NOTFOUND when there is no such job; a job
 * already over is left as it is. */
int cs_jobs_cancel(cs_jobs *jobs, uint64_t id, cs_err *e);
/* Cancel the running jobs started with an epoch older than epoch (not
 * those without one) and wait up to wait_s seconds for them to end, so
 * that the locks they hold are free for the newer server's commands.
 * Returns how many were canceled. */
size_t cs_jobs_cancel_fenced(cs_jobs *jobs, uint64_t epoch, double wait_s);
/* Cancel every running job (a stop of the agent); they end as canceled. */
void cs_jobs_cancel_all(cs_jobs *jobs);

/* What GET /metrics reads of the registry (cs_jobs_walk). Callbacks run
 * with the registry locked: quick, and never calling the registry. */
typedef struct cs_jobs_visitor {
    /* Each running job: its id, op, progress record and recent byte rate. */
    void (*running)(void *arg, uint64_t id, const char *op, const cs_progress *p, double bytes_per_second);
    /* Each (op, state) of the jobs ended since the registry was made, with
     * how many: counted where a job ends, so pruning finished jobs never
     * lowers it (a Prometheus counter). state: succeeded, failed, canceled. */
    void (*ended)(void *arg, const char *op, const char *state, uint64_t count);
    void *arg;
} cs_jobs_visitor;
void cs_jobs_walk(cs_jobs *jobs, const cs_jobs_visitor *v);

#endif

/* model.h - what the server's documents mean: clusters, tasks, runs.
 *
 * Owns: the fields of the documents the REST API takes and shows and the
 * state store keeps (server/state.h stores them as JSON objects), their
 * checks and defaults, and the one mapping from a task or an ad hoc
 * request to an operation of the op table (ops/optable.h), so that the
 * server runs exactly what `cassette cluster backup`, `purge`, ... run.
 *
 * Cluster: {"id", "contact": "HOST[:PORT]" (CQL contact point), "agents":
 *   ["URL", ...] (optional), "agent_template": "https://{rpc_address}:7620"
 *   (optional), "repo": "s3://..." (required), "labels": {...} (optional);
 *   filled by discovery: "name" (cluster_name), "partitioner", "nodes":
 *   [{"host_id", "address", "rpc_address", "datacenter", "rack", "tokens":
 *   ["..."], "version", "agent", "ok"}], "datacenters": ["dc1"],
 *   "discovered" (time); "created", "updated" (times)}.
 * Task: {"id", "cluster", "kind": "backup" | "purge" | "verify" | "restore" |
 *   "snapshot_cleanup" | "drill", "schedule": cron or "@every 20s" (absent: runs only
 *   when asked), "timezone" (IANA, default "UTC"), "window": ["span", ...]
 *   (server/schedule.h), "enabled" (default true), "retries" (0..10,
 *   default 1), "retry_backoff" (seconds, default 60; doubles each attempt),
 *   "params": {operation request fields}, "created", "updated",
 *   "last_slot" (the schedule slot last queued, 0: none)}; the API adds
 *   "next" (cs_model_task_next) to the ones it answers: never stored.
 * Run: {"id", "task" (null for an ad hoc run), "cluster", "kind", "op" (the
 *   operation's name), "params", "state", "queued_at", "not_before",
 *   "started", "ended", "attempt" (1 = first), "retry_of", "resumed_from",
 *   "server", "epoch", "progress": {"phase", "files_done", "files_total",
 *   "bytes_done", "bytes_total"}, "files", "bytes", "result" (the op's
 *   result document), "error", "error_code"}.
 * Times are seconds since the epoch (JSON numbers). Ids are 1..64 of
 * [A-Za-z0-9._-], not starting with "." or "-".
 * Must not: touch the store, the network or the clock (callers pass now). */
#ifndef CS_SERVER_MODEL_H
#define CS_SERVER_MODEL_H

#include <jansson.h>
#include <stdbool.h>

#include "common/err.h"
#include "ops/optable.h"

/* Is id a good document id? */
bool cs_model_id_ok(const char *id);
/* A fresh id: prefix + "-" + UTC stamp + "-" + 6 random hex ("r-20261206T101500Z-1a2b3c"). */
char *cs_model_new_id(const char *prefix);

/* Check a cluster document from the API and fill its defaults. create:
 * a new one (id defaults to a fresh "c-..." id); otherwise doc is the
 * merge of the stored one and a PATCH (discovered fields may stay).
 * Unknown fields, wrong types, a missing repo or no way to reach the
 * cluster (neither contact nor agents): one error naming the field. */
int cs_model_cluster_check(json_t *doc, bool create, double now, cs_err *e);

/* Check a task document and fill its defaults (id "t-...", enabled,
 * retries, retry_backoff, timezone, created/updated = now, last_slot 0).
 * The schedule and window must parse (a cron that can never fire, windows
 * that overlap: refused), the kind must be known and params must make a
 * good request for it (cs_model_request with cluster). */
int cs_model_task_check(json_t *doc, const json_t *cluster, bool create, double now, cs_err *e);

/* When task (a stored task document) runs next by its schedule, for
 * GET /v1/tasks ("next"): a slot that is due and not yet queued (at most
 * now), else the schedule's first slot after now and after its last_slot;
 * 0 when it has no schedule, is disabled, or its schedule does not parse.
 * A window (which may hold the run back) is not counted. */
double cs_model_task_next(const json_t *task, double now);

/* The operation and its request for kind with params on cluster: backup ->
 * "cluster backup" (params "type": "snapshot" (default) or
 * "cluster_consistent": the cluster's pause_cmd/resume_cmd must be given),
 * restore -> "cluster restore" (params "backup" required; "nodes" limits
 * it to listed nodes), purge -> "purge", verify -> "verify" (params
 * "deep", "sample"), snapshot_cleanup -> the cluster snapshot cleanup
 * operation, drill -> "cluster drill" (params "backup", "keyspaces",
 * "tables", "sample_tables", "sample_rows", "keep", ...). The cluster gives repo and the target (contact, agents,
 * agent_template); params give the rest and may not set those. *req is
 * allocated (free with cs_op_request_free(*op, *req)). */
int cs_model_request(const json_t *cluster, const char *kind, const json_t *params, const cs_op_def **op,
                     void **req, cs_err *e);

/* A new queued run document for kind/params on cluster (task: its task
 * document, or NULL for an ad hoc run), queued at now. */
json_t *cs_model_run_new(const json_t *cluster, const json_t *task, const char *kind, const json_t *params,
                         double now);

/* Is state final (done, failed, cancelled, interrupted)? */
bool cs_model_run_final(const char *state);

#endif

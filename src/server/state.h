/* state.h - the server's durable state: clusters, tasks, runs, the audit
 * log and the leader lease, behind one interface with two back ends.
 *
 * Owns: where a server keeps what must survive it, and the rules that make
 * several servers safe on one store:
 *   - sqlite (the embedded default: "sqlite:PATH" or a plain PATH), one file;
 *   - cassandra ("cassandra://HOST[:PORT]/KEYSPACE"), through cassette's own
 *     CQL client (cassandra/cql.h), for more than one server. Run history
 *     is written append-only in day-bucketed rows with a TTL (no row is
 *     ever updated in place: no tombstones but the TTL's); state changes
 *     that must happen once (a run taken from queued to running, the
 *     leader lease) are lightweight transactions.
 * Every record is a JSON object (the document the REST API shows), keyed
 * by its "id" (a string). The store checks only what it must to keep
 * itself consistent (an id, a cluster's existence for a task, a state
 * name); what a field means is the server's business (server/model.h).
 * Run states: "queued", "running", "done", "failed", "cancelled",
 * "interrupted" (the last four are final).
 * Must not: log a document (task parameters may name keyspaces; never a
 * secret: secrets are not stored here at all), run tasks, or know HTTP. */
#ifndef CS_SERVER_STATE_H
#define CS_SERVER_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Its own struct tag: ops/state.h (the dedup cache) has a cs_state too, so a
 * file that includes both fails to compile instead of mixing them. */
typedef struct cs_server_state cs_state;

/* How to reach a Cassandra store (ignored by sqlite); the strings are
 * borrowed for cs_state_open's call only. */
typedef struct cs_state_opts {
    const char *cql_user, *cql_password; /* never logged */
    bool cql_tls;
    const char *cql_ca_file, *cql_cert, *cql_key;
    double cql_timeout;                  /* seconds; 0: 10 */
    long replication_factor;             /* keyspace created with SimpleStrategy RF (0: 1) when absent */
    double history_seconds;              /* how long runs and audit entries are kept (0: 30 days) */
} cs_state_opts;

/* Open (and create when absent: the file, or the keyspace and its
 * tables) the store at url. CS_E_USAGE for a url that is neither. */
int cs_state_open(const char *url, const cs_state_opts *o, cs_state **out, cs_err *e);
void cs_state_close(cs_state *s); /* NULL is fine */
/* "sqlite" or "cassandra". */
const char *cs_state_kind(const cs_state *s);

/* ---- clusters: {"id", ...} ---- */
/* create: CS_E_EXISTS when the id is taken; otherwise replace:
 * CS_E_NOTFOUND when there is none. */
int cs_state_cluster_put(cs_state *s, const json_t *doc, bool create, cs_err *e);
int cs_state_cluster_get(cs_state *s, const char *id, json_t **out, cs_err *e); /* CS_E_NOTFOUND */
int cs_state_cluster_list(cs_state *s, json_t **out, cs_err *e);               /* array, by id */
/* Remove the cluster and its tasks (its runs stay as history). */
int cs_state_cluster_delete(cs_state *s, const char *id, cs_err *e);

/* ---- tasks: {"id", "cluster", ...} ---- */
/* As clusters; CS_E_NOTFOUND (field "cluster") when its cluster is not
 * registered. */
int cs_state_task_put(cs_state *s, const json_t *doc, bool create, cs_err *e);
int cs_state_task_get(cs_state *s, const char *id, json_t **out, cs_err *e);
/* Tasks of cluster (NULL: all), by id. */
int cs_state_task_list(cs_state *s, const char *cluster, json_t **out, cs_err *e);
int cs_state_task_delete(cs_state *s, const char *id, cs_err *e);

/* ---- runs: {"id", "task", "cluster", "kind", "state", "queued_at",
 * "started", "ended", ...}; times are seconds since the epoch (numbers) ---- */
/* A new run (CS_E_EXISTS when the id is taken). */
int cs_state_run_add(cs_state *s, const json_t *doc, cs_err *e);
/* Write what the run's owner learnt (progress, result, error) without
 * changing its state: the doc's "state" must be the stored one
 * (CS_E_EXISTS, "conflict", otherwise: someone moved it meanwhile). */
int cs_state_run_update(cs_state *s, const json_t *doc, cs_err *e);
/* Move run doc["id"] from state `from` to doc["state"] and store doc, only
 * when its state is still `from` (*applied says whether it was): how a
 * queued run is taken to running exactly once, and how a run ends. */
int cs_state_run_cas(cs_state *s, const char *from, const json_t *doc, bool *applied, cs_err *e);
int cs_state_run_get(cs_state *s, const char *id, json_t **out, cs_err *e); /* CS_E_NOTFOUND */

typedef struct cs_run_filter {
    const char *cluster, *task, *kind; /* NULL: any */
    const char *state;                 /* one state, or "open" (queued or running), NULL: any */
    double since;                      /* queued_at >= since (0: any) */
    size_t limit;                      /* 0: 100; at most 1000 are returned */
    bool oldest_first;                 /* default: newest first (by queued_at) */
} cs_run_filter;
int cs_state_run_list(cs_state *s, const cs_run_filter *f, json_t **out, cs_err *e);

/* Ask run id to stop: a queued run becomes "cancelled" at once (*state_out
 * "cancelled"); a running one is marked (cs_state_run_cancel_asked says so
 * to its owner, who ends it as "cancelled"); a final run is left as it is
 * (*state_out: its state). CS_E_NOTFOUND. */
int cs_state_run_cancel(cs_state *s, const char *id, char state_out[16], cs_err *e);
int cs_state_run_cancel_asked(cs_state *s, const char *id, bool *asked, cs_err *e);

/* Forget final runs queued and audit entries written before `before`
 * (sqlite; the cassandra store's TTL does it: 0 and nothing done). */
int cs_state_prune(cs_state *s, double before, cs_err *e);

/* ---- audit: {"at", "who", "role", "method", "path", "status", "what"} ---- */
/* An entry without "at" is stored with the time it was added. */
int cs_state_audit_add(cs_state *s, const json_t *entry, cs_err *e);
/* Newest first, at most limit (0: 100; at most 1000). */
int cs_state_audit_list(cs_state *s, size_t limit, json_t **out, cs_err *e);

/* ---- the leader lease ----
 * One lease per store: the server holding it runs tasks. Take it when it
 * is free or lapsed, or renew it when owner holds it: *held says whether
 * owner holds it now, for ttl seconds from now. *epoch is the lease's
 * epoch: it grows every time the lease changes hands (never reused, also
 * after it lapsed; never below the time in milliseconds, so that a new
 * store outranks an old one), so it fences off a server that lost the
 * lease without knowing it: agents refuse an epoch older than one they
 * have seen. */
int cs_state_lease(cs_state *s, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e);
/* Give the lease up when owner holds it (a clean stop: another server
 * takes over at once instead of after the ttl). */
int cs_state_lease_release(cs_state *s, const char *owner, cs_err *e);
/* {"owner", "epoch", "expires"} or {"owner": null, "epoch": N} when nobody holds it. */
int cs_state_lease_get(cs_state *s, json_t **out, cs_err *e);

/* ---- export / import (a new server from the repository alone) ---- */
/* {"format": 1, "exported": T, "clusters": [...], "tasks": [...],
 * "runs": [final runs of the last history_seconds]} */
int cs_state_export(cs_state *s, json_t **out, cs_err *e);
/* Add what doc holds and the store does not (ids already present are
 * left as they are); *added counts the records added. Runs that were open
 * in the export are added as "interrupted". */
int cs_state_import(cs_state *s, const json_t *doc, size_t *added, cs_err *e);

#endif

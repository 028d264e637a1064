/* stats.h - what the server's GET /metrics shows (docs/metrics.md, "Server").
 *
 * Owns: the server's aggregate of ended runs per cluster and kind (last
 * success and failure, runs by final state, the duration histogram, errors
 * by kind, the backup counters and the newest backup's size and dedup
 * ratio, the newest verify's damaged objects, the newest drill), the
 * cached view of each cluster's repository (size, objects, newest complete
 * backup, as of its last listing), the lease as this server saw it, and
 * the exposition of all of it with the live values the caller passes
 * (clusters, open runs). Every number comes from a run record as it ended
 * (its "result" is the operation's result document, the one the API
 * shows), counted once: the runner calls cs_stats_run_ended once per run
 * it ends. Counters start at 0 with the process; the last-success and
 * last-failure gauges (and the newest backup's, verify's and drill's) are
 * seeded from the run history at start and when the server takes the lease
 * (cs_stats_seed_run: gauges only).
 * All functions may be called from several threads at once.
 * Must not: read the state store or a repository (callers pass what they
 * read: a scrape never waits for object storage), or put a secret in a
 * label (cluster ids, kinds, states and error kinds only). */
#ifndef CS_SERVER_STATS_H
#define CS_SERVER_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cs_stats cs_stats;

cs_stats *cs_stats_new(void);
void cs_stats_free(cs_stats *s); /* NULL is fine */

/* A run that ended (its final document: "cluster", "kind", "state",
 * "started", "ended", "result", "error_code", "error"): counted once. */
void cs_stats_run_ended(cs_stats *s, const json_t *run);
/* A final run of the history (server start): its gauges only (a newer
 * end time wins), no counter moves. */
void cs_stats_seed_run(cs_stats *s, const json_t *run);

/* The error kind of a failed run: cs_err_kind (common/err.h) of its
 * "error_code" (a cs_err_name) and "error". */
const char *cs_stats_error_kind(const json_t *run);

/* A listing of cluster's repository: the backups (`cassette list --json`'s
 * array, NULL: not known) and the sum of its keys' sizes and their count
 * (objects < 0: not known). */
void cs_stats_repo(cs_stats *s, const char *cluster, const json_t *backups, uint64_t bytes, int64_t objects);
/* When the newest complete backup of a listing finished (0: none). */
double cs_stats_newest_complete(const json_t *backups);

/* The lease as renew() saw it: held or not, its epoch (0: not known);
 * a change of holder (taken or lost) is counted. */
void cs_stats_lease(cs_stats *s, bool held, uint64_t epoch);

/* What the scrape adds that lives in the store (borrowed). */
typedef struct cs_stats_live {
    const char *version, *server; /* cassette_server_info's labels */
    const json_t *clusters;       /* the registered clusters' documents (an array), or NULL */
    const json_t *tasks;          /* the tasks (an array), or NULL: their (cluster, kind) series
                                   * are written from the start, at 0 */
    const json_t *open_runs;      /* the queued and running runs (an array), or NULL */
} cs_stats_live;

/* The exposition (Prometheus text format 0.0.4; caller frees). Only
 * registered clusters are written (a removed one's series end). */
char *cs_stats_render(cs_stats *s, const cs_stats_live *live);

#endif

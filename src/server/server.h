/* server.h - the `cassette server` daemon.
 *
 * Owns: the daemon's life: the state store (server/state.h) opened from
 * its url, the leader lease ("<server-id>#<nonce>", renewed every third of
 * its time; only the holder schedules and runs), the scheduler (every
 * second and when woken: each enabled task whose schedule is due gets one
 * queued run, misfires included: server/schedule.h), the workers
 * (server/runner.h), the REST API (server/api.h over net/httpd.h) with the
 * hooks it needs (discovery of a cluster, its backups, GET /metrics from
 * server/stats.h: seeded from the run history at start, told of every run
 * that ends), housekeeping on a thread of its own (history pruned, the
 * state exported to a repository every export_every and imported from
 * there into an empty store at start, each cluster's repository listed
 * for the metrics after a backup or purge ended and every 10 minutes),
 * and a clean stop on SIGINT/SIGTERM (the lease released, running
 * runs ended "interrupted" and queued again).
 * Must not: parse flags or INI files (cli/ does), or print but its start
 * and stop lines. */
#ifndef CS_SERVER_SERVER_H
#define CS_SERVER_SERVER_H

#include <stdbool.h>

#include "common/err.h"
#include "ops/host.h"
#include "server/state.h"

typedef struct cs_server_opts {
    const char *state_url;     /* "sqlite:PATH", PATH or "cassandra://HOST[:PORT]/KEYSPACE" */
    cs_state_opts state_opts;
    const char *server_id;     /* NULL: the host name */
    long workers;              /* 0: 2 */
    double lease;              /* seconds; 0: 15 */
    double history;            /* seconds; 0: 30 days */
    const char *export_repo;   /* NULL: no exports */
    double export_every;       /* seconds; 0: 1 day */
    /* the API */
    const char *listen_host;
    int port;
    const char *tls_cert, *tls_key, *tls_client_ca;
    const char *tokens_file;   /* NULL: every caller is admin (loopback only) */
    const char *version;
} cs_server_opts;

/* Serve until SIGINT or SIGTERM (then 0). host: the server's own host
 * settings (how it reaches agents and repositories), borrowed. */
int cs_server_run(const cs_host *host, const cs_server_opts *o, cs_err *e);

#endif

/* agentc.h - the coordinator's client of `cassette agent`.
 *
 * Owns: cs_agentc, one HTTP(S) client for every agent of a cluster (the
 * same bearer token, CA, and client certificate for all; the transport,
 * its connection reuse and retries are storage/http's), and the calls a
 * coordinator makes: GET /v1/node, start an operation (POST /v1/ops/NAME),
 * poll its job (GET /v1/jobs/N), cancel it. Agents are named by their base
 * URL ("https://10.0.0.1:7620").
 * Must not: log or report the token, or a header line; decide anything
 * about a cluster (cluster/ does). */
#ifndef CS_CLUSTER_AGENTC_H
#define CS_CLUSTER_AGENTC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* The port an agent listens on unless told otherwise: none of Cassandra's
 * (7000, 7001, 7199, 9042, 9142, 9160). */
#define CS_AGENT_DEFAULT_PORT 7620

typedef struct cs_agentc cs_agentc;

typedef struct cs_agentc_opts {
    const char *token_file; /* the bearer token (first line); NULL: none sent */
    const char *ca_file;    /* PEM that signs the agents' certificates; NULL: system store */
    const char *cert_file;  /* client certificate for agents that ask for one */
    const char *key_file;
    long timeout_s;         /* connect and stall timeout of one request (0: 30) */
    uint64_t fence;         /* sent as "X-Cassette-Epoch: N" on every request; 0: not sent */
} cs_agentc_opts;

int cs_agentc_new(const cs_agentc_opts *o, cs_agentc **out, cs_err *e);
void cs_agentc_free(cs_agentc *c);

/* One request: *out is the JSON answer of a 2xx status (new reference).
 * Any other status is an error carrying the agent's own sentence, with
 * the code the status means (401/403: CS_E_USAGE, 404: CS_E_NOTFOUND,
 * 409 (fenced: a newer epoch was seen): CS_E_LOCKED, 429: CS_E_LOCKED,
 * 503: CS_E_UNAVAIL); no answer at all is CS_E_UNAVAIL. */
int cs_agentc_call(cs_agentc *c, const char *base, const char *method, const char *path, json_t *body,
                   json_t **out, cs_err *e);

/* GET /v1/node. */
int cs_agentc_node(cs_agentc *c, const char *base, json_t **out, cs_err *e);
/* POST /v1/ops/<op> with the request; *job is the job's id. */
int cs_agentc_start(cs_agentc *c, const char *base, const char *op, json_t *request, uint64_t *job, cs_err *e);
/* GET /v1/jobs/<job>: the job's document (state, progress, result, error). */
int cs_agentc_job(cs_agentc *c, const char *base, uint64_t job, json_t **out, cs_err *e);
/* POST /v1/jobs/<job>/cancel (sent even when this process is asked to
 * stop: that is when it is needed). */
int cs_agentc_cancel(cs_agentc *c, const char *base, uint64_t job, cs_err *e);
/* Cancel the job and wait until it no longer runs (it stops at its next
 * safe point): 0 then, an error if it still runs after timeout_s or the
 * agent does not answer. Not cut short by this process's own stop request:
 * whoever was interrupted waits here, so that what it does next (a drill
 * drops its scratch keyspaces) does not race a job still at work on the
 * node. (A second SIGINT still exits at once: common/cancel.h.) */
int cs_agentc_stop_job(cs_agentc *c, const char *base, uint64_t job, double timeout_s, cs_err *e);

/* Is the job of this document (GET /v1/jobs/<job>) still running? */
bool cs_agentc_job_running(const json_t *job);

/* The error a finished job's document carries ("failed"/"canceled"), as
 * an error with its code; 0 when the job succeeded. */
int cs_agentc_job_error(const json_t *job, cs_err *e);

/* "https://{rpc_address}:7620" with {rpc_address}, {address}, {host_id}
 * filled in (a new string), or NULL with e set when the template names
 * something else or is not an http(s) URL. */
char *cs_agentc_expand(const char *tmpl, const char *rpc_address, const char *address, const char *host_id,
                       cs_err *e);

#endif

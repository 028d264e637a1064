/* agent.h - `cassette agent`: the operation table of one node, over HTTP(S).
 *
 * Owns: the agent's routes and what each answers (docs/agent-openapi.yaml
 * is their description):
 *   GET  /v1/node              the local node: host id, cluster, DC, rack,
 *                              tokens, version, directories, free disk;
 *                              "live": false with the facts last read when
 *                              the node cannot be reached (ops.h's cache)
 *   GET  /v1/ops               the operations served, with their request fields
 *   POST /v1/ops/{name}        start one (body: its request as JSON) -> 202 {"job": ID}
 *   GET  /v1/jobs              every job kept, newest first
 *   GET  /v1/jobs/{id}         state, progress, log, result document or error
 *   POST /v1/jobs/{id}/cancel  ask a job to stop (it ends "canceled")
 *   GET  /metrics              Prometheus text (docs/metrics.md's agent rows):
 *                              the jobs' progress records and ended counts
 *                              (jobs.h), the epoch, the data directories'
 *                              free space, the agent's memory
 * which operations an agent serves (cs_agent_serves), which repositories
 * requests may name (--allow-repo: cs_agent_repo_allowed; none when none
 * is given; the agent never creates one), and the agent's life:
 * listen, serve until SIGINT or SIGTERM, then stop accepting, cancel the
 * running jobs, wait for them and return.
 * The host (credentials, node access, directories, storage options) is
 * the agent's own, from its command line, configuration and environment;
 * a request never sets it (a request's fields are the op table's only).
 * Fencing: a request may carry "X-Cassette-Epoch: N" (a server's lease
 * epoch). The agent keeps the highest N seen in <state_dir>/agent-epoch
 * (written atomically and synced before the request is served) and
 * answers 409 {"error": "fenced: epoch N is older than M"} to a lower one,
 * 400 to a header that is not a decimal number; a request without the
 * header (the CLI's) is served as before.
 * Must not: run an operation any other way than the op table does
 * (cs_op_request_from_json, cs_op_run, cs_op_result_json), or log a token
 * or a request body. */
#ifndef CS_AGENT_H
#define CS_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/strlist.h"
#include "net/httpd.h"
#include "ops/host.h"
#include "ops/optable.h"

#define CS_AGENT_DEFAULT_PORT 7620 /* none of Cassandra's: 7000, 7001, 7199, 9042, 9142, 9160 */

typedef struct cs_agent cs_agent;

/* Does the agent serve op? backup, restore, verify, list, status, schema
 * dump, snapshot, snapshot clear and load: what a node does for a
 * coordinator.
 * Not key generate or
 * key public (secrets and local files), init, purge, delete, catalog
 * rebuild or migrate (repository- or cluster-wide: a coordinator runs them
 * with its own credentials, and a leaked agent token must not be able to
 * empty the repository), nor cleanup (removing what restores moved aside
 * stays an operator's decision on the machine). */
bool cs_agent_serves(const cs_op_def *op);

/* An agent for host (borrowed: it must outlive the agent). It serves no
 * request that names a repository until one is allowed. */
cs_agent *cs_agent_new(const cs_host *host);
/* Let requests name location, or a location below it (one more path
 * component or more: "s3://b/x" allows "s3://b/x/y", not "s3://b/xy").
 * CS_E_USAGE for an empty location or one with a ".." component. */
int cs_agent_allow_repo(cs_agent *agent, const char *location, cs_err *e);
/* Is repo one of allowed, or below one of them (as above)? A ".."
 * component anywhere in repo is never allowed. */
bool cs_agent_repo_allowed(const cs_strlist *allowed, const char *repo);
/* Cancel the running jobs, wait for them, free. NULL is fine. */
void cs_agent_free(cs_agent *agent);
/* Touch nothing outside the process (fuzzers, unit tests): requests are
 * routed and checked as usual, but POST /v1/ops/{name} answers 202 with
 * {"job": 0, "dry_run": true} without running anything, and GET /v1/node
 * answers 503 without asking the node. */
void cs_agent_set_dry_run(cs_agent *agent, bool dry_run);

/* The version GET /metrics names (borrowed; NULL: "unknown"). */
void cs_agent_set_version(cs_agent *agent, const char *version);

/* A decimal X-Cassette-Epoch value (1 to 19 digits). */
bool cs_agent_parse_epoch(const char *s, uint64_t *out);

/* The routes: a cs_http_handler (arg: the agent). */
void cs_agent_handle(void *agent, const cs_http_request *req, cs_http_answer *ans);

/* Serve opts (its handler and arg are set here) until SIGINT or SIGTERM,
 * then stop as the header says, allowing the repositories allow_repos names
 * (cs_agent_allow_repo), naming version in GET /metrics. 0 after a stop on a signal; an error when the
 * agent could not start (address in use, bad TLS files, a bad location). */
int cs_agent_run(const cs_host *host, const cs_strlist *allow_repos, const char *version, cs_httpd_opts *opts,
                 cs_err *e);

#endif

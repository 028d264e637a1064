/* api.h - the server's REST API (docs/server-openapi.yaml describes it).
 *
 * Owns: the routes and what each answers, the bearer tokens with their
 * roles and clusters, and the audit log of changes:
 *   GET    /healthz, /version                  (no token; /version says whether tokens are asked)
 *   GET    /, /status, /status.js, /status.css the status page (no token: server/page.h; it
 *                                              reads the routes below with its user's token)
 *   GET    /metrics                            Prometheus text (docs/metrics.md), any role
 *   GET    /v1/server                          leader, epoch, workers, queues
 *   GET    /v1/clusters                        {"clusters": [...]}
 *   POST   /v1/clusters                        register (discovers) -> 201
 *   GET    /v1/clusters/{id}
 *   PATCH  /v1/clusters/{id}                   update (re-discovers)
 *   DELETE /v1/clusters/{id}                   409 while it has open runs -> 204
 *   POST   /v1/clusters/{id}/discover          re-read the topology
 *   GET    /v1/clusters/{id}/backups           {"backups": [...]} from its repository
 *   GET    /v1/clusters/{id}/backups/{name}
 *   POST   /v1/clusters/{id}/backups           take a backup now -> 202 run
 *   GET    /v1/clusters/{id}/restores          {"restores": [run...]}, newest first
 *   POST   /v1/clusters/{id}/restores          start a restore -> 202 run
 *   GET    /v1/tasks[?cluster=]                {"tasks": [...]}, each with "next" (its next run)
 *   POST   /v1/tasks                           -> 201
 *   GET|PATCH|DELETE /v1/tasks/{id}
 *   POST   /v1/tasks/{id}/run                  run now (the schedule stays) -> 202 run
 *   GET    /v1/runs[?cluster=&task=&kind=&state=&since=&limit=]  {"runs": [...]}
 *   GET    /v1/runs/{id}
 *   POST   /v1/runs/{id}/cancel                -> 202 run (409 when it has ended)
 *   GET    /v1/audit[?limit=]                  {"audit": [...]}, admin only
 * Roles: viewer (GET), operator (also runs: backups, restores, task run,
 * run cancel), admin (also clusters, tasks, audit); a token may be
 * limited to some clusters (others: 403; lists show only its clusters).
 * Bodies: POST /v1/clusters and /v1/tasks take the document (model.h);
 * PATCH takes the fields to change (null removes one; ids and the times
 * the server keeps cannot be changed); POST .../backups and .../restores
 * take the operation's params ({"type": "snapshot"}, {"backup": NAME,
 * "nodes": [...]}; an empty body is {}); the other POSTs take no body.
 * Every answer but the page's and /metrics' is JSON (a 204 has no body); errors are {"error", "field"} (net/httpd.h) with
 * 400 (bad input), 401, 403, 404, 409 (conflict), 413, 502 (a cluster that
 * cannot be reached). Every change (a POST, PATCH or DELETE that succeeded
 * or was refused past authentication) is written to the audit log: who
 * (the token's name, never the token), role, method, path, status, what.
 * Must not: run an operation or talk to a cluster itself (the hooks do),
 * or log a token or a request body. */
#ifndef CS_SERVER_API_H
#define CS_SERVER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/strlist.h"
#include "net/httpd.h"
#include "server/state.h"

/* What the API asks of the server that runs it (all may be called from
 * several connection threads at once). */
typedef struct cs_api_hooks {
    /* Discover the cluster cluster doc describes (contact, agents,
     * agent_template): fill its discovered fields (server/model.h). An
     * error (CS_E_EXTERNAL: not reachable) is answered 502, nothing stored. */
    int (*discover)(void *ctx, json_t *cluster, cs_err *e);
    /* The backups in the cluster's repository ({"backups": [...]} as
     * `cassette list --json` gives them). */
    int (*backups)(void *ctx, const json_t *cluster, json_t **out, cs_err *e);
    /* The server's own view for GET /v1/server (new reference). */
    json_t *(*info)(void *ctx);
    /* Something the scheduler or the runner should look at again now (a
     * run queued or cancelled, a task changed). */
    void (*wake)(void *ctx);
    /* The exposition for GET /metrics (malloc'ed text; NULL: 500) of the
     * clusters the caller may see (NULL or empty: every one). Fast: it
     * must not touch a repository. */
    char *(*metrics)(void *ctx, const cs_strlist *clusters);
    /* A run the API ended itself (a queued run cancelled: it never reaches
     * the runner), its final document; NULL: nobody is told. */
    void (*ended)(void *ctx, const json_t *run);
    void *ctx;
    /* What GET /version answers as "version" (borrowed; NULL: "unknown"). */
    const char *version;
} cs_api_hooks;

/* One token: its name (who, in the audit log), role and clusters. */
typedef enum cs_api_role { CS_ROLE_VIEWER = 1, CS_ROLE_OPERATOR = 2, CS_ROLE_ADMIN = 3 } cs_api_role;

typedef struct cs_api cs_api;

/* An API over store st (borrowed) with hooks (copied). tokens_file: lines
 * "NAME ROLE TOKEN [CLUSTER,CLUSTER...]" (# comments; the file must be
 * readable by its owner only, tokens at least 16 characters; a bad line is
 * one error naming its number, never its token). NULL: no tokens: every
 * caller is admin (the server allows that on a loopback address only). */
int cs_api_new(cs_state *st, const cs_api_hooks *hooks, const char *tokens_file, cs_api **out, cs_err *e);
void cs_api_free(cs_api *api); /* NULL is fine */
/* The cs_http_handler to serve (arg: the cs_api). */
void cs_api_handle(void *api, const cs_http_request *req, cs_http_answer *ans);

#endif

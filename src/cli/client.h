/* client.h - the CLI as a client of `cassette server` (server/api.h).
 *
 * Owns: client mode: when --server URL (or server_url in the config file,
 * or CASSETTE_SERVER) is set, `cluster register|list|show|remove`, `task
 * ...`, `run ...`, `backup`, `list` and `restore` become requests to the
 * server's REST API; the mapping from their words and options to a
 * request (method, path, JSON body), the text shown of each answer (--json:
 * the server's document as it is), `--wait` (poll a run until it is final)
 * and the one-line error "server: <error> (HTTP <status>)".
 * Must not: run an operation locally, or print or log the token. */
#ifndef CS_CLI_CLIENT_H
#define CS_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"

/* What the answer is, for the text shown of it. */
typedef enum cs_client_shape {
    CS_CLIENT_CLUSTERS,  /* {"clusters": [...]} */
    CS_CLIENT_CLUSTER,   /* one cluster */
    CS_CLIENT_TASKS,     /* {"tasks": [...]} */
    CS_CLIENT_TASK,      /* one task */
    CS_CLIENT_RUNS,      /* {"runs": [...]} */
    CS_CLIENT_RUN,       /* one run */
    CS_CLIENT_BACKUPS,   /* {"backups": [...]}: as `cassette list` */
    CS_CLIENT_NONE,      /* 204: what was removed */
} cs_client_shape;

/* One request the command line asks for. */
typedef struct cs_client_call {
    char *method;        /* "GET", "POST", "PATCH", "DELETE" */
    char *path;          /* "/v1/tasks?cluster=prod" (escaped) */
    json_t *body;        /* NULL: none */
    cs_client_shape shape;
    const char *verb;    /* the text's first word for a change ("added", "removed", ...), or NULL */
    char *id;            /* the id the command names, or NULL */
    bool wait;           /* --wait: poll the run the answer is until it is final */
    bool json;
    /* the server and how to reach it */
    char *server, *token_file, *ca_file, *config_file;
} cs_client_call;

/* Is argv one of client mode's commands (command and sub-command words)?
 * must: task and run, which exist in client mode only. */
bool cs_client_command(int argc, char **argv, bool *must);

/* Parse argv (client mode's own options only) into call. A usage mistake
 * is CS_E_USAGE with one line. */
int cs_client_parse(int argc, char **argv, cs_client_call *call, cs_err *e);
void cs_client_call_free(cs_client_call *call);

/* Is id a good document id (server/model.h: 1..64 of [A-Za-z0-9._-], not
 * starting with '.' or '-')? */
bool cs_client_id_ok(const char *id);

/* The text of answer for call (not --json). */
void cs_client_render(FILE *out, const cs_client_call *call, const json_t *answer);

/* The text of one run, and its verdict: 0 when done, else the error its
 * error_code names (CS_E_EXTERNAL when none), message set. */
int cs_client_run_verdict(const json_t *run, cs_err *e);

/* An error answer as its sentence "<error> (HTTP <status>)" (the client
 * prefixes "server: "); the code for the exit status. */
int cs_client_http_error(long status, const char *body, size_t len, cs_err *e);

/* Client mode from main: -1 when argv is not for it (run locally), else
 * the exit status (what it printed is done). */
int cs_client_main(int argc, char **argv);

/* `cassette task --help`, `cassette run --help`. */
void cs_client_usage(FILE *out);

#endif

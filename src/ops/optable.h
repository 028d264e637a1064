/* optable.h - the one table of operations.
 *
 * Owns: every operation cassette can run, once: its name, the command
 * words a front end calls it by, a one-line summary, its typed request
 * (struct, field table with JSON names, defaults and checks: ops/request.h),
 * how to run it, its result as a JSON document (ops/results.h) and its
 * verdict (the error a result amounts to: damage found, tables not
 * restored, backups too old). Also the commands as the CLI shows them
 * (synopsis and summary for --help, the manual page and completion).
 * Every front end goes through here: the CLI builds a request from its
 * flags, an agent or a server from JSON (cs_op_request_from_json); all of
 * them run it with cs_op_run and answer with the same document.
 * Must not: know of flags, environment variables or INI files, or print. */
#ifndef CS_OPS_OPTABLE_H
#define CS_OPS_OPTABLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/job.h"
#include "ops/host.h"
#include "ops/request.h"

typedef struct cs_op_def {
    const char *name;       /* "backup", "key generate": unique; the JSON name of the operation */
    const char *command;    /* the command it belongs to: "key" */
    const char *sub;        /* the word after the command, or NULL: "generate" */
    const char *positional; /* the field the word after that fills ("file"), or NULL */
    const char *summary;    /* one line */
    const cs_field *fields; /* the request's fields */
    size_t n_fields;
    size_t req_size, res_size;
    /* Checks across fields, after each field's own (NULL: none). */
    int (*check)(const void *req, cs_err *e);
    int (*run)(cs_job *job, const cs_host *host, const void *req, void *res, cs_err *e);
    /* The result as a JSON document (new reference). */
    json_t *(*result_json)(const void *req, const void *res);
    /* The error the result amounts to, or 0 (NULL: always 0). */
    int (*verdict)(const void *req, const void *res, cs_err *e);
    void (*result_free)(void *res);
} cs_op_def;

/* A command as the CLI shows it: "key" with "generate [-o FILE] | public FILE". */
typedef struct cs_command_def {
    const char *name;
    const char *synopsis;
    const char *summary;
} cs_command_def;

/* Every operation, in table order. */
const cs_op_def *cs_ops_all(size_t *n);
/* The operation of that name ("key generate"), or NULL. */
const cs_op_def *cs_op_find(const char *name);
/* The operation of command and sub-command word (sub may be NULL), or NULL. */
const cs_op_def *cs_op_find_command(const char *command, const char *sub);

/* Every command, in the order --help lists them. */
const cs_command_def *cs_commands_all(size_t *n);
const cs_command_def *cs_command_find(const char *name);
/* Does some operation of command take a sub-command word? */
bool cs_command_has_subs(const char *command);

/* The default of a request field as text (the same in every operation
 * that has a field of that name: a unit test holds them to it), or NULL. */
const char *cs_op_field_default(const char *field);

/* A request of op: allocated, with its defaults. Free with
 * cs_op_request_free. NULL only when a default is bad (a bug). */
void *cs_op_request_new(const cs_op_def *op, cs_err *e);
void cs_op_request_free(const cs_op_def *op, void *req);

/* Fill req (made by cs_op_request_new) from a JSON object: an unknown
 * field, a value of the wrong type or a bad value is one error whose
 * message and e->field name the field; then every check. */
int cs_op_request_from_json(const cs_op_def *op, const json_t *json, void *req, cs_err *e);
/* The request as a JSON object (what an agent would be sent). */
json_t *cs_op_request_to_json(const cs_op_def *op, const void *req);

/* Every check of the request: the fields' own, then the operation's. */
int cs_op_request_check(const cs_op_def *op, const void *req, cs_err *e);

/* Check req, then run op with job and host; on success *res_out holds the
 * result (free with cs_op_result_free, also after an error: NULL is fine). */
int cs_op_run(const cs_op_def *op, cs_job *job, const cs_host *host, const void *req, void **res_out, cs_err *e);
json_t *cs_op_result_json(const cs_op_def *op, const void *req, const void *res);
int cs_op_verdict(const cs_op_def *op, const void *req, const void *res, cs_err *e);
void cs_op_result_free(const cs_op_def *op, void *res);

#endif

/* textfile.h - `--metrics-file PATH`: a one-shot command's metrics for
 * node_exporter's textfile collector.
 *
 * Owns: the textfile rows of docs/metrics.md for one run of backup,
 * restore, verify, purge or drill: read from the operation's result document
 * (cs_op_result_json) and its error, written atomically after the run
 * whether it succeeded or failed; the repo label (the location without any
 * userinfo); and what a run carries over from the file of the run before
 * (its last success, its last failure: only those lines are read, and a
 * missing or garbled file is no error). One file holds one op and one
 * repository: give each its own path.
 * Must not: count anything itself (every value is the result document's,
 * the error's or the job's progress record's), or run an operation. */
#ifndef CS_CLI_TEXTFILE_H
#define CS_CLI_TEXTFILE_H

#include <jansson.h>

#include "common/err.h"

/* One run, as the textfile tells it. */
typedef struct cs_textfile_run {
    const char *op;       /* "backup", "restore", "verify", "purge", "drill" */
    const char *repo;     /* the repository location as given (userinfo is left out here) */
    const json_t *result; /* the result document, NULL when the operation returned none */
    const cs_err *err;    /* NULL or CS_OK: it succeeded */
    double ended;         /* seconds since the epoch */
    double duration;      /* seconds, when the result has no "seconds" */
} cs_textfile_run;

/* The exposition of run (caller frees), carrying the last success and
 * failure over from previous (the previous file's text, or NULL). */
char *cs_textfile_text(const cs_textfile_run *run, const char *previous);

/* Read the file at path (if any), write the run's text there atomically
 * (mode 0644). */
int cs_textfile_write(const cs_textfile_run *run, const char *path, cs_err *e);

/* location without the userinfo of a URL ("s3://user:pw@host/b" ->
 * "s3://host/b"); caller frees. */
char *cs_textfile_repo_label(const char *location);

#endif

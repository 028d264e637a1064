/* proc.h - running external commands without a shell.
 *
 * Owns: splitting a command template ("docker exec cassandra nodetool") into
 * argv with shell-like quoting, and running argv with stdout and stderr
 * captured (bounded) and the exit status checked. No shell is involved, so
 * arguments (keyspace names, paths) are never reinterpreted.
 * Must not: know what the commands mean. */
#ifndef CS_PROC_H
#define CS_PROC_H

#include "common/buf.h"
#include "common/err.h"
#include "common/strlist.h"

/* Split a template into words: blanks separate, '...' and "..." quote,
 * backslash escapes the next character outside single quotes. */
int cs_split_command(const char *template_cmd, cs_strlist *out, cs_err *e);

/* The captured output of a finished command. */
typedef struct cs_proc_result {
    int exit_code;   /* exit status, or 128 + signal */
    cs_buf out;      /* stdout, at most CS_PROC_CAPTURE_MAX bytes kept */
    cs_buf err;      /* stderr, likewise */
} cs_proc_result;

#define CS_PROC_CAPTURE_MAX (4u << 20)

/* Run argv (argv[0] looked up in PATH) to completion. Returns 0 when the
 * command could be run (whatever its exit code), CS_E_EXTERNAL when it could
 * not be started. */
int cs_proc_run(const cs_strlist *argv, cs_proc_result *res, cs_err *e);
void cs_proc_result_free(cs_proc_result *res);

/* The last non-empty line of text (for error messages), copied into out. */
void cs_last_line(const char *text, char *out, size_t cap);

#endif

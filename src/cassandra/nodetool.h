/* nodetool.h - running nodetool against one node.
 *
 * Owns: the nodetool command template (it may be
 * "nodetool -h 127.0.0.1 -p 7199" or "docker exec cassandra nodetool"),
 * the JMX credentials (the password goes to nodetool in a private 0600 file
 * in $TMPDIR, "-u USER -pwf FILE", never on a command line; the file lives
 * as long as the cs_nodetool), and the calls cassette makes: snapshot,
 * clearsnapshot, import. Output and exit status are checked; a failure
 * becomes one sentence with nodetool's own last line of complaint.
 * Must not: parse CQL or touch files other than its password file. */
#ifndef CS_NODETOOL_H
#define CS_NODETOOL_H

#include "common/err.h"
#include "common/proc.h"
#include "common/strlist.h"

typedef struct cs_nodetool cs_nodetool;

/* How to run nodetool. ops/ builds it from its request (ops/nodeopts.c);
 * the strings are copied by cs_nodetool_new. */
typedef struct cs_nodetool_opts {
    const char *command;      /* the template; "nodetool" when NULL */
    const char *jmx_user;     /* NULL or empty: no JMX authentication */
    const char *jmx_password; /* required with jmx_user; never on a command line */
} cs_nodetool_opts;

/* The template, and with a JMX user its password (required; no white space,
 * as nodetool's password file splits on it). The template runs on this
 * machine: a JMX password file is not visible inside a container
 * ("docker exec ... nodetool"). */
int cs_nodetool_new(const cs_nodetool_opts *opts, cs_nodetool **out, cs_err *e);
/* Removes the password file, if any. NULL is fine. */
void cs_nodetool_free(cs_nodetool *nt);

/* Run "nodetool ARGS..." (args NULL-terminated); fails when the exit code is
 * not 0. res may be NULL when the output is not needed. */
int cs_nodetool_run(cs_nodetool *nt, const char *const *args, cs_proc_result *res, cs_err *e);

/* nodetool snapshot -t TAG [KS...] (flushes first). */
int cs_nodetool_snapshot(cs_nodetool *nt, const char *tag, const cs_strlist *keyspaces, cs_err *e);
/* nodetool clearsnapshot -t TAG [-- KS...] (keyspaces NULL or empty: all). */
int cs_nodetool_clearsnapshot(cs_nodetool *nt, const char *tag, const cs_strlist *keyspaces, cs_err *e);
/* nodetool import --no-verify KS TABLE DIR; fails if nodetool reports directories that
 * failed to import. */
int cs_nodetool_import(cs_nodetool *nt, const char *ks, const char *table, const char *dir, cs_err *e);

#endif

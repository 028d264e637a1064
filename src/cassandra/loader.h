/* loader.h - running Cassandra's bulk loader (sstableloader, class
 * org.apache.cassandra.tools.BulkLoader) on one staged table directory.
 *
 * Owns: the loader command template (a host setting like nodetool's:
 * "sstableloader", "docker exec cassandra sstableloader"), the arguments
 * cassette appends to it (-d TARGETS, -p PORT, -u USER -pw PASSWORD,
 * --no-progress, the directory), and the loader's outcome as one sentence.
 * BulkLoader reads CQL credentials only from its arguments (or from an
 * auth provider class): the password is on the loader's command line for
 * as long as it runs (docs/threat-model.md), and never in a log line or a
 * message (the shown form says "-pw ***").
 * Must not: stage files, parse CQL, or know of requests. */
#ifndef CS_LOADER_H
#define CS_LOADER_H

#include "common/err.h"
#include "common/strlist.h"

typedef struct cs_loader_opts {
    const char *command;        /* the template; "sstableloader" when NULL */
    const cs_strlist *targets;  /* CQL addresses of the target cluster's nodes (-d) */
    int port;                   /* their CQL port (-p); 0: the loader's default */
    const char *user;           /* NULL or empty: no authentication */
    const char *password;       /* with user */
} cs_loader_opts;

/* The loader's argv for dir (a ".../<keyspace>/<table>" directory) into
 * argv, and the same with the password replaced by "***" into shown (may
 * be NULL). One error for a bad template, no target, or a user without a
 * password. */
int cs_loader_argv(const cs_loader_opts *o, const char *dir, cs_strlist *argv, cs_strlist *shown, cs_err *e);

/* Run the loader on dir; fails (CS_E_EXTERNAL) with the loader's own last
 * line of complaint when it exits non-zero. */
int cs_loader_run(const cs_loader_opts *o, const char *dir, cs_err *e);

#endif

/* config.h - cassette's configuration: the one table of options.
 *
 * Owns: cs_config (every setting the command line can give), the option
 * table from which command-line parsing, environment overrides, the INI
 * config file and `--help` all come, and their precedence: flags >
 * environment > config file > defaults. Each option is marked request-level
 * (it fills the operation's request: ops/optable.h), host-local (it fills
 * cs_host: ops/host.h; it never travels) or the CLI's own (--json, -v).
 * The commands and the request fields' defaults come from the op table.
 * Only front ends include this header: ops/ and below take requests and
 * the host, never the config.
 * Must not: connect to anything or touch the repository. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/kvlist.h"
#include "common/units.h"
#include "ops/host.h"
#include "ops/optable.h"
#include "common/strlist.h"

typedef struct cs_config {
    char *command;          /* "backup", "restore", ... */
    char *config_file;
    /* repository */
    char *repo;
    /* node */
    char *cql_host;
    long cql_port;
    char *cql_user;
    char *cql_password;     /* never logged */
    bool cql_tls;
    char *cql_ca_file;
    char *cql_cert;
    char *cql_key;
    char *cql_consistency;  /* migrate: "LOCAL_QUORUM", "ONE", ... */
    double cql_timeout;     /* seconds: connect, TLS, login, and each request */
    char *jmx_user;
    char *jmx_password;     /* never logged, never on a command line */
    char *dir;              /* migrate --dir */
    bool force_checksum;
    char *nodetool;
    char *sstableloader;
    cs_strlist data_dirs;
    char *commitlog_dir;
    char *hints_dir;
    char *saved_caches_dir;
    char *staging_dir;
    char *cassandra_yaml;   /* the node's cassandra.yaml: where its directories are */
    char *state_dir;
    char *identity;         /* age identity file for encrypted repositories */
    cs_strlist recipients;  /* age1... public keys for a new repository */
    bool no_encryption;     /* init, backup --init: a new repository without recipients, on purpose */
    bool init;              /* backup --init: create the repository if the location holds none */
    char *output;           /* key generate -o */
    cs_strlist args;        /* positional words after the command ("key generate", FILE) */
    cs_strlist given;       /* the long flags given on the command line (cs_config_request checks the
                               request-level ones against the operation's fields) */
    /* command arguments */
    char *name;             /* backup --name */
    char *backup;           /* restore/verify --backup */
    char *set;              /* backup --set: the backup set's id */
    char *source_host;      /* restore --source-host: whose backup */
    char *snapshot;         /* backup --snapshot TAG: back up a snapshot taken already */
    char *tag;              /* snapshot [clear] --tag */
    double older_than;      /* snapshot clear, cluster snapshot-cleanup: seconds; 0: not given */
    char *prefix;           /* ... of the snapshot tags cleared ("cassette-") */
    cs_strlist keyspaces;
    cs_strlist tables;      /* "ks.table" */
    char *mode;             /* restore --mode import|replace */
    bool fail_fast;         /* restore: stop at the first damaged table */
    cs_strlist keyspace_map; /* restore --keyspace-map SRC=DST */
    long sample_tables;     /* drill: tables picked at random (0: all) */
    long sample_rows;       /* drill: rows compared by content per table */
    bool keep;              /* drill: leave the scratch keyspaces */
    bool aside;             /* cleanup --aside */
    long zstd_level;
    long jobs;              /* files handled at once by backup, restore, verify */
    char *catalog;          /* SQLite catalog path (NULL: the default per repository) */
    double lock_wait;       /* durations in seconds ("10m" on the command line) */
    double lock_stale;
    /* purge: retention (0 / NULL: rule not set) */
    long keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly;
    double keep_within;     /* 0: rule not set */
    double grace;
    bool dry_run;
    bool force;             /* delete: also the newest complete backup of a node */
    /* verify */
    bool deep;
    char *sample;           /* percentage, parsed by verify */
    /* storage drivers' options, "<scheme>.<key>" = text ("s3.endpoint",
     * "storage.rate_limit"), parsed by the driver (see storage/storage.h):
     * a new driver's options are new rows of the option table, no new field */
    cs_kvlist storage_opts;   /* secrets among them are never logged */
    /* output */
    bool json;
    char *progress;         /* --progress: auto, tty, plain, json, none (cli/progress.h) */
    char *metrics_file;     /* --metrics-file: the run's textfile for node_exporter (cli/textfile.h) */
    int verbose;            /* -v: 1 (progress), -vv: 2 (debug) */
    bool help;
    bool quiet;             /* -q: errors only on stderr */
    bool version;
    double max_age;         /* status --max-age: seconds, 0 = not set */
    /* agent: where and how it serves (cli/ hands them to agent/agent.h) */
    char *listen;           /* "HOST:PORT" */
    char *token_file;       /* the bearer token's file (the token itself never is an option) */
    bool insecure_loopback; /* no token, on purpose, on loopback only */
    char *tls_cert, *tls_key, *tls_client_ca;
    /* server (cli/ hands them to server/server.h; listen and tls_* above too) */
    char *tokens_file;      /* the API's tokens: "NAME ROLE TOKEN [CLUSTER,...]" lines */
    char *state_url;        /* "sqlite:PATH", PATH or "cassandra://HOST[:PORT]/KEYSPACE" */
    long state_rf;
    char *server_id;
    long workers;
    double lease, history, export_every; /* seconds */
    char *export_repo;
    /* cluster commands: the agents, and how to drive them */
    char *contact;          /* a CQL contact point of the cluster */
    cs_strlist agents;      /* agent URLs */
    char *agent_template;   /* "https://{rpc_address}:7620" */
    char *agent_token_file, *agent_ca_file, *agent_cert, *agent_key;
    long parallel_nodes;
    long retries;
    bool allow_partial;
    char *pause_cmd, *resume_cmd;
    cs_strlist nodes;       /* cluster restore --nodes */
    cs_strlist targets;     /* load --target: the target cluster's CQL addresses */
    cs_strlist host_map;    /* cluster restore --host-map SOURCE=TARGET */
    bool plan, yes;
    bool all_replicas;      /* cluster restore --mode load: every node's copy */
    cs_strlist allow_repos; /* repository locations requests may name (or one below them) */
    /* client mode (cli/client.h): the server to ask instead of running here */
    char *server_url;
    char *server_token_file; /* the token itself is never an option, never printed */
    char *server_ca_file;
} cs_config;

/* Build the config from argv, the environment and the config file.
 * A usage mistake returns CS_E_INVAL with a one-line message. */
int cs_config_load(int argc, char **argv, cs_config *cfg, cs_err *e);
void cs_config_free(cs_config *cfg);

/* Print usage (for cmd, or the global usage when cmd is NULL) from the table:
 * a command's own options first, then those it shares, then the global ones. */
void cs_config_usage(FILE *out, const char *cmd);

/* The manual page (roff, section 1) and the bash completion script, both
 * made from the same tables as the usage, so that they cannot drift. */
void cs_config_man(FILE *out, const char *version);
void cs_config_completion_bash(FILE *out);

/* The config files read when neither --config nor CASSETTE_CONFIG is given:
 * the system's, then the user's on top of it; either may be missing. */
#ifndef CS_SYSTEM_CONFIG
#define CS_SYSTEM_CONFIG "/etc/cassette/cassette.ini"
#endif

/* Parse the body of an INI file into cfg (keys known to the table only;
 * an unknown section or key is an error naming its line). Exposed for tests. */
int cs_config_parse_ini(cs_config *cfg, const char *text, const char *origin, cs_err *e);

/* Does the long option flag (without "--") take a value? false when it
 * is unknown. (Client mode finds the command words with it.) */
bool cs_config_flag_takes_value(const char *flag);

/* Is cmd one of cassette's commands? */
bool cs_config_is_command(const char *cmd);
/* Does command cmd take option --flag (per the option table)? */
bool cs_config_takes(const char *cmd, const char *flag);

/* The operation the command line names (command and sub-command words),
 * or NULL (no command, or words that name none). */
const cs_op_def *cs_config_op(const cs_config *cfg);

/* Fill req (made by cs_op_request_new) from cfg: each field from the
 * request-level option of its name, the word after a sub-command into the
 * operation's positional field. */
int cs_config_request(const cs_config *cfg, const cs_op_def *op, void *req, cs_err *e);

/* Fill host from cfg's host-local options (free with cs_host_free). */
int cs_config_host(const cs_config *cfg, cs_host *host, cs_err *e);

/* How the CLI names a field in a message ({repo} -> "--repo"): a
 * cs_err_namer (common/err.h). */
const char *cs_config_namer(const char *field, void *arg);

/* Do the option table, the op table and the host agree (every field set
 * by an option of its scope and type, every request or host option
 * reaching a field, one default per field name)? why says what is wrong.
 * For tests. */
bool cs_config_check_tables(char *why, size_t cap);

#endif

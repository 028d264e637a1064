/* config.h - cassette's configuration: the one table of options.
 *
 * Owns: cs_config (every setting a command can read), the option table from
 * which command-line parsing, environment overrides, the INI config file
 * and `--help` all come, and their precedence: flags > environment >
 * config file > defaults. The config is the only global-ish state; it is
 * built once by the CLI and passed down read-only.
 * Must not: connect to anything or touch the repository. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
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
    /* command arguments */
    char *name;             /* backup --name */
    char *backup;           /* restore/verify --backup */
    cs_strlist keyspaces;
    cs_strlist tables;      /* "ks.table" */
    char *mode;             /* restore --mode import|replace */
    bool fail_fast;         /* restore: stop at the first damaged table */
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
    /* S3 (see cs_s3_opts in storage/storage.h) */
    char *s3_endpoint;
    char *s3_region;
    char *s3_access_key_id;
    char *s3_secret_access_key; /* never logged */
    char *s3_session_token;     /* never logged */
    char *s3_bucket;
    char *s3_addressing;
    char *s3_sign_payload;
    char *s3_ca_file;
    uint64_t s3_part_size;
    long s3_concurrency;
    long s3_retries;
    long s3_timeout;
    uint64_t rate_limit;        /* bytes per second, 0 = none */
    /* output */
    bool json;
    char *progress;         /* --progress: auto, tty, plain, json, none (cli/progress.h) */
    int verbose;            /* -v: 1 (progress), -vv: 2 (debug) */
    bool help;
    bool quiet;             /* -q: errors only on stderr */
    bool version;
    double max_age;         /* status --max-age: seconds, 0 = not set */
} cs_config;

/* Exit codes of the CLI, as README.md's table documents them. */
enum {
    CS_EXIT_OK = 0,
    CS_EXIT_ERROR = 1,       /* could not do it */
    CS_EXIT_USAGE = 2,       /* bad option, bad value, missing required option */
    CS_EXIT_DAMAGED = 3,     /* damage found: verify, or stored data that failed its check */
    CS_EXIT_LOCKED = 4,      /* a conflicting repository lock outlasted --lock-wait */
    CS_EXIT_NOKEY = 5,       /* encrypted: no identity given, or it does not match */
    CS_EXIT_STALE = 6,       /* status --max-age: a newest complete backup is older */
    CS_EXIT_INTERRUPTED = 130 /* SIGINT or SIGTERM (128 + SIGINT, the shell's habit) */
};

/* The exit code for an error code (CS_E_*). */
int cs_exit_code(int err);

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

/* "90s", "45m", "36h", "7d", "2w", "1y", sums like "1d12h", or "0" ->
 * seconds. CS_E_INVAL with a one-line message for anything else. */
int cs_parse_duration(const char *text, double *seconds, cs_err *e);
/* The inverse, for messages: "24h", "7d", "90m", "45s". */
void cs_format_duration(double seconds, char out[24]);

/* Is cmd one of cassette's commands? */
bool cs_config_is_command(const char *cmd);
/* Does command cmd take option --flag (per the option table)? */
bool cs_config_takes(const char *cmd, const char *flag);

#endif

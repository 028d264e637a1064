#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/units.h"
#include "ops/optable.h"

/* ---- the option table ---- */

/* OPT_COUNT: a flag that may repeat, counted (-vv). OPT_STORAGE: an option
 * of a storage driver, kept as text in cfg->storage_opts under the name in
 * `key` ("s3.part_size": the driver's scheme, a dot, then the INI key) and
 * parsed by the driver when it opens a location; a new driver's options are
 * new rows of this kind only. */
enum opt_type { OPT_STR, OPT_INT, OPT_LIST, OPT_FLAG, OPT_SIZE, OPT_DURATION, OPT_COUNT, OPT_STORAGE };

/* Which commands an option applies to: a space-separated list, "*" for all. */
/* Where an option's value goes (see ops/host.h and ops/optable.h): into the
 * operation's request (it may travel: a server could ask the same), into
 * the host (it never travels: credentials, local paths, the node), or it
 * is the CLI's own (output, help). */
enum opt_scope { SCOPE_REQUEST, SCOPE_HOST, SCOPE_CLI };

typedef struct opt_def {
    const char *flag;     /* long flag without "--" */
    char short_flag;      /* 0 if none */
    enum opt_type type;
    size_t offset;        /* into cs_config */
    const char *field;    /* the request's or host's field of that name ({field} in messages) */
    enum opt_scope scope;
    const char *section;  /* INI section, NULL if not in the file */
    const char *key;      /* INI key; OPT_STORAGE: the storage option's name, INI key after its first '.' */
    const char *env;      /* environment variables, space-separated, the first set wins; NULL if none */
    const char *def;      /* default, NULL if none; a request field's is the op table's (cs_op_field_default) */
    const char *commands;
    const char *help;
} opt_def;

/* The cs_config member, named as the request's or host's field it fills. */
#define REQ(f) offsetof(cs_config, f), #f, SCOPE_REQUEST
#define HOST(f) offsetof(cs_config, f), #f, SCOPE_HOST
#define CLI(f) offsetof(cs_config, f), #f, SCOPE_CLI
#define NODE "backup restore migrate schema snapshot drill"
#define REPO "init backup list restore verify purge status catalog delete cluster load drill"
#define CQL NODE " cluster load" /* the cluster commands read the ring from a contact point */
#define LOCKED "backup restore verify purge delete cluster load drill"
#define NODE_DIRS NODE " status cleanup" /* status lists what restores moved aside there */
#define KEEP(flag, field, key, what)                                                                           \
    { flag, 0, OPT_INT, REQ(field), "retention", key, NULL, NULL, "purge", what }
static const opt_def options[] = {
    { "config", 0, OPT_STR, CLI(config_file), NULL, NULL, "CASSETTE_CONFIG", NULL, "*",
      "INI file with [repository], [cassandra] and [cassette] sections" },
    { "repo", 0, OPT_STR, REQ(repo), "repository", "path", "CASSETTE_REPO", NULL, REPO,
      "repository location: a local directory, s3://BUCKET/PREFIX or az://CONTAINER/PREFIX" },
    { "catalog", 0, OPT_STR, HOST(catalog), "cassette", "catalog", "CASSETTE_CATALOG", NULL,
      "list status verify purge catalog delete",
      "SQLite cache of the repository's backups; default ~/.cache/cassette/catalog/<repository id>.db" },
    { "cql-host", 0, OPT_STR, HOST(cql_host), "cassandra", "host", "CASSETTE_CQL_HOST", "127.0.0.1", CQL,
      "address of the node's CQL native transport; migrate and schema dump take a list of "
      "contact points (a,b:9043,[::1]), tried in order" },
    { "cql-port", 0, OPT_INT, HOST(cql_port), "cassandra", "port", "CASSETTE_CQL_PORT", "9042", CQL,
      "CQL port" },
    { "cql-user", 0, OPT_STR, HOST(cql_user), "cassandra", "username", "CASSETTE_CQL_USER", NULL, CQL,
      "CQL user name (PasswordAuthenticator)" },
    { "cql-password", 0, OPT_STR, HOST(cql_password), "cassandra", "password", "CASSETTE_CQL_PASSWORD", NULL, CQL,
      "CQL password (prefer the environment or the config file)" },
    { "cql-tls", 0, OPT_FLAG, HOST(cql_tls), "cassandra", "tls", "CASSETTE_CQL_TLS", NULL, CQL,
      "connect to CQL over TLS (client_encryption_options)" },
    { "cql-ca-file", 0, OPT_STR, HOST(cql_ca_file), "cassandra", "ca_file", "CASSETTE_CQL_CA_FILE", NULL, CQL,
      "PEM file of CA certificates that sign the node's certificate (implies --cql-tls)" },
    { "cql-cert", 0, OPT_STR, HOST(cql_cert), "cassandra", "cert_file", "CASSETTE_CQL_CERT", NULL, CQL,
      "client certificate (PEM) when the node asks for one (require_client_auth)" },
    { "cql-key", 0, OPT_STR, HOST(cql_key), "cassandra", "key_file", "CASSETTE_CQL_KEY", NULL, CQL,
      "private key (PEM) of --cql-cert" },
    { "cql-timeout", 0, OPT_DURATION, HOST(cql_timeout), "cassandra", "timeout", "CASSETTE_CQL_TIMEOUT", "10s", CQL,
      "limit on connecting to the node and on each CQL request (schema changes included)" },
    { "cql-consistency", 0, OPT_STR, REQ(cql_consistency), "cassandra", "consistency", "CASSETTE_CQL_CONSISTENCY",
      NULL, "migrate", "consistency level of migration statements and the tracking table" },
    { "jmx-user", 0, OPT_STR, HOST(jmx_user), "cassandra", "jmx_user", "CASSETTE_JMX_USER", NULL, "backup restore snapshot drill",
      "JMX user for nodetool (its password goes to nodetool through a file, never the command line)" },
    { "jmx-password", 0, OPT_STR, HOST(jmx_password), "cassandra", "jmx_password", "CASSETTE_JMX_PASSWORD", NULL,
      "backup restore snapshot drill", "JMX password (prefer the environment or the config file)" },
    { "nodetool", 0, OPT_STR, HOST(nodetool), "cassandra", "nodetool", "CASSETTE_NODETOOL", "nodetool", NODE,
      "nodetool command, e.g. \"docker exec cassandra nodetool\"" },
    { "sstableloader", 0, OPT_STR, HOST(sstableloader), "cassandra", "sstableloader", "CASSETTE_SSTABLELOADER",
      "sstableloader", "load",
      "Cassandra's bulk loader command, e.g. \"docker exec cassandra sstableloader\" (cassette adds -d, -p, -u, -pw, "
      "--no-progress and the directory)" },
    { "data-dir", 0, OPT_LIST, HOST(data_dirs), "cassandra", "data_dirs", "CASSETTE_DATA_DIRS", NULL, NODE_DIRS " load",
      "data directory (repeat, or comma-separated); default: asked from the node" },
    { "commitlog-dir", 0, OPT_STR, HOST(commitlog_dir), "cassandra", "commitlog_dir", "CASSETTE_COMMITLOG_DIR", NULL,
      NODE_DIRS, "commitlog directory (replace mode)" },
    { "hints-dir", 0, OPT_STR, HOST(hints_dir), "cassandra", "hints_dir", "CASSETTE_HINTS_DIR", NULL, NODE_DIRS,
      "hints directory (replace mode)" },
    { "saved-caches-dir", 0, OPT_STR, HOST(saved_caches_dir), "cassandra", "saved_caches_dir",
      "CASSETTE_SAVED_CACHES_DIR", NULL, NODE_DIRS, "saved caches directory (replace mode)" },
    { "staging-dir", 0, OPT_STR, HOST(staging_dir), "cassette", "staging_dir", "CASSETTE_STAGING_DIR", NULL,
      "restore load drill",
      "where import restores and loads download to; default: inside the first data directory (same file system)" },
    { "cassandra-yaml", 0, OPT_STR, HOST(cassandra_yaml), "cassandra", "cassandra_yaml", NULL, NULL,
      "restore status cleanup load drill",
      "the node's cassandra.yaml: where its data, commitlog, hints and saved caches directories are (--data-dir "
      "and friends take precedence)" },
    { "state-dir", 0, OPT_STR, HOST(state_dir), "cassette", "state_dir", "CASSETTE_STATE_DIR", NULL,
      "backup restore snapshot drill",
      "local cache of what was already stored (an import restore adds what it placed) and of the node's facts; "
      "default "
      "~/.cache/cassette/state" },
    { "s3-endpoint", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.endpoint", "AWS_ENDPOINT_URL B2_ENDPOINT", NULL,
      REPO, "S3 endpoint URL, e.g. https://s3.us-west-002.backblazeb2.com (default: AWS)" },
    { "s3-region", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.region", "AWS_REGION B2_REGION", NULL, REPO,
      "S3 region (default us-east-1)" },
    { "s3-access-key-id", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.access_key_id",
      "AWS_ACCESS_KEY_ID B2_KEY_ID", NULL, REPO, "S3 access key id" },
    { "s3-secret-access-key", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.secret_access_key",
      "AWS_SECRET_ACCESS_KEY B2_APPLICATION_KEY", NULL, REPO, "S3 secret key (prefer the environment)" },
    { "s3-session-token", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.session_token", "AWS_SESSION_TOKEN", NULL,
      REPO, "S3 session token" },
    { "s3-bucket", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.bucket", "B2_BUCKET_NAME", NULL, REPO,
      "bucket for a --repo of s3:// or s3:///PREFIX" },
    { "s3-addressing", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.addressing", "CASSETTE_S3_ADDRESSING", "auto",
      REPO, "path, virtual, or auto (path-style for a custom endpoint)" },
    { "s3-ca-file", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.ca_file", "AWS_CA_BUNDLE", NULL, REPO,
      "PEM file of CA certificates instead of the system store" },
    { "s3-part-size", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.part_size", "CASSETTE_S3_PART_SIZE", "8M", REPO,
      "multipart part size (5M or more; an object has at most 10000 parts)" },
    { "s3-concurrency", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.concurrency", "CASSETTE_S3_CONCURRENCY", "4",
      REPO, "part buffers of the whole process, filled or in flight (memory: this many parts, whatever --jobs is)" },
    { "s3-sign-payload", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.sign_payload", "CASSETTE_S3_SIGN_PAYLOAD",
      "auto", REPO, "SHA-256 of each body in the signature: yes, no, or auto (yes over http, no over https)" },
    { "s3-retries", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.retries", "CASSETTE_S3_RETRIES", "6", REPO,
      "retries of a failed S3 request" },
    { "s3-timeout", 0, OPT_STORAGE, HOST(storage_opts), "s3", "s3.timeout", "CASSETTE_S3_TIMEOUT", "30", REPO,
      "seconds to connect, and seconds without progress before a request is retried" },
    { "az-account", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.account", "AZURE_STORAGE_ACCOUNT", NULL, REPO,
      "Azure storage account name" },
    { "az-key", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.key", "AZURE_STORAGE_KEY", NULL, REPO,
      "Azure storage account key, base64 (Shared Key; prefer the environment)" },
    { "az-sas-token", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.sas_token", "AZURE_STORAGE_SAS_TOKEN", NULL,
      REPO, "Azure SAS token instead of the account key (prefer the environment)" },
    { "az-endpoint", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.endpoint", "CASSETTE_AZ_ENDPOINT", NULL, REPO,
      "Azure Blob service URL, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite "
      "(default https://ACCOUNT.blob.core.windows.net)" },
    { "az-ca-file", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.ca_file", "CASSETTE_AZ_CA_FILE", NULL, REPO,
      "PEM file of CA certificates instead of the system store" },
    { "az-block-size", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.block_size", "CASSETTE_AZ_BLOCK_SIZE", "8M",
      REPO, "block size of large blobs (1M or more; a blob has at most 50000 blocks)" },
    { "az-concurrency", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.concurrency", "CASSETTE_AZ_CONCURRENCY", "4",
      REPO, "block buffers of the whole process, filled or in flight (memory: this many blocks, whatever --jobs is)" },
    { "az-retries", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.retries", "CASSETTE_AZ_RETRIES", "6", REPO,
      "retries of a failed Azure request" },
    { "az-timeout", 0, OPT_STORAGE, HOST(storage_opts), "az", "az.timeout", "CASSETTE_AZ_TIMEOUT", "30", REPO,
      "seconds to connect, and seconds without progress before a request is retried" },
    { "rate-limit", 0, OPT_STORAGE, HOST(storage_opts), "cassette", "storage.rate_limit", "CASSETTE_RATE_LIMIT", "0",
      REPO, "bytes per second to and from S3 or Azure for the whole process (e.g. 50M); 0: no limit" },
    { "identity", 'i', OPT_STR, HOST(identity), "repository", "identity", "CASSETTE_IDENTITY", NULL,
      "backup restore verify purge catalog delete cluster load drill", "age identity file that can read an encrypted repository" },
    { "recipient", 'r', OPT_LIST, REQ(recipients), "repository", "recipients", "CASSETTE_RECIPIENTS", NULL,
      "init backup", "age public key (age1...) a new repository encrypts to (repeat for more)" },
    { "no-encryption", 0, OPT_FLAG, REQ(no_encryption), NULL, NULL, NULL, NULL, "init backup",
      "make the new repository without encryption, on purpose (init and backup --init refuse to make one "
      "without --recipient otherwise)" },
    { "init", 0, OPT_FLAG, REQ(init), NULL, NULL, NULL, NULL, "backup",
      "create the repository first if the location holds none (with --recipient, or --no-encryption); without "
      "it, backup refuses a location that is not a repository" },
    { "output", 'o', OPT_STR, REQ(output), NULL, NULL, NULL, NULL, "key", "write the new identity to this file (mode 0600)" },
    { "zstd-level", 0, OPT_INT, REQ(zstd_level), "cassette", "zstd_level", "CASSETTE_ZSTD_LEVEL", NULL, "backup cluster",
      "zstd compression level (1-19)" },
    { "jobs", 'j', OPT_INT, REQ(jobs), "cassette", "jobs", "CASSETTE_JOBS", NULL, "backup restore verify cluster load drill",
      "files stored, restored or verified at once (1-64)" },
    { "lock-wait", 0, OPT_DURATION, REQ(lock_wait), "cassette", "lock_wait", "CASSETTE_LOCK_WAIT", NULL, LOCKED " migrate",
      "how long to wait for a conflicting repository lock (purge holds one alone), e.g. 30s, 10m; 0: fail at once" },
    { "lock-stale", 0, OPT_DURATION, REQ(lock_stale), "cassette", "lock_stale", "CASSETTE_LOCK_STALE", NULL, LOCKED,
      "a lock not refreshed for this long is stale and broken (holders refresh every quarter of it)" },
    KEEP("keep-last", keep_last, "keep_last", "keep the newest N complete backups of each node [default: 168 when no "
                                              "--keep rule is given]"),
    KEEP("keep-hourly", keep_hourly, "keep_hourly", "keep the newest backup of each of the last N hours (UTC)"),
    KEEP("keep-daily", keep_daily, "keep_daily", "keep the newest backup of each of the last N days"),
    KEEP("keep-weekly", keep_weekly, "keep_weekly", "keep the newest backup of each of the last N ISO weeks"),
    KEEP("keep-monthly", keep_monthly, "keep_monthly", "keep the newest backup of each of the last N months"),
    { "keep-within", 0, OPT_DURATION, REQ(keep_within), "retention", "keep_within", NULL, NULL, "purge",
      "keep every backup started within this long of the node's newest complete one, e.g. 36h, 7d, 2w" },
    { "grace", 0, OPT_DURATION, REQ(grace), "retention", "grace", "CASSETTE_GRACE", NULL, "purge",
      "unreferenced objects and incomplete backups younger than this are left alone (a backup may be using them)" },
    { "dry-run", 'n', OPT_FLAG, REQ(dry_run), NULL, NULL, NULL, NULL, "purge migrate delete cleanup",
      "say what would be done and why; change nothing" },
    { "force", 0, OPT_FLAG, REQ(force), NULL, NULL, NULL, NULL, "delete",
      "delete also the newest complete (or newest complete full) backup of a node" },
    { "deep", 0, OPT_FLAG, REQ(deep), NULL, NULL, NULL, NULL, "verify",
      "download, decrypt, decompress and hash every object (default: check from listings that each exists with "
      "its size)" },
    { "sample", 0, OPT_STR, REQ(sample), NULL, NULL, NULL, NULL, "verify",
      "with --deep: read only this percentage of the stored bytes, the objects read longest ago first, so that "
      "runs rotate through the repository" },
    { "name", 0, OPT_STR, REQ(name), NULL, NULL, NULL, NULL, "backup cluster",
      "backup name; default: the UTC time, e.g. 20261122-013000" },
    { "snapshot", 0, OPT_STR, REQ(snapshot), NULL, NULL, NULL, NULL, "backup",
      "back up this snapshot, taken already (cassette snapshot --tag TAG), instead of taking one; it is cleared at "
      "the end" },
    { "tag", 0, OPT_STR, REQ(tag), NULL, NULL, NULL, NULL, "snapshot",
      "the snapshot's tag (letters, digits, '.', '_' and '-')" },
    { "older-than", 0, OPT_DURATION, REQ(older_than), NULL, NULL, NULL, NULL, "snapshot cluster",
      "snapshot clear, cluster snapshot-cleanup: clear every snapshot of --prefix taken longer ago than this, e.g. "
      "2d (instead of --tag)" },
    { "prefix", 0, OPT_STR, REQ(prefix), NULL, NULL, NULL, NULL, "snapshot cluster",
      "with --older-than: only snapshots whose tag starts so (cassette's own by default; \"\" for every one)" },
    { "backup", 0, OPT_STR, REQ(backup), NULL, NULL, NULL, NULL, "restore verify delete cluster load drill",
      "name of the backup to restore, verify or delete" },
    { "set", 0, OPT_STR, REQ(set), NULL, NULL, NULL, NULL, "backup",
      "join cluster backup set ID (cluster backup passes it)" },
    { "source-host", 0, OPT_STR, REQ(source_host), NULL, NULL, NULL, NULL, "restore load",
      "restore this host's backup (a host id; default: the backup's only host, else this node's own)" },
    { "keyspace", 0, OPT_LIST, REQ(keyspaces), NULL, NULL, NULL, NULL, "backup restore migrate schema snapshot cluster load drill",
      "only this keyspace (repeat for more); migrate: the keyspace of the statements and of the tracking table" },
    { "dir", 0, OPT_STR, REQ(dir), NULL, NULL, NULL, NULL, "migrate",
      "directory of <timestamp>_<name>.cql migration files" },
    { "force-checksum", 0, OPT_FLAG, REQ(force_checksum), NULL, NULL, NULL, NULL, "migrate",
      "go on although an applied migration file has changed since (records its new checksum)" },
    { "table", 0, OPT_LIST, REQ(tables), NULL, NULL, NULL, NULL, "restore cluster load drill",
      "only this table, as KEYSPACE.TABLE (repeat for more)" },
    { "mode", 0, OPT_STR, REQ(mode), NULL, NULL, NULL, NULL, "restore cluster",
      "import (node running, nodetool import) or replace (node stopped); cluster restore: also load (another "
      "topology, through Cassandra's bulk loader)" },
    { "fail-fast", 0, OPT_FLAG, REQ(fail_fast), NULL, NULL, NULL, NULL, "restore",
      "stop at the first table that cannot be restored (default: restore every healthy table, then name the others "
      "and exit non-zero)" },
    { "keyspace-map", 0, OPT_LIST, REQ(keyspace_map), NULL, NULL, NULL, NULL, "restore",
      "SOURCE=TARGET: restore the tables of keyspace SOURCE into the new keyspace TARGET (made from the backup's "
      "schema, without its indexes and views) beside the live ones; import mode only (repeat for more)" },
    { "sample-tables", 0, OPT_INT, REQ(sample_tables), NULL, NULL, NULL, NULL, "drill cluster",
      "drill this many of the selected tables, picked at random (0: every one)" },
    { "sample-rows", 0, OPT_INT, REQ(sample_rows), NULL, NULL, NULL, NULL, "drill cluster",
      "rows per table compared by content with the live table (row counts are compared whole)" },
    { "keep", 0, OPT_FLAG, REQ(keep), NULL, NULL, NULL, NULL, "drill cluster",
      "leave the scratch keyspaces for a look (the next drill drops them)" },
    { "aside", 0, OPT_FLAG, REQ(aside), NULL, NULL, NULL, NULL, "cleanup",
      "remove what replace restores moved aside (and copies left by interrupted restores); status lists them" },
    { "listen", 0, OPT_STR, CLI(listen), "agent", "listen", "CASSETTE_AGENT_LISTEN", NULL, "agent server",
      "address and port to serve on, HOST:PORT ([::1]:PORT for IPv6; :PORT for every address); default "
      "127.0.0.1:7620 for the agent, 127.0.0.1:7630 for the server (none of Cassandra's ports)" },
    { "token-file", 0, OPT_STR, CLI(token_file), "agent", "token_file", "CASSETTE_AGENT_TOKEN_FILE", NULL, "agent",
      "file holding the bearer token clients must send (only its owner may read it: mode 600); the token is "
      "never taken from the command line" },
    { "insecure-loopback", 0, OPT_FLAG, CLI(insecure_loopback), NULL, NULL, NULL, NULL, "agent",
      "serve without a token, on purpose: only on a loopback address" },
    { "tls-cert", 0, OPT_STR, CLI(tls_cert), "agent", "tls_cert", "CASSETTE_AGENT_TLS_CERT", NULL, "agent server",
      "certificate (PEM) to serve HTTPS with" },
    { "tls-key", 0, OPT_STR, CLI(tls_key), "agent", "tls_key", "CASSETTE_AGENT_TLS_KEY", NULL, "agent server",
      "private key (PEM) of --tls-cert" },
    { "tls-client-ca", 0, OPT_STR, CLI(tls_client_ca), "agent", "tls_client_ca", "CASSETTE_AGENT_TLS_CLIENT_CA", NULL,
      "agent server", "CA certificates (PEM): clients must present a certificate one of them signed (mutual TLS)" },
    { "contact", 0, OPT_STR, REQ(contact), "cluster", "contact", "CASSETTE_CONTACT", NULL, "cluster",
      "a CQL contact point of the cluster, HOST[:PORT] (default: --cql-host); the ring is read from it" },
    { "agents", 0, OPT_LIST, REQ(agents), "cluster", "agents", "CASSETTE_AGENTS", NULL, "cluster",
      "agent URLs, https://HOST:PORT (repeat, or comma-separated); default: --agent-template over the ring's nodes" },
    { "agent-template", 0, OPT_STR, REQ(agent_template), "cluster", "agent_template", "CASSETTE_AGENT_TEMPLATE", NULL,
      "cluster", "each node's agent URL, from {rpc_address}, {address} or {host_id}" },
    { "agent-token-file", 0, OPT_STR, HOST(agent_token_file), "cluster", "agent_token_file",
      "CASSETTE_AGENTS_TOKEN_FILE", NULL, "cluster server", "file holding the agents' bearer token (never on the command line)" },
    { "agent-ca-file", 0, OPT_STR, HOST(agent_ca_file), "cluster", "agent_ca_file", "CASSETTE_AGENT_CA_FILE", NULL,
      "cluster server", "CA certificates (PEM) that sign the agents' certificates (default: the system's)" },
    { "agent-cert", 0, OPT_STR, HOST(agent_cert), "cluster", "agent_cert", "CASSETTE_AGENT_CERT", NULL, "cluster server",
      "client certificate (PEM) for agents that want one (their --tls-client-ca)" },
    { "agent-key", 0, OPT_STR, HOST(agent_key), "cluster", "agent_key", "CASSETTE_AGENT_KEY", NULL, "cluster server",
      "private key (PEM) of --agent-cert" },
    { "parallel-nodes", 0, OPT_INT, REQ(parallel_nodes), "cluster", "parallel_nodes", "CASSETTE_PARALLEL_NODES", NULL,
      "cluster", "nodes uploading or restoring at once (snapshots are always taken on all nodes at once)" },
    { "retries", 0, OPT_INT, REQ(retries), "cluster", "retries", NULL, NULL, "cluster",
      "attempts after the first for a node whose backup fails (with backoff)" },
    { "allow-partial", 0, OPT_FLAG, REQ(allow_partial), NULL, NULL, NULL, NULL, "cluster",
      "back up the nodes that can be when some cannot (the backup is listed incomplete, exit 0)" },
    { "pause-cmd", 0, OPT_STR, REQ(pause_cmd), "cluster", "pause_cmd", NULL, NULL, "cluster",
      "command run before the snapshots (an application pause for a cluster-consistent backup; no shell)" },
    { "resume-cmd", 0, OPT_STR, REQ(resume_cmd), "cluster", "resume_cmd", NULL, NULL, "cluster",
      "command run after the snapshots, always once --pause-cmd ran" },
    { "nodes", 0, OPT_LIST, REQ(nodes), NULL, NULL, NULL, NULL, "cluster",
      "restore only these target nodes (host id or address; repeat, or comma-separated)" },
    { "host-map", 0, OPT_LIST, REQ(host_map), NULL, NULL, NULL, NULL, "cluster",
      "SOURCE=TARGET: restore the backup of node SOURCE into node TARGET (host ids or addresses; repeat)" },
    { "target", 0, OPT_LIST, REQ(targets), NULL, NULL, NULL, NULL, "load",
      "CQL address of a node of the cluster to load into (repeat, or comma-separated; default: --cql-host)" },
    { "plan", 0, OPT_FLAG, REQ(plan), NULL, NULL, NULL, NULL, "cluster",
      "print what the restore would do on each node and stop" },
    { "yes", 0, OPT_FLAG, REQ(yes), NULL, NULL, NULL, NULL, "cluster", "run the restore the plan describes" },
    { "all-replicas", 0, OPT_FLAG, REQ(all_replicas), NULL, NULL, NULL, NULL, "cluster",
      "with --mode load: stream every node's copy, not the fewest nodes that hold each range once" },
    { "tokens-file", 0, OPT_STR, CLI(tokens_file), "server", "tokens_file", "CASSETTE_SERVER_TOKENS_FILE", NULL,
      "server",
      "file of the API's tokens, lines \"NAME ROLE TOKEN [CLUSTER,...]\" (role viewer, operator or admin; mode 600); "
      "without it the server serves a loopback address only, every caller admin" },
    { "state", 0, OPT_STR, CLI(state_url), "server", "state", "CASSETTE_SERVER_STATE", NULL, "server",
      "where the server keeps clusters, tasks and runs: sqlite:PATH (default sqlite:<state dir>/server.db) or "
      "cassandra://HOST[:PORT]/KEYSPACE (several servers, one leader; --cql-user and the --cql-tls rows apply)" },
    { "state-rf", 0, OPT_INT, CLI(state_rf), "server", "state_rf", NULL, "1", "server",
      "replication factor of the state keyspace when the server creates it" },
    { "server-id", 0, OPT_STR, CLI(server_id), "server", "server_id", "CASSETTE_SERVER_ID", NULL, "server",
      "this server's name in the lease and in run records (default: the host name)" },
    { "workers", 0, OPT_INT, CLI(workers), "server", "workers", "CASSETTE_SERVER_WORKERS", "2", "server",
      "runs at once (one per cluster at a time; clusters in parallel)" },
    { "lease", 0, OPT_DURATION, CLI(lease), "server", "lease", NULL, "15s", "server",
      "the leader lease's time: another server takes over this long after the leader stops renewing it" },
    { "history", 0, OPT_DURATION, CLI(history), "server", "history", NULL, "30d", "server",
      "how long runs and audit entries are kept" },
    { "export-repo", 0, OPT_STR, CLI(export_repo), "server", "export_repo", "CASSETTE_SERVER_EXPORT_REPO", NULL,
      "server",
      "repository the state is exported to (server/state-<time>.json, the newest 7 kept), and imported from when "
      "the server starts with an empty store" },
    { "export-every", 0, OPT_DURATION, CLI(export_every), "server", "export_every", NULL, "1d", "server",
      "time between state exports" },
    { "allow-repo", 0, OPT_LIST, CLI(allow_repos), "agent", "allow_repos", "CASSETTE_AGENT_ALLOW_REPOS", NULL, "agent",
      "repository location requests may name, or one below it (repeat for more); without it the agent serves no "
      "request that names a repository" },
    /* client mode (cli/client.c): these commands ask cassette server instead */
    { "server", 0, OPT_STR, CLI(server_url), "cassette", "server_url", "CASSETTE_SERVER", NULL,
      "cluster backup list restore",
      "ask cassette server at this URL (http(s)://HOST:PORT) instead of running here: cluster "
      "register|list|show|remove, backup, list, restore, and the server's own task and run commands" },
    { "server-token-file", 0, OPT_STR, CLI(server_token_file), "cassette", "server_token_file",
      "CASSETTE_SERVER_TOKEN_FILE", NULL, "cluster backup list restore",
      "with --server: file holding the bearer token to send (never on the command line, never printed)" },
    { "server-ca-file", 0, OPT_STR, CLI(server_ca_file), "cassette", "server_ca_file", "CASSETTE_SERVER_CA_FILE",
      NULL, "cluster backup list restore",
      "with --server: CA certificates (PEM) that sign the server's certificate (default: the system's)" },
    { "progress", 0, OPT_STR, CLI(progress), "cassette", "progress", "CASSETTE_PROGRESS", "auto",
      "backup restore verify purge cluster load drill",
      "auto (a live line on a terminal; with -v, plain lines otherwise), tty, plain (a line as each phase ends and "
      "every 10 s), json (one event per line on stdout, the --json result last) or none" },
    { "metrics-file", 0, OPT_STR, CLI(metrics_file), NULL, NULL, NULL, NULL, "backup restore verify purge drill",
      "after the run, succeeded or failed, write its Prometheus metrics (docs/metrics.md) atomically to this file "
      "for node_exporter's textfile collector (one file per command and repository)" },
    { "json", 0, OPT_FLAG, CLI(json), NULL, NULL, NULL, NULL,
      "backup list restore verify purge status catalog migrate delete cleanup snapshot cluster load drill",
      "machine-readable output" },
    { "verbose", 'v', OPT_COUNT, CLI(verbose), NULL, NULL, NULL, NULL, "*",
      "log progress on stderr (-vv: debug detail too)" },
    { "quiet", 'q', OPT_FLAG, CLI(quiet), NULL, NULL, NULL, NULL, "*", "print only errors on stderr (no warnings)" },
    { "max-age", 0, OPT_DURATION, REQ(max_age), NULL, NULL, NULL, NULL, "status",
      "exit 6 when a node's newest complete backup is older than this, e.g. 2h (a probe for monitoring)" },
    { "version", 0, OPT_FLAG, CLI(version), NULL, NULL, NULL, NULL, "*", "print the version and git hash" },
    { "help", 'h', OPT_FLAG, CLI(help), NULL, NULL, NULL, NULL, "*", "show help" },
};
#define N_OPTIONS (sizeof options / sizeof options[0])

/* The commands come from the one table of operations (ops/optable.h). */
typedef cs_command_def cmd_def;

static const cmd_def *cmds(void)
{
    size_t n;
    return cs_commands_all(&n);
}

static size_t n_cmds(void)
{
    size_t n;
    cs_commands_all(&n);
    return n;
}

bool cs_config_is_command(const char *cmd)
{
    for (size_t i = 0; i < n_cmds(); i++)
        if (!strcmp(cmds()[i].name, cmd))
            return true;
    return false;
}

/* The key of the option in the INI file (a storage option's name without
 * its "<scheme>." or "storage." head). */
static const char *ini_key(const opt_def *o)
{
    const char *dot = o->type == OPT_STORAGE ? strchr(o->key, '.') : NULL;
    return dot ? dot + 1 : o->key;
}

/* A command of the op table's command list that runs no operation of its
 * own but serves them (agent): it runs operations for others with its own
 * machine's host settings, so it takes every host option (and no request
 * option: its requests come over HTTP). */
static bool is_front_end(const char *cmd)
{
    size_t n;
    const cs_op_def *ops = cs_ops_all(&n);
    for (size_t i = 0; cmd && i < n; i++)
        if (!strcmp(ops[i].command, cmd))
            return false;
    return cmd != NULL;
}

/* Does the space-separated list name cmd? */
static bool lists(const char *commands, const char *cmd)
{
    size_t n = strlen(cmd);
    for (const char *p = commands; (p = strstr(p, cmd)) != NULL; p += n)
        if ((p == commands || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static bool applies_to(const opt_def *o, const char *cmd)
{
    if (!strcmp(o->commands, "*") || !cmd)
        return true;
    /* A front end serves the node operations, with every host setting they
     * read; the coordinator's own (how to reach agents) are not among them. */
    if (o->scope == SCOPE_HOST && is_front_end(cmd) && strcmp(o->commands, "cluster") &&
        strcmp(o->commands, "cluster server"))
        return true;
    return lists(o->commands, cmd);
}

/* ---- setting values ---- */

/* "64M", "1G", "512K" or plain bytes (binary units). */
static int parse_size(const char *value, uint64_t *out, const opt_def *o, const char *origin, cs_err *e)
{
    if (cs_parse_size(value, out, e))
        return cs_err_set(e, CS_E_INVAL, "%s: --%s wants a size such as 64M, not \"%s\"", origin, o->flag, value);
    return 0;
}

/* Set one option from text. `replace` makes a list start over (the first
 * value a higher-precedence source gives replaces lower ones). */
static int set_value(cs_config *cfg, const opt_def *o, const char *value, bool replace_list,
                     const char *origin, cs_err *e)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
    case OPT_STR: {
        char **s = (char **)(void *)field;
        free(*s);
        *s = cs_strdup(value);
        return 0;
    }
    case OPT_INT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || !*value || *end || v < 0 || v > 1000000)
            return cs_err_set(e, CS_E_INVAL, "%s: --%s wants a whole number, not \"%s\"", origin, o->flag, value);
        *(long *)(void *)field = v;
        return 0;
    }
    case OPT_LIST: {
        cs_strlist *l = (cs_strlist *)(void *)field;
        if (replace_list)
            cs_strlist_free(l);
        cs_strlist_add_csv(l, value);
        return 0;
    }
    case OPT_FLAG:
        *(bool *)(void *)field = true;
        return 0;
    case OPT_COUNT:
        (*(int *)(void *)field)++;
        return 0;
    case OPT_SIZE:
        return parse_size(value, (uint64_t *)(void *)field, o, origin, e);
    case OPT_DURATION: {
        int rc = cs_parse_duration(value, (double *)(void *)field, e);
        return rc ? cs_err_prefix(e, "%s: --%s", origin, o->flag) : 0;
    }
    case OPT_STORAGE:
        cs_kvlist_set((cs_kvlist *)(void *)field, o->key, value);
        return 0;
    }
    return cs_err_set(e, CS_E_INVAL, "bad option table");
}

static const opt_def *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == len && !strncmp(options[i].flag, name, len))
            return &options[i];
    return NULL;
}

static const opt_def *find_short(char c)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].short_flag == c)
            return &options[i];
    return NULL;
}

bool cs_config_takes(const char *cmd, const char *flag)
{
    const opt_def *o = find_flag(flag, strlen(flag));
    return o && cmd && applies_to(o, cmd);
}

static const opt_def *find_ini(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].section && !strcmp(options[i].section, section) && !strcmp(ini_key(&options[i]), key))
            return &options[i];
    /* The server serves as the agent does: [server] listen and tls_* are
     * the agent's rows (which apply to both commands). */
    static const char *const shared[] = { "listen", "tls_cert", "tls_key", "tls_client_ca", NULL };
    for (size_t i = 0; !strcmp(section, "server") && shared[i]; i++)
        if (!strcmp(key, shared[i]))
            return find_ini("agent", key);
    return NULL;
}

/* Does the option want a value after it? (Flags and counted flags do not.) */
static bool takes_value(const opt_def *o)
{
    return o->type != OPT_FLAG && o->type != OPT_COUNT;
}

bool cs_config_flag_takes_value(const char *flag)
{
    const opt_def *o = find_flag(flag, strlen(flag));
    return o && takes_value(o);
}

/* "-vv", "-nv": short options that take no value, given together. */
static bool is_short_bundle(const char *arg)
{
    if (arg[0] != '-' || !arg[1] || arg[1] == '-' || !arg[2])
        return false;
    for (const char *p = arg + 1; *p; p++) {
        const opt_def *o = find_short(*p);
        if (!o || takes_value(o))
            return false;
    }
    return true;
}

/* ---- INI ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int cs_config_parse_ini(cs_config *cfg, const char *text, const char *origin, cs_err *e)
{
    char *copy = cs_strdup(text);
    char section[64] = "";
    int rc = 0;
    size_t lineno = 0;
    /* Lists from the file replace defaults once, then accumulate. */
    bool seen_list[N_OPTIONS] = { false };
    /* strsep, not strtok: empty lines must count for the line numbers. */
    for (char *line, *save = copy; (line = strsep(&save, "\n")) != NULL;) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0' || (size_t)(close - s - 1) >= sizeof section) {
                rc = cs_err_set(e, CS_E_INVAL, "%s:%zu: bad section header", origin, lineno);
                goto out;
            }
            memcpy(section, s + 1, (size_t)(close - s - 1));
            section[close - s - 1] = '\0';
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = cs_err_set(e, CS_E_INVAL, "%s:%zu: expected key = value", origin, lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        const opt_def *o = find_ini(section, key);
        if (!o) {
            rc = cs_err_set(e, CS_E_INVAL, "%s:%zu: unknown setting [%s] %s", origin, lineno, section, key);
            goto out;
        }
        size_t idx = (size_t)(o - options);
        rc = set_value(cfg, o, value, !seen_list[idx], origin, e);
        seen_list[idx] = true;
        if (rc)
            goto out;
    }
out:
    free(copy);
    return rc;
}

/* ---- argv ---- */

/* Find --config in argv or the environment before anything else, since the
 * file's values sit below the environment's and the flags'. The last
 * --config wins, as the last of any option does. */
static const char *find_config_path(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
    }
    const char *env = getenv("CASSETTE_CONFIG");
    return path ? path : env && *env ? env : NULL;
}

/* An option's default: a request field's comes from the op table (the
 * one place a JSON request gets it from too), the others' from this one. */
static const char *default_of(const opt_def *o)
{
    return o->scope == SCOPE_REQUEST ? cs_op_field_default(o->field) : o->def;
}

static int apply_defaults(cs_config *cfg, cs_err *e)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (default_of(&options[i])) {
            int rc = set_value(cfg, &options[i], default_of(&options[i]), true, "default", e);
            if (rc)
                return rc;
        }
    return 0;
}

/* The value of the first of the space-separated variables that is set. */
static const char *first_env(const char *names, char *which, size_t cap)
{
    const char *p = names;
    while (*p) {
        size_t n = strcspn(p, " ");
        if (n && n < cap) {
            memcpy(which, p, n);
            which[n] = '\0';
            const char *v = getenv(which);
            if (v && *v)
                return v;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return NULL;
}

static int apply_environment(cs_config *cfg, cs_err *e)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_def *o = &options[i];
        if (!o->env || !takes_value(o) || !strcmp(o->flag, "config"))
            continue;
        char which[64];
        const char *v = first_env(o->env, which, sizeof which);
        if (v) {
            int rc = set_value(cfg, o, v, true, which, e);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int apply_file(cs_config *cfg, const char *path, cs_err *e)
{
    char *text = NULL;
    int rc = cs_read_file(path, 1 << 20, &text, NULL, e);
    if (rc)
        return cs_err_prefix(e, "config file");
    free(cfg->config_file);
    cfg->config_file = cs_strdup(path);
    rc = cs_config_parse_ini(cfg, text, path, e);
    free(text);
    return rc;
}

/* A default config file that does not exist is no error; one that exists
 * but cannot be read or parsed is (settings silently missing would be worse). */
static int apply_file_if_present(cs_config *cfg, const char *path, cs_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return 0;
    return apply_file(cfg, path, e);
}

/* $XDG_CONFIG_HOME/cassette/cassette.ini, or ~/.config/cassette/cassette.ini;
 * NULL without a home. Caller frees. */
static char *user_config_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg == '/')
        return cs_sprintf("%s/cassette/cassette.ini", xdg);
    const char *home = getenv("HOME");
    return home && *home ? cs_sprintf("%s/.config/cassette/cassette.ini", home) : NULL;
}

static int apply_default_files(cs_config *cfg, cs_err *e)
{
    int rc = apply_file_if_present(cfg, CS_SYSTEM_CONFIG, e);
    char *user = rc ? NULL : user_config_path();
    if (user)
        rc = apply_file_if_present(cfg, user, e);
    free(user);
    return rc;
}

/* How many words may follow a command: a sub-command word, and the word
 * an operation of it takes (key public FILE). */
static size_t max_words(const char *command)
{
    size_t n, most = 0;
    const cs_op_def *ops = cs_ops_all(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ops[i].command, command)) {
            size_t words = (ops[i].sub ? 1u : 0u) + (ops[i].positional ? 1u : 0u);
            most = words > most ? words : most;
        }
    return most;
}

static int parse_args(int argc, char **argv, cs_config *cfg, cs_err *e)
{
    bool seen_list[N_OPTIONS] = { false };
    bool help_word = false; /* `cassette help [COMMAND]` */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const opt_def *o = NULL;
        const char *inline_value = NULL;
        if (!strncmp(arg, "--", 2) && arg[2]) {
            const char *eq = strchr(arg + 2, '=');
            size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
            o = find_flag(arg + 2, len);
            inline_value = eq ? eq + 1 : NULL;
            if (!o)
                return cs_err_set(e, CS_E_INVAL, "unknown option %.*s", (int)(len + 2), arg);
        } else if (arg[0] == '-' && arg[1] && !arg[2]) {
            o = find_short(arg[1]);
            if (!o)
                return cs_err_set(e, CS_E_INVAL, "unknown option %s", arg);
        } else if (is_short_bundle(arg)) {
            for (const char *p = arg + 1; *p; p++) {
                int rc = set_value(cfg, find_short(*p), "1", false, "command line", e);
                if (rc)
                    return rc;
            }
            continue;
        } else if (arg[0] == '-' && arg[1]) {
            return cs_err_set(e, CS_E_INVAL, "unknown option %s", arg);
        } else if (!cfg->command && !help_word && !strcmp(arg, "help")) {
            help_word = cfg->help = true;
            continue;
        } else if (!cfg->command) {
            if (!cs_config_is_command(arg))
                return cs_err_set(e, CS_E_INVAL, "unknown command \"%s\" (try cassette --help)", arg);
            cfg->command = cs_strdup(arg);
            continue;
        } else if (cfg->args.n < max_words(cfg->command)) {
            cs_strlist_add(&cfg->args, arg); /* key generate, key public FILE, migrate status, ... */
            continue;
        } else {
            return cs_err_set(e, CS_E_INVAL, "unexpected argument \"%s\"", arg);
        }
        const char *value = "1";
        if (takes_value(o)) {
            if (inline_value)
                value = inline_value;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return cs_err_set(e, CS_E_INVAL, "option --%s needs a value", o->flag);
        } else if (inline_value) {
            return cs_err_set(e, CS_E_INVAL, "option --%s takes no value", o->flag);
        }
        size_t idx = (size_t)(o - options);
        if (!cs_strlist_has(&cfg->given, o->flag))
            cs_strlist_add(&cfg->given, o->flag);
        int rc = set_value(cfg, o, value, !seen_list[idx], "command line", e);
        seen_list[idx] = true;
        if (rc)
            return rc;
    }
    return 0;
}

/* Options given on the command line that the command does not take are a
 * usage mistake (a typo such as --keyspace to list must not pass silently). */
static int check_applicable(int argc, char **argv, const cs_config *cfg, cs_err *e)
{
    if (!cfg->command)
        return 0;
    for (int i = 1; i < argc; i++) {
        const opt_def *o = NULL;
        const char *eq = NULL;
        if (!strncmp(argv[i], "--", 2)) {
            eq = strchr(argv[i] + 2, '=');
            o = find_flag(argv[i] + 2, eq ? (size_t)(eq - argv[i] - 2) : strlen(argv[i] + 2));
        } else if (argv[i][0] == '-' && argv[i][1] && !argv[i][2]) {
            o = find_short(argv[i][1]);
        } else if (is_short_bundle(argv[i])) {
            for (const char *p = argv[i] + 1; *p; p++)
                if (!applies_to(find_short(*p), cfg->command))
                    return cs_err_set(e, CS_E_INVAL, "%s does not take --%s", cfg->command, find_short(*p)->flag);
        }
        if (o && !applies_to(o, cfg->command))
            return cs_err_set(e, CS_E_INVAL, "%s does not take --%s", cfg->command, o->flag);
        if (o && takes_value(o) && !eq)
            i++;
    }
    return 0;
}

/* Usage mistakes that involve more than one option. */
static int check_combinations(const cs_config *cfg, cs_err *e)
{
    if (cfg->quiet && cfg->verbose)
        return cs_err_set(e, CS_E_INVAL, "--quiet and --verbose contradict each other");
    return 0;
}

int cs_config_load(int argc, char **argv, cs_config *cfg, cs_err *e)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = apply_defaults(cfg, e);
    const char *path = find_config_path(argc, argv);
    if (!rc && path)
        rc = apply_file(cfg, path, e);
    else if (!rc)
        rc = apply_default_files(cfg, e);
    if (!rc)
        rc = apply_environment(cfg, e);
    if (!rc)
        rc = parse_args(argc, argv, cfg, e);
    if (!rc)
        rc = check_applicable(argc, argv, cfg, e);
    if (!rc && cfg->command && !cfg->help && !is_front_end(cfg->command) && !cs_config_op(cfg)) {
        const cmd_def *c = cs_command_find(cfg->command);
        rc = cs_err_set(e, CS_E_INVAL, "usage: cassette %s %s", c->name, c->synopsis);
    }
    if (!rc && cfg->command && !cfg->help)
        rc = check_combinations(cfg, e);
    if (!rc && (cfg->cql_port < 1 || cfg->cql_port > 65535))
        rc = cs_err_set(e, CS_E_INVAL, "CQL port %ld is out of range", cfg->cql_port);
    return rc;
}

void cs_config_free(cs_config *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char *field = (char *)cfg + options[i].offset;
        if (options[i].type == OPT_STR) {
            char **s = (char **)(void *)field;
            free(*s);
            *s = NULL;
        } else if (options[i].type == OPT_LIST) {
            cs_strlist_free((cs_strlist *)(void *)field);
        } else if (options[i].type == OPT_STORAGE) {
            cs_kvlist_free((cs_kvlist *)(void *)field); /* the same list for every row: freed once */
        }
    }
    cs_strlist_free(&cfg->given);
    free(cfg->command);
    cfg->command = NULL;
    cs_strlist_free(&cfg->args);
}

/* ---- help, manual page and completion: all from the tables above ---- */

/* What each exit status means; README.md's table says the same (a test
 * compares them). */
static const struct exit_def {
    int code;
    const char *meaning;
} exit_codes[] = {
    { CS_EXIT_OK, "success" },
    { CS_EXIT_ERROR, "failure: the command could not do its job (one line on stderr says why)" },
    { CS_EXIT_USAGE, "usage: unknown command or option, bad value, missing required option" },
    { CS_EXIT_DAMAGED, "damage found: verify found missing or damaged objects, or stored data failed its check" },
    { CS_EXIT_LOCKED, "locked: a conflicting repository lock was still held after --lock-wait" },
    { CS_EXIT_NOKEY, "no key: the repository is encrypted and no --identity was given, or it does not match" },
    { CS_EXIT_STALE, "too old: status --max-age found a node whose newest complete backup is older" },
    { CS_EXIT_INTERRUPTED, "interrupted (SIGINT or SIGTERM)" },
};
#define N_EXIT_CODES (sizeof exit_codes / sizeof exit_codes[0])

static const cmd_def *find_command(const char *name)
{
    for (size_t i = 0; name && i < n_cmds(); i++)
        if (!strcmp(cmds()[i].name, name))
            return &cmds()[i];
    return NULL;
}

static size_t n_commands_of(const opt_def *o)
{
    if (!strcmp(o->commands, "*"))
        return n_cmds();
    size_t n = 0;
    for (size_t i = 0; i < n_cmds(); i++)
        n += applies_to(o, cmds()[i].name);
    return n;
}

/* Does the command's synopsis name "--flag"? */
static bool in_synopsis(const cmd_def *c, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = c->synopsis; (p = strstr(p, "--")) != NULL; p += 2)
        if (!strncmp(p + 2, flag, n) && !isalnum((unsigned char)p[2 + n]) && p[2 + n] != '-')
            return true;
    return false;
}

/* A command's own options are those of its synopsis and those only it (or
 * one other command) takes; shared ones are settings many commands read
 * (node, S3, locks); global ones apply to every command. */
enum opt_group { GROUP_OWN, GROUP_SHARED, GROUP_GLOBAL };

static enum opt_group group_of(const opt_def *o, const cmd_def *c)
{
    if (!strcmp(o->commands, "*"))
        return GROUP_GLOBAL;
    if (c && (in_synopsis(c, o->flag) || n_commands_of(o) <= 2))
        return GROUP_OWN;
    return GROUP_SHARED;
}

static void print_option(FILE *out, const opt_def *o)
{
    char left[64];
    snprintf(left, sizeof left, "%s%c%s--%s%s", o->short_flag ? "-" : "", o->short_flag ? o->short_flag : ' ',
             o->short_flag ? ", " : "  ", o->flag, takes_value(o) ? " VALUE" : "");
    fprintf(out, "  %-28s %s", left, o->help);
    if (default_of(o))
        fprintf(out, " [default: %s]", default_of(o));
    if (o->env)
        fprintf(out, " [env: %s]", o->env);
    if (o->section)
        fprintf(out, " [file: %s.%s]", o->section, ini_key(o));
    fputc('\n', out);
}

/* The options of group g, those the synopsis names first. */
static void print_group(FILE *out, const cmd_def *c, enum opt_group g, const char *title)
{
    bool any = false;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < N_OPTIONS; i++) {
            const opt_def *o = &options[i];
            if (!applies_to(o, c->name) || group_of(o, c) != g || in_synopsis(c, o->flag) != (pass == 0))
                continue;
            if (!any)
                fprintf(out, "\n%s:\n", title);
            any = true;
            print_option(out, o);
        }
}

/* The commands only client mode has (cli/client.c parses their words and
 * flags): in the usage, the manual page and the completion too. */
static const struct {
    const char *name, *subs, *synopsis, *summary;
} client_cmds[] = {
    { "task", "add list show run disable enable remove",
      "add|list|show|run|disable|enable|remove ... (with --server URL)",
      "with --server: the server's tasks: add, list, show, run, disable, enable, remove (cassette task --help)" },
    { "run", "list show cancel", "list|show|cancel ... (with --server URL)",
      "with --server: the server's runs: list, show, cancel" },
};

void cs_config_usage(FILE *out, const char *cmd)
{
    const cmd_def *c = find_command(cmd);
    if (c) {
        fprintf(out, "usage: cassette %s %s\n\n%s\n", c->name, c->synopsis, c->summary);
        char title[64];
        snprintf(title, sizeof title, "options of %s", c->name);
        print_group(out, c, GROUP_OWN, title);
        print_group(out, c, GROUP_SHARED, "options it shares with other commands");
        print_group(out, c, GROUP_GLOBAL, "global options");
        return;
    }
    fprintf(out, "usage: cassette [options] COMMAND [options]\n\n"
                 "cassette backs up and restores Apache Cassandra nodes.\n\ncommands:\n");
    for (size_t i = 0; i < n_cmds(); i++)
        fprintf(out, "  %-8s %s\n", cmds()[i].name, cmds()[i].summary);
    fprintf(out, "  %-8s %s\n", "help", "cassette help COMMAND (or COMMAND --help) shows that command's options first");
    for (size_t i = 0; i < sizeof client_cmds / sizeof client_cmds[0]; i++)
        fprintf(out, "  %-8s %s\n", client_cmds[i].name, client_cmds[i].summary);
    fprintf(out, "\noptions:\n");
    for (size_t i = 0; i < N_OPTIONS; i++)
        print_option(out, &options[i]);
    fprintf(out, "\nconfig file, when neither --config nor CASSETTE_CONFIG is given: %s, then\n"
                 "~/.config/cassette/cassette.ini ($XDG_CONFIG_HOME) over it; either may be missing.\n\nexit codes:\n",
            CS_SYSTEM_CONFIG);
    for (size_t i = 0; i < N_EXIT_CODES; i++)
        fprintf(out, "  %3d  %s\n", exit_codes[i].code, exit_codes[i].meaning);
}

/* Text for roff: backslashes and hyphens escaped, and a leading '.' or
 * '\'' kept from being read as a request. */
static void roff(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

static void man_option(FILE *out, const opt_def *o)
{
    fputs(".TP\n", out);
    if (o->short_flag)
        fprintf(out, "\\fB\\-%c\\fR, ", o->short_flag);
    fputs("\\fB\\-\\-", out);
    roff(out, o->flag);
    fputs(takes_value(o) ? "\\fR \\fIVALUE\\fR\n" : "\\fR\n", out);
    roff(out, o->help);
    fputs(".\n", out);
    if (strcmp(o->commands, "*") != 0) {
        fputs("Commands: ", out);
        roff(out, o->commands);
        fputs(".", out);
    }
    if (default_of(o)) {
        fputs(" Default: ", out);
        roff(out, default_of(o));
        fputs(".", out);
    }
    if (o->env) {
        fputs(" Environment: ", out);
        roff(out, o->env);
        fputs(".", out);
    }
    if (o->section)
        fprintf(out, " Config file: [%s] %s.", o->section, ini_key(o));
    fputc('\n', out);
}

void cs_config_man(FILE *out, const char *version)
{
    fputs(".\\\" Made by `cassette --help-man` from cassette's option table; do not edit.\n", out);
    fputs(".TH CASSETTE 1 \"\" \"cassette ", out);
    roff(out, version);
    fputs("\" \"User Commands\"\n.nh\n.ad l\n", out);
    fputs(".SH NAME\ncassette \\- back up and restore Apache Cassandra nodes\n"
          ".SH SYNOPSIS\n.B cassette\n.I COMMAND\n.RI [ options ]\n.br\n.B cassette help\n.I COMMAND\n"
          ".br\n.B cassette \\-\\-version\n"
          ".SH DESCRIPTION\n"
          "cassette takes a snapshot of a Cassandra node and stores every SSTable file once in a repository "
          "(a directory or an S3 prefix), compressed with zstd and encrypted with age when the repository has "
          "recipients; it restores backups into a running node (nodetool import) or a stopped one, verifies "
          "them, and purges what a retention policy does not keep.\n"
          ".PP\n"
          "Settings come from the command line, then the environment, then the config file, then defaults. "
          "Bad input gets one line on standard error starting with \\(lqcassette:\\(rq.\n"
          ".SH COMMANDS\n",
          out);
    for (size_t i = 0; i < n_cmds(); i++) {
        fprintf(out, ".TP\n\\fB%s\\fR ", cmds()[i].name);
        roff(out, cmds()[i].synopsis);
        fputc('\n', out);
        roff(out, cmds()[i].summary);
        fputs(".\n", out);
    }
    for (size_t i = 0; i < sizeof client_cmds / sizeof client_cmds[0]; i++) {
        fprintf(out, ".TP\n\\fB%s\\fR ", client_cmds[i].name);
        roff(out, client_cmds[i].synopsis);
        fputc('\n', out);
        roff(out, client_cmds[i].summary);
        fputs(".\n", out);
    }
    fputs(".TP\n\\fBhelp\\fR \\fICOMMAND\\fR\nThe options of one command, its own first (also \\fICOMMAND\\fR "
          "\\fB\\-\\-help\\fR).\n.SH OPTIONS\n",
          out);
    for (size_t i = 0; i < N_OPTIONS; i++)
        man_option(out, &options[i]);
    fputs(".SH FILES\n.TP\n", out);
    roff(out, CS_SYSTEM_CONFIG);
    fputs("\nThe system's config file, read when neither \\fB\\-\\-config\\fR nor \\fBCASSETTE_CONFIG\\fR is "
          "given (INI: [repository], [cassandra], [cassette], [retention], [s3]).\n"
          ".TP\n~/.config/cassette/cassette.ini\nThe user's config file (under \\fB$XDG_CONFIG_HOME\\fR when set), "
          "read after the system's: its settings win.\n.SH EXIT STATUS\n",
          out);
    for (size_t i = 0; i < N_EXIT_CODES; i++) {
        fprintf(out, ".TP\n.B %d\n", exit_codes[i].code);
        roff(out, exit_codes[i].meaning);
        fputc('\n', out);
    }
    fputs(".SH SEE ALSO\n.BR age (1),\n.BR nodetool (1)\n", out);
}

/* The words of a synopsis that are sub-commands: bare lower-case words
 * ("generate", "[status]", "snapshot-cleanup") that are not the value of
 * an option. */
static void print_sub_words(FILE *out, const cmd_def *c)
{
    const char *p = c->synopsis;
    bool after_option = false, first = true;
    while (*p) {
        size_t n = strcspn(p, " ");
        const char *w = p;
        size_t wn = n;
        if (wn && *w == '[') {
            w++;
            wn--;
        }
        while (wn && w[wn - 1] == ']')
            wn--;
        bool word = wn > 0;
        for (size_t i = 0; i < wn; i++) /* "snapshot-cleanup": a hyphen inside */
            word = word && (islower((unsigned char)w[i]) || (i > 0 && w[i] == '-'));
        if (word && !after_option) {
            fprintf(out, "%s%.*s", first ? "" : " ", (int)wn, w);
            first = false;
        }
        after_option = wn && *w == '-';
        p += n;
        while (*p == ' ')
            p++;
    }
}

static void print_flags(FILE *out, const char *cmd, bool value_only, const char *sep)
{
    bool first = true;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_def *o = &options[i];
        if ((cmd && !applies_to(o, cmd)) || (!cmd && strcmp(o->commands, "*") != 0 && !value_only) ||
            (value_only && !takes_value(o)))
            continue;
        fprintf(out, "%s--%s", first ? "" : sep, o->flag);
        if (o->short_flag)
            fprintf(out, "%s-%c", sep, o->short_flag);
        first = false;
    }
}

void cs_config_completion_bash(FILE *out)
{
    fputs("# bash completion for cassette, made by `cassette completion bash` from its option table.\n"
          "_cassette()\n{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= sub= w i opts= words=\n"
          "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "        w=${COMP_WORDS[i]}\n"
          "        case $w in\n            ",
          out);
    print_flags(out, NULL, true, "|");
    fputs(") ((i++)); continue ;;\n"
          "            -*) continue ;;\n"
          "        esac\n"
          "        if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then sub=$w; fi\n"
          "    done\n"
          "    case $prev in\n        ",
          out);
    print_flags(out, NULL, true, "|");
    fputs(") return 0 ;; # a value: file names (complete -o default)\n"
          "    esac\n"
          "    case $cmd in\n"
          "        '') opts='",
          out);
    print_flags(out, NULL, false, " ");
    fputs("'; words='", out);
    for (size_t i = 0; i < n_cmds(); i++)
        fprintf(out, "%s ", cmds()[i].name);
    for (size_t i = 0; i < sizeof client_cmds / sizeof client_cmds[0]; i++)
        fprintf(out, "%s ", client_cmds[i].name);
    fputs("help' ;;\n        help) words='", out);
    for (size_t i = 0; i < n_cmds(); i++)
        fprintf(out, "%s%s", i ? " " : "", cmds()[i].name);
    fputs("' ;;\n", out);
    for (size_t i = 0; i < n_cmds(); i++) {
        fprintf(out, "        %s) opts='", cmds()[i].name);
        print_flags(out, cmds()[i].name, false, " ");
        fputs("'; words='", out);
        print_sub_words(out, &cmds()[i]);
        fputs("' ;;\n", out);
    }
    for (size_t i = 0; i < sizeof client_cmds / sizeof client_cmds[0]; i++)
        fprintf(out, "        %s) opts='--server --server-token-file --server-ca-file --json'; words='%s' ;;\n",
                client_cmds[i].name, client_cmds[i].subs);
    fputs("    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    elif [[ -n $words && -z $sub ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o default -F _cassette cassette\n",
          out);
}

/* ---- from the config to an operation: its request, the host ---- */

const cs_op_def *cs_config_op(const cs_config *cfg)
{
    if (!cfg->command)
        return NULL;
    const char *sub = cs_command_has_subs(cfg->command) && cfg->args.n ? cfg->args.items[0] : NULL;
    const cs_op_def *op = cs_op_find_command(cfg->command, sub);
    size_t words = op ? (op->sub ? 1u : 0u) + (op->positional ? 1u : 0u) : 0;
    return op && cfg->args.n == words ? op : NULL;
}

static const opt_def *option_of_field(const char *field, enum opt_scope scope)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].scope == scope && !strcmp(options[i].field, field))
            return &options[i];
    return NULL;
}

/* Copy the option's value in cfg to the field f of dst (a request or the
 * host): the same type, or text the field parses (--sample). */
static int copy_value(const cs_config *cfg, const opt_def *o, const cs_field *f, void *dst, cs_err *e)
{
    const char *src = (const char *)cfg + o->offset;
    switch (o->type) {
    case OPT_STR: {
        const char *s = *(char *const *)(const void *)src;
        return s ? cs_field_set_text(f, dst, s, e) : 0;
    }
    case OPT_INT:
        if (f->type != CS_F_INT)
            break;
        *CS_FIELD_PTR(long, dst, f) = *(const long *)(const void *)src;
        return 0;
    case OPT_LIST: {
        if (f->type != CS_F_STRLIST)
            break;
        const cs_strlist *l = (const cs_strlist *)(const void *)src;
        for (size_t i = 0; i < l->n; i++)
            cs_strlist_add(CS_FIELD_PTR(cs_strlist, dst, f), l->items[i]);
        return 0;
    }
    case OPT_FLAG:
        if (f->type != CS_F_BOOL)
            break;
        *CS_FIELD_PTR(bool, dst, f) = *(const bool *)(const void *)src;
        return 0;
    case OPT_SIZE:
        if (f->type != CS_F_SIZE)
            break;
        *CS_FIELD_PTR(uint64_t, dst, f) = *(const uint64_t *)(const void *)src;
        return 0;
    case OPT_DURATION:
        if (f->type != CS_F_DURATION)
            break;
        *CS_FIELD_PTR(double, dst, f) = *(const double *)(const void *)src;
        return 0;
    case OPT_STORAGE: {
        if (f->type != CS_F_SETTINGS)
            break;
        const cs_kvlist *l = (const cs_kvlist *)(const void *)src;
        for (size_t i = 0; i < l->n; i++)
            cs_kvlist_set(CS_FIELD_PTR(cs_kvlist, dst, f), l->items[i].name, l->items[i].value);
        return 0;
    }
    case OPT_COUNT:
        break;
    }
    return cs_err_set(e, CS_E_INVAL, "option --%s does not fit field %s (a bug)", o->flag, f->name);
}

/* A request-level flag given on the command line that the operation has no
 * field for would be dropped silently (snapshot --older-than, which only
 * snapshot clear reads): a usage mistake, like a flag of another command. */
static int check_used(const cs_config *cfg, const cs_op_def *op, cs_err *e)
{
    for (size_t i = 0; i < cfg->given.n; i++) {
        const opt_def *o = find_flag(cfg->given.items[i], strlen(cfg->given.items[i]));
        if (!o || o->scope != SCOPE_REQUEST)
            continue;
        bool used = false;
        for (size_t k = 0; k < op->n_fields && !used; k++)
            used = !strcmp(op->fields[k].name, o->field);
        if (!used)
            return cs_err_set(e, CS_E_USAGE, "%s%s%s does not take --%s", op->command, op->sub ? " " : "",
                              op->sub ? op->sub : "", o->flag);
    }
    return 0;
}

int cs_config_request(const cs_config *cfg, const cs_op_def *op, void *req, cs_err *e)
{
    for (size_t i = 0; i < op->n_fields; i++) {
        const cs_field *f = &op->fields[i];
        if (op->positional && !strcmp(f->name, op->positional)) {
            int rc = cs_field_set_text(f, req, cfg->args.items[cfg->args.n - 1], e);
            if (rc)
                return rc;
            continue;
        }
        const opt_def *o = option_of_field(f->name, SCOPE_REQUEST);
        if (!o)
            return cs_err_set(e, CS_E_INVAL, "no option sets %s of %s (a bug)", f->name, op->name);
        int rc = copy_value(cfg, o, f, req, e);
        if (rc)
            return rc;
    }
    return check_used(cfg, op, e);
}

int cs_config_host(const cs_config *cfg, cs_host *host, cs_err *e)
{
    size_t n;
    const cs_field *fields = cs_host_fields(&n);
    memset(host, 0, sizeof *host);
    for (size_t i = 0; i < n; i++) {
        const opt_def *o = option_of_field(fields[i].name, SCOPE_HOST);
        int rc = o ? copy_value(cfg, o, &fields[i], host, e)
                   : cs_err_set(e, CS_E_INVAL, "no option sets the host's %s (a bug)", fields[i].name);
        if (rc) {
            cs_host_free(host);
            return rc;
        }
    }
    return 0;
}

/* Where a message has always named the environment variable too. */
static const struct {
    const char *field, *text;
} mentions[] = {
    { "identity", "--identity (or CASSETTE_IDENTITY)" },
};

const char *cs_config_namer(const char *field, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof mentions / sizeof mentions[0]; i++)
        if (!strcmp(mentions[i].field, field))
            return mentions[i].text;
    static _Thread_local char flag[64];
    const opt_def *o = option_of_field(field, SCOPE_REQUEST);
    if (!o)
        o = option_of_field(field, SCOPE_HOST);
    for (size_t i = 0; !o && i < N_OPTIONS; i++) /* a storage driver's option: {s3.part_size} */
        if (options[i].type == OPT_STORAGE && !strcmp(options[i].key, field))
            o = &options[i];
    if (!o)
        return NULL;
    snprintf(flag, sizeof flag, "--%s", o->flag);
    return flag;
}

bool cs_config_check_tables(char *why, size_t cap)
{
    size_t n_ops, n_host;
    const cs_op_def *ops = cs_ops_all(&n_ops);
    const cs_field *host = cs_host_fields(&n_host);
    why[0] = '\0';
    /* Every field is set by an option (or the word after a sub-command) of its scope and type. */
    for (size_t i = 0; i < n_ops && !why[0]; i++)
        for (size_t j = 0; j < ops[i].n_fields && !why[0]; j++) {
            const cs_field *f = &ops[i].fields[j];
            const char *def = cs_op_field_default(f->name);
            if ((def || f->def) && (!def || !f->def || strcmp(def, f->def)))
                snprintf(why, cap, "field %s of %s has another default than elsewhere", f->name, ops[i].name);
            else if (!(ops[i].positional && !strcmp(ops[i].positional, f->name)) &&
                     !option_of_field(f->name, SCOPE_REQUEST))
                snprintf(why, cap, "no option sets field %s of %s", f->name, ops[i].name);
        }
    for (size_t j = 0; j < n_host && !why[0]; j++)
        if (!option_of_field(host[j].name, SCOPE_HOST))
            snprintf(why, cap, "no option sets the host's %s", host[j].name);
    /* Every request or host option reaches a field: of an operation of each
     * command it applies to, or of the host. */
    for (size_t i = 0; i < N_OPTIONS && !why[0]; i++) {
        const opt_def *o = &options[i];
        if (o->scope == SCOPE_HOST && !cs_fields_find(host, n_host, o->field))
            snprintf(why, cap, "--%s is host-local but the host has no field %s", o->flag, o->field);
        if (o->scope != SCOPE_REQUEST)
            continue;
        for (size_t c = 0; c < n_cmds() && !why[0]; c++) {
            if (!applies_to(o, cmds()[c].name))
                continue;
            bool found = false;
            for (size_t k = 0; k < n_ops && !found; k++)
                found = !strcmp(ops[k].command, cmds()[c].name) &&
                        cs_fields_find(ops[k].fields, ops[k].n_fields, o->field);
            if (!found)
                snprintf(why, cap, "--%s applies to %s, whose request has no field %s", o->flag, cmds()[c].name,
                         o->field);
        }
    }
    return !why[0];
}

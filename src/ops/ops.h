/* ops.h - cassette's use cases, one plain function each.
 *
 * Owns: every operation as a function of (job, host, request) -> result:
 * the job (common/job.h) to cancel and follow it, the host (ops/host.h)
 * for what never travels, the request for what was asked. The requests'
 * fields, defaults and checks, and the one table of operations that every
 * front end goes through, are in ops/optable.h; the results as JSON
 * documents in ops/results.h. The ops never print (except progress and
 * warnings through the logger); a message names a request or host field as
 * {name} (common/err.h), never a flag.
 * Must not: parse argv, read the CLI's configuration, or format output for
 * the user. */
#ifndef CS_OPS_H
#define CS_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "cassandra/node.h"
#include "cassandra/yaml.h"
#include "common/buf.h"
#include "common/job.h"
#include "common/err.h"
#include "repo/catalog.h"
#include "repo/lock.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "ops/host.h"
#include "repo/retention.h"

/* ---- requests: what each operation is asked ----
 * Their fields (JSON names, types, defaults, checks) are in ops/optable.c;
 * a request reaches an op checked (cs_op_run). */

typedef struct cs_init_req {
    char *repo;             /* repository location: a directory, s3://BUCKET/PREFIX */
    cs_strlist recipients;  /* age1... public keys the new repository encrypts to */
    bool no_encryption;     /* a new repository without recipients, on purpose */
} cs_init_req;

typedef struct cs_backup_req {
    char *repo;
    char *name;             /* NULL: the UTC time, 20261122-013000 */
    cs_strlist keyspaces;   /* empty: all */
    long zstd_level;
    long jobs;              /* files stored at once */
    bool init;              /* create the repository if the location holds none */
    cs_strlist recipients;  /* with init */
    bool no_encryption;     /* with init */
    double lock_wait, lock_stale; /* seconds */
    char *set;              /* join this backup set (its id; the name must be the set's) */
    char *snapshot;         /* back up this existing snapshot (a tag) instead of taking one; NULL: take one */
} cs_backup_req;

/* snapshot and snapshot clear (clear: the tag, or older_than and prefix). */
typedef struct cs_snapshot_req {
    char *tag;              /* backup-name syntax; clear: NULL with older_than */
    cs_strlist keyspaces;   /* snapshot: empty: all */
    double older_than;      /* clear: every snapshot older than this (s); 0: not given */
    char *prefix;           /* clear with older_than: only tags that start so ("cassette-"; "": all) */
} cs_snapshot_req;

/* list and catalog rebuild. */
typedef struct cs_list_req {
    char *repo;
} cs_list_req;

typedef struct cs_status_req {
    char *repo;
    double max_age;         /* seconds; 0: no verdict on the newest backups */
} cs_status_req;

typedef struct cs_restore_req {
    char *repo;
    char *backup;
    cs_strlist keyspaces;
    cs_strlist tables;      /* "ks.table" */
    char *mode;             /* "import" or "replace" */
    char *source_host;      /* whose backup to restore (a host id); NULL: see restore.c */
    bool fail_fast;         /* stop at the first table that cannot be restored */
    long jobs;
    double lock_wait, lock_stale;
    /* "SRC=DST": the tables of keyspace SRC go into keyspace DST instead, as
     * new tables made from the backup's schema (import mode only; see
     * restore.c). Without keyspaces or tables, only the mapped keyspaces. */
    cs_strlist keyspace_map;
} cs_restore_req;

/* load: one source host's files of a backup, streamed into a (possibly
 * different) cluster by Cassandra's bulk loader. */
typedef struct cs_load_req {
    char *repo;
    char *backup;
    char *source_host;      /* whose files (a host id); NULL: the backup's only host */
    cs_strlist keyspaces;
    cs_strlist tables;      /* "ks.table" */
    cs_strlist targets;     /* CQL addresses of the target cluster's nodes; empty: the host's cql_host */
    long jobs;              /* files downloaded at once */
    double lock_wait, lock_stale;
} cs_load_req;

typedef struct cs_verify_req {
    char *repo;
    char *backup;           /* NULL: every backup */
    bool deep;
    double sample;          /* percentage of the stored bytes (deep); NAN: not given, all */
    long jobs;
    double lock_wait, lock_stale;
} cs_verify_req;

typedef struct cs_purge_req {
    char *repo;
    long keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly; /* 0: rule not set */
    double keep_within;     /* 0: rule not set */
    double grace;
    bool dry_run;
    double lock_wait, lock_stale;
} cs_purge_req;

typedef struct cs_delete_req {
    char *repo;
    char *backup;
    bool dry_run;
    bool force;             /* also the newest complete backup of a node */
    double grace;           /* purge's, for the message */
    double lock_wait, lock_stale;
} cs_delete_req;

typedef struct cs_cleanup_req {
    bool aside;
    bool dry_run;
} cs_cleanup_req;

/* migrate and migrate status. */
typedef struct cs_migrate_req {
    char *dir;              /* of <timestamp>_<name>.cql files */
    cs_strlist keyspaces;   /* exactly one: the keyspace of the statements and the tracking table */
    bool dry_run;
    bool force_checksum;
    char *cql_consistency;
    double lock_wait;
} cs_migrate_req;

typedef struct cs_schema_req {
    cs_strlist keyspaces;   /* empty: all */
} cs_schema_req;

typedef struct cs_key_generate_req {
    char *output;           /* write the identity here (0600, never over a file); NULL: into the result */
} cs_key_generate_req;

typedef struct cs_key_public_req {
    char *file;             /* an identity file */
} cs_key_public_req;

/* ---- results, and the operations ---- */

typedef struct cs_backup_result {
    cs_manifest manifest;  /* what was written; files with is_new were stored now */
    uint64_t bytes_read;   /* bytes read from the node's disk */
    double seconds;
    bool encrypted;        /* the repository encrypts what it stores */
    uint64_t bytes_resumed; /* stored bytes an interrupted backup had sent: not sent again */
} cs_backup_result;

int cs_op_backup(cs_job *job, const cs_host *host, const cs_backup_req *req, cs_backup_result *res, cs_err *e);
void cs_backup_result_free(cs_backup_result *res);

/* A snapshot taken or cleared. */
typedef struct cs_snapshot_result {
    char *tag;
    char *host_id, *address;
    double started, finished; /* snapshot: epoch seconds (ms) around nodetool snapshot */
    bool cleared;             /* snapshot clear: the tag was there */
    cs_strlist cleared_tags;  /* snapshot clear with older_than: the tags cleared */
    cs_strlist kept_tags;     /* ... and those with the prefix that are younger */
} cs_snapshot_result;

/* nodetool snapshot -t TAG [KS...] on the node (it flushes first); a tag
 * the node has already is refused. */
int cs_op_snapshot(cs_job *job, const cs_host *host, const cs_snapshot_req *req, cs_snapshot_result *res,
                   cs_err *e);
/* Clear snapshot TAG the way backup clears its own (ops/snapshot.h); on a
 * stopped node, from the directories the node facts cache names. A tag
 * that is not there is no error (cleared false). With older_than instead
 * of a tag: every snapshot whose tag starts with prefix and that was taken
 * longer ago than older_than (cs_snapshot_find_old), each cleared so. */
int cs_op_snapshot_clear(cs_job *job, const cs_host *host, const cs_snapshot_req *req, cs_snapshot_result *res,
                         cs_err *e);
void cs_snapshot_result_free(cs_snapshot_result *res);

/* A table a restore left out, and why. */
typedef struct cs_restore_failure {
    char *table;   /* "ks.table" */
    char *reason;
} cs_restore_failure;

typedef struct cs_restore_result {
    char *mode;
    size_t tables;          /* tables restored */
    uint64_t files;
    uint64_t bytes;
    double seconds;
    cs_strlist moved_aside; /* directories moved aside (replace mode) */
    cs_strlist data_dirs;        /* where the files went: the node's own directories */
    cs_strlist backup_data_dirs; /* where the backed-up node kept them: information only */
    cs_restore_failure *failed;  /* tables not restored while the others were */
    size_t n_failed;
    int failed_code;             /* the CS_E_* of the first of them */
    cs_strlist restored;         /* "ks.table" of each table restored, in manifest order */
    cs_strlist restored_into;    /* ... and the "ks.table" it went into (another with keyspace_map) */
    cs_strlist not_created;      /* indexes and views of mapped keyspaces, not made in the target */
} cs_restore_result;

/* Returns 0 when the restore ran, even if some tables could not be restored
 * (damaged or missing objects): those are in res->failed, and the caller
 * reports them as a failure (cs_op_restore_verdict). With req->fail_fast
 * the first one is the
 * error instead. */
int cs_op_restore(cs_job *job, const cs_host *host, const cs_restore_req *req, cs_restore_result *res, cs_err *e);
/* The error of a restore that left tables out, or 0. */
int cs_op_restore_verdict(const cs_restore_req *req, const cs_restore_result *res, cs_err *e);
void cs_restore_result_free(cs_restore_result *res);

/* Is map (keyspace_map) good: each entry "SRC=DST" of two plain CQL names,
 * DST of at most 48 characters, not one of Cassandra's own keyspaces nor
 * SRC, each SRC and each DST once? 0 or CS_E_USAGE naming the entry. */
int cs_restore_check_map(const cs_strlist *map, cs_err *e);
/* The DST of keyspace ks in map ("SRC=DST" entries), or NULL. */
const char *cs_restore_map_lookup(const cs_strlist *map, const char *ks);
/* The backup's CREATE KEYSPACE/TYPE/TABLE statement cql of a row of that
 * type ("keyspace", "type", "table"), made for keyspace dst instead: the
 * name after "CREATE <kind> [IF NOT EXISTS] " (the keyspace, or the
 * keyspace before ".name") is replaced, quoted when it needs to be; NULL
 * when the statement does not have that shape. New string. */
char *cs_restore_rename_keyspace(const char *cql, const char *type, const char *dst);

/* drill: restore tables of a backup into scratch keyspaces on this node,
 * compare them with the live tables (ops/drill.h), drop them. */
typedef struct cs_drill_req {
    char *repo;
    char *backup;           /* NULL: the newest complete backup of this node */
    cs_strlist keyspaces;   /* empty: all (never system keyspaces) */
    cs_strlist tables;      /* "ks.table" */
    long sample_tables;     /* 0: every selected table; else that many, picked at random */
    long sample_rows;       /* rows compared by content per table */
    bool keep;              /* leave the scratch keyspaces */
    long jobs;
    double lock_wait, lock_stale;
} cs_drill_req;

typedef struct cs_drill_result {
    char *backup;
    char drill_id[9];
    json_t *tables;         /* per table: a report of ops/drill.h, or {"table", "restored": false, "reason"} */
    double rto_seconds;     /* the restore's start to its last table imported */
    double seconds;
    cs_strlist scratch_keyspaces;
    bool kept;
    int restore_code;       /* CS_E_* of the first table not restored, or 0 */
} cs_drill_result;

int cs_op_drill(cs_job *job, const cs_host *host, const cs_drill_req *req, cs_drill_result *res, cs_err *e);
/* A table not restored, or lost or mismatched rows: the first, as the error. */
int cs_op_drill_verdict(const cs_drill_req *req, const cs_drill_result *res, cs_err *e);
void cs_drill_result_free(cs_drill_result *res);

/* One table of a load: loaded, or why not. */
typedef struct cs_load_table {
    char *table;            /* "ks.table" */
    uint64_t files, bytes;  /* downloaded and handed to the loader */
    double seconds;         /* download and load */
    bool loaded;
    char *reason;           /* why not (NULL when loaded) */
} cs_load_table;

typedef struct cs_load_result {
    char *source_host;
    cs_strlist targets;
    size_t tables;          /* tables loaded */
    uint64_t files, bytes;
    double seconds;
    cs_load_table *per_table; /* every table tried, in manifest order */
    size_t n_tables;
    int failed_code;        /* the CS_E_* of the first table not loaded */
} cs_load_result;

/* Download and check the source host's files of each table (as restore
 * does) into <staging>/<keyspace>/<table>/, hand that directory to the
 * loader ({sstableloader} -d TARGETS ...), remove it: one table on disk at
 * a time. System keyspaces are never loaded; the target cluster must have
 * the tables (one error naming a missing one, before anything is
 * downloaded). A table whose objects are damaged, or which the loader
 * refuses, is named in res and the others go on (cs_op_load_verdict). */
int cs_op_load(cs_job *job, const cs_host *host, const cs_load_req *req, cs_load_result *res, cs_err *e);
int cs_op_load_verdict(const cs_load_req *req, const cs_load_result *res, cs_err *e);
void cs_load_result_free(cs_load_result *res);

/* One broken file found by verify, or a damaged backup (file and object
 * NULL). */
typedef struct cs_verify_problem {
    char *backup;
    char *file;    /* "ks.table/nb-1-big-Data.db" */
    char *object;
    char *reason;
} cs_verify_problem;

typedef struct cs_verify_result {
    bool deep;
    double sample_pct;  /* 0: every object */
    size_t backups;
    uint64_t files;
    uint64_t objects;   /* distinct objects read */
    uint64_t bytes;     /* plaintext bytes checked (fast, without an identity: 0) */
    uint64_t stored_bytes; /* fast: bytes of the objects as stored */
    size_t damaged_backups; /* backups reported damaged as a whole */
    cs_verify_problem *problems;
    size_t n_problems;
    cs_backup_entry *sets;  /* each backup set verified, once: name, started and set state */
    size_t n_sets;
} cs_verify_result;

/* Returns 0 when verification ran (problems are in the result), an error
 * when it could not run at all. */
int cs_op_verify(cs_job *job, const cs_host *host, const cs_verify_req *req, cs_verify_result *res, cs_err *e);
/* CS_E_CORRUPT when verification found damage, or 0. */
int cs_op_verify_verdict(const cs_verify_req *req, const cs_verify_result *res, cs_err *e);
void cs_verify_result_free(cs_verify_result *res);

/* Every backup, from the catalog brought in line with the repository. */
typedef struct cs_list_result {
    cs_backup_entry *entries; /* oldest first */
    size_t n;
} cs_list_result;

int cs_op_list(cs_job *job, const cs_host *host, const cs_list_req *req, cs_list_result *res, cs_err *e);
void cs_list_result_free(cs_list_result *res);
/* Forget the catalog and read it again from the repository alone. */
int cs_op_catalog_rebuild(cs_job *job, const cs_host *host, const cs_list_req *req, cs_list_result *res, cs_err *e);

/* What purge decided for one backup of one node. */
typedef struct cs_purge_item {
    cs_backup_entry entry;
    bool remove;
    char reason[96];
} cs_purge_item;

typedef struct cs_purge_result {
    bool dry_run;
    cs_purge_item *items;      /* every backup, oldest first */
    size_t n_items;
    size_t removed;            /* complete backups removed by retention */
    size_t removed_incomplete; /* stale incomplete backups removed */
    size_t removed_sets;       /* backup sets removed whole (their node backups are counted above) */
    uint64_t objects;          /* objects deleted (or that would be) */
    uint64_t bytes;            /* their stored bytes */
    uint64_t waiting;          /* unreferenced objects kept for now: younger than --grace (or an incomplete backup) */
    uint64_t waiting_bytes;
    double seconds;
    size_t damaged;            /* damaged backups, kept and reported */
    size_t leftovers;          /* files of removed backups deleted (or that would be) */
    char *sweep_skipped;       /* why no object was deleted (a damaged backup), or NULL */
} cs_purge_result;

int cs_op_purge(cs_job *job, const cs_host *host, const cs_purge_req *req, cs_purge_result *res, cs_err *e);
void cs_purge_result_free(cs_purge_result *res);

/* One backup of one node that delete removes (or would). */
typedef struct cs_delete_item {
    cs_backup_entry entry;
    uint64_t objects;          /* objects only it references (when known) */
    uint64_t stored;           /* their stored bytes */
} cs_delete_item;

typedef struct cs_delete_result {
    bool dry_run;
    bool forced;               /* --force was needed (a newest backup) */
    bool set;                  /* the backup is a set's: its set files went too */
    bool freed_known;          /* objects/stored are known (indexes or an identity) */
    double grace;              /* purge's grace period, for the message */
    cs_delete_item *items;     /* every node of the backup */
    size_t n_items;
} cs_delete_result;

/* delete --backup NAME [--dry-run] [--force] (see delete.c). */
int cs_op_delete(cs_job *job, const cs_host *host, const cs_delete_req *req, cs_delete_result *res, cs_err *e);
void cs_delete_result_free(cs_delete_result *res);

/* The repository at a glance. */
typedef struct cs_status_node {
    char *host_id, *address;
    size_t complete, incomplete, damaged;
    const cs_backup_entry *newest; /* newest complete backup, or NULL; points into entries */
    const cs_backup_entry *oldest; /* oldest complete backup, or NULL */
} cs_status_node;

typedef struct cs_status_result {
    char *location, *id;
    bool encrypted;
    cs_backup_entry *entries;
    size_t n_entries;
    cs_status_node *nodes;
    size_t n_nodes;
    uint64_t stored_new;        /* bytes the remaining backups added (known ones) */
    cs_strlist locks;           /* one line per lock held */
    struct cs_aside_entry *aside; /* left in the node's directories by restores (its config names them) */
    size_t n_aside;
} cs_status_result;

int cs_op_status(cs_job *job, const cs_host *host, const cs_status_req *req, cs_status_result *res, cs_err *e);
void cs_status_result_free(cs_status_result *res);
/* With req->max_age: CS_E_STALE when a node's newest complete backup
 * started longer ago (or there is none), else 0. */
int cs_op_status_verdict(const cs_status_req *req, const cs_status_result *res, cs_err *e);

typedef struct cs_init_result {
    char *location;
    char *id;
} cs_init_result;

int cs_op_init(cs_job *job, const cs_host *host, const cs_init_req *req, cs_init_result *res, cs_err *e);
void cs_init_result_free(cs_init_result *res);

/* Something restores left in the node's directories: the node's previous
 * files moved aside by a replace restore, or the copies an interrupted
 * restore downloaded. */
typedef struct cs_aside_entry {
    char *path;
    bool staging;       /* copies left by an interrupted restore */
    bool in_use;        /* its restore still runs: left alone */
    uint64_t bytes;     /* of the regular files in it */
    uint64_t files;
    double age_s;       /* since it was made */
} cs_aside_entry;

void cs_aside_entries_free(cs_aside_entry *a, size_t n);

/* Where the node keeps its files: the host's data_dirs and friends, then
 * its cassandra_yaml, then what the running node reported (node, or NULL).
 * Never a manifest's directories. */
struct cs_node_info;
int cs_ops_node_dirs(const cs_host *host, const struct cs_node_info *node, cs_node_dirs *out, cs_err *e);

/* Everything restores left in the node's directories as the host names
 * them (none when it names none). */
int cs_ops_list_aside(const cs_host *host, cs_aside_entry **out, size_t *n, cs_err *e);

typedef struct cs_cleanup_result {
    bool dry_run;
    cs_aside_entry *removed;  /* removed (or, dry run, that would be) */
    size_t n_removed;
    cs_aside_entry *kept;     /* in use by a running restore */
    size_t n_kept;
    uint64_t bytes;
} cs_cleanup_result;

/* cleanup --aside [--dry-run]. */
int cs_op_cleanup(cs_job *job, const cs_host *host, const cs_cleanup_req *req, cs_cleanup_result *res, cs_err *e);
void cs_cleanup_result_free(cs_cleanup_result *res);

/* A new age identity: its public key, and the identity file text (written
 * to req->output with mode 0600 when set, never over an existing file;
 * identity_text is wiped and empty then). The text never goes into the
 * result's JSON document. */
typedef struct cs_key_result {
    cs_buf public_key;
    cs_buf identity_text;   /* secret: wiped by cs_key_result_free */
    char *file;             /* where it was written, or NULL */
} cs_key_result;

int cs_op_key_generate(cs_job *job, const cs_host *host, const cs_key_generate_req *req, cs_key_result *res,
                       cs_err *e);
void cs_key_result_free(cs_key_result *res);

/* The public keys of every identity in an identity file. */
typedef struct cs_key_public_result {
    cs_strlist keys;
} cs_key_public_result;

int cs_op_key_public(cs_job *job, const cs_host *host, const cs_key_public_req *req, cs_key_public_result *res,
                     cs_err *e);
void cs_key_public_result_free(cs_key_public_result *res);

/* The catalog of repo (the host's catalog or the default path). */
int cs_ops_open_catalog(const cs_host *host, cs_repo *repo, cs_catalog **out, cs_err *e);
/* Take a lock on repo, waiting up to wait seconds, breaking locks not
 * refreshed for stale seconds; clear_own: a backup clears what killed
 * processes of this host left (see lock.h). */
typedef struct cs_ops_lock_opts {
    double wait, stale;
    bool clear_own;
} cs_ops_lock_opts;
int cs_ops_lock(const cs_ops_lock_opts *o, cs_repo *repo, cs_lock_kind kind, const char *purpose, cs_lock **out,
                cs_err *e);

/* One migration file and what the tracking table says of it. */
typedef struct cs_migration {
    char *version;          /* "20251224122758" */
    char *name;             /* "instance_configuration" */
    char *file;             /* "20251224122758_instance_configuration.cql" */
    char *path;
    char checksum[65];      /* BLAKE2b-256 of the file, hex */
    struct cql_statement *stmts;
    size_t n_stmts;
    bool applied;           /* recorded in the tracking table */
    bool applied_now;       /* by this run */
    bool changed;           /* applied, and the file differs from what was applied */
    int64_t applied_at_ms;
    long duration_ms;
} cs_migration;

typedef struct cs_migrate_result {
    bool dry_run, status_only;
    cs_migration *items;    /* in version order */
    size_t n;
    size_t applied_now;
    cs_strlist unknown;     /* versions in the tracking table without a file */
} cs_migrate_result;

/* migrate and migrate --dry-run; migrate status only reads. */
int cs_op_migrate(cs_job *job, const cs_host *host, const cs_migrate_req *req, cs_migrate_result *res, cs_err *e);
int cs_op_migrate_status(cs_job *job, const cs_host *host, const cs_migrate_req *req, cs_migrate_result *res,
                         cs_err *e);
void cs_migrate_result_free(cs_migrate_result *res);

/* The schema as DESCRIBE SCHEMA gives it (only req->keyspaces if any),
 * statements separated by blank lines, each ending with ';'. */
typedef struct cs_schema_result {
    cs_buf text;
} cs_schema_result;

int cs_op_schema_dump(cs_job *job, const cs_host *host, const cs_schema_req *req, cs_schema_result *res, cs_err *e);
void cs_schema_result_free(cs_schema_result *res);

/* Open the storage at location with the host's storage options (the
 * driver's by the location's scheme), with the messages of the repository
 * commands: a missing location "is not a cassette repository (it does not
 * exist)". */
int cs_ops_open_storage(const cs_host *host, const char *location, bool create, cs_storage **out, cs_err *e);

/* Shared by the ops: open the repository at location (creating it, with
 * recipients, when create is set and it is missing or empty) and load the
 * host's identity file if it names one. */
int cs_ops_open_repo(const cs_host *host, const char *location, const cs_strlist *recipients, bool create,
                     cs_repo **out, cs_err *e);

/* Backup sets (repo/set.h) as the ops see them: every entry of a set's
 * name gets the set's state in entry->set (grace: how long an uncommitted
 * set counts as running). With placeholders, a set none of whose hosts has
 * a backup at all gets one entry of its own (host id and address "", not
 * complete), so that list shows every set. *sets (may be NULL): every set
 * of the repository, for the caller to free with cs_set_entries_free. A set
 * whose record is damaged is a warning; its node backups stay node backups. */
struct cs_set_entry;
int cs_ops_attach_sets(cs_repo *repo, cs_backup_entry **entries, size_t *n, double grace, bool placeholders,
                       struct cs_set_entry **sets, size_t *n_sets, cs_err *e);

/* Reading data from an encrypted repository needs an identity: say so
 * before any work starts. */
int cs_ops_require_identity(const cs_repo *repo, cs_err *e);

/* A new repository is encrypted unless the operator says otherwise: init
 * and backup --init need --recipient, or --no-encryption (never both). */
int cs_ops_check_new_repo(const cs_strlist *recipients, bool no_encryption, cs_err *e);

/* Shared by the ops: stream an object through zstd-decompress and hash into
 * dst (owned, closed on success) and check the plaintext against f.
 * CS_E_CORRUPT names the object on any mismatch. The plaintext bytes count
 * as bytes done of the calling thread's job, and its cancel stops the
 * stream (CS_E_CANCELED). A file of a pack is read from its frame (the
 * whole object is downloaded: use cs_ops_fetch_members for several). */
int cs_ops_fetch_object(cs_repo *repo, const cs_mfile *f, cs_sink *dst, cs_err *e);
/* The n files of one pack, in one download of their object: each file's
 * frame into its dst (owned, each closed once its bytes are checked),
 * checked as cs_ops_fetch_object checks one. fs must all be packed in the
 * same object; any order. */
int cs_ops_fetch_members(cs_repo *repo, const cs_mfile *const *fs, cs_sink **dsts, size_t n, cs_err *e);
/* cs_ops_fetch_object into the file dir/<f->name> (its parent directories
 * made; the file exists only once every byte is checked). What restore and
 * load download with. */
int cs_ops_fetch_file(cs_repo *repo, const cs_mfile *f, const char *dir, cs_err *e);
/* cs_ops_fetch_file with cs_file_sink_open's flags (CS_FILE_NO_DIR_SYNC:
 * the caller syncs the directory once for all its files). */
int cs_ops_fetch_file_flags(cs_repo *repo, const cs_mfile *f, const char *dir, int flags, cs_err *e);
/* The n files of one object (one file alone, or files of one pack) into
 * dir, in one download, as cs_ops_fetch_file_flags places one. */
int cs_ops_fetch_files(cs_repo *repo, const cs_mfile *const *fs, size_t n, const char *dir, int flags, cs_err *e);

/* ---- the local node ---- */

/* Read the node the host reaches (its identity, topology, version and
 * directories, the host's directory settings taking precedence) over CQL,
 * and its schema when schema is not NULL (new reference). purpose names
 * the operation in messages ("backup"). Free info with cs_node_info_free
 * (also filled with nothing on error). What backup records of the node,
 * and what an agent answers about it. */
int cs_ops_read_node(const cs_host *host, const char *purpose, cs_node_info *info, json_t **schema, cs_err *e);

/* The node facts cache: every cs_ops_read_node that succeeds writes what
 * it read to <state_dir>/node.json (atomically, only when it changed), so
 * that a stopped node can still be described (an agent's GET /v1/node, a
 * replace restore that needs the node's own host id). Reads it back into
 * info (free with cs_node_info_free); CS_E_NOTFOUND when there is none. */
int cs_ops_cached_node(const cs_host *host, cs_node_info *info, cs_err *e);
/* cs_ops_read_node, or when the node cannot be reached (CS_E_UNAVAIL: a
 * stopped node) the cached facts with *live false. The node's own error
 * when there is no cache. */
int cs_ops_read_node_or_cached(const cs_host *host, const char *purpose, cs_node_info *info, bool *live, cs_err *e);

#endif

/* optable.c - the table of operations (see the header): each operation's
 * request fields and checks, how it runs, its document and its verdict;
 * and the commands as --help shows them. */
#include "ops/optable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/node.h"
#include "cluster/cluster.h"
#include "common/buf.h"
#include "ops/ops.h"
#include "ops/results.h"

/* ---- the fields' own checks ---- */

static int check_backup_name(const cs_field *f, const void *req, cs_err *e)
{
    const char *name = *CS_FIELD_CPTR(char *, req, f);
    if (name && !cs_repo_is_valid_backup_name(name))
        return cs_err_set(e, CS_E_USAGE, "invalid backup name \"%s\" (letters, digits, '.', '_' and '-')", name);
    return 0;
}

static int check_set_id(const cs_field *f, const void *req, cs_err *e)
{
    const char *id = *CS_FIELD_CPTR(char *, req, f);
    if (id && !cs_is_hex32(id))
        return cs_err_set(e, CS_E_USAGE, "invalid set id \"%s\" (32 hex digits)", id);
    return 0;
}

static int check_host_id(const cs_field *f, const void *req, cs_err *e)
{
    const char *id = *CS_FIELD_CPTR(char *, req, f);
    if (id && !cs_repo_is_valid_backup_name(id))
        return cs_err_set(e, CS_E_USAGE, "invalid host id \"%s\"", id);
    return 0;
}

/* A snapshot tag is a directory name on the node: the syntax of a backup name. */
static int check_tag(const cs_field *f, const void *req, cs_err *e)
{
    const char *tag = *CS_FIELD_CPTR(char *, req, f);
    if (tag && !cs_repo_is_valid_backup_name(tag))
        return cs_err_set(e, CS_E_USAGE, "invalid snapshot tag \"%s\" in {%s} (letters, digits, '.', '_' and '-')",
                          tag, f->name);
    return 0;
}

/* A snapshot tag prefix: the start of a tag ("" is every tag). */
static int check_prefix(const cs_field *f, const void *req, cs_err *e)
{
    const char *p = *CS_FIELD_CPTR(char *, req, f);
    if (p && *p && !cs_repo_is_valid_backup_name(p))
        return cs_err_set(e, CS_E_USAGE, "invalid snapshot tag prefix \"%s\" in {%s} (letters, digits, '.', '_' and '-')",
                          p, f->name);
    return 0;
}

static int check_keyspace_names(const cs_field *f, const void *req, cs_err *e)
{
    const cs_strlist *l = CS_FIELD_CPTR(cs_strlist, req, f);
    for (size_t i = 0; i < l->n; i++)
        if (!cs_node_is_valid_name(l->items[i]))
            return cs_err_set(e, CS_E_USAGE, "invalid keyspace name \"%s\"", l->items[i]);
    return 0;
}

static int check_keyspace_map(const cs_field *f, const void *req, cs_err *e)
{
    return cs_restore_check_map(CS_FIELD_CPTR(cs_strlist, req, f), e);
}

static int check_percent(const cs_field *f, const void *req, cs_err *e)
{
    double v = *CS_FIELD_CPTR(double, req, f);
    if (!isnan(v) && !(v > 0 && v <= 100))
        return cs_err_set(e, CS_E_USAGE, "{%s} wants %s, not \"%g\"", f->name, f->what, v);
    return 0;
}

/* Holders refresh a lock every quarter of it: less than 4 s would be a
 * refresh per second. 0: the default. */
static int check_lock_stale(const cs_field *f, const void *req, cs_err *e)
{
    double v = *CS_FIELD_CPTR(double, req, f);
    if (v > 0 && v < 4)
        return cs_err_set(e, CS_E_USAGE, "{%s} must be at least 4s", f->name);
    return 0;
}

/* ---- the requests' fields ---- */

#define FIELD(T, name, type, def, flags, min, max, values, what, needs, check) \
    { #name, type, offsetof(T, name), def, flags, min, max, values, what, needs, check }
#define STR(T, name) FIELD(T, name, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, NULL)
#define BOOL(T, name) FIELD(T, name, CS_F_BOOL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL)
#define LIST(T, name) FIELD(T, name, CS_F_STRLIST, NULL, 0, 0, 0, NULL, NULL, NULL, NULL)
#define REPO(T) FIELD(T, repo, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, NULL, NULL)
#define KEYSPACES(T) FIELD(T, keyspaces, CS_F_STRLIST, NULL, 0, 0, 0, NULL, NULL, NULL, check_keyspace_names)
#define JOBS(T) FIELD(T, jobs, CS_F_INT, "4", 0, 1, 64, NULL, NULL, NULL, NULL)
#define LOCK_WAIT(T) FIELD(T, lock_wait, CS_F_DURATION, "10m", 0, 0, 0, NULL, NULL, NULL, NULL)
#define LOCK_STALE(T) FIELD(T, lock_stale, CS_F_DURATION, "30m", 0, 0, 0, NULL, NULL, NULL, check_lock_stale)
#define GRACE(T) FIELD(T, grace, CS_F_DURATION, "24h", 0, 0, 0, NULL, NULL, NULL, NULL)
#define KEEP(T, name) FIELD(T, name, CS_F_INT, NULL, 0, 0, 1000000, NULL, NULL, NULL, NULL)
#define N(a) (sizeof a / sizeof a[0])

static const cs_field init_fields[] = {
    REPO(cs_init_req),
    LIST(cs_init_req, recipients),
    BOOL(cs_init_req, no_encryption),
};

static const cs_field backup_fields[] = {
    REPO(cs_backup_req),
    FIELD(cs_backup_req, name, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_backup_name),
    KEYSPACES(cs_backup_req),
    FIELD(cs_backup_req, zstd_level, CS_F_INT, "1", 0, 1, 19, NULL, "a zstd level between 1 and 19", NULL, NULL),
    JOBS(cs_backup_req),
    BOOL(cs_backup_req, init),
    LIST(cs_backup_req, recipients),
    BOOL(cs_backup_req, no_encryption),
    LOCK_WAIT(cs_backup_req),
    LOCK_STALE(cs_backup_req),
    FIELD(cs_backup_req, set, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_set_id),
    FIELD(cs_backup_req, snapshot, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_tag),
};

static const cs_field snapshot_fields[] = {
    FIELD(cs_snapshot_req, tag, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, " TAG", check_tag),
    KEYSPACES(cs_snapshot_req),
};

#define OLDER_THAN(T) FIELD(T, older_than, CS_F_DURATION, NULL, 0, 0, 0, NULL, NULL, NULL, NULL)
#define PREFIX(T) FIELD(T, prefix, CS_F_STRING, "cassette-", 0, 0, 0, NULL, NULL, NULL, check_prefix)

/* One tag, or (older_than) every snapshot of the prefix older than that;
 * with keyspaces, in those keyspaces only (and then, without either, every
 * snapshot of the prefix there: what a drill's dropped keyspaces left). */
static const cs_field snapshot_clear_fields[] = {
    FIELD(cs_snapshot_req, tag, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_tag),
    OLDER_THAN(cs_snapshot_req),
    PREFIX(cs_snapshot_req),
    KEYSPACES(cs_snapshot_req),
};

static const cs_field list_fields[] = {
    REPO(cs_list_req),
};

static const cs_field status_fields[] = {
    REPO(cs_status_req),
    FIELD(cs_status_req, max_age, CS_F_DURATION, NULL, 0, 0, 0, NULL, NULL, NULL, NULL),
};

static const cs_field restore_fields[] = {
    REPO(cs_restore_req),
    FIELD(cs_restore_req, backup, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, " NAME (see cassette list)",
          NULL),
    LIST(cs_restore_req, keyspaces),
    LIST(cs_restore_req, tables),
    FIELD(cs_restore_req, mode, CS_F_ENUM, "import", 0, 0, 0, "import|replace", NULL, NULL, NULL),
    FIELD(cs_restore_req, source_host, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_host_id),
    BOOL(cs_restore_req, fail_fast),
    JOBS(cs_restore_req),
    LOCK_WAIT(cs_restore_req),
    LOCK_STALE(cs_restore_req),
    FIELD(cs_restore_req, keyspace_map, CS_F_STRLIST, NULL, 0, 0, 0, NULL, NULL, NULL, check_keyspace_map),
};

static const cs_field drill_fields[] = {
    REPO(cs_drill_req),
    STR(cs_drill_req, backup),
    KEYSPACES(cs_drill_req),
    LIST(cs_drill_req, tables),
    FIELD(cs_drill_req, sample_tables, CS_F_INT, "0", 0, 0, 100000, NULL, NULL, NULL, NULL),
    FIELD(cs_drill_req, sample_rows, CS_F_INT, "100", 0, 0, 10000, NULL, NULL, NULL, NULL),
    BOOL(cs_drill_req, keep),
    JOBS(cs_drill_req),
    LOCK_WAIT(cs_drill_req),
    LOCK_STALE(cs_drill_req),
};

static const cs_field load_fields[] = {
    REPO(cs_load_req),
    FIELD(cs_load_req, backup, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, " NAME (see cassette list)", NULL),
    FIELD(cs_load_req, source_host, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_host_id),
    KEYSPACES(cs_load_req),
    LIST(cs_load_req, tables),
    LIST(cs_load_req, targets),
    JOBS(cs_load_req),
    LOCK_WAIT(cs_load_req),
    LOCK_STALE(cs_load_req),
};

static const cs_field verify_fields[] = {
    REPO(cs_verify_req),
    STR(cs_verify_req, backup),
    BOOL(cs_verify_req, deep),
    FIELD(cs_verify_req, sample, CS_F_NUMBER, NULL, 0, 0, 0, NULL, "a percentage above 0 and at most 100", NULL,
          check_percent),
    JOBS(cs_verify_req),
    LOCK_WAIT(cs_verify_req),
    LOCK_STALE(cs_verify_req),
};

static const cs_field purge_fields[] = {
    REPO(cs_purge_req),
    KEEP(cs_purge_req, keep_last),
    KEEP(cs_purge_req, keep_hourly),
    KEEP(cs_purge_req, keep_daily),
    KEEP(cs_purge_req, keep_weekly),
    KEEP(cs_purge_req, keep_monthly),
    FIELD(cs_purge_req, keep_within, CS_F_DURATION, NULL, 0, 0, 0, NULL, NULL, NULL, NULL),
    GRACE(cs_purge_req),
    BOOL(cs_purge_req, dry_run),
    LOCK_WAIT(cs_purge_req),
    LOCK_STALE(cs_purge_req),
};

static const cs_field delete_fields[] = {
    REPO(cs_delete_req),
    FIELD(cs_delete_req, backup, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, " NAME", check_backup_name),
    BOOL(cs_delete_req, dry_run),
    BOOL(cs_delete_req, force),
    GRACE(cs_delete_req),
    LOCK_WAIT(cs_delete_req),
    LOCK_STALE(cs_delete_req),
};

static const cs_field cleanup_fields[] = {
    FIELD(cs_cleanup_req, aside, CS_F_BOOL, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL,
          " (what replace restores moved aside; see cassette status)", NULL),
    BOOL(cs_cleanup_req, dry_run),
};

static const cs_field migrate_fields[] = {
    FIELD(cs_migrate_req, dir, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, " (the directory of .cql files)",
          NULL),
    KEYSPACES(cs_migrate_req),
    BOOL(cs_migrate_req, dry_run),
    BOOL(cs_migrate_req, force_checksum),
    FIELD(cs_migrate_req, cql_consistency, CS_F_STRING, "LOCAL_QUORUM", 0, 0, 0, NULL, NULL, NULL, NULL),
    LOCK_WAIT(cs_migrate_req),
};

static const cs_field schema_fields[] = {
    KEYSPACES(cs_schema_req),
};

static const cs_field key_generate_fields[] = {
    STR(cs_key_generate_req, output),
};

static const cs_field key_public_fields[] = {
    FIELD(cs_key_public_req, file, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL, NULL, NULL),
};

#define TARGET(T)                                                                                           \
    STR(T, contact), LIST(T, agents),                                                                       \
    FIELD(T, agent_template, CS_F_STRING, CS_CLUSTER_AGENT_TEMPLATE, 0, 0, 0, NULL, NULL, NULL, NULL)
#define PARALLEL_NODES(T) FIELD(T, parallel_nodes, CS_F_INT, "2", 0, 1, 1000, NULL, NULL, NULL, NULL)

static const cs_field cluster_backup_fields[] = {
    REPO(cs_cluster_backup_req),
    FIELD(cs_cluster_backup_req, name, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_backup_name),
    KEYSPACES(cs_cluster_backup_req),
    TARGET(cs_cluster_backup_req),
    PARALLEL_NODES(cs_cluster_backup_req),
    JOBS(cs_cluster_backup_req),
    FIELD(cs_cluster_backup_req, zstd_level, CS_F_INT, "1", 0, 1, 19, NULL, "a zstd level between 1 and 19", NULL,
          NULL),
    FIELD(cs_cluster_backup_req, retries, CS_F_INT, "2", 0, 0, 10, NULL, NULL, NULL, NULL),
    BOOL(cs_cluster_backup_req, allow_partial),
    STR(cs_cluster_backup_req, pause_cmd),
    STR(cs_cluster_backup_req, resume_cmd),
    LOCK_WAIT(cs_cluster_backup_req),
    LOCK_STALE(cs_cluster_backup_req),
};

static const cs_field cluster_restore_fields[] = {
    REPO(cs_cluster_restore_req),
    FIELD(cs_cluster_restore_req, backup, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL,
          " NAME (see cassette list)", check_backup_name),
    TARGET(cs_cluster_restore_req),
    KEYSPACES(cs_cluster_restore_req),
    LIST(cs_cluster_restore_req, tables),
    LIST(cs_cluster_restore_req, nodes),
    LIST(cs_cluster_restore_req, host_map),
    FIELD(cs_cluster_restore_req, mode, CS_F_ENUM, "import", 0, 0, 0, "import|replace|load", NULL, NULL, NULL),
    BOOL(cs_cluster_restore_req, all_replicas),
    PARALLEL_NODES(cs_cluster_restore_req),
    JOBS(cs_cluster_restore_req),
    BOOL(cs_cluster_restore_req, plan),
    BOOL(cs_cluster_restore_req, yes),
    LOCK_WAIT(cs_cluster_restore_req),
    LOCK_STALE(cs_cluster_restore_req),
};

static const cs_field cluster_status_fields[] = {
    STR(cs_cluster_status_req, repo),
    TARGET(cs_cluster_status_req),
};

static const cs_field cluster_snapshot_cleanup_fields[] = {
    TARGET(cs_cluster_snapshot_cleanup_req),
    OLDER_THAN(cs_cluster_snapshot_cleanup_req),
    PREFIX(cs_cluster_snapshot_cleanup_req),
};

static const cs_field cluster_drill_fields[] = {
    REPO(cs_cluster_drill_req),
    FIELD(cs_cluster_drill_req, backup, CS_F_STRING, NULL, 0, 0, 0, NULL, NULL, NULL, check_backup_name),
    TARGET(cs_cluster_drill_req),
    KEYSPACES(cs_cluster_drill_req),
    LIST(cs_cluster_drill_req, tables),
    FIELD(cs_cluster_drill_req, sample_tables, CS_F_INT, "0", 0, 0, 100000, NULL, NULL, NULL, NULL),
    FIELD(cs_cluster_drill_req, sample_rows, CS_F_INT, "100", 0, 0, 10000, NULL, NULL, NULL, NULL),
    BOOL(cs_cluster_drill_req, keep),
    PARALLEL_NODES(cs_cluster_drill_req),
    JOBS(cs_cluster_drill_req),
    LOCK_WAIT(cs_cluster_drill_req),
    LOCK_STALE(cs_cluster_drill_req),
};

static const cs_field cluster_tokens_fields[] = {
    REPO(cs_cluster_tokens_req),
    FIELD(cs_cluster_tokens_req, backup, CS_F_STRING, NULL, CS_F_REQUIRED, 0, 0, NULL, NULL,
          " NAME (see cassette list)", check_backup_name),
};

/* ---- checks across fields ---- */

static int check_init(const void *req, cs_err *e)
{
    const cs_init_req *r = req;
    return cs_ops_check_new_repo(&r->recipients, r->no_encryption, e);
}

/* Only init may make a repository, and then as init would. */
static int check_backup(const void *req, cs_err *e)
{
    const cs_backup_req *r = req;
    if (r->set && !r->name) {
        cs_err_set(e, CS_E_USAGE, "{set} needs {name}: the set's backup name");
        return cs_err_field(e, "set");
    }
    return r->init ? cs_ops_check_new_repo(&r->recipients, r->no_encryption, e) : 0;
}

static int check_verify(const void *req, cs_err *e)
{
    const cs_verify_req *r = req;
    if (!isnan(r->sample) && !r->deep) {
        cs_err_set(e, CS_E_USAGE, "{sample} needs {deep} (a fast verify checks every object already)");
        return cs_err_field(e, "sample");
    }
    return 0;
}

/* keyspace_map makes new tables and imports into them: a running node. */
static int check_restore(const void *req, cs_err *e)
{
    const cs_restore_req *r = req;
    if (r->keyspace_map.n && !strcmp(r->mode, "replace")) {
        cs_err_set(e, CS_E_USAGE, "{keyspace_map} restores into new tables of a running node: only with {mode} import");
        return cs_err_field(e, "keyspace_map");
    }
    return 0;
}

static int check_snapshot_clear(const void *req, cs_err *e)
{
    const cs_snapshot_req *r = req;
    if (r->tag && r->older_than > 0) {
        cs_err_set(e, CS_E_USAGE, "{tag} and {older_than} exclude each other: clear one snapshot, or every old one");
        return cs_err_field(e, "older_than");
    }
    if (!r->tag && !(r->older_than > 0) && !r->keyspaces.n) {
        cs_err_set(e, CS_E_USAGE, "snapshot clear needs {tag} (one snapshot), {older_than} (every snapshot of "
                                  "{prefix} older than that) or {keyspaces} (every snapshot of {prefix} there)");
        return cs_err_field(e, "tag");
    }
    return 0;
}

static int check_cluster_snapshot_cleanup(const void *req, cs_err *e)
{
    const cs_cluster_snapshot_cleanup_req *r = req;
    if (!(r->older_than > 0)) {
        cs_err_set(e, CS_E_USAGE, "cluster snapshot-cleanup needs {older_than} (e.g. 2d: every snapshot of {prefix} "
                                  "older than that)");
        return cs_err_field(e, "older_than");
    }
    return 0;
}

static int check_migrate(const void *req, cs_err *e)
{
    const cs_migrate_req *r = req;
    if (r->keyspaces.n != 1) {
        cs_err_set(e, CS_E_USAGE, "migrate needs one {keyspaces} (where the tracking table lives)");
        return cs_err_field(e, "keyspaces");
    }
    return 0;
}

/* ---- the operations ---- */

/* Typed functions behind the table's untyped ones. */
#define RUN(fn, Req, Res)                                                                                  \
    static int run_##fn(cs_job *job, const cs_host *host, const void *req, void *res, cs_err *e)           \
    {                                                                                                      \
        return cs_op_##fn(job, host, (const Req *)req, (Res *)res, e);                                     \
    }
#define DOC(fn, json, Req, Res)                                                                            \
    static json_t *doc_##fn(const void *req, const void *res)                                              \
    {                                                                                                      \
        return json((const Req *)req, (const Res *)res);                                                   \
    }
#define FREE(fn, Res)                                                                                      \
    static void free_##fn(void *res)                                                                       \
    {                                                                                                      \
        cs_##fn##_free((Res *)res);                                                                        \
    }
#define VERDICT(fn, Req, Res)                                                                              \
    static int verdict_##fn(const void *req, const void *res, cs_err *e)                                   \
    {                                                                                                      \
        return cs_op_##fn##_verdict((const Req *)req, (const Res *)res, e);                                \
    }

RUN(init, cs_init_req, cs_init_result)
RUN(backup, cs_backup_req, cs_backup_result)
RUN(list, cs_list_req, cs_list_result)
RUN(status, cs_status_req, cs_status_result)
RUN(restore, cs_restore_req, cs_restore_result)
RUN(verify, cs_verify_req, cs_verify_result)
RUN(purge, cs_purge_req, cs_purge_result)
RUN(delete, cs_delete_req, cs_delete_result)
RUN(catalog_rebuild, cs_list_req, cs_list_result)
RUN(migrate, cs_migrate_req, cs_migrate_result)
RUN(migrate_status, cs_migrate_req, cs_migrate_result)
RUN(schema_dump, cs_schema_req, cs_schema_result)
RUN(key_generate, cs_key_generate_req, cs_key_result)
RUN(key_public, cs_key_public_req, cs_key_public_result)
RUN(cleanup, cs_cleanup_req, cs_cleanup_result)
RUN(cluster_backup, cs_cluster_backup_req, cs_cluster_backup_result)
RUN(cluster_restore, cs_cluster_restore_req, cs_cluster_restore_result)
RUN(cluster_status, cs_cluster_status_req, cs_cluster_status_result)
RUN(cluster_tokens, cs_cluster_tokens_req, cs_cluster_tokens_result)
RUN(cluster_snapshot_cleanup, cs_cluster_snapshot_cleanup_req, cs_cluster_snapshot_cleanup_result)
RUN(cluster_drill, cs_cluster_drill_req, cs_cluster_drill_result)
RUN(snapshot, cs_snapshot_req, cs_snapshot_result)
RUN(snapshot_clear, cs_snapshot_req, cs_snapshot_result)
RUN(load, cs_load_req, cs_load_result)
RUN(drill, cs_drill_req, cs_drill_result)

DOC(init, cs_init_result_json, cs_init_req, cs_init_result)
DOC(backup, cs_backup_result_json, cs_backup_req, cs_backup_result)
DOC(list, cs_list_result_json, cs_list_req, cs_list_result)
DOC(status, cs_status_result_json, cs_status_req, cs_status_result)
DOC(restore, cs_restore_result_json, cs_restore_req, cs_restore_result)
DOC(verify, cs_verify_result_json, cs_verify_req, cs_verify_result)
DOC(purge, cs_purge_result_json, cs_purge_req, cs_purge_result)
DOC(delete, cs_delete_result_json, cs_delete_req, cs_delete_result)
DOC(migrate, cs_migrate_result_json, cs_migrate_req, cs_migrate_result)
DOC(schema, cs_schema_result_json, cs_schema_req, cs_schema_result)
DOC(key_generate, cs_key_result_json, cs_key_generate_req, cs_key_result)
DOC(key_public, cs_key_public_result_json, cs_key_public_req, cs_key_public_result)
DOC(cleanup, cs_cleanup_result_json, cs_cleanup_req, cs_cleanup_result)
DOC(cluster_backup, cs_cluster_backup_result_json, cs_cluster_backup_req, cs_cluster_backup_result)
DOC(cluster_restore, cs_cluster_restore_result_json, cs_cluster_restore_req, cs_cluster_restore_result)
DOC(cluster_status, cs_cluster_status_result_json, cs_cluster_status_req, cs_cluster_status_result)
DOC(cluster_drill, cs_cluster_drill_result_json, cs_cluster_drill_req, cs_cluster_drill_result)
DOC(cluster_tokens, cs_cluster_tokens_result_json, cs_cluster_tokens_req, cs_cluster_tokens_result)
DOC(cluster_snapshot_cleanup, cs_cluster_snapshot_cleanup_result_json, cs_cluster_snapshot_cleanup_req,
    cs_cluster_snapshot_cleanup_result)
DOC(snapshot, cs_snapshot_result_json, cs_snapshot_req, cs_snapshot_result)
DOC(snapshot_clear, cs_snapshot_clear_result_json, cs_snapshot_req, cs_snapshot_result)
DOC(load, cs_load_result_json, cs_load_req, cs_load_result)
DOC(drill, cs_drill_result_json, cs_drill_req, cs_drill_result)

FREE(init_result, cs_init_result)
FREE(backup_result, cs_backup_result)
FREE(list_result, cs_list_result)
FREE(status_result, cs_status_result)
FREE(restore_result, cs_restore_result)
FREE(verify_result, cs_verify_result)
FREE(purge_result, cs_purge_result)
FREE(delete_result, cs_delete_result)
FREE(migrate_result, cs_migrate_result)
FREE(schema_result, cs_schema_result)
FREE(key_result, cs_key_result)
FREE(key_public_result, cs_key_public_result)
FREE(cleanup_result, cs_cleanup_result)
FREE(cluster_backup_result, cs_cluster_backup_result)
FREE(cluster_restore_result, cs_cluster_restore_result)
FREE(cluster_status_result, cs_cluster_status_result)
FREE(cluster_tokens_result, cs_cluster_tokens_result)
FREE(cluster_drill_result, cs_cluster_drill_result)
FREE(cluster_snapshot_cleanup_result, cs_cluster_snapshot_cleanup_result)
FREE(snapshot_result, cs_snapshot_result)
FREE(load_result, cs_load_result)
FREE(drill_result, cs_drill_result)

VERDICT(status, cs_status_req, cs_status_result)
VERDICT(restore, cs_restore_req, cs_restore_result)
VERDICT(load, cs_load_req, cs_load_result)
VERDICT(drill, cs_drill_req, cs_drill_result)
VERDICT(verify, cs_verify_req, cs_verify_result)
VERDICT(cluster_backup, cs_cluster_backup_req, cs_cluster_backup_result)
VERDICT(cluster_restore, cs_cluster_restore_req, cs_cluster_restore_result)
VERDICT(cluster_status, cs_cluster_status_req, cs_cluster_status_result)
VERDICT(cluster_drill, cs_cluster_drill_req, cs_cluster_drill_result)
VERDICT(cluster_snapshot_cleanup, cs_cluster_snapshot_cleanup_req, cs_cluster_snapshot_cleanup_result)

#define OP(name, command, sub, positional, summary, fields, Req, Res, check, run, doc, verdict, free)  \
    { name, command, sub, positional, summary, fields, N(fields), sizeof(Req), sizeof(Res), check, run, doc, \
      verdict, free }

static const cs_op_def ops[] = {
    OP("init", "init", NULL, NULL, "create an empty repository", init_fields, cs_init_req, cs_init_result,
       check_init, run_init, doc_init, NULL, free_init_result),
    OP("backup", "backup", NULL, NULL, "snapshot the node and store every new file once", backup_fields,
       cs_backup_req, cs_backup_result, check_backup, run_backup, doc_backup, NULL, free_backup_result),
    OP("list", "list", NULL, NULL, "list the backups in a repository", list_fields, cs_list_req, cs_list_result, NULL,
       run_list, doc_list, NULL, free_list_result),
    OP("restore", "restore", NULL, NULL, "bring a backup back into a node", restore_fields, cs_restore_req,
       cs_restore_result, check_restore, run_restore, doc_restore, verdict_restore, free_restore_result),
    OP("verify", "verify", NULL, NULL, "check that every object a backup needs is there", verify_fields,
       cs_verify_req, cs_verify_result, check_verify, run_verify, doc_verify, verdict_verify, free_verify_result),
    OP("purge", "purge", NULL, NULL, "remove backups that retention does not keep, then objects no backup needs",
       purge_fields, cs_purge_req, cs_purge_result, NULL, run_purge, doc_purge, NULL, free_purge_result),
    OP("status", "status", NULL, NULL, "the repository at a glance: nodes, newest backups, sizes, locks",
       status_fields, cs_status_req, cs_status_result, NULL, run_status, doc_status, verdict_status,
       free_status_result),
    OP("delete", "delete", NULL, NULL, "remove one backup", delete_fields, cs_delete_req, cs_delete_result, NULL,
       run_delete, doc_delete, NULL, free_delete_result),
    OP("catalog rebuild", "catalog", "rebuild", NULL, "recreate the local catalog from the repository alone",
       list_fields, cs_list_req, cs_list_result, NULL, run_catalog_rebuild, doc_list, NULL, free_list_result),
    OP("migrate", "migrate", NULL, NULL, "apply pending migration files in order, each once", migrate_fields,
       cs_migrate_req, cs_migrate_result, check_migrate, run_migrate, doc_migrate, NULL, free_migrate_result),
    OP("migrate status", "migrate", "status", NULL, "which migration files are applied, changed or pending",
       migrate_fields, cs_migrate_req, cs_migrate_result, check_migrate, run_migrate_status, doc_migrate, NULL,
       free_migrate_result),
    OP("schema dump", "schema", "dump", NULL, "the schema as DESCRIBE SCHEMA gives it, ready to replay",
       schema_fields, cs_schema_req, cs_schema_result, NULL, run_schema_dump, doc_schema, NULL, free_schema_result),
    OP("key generate", "key", "generate", NULL, "make an age identity", key_generate_fields, cs_key_generate_req,
       cs_key_result, NULL, run_key_generate, doc_key_generate, NULL, free_key_result),
    OP("key public", "key", "public", "file", "print the public keys of an identity file", key_public_fields,
       cs_key_public_req, cs_key_public_result, NULL, run_key_public, doc_key_public, NULL, free_key_public_result),
    OP("cleanup", "cleanup", NULL, NULL, "remove what replace restores moved aside", cleanup_fields, cs_cleanup_req,
       cs_cleanup_result, NULL, run_cleanup, doc_cleanup, NULL, free_cleanup_result),
    OP("cluster backup", "cluster", "backup", NULL, "back up every node of a cluster through its agents as one set",
       cluster_backup_fields, cs_cluster_backup_req, cs_cluster_backup_result, NULL, run_cluster_backup,
       doc_cluster_backup, verdict_cluster_backup, free_cluster_backup_result),
    OP("cluster restore", "cluster", "restore", NULL, "restore a cluster backup into a cluster through the agents",
       cluster_restore_fields, cs_cluster_restore_req, cs_cluster_restore_result, NULL, run_cluster_restore,
       doc_cluster_restore, verdict_cluster_restore, free_cluster_restore_result),
    OP("cluster status", "cluster", "status", NULL, "each node's agent, and the newest complete cluster backup",
       cluster_status_fields, cs_cluster_status_req, cs_cluster_status_result, NULL, run_cluster_status,
       doc_cluster_status, verdict_cluster_status, free_cluster_status_result),
    OP("cluster tokens", "cluster", "tokens", NULL, "the initial_token of each node of a cluster backup",
       cluster_tokens_fields, cs_cluster_tokens_req, cs_cluster_tokens_result, NULL, run_cluster_tokens,
       doc_cluster_tokens, NULL, free_cluster_tokens_result),
    OP("cluster snapshot-cleanup", "cluster", "snapshot-cleanup", NULL,
       "clear every node's snapshots of a prefix that are older than a duration, through the agents",
       cluster_snapshot_cleanup_fields, cs_cluster_snapshot_cleanup_req, cs_cluster_snapshot_cleanup_result,
       check_cluster_snapshot_cleanup, run_cluster_snapshot_cleanup, doc_cluster_snapshot_cleanup,
       verdict_cluster_snapshot_cleanup, free_cluster_snapshot_cleanup_result),
    OP("cluster drill", "cluster", "drill", NULL,
       "restore a cluster backup into scratch keyspaces of the same nodes, compare with the live tables, drop them",
       cluster_drill_fields, cs_cluster_drill_req, cs_cluster_drill_result, NULL, run_cluster_drill,
       doc_cluster_drill, verdict_cluster_drill, free_cluster_drill_result),
    OP("snapshot", "snapshot", NULL, NULL, "take a snapshot of the node (nodetool snapshot, which flushes first)",
       snapshot_fields, cs_snapshot_req, cs_snapshot_result, NULL, run_snapshot, doc_snapshot, NULL,
       free_snapshot_result),
    OP("snapshot clear", "snapshot", "clear", NULL,
       "clear a snapshot of the node, as backup clears its own, or every one of a prefix older than a duration",
       snapshot_clear_fields, cs_snapshot_req, cs_snapshot_result, check_snapshot_clear, run_snapshot_clear,
       doc_snapshot_clear, NULL, free_snapshot_result),
    OP("load", "load", NULL, NULL, "stream a node's backed-up tables into a cluster with Cassandra's bulk loader",
       load_fields, cs_load_req, cs_load_result, NULL, run_load, doc_load, verdict_load, free_load_result),
    OP("drill", "drill", NULL, NULL,
       "restore a backup's tables into scratch keyspaces beside the live ones, check them against the live "
       "tables, drop them",
       drill_fields, cs_drill_req, cs_drill_result, NULL, run_drill, doc_drill, verdict_drill, free_drill_result),
};

/* The commands as --help shows them, in its order. */
static const cs_command_def commands[] = {
    { "init", "--repo PATH (--recipient age1...)... | --repo PATH --no-encryption",
      "create an empty repository (encrypted to the recipients; unencrypted only with --no-encryption)" },
    { "backup", "--repo PATH [--name NAME] [--keyspace KS]... [--snapshot TAG]",
      "snapshot the node and store every new file once (or back up a snapshot taken already)" },
    { "list", "--repo PATH [--json]", "list the backups in a repository" },
    { "restore",
      "--repo PATH --backup NAME [--keyspace KS]... [--table KS.T]... [--mode import|replace] [--fail-fast] "
      "[--keyspace-map KS=NEWKS]...",
      "bring a backup back into a node (or its tables into new keyspaces beside the live ones)" },
    { "verify", "--repo PATH [--backup NAME] [--deep [--sample PCT]]",
      "check that every object a backup needs is there (exit 0: all good, 3: damage found, 1: cannot run, "
      "2: usage)" },
    { "purge", "--repo PATH [--keep-last N] [--keep-hourly|daily|weekly|monthly N] [--keep-within D] [--dry-run]",
      "remove backups that retention does not keep, then objects no backup needs" },
    { "status", "--repo PATH [--json]", "the repository at a glance: nodes, newest backups, sizes, locks" },
    { "delete", "--repo PATH --backup NAME [--dry-run] [--force]",
      "remove one backup (its objects that no other backup uses go with the next purge, after the grace period)" },
    { "catalog", "rebuild --repo PATH", "recreate the local catalog from the repository alone" },
    { "migrate", "[status] --dir DIR --keyspace KS [--dry-run] [--force-checksum]",
      "apply <timestamp>_<name>.cql files in order, each once, recorded in KS.cassette_migrations" },
    { "schema", "dump [--keyspace KS]...", "print the schema as DESCRIBE SCHEMA gives it, ready to replay" },
    { "key", "generate [-o FILE] | public FILE", "make an age identity, or print the public keys of one" },
    { "cleanup", "--aside [--dry-run] [--data-dir DIR]... [--cassandra-yaml FILE]",
      "remove what replace restores moved aside, once the restore is trusted" },
    { "snapshot", "--tag TAG [--keyspace KS]... | clear (--tag TAG | --older-than D [--prefix P]) [--keyspace KS]...",
      "take a snapshot of the node, or clear one (what a cluster backup does on every node), or clear the old ones" },
    { "load", "--repo PATH --backup NAME [--source-host HOSTID] [--target ADDR]... [--keyspace KS]... [--table KS.T]...",
      "stream one node's backed-up tables into a cluster of any topology with sstableloader (the schema must be "
      "there)" },
    { "drill", "--repo PATH [--backup NAME] [--keyspace KS]... [--table KS.T]... [--sample-tables N] [--sample-rows N] "
      "[--keep]",
      "restore drill: restore tables of this node's newest backup into scratch keyspaces, compare them with the "
      "live tables (row counts, a sample of rows), report the RTO achieved, clean up" },
    { "agent",
      "[--listen HOST:PORT] --token-file FILE [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] "
      "[--allow-repo LOC]...",
      "serve this node's operations (backup, restore, verify, ...) over HTTP(S) to a coordinator" },
    { "server",
      "[--config FILE] [--listen HOST:PORT] [--tokens-file FILE] [--state URL] [--workers N] [--export-repo LOC]",
      "registered clusters, scheduled tasks, one queue per cluster, run history, a REST API (a daemon)" },
    { "cluster",
      "backup --repo PATH [--name NAME] [--agents URL,...] [--parallel-nodes N] [--allow-partial] | "
      "restore --repo PATH --backup NAME (--plan | --yes) [--mode import|replace] | status [--repo PATH] | "
      "tokens --repo PATH --backup NAME | snapshot-cleanup --older-than D [--prefix P] | "
      "drill --repo PATH [--backup NAME] [--table KS.T]... [--sample-tables N] [--keep]",
      "back up or restore every node of a cluster through the agents; their state; a backup's tokens; old "
      "snapshots cleared; a restore drill into scratch keyspaces" },
};

const cs_op_def *cs_ops_all(size_t *n)
{
    *n = N(ops);
    return ops;
}

const cs_op_def *cs_op_find(const char *name)
{
    for (size_t i = 0; name && i < N(ops); i++)
        if (!strcmp(ops[i].name, name))
            return &ops[i];
    return NULL;
}

const cs_op_def *cs_op_find_command(const char *command, const char *sub)
{
    for (size_t i = 0; command && i < N(ops); i++) {
        if (strcmp(ops[i].command, command))
            continue;
        if ((!ops[i].sub && !sub) || (ops[i].sub && sub && !strcmp(ops[i].sub, sub)))
            return &ops[i];
    }
    return NULL;
}

const cs_command_def *cs_commands_all(size_t *n)
{
    *n = N(commands);
    return commands;
}

const cs_command_def *cs_command_find(const char *name)
{
    for (size_t i = 0; name && i < N(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

bool cs_command_has_subs(const char *command)
{
    for (size_t i = 0; i < N(ops); i++)
        if (!strcmp(ops[i].command, command) && ops[i].sub)
            return true;
    return false;
}

const char *cs_op_field_default(const char *field)
{
    for (size_t i = 0; i < N(ops); i++) {
        const cs_field *f = cs_fields_find(ops[i].fields, ops[i].n_fields, field);
        if (f)
            return f->def;
    }
    return NULL;
}

/* ---- requests ---- */

void *cs_op_request_new(const cs_op_def *op, cs_err *e)
{
    void *req = cs_calloc(1, op->req_size);
    if (cs_fields_init(op->fields, op->n_fields, req, op->req_size, e)) {
        cs_op_request_free(op, req);
        return NULL;
    }
    return req;
}

void cs_op_request_free(const cs_op_def *op, void *req)
{
    if (!req)
        return;
    cs_fields_free(op->fields, op->n_fields, req);
    free(req);
}

int cs_op_request_check(const cs_op_def *op, const void *req, cs_err *e)
{
    int rc = cs_fields_check(op->fields, op->n_fields, req, op->command, e);
    if (!rc && op->check)
        rc = op->check(req, e);
    return rc;
}

int cs_op_request_from_json(const cs_op_def *op, const json_t *json, void *req, cs_err *e)
{
    char what[64];
    snprintf(what, sizeof what, "%s request", op->name);
    int rc = cs_fields_from_json(op->fields, op->n_fields, json, what, req, e);
    return rc ? rc : cs_op_request_check(op, req, e);
}

json_t *cs_op_request_to_json(const cs_op_def *op, const void *req)
{
    return cs_fields_to_json(op->fields, op->n_fields, req);
}

/* ---- running ---- */

int cs_op_run(const cs_op_def *op, cs_job *job, const cs_host *host, const void *req, void **res_out, cs_err *e)
{
    *res_out = cs_calloc(1, op->res_size);
    int rc = cs_op_request_check(op, req, e);
    return rc ? rc : op->run(job, host, req, *res_out, e);
}

json_t *cs_op_result_json(const cs_op_def *op, const void *req, const void *res)
{
    return op->result_json(req, res);
}

int cs_op_verdict(const cs_op_def *op, const void *req, const void *res, cs_err *e)
{
    return op->verdict ? op->verdict(req, res, e) : 0;
}

void cs_op_result_free(const cs_op_def *op, void *res)
{
    if (!res)
        return;
    op->result_free(res);
    free(res);
}

/* cluster.h - operations across the nodes of a cluster, run through their agents.
 *
 * Owns: the coordinating operations of the op table (ops/optable.h):
 *   cluster backup   one backup set for every node: snapshots on all nodes
 *                    at once (optionally inside an application pause), the
 *                    nodes' uploads by their agents under a node parallelism
 *                    limit, retried with backoff, then the cluster manifest
 *                    and the set's commit (repo/set.h), and every snapshot
 *                    cleared whatever happened;
 *   cluster restore  a backup set back into a cluster, node by node through
 *                    the agents, after a plan the operator confirms;
 *   cluster status   each agent reachable or not, its node, and the
 *                    repository's newest complete cluster backup;
 *   cluster tokens   the initial_token line of each node of a backup set;
 *   cluster snapshot-cleanup  every node's snapshots of a prefix that are
 *                    older than a duration cleared by its agent (`snapshot
 *                    clear` with older_than), what each cleared;
 *   cluster drill    a restore drill: the tables of a complete backup set
 *                    restored by every node's agent into scratch keyspaces
 *                    of the same nodes (the cluster restore with a keyspace
 *                    map), timed (the RTO achieved), compared with the live
 *                    tables over CQL (ops/drill.h), then dropped, with the
 *                    snapshots Cassandra takes of what is dropped.
 * The coordinator only coordinates: every byte of a node is read, stored,
 * fetched and written by that node's agent, with the code of the node
 * operations (backup, restore). Nodes are named by host id everywhere, with
 * their addresses recorded beside.
 * Must not: touch a node's files or run nodetool itself; print. */
#ifndef CS_CLUSTER_CLUSTER_H
#define CS_CLUSTER_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>

#include "common/err.h"
#include "common/job.h"
#include "common/strlist.h"
#include "ops/host.h"

#define CS_CLUSTER_AGENT_TEMPLATE "https://{rpc_address}:7620"

/* How the agents are found, the same in every cluster operation. */
#define CS_CLUSTER_TARGET_FIELDS                                                                              \
    char *contact;          /* a CQL contact point (NULL: the host's cql_host) */                            \
    cs_strlist agents;      /* agent URLs; empty: agent_template over the ring's nodes */                   \
    char *agent_template    /* "https://{rpc_address}:7620" */

typedef struct cs_cluster_backup_req {
    char *repo;
    char *name;             /* NULL: the UTC time */
    cs_strlist keyspaces;
    CS_CLUSTER_TARGET_FIELDS;
    long parallel_nodes;    /* nodes uploading at once */
    long jobs;              /* files stored at once on each node */
    long zstd_level;
    long retries;           /* attempts after the first for a node's backup */
    bool allow_partial;     /* back up the nodes that can be when some cannot */
    char *pause_cmd;        /* run before the snapshots (application pause) */
    char *resume_cmd;       /* run after them, always */
    double lock_wait, lock_stale;
} cs_cluster_backup_req;

/* One node as a cluster operation saw it. */
typedef struct cs_cluster_node {
    char *host_id, *address, *rpc_address, *datacenter, *rack, *agent;
    cs_strlist tokens;
    bool ok;                /* its agent answers (and, in results, its operation succeeded) */
    bool stopped;           /* its agent answers but Cassandra does not (reason says so) */
    char *reason;           /* why not ok (NULL when ok) */
    int code;               /* its CS_E_* */
    double snapshot_started, snapshot_finished; /* 0: no snapshot */
    unsigned attempts;
    json_t *facts;          /* what its agent said of it (GET /v1/node), or NULL */
    json_t *result;         /* the node operation's result document, or NULL */
} cs_cluster_node;

typedef struct cs_cluster_backup_result {
    char *name, *set_id, *cluster;
    cs_cluster_node *nodes;
    size_t n_nodes, complete;
    double snapshot_spread; /* latest snapshot start - earliest (s) */
    double pause_seconds;   /* the pause window, -1 without --pause-cmd */
    bool resumed;           /* resume_cmd ran and succeeded */
    double seconds;
    bool allow_partial;
} cs_cluster_backup_result;

int cs_op_cluster_backup(cs_job *job, const cs_host *host, const cs_cluster_backup_req *req,
                         cs_cluster_backup_result *res, cs_err *e);
/* An incomplete backup is a failure unless allow_partial. */
int cs_op_cluster_backup_verdict(const cs_cluster_backup_req *req, const cs_cluster_backup_result *res, cs_err *e);
json_t *cs_cluster_backup_result_json(const cs_cluster_backup_req *req, const cs_cluster_backup_result *res);
void cs_cluster_backup_result_free(cs_cluster_backup_result *res);

typedef struct cs_cluster_restore_req {
    char *repo;
    char *backup;
    CS_CLUSTER_TARGET_FIELDS;
    cs_strlist keyspaces;
    cs_strlist tables;
    cs_strlist nodes;       /* restore only these target nodes (host id or address) */
    cs_strlist host_map;    /* "SOURCE=TARGET" host ids or addresses; default: same host ids */
    char *mode;             /* "import", "replace" or "load" (another topology: the bulk loader) */
    bool all_replicas;      /* load: every source node, not a replica cover */
    long parallel_nodes;
    long jobs;
    bool plan;              /* print the plan, do nothing */
    bool yes;               /* run it */
    double lock_wait, lock_stale;
    /* Not a request field (the drill sets it): "SRC=DST" keyspaces, the
     * node restore's keyspace_map. In place only; the first node restores
     * alone (it creates the keyspaces DST), then the others. */
    cs_strlist keyspace_map;
} cs_cluster_restore_req;

/* One row of a restore plan: a source node's backup onto a target node. */
typedef struct cs_cluster_move {
    cs_cluster_node source; /* from the backup set (no agent) */
    cs_cluster_node target; /* the agent's node; result: its restore (or load) document */
    uint64_t bytes, files;
    cs_strlist keyspaces;   /* load: the keyspaces this source streams (it is in their replica cover) */
} cs_cluster_move;

typedef struct cs_cluster_restore_result {
    char *backup, *set_id, *cluster, *mode;
    bool same_cluster;      /* every source host id is a target's */
    bool planned_only;
    cs_cluster_move *moves;
    size_t n_moves, restored;
    double seconds;
} cs_cluster_restore_result;

int cs_op_cluster_restore(cs_job *job, const cs_host *host, const cs_cluster_restore_req *req,
                          cs_cluster_restore_result *res, cs_err *e);
int cs_op_cluster_restore_verdict(const cs_cluster_restore_req *req, const cs_cluster_restore_result *res,
                                  cs_err *e);
json_t *cs_cluster_restore_result_json(const cs_cluster_restore_req *req, const cs_cluster_restore_result *res);
void cs_cluster_restore_result_free(cs_cluster_restore_result *res);

typedef struct cs_cluster_status_req {
    char *repo;             /* optional: the newest complete cluster backup */
    CS_CLUSTER_TARGET_FIELDS;
} cs_cluster_status_req;

typedef struct cs_cluster_status_result {
    char *cluster;
    cs_cluster_node *nodes; /* ok: the agent answered (facts: its /v1/node document) */
    size_t n_nodes, reachable;
    char *newest;           /* newest complete cluster backup, or NULL */
    double newest_finished;
    size_t sets, sets_complete;
} cs_cluster_status_result;

int cs_op_cluster_status(cs_job *job, const cs_host *host, const cs_cluster_status_req *req,
                         cs_cluster_status_result *res, cs_err *e);
int cs_op_cluster_status_verdict(const cs_cluster_status_req *req, const cs_cluster_status_result *res, cs_err *e);
json_t *cs_cluster_status_result_json(const cs_cluster_status_req *req, const cs_cluster_status_result *res);
void cs_cluster_status_result_free(cs_cluster_status_result *res);

typedef struct cs_cluster_tokens_req {
    char *repo;
    char *backup;
} cs_cluster_tokens_req;

typedef struct cs_cluster_tokens_result {
    char *backup, *cluster, *partitioner;
    cs_cluster_node *nodes; /* host id, address, DC, rack, tokens */
    size_t n_nodes;
} cs_cluster_tokens_result;

int cs_op_cluster_tokens(cs_job *job, const cs_host *host, const cs_cluster_tokens_req *req,
                         cs_cluster_tokens_result *res, cs_err *e);
json_t *cs_cluster_tokens_result_json(const cs_cluster_tokens_req *req, const cs_cluster_tokens_result *res);
void cs_cluster_tokens_result_free(cs_cluster_tokens_result *res);

typedef struct cs_cluster_snapshot_cleanup_req {
    CS_CLUSTER_TARGET_FIELDS;
    double older_than;      /* seconds: snapshots taken longer ago are cleared */
    char *prefix;           /* only tags that start so ("cassette-"; "": every tag) */
} cs_cluster_snapshot_cleanup_req;

typedef struct cs_cluster_snapshot_cleanup_result {
    char *cluster;
    cs_cluster_node *nodes; /* ok: its agent cleared them; result: its snapshot clear document */
    size_t n_nodes, failed;
    size_t cleared;         /* snapshots cleared, all nodes together */
    double seconds;
} cs_cluster_snapshot_cleanup_result;

int cs_op_cluster_snapshot_cleanup(cs_job *job, const cs_host *host, const cs_cluster_snapshot_cleanup_req *req,
                                   cs_cluster_snapshot_cleanup_result *res, cs_err *e);
/* A node that could not be cleaned up (agent unreachable, its clear failed) is a failure. */
int cs_op_cluster_snapshot_cleanup_verdict(const cs_cluster_snapshot_cleanup_req *req,
                                           const cs_cluster_snapshot_cleanup_result *res, cs_err *e);
json_t *cs_cluster_snapshot_cleanup_result_json(const cs_cluster_snapshot_cleanup_req *req,
                                                const cs_cluster_snapshot_cleanup_result *res);
void cs_cluster_snapshot_cleanup_result_free(cs_cluster_snapshot_cleanup_result *res);

typedef struct cs_cluster_drill_req {
    char *repo;
    char *backup;           /* a cluster backup set; NULL: the cluster's newest complete one */
    CS_CLUSTER_TARGET_FIELDS;
    cs_strlist keyspaces;   /* empty: all (never system keyspaces) */
    cs_strlist tables;      /* "ks.table" */
    long sample_tables;     /* 0: every selected table; else that many, picked at random */
    long sample_rows;       /* rows compared by content per table */
    bool keep;              /* leave the scratch keyspaces */
    long parallel_nodes;
    long jobs;
    double lock_wait, lock_stale;
} cs_cluster_drill_req;

typedef struct cs_cluster_drill_result {
    char *backup, *cluster;
    char drill_id[9];
    double backup_started;       /* the set's start: rows written before it are in the backup */
    cs_strlist tables;           /* "ks.table" drilled */
    cs_strlist scratch_keyspaces;
    cs_strlist leftovers;        /* scratch keyspaces of earlier drills, dropped first */
    cs_cluster_restore_result restore; /* per node: its restore into the scratch keyspaces */
    bool restore_ran;
    json_t *reports;             /* per table: ops/drill.h's report, or {"table", "restored": false, "reason"} */
    double rto_seconds;          /* the restore's start to the last node's import */
    double seconds;
    bool kept;
    cs_cluster_node *cleaned;    /* per node: the snapshot clear of the dropped scratch keyspaces */
    size_t n_cleaned, snapshots_cleared;
    cs_strlist cleanup_problems; /* what the clean up could not do (warnings, not the verdict) */
    char *failure;               /* the first table not restored or not checked: "node X: ks.t: why" */
    int failure_code;
} cs_cluster_drill_result;

int cs_op_cluster_drill(cs_job *job, const cs_host *host, const cs_cluster_drill_req *req,
                        cs_cluster_drill_result *res, cs_err *e);
/* A table not restored on a node (the node's reason names the file), a
 * table that could not be checked, or lost or mismatched rows: the first,
 * as the error. */
int cs_op_cluster_drill_verdict(const cs_cluster_drill_req *req, const cs_cluster_drill_result *res, cs_err *e);
json_t *cs_cluster_drill_result_json(const cs_cluster_drill_req *req, const cs_cluster_drill_result *res);
void cs_cluster_drill_result_free(cs_cluster_drill_result *res);

#endif

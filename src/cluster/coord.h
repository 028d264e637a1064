/* coord.h - what the cluster operations share (internal to cluster/).
 *
 * Owns: cs_coord, one coordinator's view of a cluster for one operation:
 * the agent client, the nodes found (from the ring over CQL, from listed
 * agents, or from a backup set's record when the cluster is down), which
 * agent serves which node (by host id), running a node operation on an
 * agent to its end while the job's progress shows each node as one of its
 * parts (named by the node; its phase, state and counters as its agent
 * reports them: the job's counters are their sum), and the node records'
 * JSON.
 * Must not: print, or decide what an operation does with a failed node. */
#ifndef CS_CLUSTER_COORD_H
#define CS_CLUSTER_COORD_H

#include <jansson.h>

#include "cluster/agentc.h"
#include "cluster/cluster.h"
#include "repo/repo.h"

typedef struct cs_coord {
    const cs_host *host;
    cs_job *job;
    cs_agentc *agents;
    char *cluster;          /* cluster name, NULL when no node said */
    char *partitioner;
    json_t *schema;         /* DESCRIBE SCHEMA from the contact point, or NULL */
    cs_cluster_node *nodes;
    size_t n;               /* nodes[i] is part i of the job's progress */
} cs_coord;

/* How to find the agents (the request's target fields). */
typedef struct cs_coord_target {
    const char *contact;
    const cs_strlist *agents;
    const char *agent_template;
    /* nodes to use when no contact point answers and no agents are listed
     * (a cluster that is down: the backup set's record); may be NULL */
    const cs_cluster_node *known;
    size_t n_known;
    bool need_schema;       /* read DESCRIBE SCHEMA from the contact point */
} cs_coord_target;

/* Find the cluster's nodes and their agents. A node whose agent cannot be
 * reached, or that serves another host, is kept with ok false and its
 * reason; an error is returned only when no node can be found at all or a
 * setting is wrong. */
int cs_coord_open(cs_coord *c, cs_job *job, const cs_host *host, const cs_coord_target *t, cs_err *e);
void cs_coord_close(cs_coord *c);

/* How long an interrupted command waits for an agent's job to stop. */
#define CS_COORD_STOP_WAIT_S 60.0

/* Run op with request (taken) on node i's agent and wait for its end:
 * *result is its result document (new reference) when it succeeded. A stop
 * request cancels the agent's job and waits until it has stopped (up to
 * CS_COORD_STOP_WAIT_S; a warning if not), then CS_E_CANCELED. */
int cs_coord_run(cs_coord *c, size_t i, const char *op, json_t *request, json_t **result, cs_err *e);
/* The same; and when the job failed with a result document (an op's
 * verdict: the node restore's tables not restored), *failed is that
 * document (new reference), else NULL. */
int cs_coord_run_kept(cs_coord *c, size_t i, const char *op, json_t *request, json_t **result, json_t **failed,
                      cs_err *e);

/* Wait until every node of the cluster agrees on the schema (asked over
 * CQL at contact, else the host's cql_host), up to a minute. */
int cs_coord_schema_agreement(cs_coord *c, const char *contact, cs_err *e);

/* Progress: a new phase of the whole operation (every node's part is
 * waiting again, with nothing counted; a node left out, not ok, failed). */
void cs_coord_phase(cs_coord *c, const char *phase);
/* Node i takes no part in this phase (its part: skipped, not shown). */
void cs_coord_skip(cs_coord *c, size_t i);
/* A node's part updated from its agent's job "progress" object: the
 * agent's phase, and the files and bytes of the last of its phases that
 * counted any (a phase that counts nothing leaves them as they were).
 * Pure: for tests. */
void cs_coord_part_from(cs_progress_part *part, const json_t *progress);

/* Node records. */
void cs_cluster_node_free(cs_cluster_node *n);
void cs_cluster_node_copy(cs_cluster_node *to, const cs_cluster_node *from);
void cs_cluster_node_fail(cs_cluster_node *n, const cs_err *e);
json_t *cs_cluster_node_json(const cs_cluster_node *n);
/* "127.0.0.1 (5b6c...)" as messages name a node: address, else host id. */
const char *cs_cluster_node_name(const cs_cluster_node *n);

/* The cluster manifest of backup set name, parsed (needs the identity
 * when the repository is encrypted). */
int cs_cluster_read_manifest(cs_repo *repo, const char *name, json_t **out, cs_err *e);

/* The repository's sets: how many, how many complete, and the newest
 * complete one (by its finish) of cluster (NULL: of any cluster). */
typedef struct cs_coord_sets {
    size_t sets, complete;
    char *newest;           /* NULL when none is complete */
    double newest_started, newest_finished;
} cs_coord_sets;

int cs_coord_read_sets(cs_repo *repo, const char *cluster, cs_coord_sets *out, cs_err *e);
void cs_coord_sets_free(cs_coord_sets *s);

/* The agents' client from the host's settings. */
int cs_coord_agents_new(const cs_host *host, cs_agentc **out, cs_err *e);

#endif

/* node.h - what cassette reads from a node over CQL.
 *
 * Owns: the queries for the node's identity and topology (system.local),
 * its directories (system_views.settings), and its schema (DESCRIBE
 * SCHEMA, server-side since 4.0), decoded into plain structs.
 * Must not: run nodetool or touch files. */
#ifndef CS_NODE_H
#define CS_NODE_H

#include <jansson.h>

#include <stdbool.h>

#include "cassandra/cql.h"
#include "common/err.h"
#include "common/strlist.h"

typedef struct cs_node_info {
    char *host_id;
    char *address;          /* broadcast or listen address */
    char *cluster_name;
    char *datacenter;
    char *rack;
    char *release_version;
    char *partitioner;
    cs_strlist tokens;
    cs_strlist data_dirs;   /* from system_views.settings */
    char *commitlog_dir;
    char *hints_dir;
    char *saved_caches_dir;
} cs_node_info;

/* How to reach Cassandra over CQL. ops/ builds it from its request
 * (ops/nodeopts.c); the strings are borrowed for the length of the call. */
typedef struct cs_cql_opts {
    const char *hosts;    /* "a, b:9043, [::1]:9044": see cs_contact_points_parse */
    int port;             /* for hosts that name none; 9042 when 0 */
    int timeout_ms;       /* connect, TLS handshake, login, each request; 10 s when 0 */
    const char *username; /* NULL: no authentication offered */
    const char *password; /* never logged */
    bool tls;             /* implied by ca_file */
    const char *ca_file;  /* PEM; the system's CA store when NULL */
    const char *cert_file; /* client certificate (PEM), for require_client_auth */
    const char *key_file; /* its key (PEM); NULL: taken from cert_file */
    const char *purpose;  /* what connects ("backup"), for messages; may be NULL */
} cs_cql_opts;

/* Connect to the node itself (backup, restore: they read its identity and
 * directories); opts->hosts must be one address, not a list of contact
 * points. */
int cs_node_connect(const cs_cql_opts *opts, cql_conn **out, cs_err *e);

/* Connect to any node of the cluster (migrate, schema dump): opts->hosts
 * may list contact points, tried in order. The next one is tried only when
 * one cannot be reached or fails the TLS handshake; a refused login or a
 * bad setting stops at once (every node would say the same). When none can
 * be reached, the message names each with its reason. */
int cs_cluster_connect(const cs_cql_opts *opts, cql_conn **out, cs_err *e);

typedef struct cs_contact_point {
    char *host; /* a name, an IPv4 address, or an IPv6 address without brackets */
    int port;
} cs_contact_point;

/* Parse "a, b:9043, [::1]:9044, ::1" into points (default_port where none is
 * given; a bare IPv6 address has no port). Empty items, bad ports and
 * unclosed brackets are CS_E_INVAL with a one-line message. */
int cs_contact_points_parse(const char *list, int default_port, cs_contact_point **out,
                            size_t *n, cs_err *e);
void cs_contact_points_free(cs_contact_point *points, size_t n);

int cs_node_read_info(cql_conn *c, cs_node_info *out, cs_err *e);

/* One node of the ring as a node sees it (system.local for itself,
 * system.peers_v2 for the others). */
typedef struct cs_ring_node {
    char *host_id;
    char *address;      /* listen (peer) address */
    char *rpc_address;  /* where clients reach it (native_address) */
    char *datacenter;
    char *rack;
    char *release_version;
    cs_strlist tokens;
} cs_ring_node;

typedef struct cs_ring {
    char *cluster_name;
    char *partitioner;
    cs_ring_node *nodes;  /* the contacted node first, then its peers */
    size_t n;
} cs_ring;

/* The ring as the connected node knows it. */
int cs_node_read_ring(cql_conn *c, cs_ring *out, cs_err *e);
void cs_ring_free(cs_ring *ring);
void cs_node_info_free(cs_node_info *info);

/* DESCRIBE SCHEMA as a JSON array of {"keyspace","type","name","cql"} in
 * the server's order (keyspace, then its types, tables, indexes, views). */
int cs_node_read_schema(cql_conn *c, json_t **out, cs_err *e);

/* Poll system.local and system.peers over c until every node reports the
 * same schema version (after a CREATE or DROP, before another node relies
 * on it); CS_E_EXTERNAL after seconds, the caller's cancel stops it. */
int cs_node_wait_schema_agreement(cql_conn *c, int seconds, cs_err *e);
/* The same, not stopped by a cancel request: for the clean-up after one. */
int cs_node_settle_schema(cql_conn *c, int seconds, cs_err *e);

/* Does the node have every keyspace of names? schema is what
 * cs_node_read_schema gave (Cassandra's own keyspaces always exist).
 * CS_E_USAGE naming the first missing one and the keyspaces there are, so
 * that a typo in --keyspace stops before nodetool snapshots anything. */
int cs_node_check_keyspaces(const json_t *schema, const cs_strlist *names, cs_err *e);

/* Parse a settings value such as "[/a, /b]" or "/a" into a list. */
void cs_node_parse_dir_list(const char *value, cs_strlist *out);

/* Does something accept TCP connections at host:port (within 3 s)?
 * Used to refuse a replace restore while the node is up (io/net). */
bool cs_node_is_listening(const char *host, int port);

/* Is ks one of Cassandra's own keyspaces (system, system_schema, ...)? */
bool cs_node_is_system_keyspace(const char *ks);

/* Is name a plain CQL identifier as Cassandra stores keyspaces and tables
 * on disk ([A-Za-z0-9_]{1,222})? */
bool cs_node_is_valid_name(const char *name);

/* name as a quoted CQL identifier ("a""b" for a"b): exactly that name,
 * whatever its case or words. New string. */
char *cs_node_quote_name(const char *name);

#endif

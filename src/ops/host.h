/* host.h - the settings of the machine an operation runs on.
 *
 * Owns: cs_host, what never travels in a request: the storage drivers'
 * credentials and options, the identity file, how to reach the local node
 * (CQL and JMX credentials, TLS files, the nodetool command), the node's
 * own directories, and this machine's state directory and catalog. Each
 * front end fills it from its own configuration (the CLI from its flags,
 * environment and INI files); an agent keeps its own and never takes these
 * from a server. Its field table names each setting as messages do
 * ({identity}, {data_dirs}: see common/err.h).
 * Must not: hold anything a request may set, or secrets in anything but
 * these fields (never logged, never in a result). */
#ifndef CS_OPS_HOST_H
#define CS_OPS_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kvlist.h"
#include "common/strlist.h"
#include "ops/request.h"

typedef struct cs_host {
    char *identity;         /* age identity file that can read an encrypted repository */
    char *catalog;          /* SQLite catalog path (NULL: the default per repository) */
    char *state_dir;        /* local caches (NULL: ~/.cache/cassette/state) */
    /* the storage drivers' options, "<scheme>.<key>" = text ("s3.endpoint",
     * "storage.rate_limit"), parsed by the driver that opens a location (see
     * storage/storage.h); credentials among them are never logged */
    cs_kvlist storage_opts;
    /* the local node */
    char *cql_host;
    long cql_port;
    char *cql_user;
    char *cql_password;     /* never logged */
    bool cql_tls;
    char *cql_ca_file;
    char *cql_cert;
    char *cql_key;
    double cql_timeout;     /* seconds: connect, TLS, login, and each request */
    char *jmx_user;
    char *jmx_password;     /* never logged, never on a command line */
    char *nodetool;         /* the nodetool command template */
    char *sstableloader;    /* the bulk loader's command template (load) */
    /* the node's directories (restore writes only there) */
    cs_strlist data_dirs;
    char *commitlog_dir;
    char *hints_dir;
    char *saved_caches_dir;
    char *staging_dir;
    char *cassandra_yaml;   /* where the node's directories are, when not given */
    /* the agents a coordinator (cluster commands) talks to */
    char *agent_token_file; /* their bearer token (never logged) */
    char *agent_ca_file;    /* the CA of their certificates */
    char *agent_cert;       /* a client certificate, for agents started with a client CA */
    char *agent_key;
} cs_host;

/* The fields of cs_host (names as messages and configurations say them). */
const cs_field *cs_host_fields(size_t *n);

/* Free what the host owns and zero it. */
void cs_host_free(cs_host *host);

#endif

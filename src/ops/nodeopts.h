/* nodeopts.h - the option structs of cassandra/ built from the host's
 * settings (internal to ops/).
 *
 * Owns: the one place that maps the host's node settings (CQL host, port,
 * credentials, TLS files, timeout, nodetool template, JMX credentials) onto
 * cs_cql_opts and cs_nodetool_opts, so that cassandra/ never sees a front
 * end's configuration. The structs borrow the host's strings: they live as
 * long as the host.
 * Must not: connect, run anything, or check values (cassandra/ does). */
#ifndef CS_OPS_NODEOPTS_H
#define CS_OPS_NODEOPTS_H

#include "cassandra/node.h"
#include "cassandra/nodetool.h"
#include "ops/host.h"

/* purpose: the operation that connects ("backup"), for messages. */
void cs_ops_cql_opts(const cs_host *host, const char *purpose, cs_cql_opts *out);
void cs_ops_nodetool_opts(const cs_host *host, cs_nodetool_opts *out);

#endif

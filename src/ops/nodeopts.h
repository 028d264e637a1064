/* nodeopts.h - the option structs of cassandra/ built from an operation's
 * settings (internal to ops/).
 *
 * Owns: the one place that maps the [cassandra] settings (host, port,
 * credentials, TLS files, timeout, nodetool template, JMX credentials) onto
 * cs_cql_opts and cs_nodetool_opts, so that cassandra/ never sees the CLI
 * config. The structs borrow cfg's strings: they live as long as cfg.
 * Must not: connect, run anything, or check values (cassandra/ does). */
#ifndef CS_OPS_NODEOPTS_H
#define CS_OPS_NODEOPTS_H

#include "cassandra/node.h"
#include "cassandra/nodetool.h"
#include "common/config.h"

void cs_ops_cql_opts(const cs_config *cfg, cs_cql_opts *out);
void cs_ops_nodetool_opts(const cs_config *cfg, cs_nodetool_opts *out);

#endif

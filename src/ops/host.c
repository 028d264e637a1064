/* host.c - the host's field table (see the header). */
#include "ops/host.h"

#include <stddef.h>

#define F(name, type) { #name, type, offsetof(cs_host, name), NULL, 0, 0, 0, NULL, NULL, NULL, NULL }
static const cs_field fields[] = {
    F(identity, CS_F_STRING),
    F(catalog, CS_F_STRING),
    F(state_dir, CS_F_STRING),
    F(storage_opts, CS_F_SETTINGS),
    F(cql_host, CS_F_STRING),
    F(cql_port, CS_F_INT),
    F(cql_user, CS_F_STRING),
    F(cql_password, CS_F_STRING),
    F(cql_tls, CS_F_BOOL),
    F(cql_ca_file, CS_F_STRING),
    F(cql_cert, CS_F_STRING),
    F(cql_key, CS_F_STRING),
    F(cql_timeout, CS_F_DURATION),
    F(jmx_user, CS_F_STRING),
    F(jmx_password, CS_F_STRING),
    F(nodetool, CS_F_STRING),
    F(sstableloader, CS_F_STRING),
    F(data_dirs, CS_F_STRLIST),
    F(commitlog_dir, CS_F_STRING),
    F(hints_dir, CS_F_STRING),
    F(saved_caches_dir, CS_F_STRING),
    F(staging_dir, CS_F_STRING),
    F(cassandra_yaml, CS_F_STRING),
    F(agent_token_file, CS_F_STRING),
    F(agent_ca_file, CS_F_STRING),
    F(agent_cert, CS_F_STRING),
    F(agent_key, CS_F_STRING),
};
#undef F

const cs_field *cs_host_fields(size_t *n)
{
    *n = sizeof fields / sizeof fields[0];
    return fields;
}

void cs_host_free(cs_host *host)
{
    cs_fields_free(fields, sizeof fields / sizeof fields[0], host);
}

/* nodeopts.c - cs_cql_opts and cs_nodetool_opts from the config (see
 * nodeopts.h). */
#include "ops/nodeopts.h"

#include <string.h>

/* Seconds of the setting as milliseconds: 10 s when unset, at most a day
 * (it must fit an int). */
static int timeout_ms(double seconds)
{
    if (seconds <= 0)
        return 10000;
    return seconds >= 86400 ? 86400000 : (int)(seconds * 1000);
}

void cs_ops_cql_opts(const cs_config *cfg, cs_cql_opts *out)
{
    memset(out, 0, sizeof *out);
    out->hosts = cfg->cql_host;
    out->port = (int)cfg->cql_port;
    out->timeout_ms = timeout_ms(cfg->cql_timeout);
    out->username = cfg->cql_user;
    out->password = cfg->cql_password;
    out->tls = cfg->cql_tls;
    out->ca_file = cfg->cql_ca_file;
    out->cert_file = cfg->cql_cert;
    out->key_file = cfg->cql_key;
    out->purpose = cfg->command;
}

void cs_ops_nodetool_opts(const cs_config *cfg, cs_nodetool_opts *out)
{
    memset(out, 0, sizeof *out);
    out->command = cfg->nodetool;
    out->jmx_user = cfg->jmx_user;
    out->jmx_password = cfg->jmx_password;
}

/* nodeopts.c - cs_cql_opts and cs_nodetool_opts from the host (see
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

void cs_ops_cql_opts(const cs_host *host, const char *purpose, cs_cql_opts *out)
{
    memset(out, 0, sizeof *out);
    out->hosts = host->cql_host;
    out->port = (int)host->cql_port;
    out->timeout_ms = timeout_ms(host->cql_timeout);
    out->username = host->cql_user;
    out->password = host->cql_password;
    out->tls = host->cql_tls;
    out->ca_file = host->cql_ca_file;
    out->cert_file = host->cql_cert;
    out->key_file = host->cql_key;
    out->purpose = purpose;
}

void cs_ops_nodetool_opts(const cs_host *host, cs_nodetool_opts *out)
{
    memset(out, 0, sizeof *out);
    out->command = host->nodetool;
    out->jmx_user = host->jmx_user;
    out->jmx_password = host->jmx_password;
}

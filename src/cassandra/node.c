#include "cassandra/node.h"

#include <ctype.h>
#include <netdb.h>
#include <poll.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

int cs_node_connect(const cs_config *cfg, cql_conn **out, cs_err *e)
{
    cql_conn_opts opts = {
        .host = cfg->cql_host,
        .port = (int)cfg->cql_port,
        .timeout_ms = 10000,
        .username = cfg->cql_user,
        .password = cfg->cql_password,
        .tls = cfg->cql_tls,
        .ca_file = cfg->cql_ca_file,
        .cert_file = cfg->cql_cert,
        .key_file = cfg->cql_key,
    };
    return cql_connect(&opts, out, e);
}

static char *dup_text(const cql_result *r, size_t row, const char *col)
{
    const char *t = cql_result_text(r, row, col);
    return cs_strdup(t ? t : "");
}

void cs_node_parse_dir_list(const char *value, cs_strlist *out)
{
    const char *p = value;
    while (*p) {
        while (*p == '[' || *p == ' ' || *p == ',' || *p == '"')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ']' && *end != '"')
            end++;
        size_t n = (size_t)(end - p);
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n) {
            char *item = cs_strndup(p, n);
            cs_strlist_add(out, item);
            free(item);
        }
        if (!*end)
            break;
        p = end + 1;
    }
}

static int read_settings(cql_conn *c, cs_node_info *info, cs_err *e)
{
    cql_result *r = NULL;
    int rc = cql_query(c,
                       "SELECT name, value FROM system_views.settings WHERE name IN "
                       "('data_file_directories', 'commitlog_directory', 'hints_directory', "
                       "'saved_caches_directory')",
                       &r, e);
    if (rc)
        return cs_err_prefix(e, "reading the node's directories");
    for (size_t i = 0; i < cql_result_rows(r); i++) {
        const char *name = cql_result_text(r, i, "name");
        const char *value = cql_result_text(r, i, "value");
        if (!name || !value)
            continue;
        if (!strcmp(name, "data_file_directories"))
            cs_node_parse_dir_list(value, &info->data_dirs);
        else if (!strcmp(name, "commitlog_directory"))
            info->commitlog_dir = cs_strdup(value);
        else if (!strcmp(name, "hints_directory"))
            info->hints_dir = cs_strdup(value);
        else if (!strcmp(name, "saved_caches_directory"))
            info->saved_caches_dir = cs_strdup(value);
    }
    cql_result_free(r);
    return 0;
}

int cs_node_read_info(cql_conn *c, cs_node_info *info, cs_err *e)
{
    memset(info, 0, sizeof *info);
    cql_result *r = NULL;
    int rc = cql_query(c,
                       "SELECT host_id, broadcast_address, listen_address, cluster_name, data_center, "
                       "rack, release_version, partitioner, tokens FROM system.local WHERE key = 'local'",
                       &r, e);
    if (rc)
        return cs_err_prefix(e, "reading system.local");
    if (cql_result_rows(r) != 1) {
        cql_result_free(r);
        return cs_err_set(e, CS_E_PROTO, "system.local returned %zu rows", cql_result_rows(r));
    }
    info->host_id = dup_text(r, 0, "host_id");
    info->address = dup_text(r, 0, cql_result_text(r, 0, "broadcast_address") ? "broadcast_address"
                                                                               : "listen_address");
    info->cluster_name = dup_text(r, 0, "cluster_name");
    info->datacenter = dup_text(r, 0, "data_center");
    info->rack = dup_text(r, 0, "rack");
    info->release_version = dup_text(r, 0, "release_version");
    info->partitioner = dup_text(r, 0, "partitioner");
    int col = cql_result_col(r, "tokens");
    const cql_value *tokens = col >= 0 ? cql_result_value(r, 0, (size_t)col) : NULL;
    if (tokens && tokens->kind == CQL_LIST)
        for (size_t i = 0; i < tokens->n; i++)
            if (tokens->items[i].kind == CQL_SCALAR)
                cs_strlist_add(&info->tokens, tokens->items[i].text);
    cql_result_free(r);
    if (!info->host_id[0])
        return cs_err_set(e, CS_E_PROTO, "system.local has no host_id");
    return read_settings(c, info, e);
}

void cs_node_info_free(cs_node_info *info)
{
    free(info->host_id);
    free(info->address);
    free(info->cluster_name);
    free(info->datacenter);
    free(info->rack);
    free(info->release_version);
    free(info->partitioner);
    cs_strlist_free(&info->tokens);
    cs_strlist_free(&info->data_dirs);
    free(info->commitlog_dir);
    free(info->hints_dir);
    free(info->saved_caches_dir);
    memset(info, 0, sizeof *info);
}

int cs_node_read_schema(cql_conn *c, json_t **out, cs_err *e)
{
    cql_result *r = NULL;
    int rc = cql_query(c, "DESCRIBE SCHEMA", &r, e);
    if (rc)
        return cs_err_prefix(e, "DESCRIBE SCHEMA");
    json_t *rows = json_array();
    for (size_t i = 0; i < cql_result_rows(r); i++) {
        const char *ks = cql_result_text(r, i, "keyspace_name");
        const char *type = cql_result_text(r, i, "type");
        const char *name = cql_result_text(r, i, "name");
        const char *cql = cql_result_text(r, i, "create_statement");
        if (!ks || !type || !cql)
            continue;
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s}", "keyspace", ks, "type", type,
                                              "name", name ? name : "", "cql", cql));
    }
    cql_result_free(r);
    *out = rows;
    return 0;
}

bool cs_node_is_system_keyspace(const char *ks)
{
    static const char *const system[] = { "system", "system_schema", "system_auth", "system_distributed",
                                          "system_traces", "system_views", "system_virtual_schema",
                                          "system_cluster_metadata" };
    for (size_t i = 0; i < sizeof system / sizeof system[0]; i++)
        if (!strcmp(ks, system[i]))
            return true;
    return false;
}

bool cs_node_is_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 222)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_')
            return false;
    return true;
}

static bool connect_within(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return false;
    bool up = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!up) {
        struct pollfd p = { fd, POLLOUT, 0 };
        int err = 0;
        socklen_t len = sizeof err;
        up = poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    close(fd);
    return up;
}

bool cs_node_is_listening(const char *host, int port)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return false;
    bool up = false;
    for (struct addrinfo *ai = res; ai && !up; ai = ai->ai_next)
        up = connect_within(ai, 3000);
    freeaddrinfo(res);
    return up;
}

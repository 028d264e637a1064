#include "cassandra/node.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"
#include "io/net.h"

static int connect_point(const cs_cql_opts *o, const cs_contact_point *p, cql_conn **out,
                         cs_err *e)
{
    cql_conn_opts opts = {
        .host = p->host,
        .port = p->port,
        .timeout_ms = o->timeout_ms,
        .username = o->username,
        .password = o->password,
        .tls = o->tls,
        .ca_file = o->ca_file,
        .cert_file = o->cert_file,
        .key_file = o->key_file,
    };
    return cql_connect(&opts, out, e);
}

static int parse_hosts(const cs_cql_opts *o, cs_contact_point **points, size_t *n, cs_err *e)
{
    int port = o->port ? o->port : 9042;
    if (cs_contact_points_parse(o->hosts ? o->hosts : "", port, points, n, e))
        return cs_err_prefix(e, "{cql_host}");
    return 0;
}

int cs_node_connect(const cs_cql_opts *opts, cql_conn **out, cs_err *e)
{
    cs_contact_point *points = NULL;
    size_t n = 0;
    int rc = parse_hosts(opts, &points, &n, e);
    if (!rc && n > 1)
        rc = cs_err_set(e, CS_E_INVAL, "{cql_host}: %s talks to the node it works on: give "
                        "its own address, not a list of contact points",
                        opts->purpose ? opts->purpose : "this operation");
    if (!rc)
        rc = connect_point(opts, &points[0], out, e);
    cs_contact_points_free(points, n);
    return rc;
}

/* Worth trying another contact point after this failure? Unreachable, or a
 * TLS/protocol failure with this node; not a refused login or a bad file. */
static bool try_next_after(int code)
{
    return code == CS_E_UNAVAIL || code == CS_E_IO || code == CS_E_PROTO;
}

int cs_cluster_connect(const cs_cql_opts *opts, cql_conn **out, cs_err *e)
{
    cs_contact_point *points = NULL;
    size_t n = 0;
    int rc = parse_hosts(opts, &points, &n, e);
    if (rc)
        return rc;
    cs_buf reasons = { 0 };
    for (size_t i = 0; i < n; i++) {
        cs_err one = { 0 };
        rc = connect_point(opts, &points[i], out, &one);
        if (!rc || !try_next_after(rc) || n == 1) {
            if (rc)
                *e = one;
            break;
        }
        cs_info("contact point %s:%d: %s; trying the next", points[i].host, points[i].port,
                one.msg);
        cs_buf_printf(&reasons, "%s%s", reasons.len ? "; " : "", one.msg);
    }
    if (rc && n > 1 && try_next_after(rc))
        rc = cs_err_set(e, CS_E_UNAVAIL, "no contact point answered: %s", cs_buf_str(&reasons));
    cs_buf_free(&reasons);
    cs_contact_points_free(points, n);
    return rc;
}

static int parse_port(const char *s, size_t len, int *port, cs_err *e)
{
    long v = 0;
    if (len == 0 || len > 5)
        return cs_err_set(e, CS_E_INVAL, "bad port \"%.*s\"", (int)len, s);
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return cs_err_set(e, CS_E_INVAL, "bad port \"%.*s\"", (int)len, s);
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return cs_err_set(e, CS_E_INVAL, "port %ld is outside 1..65535", v);
    *port = (int)v;
    return 0;
}

/* One item, already trimmed: "host", "host:port", "[v6]", "[v6]:port", "v6". */
static int parse_point(const char *s, size_t len, int default_port, cs_contact_point *p,
                       cs_err *e)
{
    const char *host = s, *colon = memchr(s, ':', len);
    size_t hlen = len;
    p->port = default_port;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return cs_err_set(e, CS_E_INVAL, "unclosed [ in \"%.*s\"", (int)len, s);
        host = s + 1;
        hlen = (size_t)(close - host);
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest && (close[1] != ':' || parse_port(close + 2, rest - 1, &p->port, e)))
            return e->code ? e->code
                           : cs_err_set(e, CS_E_INVAL, "bad contact point \"%.*s\"", (int)len, s);
    } else if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - s))) {
        hlen = (size_t)(colon - s); /* one colon: host:port (two or more: bare IPv6) */
        if (parse_port(colon + 1, len - hlen - 1, &p->port, e))
            return e->code;
    }
    if (hlen == 0)
        return cs_err_set(e, CS_E_INVAL, "contact point \"%.*s\" has no host", (int)len, s);
    p->host = cs_strndup(host, hlen);
    return 0;
}

int cs_contact_points_parse(const char *list, int default_port, cs_contact_point **out,
                            size_t *n, cs_err *e)
{
    *out = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *q = list; *q; q++)
        cap += *q == ',';
    cs_contact_point *points = cs_calloc(cap, sizeof *points);
    size_t count = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (!len) {
            cs_contact_points_free(points, count);
            return cs_err_set(e, CS_E_INVAL, "empty contact point in \"%s\"", list);
        }
        if (parse_point(p, len, default_port, &points[count], e)) {
            cs_contact_points_free(points, count);
            return e->code;
        }
        count++;
        if (!end)
            break;
        p = end + 1;
    }
    *out = points;
    *n = count;
    return 0;
}

void cs_contact_points_free(cs_contact_point *points, size_t n)
{
    for (size_t i = 0; i < n && points; i++)
        free(points[i].host);
    free(points);
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

static void add_tokens(const cql_result *r, size_t row, cs_strlist *out)
{
    int col = cql_result_col(r, "tokens");
    const cql_value *tokens = col >= 0 ? cql_result_value(r, row, (size_t)col) : NULL;
    if (tokens && tokens->kind == CQL_LIST)
        for (size_t i = 0; i < tokens->n; i++)
            if (tokens->items[i].kind == CQL_SCALAR)
                cs_strlist_add(out, tokens->items[i].text);
}

/* The node's one row of system.local, these columns. */
static int read_local(cql_conn *c, const char *columns, cql_result **out, cs_err *e)
{
    char *q = cs_sprintf("SELECT %s FROM system.local WHERE key = 'local'", columns);
    int rc = cql_query(c, q, out, e);
    free(q);
    if (rc)
        return cs_err_prefix(e, "reading system.local");
    size_t rows = cql_result_rows(*out);
    if (rows != 1) {
        cql_result_free(*out);
        *out = NULL;
        return cs_err_set(e, CS_E_PROTO, "system.local returned %zu rows", rows);
    }
    return 0;
}

int cs_node_read_info(cql_conn *c, cs_node_info *info, cs_err *e)
{
    memset(info, 0, sizeof *info);
    cql_result *r = NULL;
    int rc = read_local(c, "host_id, broadcast_address, listen_address, cluster_name, data_center, rack, "
                           "release_version, partitioner, tokens", &r, e);
    if (rc)
        return rc;
    info->host_id = dup_text(r, 0, "host_id");
    info->address = dup_text(r, 0, cql_result_text(r, 0, "broadcast_address") ? "broadcast_address"
                                                                               : "listen_address");
    info->cluster_name = dup_text(r, 0, "cluster_name");
    info->datacenter = dup_text(r, 0, "data_center");
    info->rack = dup_text(r, 0, "rack");
    info->release_version = dup_text(r, 0, "release_version");
    info->partitioner = dup_text(r, 0, "partitioner");
    add_tokens(r, 0, &info->tokens);
    cql_result_free(r);
    if (!info->host_id[0])
        return cs_err_set(e, CS_E_PROTO, "system.local has no host_id");
    return read_settings(c, info, e);
}

static cs_ring_node *ring_add(cs_ring *ring)
{
    ring->nodes = cs_realloc(ring->nodes, (ring->n + 1) * sizeof *ring->nodes);
    cs_ring_node *n = &ring->nodes[ring->n++];
    memset(n, 0, sizeof *n);
    return n;
}

static void ring_fill(cs_ring_node *n, const cql_result *r, size_t row, const char *addr_col, const char *rpc_col)
{
    n->host_id = dup_text(r, row, "host_id");
    n->address = dup_text(r, row, addr_col);
    n->rpc_address = dup_text(r, row, rpc_col);
    n->datacenter = dup_text(r, row, "data_center");
    n->rack = dup_text(r, row, "rack");
    n->release_version = dup_text(r, row, "release_version");
    add_tokens(r, row, &n->tokens);
}

int cs_node_read_ring(cql_conn *c, cs_ring *ring, cs_err *e)
{
    memset(ring, 0, sizeof *ring);
    cql_result *r = NULL;
    int rc = read_local(c, "host_id, broadcast_address, rpc_address, cluster_name, data_center, rack, "
                           "release_version, partitioner, tokens", &r, e);
    if (rc)
        return rc;
    ring->cluster_name = dup_text(r, 0, "cluster_name");
    ring->partitioner = dup_text(r, 0, "partitioner");
    ring_fill(ring_add(ring), r, 0, "broadcast_address", "rpc_address");
    cql_result_free(r);
    r = NULL;
    rc = cql_query(c, "SELECT peer, native_address, host_id, data_center, rack, release_version, tokens "
                      "FROM system.peers_v2",
                   &r, e);
    if (rc) {
        cs_ring_free(ring);
        return cs_err_prefix(e, "reading system.peers_v2");
    }
    for (size_t i = 0; i < cql_result_rows(r); i++) {
        const char *id = cql_result_text(r, i, "host_id");
        if (id && id[0]) /* a peer being removed may have lost its row's fields */
            ring_fill(ring_add(ring), r, i, "peer", "native_address");
    }
    cql_result_free(r);
    for (size_t i = 0; i < ring->n; i++)
        if (!ring->nodes[i].host_id[0]) {
            cs_ring_free(ring);
            return cs_err_set(e, CS_E_PROTO, "system.local has no host_id");
        }
    return 0;
}

void cs_ring_free(cs_ring *ring)
{
    for (size_t i = 0; i < ring->n; i++) {
        cs_ring_node *n = &ring->nodes[i];
        free(n->host_id);
        free(n->address);
        free(n->rpc_address);
        free(n->datacenter);
        free(n->rack);
        free(n->release_version);
        cs_strlist_free(&n->tokens);
    }
    free(ring->nodes);
    free(ring->cluster_name);
    free(ring->partitioner);
    memset(ring, 0, sizeof *ring);
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

static bool schema_has_keyspace(const json_t *schema, const char *ks)
{
    size_t i;
    json_t *row;
    json_array_foreach(schema, i, row) {
        const char *name = json_string_value(json_object_get(row, "keyspace"));
        if (name && !strcmp(name, ks))
            return true;
    }
    return false;
}

int cs_node_check_keyspaces(const json_t *schema, const cs_strlist *names, cs_err *e)
{
    for (size_t n = 0; n < names->n; n++) {
        const char *ks = names->items[n];
        if (cs_node_is_system_keyspace(ks) || schema_has_keyspace(schema, ks))
            continue;
        /* Name the keyspaces there are (the first few): a typo shows at once. */
        cs_strlist known = { NULL, 0 };
        size_t i;
        json_t *row;
        json_array_foreach(schema, i, row) {
            const char *name = json_string_value(json_object_get(row, "keyspace"));
            if (name && !cs_strlist_has(&known, name))
                cs_strlist_add(&known, name);
        }
        cs_buf list = CS_BUF_INIT;
        for (size_t k = 0; k < known.n && k < 10; k++)
            cs_buf_printf(&list, "%s%s", k ? ", " : "", known.items[k]);
        if (known.n > 10)
            cs_buf_printf(&list, ", ... (%zu in all)", known.n);
        int rc = cs_err_set(e, CS_E_USAGE, "keyspace %s does not exist on the node (%s%s)", ks,
                            known.n ? "its keyspaces: " : "it has no keyspace of its own", cs_buf_str(&list));
        cs_buf_free(&list);
        cs_strlist_free(&known);
        return rc;
    }
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

bool cs_node_is_listening(const char *host, int port)
{
    return cs_net_is_listening(host, port, 3000);
}

static int wait_schema_agreement(cql_conn *c, int seconds, bool cancellable, cs_err *e)
{
    double deadline = cs_now() + seconds;
    for (;;) {
        cql_result *local = NULL, *peers = NULL;
        int rc = cql_query(c, "SELECT schema_version FROM system.local", &local, e);
        if (!rc)
            rc = cql_query(c, "SELECT peer, schema_version FROM system.peers", &peers, e);
        bool agree = !rc && cql_result_rows(local) == 1;
        const char *mine = agree ? cql_result_text(local, 0, "schema_version") : NULL;
        for (size_t i = 0; agree && i < cql_result_rows(peers); i++) {
            const char *theirs = cql_result_text(peers, i, "schema_version");
            agree = mine && theirs && !strcmp(mine, theirs);
        }
        cql_result_free(local);
        cql_result_free(peers);
        if (rc || agree)
            return rc;
        if (cs_now() > deadline)
            return cs_err_set(e, CS_E_EXTERNAL, "the nodes do not agree on the schema after %d s", seconds);
        if (!cancellable)
            cs_sleep(0.2);
        else if (cs_cancel_sleep(0.2, e))
            return e->code;
    }
}

int cs_node_wait_schema_agreement(cql_conn *c, int seconds, cs_err *e)
{
    return wait_schema_agreement(c, seconds, true, e);
}

int cs_node_settle_schema(cql_conn *c, int seconds, cs_err *e)
{
    return wait_schema_agreement(c, seconds, false, e);
}

char *cs_node_quote_name(const char *name)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_printf(&b, "\"");
    for (const char *p = name; *p; p++)
        cs_buf_printf(&b, *p == '"' ? "\"\"" : "%c", *p);
    cs_buf_printf(&b, "\"");
    char *out = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return out;
}

/* server_api_answers.c - answers of the server's REST API (server/api.h)
 * without a socket, for tests that hold them to docs/server-openapi.yaml.
 *
 * Usage: server_api_answers DIR < requests
 * DIR gets a SQLite state and a tokens file: "root admin" (token
 * admin-token-0123456789), "ops operator" limited to cluster c1
 * (oper-token-0123456789ab), "look viewer" (view-token-0123456789ab).
 * Each input line is a JSON object {"method", "path", "query"?, "token"?:
 * "admin"|"oper"|"view"|other text, "body"?: JSON value or a string sent
 * as it is}; each output line is {"status", "body"} (body null for 204; a
 * page's text as a string, with its "content_type" and "csp").
 * Fake hooks: discover fills a one-node topology, or fails (502) for a
 * contact containing "unreachable"; backups lists "b1"; metrics is one
 * gauge (the number of clusters the token is limited to). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "server/api.h"
#include "server/state.h"

static int fake_discover(void *ctx, json_t *cluster, cs_err *e)
{
    (void)ctx;
    const char *contact = json_string_value(json_object_get(cluster, "contact"));
    if (contact && strstr(contact, "unreachable"))
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach %s", contact);
    json_object_set_new(cluster, "name", json_string("Test Cluster"));
    json_object_set_new(cluster, "partitioner", json_string("org.apache.cassandra.dht.Murmur3Partitioner"));
    json_object_set_new(cluster, "datacenters", json_pack("[s]", "dc1"));
    json_object_set_new(cluster, "nodes", json_pack("[{s:s, s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:b}]", "host_id",
                                                    "h1", "address", "127.0.0.4", "rpc_address", "127.0.0.4",
                                                    "datacenter", "dc1", "rack", "rack1", "tokens", "0", "version",
                                                    "5.0", "agent", "http://127.0.0.4:7620", "ok", 1));
    json_object_set_new(cluster, "discovered", json_real(cs_now()));
    return 0;
}

static int fake_backups(void *ctx, const json_t *cluster, json_t **out, cs_err *e)
{
    (void)ctx;
    (void)cluster;
    (void)e;
    *out = json_pack("{s:[{s:s, s:s}]}", "backups", "name", "b1", "state", "complete");
    return 0;
}

static json_t *fake_info(void *ctx)
{
    (void)ctx;
    return json_pack("{s:b, s:i, s:i}", "leader", 1, "epoch", 7, "workers", 2);
}

static char *fake_metrics(void *ctx, const cs_strlist *clusters)
{
    (void)ctx;
    return cs_sprintf("# HELP cassette_clusters Registered clusters.\n# TYPE cassette_clusters gauge\n"
                      "cassette_clusters %zu\n", clusters ? clusters->n : 0);
}

static const char *token_of(const char *who)
{
    if (!who)
        return NULL;
    if (!strcmp(who, "admin"))
        return "admin-token-0123456789";
    if (!strcmp(who, "oper"))
        return "oper-token-0123456789ab";
    if (!strcmp(who, "view"))
        return "view-token-0123456789ab";
    return who;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: server_api_answers DIR < requests\n");
        return 2;
    }
    char *db = cs_path_join(argv[1], "state.db"), *tokens = cs_path_join(argv[1], "tokens");
    FILE *f = fopen(tokens, "w");
    if (!f)
        return 1;
    fputs("root admin admin-token-0123456789\nops operator oper-token-0123456789ab c1\n"
          "look viewer view-token-0123456789ab\n", f);
    fclose(f);
    chmod(tokens, 0600);
    cs_err e;
    cs_state *st = NULL;
    cs_api *api = NULL;
    cs_api_hooks hooks = { .discover = fake_discover, .backups = fake_backups, .info = fake_info,
                           .metrics = fake_metrics, .version = "test" };
    if (cs_state_open(db, NULL, &st, &e) || cs_api_new(st, &hooks, tokens, &api, &e)) {
        fprintf(stderr, "server_api_answers: %s\n", e.msg);
        return 1;
    }
    cs_httpd_opts opts = { .handler = cs_api_handle, .arg = api, .handler_auth = true };
    char line[65536];
    while (fgets(line, sizeof line, stdin)) {
        json_t *in = json_loads(line, 0, NULL);
        if (!in)
            continue;
        const json_t *b = json_object_get(in, "body");
        char *body = !b ? cs_strdup("") : json_is_string(b) ? cs_strdup(json_string_value(b)) : json_dumps(b, 0);
        const char *tok = token_of(json_string_value(json_object_get(in, "token")));
        char *auth = tok ? cs_sprintf("Bearer %s", tok) : NULL;
        cs_http_request req = { .method = json_string_value(json_object_get(in, "method")),
                                .path = json_string_value(json_object_get(in, "path")),
                                .query = json_string_value(json_object_get(in, "query")),
                                .authorization = auth, .body = body, .body_len = strlen(body) };
        cs_http_answer ans = { 0 };
        cs_http_dispatch(&opts, &req, &ans);
        json_t *answer = ans.body ? ans.body : ans.text ? json_stringn(ans.text, ans.text_len) : json_null();
        ans.body = NULL; /* json_pack takes it */
        json_t *out = json_pack("{s:i, s:o}", "status", (json_int_t)ans.status, "body",
                                answer ? answer : json_null());
        if (ans.text) { /* a page: its type and policy too */
            json_object_set_new(out, "content_type",
                                json_string(ans.content_type ? ans.content_type : "text/plain; charset=utf-8"));
            if (ans.csp)
                json_object_set_new(out, "csp", json_string(ans.csp));
        }
        cs_http_answer_clear(&ans);
        char *text = json_dumps(out, JSON_COMPACT);
        printf("%s\n", text);
        fflush(stdout);
        free(text);
        json_decref(out);
        free(auth);
        free(body);
        json_decref(in);
    }
    cs_api_free(api);
    cs_state_close(st);
    free(db);
    free(tokens);
    return 0;
}

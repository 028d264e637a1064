/* fuzz_server_api.c - libFuzzer target for the server's REST API: method,
 * path with its query string, Authorization header and body, through
 * cs_http_dispatch into server/api's routes over a real SQLite state (in a
 * temporary directory made once) with fake hooks (no cluster is asked).
 *
 * The input is "METHOD\nPATH[?QUERY]\nAUTHORIZATION\nBODY" (missing parts
 * empty). Every answer must be a status from the API's list; a 204 has no
 * body, every other answer a JSON body; an error is one object {"error":
 * non-empty one-line string, "field"?: string} and nothing else; without
 * a known token it is 401 (but /healthz and /version). Everything is
 * freed, so a leak on any path shows up under LeakSanitizer. The seed
 * corpus in tests/fuzz/corpus/server_api/ holds a request of each route.
 *
 * Build and run: `make fuzz-build`, then
 *   build/fuzz/fuzz_server_api -max_total_time=60 build/fuzz/server_api.work tests/fuzz/corpus/server_api
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/api.h"
#include "server/page.h"
#include "server/state.h"

#define ADMIN "fuzz-admin-token-0123456789"
#define OPER "fuzz-oper-token-0123456789"
#define VIEW "fuzz-view-token-0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_discover(void *ctx, json_t *cluster, cs_err *e)
{
    (void)ctx;
    const char *contact = json_string_value(json_object_get(cluster, "contact"));
    if (contact && strstr(contact, "unreachable"))
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach the cluster");
    json_object_set_new(cluster, "name", json_string("fuzz"));
    json_object_set_new(cluster, "nodes", json_array());
    return 0;
}

static int fake_backups(void *ctx, const json_t *cluster, json_t **out, cs_err *e)
{
    (void)ctx;
    (void)cluster;
    (void)e;
    *out = json_pack("{s:[{s:s}]}", "backups", "name", "b1");
    return 0;
}

static json_t *fake_info(void *ctx)
{
    (void)ctx;
    return json_pack("{s:b}", "leader", 1);
}

/* The next line of the input (up to '\n' or the end), NUL-terminated, owned. */
static char *fake_metrics(void *ctx, const cs_strlist *clusters)
{
    (void)ctx;
    (void)clusters;
    return strdup("# TYPE cassette_clusters gauge\ncassette_clusters 0\n");
}

static char *take_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl ? nl : end) - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

static void check_answer(const cs_http_answer *ans, bool authorized, bool open_path)
{
    static const unsigned ok[] = { 200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413, 502 };
    bool known = false;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        known |= ans->status == ok[i];
    if (!known || (ans->status == 204) != !(ans->body || ans->text))
        abort();
    if (ans->text && ans->status != 200) /* pages and /metrics; every error is JSON */
        abort();
    if (!authorized && !open_path && ans->status != 401 && ans->status != 413)
        abort();
    if (ans->status < 400)
        return;
    const char *msg = json_string_value(json_object_get(ans->body, "error"));
    const json_t *field = json_object_get(ans->body, "field");
    if (!msg || !*msg || strchr(msg, '\n') || (field && !json_is_string(field)))
        abort();
    if (json_object_size(ans->body) != (field ? 2u : 1u))
        abort();
}

static cs_api *api_once(void)
{
    static cs_api *api;
    static cs_state *st;
    if (api)
        return api;
    char dir[] = "/tmp/cassette-fuzz-api-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char db[128], tokens[128];
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(tokens, sizeof tokens, "%s/tokens", dir);
    FILE *f = fopen(tokens, "w");
    if (!f)
        abort();
    fputs("root admin " ADMIN "\nops operator " OPER " c1\nlook viewer " VIEW "\n", f);
    fclose(f);
    chmod(tokens, 0600);
    cs_err e;
    static const cs_api_hooks hooks = { .discover = fake_discover, .backups = fake_backups, .info = fake_info,
                                        .metrics = fake_metrics, .version = "fuzz" };
    if (cs_state_open(db, NULL, &st, &e) || cs_api_new(st, &hooks, tokens, &api, &e))
        abort();
    return api;
}

static bool token_ok(const char *auth)
{
    return cs_http_bearer_ok(auth, ADMIN) || cs_http_bearer_ok(auth, OPER) || cs_http_bearer_ok(auth, VIEW);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_api *api = api_once();
    const uint8_t *p = data, *end = data + size;
    char *method = take_line(&p, end), *path = take_line(&p, end), *auth = take_line(&p, end);
    char *q = strchr(path, '?');
    if (q)
        *q++ = '\0';
    size_t body_len = (size_t)(end - p);
    char *body = malloc(body_len + 1);
    memcpy(body, p, body_len);
    body[body_len] = '\0';
    cs_httpd_opts opts = { .max_body = 4096, .handler = cs_api_handle, .arg = api, .handler_auth = true };
    cs_http_request req = { .method = method, .path = path, .query = q, .authorization = *auth ? auth : NULL,
                            .body = body, .body_len = body_len, .body_too_big = body_len > 4096 };
    cs_http_answer ans = { 0 };
    cs_http_dispatch(&opts, &req, &ans);
    bool open_path = !strcmp(path, "/healthz") || !strcmp(path, "/version") || cs_page_has(path);
    check_answer(&ans, token_ok(req.authorization), open_path);
    cs_http_answer_clear(&ans);
    free(method);
    free(path);
    free(auth);
    free(body);
    return 0;
}

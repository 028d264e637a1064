/* fuzz_agent.c - libFuzzer target for the agent's handling of outside
 * input: method, path, Authorization header and body, through
 * cs_http_dispatch (bearer check, body limit) into the agent's routes.
 *
 * The input is "METHOD\nPATH\nAUTHORIZATION\nBODY" (missing parts empty).
 * The agent runs in dry-run mode (agent/agent.h): requests are routed and
 * checked, but no operation runs and the node is never asked. Every answer
 * must be a status from the API's list with a JSON body; an error is one
 * object {"error": non-empty one-line string, "field"?: string} and
 * nothing else; without the right token it is 401. Everything is freed,
 * so a leak on any path shows up under LeakSanitizer. The seed corpus in
 * tests/fuzz/corpus/agent/ holds a request of each route.
 *
 * Build and run: `make fuzz-build`, then
 *   build/fuzz/fuzz_agent -max_total_time=60 build/fuzz/agent.work tests/fuzz/corpus/agent
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

#define TOKEN "fuzz-token-0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of the input (up to '\n' or the end), NUL-terminated, owned. */
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

static void check_answer(const cs_http_answer *ans, bool authorized)
{
    static const unsigned ok[] = { 200, 202, 400, 401, 403, 404, 405, 413, 429, 502, 503 };
    bool known = false;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        known |= ans->status == ok[i];
    if (!known || !(ans->body || (ans->text && ans->status == 200))) /* /metrics is text; errors JSON */
        abort();
    if (!authorized && ans->status != 401)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cs_host host;
    static cs_agent *agent;
    if (!agent) {
        agent = cs_agent_new(&host);
        cs_agent_set_dry_run(agent, true);
        cs_agent_allow_repo(agent, "s3://b", NULL);
        cs_agent_allow_repo(agent, "/r", NULL);
    }
    const uint8_t *p = data, *end = data + size;
    char *method = take_line(&p, end), *path = take_line(&p, end), *auth = take_line(&p, end);
    size_t body_len = (size_t)(end - p);
    char *body = malloc(body_len + 1);
    memcpy(body, p, body_len);
    body[body_len] = '\0';
    cs_httpd_opts opts = { .token = TOKEN, .max_body = 4096, .handler = cs_agent_handle, .arg = agent };
    cs_http_request req = { .method = method, .path = path, .authorization = *auth ? auth : NULL, .body = body,
                            .body_len = body_len, .body_too_big = body_len > 4096 };
    cs_http_answer ans = { 0 };
    cs_http_dispatch(&opts, &req, &ans);
    check_answer(&ans, cs_http_bearer_ok(req.authorization, TOKEN));
    cs_http_answer_clear(&ans);
    free(method);
    free(path);
    free(auth);
    free(body);
    return 0;
}

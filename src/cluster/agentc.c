/* agentc.c - the coordinator's client of `cassette agent` (see the header). */
#include "cluster/agentc.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "storage/http.h"


struct cs_agentc {
    cs_http *http;
    char *auth; /* "Authorization: Bearer <token>", or NULL: never logged */
    char fence[48]; /* "X-Cassette-Epoch: N", or "": none */
};

int cs_agentc_new(const cs_agentc_opts *o, cs_agentc **out, cs_err *e)
{
    *out = NULL;
    char *auth = NULL;
    if (o->token_file && *o->token_file && cs_http_bearer_file(o->token_file, "{agent_token_file}", CS_E_INVAL, &auth, e))
        return e->code;
    cs_http_opts ho = {
        .ca_file = o->ca_file,
        .cert_file = o->cert_file,
        .key_file = o->key_file,
        .timeout_s = o->timeout_s > 0 ? o->timeout_s : 30,
        .retries = 2,
    };
    cs_agentc *c = cs_calloc(1, sizeof *c);
    c->http = cs_http_new(&ho);
    c->auth = auth;
    if (o->fence)
        snprintf(c->fence, sizeof c->fence, "X-Cassette-Epoch: %" PRIu64, o->fence);
    *out = c;
    return 0;
}

void cs_agentc_free(cs_agentc *c)
{
    if (!c)
        return;
    cs_http_free(c->http);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth));
        free(c->auth);
    }
    free(c);
}

typedef struct call {
    cs_http_req http; /* first: the callbacks get it back */
    cs_agentc *c;
    const char *url;
    bool has_body;
} call;

static int prepare(cs_http_req *r, const char *range, cs_http_attempt *a, cs_err *e)
{
    (void)range;
    (void)e;
    call *k = (call *)r;
    cs_http_attempt_url(a, k->url);
    if (k->c->auth)
        cs_http_attempt_header(a, k->c->auth);
    if (k->c->fence[0])
        cs_http_attempt_header(a, k->c->fence);
    cs_http_attempt_header(a, "Accept: application/json");
    if (k->has_body)
        cs_http_attempt_header(a, "Content-Type: application/json");
    return 0;
}

static int code_of_status(long status)
{
    switch (status) {
    case 400:
    case 401:
    case 403:
    case 405:
    case 413:
        return CS_E_USAGE;
    case 404:
        return CS_E_NOTFOUND;
    case 409:
    case 429:
        return CS_E_LOCKED;
    case 503:
        return CS_E_UNAVAIL;
    default:
        return CS_E_EXTERNAL;
    }
}

/* The agent's own sentence ({"error": "..."}), or the status. */
static int request_error(const cs_http_req *r, cs_err *e)
{
    if (r->transport_error)
        return cs_err_set(e, CS_E_UNAVAIL, "no answer: %s", r->transport_error);
    json_t *doc = json_loadb((const char *)r->resp.data, r->resp.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(doc, "error"));
    int rc = cs_err_set(e, code_of_status(r->status), "HTTP %ld: %s", r->status,
                        msg ? msg : (r->status == 401 ? "the agent refused the token" : "no reason given"));
    json_decref(doc);
    return rc;
}

/* One request; a cancellable one stops at once when a cancel is requested
 * (the calls that ask a job to stop, after that request, must not). */
static int agent_call(cs_agentc *c, const char *base, const char *method, const char *path, json_t *body,
                      bool cancellable, json_t **out, cs_err *e)
{
    *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char *url = cs_sprintf("%s%s", base, path);
    call k = { .c = c, .url = url, .has_body = text != NULL };
    k.http.method = method;
    k.http.body = (const uint8_t *)text;
    k.http.body_len = text ? strlen(text) : 0;
    k.http.cancellable = cancellable;
    k.http.service = "agent";
    k.http.target = path;
    k.http.prepare = prepare;
    k.http.error = request_error;
    int rc = cs_http_request(c->http, &k.http, e);
    if (!rc) {
        json_error_t je;
        *out = json_loadb((const char *)k.http.resp.data, k.http.resp.len, 0, &je);
        if (!*out)
            rc = cs_err_set(e, CS_E_PROTO, "the answer to %s %s is not JSON: %s", method, path, je.text);
    }
    if (rc)
        cs_err_prefix(e, "agent %s", base);
    cs_http_req_free(&k.http);
    free(url);
    free(text);
    return rc;
}

int cs_agentc_call(cs_agentc *c, const char *base, const char *method, const char *path, json_t *body,
                   json_t **out, cs_err *e)
{
    return agent_call(c, base, method, path, body, true, out, e);
}

int cs_agentc_node(cs_agentc *c, const char *base, json_t **out, cs_err *e)
{
    return cs_agentc_call(c, base, "GET", "/v1/node", NULL, out, e);
}

int cs_agentc_start(cs_agentc *c, const char *base, const char *op, json_t *request, uint64_t *job, cs_err *e)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, "/v1/ops/");
    for (const char *p = op; *p; p++) /* "snapshot clear": the agent's server unescapes the path */
        if (*p == ' ')
            cs_buf_addstr(&b, "%20");
        else
            cs_buf_addch(&b, *p);
    char *path = cs_buf_detach(&b);
    json_t *doc = NULL;
    int rc = cs_agentc_call(c, base, "POST", path, request, &doc, e);
    free(path);
    if (rc)
        return rc;
    json_int_t id = json_integer_value(json_object_get(doc, "job"));
    json_decref(doc);
    if (id <= 0)
        return cs_err_set(e, CS_E_PROTO, "agent %s: no job id in the answer to %s", base, op);
    *job = (uint64_t)id;
    return 0;
}

int cs_agentc_job(cs_agentc *c, const char *base, uint64_t job, json_t **out, cs_err *e)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRIu64, job);
    return cs_agentc_call(c, base, "GET", path, NULL, out, e);
}

int cs_agentc_cancel(cs_agentc *c, const char *base, uint64_t job, cs_err *e)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRIu64 "/cancel", job);
    json_t *doc = NULL;
    int rc = agent_call(c, base, "POST", path, NULL, false, &doc, e);
    json_decref(doc);
    return rc;
}

int cs_agentc_stop_job(cs_agentc *c, const char *base, uint64_t job, double timeout_s, cs_err *e)
{
    int rc = cs_agentc_cancel(c, base, job, e);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRIu64, job);
    double deadline = cs_now() + timeout_s, wait = 0.05;
    while (!rc) {
        json_t *doc = NULL;
        rc = agent_call(c, base, "GET", path, NULL, false, &doc, e);
        bool running = !rc && cs_agentc_job_running(doc);
        json_decref(doc);
        if (rc || !running)
            break;
        if (cs_now() >= deadline)
            return cs_err_set(e, CS_E_UNAVAIL, "agent %s: job %" PRIu64 " still runs %.0f s after it was canceled "
                              "(it stops at its next safe point)", base, job, timeout_s);
        cs_sleep(wait);
        wait = wait < 0.5 ? wait * 2 : 0.5;
    }
    return rc;
}

bool cs_agentc_job_running(const json_t *job)
{
    const char *state = json_string_value(json_object_get(job, "state"));
    return state && !strcmp(state, "running");
}

int cs_agentc_job_error(const json_t *job, cs_err *e)
{
    const char *state = json_string_value(json_object_get(job, "state"));
    if (state && !strcmp(state, "succeeded"))
        return 0;
    json_t *err = json_object_get(job, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    int code = cs_err_code_of(json_string_value(json_object_get(err, "code")));
    if (state && !strcmp(state, "canceled"))
        code = CS_E_CANCELED;
    return cs_err_set(e, code, "%s", msg ? msg : state ? state : "the job has no state");
}

char *cs_agentc_expand(const char *tmpl, const char *rpc_address, const char *address, const char *host_id,
                       cs_err *e)
{
    if (strncmp(tmpl, "https://", 8) && strncmp(tmpl, "http://", 7)) {
        cs_err_set(e, CS_E_USAGE, "{agent_template} %s: not an http:// or https:// URL", tmpl);
        return NULL;
    }
    cs_buf b = CS_BUF_INIT;
    for (const char *p = tmpl; *p;) {
        if (*p != '{') {
            cs_buf_addch(&b, *p++);
            continue;
        }
        const char *end = strchr(p, '}');
        size_t n = end ? (size_t)(end - p - 1) : 0;
        const char *v = NULL;
        if (end && n == 11 && !strncmp(p + 1, "rpc_address", n))
            v = rpc_address;
        else if (end && n == 7 && !strncmp(p + 1, "address", n))
            v = address;
        else if (end && n == 7 && !strncmp(p + 1, "host_id", n))
            v = host_id;
        if (!v) {
            cs_buf_free(&b);
            cs_err_set(e, CS_E_USAGE, "{agent_template} %s: only {rpc_address}, {address} and {host_id} can be "
                       "filled in", tmpl);
            return NULL;
        }
        /* An IPv6 address goes in brackets in a URL. */
        bool v6 = strchr(v, ':') != NULL && v[0] != '[';
        if (v6)
            cs_buf_addch(&b, '[');
        cs_buf_addstr(&b, v);
        if (v6)
            cs_buf_addch(&b, ']');
        p = end + 1;
    }
    return cs_buf_detach(&b);
}

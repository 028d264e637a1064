/* api.c - the server's REST API: tokens and roles, the routes, the audit
 * log (see the header). */
#include "server/api.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/strlist.h"
#include "server/model.h"
#include "server/page.h"

#define MIN_TOKEN 16
#define MAX_TOKENS_FILE (1u << 20)

typedef struct api_token {
    char *name;
    cs_api_role role;
    char *secret;
    cs_strlist clusters; /* empty: every cluster */
} api_token;

struct cs_api {
    cs_state *st;
    cs_api_hooks hooks;
    api_token *tokens;
    size_t n_tokens;
    bool open; /* no tokens file: everyone is admin */
};

/* One request on its way through the routes. */
typedef struct call {
    cs_api *api;
    const cs_http_request *req;
    cs_http_answer *ans;
    const char *who;
    cs_api_role role;
    const cs_strlist *clusters; /* NULL or empty: every cluster */
    char what[192];             /* for the audit log */
} call;

static const char *role_name(cs_api_role r)
{
    return r == CS_ROLE_ADMIN ? "admin" : r == CS_ROLE_OPERATOR ? "operator" : "viewer";
}

/* ---- tokens ---- */

static void tokens_free(cs_api *api)
{
    for (size_t i = 0; i < api->n_tokens; i++) {
        free(api->tokens[i].name);
        cs_http_token_free(api->tokens[i].secret);
        cs_strlist_free(&api->tokens[i].clusters);
    }
    free(api->tokens);
    api->tokens = NULL;
    api->n_tokens = 0;
}

static int parse_token_line(cs_api *api, char *line, size_t lineno, const char *path, cs_err *e)
{
    char *words[5] = { 0 };
    size_t n = 0;
    for (char *p = line; *p && n < 5;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        words[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (!n)
        return 0;
    if (n < 3 || n > 4)
        return cs_err_set(e, CS_E_INVAL, "tokens file %s line %zu: want NAME ROLE TOKEN [CLUSTER,...]", path, lineno);
    cs_api_role role = !strcmp(words[1], "viewer")   ? CS_ROLE_VIEWER :
                       !strcmp(words[1], "operator") ? CS_ROLE_OPERATOR :
                       !strcmp(words[1], "admin")    ? CS_ROLE_ADMIN : 0;
    if (!role)
        return cs_err_set(e, CS_E_INVAL, "tokens file %s line %zu: the role must be viewer, operator or admin", path,
                          lineno);
    if (strlen(words[2]) < MIN_TOKEN)
        return cs_err_set(e, CS_E_INVAL, "tokens file %s line %zu: a token must have at least %d characters", path,
                          lineno, MIN_TOKEN);
    for (size_t i = 0; i < api->n_tokens; i++)
        if (!strcmp(api->tokens[i].name, words[0]))
            return cs_err_set(e, CS_E_INVAL, "tokens file %s line %zu: the name %s is given twice", path, lineno,
                              words[0]);
    api->tokens = cs_realloc(api->tokens, (api->n_tokens + 1) * sizeof *api->tokens);
    api_token *t = &api->tokens[api->n_tokens++];
    memset(t, 0, sizeof *t);
    t->name = cs_strdup(words[0]);
    t->role = role;
    t->secret = cs_strdup(words[2]);
    if (n == 4)
        cs_strlist_add_csv(&t->clusters, words[3]);
    return 0;
}

static int read_tokens(cs_api *api, const char *path, cs_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cs_err_sys(e, CS_E_INVAL, errno, "tokens file %s", path);
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return cs_err_set(e, CS_E_INVAL, "tokens file %s may be read by others (mode %03o): chmod 600 it", path,
                          (unsigned)(st.st_mode & 0777));
    char *text = NULL;
    size_t len = 0;
    int rc = cs_read_file(path, MAX_TOKENS_FILE, &text, &len, e);
    if (rc)
        return cs_err_prefix(e, "tokens file");
    size_t lineno = 0;
    for (char *line = text; line && !rc;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        rc = parse_token_line(api, line, lineno, path, e);
        line = nl ? nl + 1 : NULL;
    }
    sodium_memzero(text, len);
    free(text);
    if (!rc && !api->n_tokens)
        rc = cs_err_set(e, CS_E_INVAL, "tokens file %s holds no token", path);
    return rc;
}

int cs_api_new(cs_state *st, const cs_api_hooks *hooks, const char *tokens_file, cs_api **out, cs_err *e)
{
    *out = NULL;
    if (sodium_init() < 0)
        return cs_err_set(e, CS_E_NOMEM, "libsodium cannot start");
    cs_api *api = cs_calloc(1, sizeof *api);
    api->st = st;
    if (hooks)
        api->hooks = *hooks;
    api->open = !tokens_file;
    if (tokens_file) {
        int rc = read_tokens(api, tokens_file, e);
        if (rc) {
            cs_api_free(api);
            return rc;
        }
    }
    *out = api;
    return 0;
}

void cs_api_free(cs_api *api)
{
    if (!api)
        return;
    tokens_free(api);
    free(api);
}

/* The token the Authorization header carries, or NULL. Every token is
 * compared, in constant time in its content. */
static const api_token *find_token(const cs_api *api, const char *authorization)
{
    static const char scheme[] = "Bearer ";
    if (!authorization || strncasecmp(authorization, scheme, sizeof scheme - 1))
        return NULL;
    const char *given = authorization + sizeof scheme - 1;
    size_t glen = strlen(given);
    const api_token *found = NULL;
    for (size_t i = 0; i < api->n_tokens; i++) {
        size_t n = strlen(api->tokens[i].secret);
        if (n == glen && sodium_memcmp(given, api->tokens[i].secret, n) == 0)
            found = &api->tokens[i];
    }
    return found;
}

/* ---- answers ---- */

static void answer(call *c, unsigned status, json_t *body)
{
    json_decref(c->ans->body);
    c->ans->status = status;
    c->ans->body = body;
}

static unsigned status_of(int code)
{
    switch (code) {
    case CS_E_INVAL:
    case CS_E_USAGE:
        return 400;
    case CS_E_NOTFOUND:
        return 404;
    case CS_E_EXISTS:
    case CS_E_LOCKED:
        return 409;
    case CS_E_EXTERNAL:
    case CS_E_UNAVAIL:
    case CS_E_PROTO:
        return 502;
    default:
        return 500;
    }
}

static void fail(call *c, const cs_err *e)
{
    cs_http_error(c->ans, status_of(e->code), e);
}

__attribute__((format(printf, 3, 4))) static void failf(call *c, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_http_error_msg(c->ans, status, msg);
}

__attribute__((format(printf, 2, 3))) static void what(call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->what, sizeof c->what, fmt, ap);
    va_end(ap);
}

/* ---- permissions ---- */

static bool need(call *c, cs_api_role role)
{
    if (c->role >= role)
        return true;
    failf(c, 403, "this needs the %s role (token %s has %s)", role_name(role), c->who, role_name(c->role));
    return false;
}

static bool may_see(const call *c, const char *cluster)
{
    return !c->clusters || !c->clusters->n || (cluster && cs_strlist_has(c->clusters, cluster));
}

static bool cluster_ok(call *c, const char *cluster)
{
    if (may_see(c, cluster))
        return true;
    failf(c, 403, "token %s may not act on this cluster", c->who);
    return false;
}

/* Keep only the documents of arr whose "cluster" (or "id") the caller may see. */
static void filter_visible(const call *c, json_t *arr, const char *key)
{
    for (size_t i = json_array_size(arr); i-- > 0;)
        if (!may_see(c, json_string_value(json_object_get(json_array_get(arr, i), key))))
            json_array_remove(arr, i);
}

/* ---- input ---- */

/* The body as a JSON object; an empty body is {} when empty_ok. */
static json_t *body_object(call *c, bool empty_ok)
{
    const cs_http_request *r = c->req;
    size_t n = r->body_len;
    const char *b = r->body ? r->body : "";
    size_t i = 0;
    while (i < n && isspace((unsigned char)b[i]))
        i++;
    if (i == n) {
        if (empty_ok)
            return json_object();
        failf(c, 400, "this request needs a JSON object as its body");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(b, n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        failf(c, 400, "malformed JSON at line %d column %d", je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        failf(c, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The value of query parameter name, decoded (owned), or NULL. */
static char *query_get(const char *query, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= nlen && !strncmp(p, name, nlen) && (len == nlen || p[nlen] == '=')) {
            const char *v = len == nlen ? p + len : p + nlen + 1;
            size_t vlen = (size_t)(p + len - v);
            char *out = cs_malloc(vlen + 1), *o = out;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] == '%' && i + 2 < vlen && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
                    *o++ = (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
                    i += 2;
                } else {
                    *o++ = v[i] == '+' ? ' ' : v[i];
                }
            }
            *o = '\0';
            return out;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static bool parse_limit(call *c, const char *text, size_t *out)
{
    *out = 0;
    if (!text)
        return true;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || !*text || *end || v < 1 || v > 1000) {
        cs_http_error_msg(c->ans, 400, "limit must be a whole number from 1 to 1000");
        json_object_set_new(c->ans->body, "field", json_string("limit"));
        return false;
    }
    *out = (size_t)v;
    return true;
}

/* ---- the store ---- */

/* A token limited to some clusters learns nothing of the others, not even
 * whether they exist: 403 before the store is asked. */
static json_t *get_cluster(call *c, const char *id)
{
    cs_err e;
    json_t *doc = NULL;
    if (!cluster_ok(c, id))
        return NULL;
    if (cs_state_cluster_get(c->api->st, id, &doc, &e)) {
        if (e.code == CS_E_NOTFOUND)
            failf(c, 404, "no cluster %s", cs_model_id_ok(id) ? id : "of that id");
        else
            fail(c, &e);
        return NULL;
    }
    return doc;
}

static void wake(call *c)
{
    if (c->api->hooks.wake)
        c->api->hooks.wake(c->api->hooks.ctx);
}

static int discover(call *c, json_t *cluster, cs_err *e)
{
    if (!c->api->hooks.discover)
        return 0;
    int rc = c->api->hooks.discover(c->api->hooks.ctx, cluster, e);
    if (rc && (e->code == CS_E_EXTERNAL || e->code == CS_E_UNAVAIL || e->code == CS_E_IO || e->code == CS_E_PROTO))
        e->code = CS_E_EXTERNAL; /* 502: the cluster cannot be reached */
    return rc;
}

/* Queue a run of kind with params on cluster (task: NULL or its task). */
static void queue_run(call *c, const json_t *cluster, const json_t *task, const char *kind, const json_t *params)
{
    cs_err e;
    const cs_op_def *op = NULL;
    void *req = NULL;
    if (cs_model_request(cluster, kind, params, &op, &req, &e)) {
        fail(c, &e);
        return;
    }
    cs_op_request_free(op, req);
    json_t *run = cs_model_run_new(cluster, task, kind, params, cs_now());
    if (cs_state_run_add(c->api->st, run, &e)) {
        json_decref(run);
        fail(c, &e);
        return;
    }
    what(c, "queued run %s (%s of cluster %s)", json_string_value(json_object_get(run, "id")), kind,
         json_string_value(json_object_get(cluster, "id")));
    wake(c);
    answer(c, 202, run);
}

/* ---- routes: clusters ---- */

static void clusters_list(call *c)
{
    cs_err e;
    json_t *arr = NULL;
    if (cs_state_cluster_list(c->api->st, &arr, &e)) {
        fail(c, &e);
        return;
    }
    filter_visible(c, arr, "id");
    answer(c, 200, json_pack("{s:o}", "clusters", arr));
}

static void clusters_create(call *c)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = body_object(c, false);
    if (!doc)
        return;
    cs_err e;
    if (cs_model_cluster_check(doc, true, cs_now(), &e)) {
        fail(c, &e);
    } else if (cluster_ok(c, json_string_value(json_object_get(doc, "id")))) {
        if (discover(c, doc, &e) || cs_state_cluster_put(c->api->st, doc, true, &e)) {
            fail(c, &e);
        } else {
            what(c, "registered cluster %s", json_string_value(json_object_get(doc, "id")));
            answer(c, 201, json_incref(doc));
        }
    }
    json_decref(doc);
}

static const char *const cluster_patchable[] = { "contact", "agents", "agent_template", "repo", "labels", NULL };
static const char *const task_patchable[] = { "kind", "schedule", "timezone", "window", "enabled", "retries",
                                               "retry_backoff", "params", NULL };

/* Merge patch onto doc (null removes a member); only fields in allowed. */
static bool merge_patch(call *c, json_t *doc, const json_t *patch, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(allowed[i], k);
        if (!ok) {
            cs_http_error_msg(c->ans, 400, "this field cannot be changed");
            json_object_set_new(c->ans->body, "field", cs_http_text_json(k));
            return false;
        }
        if (json_is_null(v))
            json_object_del(doc, k);
        else
            json_object_set(doc, k, v);
    }
    return true;
}

static void cluster_patch(call *c, const char *id)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = get_cluster(c, id);
    if (!doc)
        return;
    json_t *patch = body_object(c, false);
    cs_err e;
    if (patch && merge_patch(c, doc, patch, cluster_patchable)) {
        if (cs_model_cluster_check(doc, false, cs_now(), &e) || discover(c, doc, &e) ||
            cs_state_cluster_put(c->api->st, doc, false, &e)) {
            fail(c, &e);
        } else {
            what(c, "updated cluster %s", id);
            wake(c);
            answer(c, 200, json_incref(doc));
        }
    }
    json_decref(patch);
    json_decref(doc);
}

static void cluster_delete(call *c, const char *id)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = get_cluster(c, id);
    if (!doc)
        return;
    json_decref(doc);
    cs_err e;
    json_t *open = NULL;
    cs_run_filter f = { .cluster = id, .state = "open", .limit = 1 };
    if (cs_state_run_list(c->api->st, &f, &open, &e)) {
        fail(c, &e);
        return;
    }
    size_t n = json_array_size(open);
    json_decref(open);
    if (n) {
        failf(c, 409, "cluster %s has queued or running runs: cancel them first", id);
        return;
    }
    if (cs_state_cluster_delete(c->api->st, id, &e)) {
        fail(c, &e);
        return;
    }
    what(c, "removed cluster %s", id);
    wake(c);
    answer(c, 204, NULL);
}

static void cluster_discover(call *c, const char *id)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = get_cluster(c, id);
    if (!doc)
        return;
    cs_err e;
    json_object_set_new(doc, "updated", json_real(cs_now()));
    if (discover(c, doc, &e) || cs_state_cluster_put(c->api->st, doc, false, &e)) {
        fail(c, &e);
    } else {
        what(c, "discovered cluster %s", id);
        answer(c, 200, json_incref(doc));
    }
    json_decref(doc);
}

static void cluster_backups(call *c, const char *id, const char *name)
{
    json_t *doc = get_cluster(c, id);
    if (!doc)
        return;
    cs_err e;
    json_t *out = NULL;
    if (!c->api->hooks.backups) {
        failf(c, 502, "this server cannot read repositories");
    } else if (c->api->hooks.backups(c->api->hooks.ctx, doc, &out, &e)) {
        if (e.code != CS_E_NOTFOUND && status_of(e.code) == 500)
            e.code = CS_E_EXTERNAL;
        fail(c, &e);
    } else if (!name) {
        if (!json_is_array(json_object_get(out, "backups")))
            json_object_set_new(out, "backups", json_array());
        answer(c, 200, json_incref(out));
    } else {
        const json_t *b, *found = NULL;
        size_t i;
        json_array_foreach(json_object_get(out, "backups"), i, b) {
            const char *n = json_string_value(json_object_get(b, "name"));
            if (n && !strcmp(n, name))
                found = b;
        }
        if (found)
            answer(c, 200, json_deep_copy(found));
        else
            failf(c, 404, "no backup %s in cluster %s's repository", cs_model_id_ok(name) ? name : "of that name", id);
    }
    json_decref(out);
    json_decref(doc);
}

static void cluster_start(call *c, const char *id, const char *kind)
{
    if (!need(c, CS_ROLE_OPERATOR))
        return;
    json_t *doc = get_cluster(c, id);
    if (!doc)
        return;
    json_t *params = body_object(c, true);
    if (params)
        queue_run(c, doc, NULL, kind, params);
    json_decref(params);
    json_decref(doc);
}

static void cluster_restores(call *c, const char *id)
{
    json_t *doc = get_cluster(c, id);
    if (!doc)
        return;
    json_decref(doc);
    cs_err e;
    json_t *arr = NULL;
    cs_run_filter f = { .cluster = id, .kind = "restore" };
    if (cs_state_run_list(c->api->st, &f, &arr, &e))
        fail(c, &e);
    else
        answer(c, 200, json_pack("{s:o}", "restores", arr));
}

/* ---- routes: tasks ---- */

/* task with "next" (cs_model_task_next; null: none), for an answer. */
static json_t *with_next(json_t *task)
{
    double next = cs_model_task_next(task, cs_now());
    json_object_set_new(task, "next", next > 0 ? json_real(next) : json_null());
    return task;
}

static json_t *get_task(call *c, const char *id)
{
    cs_err e;
    json_t *doc = NULL;
    if (cs_state_task_get(c->api->st, id, &doc, &e)) {
        if (e.code == CS_E_NOTFOUND)
            failf(c, 404, "no task %s", cs_model_id_ok(id) ? id : "of that id");
        else
            fail(c, &e);
        return NULL;
    }
    if (!cluster_ok(c, json_string_value(json_object_get(doc, "cluster")))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void tasks_list(call *c)
{
    char *cluster = query_get(c->req->query, "cluster");
    cs_err e;
    json_t *arr = NULL;
    if (cluster && !cluster_ok(c, cluster)) {
        free(cluster);
        return;
    }
    if (cs_state_task_list(c->api->st, cluster, &arr, &e)) {
        fail(c, &e);
    } else {
        filter_visible(c, arr, "cluster");
        size_t i;
        json_t *t;
        json_array_foreach(arr, i, t)
            with_next(t);
        answer(c, 200, json_pack("{s:o}", "tasks", arr));
    }
    free(cluster);
}

static void tasks_create(call *c)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = body_object(c, false);
    if (!doc)
        return;
    const json_t *cl = json_object_get(doc, "cluster");
    cs_err e;
    json_t *cluster = NULL;
    if (!json_is_string(cl)) {
        cs_http_error_msg(c->ans, 400, "a task needs cluster (a registered cluster's id)");
        json_object_set_new(c->ans->body, "field", json_string("cluster"));
    } else if ((cluster = get_cluster(c, json_string_value(cl)))) {
        if (cs_model_task_check(doc, cluster, true, cs_now(), &e) || cs_state_task_put(c->api->st, doc, true, &e)) {
            fail(c, &e);
        } else {
            what(c, "added task %s (%s of cluster %s)", json_string_value(json_object_get(doc, "id")),
                 json_string_value(json_object_get(doc, "kind")), json_string_value(cl));
            wake(c);
            answer(c, 201, with_next(json_incref(doc)));
        }
    }
    json_decref(cluster);
    json_decref(doc);
}

static void task_patch(call *c, const char *id)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = get_task(c, id);
    if (!doc)
        return;
    json_t *patch = body_object(c, false), *cluster = NULL;
    cs_err e;
    if (patch && merge_patch(c, doc, patch, task_patchable) &&
        (cluster = get_cluster(c, json_string_value(json_object_get(doc, "cluster"))))) {
        if (cs_model_task_check(doc, cluster, false, cs_now(), &e) ||
            cs_state_task_put(c->api->st, doc, false, &e)) {
            fail(c, &e);
        } else {
            what(c, "updated task %s", id);
            wake(c);
            answer(c, 200, with_next(json_incref(doc)));
        }
    }
    json_decref(cluster);
    json_decref(patch);
    json_decref(doc);
}

static void task_delete(call *c, const char *id)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    json_t *doc = get_task(c, id);
    if (!doc)
        return;
    json_decref(doc);
    cs_err e;
    if (cs_state_task_delete(c->api->st, id, &e)) {
        fail(c, &e);
        return;
    }
    what(c, "removed task %s", id);
    wake(c);
    answer(c, 204, NULL);
}

static void task_run(call *c, const char *id)
{
    if (!need(c, CS_ROLE_OPERATOR))
        return;
    json_t *task = get_task(c, id);
    if (!task)
        return;
    json_t *cluster = get_cluster(c, json_string_value(json_object_get(task, "cluster")));
    if (cluster)
        queue_run(c, cluster, task, json_string_value(json_object_get(task, "kind")),
                  json_object_get(task, "params"));
    json_decref(cluster);
    json_decref(task);
}

/* ---- routes: runs ---- */

static bool state_ok(const char *s)
{
    static const char *const states[] = { "queued", "running", "done", "failed", "cancelled", "interrupted", "open",
                                          NULL };
    for (size_t i = 0; states[i]; i++)
        if (!strcmp(states[i], s))
            return true;
    return false;
}

static void runs_list(call *c)
{
    const char *q = c->req->query;
    char *cluster = query_get(q, "cluster"), *task = query_get(q, "task"), *kind = query_get(q, "kind");
    char *state = query_get(q, "state"), *since = query_get(q, "since"), *limit = query_get(q, "limit");
    cs_run_filter f = { .cluster = cluster, .task = task, .kind = kind, .state = state };
    char *end = NULL;
    if (since) {
        f.since = strtod(since, &end);
        if (!*since || *end || !isfinite(f.since) || f.since < 0) {
            cs_http_error_msg(c->ans, 400, "since must be a time in seconds since the epoch");
            json_object_set_new(c->ans->body, "field", json_string("since"));
            goto out;
        }
    }
    if (state && !state_ok(state)) {
        cs_http_error_msg(c->ans, 400,
                          "state must be queued, running, done, failed, cancelled, interrupted or open");
        json_object_set_new(c->ans->body, "field", json_string("state"));
        goto out;
    }
    if (!parse_limit(c, limit, &f.limit) || (cluster && !cluster_ok(c, cluster)))
        goto out;
    if (!cluster && c->clusters && c->clusters->n == 1)
        f.cluster = c->clusters->items[0]; /* the limit counts its runs only */
    cs_err e;
    json_t *arr = NULL;
    if (cs_state_run_list(c->api->st, &f, &arr, &e)) {
        fail(c, &e);
    } else {
        filter_visible(c, arr, "cluster");
        answer(c, 200, json_pack("{s:o}", "runs", arr));
    }
out:
    free(cluster);
    free(task);
    free(kind);
    free(state);
    free(since);
    free(limit);
}

static json_t *get_run(call *c, const char *id)
{
    cs_err e;
    json_t *doc = NULL;
    if (cs_state_run_get(c->api->st, id, &doc, &e)) {
        if (e.code == CS_E_NOTFOUND)
            failf(c, 404, "no run %s", cs_model_id_ok(id) ? id : "of that id");
        else
            fail(c, &e);
        return NULL;
    }
    if (!cluster_ok(c, json_string_value(json_object_get(doc, "cluster")))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void run_cancel(call *c, const char *id)
{
    if (!need(c, CS_ROLE_OPERATOR))
        return;
    json_t *doc = get_run(c, id);
    if (!doc)
        return;
    const char *state = json_string_value(json_object_get(doc, "state"));
    if (cs_model_run_final(state)) {
        failf(c, 409, "run %s has ended (%s)", id, state);
        json_decref(doc);
        return;
    }
    json_decref(doc);
    cs_err e;
    char now_state[16];
    if (cs_state_run_cancel(c->api->st, id, now_state, &e)) {
        fail(c, &e);
        return;
    }
    if (cs_model_run_final(now_state) && strcmp(now_state, "cancelled")) {
        failf(c, 409, "run %s has ended (%s)", id, now_state);
        return;
    }
    what(c, "asked run %s to stop", id);
    wake(c);
    bool ended_here = !strcmp(now_state, "cancelled"); /* it was queued: the runner never saw it */
    doc = get_run(c, id);
    if (doc && ended_here && c->api->hooks.ended)
        c->api->hooks.ended(c->api->hooks.ctx, doc);
    if (doc)
        answer(c, 202, doc);
}

/* ---- routes: the rest ---- */

static void server_info(call *c)
{
    json_t *info = c->api->hooks.info ? c->api->hooks.info(c->api->hooks.ctx) : NULL;
    if (!json_is_object(info)) {
        json_decref(info);
        info = json_object();
    }
    if (!json_object_get(info, "state"))
        json_object_set_new(info, "state", json_string(cs_state_kind(c->api->st)));
    answer(c, 200, info);
}

/* The exposition of the clusters the caller may see (not audited: a GET). */
static void metrics_text(call *c)
{
    char *text = c->api->hooks.metrics ? c->api->hooks.metrics(c->api->hooks.ctx, c->clusters) : NULL;
    if (!text) {
        failf(c, 500, "this server has no metrics");
        return;
    }
    cs_http_answer_text(c->ans, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), true);
}

static void audit_list(call *c)
{
    if (!need(c, CS_ROLE_ADMIN))
        return;
    char *limit = query_get(c->req->query, "limit");
    size_t n = 0;
    if (parse_limit(c, limit, &n)) {
        cs_err e;
        json_t *arr = NULL;
        if (cs_state_audit_list(c->api->st, n, &arr, &e))
            fail(c, &e);
        else
            answer(c, 200, json_pack("{s:o}", "audit", arr));
    }
    free(limit);
}

/* ---- routing ---- */

#define MAX_SEGS 6

/* Split path "/v1/a/b" into its segments (owned copy in buf). */
static size_t split_path(const char *path, char *buf, size_t cap, char **segs)
{
    snprintf(buf, cap, "%s", path);
    size_t n = 0;
    for (char *p = buf; *p && n <= MAX_SEGS;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        segs[n++] = p;
        while (*p && *p != '/')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

static bool is(const call *c, const char *m)
{
    return !strcmp(c->req->method, m);
}

static void not_allowed(call *c)
{
    failf(c, 405, "method %s is not allowed here", is(c, "GET") || is(c, "POST") || is(c, "PATCH") ||
                                                           is(c, "DELETE") || is(c, "PUT") || is(c, "HEAD")
                                                       ? c->req->method
                                                       : "(this one)");
}

static void route_cluster(call *c, char **s, size_t n)
{
    const char *id = s[2];
    if (n == 3) {
        if (is(c, "GET")) {
            json_t *doc = get_cluster(c, id);
            if (doc)
                answer(c, 200, doc);
        } else if (is(c, "PATCH")) {
            cluster_patch(c, id);
        } else if (is(c, "DELETE")) {
            cluster_delete(c, id);
        } else {
            not_allowed(c);
        }
    } else if (n == 4 && !strcmp(s[3], "discover")) {
        is(c, "POST") ? cluster_discover(c, id) : not_allowed(c);
    } else if (n == 4 && !strcmp(s[3], "backups")) {
        if (is(c, "GET"))
            cluster_backups(c, id, NULL);
        else if (is(c, "POST"))
            cluster_start(c, id, "backup");
        else
            not_allowed(c);
    } else if (n == 5 && !strcmp(s[3], "backups")) {
        is(c, "GET") ? cluster_backups(c, id, s[4]) : not_allowed(c);
    } else if (n == 4 && !strcmp(s[3], "restores")) {
        if (is(c, "GET"))
            cluster_restores(c, id);
        else if (is(c, "POST"))
            cluster_start(c, id, "restore");
        else
            not_allowed(c);
    } else {
        failf(c, 404, "no such path");
    }
}

static void route_v1(call *c, char **s, size_t n)
{
    const char *what_ = s[1];
    if (n == 2 && !strcmp(what_, "server")) {
        is(c, "GET") ? server_info(c) : not_allowed(c);
    } else if (n == 2 && !strcmp(what_, "audit")) {
        is(c, "GET") ? audit_list(c) : not_allowed(c);
    } else if (n == 2 && !strcmp(what_, "clusters")) {
        if (is(c, "GET"))
            clusters_list(c);
        else if (is(c, "POST"))
            clusters_create(c);
        else
            not_allowed(c);
    } else if (n >= 3 && !strcmp(what_, "clusters")) {
        route_cluster(c, s, n);
    } else if (n == 2 && !strcmp(what_, "tasks")) {
        if (is(c, "GET"))
            tasks_list(c);
        else if (is(c, "POST"))
            tasks_create(c);
        else
            not_allowed(c);
    } else if (n == 3 && !strcmp(what_, "tasks")) {
        if (is(c, "GET")) {
            json_t *doc = get_task(c, s[2]);
            if (doc)
                answer(c, 200, with_next(doc));
        } else if (is(c, "PATCH")) {
            task_patch(c, s[2]);
        } else if (is(c, "DELETE")) {
            task_delete(c, s[2]);
        } else {
            not_allowed(c);
        }
    } else if (n == 4 && !strcmp(what_, "tasks") && !strcmp(s[3], "run")) {
        is(c, "POST") ? task_run(c, s[2]) : not_allowed(c);
    } else if (n == 2 && !strcmp(what_, "runs")) {
        is(c, "GET") ? runs_list(c) : not_allowed(c);
    } else if (n == 3 && !strcmp(what_, "runs")) {
        if (is(c, "GET")) {
            json_t *doc = get_run(c, s[2]);
            if (doc)
                answer(c, 200, doc);
        } else {
            not_allowed(c);
        }
    } else if (n == 4 && !strcmp(what_, "runs") && !strcmp(s[3], "cancel")) {
        is(c, "POST") ? run_cancel(c, s[2]) : not_allowed(c);
    } else {
        failf(c, 404, "no such path");
    }
}

static void audit(call *c)
{
    json_t *entry = json_object();
    json_object_set_new(entry, "who", cs_http_text_json(c->who));
    json_object_set_new(entry, "role", json_string(role_name(c->role)));
    json_object_set_new(entry, "method", cs_http_text_json(c->req->method));
    json_object_set_new(entry, "path", cs_http_text_json(c->req->path));
    json_object_set_new(entry, "status", json_integer(c->ans->status));
    if (!c->what[0]) {
        const char *msg = json_string_value(json_object_get(c->ans->body, "error"));
        snprintf(c->what, sizeof c->what, "refused: %s", msg ? msg : "no answer");
    }
    json_object_set_new(entry, "what", cs_http_text_json(c->what));
    cs_err e;
    if (cs_state_audit_add(c->api->st, entry, &e) && c->ans->status < 300) {
        /* A change that cannot be audited is still made; say so. */
        char msg[CS_ERR_MSG_MAX + 64];
        cs_err_render(&e, NULL, NULL, msg, sizeof msg);
        json_object_set_new(c->ans->body ? c->ans->body : entry, "audit_error", cs_http_text_json(msg));
    }
    json_decref(entry);
}

void cs_api_handle(void *arg, const cs_http_request *req, cs_http_answer *ans)
{
    cs_api *api = arg;
    call c = { .api = api, .req = req, .ans = ans, .who = "local", .role = CS_ROLE_ADMIN };
    const char *method = req->method ? req->method : "";
    const char *path = req->path ? req->path : "";
    cs_http_request r = *req;
    r.method = method;
    r.path = path;
    c.req = &r;
    char buf[512];
    char *segs[MAX_SEGS + 1] = { 0 };
    size_t n = strlen(path) < sizeof buf ? split_path(path, buf, sizeof buf, segs) : MAX_SEGS + 1;
    if (!strcmp(path, "/healthz") || !strcmp(path, "/version") || cs_page_has(path)) {
        if (!is(&c, "GET"))
            not_allowed(&c);
        else if (!strcmp(path, "/healthz"))
            answer(&c, 200, json_pack("{s:b}", "ok", 1));
        else if (!strcmp(path, "/version"))
            answer(&c, 200, json_pack("{s:s, s:i, s:b}", "version",
                                      api->hooks.version ? api->hooks.version : "unknown", "api", 1, "tokens",
                                      !api->open));
        else
            cs_page_answer(path, ans); /* the status page: its data comes from the API, with a token */
        return;
    }
    if (!api->open) {
        const api_token *t = find_token(api, req->authorization);
        if (!t) {
            cs_http_error_msg(ans, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
            return;
        }
        c.who = t->name;
        c.role = t->role;
        c.clusters = &t->clusters;
    }
    if (!strcmp(path, "/metrics"))
        is(&c, "GET") ? metrics_text(&c) : not_allowed(&c);
    else if (path[0] == '/' && n >= 2 && n <= 5 && !strcmp(segs[0], "v1"))
        route_v1(&c, segs, n);
    else
        failf(&c, 404, "no such path (the API is under /v1: server, clusters, tasks, runs, audit)");
    if (!ans->body && !ans->text && ans->status != 204)
        cs_http_error_msg(ans, 500, "no answer (a bug)");
    if (!is(&c, "GET") && !is(&c, "HEAD"))
        audit(&c);
}

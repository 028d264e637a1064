/* model.c - the server's documents: checks, defaults, and the mapping of a
 * task kind onto an operation of the op table (see the header). */
#include "server/model.h"

#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/fs.h"
#include "server/schedule.h"

#define MAX_ID 64

bool cs_model_id_ok(const char *id)
{
    if (!id || !*id || id[0] == '.' || id[0] == '-')
        return false;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok || n >= MAX_ID)
            return false;
    }
    return true;
}

char *cs_model_new_id(const char *prefix)
{
    char stamp[32];
    time_t t = (time_t)cs_now();
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    unsigned char rnd[3];
    if (sodium_init() < 0)
        abort();
    randombytes_buf(rnd, sizeof rnd);
    char hex[7];
    cs_hex(rnd, sizeof rnd, hex);
    return cs_sprintf("%s-%sZ-%s", prefix, stamp, hex);
}

bool cs_model_run_final(const char *state)
{
    return state && (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled") ||
                     !strcmp(state, "interrupted"));
}

/* ---- field checks shared by the documents ---- */

/* An error about field: fmt's first %s is the field's name. */
__attribute__((format(printf, 3, 4))) static int bad(cs_err *e, const char *field, const char *fmt, ...)
{
    char msg[CS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_err_set(e, CS_E_INVAL, "%s", msg);
    return cs_err_field(e, field);
}

static bool has_only(const json_t *doc, const char *const *allowed, const char **unknown)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)doc, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(allowed[i], k);
        if (!ok) {
            *unknown = k;
            return false;
        }
    }
    return true;
}

static int unknown_field(cs_err *e, const char *what, const char *k)
{
    char name[CS_ERR_FIELD_MAX];
    snprintf(name, sizeof name, "%s", k);
    for (char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    cs_err_set(e, CS_E_INVAL, "unknown field \"%s\" in a %s", name, what);
    return cs_err_field(e, name);
}

/* A string member: absent is fine unless required; present: a non-empty string. */
static int want_string(const json_t *doc, const char *field, bool required, cs_err *e)
{
    const json_t *v = json_object_get(doc, field);
    if (!v)
        return required ? bad(e, field, "{%s} is required%s", field, "") : 0;
    if (!json_is_string(v) || !*json_string_value(v))
        return bad(e, field, "{%s} must be a non-empty string%s", field, "");
    if (strlen(json_string_value(v)) > 4096)
        return bad(e, field, "{%s} is too long%s", field, "");
    return 0;
}

static int want_number(const json_t *doc, const char *field, cs_err *e)
{
    const json_t *v = json_object_get(doc, field);
    if (v && !json_is_null(v) && (!json_is_number(v) || !isfinite(json_number_value(v))))
        return bad(e, field, "{%s} must be a number%s", field, "");
    return 0;
}

static int want_strings(const json_t *doc, const char *field, cs_err *e)
{
    const json_t *v = json_object_get(doc, field);
    if (!v)
        return 0;
    if (!json_is_array(v))
        return bad(e, field, "{%s} must be an array of strings%s", field, "");
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x) || !*json_string_value(x))
            return bad(e, field, "{%s} must be an array of non-empty strings%s", field, "");
    }
    return 0;
}

static int want_id(const json_t *doc, const char *field, cs_err *e)
{
    int rc = want_string(doc, field, false, e);
    if (!rc && json_object_get(doc, field) && !cs_model_id_ok(json_string_value(json_object_get(doc, field))))
        rc = bad(e, field, "{%s} is not a good id%s", field, " (1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -)");
    return rc;
}

static void set_default(json_t *doc, const char *field, json_t *value)
{
    if (!json_object_get(doc, field))
        json_object_set_new(doc, field, value);
    else
        json_decref(value);
}

/* ---- clusters ---- */

static const char *const cluster_fields[] = {
    "id", "contact", "agents", "agent_template", "repo", "labels", "name", "partitioner", "nodes", "datacenters",
    "discovered", "created", "updated", NULL,
};
static const char *const discovered_fields[] = { "name", "partitioner", "nodes", "datacenters", "discovered", NULL };

int cs_model_cluster_check(json_t *doc, bool create, double now, cs_err *e)
{
    const char *k = NULL;
    if (!json_is_object(doc))
        return cs_err_set(e, CS_E_INVAL, "a cluster is a JSON object");
    if (!has_only(doc, cluster_fields, &k))
        return unknown_field(e, "cluster", k);
    if (create)
        for (size_t i = 0; discovered_fields[i]; i++)
            if (json_object_get(doc, discovered_fields[i]))
                return bad(e, discovered_fields[i], "{%s} is filled by discovery, not given%s", discovered_fields[i], "");
    int rc = want_id(doc, "id", e);
    if (!rc)
        rc = want_string(doc, "contact", false, e);
    if (!rc)
        rc = want_strings(doc, "agents", e);
    if (!rc)
        rc = want_string(doc, "agent_template", false, e);
    if (!rc)
        rc = want_string(doc, "repo", true, e);
    if (rc)
        return rc;
    const json_t *agents = json_object_get(doc, "agents");
    size_t i;
    const json_t *x;
    json_array_foreach(agents, i, x) {
        const char *u = json_string_value(x);
        if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))
            return bad(e, "agents", "{%s}: an agent is an http:// or https:// URL%s", "agents", "");
    }
    const char *tmpl = json_string_value(json_object_get(doc, "agent_template"));
    if (tmpl && strncmp(tmpl, "http://", 7) && strncmp(tmpl, "https://", 8))
        return bad(e, "agent_template", "{%s} must be an http:// or https:// URL such as %s", "agent_template",
                   "https://{rpc_address}:7620");
    if (!json_object_get(doc, "contact") && !json_array_size(agents))
        return bad(e, "contact", "a cluster needs {%s} (a CQL contact point HOST[:PORT]) or agents%s", "contact", "");
    const json_t *labels = json_object_get(doc, "labels");
    if (labels) {
        const json_t *v;
        if (!json_is_object(labels))
            return bad(e, "labels", "{%s} must be an object of strings%s", "labels", "");
        json_object_foreach((json_t *)labels, k, v) {
            if (!json_is_string(v))
                return bad(e, "labels", "{%s} must be an object of strings%s", "labels", "");
        }
    }
    if (!create) {
        static const char *const strs[] = { "name", "partitioner", NULL };
        for (size_t j = 0; !rc && strs[j]; j++) {
            const json_t *v = json_object_get(doc, strs[j]);
            if (v && !json_is_string(v) && !json_is_null(v))
                rc = bad(e, strs[j], "{%s} must be a string%s", strs[j], "");
        }
        if (!rc && json_object_get(doc, "nodes") && !json_is_array(json_object_get(doc, "nodes")))
            rc = bad(e, "nodes", "{%s} must be an array%s", "nodes", "");
        if (!rc && json_object_get(doc, "datacenters") && !json_is_array(json_object_get(doc, "datacenters")))
            rc = bad(e, "datacenters", "{%s} must be an array%s", "datacenters", "");
        if (!rc)
            rc = want_number(doc, "discovered", e);
        if (!rc && !json_object_get(doc, "id"))
            rc = bad(e, "id", "{%s} is required%s", "id", "");
    }
    if (!rc)
        rc = want_number(doc, "created", e);
    if (rc)
        return rc;
    if (!json_object_get(doc, "id")) {
        char *id = cs_model_new_id("c");
        json_object_set_new(doc, "id", json_string(id));
        free(id);
    }
    if (create || !json_object_get(doc, "created"))
        json_object_set_new(doc, "created", json_real(now));
    json_object_set_new(doc, "updated", json_real(now));
    return 0;
}

/* ---- kinds and requests ---- */

static const char *kind_op(const char *kind)
{
    if (!kind)
        return NULL;
    if (!strcmp(kind, "backup"))
        return "cluster backup";
    if (!strcmp(kind, "restore"))
        return "cluster restore";
    if (!strcmp(kind, "purge"))
        return "purge";
    if (!strcmp(kind, "verify"))
        return "verify";
    if (!strcmp(kind, "snapshot_cleanup"))
        return "cluster snapshot-cleanup";
    if (!strcmp(kind, "drill"))
        return "cluster drill";
    return NULL;
}

static int find_op(const char *kind, const cs_op_def **op, cs_err *e)
{
    const char *name = kind_op(kind);
    if (!name)
        return bad(e, "kind", "{%s} must be one of %s", "kind", "backup, purge, verify, restore, snapshot_cleanup, drill");
    *op = cs_op_find(name);
    if (!*op) {
        cs_err_set(e, CS_E_INVAL, "%s is not available yet", kind);
        return cs_err_field(e, "kind");
    }
    return 0;
}

/* params as the operation's request document: the server's own params
 * (type) taken out, the target and repo from the cluster put in. */
static int request_json(const json_t *cluster, const char *kind, const cs_op_def *op, const json_t *params,
                        json_t **out, cs_err *e)
{
    static const char *const from_cluster[] = { "repo", "contact", "agents", "agent_template", NULL };
    *out = NULL;
    if (params && !json_is_null(params) && !json_is_object(params))
        return bad(e, "params", "{%s} must be an object%s", "params", "");
    for (size_t i = 0; from_cluster[i]; i++)
        if (json_object_get(params, from_cluster[i]))
            return bad(e, from_cluster[i], "{%s} comes from the cluster document; params may not set it%s", from_cluster[i], "");
    json_t *j = json_is_object(params) ? json_deep_copy(params) : json_object();
    if (!strcmp(kind, "backup")) {
        const json_t *type = json_object_get(j, "type");
        const char *t = type ? json_string_value(type) : "snapshot";
        if (!t || (strcmp(t, "snapshot") && strcmp(t, "cluster_consistent"))) {
            json_decref(j);
            return bad(e, "type", "{%s} must be %s", "type", "\"snapshot\" or \"cluster_consistent\"");
        }
        bool consistent = !strcmp(t, "cluster_consistent");
        static const char *const hooks[] = { "pause_cmd", "resume_cmd" };
        for (size_t i = 0; i < 2; i++) {
            const json_t *v = json_object_get(j, hooks[i]);
            bool given = json_is_string(v) && *json_string_value(v);
            if (consistent && !given) {
                json_decref(j);
                return bad(e, hooks[i], "a cluster_consistent backup needs {%s}%s", hooks[i],
                           " (the command that pauses or resumes the application)");
            }
            if (!consistent && v) {
                json_decref(j);
                return bad(e, hooks[i], "{%s} is for a backup of type %s", hooks[i], "cluster_consistent");
            }
        }
        json_object_del(j, "type");
    } else if (!strcmp(kind, "restore")) {
        if (!json_object_get(j, "backup")) {
            json_decref(j);
            return bad(e, "backup", "a restore needs {%s}%s", "backup", " (the backup's name: see the cluster's backups)");
        }
        if (!json_object_get(j, "yes") && !json_is_true(json_object_get(j, "plan")))
            json_object_set_new(j, "yes", json_true()); /* asking the API is the confirmation */
    }
    for (size_t i = 0; from_cluster[i]; i++) {
        const json_t *v = json_object_get(cluster, from_cluster[i]);
        if (v && !json_is_null(v) && cs_fields_find(op->fields, op->n_fields, from_cluster[i]))
            json_object_set_new(j, from_cluster[i], json_deep_copy(v));
    }
    *out = j;
    return 0;
}

int cs_model_request(const json_t *cluster, const char *kind, const json_t *params, const cs_op_def **op,
                     void **req, cs_err *e)
{
    *op = NULL;
    *req = NULL;
    const cs_op_def *o = NULL;
    json_t *j = NULL;
    int rc = find_op(kind, &o, e);
    if (!rc)
        rc = request_json(cluster, kind, o, params, &j, e);
    if (rc)
        return rc;
    void *r = cs_op_request_new(o, e);
    if (!r) {
        json_decref(j);
        return e->code ? e->code : cs_err_set(e, CS_E_INVAL, "%s: a bad default (a bug)", o->name);
    }
    rc = cs_op_request_from_json(o, j, r, e);
    json_decref(j);
    if (rc) {
        cs_op_request_free(o, r);
        if (rc != CS_E_NOMEM)
            e->code = CS_E_INVAL;
        return e->code;
    }
    *op = o;
    *req = r;
    return 0;
}

/* ---- tasks ---- */

static const char *const task_fields[] = {
    "id", "cluster", "kind", "schedule", "timezone", "window", "enabled", "retries", "retry_backoff", "params",
    "created", "updated", "last_slot", NULL,
};

static int check_when(const json_t *doc, cs_err *e)
{
    const char *tz = json_string_value(json_object_get(doc, "timezone"));
    const json_t *win = json_object_get(doc, "window");
    size_t n = json_array_size(win);
    const char **spans = cs_calloc(n + 1, sizeof *spans);
    for (size_t i = 0; i < n; i++)
        spans[i] = json_string_value(json_array_get(win, i));
    cs_window *w = NULL;
    int rc = cs_window_parse(spans, n, tz, &w, e);
    free(spans);
    cs_window_free(w);
    const char *sched = json_string_value(json_object_get(doc, "schedule"));
    if (!rc && sched) {
        cs_schedule *s = NULL;
        rc = cs_schedule_parse(sched, tz, &s, e);
        cs_schedule_free(s);
    }
    if (rc && rc != CS_E_NOMEM)
        e->code = CS_E_INVAL;
    return rc ? e->code : 0;
}

double cs_model_task_next(const json_t *task, double now)
{
    const char *sched = json_string_value(json_object_get(task, "schedule"));
    const json_t *en = json_object_get(task, "enabled");
    if (!sched || !*sched || (en && !json_is_true(en)))
        return 0;
    cs_schedule *s = NULL;
    cs_err e;
    cs_err_clear(&e);
    if (cs_schedule_parse(sched, json_string_value(json_object_get(task, "timezone")), &s, &e))
        return 0;
    double anchor = json_number_value(json_object_get(task, "created"));
    double last = json_number_value(json_object_get(task, "last_slot"));
    double t = floor(now);
    double next = cs_schedule_due(s, anchor, last, t);
    if (next <= 0)
        next = cs_schedule_next(s, anchor, last > t ? last : t);
    cs_schedule_free(s);
    return next;
}

int cs_model_task_check(json_t *doc, const json_t *cluster, bool create, double now, cs_err *e)
{
    const char *k = NULL;
    if (!json_is_object(doc))
        return cs_err_set(e, CS_E_INVAL, "a task is a JSON object");
    if (!has_only(doc, task_fields, &k))
        return unknown_field(e, "task", k);
    int rc = want_id(doc, "id", e);
    if (!rc)
        rc = want_id(doc, "cluster", e);
    if (!rc && !json_object_get(doc, "cluster"))
        rc = bad(e, "cluster", "a task needs {%s}%s", "cluster", " (a registered cluster's id)");
    if (!rc && cluster && strcmp(json_string_value(json_object_get(doc, "cluster")),
                                 json_string_value(json_object_get(cluster, "id")) ? json_string_value(json_object_get(cluster, "id")) : ""))
        rc = bad(e, "cluster", "{%s} is not the cluster given%s", "cluster", "");
    if (!rc)
        rc = want_string(doc, "kind", true, e);
    if (!rc && json_object_get(doc, "schedule") && !json_is_null(json_object_get(doc, "schedule")))
        rc = want_string(doc, "schedule", false, e);
    if (!rc)
        rc = want_string(doc, "timezone", false, e);
    if (!rc)
        rc = want_strings(doc, "window", e);
    if (!rc && json_object_get(doc, "enabled") && !json_is_boolean(json_object_get(doc, "enabled")))
        rc = bad(e, "enabled", "{%s} must be true or false%s", "enabled", "");
    const json_t *v = json_object_get(doc, "retries");
    if (!rc && v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10))
        rc = bad(e, "retries", "{%s} must be a whole number from 0 to %s", "retries", "10");
    v = json_object_get(doc, "retry_backoff");
    if (!rc && v && (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 86400)))
        rc = bad(e, "retry_backoff", "{%s} must be seconds from 0 to %s", "retry_backoff", "86400");
    v = json_object_get(doc, "params");
    if (!rc && v && !json_is_object(v))
        rc = bad(e, "params", "{%s} must be an object%s", "params", "");
    if (!rc)
        rc = want_number(doc, "created", e);
    if (!rc)
        rc = want_number(doc, "last_slot", e);
    if (!rc && json_is_null(json_object_get(doc, "schedule")))
        json_object_del(doc, "schedule");
    if (!rc)
        rc = check_when(doc, e);
    if (!rc && cluster) {
        const cs_op_def *op = NULL;
        void *req = NULL;
        rc = cs_model_request(cluster, json_string_value(json_object_get(doc, "kind")),
                              json_object_get(doc, "params"), &op, &req, e);
        if (!rc)
            cs_op_request_free(op, req);
    } else if (!rc) {
        const cs_op_def *op = NULL;
        rc = find_op(json_string_value(json_object_get(doc, "kind")), &op, e);
    }
    if (rc)
        return rc;
    if (!json_object_get(doc, "id")) {
        char *id = cs_model_new_id("t");
        json_object_set_new(doc, "id", json_string(id));
        free(id);
    }
    set_default(doc, "timezone", json_string("UTC"));
    set_default(doc, "enabled", json_true());
    set_default(doc, "retries", json_integer(1));
    set_default(doc, "retry_backoff", json_integer(60));
    set_default(doc, "params", json_object());
    if (create) {
        json_object_set_new(doc, "created", json_real(now));
        json_object_set_new(doc, "last_slot", json_integer(0));
    } else {
        set_default(doc, "created", json_real(now));
        set_default(doc, "last_slot", json_integer(0));
    }
    json_object_set_new(doc, "updated", json_real(now));
    return 0;
}

/* ---- runs ---- */

json_t *cs_model_run_new(const json_t *cluster, const json_t *task, const char *kind, const json_t *params,
                         double now)
{
    char *id = cs_model_new_id("r");
    const char *opname = kind_op(kind);
    const cs_op_def *op = opname ? cs_op_find(opname) : NULL;
    json_t *run = json_object();
    json_object_set_new(run, "id", json_string(id));
    free(id);
    const json_t *task_id = task ? json_object_get(task, "id") : NULL;
    json_object_set_new(run, "task", task_id ? json_deep_copy(task_id) : json_null());
    json_object_set_new(run, "cluster", json_deep_copy(json_object_get(cluster, "id")));
    json_object_set_new(run, "kind", json_string(kind ? kind : ""));
    json_object_set_new(run, "op", op ? json_string(op->name) : json_null());
    json_object_set_new(run, "params", json_is_object(params) ? json_deep_copy(params) : json_object());
    json_object_set_new(run, "state", json_string("queued"));
    json_object_set_new(run, "queued_at", json_real(now));
    json_object_set_new(run, "not_before", json_real(now));
    json_object_set_new(run, "started", json_null());
    json_object_set_new(run, "ended", json_null());
    json_object_set_new(run, "attempt", json_integer(1));
    json_object_set_new(run, "retry_of", json_null());
    json_object_set_new(run, "resumed_from", json_null());
    json_object_set_new(run, "server", json_null());
    json_object_set_new(run, "epoch", json_null());
    json_object_set_new(run, "progress", json_pack("{s:n, s:i, s:i, s:i, s:i}", "phase", "files_done", 0,
                                                   "files_total", 0, "bytes_done", 0, "bytes_total", 0));
    json_object_set_new(run, "files", json_integer(0));
    json_object_set_new(run, "bytes", json_integer(0));
    json_object_set_new(run, "result", json_null());
    json_object_set_new(run, "error", json_null());
    json_object_set_new(run, "error_code", json_null());
    return run;
}

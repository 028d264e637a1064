/* state.c - the state store's front: picks the back end from the url,
 * checks arguments, forwards to the back end, and makes export and import
 * (see state.h, state_impl.h). */
#include "server/state_impl.h"

#include <math.h>
#include <string.h>

#include "common/fs.h"

#define DEFAULT_HISTORY_SECONDS (30.0 * 86400.0)
#define EXPORT_FORMAT 1

/* ---- shared checks ---- */

static const char *const STATES[] = { "queued", "running", "done", "failed", "cancelled", "interrupted" };

bool cs_state_known(const char *name)
{
    for (size_t i = 0; name && i < sizeof STATES / sizeof STATES[0]; i++)
        if (!strcmp(name, STATES[i]))
            return true;
    return false;
}

bool cs_state_final(const char *name)
{
    return cs_state_known(name) && strcmp(name, "queued") && strcmp(name, "running");
}

static bool id_ok(const char *id, size_t len)
{
    return id && len > 0 && len <= CS_STATE_ID_MAX && strlen(id) == len;
}

static int bad_id(const char *what, const char *key, cs_err *e)
{
    cs_err_set(e, CS_E_INVAL, "%s: \"%s\" must be a non-empty string of at most %d bytes", what, key,
               CS_STATE_ID_MAX);
    return cs_err_field(e, key);
}

int cs_state_doc_id(const json_t *doc, const char *key, const char *what, const char **id, cs_err *e)
{
    const json_t *v = json_is_object(doc) ? json_object_get(doc, key) : NULL;
    if (!json_is_string(v) || !id_ok(json_string_value(v), json_string_length(v)))
        return bad_id(what, key, e);
    *id = json_string_value(v);
    return 0;
}

/* An id given as an argument (get, delete, cancel). */
static int check_id(const char *id, const char *what, cs_err *e)
{
    return id_ok(id, id ? strlen(id) : 0) ? 0 : bad_id(what, "id", e);
}

static int check_doc(const json_t *doc, const char *what, cs_err *e)
{
    const char *id;
    if (!json_is_object(doc))
        return cs_err_set(e, CS_E_INVAL, "%s: the document must be a JSON object", what);
    return cs_state_doc_id(doc, "id", what, &id, e);
}

static int check_state_name(const char *name, const char *what, const char *field, cs_err *e)
{
    if (cs_state_known(name))
        return 0;
    cs_err_set(e, CS_E_INVAL, "%s: \"%s\" is not a run state (queued, running, done, failed, cancelled, interrupted)",
               what, name ? name : "");
    return cs_err_field(e, field);
}

/* A run document: an id, a state, and the columns a back end indexes
 * (task, cluster, kind: strings or absent; queued_at: a number). */
static int check_run(const json_t *doc, cs_err *e)
{
    int rc = check_doc(doc, "run", e);
    if (rc)
        return rc;
    rc = check_state_name(json_string_value(json_object_get(doc, "state")), "run", "state", e);
    static const char *const keys[] = { "task", "cluster", "kind" };
    for (size_t i = 0; !rc && i < sizeof keys / sizeof keys[0]; i++) {
        const json_t *v = json_object_get(doc, keys[i]);
        const char *id;
        if (v && !json_is_null(v))
            rc = cs_state_doc_id(doc, keys[i], "run", &id, e);
    }
    const json_t *at = json_object_get(doc, "queued_at");
    if (!rc && at && !(json_is_number(at) && isfinite(json_number_value(at)))) {
        cs_err_set(e, CS_E_INVAL, "run: \"queued_at\" must be a number (seconds since the epoch)");
        rc = cs_err_field(e, "queued_at");
    }
    return rc;
}

static size_t list_limit(size_t limit)
{
    if (limit == 0)
        return CS_STATE_LIMIT_DEFAULT;
    return limit > CS_STATE_LIMIT_MAX ? CS_STATE_LIMIT_MAX : limit;
}

/* ---- opening ---- */

int cs_state_open(const char *url, const cs_state_opts *o, cs_state **out, cs_err *e)
{
    static const cs_state_opts none = { 0 };
    if (!o)
        o = &none;
    *out = NULL;
    if (!url || !*url)
        return cs_err_set(e, CS_E_USAGE, "state: no store given (sqlite:PATH, a path, or cassandra://HOST/KEYSPACE)");
    int rc;
    if (!strncmp(url, "cassandra://", 12)) {
        rc = cs_state_cql_open(url, o, out, e);
    } else {
        bool sqlite = !strncmp(url, "sqlite:", 7);
        const char *path = sqlite ? url + 7 : url;
        if (!*path)
            return cs_err_set(e, CS_E_USAGE, "state: %s names no file", url);
        if (!sqlite && strstr(url, "://"))
            return cs_err_set(e, CS_E_USAGE, "state: %s is neither sqlite:PATH, a path, nor cassandra://HOST/KEYSPACE",
                              url);
        rc = cs_state_sqlite_open(path, o, out, e);
    }
    if (rc)
        return rc;
    (*out)->history_seconds = o->history_seconds > 0 ? o->history_seconds : DEFAULT_HISTORY_SECONDS;
    return 0;
}

void cs_state_close(cs_state *s)
{
    if (s)
        s->ops->close(s);
}

const char *cs_state_kind(const cs_state *s)
{
    return s->ops->kind;
}

/* ---- clusters and tasks ---- */

int cs_state_cluster_put(cs_state *s, const json_t *doc, bool create, cs_err *e)
{
    int rc = check_doc(doc, "cluster", e);
    return rc ? rc : s->ops->cluster_put(s, doc, create, e);
}

int cs_state_cluster_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    *out = NULL;
    int rc = check_id(id, "cluster", e);
    return rc ? rc : s->ops->cluster_get(s, id, out, e);
}

int cs_state_cluster_list(cs_state *s, json_t **out, cs_err *e)
{
    *out = NULL;
    return s->ops->cluster_list(s, out, e);
}

int cs_state_cluster_delete(cs_state *s, const char *id, cs_err *e)
{
    int rc = check_id(id, "cluster", e);
    return rc ? rc : s->ops->cluster_delete(s, id, e);
}

int cs_state_task_put(cs_state *s, const json_t *doc, bool create, cs_err *e)
{
    const char *cluster;
    int rc = check_doc(doc, "task", e);
    if (!rc)
        rc = cs_state_doc_id(doc, "cluster", "task", &cluster, e);
    return rc ? rc : s->ops->task_put(s, doc, create, e);
}

int cs_state_task_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    *out = NULL;
    int rc = check_id(id, "task", e);
    return rc ? rc : s->ops->task_get(s, id, out, e);
}

int cs_state_task_list(cs_state *s, const char *cluster, json_t **out, cs_err *e)
{
    *out = NULL;
    int rc = cluster ? check_id(cluster, "task list", e) : 0;
    return rc ? rc : s->ops->task_list(s, cluster, out, e);
}

int cs_state_task_delete(cs_state *s, const char *id, cs_err *e)
{
    int rc = check_id(id, "task", e);
    return rc ? rc : s->ops->task_delete(s, id, e);
}

/* ---- runs ---- */

int cs_state_run_add(cs_state *s, const json_t *doc, cs_err *e)
{
    int rc = check_run(doc, e);
    return rc ? rc : s->ops->run_add(s, doc, e);
}

int cs_state_run_update(cs_state *s, const json_t *doc, cs_err *e)
{
    int rc = check_run(doc, e);
    return rc ? rc : s->ops->run_update(s, doc, e);
}

int cs_state_run_cas(cs_state *s, const char *from, const json_t *doc, bool *applied, cs_err *e)
{
    *applied = false;
    int rc = check_state_name(from, "run", "from", e);
    if (!rc)
        rc = check_run(doc, e);
    return rc ? rc : s->ops->run_cas(s, from, doc, applied, e);
}

int cs_state_run_get(cs_state *s, const char *id, json_t **out, cs_err *e)
{
    *out = NULL;
    int rc = check_id(id, "run", e);
    return rc ? rc : s->ops->run_get(s, id, out, e);
}

int cs_state_run_list(cs_state *s, const cs_run_filter *f, json_t **out, cs_err *e)
{
    *out = NULL;
    cs_run_filter checked = f ? *f : (cs_run_filter){ 0 };
    checked.limit = list_limit(checked.limit);
    int rc = 0;
    if (checked.state && strcmp(checked.state, "open"))
        rc = check_state_name(checked.state, "run list", "state", e);
    static const char *const what[] = { "cluster", "task", "kind" };
    const char *const ids[] = { checked.cluster, checked.task, checked.kind };
    for (size_t i = 0; !rc && i < 3; i++)
        if (ids[i] && !id_ok(ids[i], strlen(ids[i])))
            rc = bad_id("run list", what[i], e);
    return rc ? rc : s->ops->run_list(s, &checked, out, e);
}

int cs_state_run_cancel(cs_state *s, const char *id, char state_out[16], cs_err *e)
{
    state_out[0] = '\0';
    int rc = check_id(id, "run", e);
    return rc ? rc : s->ops->run_cancel(s, id, state_out, e);
}

int cs_state_run_cancel_asked(cs_state *s, const char *id, bool *asked, cs_err *e)
{
    *asked = false;
    int rc = check_id(id, "run", e);
    return rc ? rc : s->ops->run_cancel_asked(s, id, asked, e);
}

int cs_state_prune(cs_state *s, double before, cs_err *e)
{
    if (!isfinite(before))
        return cs_err_set(e, CS_E_INVAL, "prune: the time must be a number");
    return s->ops->prune(s, before, e);
}

/* ---- audit ---- */

int cs_state_audit_add(cs_state *s, const json_t *entry, cs_err *e)
{
    if (!json_is_object(entry))
        return cs_err_set(e, CS_E_INVAL, "audit: the entry must be a JSON object");
    if (json_is_number(json_object_get(entry, "at")))
        return s->ops->audit_add(s, entry, e);
    json_t *stamped = json_copy((json_t *)entry);
    json_object_set_new(stamped, "at", json_real(cs_now()));
    int rc = s->ops->audit_add(s, stamped, e);
    json_decref(stamped);
    return rc;
}

int cs_state_audit_list(cs_state *s, size_t limit, json_t **out, cs_err *e)
{
    *out = NULL;
    return s->ops->audit_list(s, list_limit(limit), out, e);
}

/* ---- lease ---- */

int cs_state_lease(cs_state *s, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e)
{
    *held = false;
    *epoch = 0;
    int rc = check_id(owner, "lease owner", e);
    if (!rc && !(isfinite(ttl) && ttl > 0))
        rc = cs_err_set(e, CS_E_INVAL, "lease: the ttl must be a positive number of seconds");
    return rc ? rc : s->ops->lease(s, owner, ttl, held, epoch, e);
}

int cs_state_lease_release(cs_state *s, const char *owner, cs_err *e)
{
    int rc = check_id(owner, "lease owner", e);
    return rc ? rc : s->ops->lease_release(s, owner, e);
}

int cs_state_lease_get(cs_state *s, json_t **out, cs_err *e)
{
    *out = NULL;
    return s->ops->lease_get(s, out, e);
}

/* ---- export / import ---- */

int cs_state_export(cs_state *s, json_t **out, cs_err *e)
{
    *out = NULL;
    double now = cs_now();
    json_t *clusters = NULL, *tasks = NULL, *runs = json_array();
    int rc = s->ops->cluster_list(s, &clusters, e);
    if (!rc)
        rc = s->ops->task_list(s, NULL, &tasks, e);
    if (!rc)
        rc = s->ops->export_runs(s, now - s->history_seconds, runs, e);
    if (rc) {
        json_decref(clusters);
        json_decref(tasks);
        json_decref(runs);
        return cs_err_prefix(e, "export");
    }
    *out = json_pack("{s:i, s:f, s:o, s:o, s:o}", "format", EXPORT_FORMAT, "exported", now, "clusters", clusters,
                     "tasks", tasks, "runs", runs);
    return 0;
}

typedef int (*import_one)(cs_state *s, const json_t *doc, cs_err *e);

static int import_cluster(cs_state *s, const json_t *doc, cs_err *e)
{
    return cs_state_cluster_put(s, doc, true, e);
}

static int import_task(cs_state *s, const json_t *doc, cs_err *e)
{
    return cs_state_task_put(s, doc, true, e);
}

/* A run that was open when exported has no owner any more. */
static int import_run(cs_state *s, const json_t *doc, cs_err *e)
{
    const char *state = json_string_value(json_object_get(doc, "state"));
    if (!state || cs_state_final(state) || !json_is_object(doc))
        return cs_state_run_add(s, doc, e);
    json_t *copy = json_copy((json_t *)doc);
    json_object_set_new(copy, "state", json_string("interrupted"));
    int rc = cs_state_run_add(s, copy, e);
    json_decref(copy);
    return rc;
}

/* Add the records of doc[key] the store does not hold. */
static int import_list(cs_state *s, const json_t *doc, const char *key, import_one add, size_t *added, cs_err *e)
{
    const json_t *list = json_object_get(doc, key);
    if (!list)
        return 0;
    if (!json_is_array(list))
        return cs_err_set(e, CS_E_INVAL, "import: \"%s\" must be an array", key);
    size_t i;
    const json_t *item;
    json_array_foreach(list, i, item) {
        int rc = add(s, item, e);
        if (rc == CS_E_EXISTS) {
            cs_err_clear(e);
            continue;
        }
        if (rc)
            return cs_err_prefix(e, "import: %s[%zu]", key, i);
        (*added)++;
    }
    return 0;
}

int cs_state_import(cs_state *s, const json_t *doc, size_t *added, cs_err *e)
{
    *added = 0;
    const json_t *format = json_object_get(doc, "format");
    if (!json_is_object(doc) || !json_is_integer(format))
        return cs_err_set(e, CS_E_INVAL, "import: not a cassette state export (no \"format\")");
    if (json_integer_value(format) != EXPORT_FORMAT)
        return cs_err_set(e, CS_E_INVAL, "import: export format %lld is not one this cassette reads (%d)",
                          (long long)json_integer_value(format), EXPORT_FORMAT);
    int rc = import_list(s, doc, "clusters", import_cluster, added, e);
    if (!rc)
        rc = import_list(s, doc, "tasks", import_task, added, e);
    if (!rc)
        rc = import_list(s, doc, "runs", import_run, added, e);
    return rc;
}

uint64_t cs_state_epoch_after(uint64_t prev, double now)
{
    uint64_t ms = now > 0 ? (uint64_t)(now * 1000) : 0;
    return ms > prev ? ms : prev + 1;
}

json_t *cs_state_lease_doc(const char *owner, uint64_t epoch, double expires, double now)
{
    if (owner && owner[0] && expires > now)
        return json_pack("{s:s, s:I, s:f}", "owner", owner, "epoch", (json_int_t)epoch, "expires", expires);
    return json_pack("{s:n, s:I}", "owner", "epoch", (json_int_t)epoch);
}

/* agent.c - the agent's routes and life (see the header). */
#include "agent/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/jobs.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/metrics.h"
#include "ops/ops.h"
#include "ops/state.h"

/* How long a newer server's first command waits for the deposed server's
 * canceled jobs to end (then it is served anyway); below the server's
 * request timeout (30 s). */
#define FENCE_CANCEL_WAIT_S 20.0

struct cs_agent {
    const cs_host *host;
    cs_jobs *jobs;
    bool dry_run;
    cs_strlist allow_repos; /* locations requests may name, or below them */
    pthread_mutex_t fence_mu; /* guards epoch, epoch_loaded and <state_dir>/agent-epoch */
    uint64_t epoch;           /* the highest X-Cassette-Epoch seen (0: none) */
    bool epoch_loaded;
    const char *version;      /* cassette_agent_info's (borrowed; NULL: "unknown") */
    double node_tried;        /* under fence_mu: when /metrics last asked the node (no cached facts) */
};

static const char *const served[] = { "backup",      "restore",  "verify",        "list",
                                      "status",      "schema dump", "snapshot", "snapshot clear",
                                      "load" };

bool cs_agent_serves(const cs_op_def *op)
{
    for (size_t i = 0; op && i < sizeof served / sizeof served[0]; i++)
        if (!strcmp(op->name, served[i]))
            return true;
    return false;
}

cs_agent *cs_agent_new(const cs_host *host)
{
    cs_agent *a = cs_calloc(1, sizeof *a);
    a->host = host;
    a->jobs = cs_jobs_new(host);
    pthread_mutex_init(&a->fence_mu, NULL);
    return a;
}

void cs_agent_free(cs_agent *agent)
{
    if (!agent)
        return;
    cs_jobs_free(agent->jobs);
    cs_strlist_free(&agent->allow_repos);
    pthread_mutex_destroy(&agent->fence_mu);
    free(agent);
}

void cs_agent_set_dry_run(cs_agent *agent, bool dry_run)
{
    agent->dry_run = dry_run;
}

void cs_agent_set_version(cs_agent *agent, const char *version)
{
    agent->version = version;
}

/* ---- allowed repositories ---- */

/* Does location have a ".." path component (s3://b/x/../y, /a/..)? */
static bool has_dotdot(const char *location)
{
    for (const char *p = location; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += n + (p[n] ? 1 : 0);
    }
    return false;
}

/* The length of location without its trailing slashes ("/" stays "/"). */
static size_t trimmed_len(const char *location)
{
    size_t n = strlen(location);
    while (n > 1 && location[n - 1] == '/')
        n--;
    return n;
}

bool cs_agent_repo_allowed(const cs_strlist *allowed, const char *repo)
{
    if (!repo || !*repo || has_dotdot(repo))
        return false;
    size_t rn = trimmed_len(repo);
    for (size_t i = 0; i < allowed->n; i++) {
        const char *a = allowed->items[i];
        size_t an = trimmed_len(a);
        if (rn < an || strncmp(repo, a, an))
            continue;
        /* the same location, or a path component boundary right after it */
        if (rn == an || repo[an] == '/' || a[an - 1] == '/')
            return true;
    }
    return false;
}

int cs_agent_allow_repo(cs_agent *agent, const char *location, cs_err *e)
{
    if (!location || !*location)
        return cs_err_set(e, CS_E_USAGE, "--allow-repo wants a repository location, not an empty one");
    if (has_dotdot(location))
        return cs_err_set(e, CS_E_USAGE, "--allow-repo %s: a location with a \"..\" component is refused", location);
    cs_strlist_add(&agent->allow_repos, location);
    return 0;
}

/* ---- answers ---- */

/* The status an operation's or the node's error answers with. */
static unsigned status_of(int code)
{
    switch (code) {
    case CS_E_INVAL:
    case CS_E_USAGE:
        return 400;
    case CS_E_NOTFOUND:
        return 404;
    case CS_E_LOCKED:
        return 429;
    case CS_E_UNAVAIL:
        return 503;
    default:
        return 502;
    }
}

static void answer(cs_http_answer *ans, unsigned status, json_t *body)
{
    ans->status = status;
    ans->body = body;
}

/* ---- GET /v1/node ---- */

static json_t *dir_json(const char *path)
{
    json_t *d = json_object();
    json_object_set_new(d, "path", cs_http_text_json(path));
    struct statvfs st;
    if (statvfs(path, &st) == 0) {
        json_object_set_new(d, "free_bytes", json_integer((json_int_t)((uint64_t)st.f_bavail * st.f_frsize)));
        json_object_set_new(d, "total_bytes", json_integer((json_int_t)((uint64_t)st.f_blocks * st.f_frsize)));
    } else {
        json_object_set_new(d, "error", json_string(strerror(errno)));
    }
    return d;
}

static json_t *str_or_null(const char *s)
{
    return s ? cs_http_text_json(s) : json_null();
}

static json_t *list_json(const cs_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, cs_http_text_json(l->items[i]));
    return a;
}

static void get_node(cs_agent *a, cs_http_answer *ans)
{
    cs_node_info info;
    cs_err e;
    cs_err_clear(&e);
    if (a->dry_run) {
        cs_http_error_msg(ans, 503, "dry run: the node is not asked");
        return;
    }
    bool live = true;
    if (cs_ops_read_node_or_cached(a->host, "agent", &info, &live, &e)) {
        cs_http_error(ans, status_of(e.code), &e);
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "live", json_boolean(live)); /* false: the node is down, these are its last facts */
    json_object_set_new(doc, "host_id", str_or_null(info.host_id));
    json_object_set_new(doc, "address", str_or_null(info.address));
    json_object_set_new(doc, "cluster_name", str_or_null(info.cluster_name));
    json_object_set_new(doc, "datacenter", str_or_null(info.datacenter));
    json_object_set_new(doc, "rack", str_or_null(info.rack));
    json_object_set_new(doc, "release_version", str_or_null(info.release_version));
    json_object_set_new(doc, "partitioner", str_or_null(info.partitioner));
    json_object_set_new(doc, "tokens", list_json(&info.tokens));
    json_t *dirs = json_array();
    for (size_t i = 0; i < info.data_dirs.n; i++)
        json_array_append_new(dirs, dir_json(info.data_dirs.items[i]));
    json_object_set_new(doc, "data_dirs", dirs);
    json_object_set_new(doc, "commitlog_dir", str_or_null(info.commitlog_dir));
    json_object_set_new(doc, "hints_dir", str_or_null(info.hints_dir));
    json_object_set_new(doc, "saved_caches_dir", str_or_null(info.saved_caches_dir));
    cs_node_info_free(&info);
    answer(ans, 200, doc);
}

/* ---- GET /v1/ops ---- */

static const char *const type_names[] = { "string", "bool", "integer", "number", "duration",
                                          "size", "string list", "enum", "settings" };

static json_t *field_json(const cs_field *f)
{
    json_t *d = json_pack("{s:s, s:s, s:b}", "name", f->name, "type", type_names[f->type], "required",
                          (f->flags & CS_F_REQUIRED) != 0);
    if (f->def)
        json_object_set_new(d, "default", json_string(f->def));
    if (f->values)
        json_object_set_new(d, "values", json_string(f->values));
    if (f->min < f->max) {
        json_object_set_new(d, "min", json_integer(f->min));
        json_object_set_new(d, "max", json_integer(f->max));
    }
    return d;
}

static void get_ops(cs_http_answer *ans)
{
    size_t n;
    const cs_op_def *ops = cs_ops_all(&n);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!cs_agent_serves(&ops[i]))
            continue;
        json_t *fields = json_array();
        for (size_t j = 0; j < ops[i].n_fields; j++)
            json_array_append_new(fields, field_json(&ops[i].fields[j]));
        json_array_append_new(list, json_pack("{s:s, s:s, s:o}", "name", ops[i].name, "summary", ops[i].summary,
                                              "fields", fields));
    }
    answer(ans, 200, list);
}

/* ---- POST /v1/ops/{name} ---- */

/* The repository a request names must be allowed, and the agent never
 * makes one: true (and ans is the 403) when the request is refused. A
 * "repo" that is not a string is left to the request's own checks. */
static bool refuse_repo(const cs_agent *a, const json_t *body, cs_http_answer *ans)
{
    if (json_is_true(json_object_get(body, "init"))) {
        cs_http_error_msg(ans, 403, "the agent does not create repositories; run cassette init");
        return true;
    }
    const char *repo = json_string_value(json_object_get(body, "repo"));
    if (!repo || cs_agent_repo_allowed(&a->allow_repos, repo))
        return false;
    char msg[CS_ERR_MSG_MAX];
    if (!a->allow_repos.n)
        snprintf(msg, sizeof msg, "this agent serves no repository: start it with --allow-repo LOC");
    else
        snprintf(msg, sizeof msg, "repository %.200s is not allowed on this agent (--allow-repo)", repo);
    cs_http_error_msg(ans, 403, msg);
    return true;
}

static void start_op(cs_agent *a, const char *name, const cs_http_request *req, uint64_t epoch, cs_http_answer *ans)
{
    const cs_op_def *op = cs_op_find(name);
    if (!op || !cs_agent_serves(op)) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s \"%.60s\" (GET /v1/ops lists the operations it serves)",
                 op ? "the agent does not serve" : "no operation", name);
        cs_http_error_msg(ans, op ? 403 : 404, msg);
        return;
    }
    json_error_t jerr;
    json_t *body = req->body_len ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr)
                                 : json_object();
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        cs_http_error_msg(ans, 400, msg);
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        cs_http_error_msg(ans, 400, "the request must be a JSON object of the operation's fields");
        return;
    }
    if (refuse_repo(a, body, ans)) {
        json_decref(body);
        return;
    }
    cs_err e;
    cs_err_clear(&e);
    void *r = cs_op_request_new(op, &e);
    int rc = r ? cs_op_request_from_json(op, body, r, &e) : e.code;
    json_decref(body);
    uint64_t id = 0;
    if (rc || a->dry_run) {
        cs_op_request_free(op, r);
        if (!rc) {
            answer(ans, 202, json_pack("{s:i, s:b}", "job", 0, "dry_run", 1));
            return;
        }
    } else {
        rc = cs_jobs_start(a->jobs, op, r, epoch, &id, &e); /* takes r */
    }
    if (rc) {
        cs_http_error(ans, status_of(rc), &e);
        return;
    }
    answer(ans, 202, json_pack("{s:I}", "job", (json_int_t)id));
}

/* ---- jobs ---- */

/* A job id: decimal digits only. */
static bool parse_id(const char *s, size_t n, uint64_t *out)
{
    if (!n || n > 18)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static void no_job(cs_http_answer *ans, uint64_t id)
{
    char msg[80];
    snprintf(msg, sizeof msg, "no job %llu (finished jobs are kept a while, not forever)", (unsigned long long)id);
    cs_http_error_msg(ans, 404, msg);
}

static void get_job(cs_agent *a, uint64_t id, cs_http_answer *ans)
{
    json_t *doc = cs_jobs_get(a->jobs, id);
    if (!doc)
        no_job(ans, id);
    else
        answer(ans, 200, doc);
}

static void cancel_job(cs_agent *a, uint64_t id, cs_http_answer *ans)
{
    cs_err e;
    cs_err_clear(&e);
    if (cs_jobs_cancel(a->jobs, id, &e)) {
        no_job(ans, id);
        return;
    }
    get_job(a, id, ans);
    if (ans->status == 200)
        ans->status = 202;
}

/* ---- fencing ---- */

/* A decimal epoch of 1 to 19 digits (no sign, no blanks). */
bool cs_agent_parse_epoch(const char *s, uint64_t *out)
{
    size_t n = s ? strlen(s) : 0;
    if (!n || n > 19 || strspn(s, "0123456789") != n)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    *out = v;
    return true;
}

static char *epoch_path(const cs_agent *a)
{
    char *dir = cs_state_dir(a->host);
    char *path = cs_sprintf("%s/agent-epoch", dir);
    free(dir);
    return path;
}

/* The highest epoch kept in <state_dir>/agent-epoch (0 when there is no
 * file yet). Called with fence_mu held. */
static int load_epoch(cs_agent *a, cs_err *e)
{
    if (a->epoch_loaded)
        return 0;
    char *path = epoch_path(a);
    char *text = NULL;
    size_t len = 0;
    cs_err re;
    cs_err_clear(&re);
    int rc = 0;
    if (cs_read_file(path, 64, &text, &len, &re) == 0) {
        text[strcspn(text, "\r\n")] = '\0';
        if (!cs_agent_parse_epoch(text, &a->epoch))
            rc = cs_err_set(e, CS_E_IO, "%s holds no epoch: remove it only if no server fences this agent", path);
    } else if (re.code != CS_E_NOTFOUND) {
        rc = cs_err_set(e, re.code, "%s", re.msg);
    }
    free(text);
    free(path);
    a->epoch_loaded = rc == 0;
    return rc;
}

/* Keep epoch as the highest seen, durably before the request is served. */
static int store_epoch(cs_agent *a, uint64_t epoch, cs_err *e)
{
    char *dir = cs_state_dir(a->host);
    char *path = cs_sprintf("%s/agent-epoch", dir);
    char text[32];
    int n = snprintf(text, sizeof text, "%" PRIu64 "\n", epoch);
    int rc = cs_mkdirs(dir, 0700, e);
    if (!rc)
        rc = cs_write_file_atomic(path, text, (size_t)n, 0600, e);
    if (!rc)
        a->epoch = epoch;
    free(path);
    free(dir);
    return rc;
}

/* A request's X-Cassette-Epoch against the highest seen: true (ans set)
 * when it is refused: 400 malformed, 409 older, 503 the epoch cannot be
 * kept. No header: accepted (the CLI sends none). *epoch_out: the
 * request's epoch (0: none). *raised: it is newer than any seen before. */
static bool fenced(cs_agent *a, const cs_http_request *req, cs_http_answer *ans, uint64_t *epoch_out, bool *raised)
{
    *epoch_out = 0;
    *raised = false;
    if (!req->epoch)
        return false;
    uint64_t epoch;
    if (!cs_agent_parse_epoch(req->epoch, &epoch)) {
        cs_http_error_msg(ans, 400, "X-Cassette-Epoch must be a decimal number");
        return true;
    }
    cs_err e;
    cs_err_clear(&e);
    bool refused = false;
    pthread_mutex_lock(&a->fence_mu);
    bool newer = false;
    if (load_epoch(a, &e) || ((newer = epoch > a->epoch) && store_epoch(a, epoch, &e))) {
        cs_http_error(ans, 503, &e);
        refused = true;
    } else if (epoch < a->epoch) {
        char msg[96];
        snprintf(msg, sizeof msg, "fenced: epoch %" PRIu64 " is older than %" PRIu64, epoch, a->epoch);
        cs_http_error_msg(ans, 409, msg);
        refused = true;
    }
    pthread_mutex_unlock(&a->fence_mu);
    if (!refused) {
        *epoch_out = epoch;
        *raised = newer;
    }
    return refused;
}

/* A newer server drives this node now: the jobs the deposed one started
 * are stopped (nobody polls them any more, and their locks would fail the
 * new server's commands) before its first command is served. */
static void cancel_deposed(cs_agent *a, uint64_t epoch)
{
    size_t n = cs_jobs_cancel_fenced(a->jobs, epoch, FENCE_CANCEL_WAIT_S);
    if (n)
        cs_warn("agent: epoch %" PRIu64 ": canceled %zu job%s of a server with an older epoch", epoch, n,
                n == 1 ? "" : "s");
}

/* ---- GET /metrics (docs/metrics.md: the agent's rows) ---- */

enum { M_INFO, M_EPOCH, M_RUNNING, M_PHASE, M_DONE, M_TOTAL, M_RATE, M_ENDED, M_FREE, M_RSS, M_N };

static const struct {
    const char *name, *type, *help;
} families[M_N] = {
    { "cassette_agent_info", "gauge", "1, with the agent's version and its node's host id" },
    { "cassette_agent_epoch", "gauge", "highest fencing epoch seen" },
    { "cassette_agent_jobs_running", "gauge", "operations running" },
    { "cassette_agent_job_phase", "gauge", "1 for the phase each running job is in" },
    { "cassette_agent_job_bytes_done", "gauge", "bytes done in the current phase" },
    { "cassette_agent_job_bytes_planned", "gauge", "bytes to do in the current phase (0: not known)" },
    { "cassette_agent_job_bytes_per_second", "gauge", "recent rate" },
    { "cassette_agent_jobs_total", "counter", "jobs ended, by state (succeeded, failed, canceled)" },
    { "cassette_data_directory_free_ratio", "gauge", "free space / size of each data directory's file system" },
    { "process_resident_memory_bytes", "gauge", "the agent's own resident memory" },
};

static void family(cs_metrics *m, int f)
{
    cs_metrics_family(m, families[f].name, families[f].type, families[f].help);
}

typedef struct walk {
    cs_metrics *m;
    size_t running;
} walk;

static void running_job(void *arg, uint64_t id, const char *op, const cs_progress *p, double bytes_per_second)
{
    walk *w = arg;
    char job[24];
    snprintf(job, sizeof job, "%" PRIu64, id);
    w->running++;
    family(w->m, M_PHASE);
    cs_metrics_sample(w->m, 1, "job_id", job, "op", op, "phase", p->phase[0] ? p->phase : "starting", NULL);
    family(w->m, M_DONE);
    cs_metrics_sample(w->m, (double)p->bytes_done, "job_id", job, "op", op, NULL);
    family(w->m, M_TOTAL);
    cs_metrics_sample(w->m, (double)p->bytes_total, "job_id", job, "op", op, NULL);
    family(w->m, M_RATE);
    cs_metrics_sample(w->m, bytes_per_second, "job_id", job, "op", op, NULL);
}

static void ended_jobs(void *arg, const char *op, const char *state, uint64_t count)
{
    walk *w = arg;
    family(w->m, M_ENDED);
    cs_metrics_sample(w->m, (double)count, "op", op, "state", state, NULL);
}

/* The node's facts for the labels and the data directories: the cached
 * ones (ops.h: every read of the node refreshes them), the node itself
 * only when there are none yet, and then at most once a NODE_RETRY_S (a
 * node that cannot be reached must not make every scrape wait for its
 * timeout). false when neither can be had. */
#define NODE_RETRY_S 60.0
static bool node_facts(cs_agent *a, cs_node_info *info)
{
    cs_err e;
    cs_err_clear(&e);
    bool live = true;
    if (a->dry_run)
        return false;
    if (cs_ops_cached_node(a->host, info, &e) == 0)
        return true;
    double now = cs_now();
    pthread_mutex_lock(&a->fence_mu);
    bool ask = !a->node_tried || now - a->node_tried >= NODE_RETRY_S;
    if (ask)
        a->node_tried = now;
    pthread_mutex_unlock(&a->fence_mu);
    cs_err_clear(&e);
    return ask && cs_ops_read_node_or_cached(a->host, "agent", info, &live, &e) == 0;
}

/* The agent's resident set (/proc/self/statm's second field, in pages);
 * -1 when it cannot be read. */
static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    int n = f ? fscanf(f, "%llu %llu", &size, &resident) : 0;
    if (f)
        fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (double)resident * (double)page : -1;
}

static void get_metrics(cs_agent *a, cs_http_answer *ans)
{
    cs_metrics *m = cs_metrics_new();
    for (int f = 0; f < M_N; f++)
        family(m, f); /* the order of docs/metrics.md, whatever comes first below */
    cs_node_info info;
    memset(&info, 0, sizeof info);
    bool have_node = node_facts(a, &info);
    family(m, M_INFO);
    cs_metrics_sample(m, 1, "version", a->version ? a->version : "unknown", "host_id",
                      have_node && info.host_id ? info.host_id : "", NULL);
    pthread_mutex_lock(&a->fence_mu);
    cs_err e;
    cs_err_clear(&e);
    (void)load_epoch(a, &e); /* a garbled file: 0 here, the fencing says why */
    uint64_t epoch = a->epoch;
    pthread_mutex_unlock(&a->fence_mu);
    family(m, M_EPOCH);
    cs_metrics_sample(m, (double)epoch, NULL);
    walk w = { m, 0 };
    cs_jobs_visitor v = { running_job, ended_jobs, &w };
    cs_jobs_walk(a->jobs, &v);
    family(m, M_RUNNING);
    cs_metrics_sample(m, (double)w.running, NULL);
    family(m, M_FREE);
    for (size_t i = 0; have_node && i < info.data_dirs.n; i++) {
        struct statvfs st;
        if (statvfs(info.data_dirs.items[i], &st) == 0 && st.f_blocks)
            cs_metrics_sample(m, (double)st.f_bavail / (double)st.f_blocks, "path", info.data_dirs.items[i], NULL);
    }
    cs_node_info_free(&info);
    double rss = resident_bytes();
    family(m, M_RSS);
    if (rss >= 0)
        cs_metrics_sample(m, rss, NULL);
    size_t len = 0;
    const char *text = cs_metrics_text(m, &len);
    cs_http_answer_text(ans, 200, "text/plain; version=0.0.4; charset=utf-8", cs_strndup(text, len), len, true);
    cs_metrics_free(m);
}

/* ---- routing ---- */

static bool method_is(const cs_http_request *req, const char *want, cs_http_answer *ans)
{
    if (req->method && !strcmp(req->method, want))
        return true;
    char msg[80];
    snprintf(msg, sizeof msg, "method not allowed here (use %s)", want);
    cs_http_error_msg(ans, 405, msg);
    return false;
}

void cs_agent_handle(void *arg, const cs_http_request *req, cs_http_answer *ans)
{
    cs_agent *a = arg;
    const char *p = req->path ? req->path : "";
    static const char ops_prefix[] = "/v1/ops/", jobs_prefix[] = "/v1/jobs/";
    uint64_t epoch;
    bool raised;
    if (fenced(a, req, ans, &epoch, &raised))
        return;
    if (raised)
        cancel_deposed(a, epoch);
    if (!strcmp(p, "/metrics")) {
        if (method_is(req, "GET", ans))
            get_metrics(a, ans);
    } else if (!strcmp(p, "/v1/node")) {
        if (method_is(req, "GET", ans))
            get_node(a, ans);
    } else if (!strcmp(p, "/v1/ops")) {
        if (method_is(req, "GET", ans))
            get_ops(ans);
    } else if (!strncmp(p, ops_prefix, sizeof ops_prefix - 1) && p[sizeof ops_prefix - 1]) {
        if (method_is(req, "POST", ans))
            start_op(a, p + sizeof ops_prefix - 1, req, epoch, ans);
    } else if (!strcmp(p, "/v1/jobs")) {
        if (method_is(req, "GET", ans))
            answer(ans, 200, cs_jobs_list(a->jobs));
    } else if (!strncmp(p, jobs_prefix, sizeof jobs_prefix - 1)) {
        const char *s = p + sizeof jobs_prefix - 1;
        size_t n = strcspn(s, "/");
        uint64_t id;
        if (!parse_id(s, n, &id))
            cs_http_error_msg(ans, 404, "no such path (a job id is a number)");
        else if (!s[n] && method_is(req, "GET", ans))
            get_job(a, id, ans);
        else if (s[n] && !strcmp(s + n, "/cancel") && method_is(req, "POST", ans))
            cancel_job(a, id, ans);
        else if (s[n] && strcmp(s + n, "/cancel"))
            cs_http_error_msg(ans, 404, "no such path");
    } else {
        cs_http_error_msg(ans, 404, "no such path (the API is under /v1: node, ops, jobs; and /metrics)");
    }
}

/* ---- life ---- */

int cs_agent_run(const cs_host *host, const cs_strlist *allow_repos, const char *version, cs_httpd_opts *opts,
                 cs_err *e)
{
    /* Signals are taken by sigwait below, not by handlers: every thread
     * (the daemon's, the jobs') inherits the mask, so a stop is seen here
     * once and the jobs are canceled one by one, as a server would. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    signal(SIGPIPE, SIG_IGN);
    cs_agent *agent = cs_agent_new(host);
    cs_agent_set_version(agent, version);
    opts->handler = cs_agent_handle;
    opts->arg = agent;
    cs_httpd *d = NULL;
    int rc = 0;
    for (size_t i = 0; rc == 0 && allow_repos && i < allow_repos->n; i++)
        rc = cs_agent_allow_repo(agent, allow_repos->items[i], e);
    if (!rc)
        rc = cs_httpd_start(opts, &d, e);
    if (!rc) {
        bool v6 = strchr(opts->host, ':') != NULL;
        fprintf(stderr, "cassette agent: listening on %s://%s%s%s:%d (%s%s)\n", opts->tls_cert ? "https" : "http",
                v6 ? "[" : "", opts->host, v6 ? "]" : "", opts->port,
                opts->token ? "bearer token required" : "no token: loopback only",
                opts->tls_client_ca ? ", client certificates required" : "");
        int sig = 0;
        while (sigwait(&stop, &sig) != 0)
            ;
        fprintf(stderr, "cassette agent: %s: stopping (running jobs are canceled)\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
        cs_httpd_stop(d);
    }
    cs_agent_free(agent); /* cancels and waits for the running jobs */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

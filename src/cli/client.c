/* client.c - the CLI as a client of `cassette server` (see the header). */
#include "cli/client.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/config.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/log.h"
#include "common/units.h"
#include "ops/optable.h"
#include "server/model.h"
#include "storage/http.h"


/* ---- the options of client mode ---- */

enum copt_kind { C_VALUE, C_LIST, C_FLAG };

typedef struct copt {
    const char *flag;
    char short_flag;
    enum copt_kind kind;
    const char *key; /* where it goes in the body or query ("" : not there) */
} copt;

static const copt copts[] = {
    /* global */
    { "server", 0, C_VALUE, "" },
    { "server-token-file", 0, C_VALUE, "" },
    { "server-ca-file", 0, C_VALUE, "" },
    { "config", 0, C_VALUE, "" },
    { "progress", 0, C_VALUE, "" },
    { "json", 0, C_FLAG, "" },
    { "quiet", 'q', C_FLAG, "" },
    { "verbose", 'v', C_FLAG, "" },
    { "help", 'h', C_FLAG, "" },
    /* the commands' */
    { "id", 0, C_VALUE, "id" },
    { "contact", 0, C_VALUE, "contact" },
    { "repo", 0, C_VALUE, "repo" },
    { "agent", 0, C_LIST, "agents" },
    { "agents", 0, C_LIST, "agents" },
    { "agent-template", 0, C_VALUE, "agent_template" },
    { "cluster", 0, C_VALUE, "cluster" },
    { "kind", 0, C_VALUE, "kind" },
    { "schedule", 0, C_VALUE, "schedule" },
    { "timezone", 0, C_VALUE, "timezone" },
    { "window", 0, C_LIST, "window" },
    { "retries", 0, C_VALUE, "retries" },
    { "param", 0, C_LIST, "params" },
    { "task", 0, C_VALUE, "task" },
    { "state", 0, C_VALUE, "state" },
    { "type", 0, C_VALUE, "type" },
    { "keyspace", 0, C_LIST, "keyspaces" },
    { "table", 0, C_LIST, "tables" },
    { "node", 0, C_LIST, "nodes" },
    { "nodes", 0, C_LIST, "nodes" },
    { "backup", 0, C_VALUE, "backup" },
    { "name", 0, C_VALUE, "name" },
    { "pause-cmd", 0, C_VALUE, "pause_cmd" },
    { "resume-cmd", 0, C_VALUE, "resume_cmd" },
    { "wait", 0, C_FLAG, "" },
};
#define N_COPTS (sizeof copts / sizeof copts[0])
#define GLOBAL_FLAGS "server server-token-file server-ca-file config progress json quiet verbose help"

static const copt *find_copt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_COPTS; i++)
        if (strlen(copts[i].flag) == len && !strncmp(copts[i].flag, name, len))
            return &copts[i];
    return NULL;
}

static const copt *find_cshort(char c)
{
    for (size_t i = 0; i < N_COPTS; i++)
        if (copts[i].short_flag == c)
            return &copts[i];
    return NULL;
}

/* Is word one of the space-separated words of list? */
static bool in_words(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* One command of client mode: its words, the options it takes, how many
 * words follow (an id), what it asks. */
typedef struct ccmd {
    const char *command, *sub; /* sub NULL: none */
    const char *flags;         /* its own options */
    bool takes_id;
    const char *required;      /* options it needs */
} ccmd;

static const ccmd ccmds[] = {
    { "cluster", "register", "id contact repo agent agents agent-template", false, "repo" },
    { "cluster", "list", "", false, "" },
    { "cluster", "show", "", true, "" },
    { "cluster", "remove", "", true, "" },
    { "task", "add", "cluster kind id schedule timezone window retries param", false, "cluster kind" },
    { "task", "list", "cluster", false, "" },
    { "task", "show", "", true, "" },
    { "task", "run", "wait", true, "" },
    { "task", "disable", "", true, "" },
    { "task", "enable", "", true, "" },
    { "task", "remove", "", true, "" },
    { "run", "list", "cluster task state", false, "" },
    { "run", "show", "", true, "" },
    { "run", "cancel", "", true, "" },
    { "backup", NULL, "cluster type name keyspace pause-cmd resume-cmd wait", false, "cluster" },
    { "list", NULL, "cluster", false, "cluster" },
    { "restore", NULL, "cluster backup keyspace table node nodes wait", false, "cluster backup" },
};
#define N_CCMDS (sizeof ccmds / sizeof ccmds[0])

static const ccmd *find_ccmd(const char *command, const char *sub)
{
    for (size_t i = 0; i < N_CCMDS; i++)
        if (!strcmp(ccmds[i].command, command) &&
            (ccmds[i].sub ? sub && !strcmp(ccmds[i].sub, sub) : true))
            return &ccmds[i];
    return NULL;
}

/* Does flag (without "--") take a value, for client mode or the local CLI? */
static bool flag_takes_value(const char *arg)
{
    if (strchr(arg, '='))
        return false;
    const copt *o = arg[1] == '-' ? find_copt(arg + 2, strlen(arg + 2)) : arg[2] ? NULL : find_cshort(arg[1]);
    if (o)
        return o->kind != C_FLAG;
    return arg[1] == '-' && cs_config_flag_takes_value(arg + 2);
}

/* The command and sub-command words of argv (NULL when absent). */
static void words_of(int argc, char **argv, const char **command, const char **sub)
{
    *command = *sub = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            if (flag_takes_value(a))
                i++;
            continue;
        }
        if (!*command)
            *command = a;
        else if (!*sub) {
            *sub = a;
            return;
        }
    }
}

bool cs_client_command(int argc, char **argv, bool *must)
{
    const char *command, *sub;
    words_of(argc, argv, &command, &sub);
    if (command && sub && !strcmp(command, "help")) /* cassette help task */
        command = sub;
    *must = command && (!strcmp(command, "task") || !strcmp(command, "run"));
    if (!command)
        return false;
    if (*must)
        return true;
    if (!strcmp(command, "cluster"))
        return sub && find_ccmd(command, sub) != NULL;
    return find_ccmd(command, NULL) != NULL;
}

/* ---- from the command line to a request ---- */

typedef struct given {
    const char *value[N_COPTS];
    cs_strlist list[N_COPTS];
    bool set[N_COPTS];
} given;

static void given_free(given *g)
{
    for (size_t i = 0; i < N_COPTS; i++)
        cs_strlist_free(&g->list[i]);
}

static const char *gv(const given *g, const char *flag)
{
    const copt *o = find_copt(flag, strlen(flag));
    return o ? g->value[o - copts] : NULL;
}

static bool gset(const given *g, const char *flag)
{
    const copt *o = find_copt(flag, strlen(flag));
    return o && g->set[o - copts];
}

/* "a b" -> "a%20b": a path segment or query value. */
static void add_escaped(cs_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            cs_buf_addch(b, (char)*p);
        } else {
            cs_buf_addch(b, '%');
            cs_buf_addch(b, hex[*p >> 4]);
            cs_buf_addch(b, hex[*p & 15]);
        }
    }
}

/* "/v1/" + parts ("tasks", id, "run"): NULL ends them. */
static char *path_of(const char *first, const char *id, const char *last)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, "/v1/");
    cs_buf_addstr(&b, first);
    if (id) {
        cs_buf_addch(&b, '/');
        add_escaped(&b, id);
    }
    if (last) {
        cs_buf_addch(&b, '/');
        cs_buf_addstr(&b, last);
    }
    return cs_buf_detach(&b);
}

/* "?cluster=a&task=b" of the query flags given. */
static char *query_path(const char *base, const given *g, const char *flags)
{
    static const char *const order[] = { "cluster", "task", "state" };
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, base);
    bool first = true;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *v = in_words(flags, order[i]) ? gv(g, order[i]) : NULL;
        if (!v)
            continue;
        cs_buf_addch(&b, first ? '?' : '&');
        cs_buf_addstr(&b, order[i]);
        cs_buf_addch(&b, '=');
        add_escaped(&b, v);
        first = false;
    }
    return cs_buf_detach(&b);
}


/* --param name=value: the value as JSON when it is some (7, true,
 * ["a"], "10"), else as text. */
static int add_params(json_t *body, const cs_strlist *params, cs_err *e)
{
    json_t *p = json_object();
    for (size_t i = 0; i < params->n; i++) {
        const char *s = params->items[i], *eq = strchr(s, '=');
        if (!eq || eq == s) {
            json_decref(p);
            return cs_err_set(e, CS_E_USAGE, "--param wants name=value, not \"%s\"", s);
        }
        char *name = cs_strndup(s, (size_t)(eq - s));
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        json_object_set_new(p, name, v ? v : json_string(eq + 1)); /* "10" in quotes: the text 10 */
        free(name);
    }
    json_object_set_new(body, "params", p);
    return 0;
}

/* The body of the command's options that go in it (their keys). */
static int body_of(const ccmd *c, const given *g, json_t **out, cs_err *e)
{
    json_t *body = json_object();
    for (size_t i = 0; i < N_COPTS; i++) {
        const copt *o = &copts[i];
        if (!g->set[i] || !*o->key || !in_words(c->flags, o->flag) || !strcmp(o->key, "params"))
            continue;
        if (!strcmp(o->key, "retries")) {
            char *end = NULL;
            errno = 0;
            long v = strtol(g->value[i], &end, 10);
            if (errno || !*g->value[i] || *end || v < 0 || v > 1000) {
                json_decref(body);
                return cs_err_set(e, CS_E_USAGE, "--retries wants a whole number, not \"%s\"", g->value[i]);
            }
            json_object_set_new(body, o->key, json_integer(v));
        } else if (o->kind == C_LIST) {
            json_t *a = json_object_get(body, o->key); /* --agent and --agents, --node and --nodes */
            if (!a)
                json_object_set_new(body, o->key, a = json_array());
            json_t *more = cs_strlist_json(&g->list[i]);
            json_array_extend(a, more);
            json_decref(more);
        } else {
            json_object_set_new(body, o->key, json_string(g->value[i]));
        }
    }
    if (gset(g, "param")) {
        const copt *o = find_copt("param", 5);
        if (add_params(body, &g->list[o - copts], e)) {
            json_decref(body);
            return e->code;
        }
    }
    *out = body;
    return 0;
}

/* Fill call for command c (sub-command words done) with id (or NULL). */
static int build(const ccmd *c, const given *g, const char *id, cs_client_call *call, cs_err *e)
{
    const char *cmd = c->command, *sub = c->sub ? c->sub : "";
    call->id = id ? cs_strdup(id) : NULL;
    call->wait = gset(g, "wait");
    if (!strcmp(cmd, "cluster")) {
        call->shape = CS_CLIENT_CLUSTER;
        if (!strcmp(sub, "register")) {
            call->method = cs_strdup("POST");
            call->path = path_of("clusters", NULL, NULL);
            call->verb = "registered";
            return body_of(c, g, &call->body, e);
        }
        call->method = cs_strdup(!strcmp(sub, "remove") ? "DELETE" : "GET");
        call->path = path_of("clusters", id, NULL);
        call->shape = !strcmp(sub, "list") ? CS_CLIENT_CLUSTERS : !strcmp(sub, "remove") ? CS_CLIENT_NONE
                                                                                           : CS_CLIENT_CLUSTER;
        call->verb = !strcmp(sub, "remove") ? "removed cluster" : NULL;
        return 0;
    }
    if (!strcmp(cmd, "task")) {
        call->shape = CS_CLIENT_TASK;
        if (!strcmp(sub, "add")) {
            call->method = cs_strdup("POST");
            call->path = path_of("tasks", NULL, NULL);
            call->verb = "added";
            return body_of(c, g, &call->body, e);
        }
        if (!strcmp(sub, "list")) {
            char *base = path_of("tasks", NULL, NULL);
            call->method = cs_strdup("GET");
            call->path = query_path(base, g, c->flags);
            call->shape = CS_CLIENT_TASKS;
            free(base);
            return 0;
        }
        if (!strcmp(sub, "run")) {
            call->method = cs_strdup("POST");
            call->path = path_of("tasks", id, "run");
            call->shape = CS_CLIENT_RUN;
            call->verb = "queued";
            return 0;
        }
        if (!strcmp(sub, "enable") || !strcmp(sub, "disable")) {
            call->method = cs_strdup("PATCH");
            call->path = path_of("tasks", id, NULL);
            call->body = json_pack("{s:b}", "enabled", !strcmp(sub, "enable"));
            call->verb = !strcmp(sub, "enable") ? "enabled" : "disabled";
            return 0;
        }
        call->method = cs_strdup(!strcmp(sub, "remove") ? "DELETE" : "GET");
        call->path = path_of("tasks", id, NULL);
        call->shape = !strcmp(sub, "remove") ? CS_CLIENT_NONE : CS_CLIENT_TASK;
        call->verb = !strcmp(sub, "remove") ? "removed task" : NULL;
        return 0;
    }
    if (!strcmp(cmd, "run")) {
        call->shape = CS_CLIENT_RUN;
        if (!strcmp(sub, "list")) {
            char *base = path_of("runs", NULL, NULL);
            call->method = cs_strdup("GET");
            call->path = query_path(base, g, c->flags);
            call->shape = CS_CLIENT_RUNS;
            free(base);
            return 0;
        }
        bool cancel = !strcmp(sub, "cancel");
        call->method = cs_strdup(cancel ? "POST" : "GET");
        call->path = path_of("runs", id, cancel ? "cancel" : NULL);
        call->verb = cancel ? "cancelling" : NULL;
        return 0;
    }
    const char *cluster = gv(g, "cluster");
    if (!strcmp(cmd, "list")) {
        call->method = cs_strdup("GET");
        call->path = path_of("clusters", cluster, "backups");
        call->shape = CS_CLIENT_BACKUPS;
        return 0;
    }
    /* backup, restore: the operation's params */
    call->method = cs_strdup("POST");
    call->path = path_of("clusters", cluster, !strcmp(cmd, "backup") ? "backups" : "restores");
    call->shape = CS_CLIENT_RUN;
    call->verb = "queued";
    if (body_of(c, g, &call->body, e))
        return e->code;
    json_object_del(call->body, "cluster");
    return 0;
}

/* Set the option o from value (or "1" for a flag). */
static int set_copt(given *g, const copt *o, const char *value, cs_err *e)
{
    size_t i = (size_t)(o - copts);
    if (o->kind == C_LIST) {
        if (!strcmp(o->flag, "param") || !strcmp(o->flag, "window"))
            cs_strlist_add(&g->list[i], value); /* a value may hold commas */
        else
            cs_strlist_add_csv(&g->list[i], value);
    } else if (o->kind == C_VALUE) {
        if (!*value)
            return cs_err_set(e, CS_E_USAGE, "option --%s needs a value", o->flag);
        g->value[i] = value;
    }
    g->set[i] = true;
    return 0;
}

static int parse_given(int argc, char **argv, given *g, cs_strlist *words, cs_err *e)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value = NULL;
        const copt *o = NULL;
        if (!strncmp(a, "--", 2) && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            o = find_copt(a + 2, len);
            if (!o)
                return cs_err_set(e, CS_E_USAGE, "unknown option %.*s (with --server)", (int)(len + 2), a);
            value = eq ? eq + 1 : NULL;
        } else if (a[0] == '-' && a[1]) {
            for (const char *p = a + 1; *p; p++) { /* -q, -v, -vv */
                const copt *s = find_cshort(*p);
                if (!s || s->kind != C_FLAG)
                    return cs_err_set(e, CS_E_USAGE, "unknown option %s (with --server)", a);
                set_copt(g, s, "1", e);
            }
            continue;
        } else {
            cs_strlist_add(words, a);
            continue;
        }
        if (o->kind == C_FLAG) {
            if (value)
                return cs_err_set(e, CS_E_USAGE, "option --%s takes no value", o->flag);
            set_copt(g, o, "1", e);
            continue;
        }
        if (!value) {
            if (i + 1 >= argc)
                return cs_err_set(e, CS_E_USAGE, "option --%s needs a value", o->flag);
            value = argv[++i];
        }
        if (set_copt(g, o, value, e))
            return e->code;
    }
    return 0;
}

static void usage_of(cs_buf *b, const ccmd *c)
{
    char *head = cs_sprintf("cassette --server URL %s%s%s%s", c->command, c->sub ? " " : "", c->sub ? c->sub : "",
                            c->takes_id ? " ID" : "");
    cs_buf_addstr(b, head);
    free(head);
    const char *p = c->flags;
    while (*p) {
        size_t n = strcspn(p, " ");
        bool req = false;
        char flag[32];
        if (n < sizeof flag) {
            memcpy(flag, p, n);
            flag[n] = '\0';
            req = in_words(c->required, flag);
            const copt *o = find_copt(flag, n);
            char *w = cs_sprintf(" %s--%s%s%s", req ? "" : "[", flag, o && o->kind == C_FLAG ? "" : " V",
                                 req ? "" : o && o->kind == C_LIST ? "]..." : "]");
            cs_buf_addstr(b, w);
            free(w);
        }
        p += n;
        while (*p == ' ')
            p++;
    }
}

int cs_client_parse(int argc, char **argv, cs_client_call *call, cs_err *e)
{
    memset(call, 0, sizeof *call);
    given g;
    memset(&g, 0, sizeof g);
    cs_strlist words = { NULL, 0 };
    int rc = parse_given(argc, argv, &g, &words, e);
    const ccmd *c = NULL;
    if (!rc && !words.n)
        rc = cs_err_set(e, CS_E_USAGE, "no command (try cassette --help)");
    if (!rc) {
        bool has_subs = !strcmp(words.items[0], "cluster") || !strcmp(words.items[0], "task") ||
                        !strcmp(words.items[0], "run");
        c = find_ccmd(words.items[0], has_subs && words.n > 1 ? words.items[1] : NULL);
        if (!c || (has_subs && words.n < 2))
            rc = cs_err_set(e, CS_E_USAGE, "usage: cassette --server URL %s %s", words.items[0],
                            !strcmp(words.items[0], "cluster") ? "register|list|show|remove ..."
                            : !strcmp(words.items[0], "task")  ? "add|list|show|run|disable|enable|remove ..."
                                                               : "list|show|cancel ...");
    }
    size_t nwords = c ? (c->sub ? 2u : 1u) + (c->takes_id ? 1u : 0u) : 0;
    if (!rc && words.n != nwords) {
        cs_buf u = CS_BUF_INIT;
        usage_of(&u, c);
        rc = cs_err_set(e, CS_E_USAGE, "usage: %s", cs_buf_str(&u));
        cs_buf_free(&u);
    }
    for (size_t i = 0; !rc && i < N_COPTS; i++) {
        if (g.set[i] && !in_words(GLOBAL_FLAGS, copts[i].flag) && !in_words(c->flags, copts[i].flag))
            rc = cs_err_set(e, CS_E_USAGE, "%s%s%s does not take --%s", c->command, c->sub ? " " : "",
                            c->sub ? c->sub : "", copts[i].flag);
        if (!rc && !g.set[i] && in_words(c->required, copts[i].flag))
            rc = cs_err_set(e, CS_E_USAGE, "%s%s%s needs --%s", c->command, c->sub ? " " : "", c->sub ? c->sub : "",
                            copts[i].flag);
    }
    if (!rc && c->takes_id && !cs_client_id_ok(words.items[nwords - 1]))
        rc = cs_err_set(e, CS_E_USAGE, "\"%s\" is not an id", words.items[nwords - 1]);
    if (!rc)
        rc = build(c, &g, c->takes_id ? words.items[nwords - 1] : NULL, call, e);
    if (!rc) {
        call->json = gset(&g, "json");
        call->server = gv(&g, "server") ? cs_strdup(gv(&g, "server")) : NULL;
        call->token_file = gv(&g, "server-token-file") ? cs_strdup(gv(&g, "server-token-file")) : NULL;
        call->ca_file = gv(&g, "server-ca-file") ? cs_strdup(gv(&g, "server-ca-file")) : NULL;
        call->config_file = gv(&g, "config") ? cs_strdup(gv(&g, "config")) : NULL;
    } else {
        cs_client_call_free(call);
    }
    cs_strlist_free(&words);
    given_free(&g);
    return rc;
}

bool cs_client_id_ok(const char *id)
{
    return cs_model_id_ok(id);
}

void cs_client_call_free(cs_client_call *call)
{
    free(call->method);
    free(call->path);
    json_decref(call->body);
    free(call->id);
    free(call->server);
    free(call->token_file);
    free(call->ca_file);
    free(call->config_file);
    memset(call, 0, sizeof *call);
}

/* ---- the text of answers ---- */

static const char *s0(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

/* A time (seconds since the epoch) as "2026-12-06T18:00:00Z", "-" for none. */
static const char *when(const json_t *o, const char *key, char *buf, size_t cap)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v) || json_number_value(v) <= 0)
        return "-";
    time_t t = (time_t)json_number_value(v);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void cluster_text(FILE *out, const json_t *c)
{
    fprintf(out, "cluster %s: %s, %zu nodes, repository %s\n", s0(c, "id"), s0(c, "name"),
            json_array_size(json_object_get(c, "nodes")), s0(c, "repo"));
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(c, "nodes"), i, n) {
        const json_t *ok = json_object_get(n, "ok");
        fprintf(out, "  %-15s %-10s %-10s %-36s %s%s\n", s0(n, "address"), s0(n, "datacenter"), s0(n, "rack"),
                s0(n, "host_id"), s0(n, "agent"), json_is_false(ok) ? " (unreachable)" : "");
    }
}

static void task_text(FILE *out, const json_t *t)
{
    const json_t *sched = json_object_get(t, "schedule");
    fprintf(out, "task %s: %s on cluster %s, %s%s%s%s, %s, retries %lld\n", s0(t, "id"), s0(t, "kind"),
            s0(t, "cluster"), json_is_string(sched) ? "schedule " : "run when asked",
            json_is_string(sched) ? json_string_value(sched) : "", json_is_string(sched) ? " " : "",
            json_is_string(sched) ? s0(t, "timezone") : "",
            json_is_false(json_object_get(t, "enabled")) ? "disabled" : "enabled",
            (long long)json_integer_value(json_object_get(t, "retries")));
    size_t i;
    const json_t *w;
    json_array_foreach(json_object_get(t, "window"), i, w)
        fprintf(out, "  window %s\n", json_string_value(w) ? json_string_value(w) : "?");
    const json_t *params = json_object_get(t, "params");
    if (json_object_size(params)) {
        char *p = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(out, "  params %s\n", p ? p : "{}");
        free(p);
    }
}

static void run_text(FILE *out, const json_t *r)
{
    char a[32], b[32];
    fprintf(out, "run %s: %s of cluster %s, %s (started %s, ended %s)\n", s0(r, "id"), s0(r, "kind"),
            s0(r, "cluster"), s0(r, "state"), when(r, "started", a, sizeof a), when(r, "ended", b, sizeof b));
    const json_t *p = json_object_get(r, "progress");
    if (json_is_object(p) && !json_is_null(json_object_get(p, "phase"))) {
        char done[32], total[32];
        cs_human_size((uint64_t)json_integer_value(json_object_get(p, "bytes_done")), done, sizeof done);
        cs_human_size((uint64_t)json_integer_value(json_object_get(p, "bytes_total")), total, sizeof total);
        fprintf(out, "  %s: %lld/%lld files, %s/%s\n", s0(p, "phase"),
                (long long)json_integer_value(json_object_get(p, "files_done")),
                (long long)json_integer_value(json_object_get(p, "files_total")), done, total);
        size_t i;
        const json_t *n;
        json_array_foreach(json_object_get(p, "nodes"), i, n) {
            cs_human_size((uint64_t)json_integer_value(json_object_get(n, "bytes_done")), done, sizeof done);
            cs_human_size((uint64_t)json_integer_value(json_object_get(n, "bytes_total")), total, sizeof total);
            fprintf(out, "    %s: %s, %s, %lld/%lld files, %s/%s\n", s0(n, "name"), s0(n, "state"),
                    *s0(n, "phase") ? s0(n, "phase") : "-",
                    (long long)json_integer_value(json_object_get(n, "files_done")),
                    (long long)json_integer_value(json_object_get(n, "files_total")), done, total);
        }
    }
    if (json_is_string(json_object_get(r, "error")))
        fprintf(out, "  error: %s\n", s0(r, "error"));
}

static void table(FILE *out, const json_t *items, const char *none, int shape)
{
    if (!json_array_size(items)) {
        fprintf(out, "%s\n", none);
        return;
    }
    size_t i;
    const json_t *x;
    char a[32], b[32];
    if (shape == CS_CLIENT_CLUSTERS)
        fprintf(out, "%-24s %-20s %5s  %s\n", "ID", "NAME", "NODES", "REPOSITORY");
    else if (shape == CS_CLIENT_TASKS)
        fprintf(out, "%-24s %-16s %-16s %-8s %-24s %s\n", "ID", "CLUSTER", "KIND", "ENABLED", "SCHEDULE", "WINDOW");
    else
        fprintf(out, "%-28s %-16s %-16s %-11s %-20s %-20s %s\n", "ID", "CLUSTER", "KIND", "STATE", "STARTED", "ENDED",
                "TASK");
    json_array_foreach(items, i, x) {
        if (shape == CS_CLIENT_CLUSTERS)
            fprintf(out, "%-24s %-20s %5zu  %s\n", s0(x, "id"), s0(x, "name"),
                    json_array_size(json_object_get(x, "nodes")), s0(x, "repo"));
        else if (shape == CS_CLIENT_TASKS)
            fprintf(out, "%-24s %-16s %-16s %-8s %-24s %zu\n", s0(x, "id"), s0(x, "cluster"), s0(x, "kind"),
                    json_is_false(json_object_get(x, "enabled")) ? "no" : "yes", s0(x, "schedule"),
                    json_array_size(json_object_get(x, "window")));
        else
            fprintf(out, "%-28s %-16s %-16s %-11s %-20s %-20s %s\n", s0(x, "id"), s0(x, "cluster"), s0(x, "kind"),
                    s0(x, "state"), when(x, "started", a, sizeof a), when(x, "ended", b, sizeof b), s0(x, "task"));
    }
}

void cs_client_render(FILE *out, const cs_client_call *call, const json_t *answer)
{
    if (call->verb && call->shape != CS_CLIENT_NONE)
        fprintf(out, "%s ", call->verb);
    switch (call->shape) {
    case CS_CLIENT_CLUSTERS:
        table(out, json_object_get(answer, "clusters"), "no clusters", CS_CLIENT_CLUSTERS);
        break;
    case CS_CLIENT_CLUSTER:
        cluster_text(out, answer);
        break;
    case CS_CLIENT_TASKS:
        table(out, json_object_get(answer, "tasks"), "no tasks", CS_CLIENT_TASKS);
        break;
    case CS_CLIENT_TASK:
        task_text(out, answer);
        break;
    case CS_CLIENT_RUNS:
        table(out, json_object_get(answer, "runs"), "no runs", CS_CLIENT_RUNS);
        break;
    case CS_CLIENT_RUN:
        run_text(out, answer);
        break;
    case CS_CLIENT_BACKUPS: {
        const cs_op_def *op = cs_op_find_command("list", NULL);
        cs_err e;
        cs_err_clear(&e);
        void *req = op ? cs_op_request_new(op, &e) : NULL;
        if (req)
            cs_print_result(out, stderr, op, req, NULL, json_object_get(answer, "backups"), false);
        if (op)
            cs_op_request_free(op, req);
        break;
    }
    case CS_CLIENT_NONE:
        fprintf(out, "%s %s\n", call->verb ? call->verb : "done", call->id ? call->id : "");
        break;
    }
}

int cs_client_run_verdict(const json_t *run, cs_err *e)
{
    const char *state = s0(run, "state");
    if (!strcmp(state, "done"))
        return 0;
    const json_t *code = json_object_get(run, "error_code");
    int c = json_is_integer(code) && json_integer_value(code) < 0 && json_integer_value(code) > -100
                ? (int)json_integer_value(code)
                : CS_E_EXTERNAL;
    const char *why = json_string_value(json_object_get(run, "error"));
    return cs_err_set(e, c, "run %s %s%s%s", s0(run, "id"), state, why ? ": " : "", why ? why : "");
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
        return CS_E_EXISTS;
    case 503:
        return CS_E_UNAVAIL;
    default:
        return CS_E_EXTERNAL;
    }
}

int cs_client_http_error(long status, const char *body, size_t len, cs_err *e)
{
    json_t *doc = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "error"));
    int rc = cs_err_set(e, code_of_status(status), "%s (HTTP %ld)",
                        msg ? msg : status == 401 ? "the server refused the token" : "no reason given", status);
    json_decref(doc);
    return rc;
}

/* ---- talking to the server ---- */

typedef struct conn {
    cs_http *http;
    char *auth; /* "Authorization: Bearer <token>", or NULL: never printed or logged */
    const char *base;
} conn;

typedef struct call_req {
    cs_http_req http; /* first: the callbacks get it back */
    const conn *c;
    const char *url;
    bool has_body;
} call_req;

static int prepare(cs_http_req *r, const char *range, cs_http_attempt *a, cs_err *e)
{
    (void)range;
    (void)e;
    call_req *k = (call_req *)r;
    cs_http_attempt_url(a, k->url);
    if (k->c->auth)
        cs_http_attempt_header(a, k->c->auth);
    cs_http_attempt_header(a, "Accept: application/json");
    if (k->has_body)
        cs_http_attempt_header(a, "Content-Type: application/json");
    return 0;
}

static int request_error(const cs_http_req *r, cs_err *e)
{
    if (r->transport_error)
        return cs_err_set(e, CS_E_UNAVAIL, "no answer: %s", r->transport_error);
    return cs_client_http_error(r->status, (const char *)r->resp.data, r->resp.len, e);
}

static int ask(const conn *c, const char *method, const char *path, const json_t *body, json_t **out, cs_err *e)
{
    *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    cs_buf url = CS_BUF_INIT;
    cs_buf_addstr(&url, c->base);
    while (url.len && url.data[url.len - 1] == '/')
        url.len--;
    cs_buf_addstr(&url, path);
    call_req k = { .c = c, .url = cs_buf_str(&url), .has_body = text != NULL };
    k.http.method = method;
    k.http.body = (const uint8_t *)text;
    k.http.body_len = text ? strlen(text) : 0;
    k.http.cancellable = true;
    k.http.service = "server";
    k.http.target = path;
    k.http.prepare = prepare;
    k.http.error = request_error;
    int rc = cs_http_request(c->http, &k.http, e);
    if (!rc && k.http.resp.len) {
        json_error_t je;
        *out = json_loadb((const char *)k.http.resp.data, k.http.resp.len, 0, &je);
        if (!*out)
            rc = cs_err_set(e, CS_E_PROTO, "the answer to %s %s is not JSON: %s", method, path, je.text);
    }
    if (rc)
        cs_err_prefix(e, "server");
    cs_http_req_free(&k.http);
    cs_buf_free(&url);
    free(text);
    return rc;
}

/* Poll run until it is final (answer: the last run document). */
static int wait_run(const conn *c, json_t **run, cs_err *e)
{
    for (;;) {
        const char *state = json_string_value(json_object_get(*run, "state"));
        const char *id = json_string_value(json_object_get(*run, "id"));
        if (!id)
            return cs_err_set(e, CS_E_PROTO, "server: the answer names no run");
        if (state && (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled") ||
                      !strcmp(state, "interrupted")))
            return 0;
        if (cs_cancel_sleep(0.5, e))
            return cs_err_set(e, CS_E_CANCELED, "stopped waiting for run %s (it goes on on the server)", id);
        char *path = path_of("runs", id, NULL);
        json_t *next = NULL;
        int rc = ask(c, "GET", path, NULL, &next, e);
        free(path);
        if (rc)
            return rc;
        json_decref(*run);
        *run = next;
    }
}

static void print_json(FILE *out, const json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text)
        fprintf(out, "%s\n", text);
    free(text);
}

/* Where the server is: the flags, then CASSETTE_SERVER..., then the
 * config file (through the option table, for its precedence). */
static int settings(int argc, char **argv, char **server, char **token, char **ca, cs_err *e)
{
    char *mini[16];
    int n = 0;
    mini[n++] = argv[0];
    for (int i = 1; i < argc && n < 14; i++) {
        const char *a = argv[i];
        static const char *const keep[] = { "--config", "--server", "--server-token-file", "--server-ca-file" };
        for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
            size_t len = strlen(keep[k]);
            if (!strncmp(a, keep[k], len) && a[len] == '=') {
                mini[n++] = argv[i];
            } else if (!strcmp(a, keep[k]) && i + 1 < argc) {
                mini[n++] = argv[i];
                mini[n++] = argv[++i];
            }
        }
    }
    cs_config cfg;
    int rc = cs_config_load(n, mini, &cfg, e);
    if (!rc) {
        *server = cfg.server_url ? cs_strdup(cfg.server_url) : NULL;
        *token = cfg.server_token_file ? cs_strdup(cfg.server_token_file) : NULL;
        *ca = cfg.server_ca_file ? cs_strdup(cfg.server_ca_file) : NULL;
    }
    cs_config_free(&cfg);
    return rc;
}

void cs_client_usage(FILE *out)
{
    fprintf(out, "with --server URL (or server_url in the config file, or CASSETTE_SERVER), these ask cassette "
                 "server's REST API:\n");
    for (size_t i = 0; i < N_CCMDS; i++) {
        cs_buf b = CS_BUF_INIT;
        usage_of(&b, &ccmds[i]);
        fprintf(out, "  %s\n", cs_buf_str(&b));
        cs_buf_free(&b);
    }
    fprintf(out, "options: --server-token-file FILE (the bearer token), --server-ca-file FILE (PEM CAs), --json; "
                 "--wait polls the run until it ends (non-zero exit when it failed)\n");
}

static int fail(const cs_err *e)
{
    fprintf(stderr, "cassette: %s\n", e->msg); /* the server's own words: no {field} to render */
    return cs_exit_code(e->code);
}

static bool wants_help(int argc, char **argv)
{
    const char *command, *sub;
    words_of(argc, argv, &command, &sub);
    if (command && !strcmp(command, "help"))
        return true;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

int cs_client_main(int argc, char **argv)
{
    bool must = false;
    if (!cs_client_command(argc, argv, &must))
        return -1;
    cs_err e;
    cs_err_clear(&e);
    char *server = NULL, *token_file = NULL, *ca_file = NULL;
    if (settings(argc, argv, &server, &token_file, &ca_file, &e)) {
        if (!must)
            return -1; /* the local command line says what is wrong */
        return fail(&e);
    }
    int status = -1;
    cs_client_call call;
    memset(&call, 0, sizeof call);
    conn c = { 0 };
    json_t *answer = NULL;
    if (!server || !*server) {
        if (must) {
            if (wants_help(argc, argv)) {
                cs_client_usage(stdout);
                status = CS_EXIT_OK;
            } else {
                const char *command, *sub;
                words_of(argc, argv, &command, &sub);
                fprintf(stderr, "cassette: %s needs --server URL (or server_url, CASSETTE_SERVER): it asks cassette "
                                "server\n", command);
                status = CS_EXIT_USAGE;
            }
        }
        goto out;
    }
    if (wants_help(argc, argv)) {
        cs_client_usage(stdout);
        status = CS_EXIT_OK;
        goto out;
    }
    if (cs_client_parse(argc, argv, &call, &e)) {
        status = fail(&e);
        goto out;
    }
    cs_log_set_level(CS_LOG_WARN);
    if (token_file && cs_http_bearer_file(token_file, "--server-token-file", CS_E_USAGE, &c.auth, &e)) {
        status = fail(&e);
        goto out;
    }
    bool get = !strcmp(call.method, "GET");
    cs_http_opts ho = { .ca_file = ca_file, .timeout_s = 30, .retries = get ? 2u : 0u };
    c.http = cs_http_new(&ho);
    c.base = server;
    cs_cancel_install();
    if (ask(&c, call.method, call.path, call.body, &answer, &e)) {
        status = fail(&e);
        goto out;
    }
    if (call.wait && wait_run(&c, &answer, &e)) {
        status = fail(&e);
        goto out;
    }
    if (call.wait)
        call.verb = NULL; /* it is no longer queued */
    if (call.json)
        print_json(stdout, answer);
    else
        cs_client_render(stdout, &call, answer);
    status = CS_EXIT_OK;
    if (call.wait && cs_client_run_verdict(answer, &e))
        status = fail(&e);
out:
    json_decref(answer);
    if (c.http)
        cs_http_free(c.http);
    if (c.auth) {
        memset(c.auth, 0, strlen(c.auth));
        free(c.auth);
    }
    cs_client_call_free(&call);
    free(server);
    free(token_file);
    free(ca_file);
    return status;
}

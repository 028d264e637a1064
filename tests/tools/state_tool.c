/* state_tool - the server's state store (server/state.h) from the shell,
 * for the tests of its back ends against a real node.
 *
 *   state_tool URL cluster-put create|replace JSON   cluster-get ID
 *   state_tool URL cluster-list | cluster-delete ID
 *   state_tool URL task-put create|replace JSON | task-get ID | task-list [CLUSTER] | task-delete ID
 *   state_tool URL run-add JSON | run-update JSON | run-cas FROM JSON | run-get ID
 *   state_tool URL run-list [FILTER-JSON: cluster task kind state since limit oldest_first]
 *   state_tool URL run-cancel ID | run-cancel-asked ID
 *   state_tool URL audit-add JSON | audit-list [LIMIT]
 *   state_tool URL lease OWNER TTL | lease-release OWNER | lease-get
 *   state_tool URL export | import JSON | prune BEFORE | kind
 *
 * Options from the environment: STATE_CQL_USER, STATE_CQL_PASSWORD,
 * STATE_CQL_TLS (1), STATE_CQL_CA, STATE_CQL_CERT, STATE_CQL_KEY,
 * STATE_RF, STATE_HISTORY (seconds).
 * Prints one JSON object: {"rc": 0, "result": ...} or {"rc": CODE,
 * "error": "..."}; exit 0 either way (2: bad usage). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/state.h"

static json_t *arg_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) {
        fprintf(stderr, "state_tool: not JSON: %s\n", je.text);
        exit(2);
    }
    return j;
}

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: state_tool URL COMMAND [ARGS] (see the source)\n");
    return 2;
}

static bool is(const char *a, const char *b)
{
    return !strcmp(a, b);
}

static int run_cmd(cs_state *s, int argc, char **argv, json_t **result, cs_err *e)
{
    const char *cmd = argv[0];
    const char *a1 = argc > 1 ? argv[1] : NULL, *a2 = argc > 2 ? argv[2] : NULL;
    json_t *doc = NULL;
    int rc;
    char st[16];
    bool b;
    *result = json_null();
    if (is(cmd, "kind")) {
        *result = json_string(cs_state_kind(s));
        return 0;
    }
    if ((is(cmd, "cluster-put") || is(cmd, "task-put")) && a2) {
        doc = arg_json(a2);
        rc = is(cmd, "cluster-put") ? cs_state_cluster_put(s, doc, is(a1, "create"), e)
                                    : cs_state_task_put(s, doc, is(a1, "create"), e);
    } else if (is(cmd, "cluster-get") && a1) {
        rc = cs_state_cluster_get(s, a1, result, e);
    } else if (is(cmd, "cluster-list")) {
        rc = cs_state_cluster_list(s, result, e);
    } else if (is(cmd, "cluster-delete") && a1) {
        rc = cs_state_cluster_delete(s, a1, e);
    } else if (is(cmd, "task-get") && a1) {
        rc = cs_state_task_get(s, a1, result, e);
    } else if (is(cmd, "task-list")) {
        rc = cs_state_task_list(s, a1, result, e);
    } else if (is(cmd, "task-delete") && a1) {
        rc = cs_state_task_delete(s, a1, e);
    } else if (is(cmd, "run-add") && a1) {
        doc = arg_json(a1);
        rc = cs_state_run_add(s, doc, e);
    } else if (is(cmd, "run-update") && a1) {
        doc = arg_json(a1);
        rc = cs_state_run_update(s, doc, e);
    } else if (is(cmd, "run-cas") && a2) {
        doc = arg_json(a2);
        b = false;
        rc = cs_state_run_cas(s, a1, doc, &b, e);
        *result = json_pack("{s:b}", "applied", b);
    } else if (is(cmd, "run-get") && a1) {
        rc = cs_state_run_get(s, a1, result, e);
    } else if (is(cmd, "run-list")) {
        doc = a1 ? arg_json(a1) : json_object();
        cs_run_filter f = {
            .cluster = json_string_value(json_object_get(doc, "cluster")),
            .task = json_string_value(json_object_get(doc, "task")),
            .kind = json_string_value(json_object_get(doc, "kind")),
            .state = json_string_value(json_object_get(doc, "state")),
            .since = json_number_value(json_object_get(doc, "since")),
            .limit = (size_t)json_integer_value(json_object_get(doc, "limit")),
            .oldest_first = json_is_true(json_object_get(doc, "oldest_first")),
        };
        rc = cs_state_run_list(s, &f, result, e);
    } else if (is(cmd, "run-cancel") && a1) {
        st[0] = '\0';
        rc = cs_state_run_cancel(s, a1, st, e);
        *result = json_pack("{s:s}", "state", st);
    } else if (is(cmd, "run-cancel-asked") && a1) {
        b = false;
        rc = cs_state_run_cancel_asked(s, a1, &b, e);
        *result = json_pack("{s:b}", "asked", b);
    } else if (is(cmd, "audit-add") && a1) {
        doc = arg_json(a1);
        rc = cs_state_audit_add(s, doc, e);
    } else if (is(cmd, "audit-list")) {
        rc = cs_state_audit_list(s, a1 ? (size_t)strtoul(a1, NULL, 10) : 0, result, e);
    } else if (is(cmd, "lease") && a2) {
        uint64_t epoch = 0;
        b = false;
        rc = cs_state_lease(s, a1, strtod(a2, NULL), &b, &epoch, e);
        *result = json_pack("{s:b, s:I}", "held", b, "epoch", (json_int_t)epoch);
    } else if (is(cmd, "lease-release") && a1) {
        rc = cs_state_lease_release(s, a1, e);
    } else if (is(cmd, "lease-get")) {
        rc = cs_state_lease_get(s, result, e);
    } else if (is(cmd, "export")) {
        rc = cs_state_export(s, result, e);
    } else if (is(cmd, "import") && a1) {
        doc = arg_json(a1);
        size_t added = 0;
        rc = cs_state_import(s, doc, &added, e);
        *result = json_pack("{s:I}", "added", (json_int_t)added);
    } else if (is(cmd, "prune") && a1) {
        rc = cs_state_prune(s, strtod(a1, NULL), e);
    } else {
        json_decref(*result);
        exit(usage());
    }
    json_decref(doc);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    cs_state_opts o = {
        .cql_user = env_or_null("STATE_CQL_USER"),
        .cql_password = env_or_null("STATE_CQL_PASSWORD"),
        .cql_tls = env_or_null("STATE_CQL_TLS") != NULL,
        .cql_ca_file = env_or_null("STATE_CQL_CA"),
        .cql_cert = env_or_null("STATE_CQL_CERT"),
        .cql_key = env_or_null("STATE_CQL_KEY"),
        .replication_factor = env_or_null("STATE_RF") ? strtol(getenv("STATE_RF"), NULL, 10) : 0,
        .history_seconds = env_or_null("STATE_HISTORY") ? strtod(getenv("STATE_HISTORY"), NULL) : 0,
    };
    cs_err e;
    cs_err_clear(&e);
    cs_state *s = NULL;
    json_t *result = NULL;
    int rc = cs_state_open(argv[1], &o, &s, &e);
    if (!rc)
        rc = run_cmd(s, argc - 2, argv + 2, &result, &e);
    json_t *out = json_pack("{s:i}", "rc", rc);
    if (rc) {
        json_object_set_new(out, "error", json_string(e.msg));
        json_decref(result);
    } else {
        json_object_set_new(out, "result", result ? result : json_null());
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    puts(text);
    free(text);
    json_decref(out);
    cs_state_close(s);
    return 0;
}

/* settool - write and read backup sets (repo/set.h) from the shell, for the
 * tests of sets on one node without a coordinator.
 *
 *   settool REPO begin NAME CLUSTER HOST_ID=ADDRESS[/DC/RACK]...   prints the set id
 *   settool REPO commit NAME [HOST_ID=REASON]...   hosts named: not ok, with that
 *                                                  reason; the others ok
 *   settool REPO put-manifest NAME FILE            the cluster manifest
 *   settool REPO get-manifest NAME [IDENTITY]      to stdout
 *   settool REPO read NAME                         the record and commit as JSON
 *
 * Storage settings come from the same variables cassette reads.
 * Errors: one line "settool: ..." and exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/config.h"
#include "common/buf.h"
#include "common/fs.h"
#include "ops/ops.h"
#include "repo/set.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* HOST_ID=ADDRESS[/DC/RACK] */
static void parse_host(const char *arg, cs_set_host *h)
{
    const char *eq = strchr(arg, '=');
    h->host_id = eq ? cs_strndup(arg, (size_t)(eq - arg)) : cs_strdup(arg);
    const char *rest = eq ? eq + 1 : "";
    const char *s1 = strchr(rest, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    h->address = s1 ? cs_strndup(rest, (size_t)(s1 - rest)) : cs_strdup(rest);
    h->datacenter = s1 ? (s2 ? cs_strndup(s1 + 1, (size_t)(s2 - s1 - 1)) : cs_strdup(s1 + 1)) : cs_strdup("");
    h->rack = cs_strdup(s2 ? s2 + 1 : "");
}

static int do_begin(cs_repo *r, int argc, char **argv, cs_err *e)
{
    cs_backup_set s;
    memset(&s, 0, sizeof s);
    s.name = cs_strdup(argv[0]);
    s.cluster = cs_strdup(argv[1]);
    s.set_id = cs_repo_set_new_id();
    char host[256];
    if (gethostname(host, sizeof host))
        strcpy(host, "localhost");
    host[sizeof host - 1] = 0;
    s.coordinator = cs_strdup(host);
    s.started = now();
    s.hosts = cs_calloc((size_t)argc, sizeof *s.hosts);
    for (int i = 2; i < argc; i++)
        parse_host(argv[i], &s.hosts[s.n_hosts++]);
    int rc = cs_repo_set_begin(r, &s, e);
    if (!rc)
        printf("%s\n", s.set_id);
    cs_backup_set_free(&s);
    return rc;
}

static int do_commit(cs_repo *r, int argc, char **argv, cs_err *e)
{
    cs_backup_set s;
    int rc = cs_repo_read_set(r, argv[0], &s, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < s.n_hosts; i++)
        s.hosts[i].ok = true;
    for (int a = 1; a < argc; a++) {
        const char *eq = strchr(argv[a], '=');
        for (size_t i = 0; eq && i < s.n_hosts; i++)
            if (strlen(s.hosts[i].host_id) == (size_t)(eq - argv[a]) &&
                !strncmp(s.hosts[i].host_id, argv[a], (size_t)(eq - argv[a]))) {
                s.hosts[i].ok = false;
                s.hosts[i].reason = cs_strdup(eq + 1);
            }
    }
    s.finished = now();
    rc = cs_repo_set_commit(r, &s, e);
    cs_backup_set_free(&s);
    return rc;
}

static json_t *set_json(const cs_backup_set *s)
{
    char *rec = cs_set_record_to_json(s), *com = cs_set_commit_to_json(s);
    json_t *j = json_pack("{s:o, s:o, s:b}", "record", json_loads(rec, 0, NULL), "commit",
                          s->committed ? json_loads(com, 0, NULL) : json_null(), "committed", s->committed);
    free(rec);
    free(com);
    return j;
}

static int run(cs_repo *r, int argc, char **argv, cs_err *e)
{
    const char *cmd = argv[2];
    int n = argc - 3;
    char **a = argv + 3;
    if (!strcmp(cmd, "begin") && n >= 3)
        return do_begin(r, n, a, e);
    if (!strcmp(cmd, "commit") && n >= 1)
        return do_commit(r, n, a, e);
    if (!strcmp(cmd, "put-manifest") && n == 2) {
        char *text = NULL;
        size_t len = 0;
        int rc = cs_read_file(a[1], CS_MANIFEST_MAX, &text, &len, e);
        if (!rc)
            rc = cs_repo_set_put_manifest(r, a[0], text, len, e);
        free(text);
        return rc;
    }
    if (!strcmp(cmd, "get-manifest") && (n == 1 || n == 2)) {
        cs_buf out = CS_BUF_INIT;
        int rc = n == 2 ? cs_repo_load_identities(r, a[1], e) : 0;
        if (!rc)
            rc = cs_repo_set_get_manifest(r, a[0], &out, e);
        if (!rc)
            fwrite(out.data, 1, out.len, stdout);
        cs_buf_free(&out);
        return rc;
    }
    if (!strcmp(cmd, "read") && n == 1) {
        cs_backup_set s;
        int rc = cs_repo_read_set(r, a[0], &s, e);
        if (!rc) {
            json_t *j = set_json(&s);
            char *text = json_dumps(j, JSON_INDENT(2));
            printf("%s\n", text);
            free(text);
            json_decref(j);
            cs_backup_set_free(&s);
        }
        return rc;
    }
    return cs_err_set(e, CS_E_INVAL, "usage: settool REPO begin|commit|put-manifest|get-manifest|read ...");
}

int main(int argc, char **argv)
{
    cs_err e;
    cs_err_clear(&e);
    if (argc < 3) {
        fputs("settool: usage: settool REPO begin|commit|put-manifest|get-manifest|read ...\n", stderr);
        return 2;
    }
    /* Only the environment: argv belongs to settool, not cassette. */
    char *cfg_argv[] = { "settool", "list", NULL };
    cs_config cfg;
    int rc = cs_config_load(2, cfg_argv, &cfg, &e);
    cs_host host;
    memset(&host, 0, sizeof host);
    cs_repo *repo = NULL;
    if (!rc)
        rc = cs_config_host(&cfg, &host, &e);
    if (!rc)
        rc = cs_ops_open_repo(&host, argv[1], NULL, false, &repo, &e);
    if (!rc)
        rc = run(repo, argc, argv, &e);
    cs_repo_free(repo);
    cs_host_free(&host);
    cs_config_free(&cfg);
    if (rc) {
        fprintf(stderr, "settool: %s\n", e.msg);
        return 1;
    }
    return 0;
}

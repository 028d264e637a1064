/* main.c - cassette's command line: parse, run one op, print its result.
 * The only place that prints errors: once, on one line, on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/output.h"
#include "cli/progress.h"
#include "common/cancel.h"
#include "common/config.h"
#include "common/err.h"
#include "common/job.h"
#include "common/log.h"
#include "crypto/age.h"
#include "ops/ops.h"
#include "version.h" /* made by the Makefile from git: CS_VERSION, CS_GIT */

static int run_init(const cs_config *cfg, cs_job *job, cs_err *e)
{
    char *id = NULL;
    int rc = cs_op_init(job, cfg, &id, e);
    if (!rc)
        printf("initialised repository %s (id %s)\n", cfg->repo, id);
    free(id);
    return rc;
}

static int run_backup(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_backup_result res;
    int rc = cs_op_backup(job, cfg, &res, e);
    cs_job_end(job); /* before the result: a live line is cleared */
    if (!rc)
        cs_print_backup(stdout, &res, cfg->json);
    cs_backup_result_free(&res);
    return rc;
}

static int run_list(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_op_list(job, cfg, &entries, &n, e);
    if (!rc)
        cs_print_list(stdout, entries, n, cfg->json);
    cs_backup_entries_free(entries, n);
    return rc;
}

static int run_catalog(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_op_catalog_rebuild(job, cfg, &entries, &n, e);
    if (!rc && cfg->json)
        cs_print_list(stdout, entries, n, true);
    else if (!rc)
        printf("catalog rebuilt: %zu backups\n", n);
    cs_backup_entries_free(entries, n);
    return rc;
}

static int run_purge(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_purge_result res;
    int rc = cs_op_purge(job, cfg, &res, e);
    cs_job_end(job); /* before the result: a live line is cleared */
    if (!rc)
        cs_print_purge(stdout, &res, cfg->json);
    cs_purge_result_free(&res);
    return rc;
}

/* status --max-age: every node's newest complete backup must have started
 * within max_age (a repository without any is too old as well). */
static int check_max_age(const cs_status_result *res, double max_age, cs_err *e)
{
    char limit[32], age[32];
    cs_human_duration(max_age, limit, sizeof limit);
    if (!res->n_nodes)
        return cs_err_set(e, CS_E_STALE, "no complete backup in %s (--max-age %s)", res->location, limit);
    size_t n_old = 0;
    const cs_status_node *first = NULL;
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_status_node *n = &res->nodes[i];
        if (n->newest && (double)time(NULL) - n->newest->started <= max_age)
            continue;
        first = first ? first : n;
        n_old++;
    }
    if (!first)
        return 0;
    if (first->newest)
        cs_human_duration((double)time(NULL) - first->newest->started, age, sizeof age);
    char others[64] = "";
    if (n_old > 1)
        snprintf(others, sizeof others, " (and %zu more nodes)", n_old - 1);
    return first->newest ? cs_err_set(e, CS_E_STALE,
                                      "node %s%s: newest complete backup %s is %s old, older than --max-age %s",
                                      first->address, others, first->newest->name, age, limit)
                         : cs_err_set(e, CS_E_STALE, "node %s%s has no complete backup (--max-age %s)",
                                      first->address, others, limit);
}

static int run_delete(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_delete_result res;
    int rc = cs_op_delete(job, cfg, &res, e);
    if (!rc)
        cs_print_delete(stdout, &res, cfg->json);
    cs_delete_result_free(&res);
    return rc;
}

static int run_status(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_status_result res;
    int rc = cs_op_status(job, cfg, &res, e);
    if (!rc)
        cs_print_status(stdout, &res, cfg->json);
    if (!rc && cfg->max_age > 0)
        rc = check_max_age(&res, cfg->max_age, e);
    cs_status_result_free(&res);
    return rc;
}

static int run_migrate(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_migrate_result res;
    int rc = cs_op_migrate(job, cfg, &res, e);
    if (!rc)
        cs_print_migrate(stdout, &res, cfg->json);
    cs_migrate_result_free(&res);
    return rc;
}

static int run_schema(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_buf out = CS_BUF_INIT;
    int rc = cs_op_schema_dump(job, cfg, &out, e);
    if (!rc)
        fputs(cs_buf_str(&out), stdout);
    cs_buf_free(&out);
    return rc;
}

static int run_restore(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_restore_result res;
    int rc = cs_op_restore(job, cfg, &res, e);
    cs_job_end(job); /* before the result: a live line is cleared */
    if (!rc)
        cs_print_restore(stdout, cfg->backup, &res, cfg->json);
    if (!rc && res.n_failed) /* the others were restored; these were not */
        rc = cs_err_set(e, res.failed_code, "restore %s: %zu of %zu tables not restored: %s (%s)%s", cfg->backup,
                        res.n_failed, res.n_failed + res.tables, res.failed[0].table, res.failed[0].reason,
                        res.n_failed > 1 ? " and more, listed above" : "");
    cs_restore_result_free(&res);
    return rc;
}

static int run_cleanup(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_cleanup_result res;
    int rc = cs_op_cleanup(job, cfg, &res, e);
    if (!rc)
        cs_print_cleanup(stdout, &res, cfg->json);
    cs_cleanup_result_free(&res);
    return rc;
}

static int run_verify(const cs_config *cfg, cs_job *job, cs_err *e)
{
    cs_verify_result res;
    int rc = cs_op_verify(job, cfg, &res, e);
    cs_job_end(job); /* before the result: a live line is cleared */
    if (!rc) {
        cs_print_verify(stdout, stderr, &res, cfg->json);
        if (res.n_problems > res.damaged_backups)
            rc = cs_err_set(e, CS_E_CORRUPT, "verify failed: %zu of %llu files are damaged%s",
                            res.n_problems - res.damaged_backups, (unsigned long long)res.files,
                            res.damaged_backups ? ", and backups are damaged" : "");
        else if (res.n_problems)
            rc = cs_err_set(e, CS_E_CORRUPT, "verify failed: %zu damaged backups (the others are good)",
                            res.damaged_backups);
    }
    cs_verify_result_free(&res);
    return rc;
}

static int run_key(const cs_config *cfg, cs_job *job, cs_err *e)
{
    const char *sub = cfg->args.n ? cfg->args.items[0] : "";
    if (!strcmp(sub, "generate") && cfg->args.n == 1) {
        cs_buf pub = CS_BUF_INIT, text = CS_BUF_INIT;
        int rc = cs_op_key_generate(job, cfg, &pub, &text, e);
        if (!rc && cfg->output)
            printf("%s\n", cs_buf_str(&pub)); /* the file holds the secret */
        else if (!rc)
            fputs(cs_buf_str(&text), stdout);
        age_buf_wipe(&text);
        cs_buf_free(&pub);
        return rc;
    }
    if (!strcmp(sub, "public") && cfg->args.n == 2) {
        cs_strlist keys = { NULL, 0 };
        int rc = cs_op_key_public(job, cfg, cfg->args.items[1], &keys, e);
        for (size_t i = 0; !rc && i < keys.n; i++)
            printf("%s\n", keys.items[i]);
        cs_strlist_free(&keys);
        return rc;
    }
    return cs_err_set(e, CS_E_INVAL, "unknown key command"); /* the config parser checked already */
}

static int dispatch(const cs_config *cfg, cs_job *job, cs_err *e)
{
    const char *cmd = cfg->command;
    if (!strcmp(cmd, "init"))
        return run_init(cfg, job, e);
    if (!strcmp(cmd, "backup"))
        return run_backup(cfg, job, e);
    if (!strcmp(cmd, "list"))
        return run_list(cfg, job, e);
    if (!strcmp(cmd, "restore"))
        return run_restore(cfg, job, e);
    if (!strcmp(cmd, "verify"))
        return run_verify(cfg, job, e);
    if (!strcmp(cmd, "key"))
        return run_key(cfg, job, e);
    if (!strcmp(cmd, "purge"))
        return run_purge(cfg, job, e);
    if (!strcmp(cmd, "status"))
        return run_status(cfg, job, e);
    if (!strcmp(cmd, "catalog"))
        return run_catalog(cfg, job, e);
    if (!strcmp(cmd, "migrate"))
        return run_migrate(cfg, job, e);
    if (!strcmp(cmd, "schema"))
        return run_schema(cfg, job, e);
    if (!strcmp(cmd, "delete"))
        return run_delete(cfg, job, e);
    if (!strcmp(cmd, "cleanup"))
        return run_cleanup(cfg, job, e);
    return cs_err_set(e, CS_E_INVAL, "unknown command %s", cmd);
}

/* Hidden commands for packaging, made from the option table:
 * `cassette --help-man` (the manual page) and `cassette completion bash`.
 * Returns -1 when argv is not one of them. */
static int run_generator(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help-man")) {
        cs_config_man(stdout, CS_VERSION);
        return CS_EXIT_OK;
    }
    if (argc == 3 && !strcmp(argv[1], "completion") && !strcmp(argv[2], "bash")) {
        cs_config_completion_bash(stdout);
        return CS_EXIT_OK;
    }
    return -1;
}

static void set_log_level(const cs_config *cfg)
{
    int level = cfg->quiet ? CS_LOG_ERROR : cfg->verbose >= 2 ? CS_LOG_DEBUG : cfg->verbose ? CS_LOG_INFO : CS_LOG_WARN;
    if (getenv("CASSETTE_DEBUG"))
        level = CS_LOG_DEBUG;
    cs_log_set_level(level);
}

int main(int argc, char **argv)
{
    cs_config cfg;
    cs_err e;
    cs_err_clear(&e);
    int status = run_generator(argc, argv);
    if (status >= 0)
        return status;
    status = CS_EXIT_OK;
    if (cs_config_load(argc, argv, &cfg, &e)) {
        fprintf(stderr, "cassette: %s\n", e.msg);
        cs_config_free(&cfg);
        return CS_EXIT_USAGE;
    }
    if (cfg.version) {
        printf("cassette %s (git %s)\n", CS_VERSION, CS_GIT);
        goto out;
    }
    if (cfg.help || !cfg.command) {
        cs_config_usage(cfg.help ? stdout : stderr, cfg.command);
        status = cfg.help ? CS_EXIT_OK : CS_EXIT_USAGE;
        goto out;
    }
    set_log_level(&cfg);
    cs_cli_progress *progress = NULL; /* what is shown of the job, and SIGINT */
    if (cs_cli_progress_new(&cfg, &progress, &e)) {
        fprintf(stderr, "cassette: %s\n", e.msg);
        status = CS_EXIT_USAGE;
        goto out;
    }
    /* One job per run: the operation's cancel flag, progress and log. */
    cs_job *job = cs_job_new(cfg.command, cs_cli_progress_observer(progress));
    cs_cli_progress_start(progress, job);
    cs_job_attach(job);
    if (dispatch(&cfg, job, &e))
        status = cs_exit_code(e.code);
    cs_cli_progress_finish(progress, status ? &e : NULL);
    if (status)
        fprintf(stderr, "cassette: %s\n", e.msg);
    cs_job_attach(NULL);
    cs_job_free(job);
out:
    cs_config_free(&cfg);
    return status;
}

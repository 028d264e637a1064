/* main.c - cassette's command line: parse, run one op, print its result.
 * The only place that prints errors: once, on one line, on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/output.h"
#include "common/cancel.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "crypto/age.h"
#include "ops/ops.h"

static int run_init(const cs_config *cfg, cs_err *e)
{
    char *id = NULL;
    int rc = cs_op_init(cfg, &id, e);
    if (!rc)
        printf("initialised repository %s (id %s)\n", cfg->repo, id);
    free(id);
    return rc;
}

static int run_backup(const cs_config *cfg, cs_err *e)
{
    cs_backup_result res;
    int rc = cs_op_backup(cfg, &res, e);
    if (!rc)
        cs_print_backup(stdout, &res, cfg->json);
    cs_backup_result_free(&res);
    return rc;
}

static int run_list(const cs_config *cfg, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_op_list(cfg, &entries, &n, e);
    if (!rc)
        cs_print_list(stdout, entries, n, cfg->json);
    cs_backup_entries_free(entries, n);
    return rc;
}

static int run_catalog(const cs_config *cfg, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_op_catalog_rebuild(cfg, &entries, &n, e);
    if (!rc && cfg->json)
        cs_print_list(stdout, entries, n, true);
    else if (!rc)
        printf("catalog rebuilt: %zu backups\n", n);
    cs_backup_entries_free(entries, n);
    return rc;
}

static int run_purge(const cs_config *cfg, cs_err *e)
{
    cs_purge_result res;
    int rc = cs_op_purge(cfg, &res, e);
    if (!rc)
        cs_print_purge(stdout, &res, cfg->json);
    cs_purge_result_free(&res);
    return rc;
}

static int run_status(const cs_config *cfg, cs_err *e)
{
    cs_status_result res;
    int rc = cs_op_status(cfg, &res, e);
    if (!rc)
        cs_print_status(stdout, &res, cfg->json);
    cs_status_result_free(&res);
    return rc;
}

static int run_migrate(const cs_config *cfg, cs_err *e)
{
    cs_migrate_result res;
    int rc = cs_op_migrate(cfg, &res, e);
    if (!rc)
        cs_print_migrate(stdout, &res, cfg->json);
    cs_migrate_result_free(&res);
    return rc;
}

static int run_schema(const cs_config *cfg, cs_err *e)
{
    cs_buf out = CS_BUF_INIT;
    int rc = cs_op_schema_dump(cfg, &out, e);
    if (!rc)
        fputs(cs_buf_str(&out), stdout);
    cs_buf_free(&out);
    return rc;
}

static int run_restore(const cs_config *cfg, cs_err *e)
{
    cs_restore_result res;
    int rc = cs_op_restore(cfg, &res, e);
    if (!rc)
        cs_print_restore(stdout, cfg->backup, &res, cfg->json);
    cs_restore_result_free(&res);
    return rc;
}

static int run_verify(const cs_config *cfg, cs_err *e)
{
    cs_verify_result res;
    int rc = cs_op_verify(cfg, &res, e);
    if (!rc) {
        cs_print_verify(stdout, stderr, &res, cfg->json);
        if (res.n_problems)
            rc = cs_err_set(e, CS_E_CORRUPT, "verify failed: %zu of %llu files are damaged", res.n_problems,
                            (unsigned long long)res.files);
    }
    cs_verify_result_free(&res);
    return rc;
}

static int run_key(const cs_config *cfg, cs_err *e)
{
    const char *sub = cfg->args.n ? cfg->args.items[0] : "";
    if (!strcmp(sub, "generate") && cfg->args.n == 1) {
        cs_buf pub = CS_BUF_INIT, text = CS_BUF_INIT;
        int rc = cs_op_key_generate(cfg, &pub, &text, e);
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
        int rc = cs_op_key_public(cfg, cfg->args.items[1], &keys, e);
        for (size_t i = 0; !rc && i < keys.n; i++)
            printf("%s\n", keys.items[i]);
        cs_strlist_free(&keys);
        return rc;
    }
    return cs_err_set(e, CS_E_INVAL, "unknown key command"); /* the config parser checked already */
}

static int dispatch(const cs_config *cfg, cs_err *e)
{
    const char *cmd = cfg->command;
    if (!strcmp(cmd, "init"))
        return run_init(cfg, e);
    if (!strcmp(cmd, "backup"))
        return run_backup(cfg, e);
    if (!strcmp(cmd, "list"))
        return run_list(cfg, e);
    if (!strcmp(cmd, "restore"))
        return run_restore(cfg, e);
    if (!strcmp(cmd, "verify"))
        return run_verify(cfg, e);
    if (!strcmp(cmd, "key"))
        return run_key(cfg, e);
    if (!strcmp(cmd, "purge"))
        return run_purge(cfg, e);
    if (!strcmp(cmd, "status"))
        return run_status(cfg, e);
    if (!strcmp(cmd, "catalog"))
        return run_catalog(cfg, e);
    if (!strcmp(cmd, "migrate"))
        return run_migrate(cfg, e);
    if (!strcmp(cmd, "schema"))
        return run_schema(cfg, e);
    return cs_err_set(e, CS_E_INVAL, "unknown command %s", cmd);
}

int main(int argc, char **argv)
{
    cs_config cfg;
    cs_err e;
    cs_err_clear(&e);
    int status = CS_EXIT_OK;
    if (cs_config_load(argc, argv, &cfg, &e)) {
        fprintf(stderr, "cassette: %s\n", e.msg);
        cs_config_free(&cfg);
        return CS_EXIT_USAGE;
    }
    if (cfg.help || !cfg.command) {
        cs_config_usage(cfg.help ? stdout : stderr, cfg.command);
        status = cfg.help ? CS_EXIT_OK : CS_EXIT_USAGE;
        goto out;
    }
    cs_log_set_level(cfg.verbose ? CS_LOG_INFO : CS_LOG_WARN);
    if (getenv("CASSETTE_DEBUG"))
        cs_log_set_level(CS_LOG_DEBUG);
    if (dispatch(&cfg, &e)) {
        fprintf(stderr, "cassette: %s\n", e.msg);
        status = e.code == CS_E_CANCELED ? CS_EXIT_INTERRUPTED : CS_EXIT_ERROR;
    }
out:
    cs_config_free(&cfg);
    return status;
}

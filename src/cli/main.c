/* main.c - cassette's command line: parse, build the operation's request
 * and the host from flags, environment and INI files, run it through the
 * op table, print its result. The only place that prints errors: once, on
 * one line, on stderr, naming settings as flags. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/client.h"
#include "cli/config.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "cli/textfile.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"
#include "ops/host.h"
#include "ops/optable.h"
#include "server/server.h"
#include "version.h" /* made by the Makefile from git: CS_VERSION, CS_GIT */

/* Run op with the request and host cfg gives, print its result, and
 * return its verdict (the error the result amounts to) or its error. */
/* --metrics-file: the run's textfile, after the run whether it succeeded
 * (err NULL) or not. A file that cannot be written is a warning: the run's
 * own outcome is what the exit status says. */
static void write_metrics_file(const cs_config *cfg, const cs_op_def *op, const cs_job *job, const json_t *doc,
                               const cs_err *err)
{
    cs_progress p;
    cs_job_progress(job, &p);
    cs_textfile_run run = { .op = op->name, .repo = cfg->repo, .result = doc, .err = err, .ended = cs_now(),
                            .duration = p.elapsed };
    cs_err we;
    cs_err_clear(&we);
    if (cs_textfile_write(&run, cfg->metrics_file, &we))
        cs_warn("%s", we.msg);
}

static int run_op(const cs_config *cfg, const cs_op_def *op, cs_job *job, cs_err *e)
{
    cs_host host;
    void *req = NULL, *res = NULL;
    int rc = cs_config_host(cfg, &host, e);
    if (rc)
        return rc;
    req = cs_op_request_new(op, e);
    rc = req ? cs_config_request(cfg, op, req, e) : e->code;
    if (!rc)
        rc = cs_op_run(op, job, &host, req, &res, e);
    cs_job_end(job); /* before the result: a live line is cleared */
    json_t *doc = NULL;
    if (!rc) {
        doc = cs_op_result_json(op, req, res);
        cs_print_result(stdout, stderr, op, req, res, doc, cfg->json);
        rc = cs_op_verdict(op, req, res, e);
    }
    if (cfg->metrics_file)
        write_metrics_file(cfg, op, job, doc, rc ? e : NULL);
    json_decref(doc);
    cs_op_result_free(op, res);
    cs_op_request_free(op, req);
    cs_host_free(&host);
    return rc;
}

/* `cassette agent`: serve the op table over HTTP(S) with this machine's
 * host settings until SIGINT or SIGTERM (exit 0 then: a stop asked for is
 * the daemon's normal end). */
static int run_agent(const cs_config *cfg, cs_err *e)
{
    cs_host host;
    char listen_host[256];
    int port = 0;
    char *token = NULL;
    int rc = cs_http_parse_listen(cfg->listen ? cfg->listen : "127.0.0.1:7620", "0.0.0.0", listen_host, sizeof listen_host, &port, e);
    if (rc)
        return rc;
    if (cfg->token_file) {
        rc = cs_http_read_token(cfg->token_file, &token, e);
    } else if (!cfg->insecure_loopback) {
        rc = cs_err_set(e, CS_E_USAGE, "agent needs --token-file FILE (or, on a loopback address only, "
                                       "--insecure-loopback)");
    } else if (!cs_http_is_loopback(listen_host)) {
        rc = cs_err_set(e, CS_E_USAGE, "--insecure-loopback serves without a token on a loopback address only, "
                                       "not on %s", listen_host);
    }
    if (rc)
        return rc;
    rc = cs_config_host(cfg, &host, e);
    if (!rc) {
        cs_httpd_opts opts = { .host = listen_host, .port = port, .tls_cert = cfg->tls_cert,
                               .tls_key = cfg->tls_key, .tls_client_ca = cfg->tls_client_ca, .token = token };
        rc = cs_agent_run(&host, &cfg->allow_repos, CS_VERSION, &opts, e);
        cs_host_free(&host);
    }
    cs_http_token_free(token);
    return rc;
}

/* `cassette server`: the daemon (server/server.h) with this machine's
 * host settings, until SIGINT or SIGTERM (exit 0 then). */
static int run_server(const cs_config *cfg, cs_err *e)
{
    char listen_host[256], *state = NULL;
    int port = 0;
    int rc = cs_http_parse_listen(cfg->listen ? cfg->listen : "127.0.0.1:7630", "0.0.0.0", listen_host,
                                  sizeof listen_host, &port, e);
    if (rc)
        return rc;
    if (!cfg->tokens_file && !cs_http_is_loopback(listen_host))
        return cs_err_set(e, CS_E_USAGE, "server without --tokens-file serves a loopback address only, not %s",
                          listen_host);
    cs_host host;
    rc = cs_config_host(cfg, &host, e);
    if (rc)
        return rc;
    if (cfg->state_url) {
        state = cs_strdup(cfg->state_url);
    } else {
        const char *home = getenv("HOME");
        const char *dir = cfg->state_dir;
        char *def = dir ? NULL : cs_sprintf("%s/.cache/cassette/state", home && *home ? home : ".");
        rc = cs_mkdirs(dir ? dir : def, 0700, e);
        state = cs_sprintf("sqlite:%s/server.db", dir ? dir : def);
        free(def);
    }
    cs_server_opts o = {
        .state_url = state,
        .state_opts = { .cql_user = cfg->cql_user, .cql_password = cfg->cql_password, .cql_tls = cfg->cql_tls,
                        .cql_ca_file = cfg->cql_ca_file, .cql_cert = cfg->cql_cert, .cql_key = cfg->cql_key,
                        .cql_timeout = cfg->cql_timeout, .replication_factor = cfg->state_rf,
                        .history_seconds = cfg->history },
        .server_id = cfg->server_id, .workers = cfg->workers, .lease = cfg->lease, .history = cfg->history,
        .export_repo = cfg->export_repo, .export_every = cfg->export_every,
        .listen_host = listen_host, .port = port, .tls_cert = cfg->tls_cert, .tls_key = cfg->tls_key,
        .tls_client_ca = cfg->tls_client_ca, .tokens_file = cfg->tokens_file, .version = CS_VERSION,
    };
    if (!rc)
        rc = cs_server_run(&host, &o, e);
    free(state);
    cs_host_free(&host);
    return rc;
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

/* The one line of an error, settings named as flags. */
static void print_error(const cs_err *e)
{
    char msg[CS_ERR_MSG_MAX + 256];
    cs_err_render(e, cs_config_namer, NULL, msg, sizeof msg);
    fprintf(stderr, "cassette: %s\n", msg);
}

int main(int argc, char **argv)
{
    cs_config cfg;
    cs_err e;
    cs_err_clear(&e);
    int status = run_generator(argc, argv);
    if (status >= 0)
        return status;
    status = cs_client_main(argc, argv); /* --server: ask cassette server instead */
    if (status >= 0)
        return status;
    status = CS_EXIT_OK;
    if (cs_config_load(argc, argv, &cfg, &e)) {
        print_error(&e);
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
    if (!cs_config_op(&cfg)) { /* a command that serves operations: the agent, the server */
        if ((!strcmp(cfg.command, "server") ? run_server : run_agent)(&cfg, &e)) {
            print_error(&e);
            status = cs_exit_code(e.code);
        }
        goto out;
    }
    cs_cli_progress *progress = NULL; /* what is shown of the job, and SIGINT */
    if (cs_cli_progress_new(&cfg, &progress, &e)) {
        print_error(&e);
        status = CS_EXIT_USAGE;
        goto out;
    }
    const cs_op_def *op = cs_config_op(&cfg); /* the config checked it names one */
    /* One job per run: the operation's cancel flag, progress and log. */
    cs_job *job = cs_job_new(op->name, cs_cli_progress_observer(progress));
    cs_cli_progress_start(progress, job);
    cs_job_attach(job);
    if (run_op(&cfg, op, job, &e))
        status = cs_exit_code(e.code);
    cs_cli_progress_finish(progress, status ? &e : NULL);
    if (status)
        print_error(&e);
    cs_job_attach(NULL);
    cs_job_free(job);
out:
    cs_config_free(&cfg);
    return status;
}

/* textfile.c - `--metrics-file PATH` (see the header). */
#include "cli/textfile.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/metrics.h"

#define PREVIOUS_MAX (1u << 20) /* a textfile of ours is a few hundred bytes */

static const char success_name[] = "cassette_last_success_timestamp_seconds";
static const char failure_name[] = "cassette_last_failure_timestamp_seconds";

/* The values of the result document, by op: docs/metrics.md's row and the
 * document's key. */
static const struct {
    const char *op, *name, *key, *help;
} values[] = {
    { "backup", "cassette_last_bytes_read", "bytes_read", "bytes read (backup: from disk)" },
    { "restore", "cassette_last_bytes_read", "bytes", "bytes read (backup: from disk)" },
    { "verify", "cassette_last_bytes_read", "bytes", "bytes read (backup: from disk)" },
    { "backup", "cassette_last_bytes_stored", "bytes_stored", "bytes stored (backup)" },
    { "backup", "cassette_last_files_new", "files_new", "files stored (backup)" },
    { "backup", "cassette_last_files_unchanged", "files_unchanged", "files found stored already (backup)" },
    { "drill", "cassette_last_rto_seconds", "rto_seconds", "drill: seconds its restore took (the RTO achieved)" },
};

char *cs_textfile_repo_label(const char *location)
{
    if (!location)
        return cs_strdup("");
    const char *scheme = strstr(location, "://");
    if (!scheme)
        return cs_strdup(location);
    const char *auth = scheme + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + auth_len; p++)
        if (*p == '@')
            at = p; /* the last '@' of the authority ends the userinfo */
    if (!at)
        return cs_strdup(location);
    return cs_sprintf("%.*s%s", (int)(auth - location), location, at + 1);
}

/* A number of the document, or false. */
static bool number(const json_t *doc, const char *key, double *out)
{
    const json_t *v = json_object_get(doc, key);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

/* The previous file's value of name for labels, or false. */
static bool carried(const char *previous, const char *name, const char *const *labels, double *out)
{
    return previous && cs_metrics_find(previous, name, labels, out) == 0;
}

/* The result document's rows. */
static void result_rows(cs_metrics *m, const cs_textfile_run *run, const char *const *labels)
{
    double v;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        if (!strcmp(values[i].op, run->op) && number(run->result, values[i].key, &v)) {
            cs_metrics_family(m, values[i].name, "gauge", values[i].help);
            cs_metrics_sample_v(m, NULL, v, labels);
        }
    double size, size_new;
    if (!strcmp(run->op, "backup") && number(run->result, "size", &size) &&
        number(run->result, "size_new", &size_new) && size > 0) {
        cs_metrics_family(m, "cassette_last_dedup_ratio", "gauge",
                          "backup: bytes not stored again / bytes in the backup");
        cs_metrics_sample_v(m, NULL, (size - size_new) / size, labels);
    }
}

char *cs_textfile_text(const cs_textfile_run *run, const char *previous)
{
    char *repo = cs_textfile_repo_label(run->repo);
    const char *labels[] = { "op", run->op, "repo", repo, NULL };
    bool failed = run->err && run->err->code != CS_OK;
    double success = 0, failure = 0;
    bool have_success = !failed, have_failure = failed;
    if (failed) {
        failure = run->ended;
        have_success = carried(previous, success_name, labels, &success);
    } else {
        success = run->ended;
        have_failure = carried(previous, failure_name, labels, &failure);
    }
    cs_metrics *m = cs_metrics_new();
    cs_metrics_family(m, success_name, "gauge",
                      "end of the newest run that succeeded (kept from the previous file when this one failed)");
    if (have_success)
        cs_metrics_sample_v(m, NULL, success, labels);
    cs_metrics_family(m, failure_name, "gauge", "end of the newest run that failed");
    if (have_failure)
        cs_metrics_sample_v(m, NULL, failure, labels);
    double duration = run->duration;
    number(run->result, "seconds", &duration);
    cs_metrics_family(m, "cassette_last_duration_seconds", "gauge", "duration of this run");
    cs_metrics_sample_v(m, NULL, duration, labels);
    result_rows(m, run, labels);
    if (failed) {
        cs_metrics_family(m, "cassette_last_error_info", "gauge", "1 when this run failed, with its error kind");
        cs_metrics_sample(m, 1, "op", run->op, "repo", repo, "error",
                          cs_err_kind(run->err->code, run->err->msg), NULL);
    }
    char *text = cs_strdup(cs_metrics_text(m, NULL));
    cs_metrics_free(m);
    free(repo);
    return text;
}

int cs_textfile_write(const cs_textfile_run *run, const char *path, cs_err *e)
{
    char *previous = NULL;
    size_t len = 0;
    cs_err re;
    cs_err_clear(&re);
    if (cs_read_file(path, PREVIOUS_MAX, &previous, &len, &re) != 0) {
        free(previous); /* missing, unreadable, too big: nothing carried over */
        previous = NULL;
    }
    char *text = cs_textfile_text(run, previous);
    int rc = cs_write_file_atomic(path, text, strlen(text), 0644, e);
    if (rc)
        cs_err_prefix(e, "--metrics-file");
    free(text);
    free(previous);
    return rc;
}

/* loader.c - sstableloader argv and run (see loader.h). */
#include "cassandra/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/proc.h"

/* "-d a,b,c": BulkLoader splits its --nodes value on commas. */
static char *join_targets(const cs_strlist *targets)
{
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < targets->n; i++)
        cs_buf_printf(&b, "%s%s", i ? "," : "", targets->items[i]);
    char *s = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return s;
}

static void add_both(cs_strlist *argv, cs_strlist *shown, const char *word, const char *shown_word)
{
    cs_strlist_add(argv, word);
    if (shown)
        cs_strlist_add(shown, shown_word ? shown_word : word);
}

int cs_loader_argv(const cs_loader_opts *o, const char *dir, cs_strlist *argv, cs_strlist *shown, cs_err *e)
{
    if (!o->targets || !o->targets->n)
        return cs_err_set(e, CS_E_USAGE, "the loader needs at least one target node ({targets})");
    for (size_t i = 0; i < o->targets->n; i++)
        if (!*o->targets->items[i] || strchr(o->targets->items[i], ','))
            return cs_err_set(e, CS_E_USAGE, "invalid target \"%s\" in {targets} (one address each)",
                              o->targets->items[i]);
    bool auth = o->user && *o->user;
    if (auth && (!o->password || !*o->password))
        return cs_err_set(e, CS_E_INVAL, "CQL user %s has no password ({cql_password})", o->user);
    cs_strlist words = { NULL, 0 };
    int rc = cs_split_command(o->command ? o->command : "sstableloader", &words, e);
    if (rc) {
        cs_strlist_free(&words);
        return cs_err_prefix(e, "sstableloader command");
    }
    for (size_t i = 0; i < words.n; i++)
        add_both(argv, shown, words.items[i], NULL);
    cs_strlist_free(&words);
    char *targets = join_targets(o->targets);
    add_both(argv, shown, "-d", NULL);
    add_both(argv, shown, targets, NULL);
    free(targets);
    if (o->port > 0) {
        char port[16];
        snprintf(port, sizeof port, "%d", o->port);
        add_both(argv, shown, "-p", NULL);
        add_both(argv, shown, port, NULL);
    }
    if (auth) {
        add_both(argv, shown, "-u", NULL);
        add_both(argv, shown, o->user, NULL);
        add_both(argv, shown, "-pw", NULL);
        add_both(argv, shown, o->password, "***");
    }
    add_both(argv, shown, "--no-progress", NULL);
    add_both(argv, shown, dir, NULL);
    return 0;
}

static char *joined(const cs_strlist *l)
{
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < l->n; i++)
        cs_buf_printf(&b, "%s%s", i ? " " : "", l->items[i]);
    char *s = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return s;
}

/* The loader's own sentence: its last line on stderr (a Java exception's
 * message comes last when it fails), else on stdout. */
static void complaint(const cs_proc_result *r, char *out, size_t cap)
{
    cs_last_line(r->err.len ? cs_buf_str(&r->err) : cs_buf_str(&r->out), out, cap);
}

int cs_loader_run(const cs_loader_opts *o, const char *dir, cs_err *e)
{
    cs_strlist argv = { NULL, 0 }, shown = { NULL, 0 };
    int rc = cs_loader_argv(o, dir, &argv, &shown, e);
    char *text = rc ? NULL : joined(&shown);
    cs_proc_result r;
    memset(&r, 0, sizeof r);
    if (!rc) {
        cs_debug("running %s", text);
        rc = cs_proc_run(&argv, &r, e);
    }
    if (!rc && r.exit_code != 0) {
        char line[512];
        complaint(&r, line, sizeof line);
        rc = cs_err_set(e, CS_E_EXTERNAL, "sstableloader failed (exit %d)%s%s", r.exit_code, line[0] ? ": " : "",
                        line);
    }
    cs_proc_result_free(&r);
    for (size_t i = 0; i < argv.n; i++) /* the password among them */
        explicit_bzero(argv.items[i], strlen(argv.items[i]));
    cs_strlist_free(&argv);
    cs_strlist_free(&shown);
    free(text);
    return rc;
}

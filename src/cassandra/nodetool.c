#include "cassandra/nodetool.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct cs_nodetool {
    cs_strlist prefix; /* the template split into words */
};

int cs_nodetool_new(const char *template_cmd, cs_nodetool **out, cs_err *e)
{
    cs_nodetool *nt = cs_calloc(1, sizeof *nt);
    int rc = cs_split_command(template_cmd, &nt->prefix, e);
    if (rc) {
        cs_err_prefix(e, "nodetool command");
        cs_nodetool_free(nt);
        return rc;
    }
    *out = nt;
    return 0;
}

void cs_nodetool_free(cs_nodetool *nt)
{
    if (!nt)
        return;
    cs_strlist_free(&nt->prefix);
    free(nt);
}

/* nodetool's own sentence ("error: Snapshot x already exists.") if it
 * printed one, else its last line: never a line of a Java stack trace. */
static void complaint(const cs_proc_result *r, char *out, size_t cap)
{
    const char *texts[] = { cs_buf_str(&r->err), cs_buf_str(&r->out) };
    for (size_t i = 0; i < 2; i++) {
        const char *hit = strstr(texts[i], "error: ");
        if (hit && (hit == texts[i] || hit[-1] == '\n')) {
            hit += 7;
            size_t n = strcspn(hit, "\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, hit, n);
            out[n] = '\0';
            return;
        }
    }
    cs_last_line(r->err.len ? texts[0] : texts[1], out, cap);
}

int cs_nodetool_run(cs_nodetool *nt, const char *const *args, cs_proc_result *res, cs_err *e)
{
    cs_strlist argv = { NULL, 0 };
    cs_proc_result local;
    cs_proc_result *r = res ? res : &local;
    cs_buf shown = CS_BUF_INIT;
    for (size_t i = 0; i < nt->prefix.n; i++)
        cs_strlist_add(&argv, nt->prefix.items[i]);
    for (size_t i = 0; args[i]; i++) {
        cs_strlist_add(&argv, args[i]);
        cs_buf_printf(&shown, "%s%s", i ? " " : "", args[i]);
    }
    cs_debug("running nodetool %s", cs_buf_str(&shown));
    int rc = cs_proc_run(&argv, r, e);
    if (rc == 0 && r->exit_code != 0) {
        char line[512];
        complaint(r, line, sizeof line);
        rc = cs_err_set(e, CS_E_EXTERNAL, "nodetool %s failed (exit %d)%s%s", cs_buf_str(&shown),
                        r->exit_code, line[0] ? ": " : "", line);
    }
    if (!res)
        cs_proc_result_free(&local);
    cs_strlist_free(&argv);
    cs_buf_free(&shown);
    return rc;
}

int cs_nodetool_snapshot(cs_nodetool *nt, const char *tag, const cs_strlist *keyspaces, cs_err *e)
{
    const char **args = cs_calloc(keyspaces->n + 4, sizeof *args);
    size_t n = 0;
    args[n++] = "snapshot";
    args[n++] = "-t";
    args[n++] = tag;
    for (size_t i = 0; i < keyspaces->n; i++)
        args[n++] = keyspaces->items[i];
    args[n] = NULL;
    int rc = cs_nodetool_run(nt, args, NULL, e);
    free(args);
    return rc;
}

int cs_nodetool_clearsnapshot(cs_nodetool *nt, const char *tag, cs_err *e)
{
    const char *args[] = { "clearsnapshot", "-t", tag, NULL };
    return cs_nodetool_run(nt, args, NULL, e);
}

int cs_nodetool_import(cs_nodetool *nt, const char *ks, const char *table, const char *dir, cs_err *e)
{
    /* --no-verify: restore has checked every file's BLAKE2b against the hash
     * taken when the node's own file was backed up, which is stronger than
     * Cassandra re-reading its checksums (and costs the node no I/O). */
    const char *args[] = { "import", "--no-verify", ks, table, dir, NULL };
    cs_proc_result res;
    int rc = cs_nodetool_run(nt, args, &res, e);
    /* nodetool import exits 0 even when a directory failed; it says so. */
    if (rc == 0 && (strstr(cs_buf_str(&res.out), "failed to import") ||
                    strstr(cs_buf_str(&res.err), "failed to import"))) {
        char line[512];
        cs_last_line(cs_buf_str(&res.out), line, sizeof line);
        rc = cs_err_set(e, CS_E_EXTERNAL, "nodetool import %s.%s: some files failed to import (see the node's log)%s%s",
                        ks, table, line[0] ? ": " : "", line);
    }
    cs_proc_result_free(&res);
    return rc;
}

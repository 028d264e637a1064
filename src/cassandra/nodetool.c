#include "cassandra/nodetool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"

struct cs_nodetool {
    cs_strlist prefix; /* the template split into words, then -u USER -pwf FILE */
    char *pwfile;      /* the private JMX password file; removed by cs_nodetool_free */
};

/* nodetool reads its password file as whitespace-separated words. */
static bool has_space(const char *s)
{
    return strpbrk(s, " \t\r\n\v\f") != NULL;
}

/* Write "USER PASSWORD" to a new 0600 file in $TMPDIR (nodetool's -pwf
 * format) and remember its name. The password never reaches a command line,
 * a log line or a message. */
static int write_password_file(cs_nodetool *nt, const char *user, const char *password, cs_err *e)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char *path = cs_sprintf("%s/cassette-jmx-XXXXXX", dir);
    cs_buf line = CS_BUF_INIT;
    int rc = 0;
    int fd = mkstemp(path); /* O_EXCL, mode 0600 */
    if (fd < 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot create a JMX password file in %s", dir);
        free(path);
        return rc;
    }
    nt->pwfile = path; /* from here on, cs_nodetool_free removes it */
    cs_buf_printf(&line, "%s %s\n", user, password);
    const char *p = line.data;
    size_t left = line.len;
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot make the JMX password file %s private", path);
    while (!rc && left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = cs_err_sys(e, CS_E_IO, w < 0 ? errno : EIO, "cannot write the JMX password file %s",
                            path);
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) != 0 && !rc)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot write the JMX password file %s", path);
    explicit_bzero(line.data, line.cap);
    cs_buf_free(&line);
    return rc;
}

/* With a JMX user: the password goes to a private file and nodetool gets
 * "-u USER -pwf FILE" after the template's own words. */
static int add_jmx_auth(cs_nodetool *nt, const cs_nodetool_opts *opts, cs_err *e)
{
    const char *user = opts->jmx_user, *password = opts->jmx_password;
    if (!user || !*user) {
        if (password && *password)
            return cs_err_set(e, CS_E_INVAL, "a JMX password is set but no JMX user ({jmx_user})");
        return 0;
    }
    if (!password || !*password)
        return cs_err_set(e, CS_E_INVAL, "JMX user %s has no password ({jmx_password})", user);
    if (has_space(user))
        return cs_err_set(e, CS_E_INVAL, "the JMX user name must not contain white space");
    if (has_space(password))
        return cs_err_set(e, CS_E_INVAL, "the JMX password contains white space, which "
                                         "nodetool's password file cannot carry");
    int rc = write_password_file(nt, user, password, e);
    if (rc)
        return rc;
    cs_strlist_add(&nt->prefix, "-u");
    cs_strlist_add(&nt->prefix, user);
    cs_strlist_add(&nt->prefix, "-pwf");
    cs_strlist_add(&nt->prefix, nt->pwfile);
    return 0;
}

int cs_nodetool_new(const cs_nodetool_opts *opts, cs_nodetool **out, cs_err *e)
{
    cs_nodetool *nt = cs_calloc(1, sizeof *nt);
    *out = NULL;
    int rc = cs_split_command(opts->command ? opts->command : "nodetool", &nt->prefix, e);
    if (rc) {
        cs_err_prefix(e, "nodetool command");
        cs_nodetool_free(nt);
        return rc;
    }
    if ((rc = add_jmx_auth(nt, opts, e))) {
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
    if (nt->pwfile && unlink(nt->pwfile) != 0 && errno != ENOENT)
        cs_warn("cannot remove the JMX password file %s: %s", nt->pwfile, strerror(errno));
    free(nt->pwfile);
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
        rc = cs_err_set(e, CS_E_EXTERNAL, "nodetool %s failed (exit %d)%s%s%s", cs_buf_str(&shown),
                        r->exit_code, line[0] ? ": " : "", line,
                        strstr(line, "Authentication failed") ? " (check the JMX user and password)"
                                                              : "");
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

int cs_nodetool_clearsnapshot(cs_nodetool *nt, const char *tag, const cs_strlist *keyspaces, cs_err *e)
{
    size_t n_ks = keyspaces ? keyspaces->n : 0;
    const char **args = cs_calloc(n_ks + 5, sizeof *args);
    size_t n = 0;
    args[n++] = "clearsnapshot";
    args[n++] = "-t";
    args[n++] = tag;
    if (n_ks)
        args[n++] = "--";
    for (size_t i = 0; i < n_ks; i++)
        args[n++] = keyspaces->items[i];
    args[n] = NULL;
    int rc = cs_nodetool_run(nt, args, NULL, e);
    free(args);
    return rc;
}

int cs_nodetool_import(cs_nodetool *nt, const char *ks, const char *table, const char *dir, cs_err *e)
{
    /* --no-verify: restore has checked every file's content hash (SHA-256;
     * BLAKE2b in old manifests) against the one taken when the node's own
     * file was backed up, which is stronger than Cassandra re-reading its
     * checksums (and costs the node no I/O). */
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

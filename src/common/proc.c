#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cs_split_command(const char *template_cmd, cs_strlist *out, cs_err *e)
{
    cs_buf word = CS_BUF_INIT;
    bool in_word = false;
    char quote = 0;
    int rc = 0;
    for (const char *p = template_cmd;; p++) {
        char c = *p;
        if (c == '\0') {
            if (quote) {
                rc = cs_err_set(e, CS_E_INVAL, "unbalanced quote in command \"%s\"", template_cmd);
                goto out;
            }
            break;
        }
        if (quote) {
            if (c == quote)
                quote = 0;
            else if (c == '\\' && quote == '"' && p[1])
                cs_buf_addch(&word, *++p);
            else
                cs_buf_addch(&word, c);
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                cs_strlist_add(out, cs_buf_str(&word));
                cs_buf_reset(&word);
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if (c == '\'' || c == '"')
            quote = c;
        else if (c == '\\' && p[1])
            cs_buf_addch(&word, *++p);
        else
            cs_buf_addch(&word, c);
    }
    if (in_word)
        cs_strlist_add(out, cs_buf_str(&word));
    if (out->n == 0)
        rc = cs_err_set(e, CS_E_INVAL, "empty command");
out:
    cs_buf_free(&word);
    return rc;
}

static void capture(int fd, cs_buf *dst, bool *open_flag)
{
    char chunk[8192];
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r > 0) {
        size_t room = dst->len < CS_PROC_CAPTURE_MAX ? CS_PROC_CAPTURE_MAX - dst->len : 0;
        cs_buf_add(dst, chunk, (size_t)r < room ? (size_t)r : room);
    } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        *open_flag = false;
    }
}

/* In the child: wire the pipes and exec; never returns. Only
 * async-signal-safe calls here: args was built before fork. If exec fails,
 * its errno goes to the parent through exec_fd (close-on-exec, so a
 * successful exec closes it with nothing written). */
static void exec_child(char *const *args, int out_fd, int err_fd, int exec_fd)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execvp(args[0], args);
    int err = errno;
    ssize_t ignored = write(exec_fd, &err, sizeof err);
    (void)ignored;
    _exit(127);
}

static void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

static void drain_output(int out_fd, int err_fd, cs_proc_result *res)
{
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        /* A closed pipe is left out (fd -1), or poll would report its
         * hang-up again and again. */
        struct pollfd fds[2] = { { out_open ? out_fd : -1, POLLIN, 0 }, { err_open ? err_fd : -1, POLLIN, 0 } };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (out_open && fds[0].revents)
            capture(out_fd, &res->out, &out_open);
        if (err_open && fds[1].revents)
            capture(err_fd, &res->err, &err_open);
    }
}

int cs_proc_run(const cs_strlist *argv, cs_proc_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, exec_pipe[2] = { -1, -1 };
    char **args = cs_calloc(argv->n + 1, sizeof *args);
    for (size_t i = 0; i < argv->n; i++)
        args[i] = argv->items[i];
    int rc = 0;
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0) {
        rc = cs_err_sys(e, CS_E_EXTERNAL, errno, "cannot run %s", argv->items[0]);
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        rc = cs_err_sys(e, CS_E_EXTERNAL, errno, "cannot run %s", argv->items[0]);
        goto out;
    }
    if (pid == 0)
        exec_child(args, out_pipe[1], err_pipe[1], exec_pipe[1]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    close(exec_pipe[1]);
    out_pipe[1] = err_pipe[1] = exec_pipe[1] = -1;
    drain_output(out_pipe[0], err_pipe[0], res);
    int exec_errno = 0;
    ssize_t got;
    while ((got = read(exec_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR)
        ;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (got == (ssize_t)sizeof exec_errno && exec_errno == ENOENT)
        rc = cs_err_set(e, CS_E_EXTERNAL, "cannot run %s: command not found", argv->items[0]);
    else if (got == (ssize_t)sizeof exec_errno)
        rc = cs_err_sys(e, CS_E_EXTERNAL, exec_errno, "cannot run %s", argv->items[0]);
out:
    close_pair(out_pipe);
    close_pair(err_pipe);
    close_pair(exec_pipe);
    free(args);
    return rc;
}

void cs_proc_result_free(cs_proc_result *res)
{
    cs_buf_free(&res->out);
    cs_buf_free(&res->err);
}

void cs_last_line(const char *text, char *out, size_t cap)
{
    out[0] = '\0';
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > text && start[-1] != '\n')
        start--;
    size_t n = (size_t)(end - start);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}

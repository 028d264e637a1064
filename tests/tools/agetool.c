/* agetool.c - a tiny age CLI over cassette's native age (crypto/age.h), for
 * interoperability tests against the real age and for benchmarks.
 *
 *   agetool encrypt -r age1... [-r age1...] [-o OUT] [IN]
 *   agetool encrypt -p [-o OUT] [IN]       passphrase from $AGETOOL_PASSPHRASE,
 *                                          work factor from $AGETOOL_WORK (18)
 *   agetool decrypt -i IDENTITY_FILE [-i ...] [-o OUT] [IN]
 *   agetool decrypt -p [-o OUT] [IN]       passphrase from $AGETOOL_PASSPHRASE
 *   agetool keygen [-o OUT]                an identity file as age-keygen writes it
 *
 * Input is stdin unless IN is given, read 1 MiB at a time (cs_pump_fd);
 * output is stdout unless -o names a file, which is then written atomically
 * (OUT.partial, renamed on success, removed on failure: a failed decryption
 * leaves no file). On stdout, decrypted chunks appear as they authenticate,
 * so a failure after the first 64 KiB chunk leaves a prefix there: callers
 * that need all-or-nothing use -o.
 *
 * Errors: one line "agetool: ..." on stderr and exit status 1. Never prints
 * keys or passphrases. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "crypto/age.h"
#include "io/sink.h"

#define MAX_ARGS 64

/* ---- a sink writing to a file descriptor it does not own --------------- */

typedef struct fd_sink {
    cs_sink base;
    int fd;
} fd_sink;

static int fd_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    fd_sink *f = (fd_sink *)s;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return cs_err_sys(e, CS_E_IO, errno, "cannot write the output");
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fd_close(cs_sink *s, cs_err *e)
{
    (void)s;
    (void)e;
    return 0;
}

static void fd_free(cs_sink *s)
{
    free(s);
}

static const cs_sink_ops fd_ops = { fd_write, fd_close, fd_free };

static cs_sink *fd_sink_new(int fd)
{
    fd_sink *f = cs_calloc(1, sizeof *f);
    f->base.ops = &fd_ops;
    f->fd = fd;
    return &f->base;
}

/* ---- helpers ------------------------------------------------------------ */

static int usage(void)
{
    fprintf(stderr, "agetool: usage: agetool encrypt (-r RECIPIENT... | -p) [-o OUT] [IN] |"
                    " decrypt (-i IDENTITY_FILE... | -p) [-o OUT] [IN] | keygen [-o OUT]\n");
    return 1;
}

static int fail(const cs_err *e)
{
    fprintf(stderr, "agetool: %s\n", e->msg[0] ? e->msg : cs_err_name(e->code));
    return 1;
}

/* The output sink: OUT written atomically, or stdout. */
static cs_sink *open_output(const char *out_path, mode_t mode, cs_err *e)
{
    if (out_path)
        return cs_file_sink_new(out_path, mode, e);
    return fd_sink_new(STDOUT_FILENO);
}

/* The input descriptor: IN, or stdin. Returns -1 with e set. */
static int open_input(const char *in_path, cs_err *e)
{
    if (!in_path)
        return STDIN_FILENO;
    int fd = open(in_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        cs_err_sys(e, CS_E_IO, errno, "cannot open %s", in_path);
    return fd;
}

static const char *passphrase_env(cs_err *e)
{
    const char *p = getenv("AGETOOL_PASSPHRASE");
    if (!p || !*p) {
        cs_err_set(e, CS_E_INVAL, "-p needs a non-empty AGETOOL_PASSPHRASE");
        return NULL;
    }
    return p;
}

static int work_factor_env(int *out, cs_err *e)
{
    const char *s = getenv("AGETOOL_WORK");
    *out = AGE_SCRYPT_DEFAULT_WORK;
    if (!s || !*s)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > AGE_SCRYPT_WORK_LIMIT)
        return cs_err_set(e, CS_E_INVAL, "AGETOOL_WORK must be 1..%d", AGE_SCRYPT_WORK_LIMIT);
    *out = (int)v;
    return 0;
}

/* Pump the input through head (which owns the output) and close it. */
static int run_pipeline(const char *in_path, cs_sink *head, cs_err *e)
{
    int rc;
    int fd = open_input(in_path, e);
    if (fd < 0)
        return e->code;
    rc = cs_pump_fd(fd, head, NULL, e);
    if (rc == 0)
        rc = cs_sink_close(head, e);
    if (fd != STDIN_FILENO)
        close(fd);
    return rc;
}

/* ---- commands ----------------------------------------------------------- */

typedef struct opts {
    const char *keys[MAX_ARGS]; /* -r recipients or -i identity files */
    size_t nkeys;
    int pass;                   /* -p */
    const char *out;            /* -o */
    const char *in;             /* positional input */
} opts;

static int parse_opts(int argc, char **argv, char key_flag, opts *o, cs_err *e)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (key_flag && a[0] == '-' && a[1] == key_flag && !a[2]) {
            if (i + 1 >= argc)
                return cs_err_set(e, CS_E_INVAL, "-%c needs a value", key_flag);
            if (o->nkeys == MAX_ARGS)
                return cs_err_set(e, CS_E_INVAL, "too many -%c options", key_flag);
            o->keys[o->nkeys++] = argv[++i];
        } else if (key_flag && !strcmp(a, "-p")) {
            o->pass = 1;
        } else if (!strcmp(a, "-o")) {
            if (i + 1 >= argc)
                return cs_err_set(e, CS_E_INVAL, "-o needs a value");
            o->out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return cs_err_set(e, CS_E_INVAL, "unknown option %s", a);
        } else if (!o->in && key_flag) {
            o->in = a;
        } else {
            return cs_err_set(e, CS_E_INVAL, "unexpected argument %s", a);
        }
    }
    if (key_flag && o->pass == (o->nkeys > 0))
        return cs_err_set(e, CS_E_INVAL, "give either -p or at least one -%c", key_flag);
    return 0;
}

static int cmd_encrypt(int argc, char **argv, cs_err *e)
{
    opts o;
    age_recipient *rcpts[MAX_ARGS] = { 0 };
    size_t n = 0;
    cs_sink *head = NULL;
    int rc = parse_opts(argc, argv, 'r', &o, e);
    if (rc)
        goto out;
    if (o.pass) {
        int work;
        const char *pass = passphrase_env(e);
        if (!pass) {
            rc = e->code;
            goto out;
        }
        if ((rc = work_factor_env(&work, e)) != 0)
            goto out;
        if ((rc = age_recipient_scrypt_new(pass, work, &rcpts[0], e)) != 0)
            goto out;
        n = 1;
    } else {
        for (; n < o.nkeys; n++) {
            if ((rc = age_recipient_parse(o.keys[n], &rcpts[n], e)) != 0) {
                cs_err_prefix(e, "recipient %zu", n + 1);
                goto out;
            }
        }
    }
    cs_sink *sink = open_output(o.out, 0666, e);
    if (!sink) {
        rc = e->code;
        goto out;
    }
    head = age_encrypt_new(sink, rcpts, n, e);
    if (!head) {
        rc = e->code;
        goto out;
    }
    rc = run_pipeline(o.in, head, e);
out:
    cs_sink_free(head);
    for (size_t i = 0; i < n; i++)
        age_recipient_free(rcpts[i]);
    return rc;
}

static int cmd_decrypt(int argc, char **argv, cs_err *e)
{
    opts o;
    age_identity **ids = NULL;
    size_t n = 0;
    cs_sink *head = NULL;
    int rc = parse_opts(argc, argv, 'i', &o, e);
    if (rc)
        goto out;
    if (o.pass) {
        const char *pass = passphrase_env(e);
        if (!pass) {
            rc = e->code;
            goto out;
        }
        ids = cs_calloc(1, sizeof *ids);
        if ((rc = age_identity_scrypt_new(pass, 0, &ids[0], e)) != 0)
            goto out;
        n = 1;
    } else {
        for (size_t k = 0; k < o.nkeys; k++) {
            age_identity **more = NULL;
            size_t m = 0;
            if ((rc = age_identities_load(o.keys[k], &more, &m, e)) != 0)
                goto out;
            ids = cs_realloc(ids, (n + m) * sizeof *ids);
            memcpy(ids + n, more, m * sizeof *more);
            n += m;
            free(more); /* the identities moved into ids */
        }
    }
    cs_sink *sink = open_output(o.out, 0666, e);
    if (!sink) {
        rc = e->code;
        goto out;
    }
    head = age_decrypt_new(sink, ids, n, e);
    if (!head) {
        rc = e->code;
        goto out;
    }
    rc = run_pipeline(o.in, head, e);
out:
    cs_sink_free(head); /* without a successful close: removes OUT.partial */
    if (ids)
        age_identities_free(ids, n);
    return rc;
}

static int cmd_keygen(int argc, char **argv, cs_err *e)
{
    opts o;
    cs_buf text = CS_BUF_INIT;
    cs_sink *sink = NULL;
    age_identity *id = NULL;
    int rc = parse_opts(argc, argv, 0, &o, e);
    if (rc)
        goto out;
    id = age_keygen();
    char stamp[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cs_buf_printf(&text, "# created: %s\n# public key: ", stamp);
    if ((rc = age_identity_public_string(id, &text, e)) != 0)
        goto out;
    cs_buf_addch(&text, '\n');
    if ((rc = age_identity_secret_string(id, &text, e)) != 0)
        goto out;
    cs_buf_addch(&text, '\n');
    sink = open_output(o.out, 0600, e);
    if (!sink) {
        rc = e->code;
        goto out;
    }
    if ((rc = cs_sink_write(sink, text.data, text.len, e)) != 0)
        goto out;
    rc = cs_sink_close(sink, e);
out:
    cs_sink_free(sink);
    age_identity_free(id);
    age_buf_wipe(&text);
    return rc;
}

int main(int argc, char **argv)
{
    cs_err e;
    cs_err_clear(&e);
    if (argc < 2)
        return usage();
    int rc;
    if (!strcmp(argv[1], "encrypt"))
        rc = cmd_encrypt(argc - 2, argv + 2, &e);
    else if (!strcmp(argv[1], "decrypt"))
        rc = cmd_decrypt(argc - 2, argv + 2, &e);
    else if (!strcmp(argv[1], "keygen"))
        rc = cmd_keygen(argc - 2, argv + 2, &e);
    else
        return usage();
    return rc ? fail(&e) : 0;
}

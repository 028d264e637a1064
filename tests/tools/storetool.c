/* storetool - drive one storage location from the shell, for tests and
 * benchmarks of the storage drivers (any of the registry) without Cassandra.
 *
 *   storetool LOCATION put KEY [FILE]       stdin or FILE -> object
 *   storetool LOCATION get KEY [FILE]       object -> stdout or FILE
 *   storetool LOCATION stat KEY             "SIZE MTIME"
 *   storetool LOCATION list [PREFIX]        one "KEY SIZE" line per object
 *   storetool LOCATION del KEY...           one DELETE each
 *   storetool LOCATION delmany PREFIX       every key under PREFIX, batched
 *
 * Driver settings come from the same variables cassette reads (AWS_*, B2_*,
 * CASSETTE_S3_*, CASSETTE_RATE_LIMIT, ...), through cassette's own config
 * code and its option table.
 * Errors: one line "storetool: ..." and exit 1. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "cli/config.h"
#include "io/sink.h"
#include "storage/storage.h"

static int fd_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e);
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
static const cs_sink_ops stdout_ops = { fd_write, fd_close, fd_free };

static int fd_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)s;
    while (n) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0)
            return cs_err_set(e, CS_E_IO, "cannot write to stdout");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int do_put(cs_storage *st, const char *key, const char *file, cs_err *e)
{
    int fd = file ? open(file, O_RDONLY) : STDIN_FILENO;
    if (fd < 0)
        return cs_err_set(e, CS_E_IO, "cannot open %s", file);
    cs_sink *w = NULL;
    int rc = cs_storage_put(st, key, 0, &w, e);
    if (!rc)
        rc = cs_pump_fd(fd, w, NULL, e);
    if (!rc)
        rc = cs_sink_close(w, e);
    cs_sink_free(w);
    if (file)
        close(fd);
    return rc;
}

static int do_get(cs_storage *st, const char *key, const char *file, cs_err *e)
{
    cs_sink *out;
    if (file) {
        out = cs_file_sink_new(file, 0644, e);
        if (!out)
            return e->code;
    } else {
        out = cs_calloc(1, sizeof *out);
        out->ops = &stdout_ops;
    }
    int rc = cs_storage_get(st, key, out, e);
    if (!rc)
        rc = cs_sink_close(out, e);
    cs_sink_free(out);
    return rc;
}

static int print_key(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)arg;
    printf("%s %llu\n", key, (unsigned long long)st->size);
    return 0;
}

static int collect_key(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)st;
    cs_strlist_add(arg, key);
    return 0;
}

static int run(cs_storage *st, int argc, char **argv, cs_err *e)
{
    const char *cmd = argv[2];
    if (!strcmp(cmd, "put") && argc >= 4)
        return do_put(st, argv[3], argc > 4 ? argv[4] : NULL, e);
    if (!strcmp(cmd, "get") && argc >= 4)
        return do_get(st, argv[3], argc > 4 ? argv[4] : NULL, e);
    if (!strcmp(cmd, "stat") && argc == 4) {
        cs_storage_stat s;
        int rc = cs_storage_stat(st, argv[3], &s, e);
        if (!rc)
            printf("%llu %lld\n", (unsigned long long)s.size, (long long)s.mtime);
        return rc;
    }
    if (!strcmp(cmd, "list"))
        return cs_storage_list(st, argc > 3 ? argv[3] : "", print_key, NULL, e);
    if (!strcmp(cmd, "del") && argc >= 4) {
        for (int i = 3; i < argc; i++) {
            int rc = cs_storage_del(st, argv[i], e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(cmd, "delmany") && argc == 4) {
        cs_strlist keys = { NULL, 0 };
        int rc = cs_storage_list(st, argv[3], collect_key, &keys, e);
        if (!rc)
            rc = cs_storage_del_many(st, (const char *const *)keys.items, keys.n, e);
        if (!rc)
            printf("deleted %zu\n", keys.n);
        cs_strlist_free(&keys);
        return rc;
    }
    return cs_err_set(e, CS_E_INVAL, "usage: storetool LOCATION put|get|stat|list|del|delmany ...");
}

int main(int argc, char **argv)
{
    cs_err e;
    cs_err_clear(&e);
    if (argc < 3) {
        fputs("storetool: usage: storetool LOCATION put|get|stat|list|del|delmany ...\n", stderr);
        return 2;
    }
    /* Only the environment: argv belongs to storetool, not cassette. */
    char *cfg_argv[] = { "storetool", "list", NULL };
    cs_config cfg;
    int rc = cs_config_load(2, cfg_argv, &cfg, &e);
    cs_storage *st = NULL;
    cs_host host;
    memset(&host, 0, sizeof host);
    if (!rc)
        rc = cs_config_host(&cfg, &host, &e);
    if (!rc)
        rc = cs_storage_open(argv[1], &host.storage_opts, true, &st, &e);
    if (!rc)
        rc = run(st, argc, argv, &e);
    cs_storage_free(st);
    cs_host_free(&host);
    cs_config_free(&cfg);
    if (rc) {
        fprintf(stderr, "storetool: %s\n", e.msg);
        return 1;
    }
    return 0;
}

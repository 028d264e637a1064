/* storage-conformance - run the storage driver conformance suite against
 * one location, for the integration tests (S3 on versitygw, and every
 * driver that needs a server).
 *
 *   storage-conformance [--base PREFIX] LOCATION [CHECK...]
 *   storage-conformance --list
 *
 * Keys go under PREFIX (default "conformance-PID-RANDOM"), one sub-prefix
 * per check, removed when the check ends. Driver settings come from the
 * variables cassette reads (AWS_*, B2_*, CASSETTE_S3_*, CASSETTE_RATE_LIMIT,
 * ...), through cassette's own option table. One line per check on stdout;
 * exit 0 when none failed, 1 when one did, 2 for a usage mistake or a
 * location that does not open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/config.h"
#include "storage/storage.h"
#include "storage_conformance.h"

static int usage(void)
{
    fputs("usage: storage-conformance [--base PREFIX] LOCATION [CHECK...] | storage-conformance --list\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--list")) {
        for (size_t i = 0; i < sc_n_checks; i++)
            printf("%-26s %s\n", sc_checks[i].name, sc_checks[i].what);
        return 0;
    }
    int a = 1;
    char base[64];
    if (sodium_init() < 0)
        return 2;
    snprintf(base, sizeof base, "conformance-%ld-%08x", (long)getpid(), randombytes_random());
    if (a + 1 < argc && !strcmp(argv[a], "--base")) {
        snprintf(base, sizeof base, "%s", argv[a + 1]);
        a += 2;
    }
    if (a >= argc || argv[a][0] == '-')
        return usage();
    /* Only the environment: argv belongs to this program, not cassette. */
    char *cfg_argv[] = { "storage-conformance", "list", NULL };
    cs_config cfg;
    cs_err e;
    cs_err_clear(&e);
    cs_storage *st = NULL;
    int rc = cs_config_load(2, cfg_argv, &cfg, &e);
    if (!rc)
        rc = cs_storage_open(argv[a], &cfg.storage_opts, true, &st, &e);
    if (rc) {
        fprintf(stderr, "storage-conformance: %s\n", e.msg);
        cs_config_free(&cfg);
        return 2;
    }
    printf("storage-conformance: %s driver, keys under %s/\n", st->ops->name, base);
    size_t n_only = (size_t)(argc - a - 1);
    size_t failures = sc_run(st, base, n_only ? (const char *const *)argv + a + 1 : NULL, n_only, stdout);
    cs_storage_free(st);
    cs_config_free(&cfg);
    printf("%zu failed\n", failures);
    return failures ? 1 : 0;
}

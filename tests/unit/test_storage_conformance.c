/* test_storage_conformance.c - the storage driver conformance suite
 * (tests/conformance) over the drivers that need no server: posix and mem.
 * One cmocka test per check and driver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "storage/storage.h"
#include "../conformance/storage_conformance.h"

typedef struct target {
    const char *driver; /* "posix" or "mem" */
    size_t check;
    char dir[64];
    cs_storage *st;
    char *name;
} target;

static int setup(void **state)
{
    target *t = *state;
    cs_err e;
    cs_err_clear(&e);
    if (!strcmp(t->driver, "mem")) {
        t->st = cs_mem_storage_new("conformance");
        return 0;
    }
    snprintf(t->dir, sizeof t->dir, "/tmp/cassette-test-conformance-XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    char *url = cs_sprintf("file://%s/store", t->dir);
    int rc = cs_storage_open(url, NULL, true, &t->st, &e);
    free(url);
    if (rc)
        fprintf(stderr, "%s\n", e.msg);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    target *t = *state;
    cs_storage_free(t->st);
    t->st = NULL;
    cs_err e;
    cs_err_clear(&e);
    return t->dir[0] ? cs_remove_tree(t->dir, &e) : 0;
}

static void run_check(void **state)
{
    target *t = *state;
    char why[1024];
    enum sc_result r = sc_run_check(t->st, "base", t->check, why, sizeof why);
    if (r == SC_SKIP) {
        print_message("skip: %s\n", why);
        skip();
    }
    if (r != SC_PASS)
        fail_msg("%s: %s", t->name, why);
}

int main(void)
{
    static const char *const drivers[] = { "posix", "mem" };
    size_t n = 2 * sc_n_checks;
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    target *targets = calloc(n, sizeof *targets);
    for (size_t d = 0; d < 2; d++)
        for (size_t i = 0; i < sc_n_checks; i++) {
            target *t = &targets[d * sc_n_checks + i];
            t->driver = drivers[d];
            t->check = i;
            t->name = cs_sprintf("%s %s", drivers[d], sc_checks[i].name);
            tests[d * sc_n_checks + i] = (struct CMUnitTest){ t->name, run_check, setup, teardown, t };
        }
    int failed = _cmocka_run_group_tests("storage_conformance", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(targets[i].name);
    free(targets);
    free(tests);
    return failed;
}

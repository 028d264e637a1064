/* test_loader.c - cassandra/loader.h: the argv cassette gives the bulk
 * loader (template words, -d, -p, credentials, --no-progress, the
 * directory), the password shown as *** only, and the refusals (no target,
 * a target with a comma, a user without a password, an empty template). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cassandra/loader.h"
#include "common/buf.h"

/* The list as one line, words separated by '|'. */
static char *line(const cs_strlist *l)
{
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < l->n; i++)
        cs_buf_printf(&b, "%s%s", i ? "|" : "", l->items[i]);
    char *s = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return s;
}

static void check_argv(const cs_loader_opts *o, const char *want, const char *want_shown)
{
    cs_strlist argv = { NULL, 0 }, shown = { NULL, 0 };
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_loader_argv(o, "/s/ks/t", &argv, &shown, &e), 0);
    char *a = line(&argv), *s = line(&shown);
    assert_string_equal(a, want);
    assert_string_equal(s, want_shown);
    free(a);
    free(s);
    cs_strlist_free(&argv);
    cs_strlist_free(&shown);
}

static void test_plain(void **state)
{
    (void)state;
    cs_strlist targets = { NULL, 0 };
    cs_strlist_add(&targets, "10.0.0.1");
    cs_strlist_add(&targets, "10.0.0.2:9043");
    cs_loader_opts o = { NULL, &targets, 0, NULL, NULL };
    check_argv(&o, "sstableloader|-d|10.0.0.1,10.0.0.2:9043|--no-progress|/s/ks/t",
               "sstableloader|-d|10.0.0.1,10.0.0.2:9043|--no-progress|/s/ks/t");
    cs_strlist_free(&targets);
}

static void test_template_port_auth(void **state)
{
    (void)state;
    cs_strlist targets = { NULL, 0 };
    cs_strlist_add(&targets, "db1");
    cs_loader_opts o = { "docker exec 'cass 1' sstableloader", &targets, 9142, "loader", "s3cret pw" };
    check_argv(&o, "docker|exec|cass 1|sstableloader|-d|db1|-p|9142|-u|loader|-pw|s3cret pw|--no-progress|/s/ks/t",
               "docker|exec|cass 1|sstableloader|-d|db1|-p|9142|-u|loader|-pw|***|--no-progress|/s/ks/t");
    cs_strlist_free(&targets);
}

static void refused(const cs_loader_opts *o, const char *what)
{
    cs_strlist argv = { NULL, 0 };
    cs_err e;
    cs_err_clear(&e);
    assert_int_not_equal(cs_loader_argv(o, "/s/ks/t", &argv, NULL, &e), 0);
    if (!strstr(e.msg, what))
        fail_msg("\"%s\" does not say \"%s\"", e.msg, what);
    assert_int_equal(argv.n, 0);
    cs_strlist_free(&argv);
}

static void test_refusals(void **state)
{
    (void)state;
    cs_strlist none = { NULL, 0 }, comma = { NULL, 0 }, one = { NULL, 0 };
    cs_strlist_add(&comma, "a,b");
    cs_strlist_add(&one, "a");
    refused(&(cs_loader_opts){ NULL, &none, 0, NULL, NULL }, "at least one target");
    refused(&(cs_loader_opts){ NULL, &comma, 0, NULL, NULL }, "invalid target");
    refused(&(cs_loader_opts){ NULL, &one, 0, "u", NULL }, "has no password");
    refused(&(cs_loader_opts){ "  ", &one, 0, NULL, NULL }, "sstableloader command: empty command");
    refused(&(cs_loader_opts){ "sstableloader 'open", &one, 0, NULL, NULL }, "sstableloader command");
    cs_strlist_free(&comma);
    cs_strlist_free(&one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_template_port_auth),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_config.c - cli/config: defaults, INI, environment, flags, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "cli/config.h"
#include "cli/output.h"
#include "ops/ops.h"
#include "ops/optable.h"
#include "common/err.h"
#include "common/fs.h"
#include "storage/storage.h"

extern char **environ;

/* ---- helpers ------------------------------------------------------------ */

/* Remove every CASSETTE_* variable so the host environment cannot leak in. */
static void clear_env(void)
{
    cs_strlist names = { NULL, 0 };
    for (char **p = environ; p && *p; p++)
        if (!strncmp(*p, "CASSETTE_", 9)) {
            const char *eq = strchr(*p, '=');
            char *name = cs_strndup(*p, eq ? (size_t)(eq - *p) : strlen(*p));
            cs_strlist_add(&names, name);
            free(name);
        }
    for (size_t i = 0; i < names.n; i++)
        unsetenv(names.items[i]);
    cs_strlist_free(&names);
}

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    clear_env();
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-config-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    /* The user's default config file is looked for here: none unless a test writes one. */
    setenv("XDG_CONFIG_HOME", f->dir, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clear_env();
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_remove_tree(f->dir, &e);
    free(f);
    return rc;
}

/* Load from a NULL-terminated argument list (argv[0] is added). */
static int load_args(cs_config *cfg, cs_err *e, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"cassette";
    for (size_t i = 0; args[i]; i++) {
        assert_true(argc < 63);
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    cs_err_clear(e);
    return cs_config_load(argc, argv, cfg, e);
}

#define LOAD(cfg, e, ...) load_args((cfg), (e), (const char *const[]){ __VA_ARGS__, NULL })

/* Expect a usage error whose message contains `want`. */
static void expect_error(const char *want, const char *const *args)
{
    cs_config cfg;
    cs_err e;
    int rc = load_args(&cfg, &e, args);
    if (rc == 0)
        fail_msg("expected an error containing \"%s\"", want);
    assert_int_equal(rc, CS_E_INVAL);
    if (!strstr(e.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", e.msg, want);
    assert_null(strchr(e.msg, '\n'));
    cs_config_free(&cfg);
}

#define EXPECT_ERROR(want, ...) expect_error((want), (const char *const[]){ __VA_ARGS__, NULL })

static char *write_config(const fixture *f, const char *name, const char *text)
{
    char *path = cs_path_join(f->dir, name);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_write_file_atomic(path, text, strlen(text), 0600, &e), 0);
    return path;
}

static void assert_list(const cs_strlist *l, size_t n, const char *const *want)
{
    if (l->n != n)
        fail_msg("list has %zu items, want %zu", l->n, n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(l->items[i], want[i]))
            fail_msg("item %zu is \"%s\", want \"%s\"", i, l->items[i], want[i]);
}

#define ASSERT_LIST(l, n, ...) assert_list((l), (n), (const char *const[]){ __VA_ARGS__ })

/* Parse INI text into a fresh config (no defaults). */
static int parse_ini(cs_config *cfg, const char *text, cs_err *e)
{
    memset(cfg, 0, sizeof *cfg);
    cs_err_clear(e);
    return cs_config_parse_ini(cfg, text, "test.ini", e);
}

static void expect_ini_error(const char *text, const char *want)
{
    cs_config cfg;
    cs_err e;
    int rc = parse_ini(&cfg, text, &e);
    if (rc == 0)
        fail_msg("INI should fail with \"%s\":\n%s", want, text);
    assert_int_equal(rc, CS_E_INVAL);
    if (!strstr(e.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", e.msg, want);
    cs_config_free(&cfg);
}

/* ---- tests -------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "list"), 0);
    assert_string_equal(cfg.command, "list");
    assert_string_equal(cfg.cql_host, "127.0.0.1");
    assert_int_equal(cfg.cql_port, 9042);
    assert_string_equal(cfg.nodetool, "nodetool");
    assert_int_equal(cfg.zstd_level, 1);
    assert_int_equal(cfg.jobs, 4);
    assert_string_equal(cs_kvlist_get(&cfg.storage_opts, "s3.sign_payload"), "auto");
    assert_string_equal(cs_kvlist_get(&cfg.storage_opts, "s3.part_size"), "8M");
    assert_string_equal(cs_kvlist_get(&cfg.storage_opts, "storage.rate_limit"), "0");
    assert_string_equal(cfg.mode, "import");
    assert_null(cfg.repo);
    assert_null(cfg.config_file);
    assert_null(cfg.cql_user);
    assert_null(cfg.cql_password);
    assert_null(cfg.state_dir);
    assert_null(cfg.name);
    assert_int_equal(cfg.data_dirs.n, 0);
    assert_int_equal(cfg.keyspaces.n, 0);
    assert_false(cfg.json);
    assert_false(cfg.verbose);
    assert_false(cfg.help);
    cs_config_free(&cfg);
    assert_null(cfg.command);
    assert_null(cfg.cql_host);

    /* No command at all is not an error here (the CLI prints usage). */
    char *argv[] = { (char *)"cassette", NULL };
    cs_err_clear(&e);
    assert_int_equal(cs_config_load(1, argv, &cfg, &e), 0);
    assert_null(cfg.command);
    cs_config_free(&cfg);
}

static void test_flags(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "--repo", "/before", "backup", "--repo", "/r", "--name", "b1", "--cql-host",
                          "10.0.0.1", "--cql-port", "9043", "--nodetool", "docker exec c nodetool", "--keyspace",
                          "ks1", "--keyspace", "ks2", "--zstd-level", "19", "--json", "-v", "--state-dir", "/s"),
                     0);
    assert_string_equal(cfg.command, "backup");
    assert_string_equal(cfg.repo, "/r"); /* the last one wins */
    assert_string_equal(cfg.name, "b1");
    assert_string_equal(cfg.cql_host, "10.0.0.1");
    assert_int_equal(cfg.cql_port, 9043);
    assert_string_equal(cfg.nodetool, "docker exec c nodetool");
    ASSERT_LIST(&cfg.keyspaces, 2, "ks1", "ks2");
    assert_int_equal(cfg.zstd_level, 19);
    assert_true(cfg.json);
    assert_true(cfg.verbose);
    assert_string_equal(cfg.state_dir, "/s");
    cs_config_free(&cfg);

    /* --opt=value, with '=' inside the value too. */
    assert_int_equal(LOAD(&cfg, &e, "restore", "--repo=/r=x", "--cql-port=9044", "--backup=b2", "--table=ks.t",
                          "--mode=replace", "--data-dir=/d1,/d2"),
                     0);
    assert_string_equal(cfg.repo, "/r=x");
    assert_int_equal(cfg.cql_port, 9044);
    assert_string_equal(cfg.backup, "b2");
    ASSERT_LIST(&cfg.tables, 1, "ks.t");
    assert_string_equal(cfg.mode, "replace");
    ASSERT_LIST(&cfg.data_dirs, 2, "/d1", "/d2");
    cs_config_free(&cfg);

    /* Short flags. */
    assert_int_equal(LOAD(&cfg, &e, "-h"), 0);
    assert_true(cfg.help);
    assert_null(cfg.command);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "list", "--help", "--verbose"), 0);
    assert_true(cfg.help);
    assert_true(cfg.verbose);
    cs_config_free(&cfg);
}

static void test_list_options(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "backup", "--data-dir", "/a", "--data-dir", "/b,/c", "--data-dir", " /x , ,/y ,"),
                     0);
    ASSERT_LIST(&cfg.data_dirs, 5, "/a", "/b", "/c", "/x", "/y");
    cs_config_free(&cfg);

    assert_int_equal(LOAD(&cfg, &e, "backup", "--data-dir", ","), 0);
    assert_int_equal(cfg.data_dirs.n, 0);
    cs_config_free(&cfg);
}

static void test_ini(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    const char *text = "# cassette config\n"
                       "; another comment\n"
                       "\n"
                       "[repository]\n"
                       "path = /var/backups/cassette\n"
                       "\n"
                       "  [cassandra]  \n"
                       "host=10.1.2.3\r\n"
                       "port =  9142\n"
                       "username = cassandra\n"
                       "password = se=cret # not a comment\n"
                       "nodetool = docker exec cassandra nodetool\n"
                       "data_dirs = /d1, /d2\n"
                       "data_dirs = /d3\n"
                       "commitlog_dir = /cl\n"
                       "hints_dir = /hints\n"
                       "saved_caches_dir = /caches\n"
                       "[cassette]\n"
                       "state_dir = /state\n"
                       "staging_dir = /staging\n"
                       "zstd_level = 7";
    int rc = parse_ini(&cfg, text, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_string_equal(cfg.repo, "/var/backups/cassette");
    assert_string_equal(cfg.cql_host, "10.1.2.3");
    assert_int_equal(cfg.cql_port, 9142);
    assert_string_equal(cfg.cql_user, "cassandra");
    assert_string_equal(cfg.cql_password, "se=cret # not a comment");
    assert_string_equal(cfg.nodetool, "docker exec cassandra nodetool");
    /* Repeated list keys in one file accumulate. */
    ASSERT_LIST(&cfg.data_dirs, 3, "/d1", "/d2", "/d3");
    assert_string_equal(cfg.commitlog_dir, "/cl");
    assert_string_equal(cfg.hints_dir, "/hints");
    assert_string_equal(cfg.saved_caches_dir, "/caches");
    assert_string_equal(cfg.state_dir, "/state");
    assert_string_equal(cfg.staging_dir, "/staging");
    assert_int_equal(cfg.zstd_level, 7);
    cs_config_free(&cfg);

    /* Empty text and comment-only text are fine. */
    assert_int_equal(parse_ini(&cfg, "", &e), 0);
    cs_config_free(&cfg);
    assert_int_equal(parse_ini(&cfg, "\n\n# x\n", &e), 0);
    cs_config_free(&cfg);
}

static void test_ini_errors(void **state)
{
    (void)state;
    expect_ini_error("[cassandra]\nhost = h\nbogus = 1\n", "test.ini:3: unknown setting [cassandra] bogus");
    /* Line numbers count blank lines too. */
    expect_ini_error("[cassandra]\n\n\nbogus = 1\n", "test.ini:4:");
    expect_ini_error("\r\n[cassandra]\r\n\r\nbogus = 1\r\n", "test.ini:4:");
    /* A key that exists, but in another section. */
    expect_ini_error("[repository]\nhost = h\n", "test.ini:2: unknown setting [repository] host");
    /* A key before any section. */
    expect_ini_error("path = /r\n", "test.ini:1: unknown setting [] path");
    /* Bad section headers. */
    expect_ini_error("[cassandra\nhost = h\n", "test.ini:1: bad section header");
    expect_ini_error("# c\n[cassandra] host = h\n", "test.ini:2: bad section header");
    expect_ini_error("[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
                     "test.ini:1: bad section header");
    /* A line without '='. */
    expect_ini_error("[cassandra]\nhost\n", "test.ini:2: expected key = value");
    /* A bad number names the origin. */
    expect_ini_error("[cassandra]\nport = abc\n", "test.ini: --cql-port wants a whole number, not \"abc\"");
    expect_ini_error("[cassandra]\nport = -5\n", "wants a whole number");
    expect_ini_error("[cassandra]\nport =\n", "wants a whole number");
    expect_ini_error("[cassette]\nzstd_level = 3x\n", "--zstd-level wants a whole number");
    /* Options that only exist as flags are not settings. */
    expect_ini_error("[cassette]\nname = x\n", "unknown setting [cassette] name");
}

static void test_config_file(void **state)
{
    fixture *f = *state;
    cs_config cfg;
    cs_err e;
    char *path = write_config(f, "cassette.ini",
                              "[repository]\npath = /file/repo\n[cassandra]\nhost = filehost\nport = 1111\n");

    /* --config PATH */
    assert_int_equal(LOAD(&cfg, &e, "backup", "--config", path), 0);
    assert_string_equal(cfg.config_file, path);
    assert_string_equal(cfg.repo, "/file/repo");
    assert_string_equal(cfg.cql_host, "filehost");
    assert_int_equal(cfg.cql_port, 1111);
    assert_string_equal(cfg.nodetool, "nodetool"); /* default kept */
    cs_config_free(&cfg);

    /* --config=PATH, before the command */
    char *opt = cs_sprintf("--config=%s", path);
    assert_int_equal(LOAD(&cfg, &e, opt, "list"), 0);
    assert_string_equal(cfg.repo, "/file/repo");
    cs_config_free(&cfg);
    free(opt);

    /* CASSETTE_CONFIG */
    setenv("CASSETTE_CONFIG", path, 1);
    assert_int_equal(LOAD(&cfg, &e, "list"), 0);
    assert_string_equal(cfg.repo, "/file/repo");
    assert_string_equal(cfg.config_file, path);
    cs_config_free(&cfg);

    /* The flag wins over the environment variable. */
    char *other = write_config(f, "other.ini", "[repository]\npath = /other\n");
    assert_int_equal(LOAD(&cfg, &e, "list", "--config", other), 0);
    assert_string_equal(cfg.repo, "/other");
    cs_config_free(&cfg);
    unsetenv("CASSETTE_CONFIG");

    /* A missing file is an error that says it is the config file. */
    char *missing = cs_path_join(f->dir, "missing.ini");
    assert_int_not_equal(LOAD(&cfg, &e, "list", "--config", missing), 0);
    assert_non_null(strstr(e.msg, "config file"));
    assert_non_null(strstr(e.msg, missing));
    cs_config_free(&cfg);

    /* An error inside the file names the file and the line. */
    char *bad = write_config(f, "bad.ini", "[cassandra]\nhost = h\nprot = 9042\n");
    assert_int_equal(LOAD(&cfg, &e, "list", "--config", bad), CS_E_INVAL);
    char *want = cs_sprintf("%s:3: unknown setting [cassandra] prot", bad);
    assert_string_equal(e.msg, want);
    cs_config_free(&cfg);

    free(want);
    free(bad);
    free(missing);
    free(other);
    free(path);
}

static void test_precedence(void **state)
{
    fixture *f = *state;
    cs_config cfg;
    cs_err e;
    char *path = write_config(f, "p.ini",
                              "[repository]\npath = /file/repo\n"
                              "[cassandra]\nhost = filehost\nport = 1111\nusername = fileuser\n"
                              "data_dirs = /f1, /f2\n"
                              "[cassette]\nzstd_level = 5\n");

    /* file > defaults */
    assert_int_equal(LOAD(&cfg, &e, "backup", "--config", path), 0);
    assert_string_equal(cfg.repo, "/file/repo");
    assert_string_equal(cfg.cql_host, "filehost");
    assert_int_equal(cfg.cql_port, 1111);
    assert_int_equal(cfg.zstd_level, 5);
    ASSERT_LIST(&cfg.data_dirs, 2, "/f1", "/f2");
    cs_config_free(&cfg);

    /* environment > file */
    setenv("CASSETTE_CQL_HOST", "envhost", 1);
    setenv("CASSETTE_CQL_PORT", "2222", 1);
    setenv("CASSETTE_DATA_DIRS", "/e1,/e2,/e3", 1);
    setenv("CASSETTE_CQL_USER", "", 1); /* empty: ignored */
    assert_int_equal(LOAD(&cfg, &e, "backup", "--config", path), 0);
    assert_string_equal(cfg.repo, "/file/repo");
    assert_string_equal(cfg.cql_host, "envhost");
    assert_int_equal(cfg.cql_port, 2222);
    assert_string_equal(cfg.cql_user, "fileuser");
    ASSERT_LIST(&cfg.data_dirs, 3, "/e1", "/e2", "/e3"); /* replaced, not appended */
    cs_config_free(&cfg);

    /* flags > environment > file: a flag list replaces the others */
    assert_int_equal(LOAD(&cfg, &e, "backup", "--config", path, "--cql-port", "3333", "--data-dir", "/c1",
                          "--data-dir", "/c2"),
                     0);
    assert_string_equal(cfg.repo, "/file/repo");
    assert_string_equal(cfg.cql_host, "envhost");
    assert_int_equal(cfg.cql_port, 3333);
    ASSERT_LIST(&cfg.data_dirs, 2, "/c1", "/c2");
    cs_config_free(&cfg);

    /* environment > defaults without a file */
    setenv("CASSETTE_REPO", "/env/repo", 1);
    setenv("CASSETTE_NODETOOL", "docker exec x nodetool", 1);
    setenv("CASSETTE_ZSTD_LEVEL", "9", 1);
    setenv("CASSETTE_STATE_DIR", "/env/state", 1);
    assert_int_equal(LOAD(&cfg, &e, "backup"), 0);
    assert_string_equal(cfg.repo, "/env/repo");
    assert_string_equal(cfg.nodetool, "docker exec x nodetool");
    assert_int_equal(cfg.zstd_level, 9);
    assert_string_equal(cfg.state_dir, "/env/state");
    assert_string_equal(cfg.cql_host, "envhost");
    cs_config_free(&cfg);

    /* A bad number in the environment names the variable. */
    setenv("CASSETTE_CQL_PORT", "port", 1);
    assert_int_equal(LOAD(&cfg, &e, "backup"), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "CASSETTE_CQL_PORT"));
    cs_config_free(&cfg);
    free(path);
}

/* The storage drivers' options: flags, variables and INI keys as ever, kept
 * as text under the driver's option names for the driver to parse. */
static void test_storage_options(void **state)
{
    fixture *f = *state;
    cs_config cfg;
    cs_err e;
    const char *vars[] = { "AWS_ENDPOINT_URL", "B2_ENDPOINT", "AWS_REGION", "B2_REGION", "AWS_ACCESS_KEY_ID",
                           "B2_KEY_ID", "AWS_SECRET_ACCESS_KEY", "B2_APPLICATION_KEY", "AWS_SESSION_TOKEN",
                           "B2_BUCKET_NAME", "AWS_CA_BUNDLE" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    char *path = write_config(f, "s.ini",
                              "[s3]\nendpoint = http://file:1\nregion = file-region\npart_size = 16M\n"
                              "[cassette]\nrate_limit = 5M\n");
    setenv("B2_KEY_ID", "b2key", 1);
    setenv("AWS_REGION", "env-region", 1);
    setenv("CASSETTE_S3_CONCURRENCY", "7", 1);
    assert_int_equal(LOAD(&cfg, &e, "list", "--config", path, "--s3-part-size", "32M"), 0);
    const cs_kvlist *o = &cfg.storage_opts;
    assert_string_equal(cs_kvlist_get(o, "s3.endpoint"), "http://file:1");
    assert_string_equal(cs_kvlist_get(o, "s3.region"), "env-region");     /* environment > file */
    assert_string_equal(cs_kvlist_get(o, "s3.access_key_id"), "b2key");   /* the second variable */
    assert_string_equal(cs_kvlist_get(o, "s3.part_size"), "32M");         /* flag > file */
    assert_string_equal(cs_kvlist_get(o, "s3.concurrency"), "7");
    assert_string_equal(cs_kvlist_get(o, "storage.rate_limit"), "5M");    /* [cassette] rate_limit */
    assert_null(cs_kvlist_get(o, "s3.secret_access_key"));
    cs_config_free(&cfg);
    assert_int_equal(cfg.storage_opts.n, 0);
    unsetenv("B2_KEY_ID");
    unsetenv("AWS_REGION");
    unsetenv("CASSETTE_S3_CONCURRENCY");

    /* The INI keys are the old ones, not the option names. */
    expect_ini_error("[s3]\ns3.endpoint = x\n", "unknown setting [s3] s3.endpoint");
    expect_ini_error("[cassette]\nstorage.rate_limit = 1M\n", "unknown setting");

    /* Every storage row names an option its driver owns: the registry
     * accepts them all (the bad value stops the open before any request). */
    assert_int_equal(LOAD(&cfg, &e, "list", "--s3-endpoint", "http://127.0.0.1:1", "--s3-region", "r",
                          "--s3-access-key-id", "a", "--s3-secret-access-key", "s", "--s3-session-token", "t",
                          "--s3-bucket", "b", "--s3-addressing", "path", "--s3-ca-file", "/ca", "--s3-part-size", "5M",
                          "--s3-concurrency", "2", "--s3-retries", "1", "--s3-timeout", "1", "--rate-limit", "1M",
                          "--s3-sign-payload", "sometimes"),
                     0);
    cs_storage *st = NULL;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_open("s3:///p", &cfg.storage_opts, false, &st, &e), CS_E_USAGE);
    assert_non_null(strstr(e.msg, "{s3.sign_payload} must be yes, no or auto"));
    assert_string_equal(e.field, "s3.sign_payload");
    /* The CLI names the driver's option by its flag. */
    char said[256];
    cs_err_render(&e, cs_config_namer, NULL, said, sizeof said);
    assert_non_null(strstr(said, "--s3-sign-payload must be yes, no or auto"));
    cs_config_free(&cfg);
    free(path);
}

static void test_usage_errors(void **state)
{
    (void)state;
    EXPECT_ERROR("unknown option --bogus", "list", "--bogus");
    EXPECT_ERROR("unknown option --bogus", "list", "--bogus=1");
    EXPECT_ERROR("unknown option -x", "list", "-x");
    EXPECT_ERROR("unknown command \"frobnicate\"", "frobnicate");
    EXPECT_ERROR("unknown command \"lsit\"", "lsit", "--repo", "/r");
    EXPECT_ERROR("option --repo needs a value", "list", "--repo");
    EXPECT_ERROR("option --data-dir needs a value", "backup", "--data-dir");
    EXPECT_ERROR("option --json takes no value", "list", "--json=yes");
    EXPECT_ERROR("unexpected argument \"extra\"", "list", "extra");
    EXPECT_ERROR("unexpected argument \"verify\"", "list", "verify");
    EXPECT_ERROR("--zstd-level wants a whole number, not \"high\"", "backup", "--zstd-level", "high");
    EXPECT_ERROR("--cql-port wants a whole number, not \"\"", "backup", "--cql-port=");
    EXPECT_ERROR("--cql-port wants a whole number, not \"12x\"", "backup", "--cql-port", "12x");
    EXPECT_ERROR("--cql-port wants a whole number", "backup", "--cql-port", "99999999999999999999999");
}

static void test_not_applicable(void **state)
{
    (void)state;
    EXPECT_ERROR("list does not take --keyspace", "list", "--keyspace", "ks");
    EXPECT_ERROR("list does not take --keyspace", "list", "--keyspace=ks");
    EXPECT_ERROR("list does not take --keyspace", "--keyspace", "ks", "list");
    EXPECT_ERROR("init does not take --json", "init", "--repo", "/r", "--json");
    EXPECT_ERROR("verify does not take --name", "verify", "--name", "x");
    EXPECT_ERROR("backup does not take --backup", "backup", "--backup", "x");
    EXPECT_ERROR("list does not take --data-dir", "list", "--data-dir", "/d");
    EXPECT_ERROR("restore does not take --zstd-level", "restore", "--zstd-level", "3");

    /* A value that looks like an option is a value, not an option. */
    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "backup", "--name", "--keyspace"), 0);
    assert_string_equal(cfg.name, "--keyspace");
    assert_int_equal(cfg.keyspaces.n, 0);
    cs_config_free(&cfg);

    /* Options that apply to every command. */
    assert_int_equal(LOAD(&cfg, &e, "init", "--verbose", "--repo", "/r"), 0);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "restore", "--keyspace", "ks", "--table", "ks.t", "--backup", "b"), 0);
    cs_config_free(&cfg);
}

static void test_cql_port_range(void **state)
{
    fixture *f = *state;
    EXPECT_ERROR("CQL port 70000 is out of range", "backup", "--cql-port", "70000");
    EXPECT_ERROR("CQL port 0 is out of range", "backup", "--cql-port", "0");
    EXPECT_ERROR("CQL port 65536 is out of range", "backup", "--cql-port=65536");
    EXPECT_ERROR("wants a whole number", "backup", "--cql-port", "-1");

    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "backup", "--cql-port", "65535"), 0);
    assert_int_equal(cfg.cql_port, 65535);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "backup", "--cql-port", "1"), 0);
    assert_int_equal(cfg.cql_port, 1);
    cs_config_free(&cfg);

    setenv("CASSETTE_CQL_PORT", "99999", 1);
    EXPECT_ERROR("CQL port 99999 is out of range", "backup");
    unsetenv("CASSETTE_CQL_PORT");

    char *path = write_config(f, "port.ini", "[cassandra]\nport = 0\n");
    EXPECT_ERROR("CQL port 0 is out of range", "backup", "--config", path);
    /* A flag can repair a bad file value. */
    assert_int_equal(LOAD(&cfg, &e, "backup", "--config", path, "--cql-port", "9042"), 0);
    assert_int_equal(cfg.cql_port, 9042);
    cs_config_free(&cfg);
    free(path);
}

static void test_commands_and_usage(void **state)
{
    (void)state;
    const char *cmds[] = { "init", "backup", "list", "restore", "verify" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        assert_true(cs_config_is_command(cmds[i]));
    assert_false(cs_config_is_command(""));
    assert_false(cs_config_is_command("lis"));
    assert_false(cs_config_is_command("lists"));
    assert_false(cs_config_is_command("LIST"));

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    cs_config_usage(out, NULL);
    fclose(out);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        assert_non_null(strstr(text, cmds[i]));
    assert_non_null(strstr(text, "--repo"));
    assert_non_null(strstr(text, "--keyspace"));
    assert_non_null(strstr(text, "[env: CASSETTE_REPO]"));
    assert_non_null(strstr(text, "[default: 9042]"));
    assert_non_null(strstr(text, "[file: cassandra.port]"));
    free(text);

    text = NULL;
    out = open_memstream(&text, &len);
    assert_non_null(out);
    cs_config_usage(out, "list");
    fclose(out);
    assert_non_null(strstr(text, "usage: cassette list"));
    assert_non_null(strstr(text, "--repo"));
    assert_non_null(strstr(text, "--json"));
    assert_non_null(strstr(text, "-h, --help"));
    assert_null(strstr(text, "--keyspace"));
    assert_null(strstr(text, "--cql-port"));
    free(text);
}

static void test_default_config_files(void **state)
{
    fixture *f = *state;
    cs_config cfg;
    cs_err e;
    /* No file in $XDG_CONFIG_HOME/cassette: defaults only. */
    assert_int_equal(LOAD(&cfg, &e, "list"), 0);
    assert_null(cfg.config_file);
    cs_config_free(&cfg);

    char *dir = cs_path_join(f->dir, "cassette");
    assert_int_equal(cs_mkdirs(dir, 0700, &e), 0);
    char *user =
        write_config(f, "cassette/cassette.ini", "[repository]\npath = /user/repo\n[cassandra]\nport = 9999\n");
    assert_int_equal(LOAD(&cfg, &e, "list"), 0);
    assert_string_equal(cfg.config_file, user);
    assert_string_equal(cfg.repo, "/user/repo");
    assert_int_equal(cfg.cql_port, 9999);
    cs_config_free(&cfg);

    /* The environment and flags still win over it. */
    setenv("CASSETTE_REPO", "/env/repo", 1);
    assert_int_equal(LOAD(&cfg, &e, "backup", "--cql-port", "9043"), 0);
    assert_string_equal(cfg.repo, "/env/repo");
    assert_int_equal(cfg.cql_port, 9043);
    cs_config_free(&cfg);
    unsetenv("CASSETTE_REPO");

    /* --config or CASSETTE_CONFIG: the default files are not read at all. */
    char *other = write_config(f, "other.ini", "[cassandra]\nhost = otherhost\n");
    assert_int_equal(LOAD(&cfg, &e, "list", "--config", other), 0);
    assert_null(cfg.repo);
    assert_int_equal(cfg.cql_port, 9042);
    cs_config_free(&cfg);
    setenv("CASSETTE_CONFIG", other, 1);
    assert_int_equal(LOAD(&cfg, &e, "list"), 0);
    assert_null(cfg.repo);
    cs_config_free(&cfg);
    unsetenv("CASSETTE_CONFIG");

    /* A default file that exists but is wrong is an error naming it and its line. */
    free(write_config(f, "cassette/cassette.ini", "[cassandra]\nprot = 1\n"));
    assert_int_equal(LOAD(&cfg, &e, "list"), CS_E_INVAL);
    assert_non_null(strstr(e.msg, user));
    assert_non_null(strstr(e.msg, ":2: unknown setting"));
    cs_config_free(&cfg);

    /* HOME/.config/cassette when XDG_CONFIG_HOME is not set. */
    unsetenv("XDG_CONFIG_HOME");
    char *home = cs_path_join(f->dir, "home");
    char *home_dir = cs_path_join(home, ".config/cassette");
    assert_int_equal(cs_mkdirs(home_dir, 0700, &e), 0);
    free(write_config(f, "home/.config/cassette/cassette.ini", "[repository]\npath = /home/repo\n"));
    const char *old_home = getenv("HOME");
    char *saved = old_home ? cs_strdup(old_home) : NULL;
    setenv("HOME", home, 1);
    assert_int_equal(LOAD(&cfg, &e, "list"), 0);
    assert_string_equal(cfg.repo, "/home/repo");
    cs_config_free(&cfg);
    if (saved)
        setenv("HOME", saved, 1);
    else
        unsetenv("HOME");
    free(saved);
    free(home_dir);
    free(home);
    free(other);
    free(user);
    free(dir);
}

static void test_verbosity_and_bundles(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "list", "-v"), 0);
    assert_int_equal(cfg.verbose, 1);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "-vv", "list"), 0);
    assert_int_equal(cfg.verbose, 2);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "list", "-v", "--verbose"), 0);
    assert_int_equal(cfg.verbose, 2);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "list", "-q"), 0);
    assert_true(cfg.quiet);
    assert_int_equal(cfg.verbose, 0);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "purge", "-nv"), 0);
    assert_true(cfg.dry_run);
    assert_int_equal(cfg.verbose, 1);
    cs_config_free(&cfg);
    EXPECT_ERROR("--quiet and --verbose", "list", "-q", "-v");
    EXPECT_ERROR("list does not take --dry-run", "list", "-nv");
    EXPECT_ERROR("unknown option -vx", "list", "-vx");
    EXPECT_ERROR("unknown option -jv", "backup", "-jv"); /* -j wants a value: no bundle */
}

static void test_help_and_version(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    assert_int_equal(LOAD(&cfg, &e, "help", "backup"), 0);
    assert_true(cfg.help);
    assert_string_equal(cfg.command, "backup");
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "help"), 0);
    assert_true(cfg.help);
    assert_null(cfg.command);
    cs_config_free(&cfg);
    EXPECT_ERROR("unknown command \"nosuch\"", "help", "nosuch");
    /* A command's required options are not asked for with --help. */
    assert_int_equal(LOAD(&cfg, &e, "key", "--help"), 0);
    cs_config_free(&cfg);
    assert_int_equal(LOAD(&cfg, &e, "--version"), 0);
    assert_true(cfg.version);
    cs_config_free(&cfg);

    /* A command's own options come before the shared and the global ones. */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cs_config_usage(out, "backup");
    fclose(out);
    const char *own = strstr(text, "options of backup:"), *shared = strstr(text, "options it shares");
    const char *global = strstr(text, "global options:");
    assert_true(own && shared && global && own < shared && shared < global);
    assert_non_null(own);
    const char *name = strstr(own, "--name"), *cql = strstr(own, "--cql-host"), *verbose = strstr(own, "--verbose");
    assert_true(name && cql && verbose && own < name && name < shared && shared < cql && cql < global &&
                global < verbose);
    free(text);
}

/* Every command and option of the table is in the manual page and in the
 * completion script. */
static void test_man_and_completion(void **state)
{
    (void)state;
    char *man = NULL, *bash = NULL, *usage = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&man, &len);
    cs_config_man(out, "1.2.3");
    fclose(out);
    out = open_memstream(&bash, &len);
    cs_config_completion_bash(out);
    fclose(out);
    out = open_memstream(&usage, &len);
    cs_config_usage(out, NULL);
    fclose(out);
    assert_non_null(strstr(man, ".TH CASSETTE 1 \"\" \"cassette 1.2.3\""));
    assert_non_null(strstr(man, ".SH EXIT STATUS"));
    assert_non_null(strstr(bash, "complete -o default -F _cassette cassette"));
    const char *cmds[] = { "init", "backup", "list", "restore", "verify", "purge", "status", "key" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *item = cs_sprintf(".TP\n\\fB%s\\fR ", cmds[i]);
        char *branch = cs_sprintf("        %s) opts='", cmds[i]);
        assert_non_null(strstr(man, item));
        assert_non_null(strstr(bash, branch));
        free(item);
        free(branch);
    }
    /* Every "--flag" of the usage is in both (hyphens are \- in roff). */
    for (const char *p = usage; (p = strstr(p, "  --")) != NULL; p += 4) {
        size_t n = strspn(p + 4, "abcdefghijklmnopqrstuvwxyz0123456789-");
        char *flag = cs_sprintf("--%.*s", (int)n, p + 4);
        cs_buf roffed = CS_BUF_INIT;
        for (const char *c = flag; *c; c++)
            cs_buf_printf(&roffed, "%s", *c == '-' ? "\\-" : (char[]){ *c, 0 });
        char *in_man = cs_sprintf("\\fB%s\\fR", cs_buf_str(&roffed));
        if (!strstr(man, in_man))
            fail_msg("%s is not in the manual page", flag);
        if (!strstr(bash, flag))
            fail_msg("%s is not in the completion script", flag);
        free(in_man);
        cs_buf_free(&roffed);
        free(flag);
    }
    assert_non_null(strstr(bash, "words='generate public'"));
    assert_non_null(strstr(bash, "words='rebuild'"));
    free(man);
    free(bash);
    free(usage);
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(cs_exit_code(CS_OK), 0);
    assert_int_equal(cs_exit_code(CS_E_IO), 1);
    assert_int_equal(cs_exit_code(CS_E_INVAL), 1);
    assert_int_equal(cs_exit_code(CS_E_USAGE), 2);
    assert_int_equal(cs_exit_code(CS_E_CORRUPT), 3);
    assert_int_equal(cs_exit_code(CS_E_LOCKED), 4);
    assert_int_equal(cs_exit_code(CS_E_NOKEY), 5);
    assert_int_equal(cs_exit_code(CS_E_STALE), 6);
    assert_int_equal(cs_exit_code(CS_E_CANCELED), 130);
}


/* The option table, the op table and the host agree: every request and
 * host field is set by an option of its scope, every such option reaches a
 * field, one default per field name. */
static void test_tables_agree(void **state)
{
    (void)state;
    char why[256];
    bool ok = cs_config_check_tables(why, sizeof why);
    if (!ok)
        fail_msg("%s", why);
    size_t n;
    const cs_op_def *ops = cs_ops_all(&n);
    for (size_t i = 0; i < n; i++) {
        assert_true(cs_output_has_formatter(&ops[i]));
        assert_non_null(cs_command_find(ops[i].command));
    }
}

/* The command line builds the same typed request a JSON request would. */
static void test_request_from_flags(void **state)
{
    (void)state;
    cs_config cfg;
    cs_err e;
    cs_err_clear(&e);
    const char *args[] = { "backup", "--repo", "/r", "--jobs", "3", "--keyspace", "a,b", "--lock-wait", "30s",
                           "--identity", "/k", NULL };
    assert_int_equal(load_args(&cfg, &e, args), 0);
    const cs_op_def *op = cs_config_op(&cfg);
    assert_non_null(op);
    assert_string_equal(op->name, "backup");
    cs_backup_req *req = cs_op_request_new(op, &e);
    assert_non_null(req);
    assert_int_equal(cs_config_request(&cfg, op, req, &e), 0);
    assert_string_equal(req->repo, "/r");
    assert_int_equal(req->jobs, 3);
    assert_int_equal(req->zstd_level, 1); /* the op table's default */
    assert_int_equal(req->keyspaces.n, 2);
    assert_true(req->lock_wait == 30 && req->lock_stale == 1800);
    assert_int_equal(cs_op_request_check(op, req, &e), 0);
    cs_host host;
    assert_int_equal(cs_config_host(&cfg, &host, &e), 0);
    assert_string_equal(host.identity, "/k");
    assert_string_equal(host.cql_host, "127.0.0.1");
    assert_int_equal(host.cql_port, 9042);
    cs_host_free(&host);
    cs_op_request_free(op, req);
    cs_config_free(&cfg);

    /* The word after a sub-command fills the operation's positional field. */
    const char *key[] = { "key", "public", "/id.txt", NULL };
    assert_int_equal(load_args(&cfg, &e, key), 0);
    op = cs_config_op(&cfg);
    assert_string_equal(op->name, "key public");
    cs_key_public_req *kreq = cs_op_request_new(op, &e);
    assert_int_equal(cs_config_request(&cfg, op, kreq, &e), 0);
    assert_string_equal(kreq->file, "/id.txt");
    cs_op_request_free(op, kreq);
    cs_config_free(&cfg);

    /* --sample is text on the command line, a number in the request. */
    const char *verify[] = { "verify", "--repo", "/r", "--deep", "--sample", "12.5", NULL };
    assert_int_equal(load_args(&cfg, &e, verify), 0);
    op = cs_config_op(&cfg);
    cs_verify_req *vreq = cs_op_request_new(op, &e);
    assert_int_equal(cs_config_request(&cfg, op, vreq, &e), 0);
    assert_true(vreq->sample == 12.5);
    cs_op_request_free(op, vreq);
    cs_config_free(&cfg);

    /* A flag of the command that this operation has no field for (snapshot
     * clear's --older-than to snapshot) is a usage mistake, not dropped. */
    const char *snap[] = { "snapshot", "--tag", "t", "--older-than", "1d", NULL };
    assert_int_equal(load_args(&cfg, &e, snap), 0);
    op = cs_config_op(&cfg);
    assert_string_equal(op->name, "snapshot");
    cs_snapshot_req *sreq = cs_op_request_new(op, &e);
    assert_int_equal(cs_config_request(&cfg, op, sreq, &e), CS_E_USAGE);
    assert_string_equal(e.msg, "snapshot does not take --older-than");
    cs_op_request_free(op, sreq);
    cs_config_free(&cfg);
    const char *clear[] = { "snapshot", "clear", "--older-than", "1d", "--prefix", "x-", NULL };
    assert_int_equal(load_args(&cfg, &e, clear), 0);
    op = cs_config_op(&cfg);
    sreq = cs_op_request_new(op, &e);
    assert_int_equal(cs_config_request(&cfg, op, sreq, &e), 0);
    assert_true(sreq->older_than == 86400 && !strcmp(sreq->prefix, "x-"));
    cs_op_request_free(op, sreq);
    cs_config_free(&cfg);
}

/* Errors name request fields; the CLI says them as its flags. */
static void test_errors_as_flags(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    const cs_op_def *op = cs_op_find("restore");
    cs_restore_req *req = cs_op_request_new(op, &e);
    req->repo = cs_strdup("/r");
    assert_int_equal(cs_op_request_check(op, req, &e), CS_E_USAGE);
    assert_string_equal(e.field, "backup");
    char msg[CS_ERR_MSG_MAX];
    cs_err_render(&e, cs_config_namer, NULL, msg, sizeof msg);
    assert_string_equal(msg, "restore needs --backup NAME (see cassette list)");
    cs_err_render(&e, NULL, NULL, msg, sizeof msg);
    assert_string_equal(msg, "restore needs backup NAME (see cassette list)");
    cs_op_request_free(op, req);

    cs_err_set(&e, CS_E_USAGE, "{no_encryption} and {recipients}; {keyspaces}, {data_dirs}, {identity}; "
                               "{'class': 1} {unknown_field}");
    cs_err_render(&e, cs_config_namer, NULL, msg, sizeof msg);
    assert_string_equal(msg, "--no-encryption and --recipient; --keyspace, --data-dir, --identity (or "
                             "CASSETTE_IDENTITY); {'class': 1} {unknown_field}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ini, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ini_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_applicable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cql_port_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_config_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verbosity_and_bundles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_man_and_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_from_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_as_flags, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

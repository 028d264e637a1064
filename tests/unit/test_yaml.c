/* test_yaml.c - the directories of a cassandra.yaml (cassandra/yaml). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cassandra/yaml.h"
#include "common/err.h"

static void test_block_list_and_scalars(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "cluster_name: 'x'\n"
                       "data_file_directories:\n"
                       "    - /data/one   # first disk\n"
                       "\n"
                       "    # between items\n"
                       "    - \"/data/two\"\n"
                       "commitlog_directory: /cl\n"
                       "seed_provider:\n"
                       "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n"
                       "    parameters:\n"
                       "      - seeds: \"127.0.0.1:7000\"\n"
                       "hints_directory: '/h'\r\n"
                       "  saved_caches_directory: /indented/not/top/level\n";
    cs_node_dirs d;
    cs_err e = { 0 };
    assert_int_equal(cs_yaml_node_dirs(text, "t.yaml", &d, &e), 0);
    assert_int_equal(d.data_dirs.n, 2);
    assert_string_equal(d.data_dirs.items[0], "/data/one");
    assert_string_equal(d.data_dirs.items[1], "/data/two");
    assert_string_equal(d.commitlog_dir, "/cl");
    assert_string_equal(d.hints_dir, "/h");
    assert_null(d.saved_caches_dir);
    cs_node_dirs_free(&d);
}

static void test_flow_list_and_unindented_items(void **state)
{
    (void)state;
    cs_node_dirs d;
    cs_err e = { 0 };
    assert_int_equal(cs_yaml_node_dirs("data_file_directories: [/a, '/b']\n", "t", &d, &e), 0);
    assert_int_equal(d.data_dirs.n, 2);
    assert_string_equal(d.data_dirs.items[1], "/b");
    cs_node_dirs_free(&d);
    assert_int_equal(cs_yaml_node_dirs("data_file_directories:\n- /a\n- /b\nsaved_caches_directory: /s\n", "t", &d,
                                       &e), 0);
    assert_int_equal(d.data_dirs.n, 2);
    assert_string_equal(d.saved_caches_dir, "/s");
    cs_node_dirs_free(&d);
}

static void test_nothing_set_and_relative(void **state)
{
    (void)state;
    cs_node_dirs d;
    cs_err e = { 0 };
    assert_int_equal(cs_yaml_node_dirs("cluster_name: c\n# data_file_directories:\n#  - /x\n", "t", &d, &e), 0);
    assert_int_equal(d.data_dirs.n, 0);
    assert_null(d.commitlog_dir);
    cs_node_dirs_free(&d);
    assert_int_equal(cs_yaml_node_dirs("data_file_directories:\n  - data\n", "t.yaml", &d, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "t.yaml:2"));
    assert_int_equal(cs_yaml_node_dirs("commitlog_directory: cl\n", "t.yaml", &d, &e), CS_E_INVAL);
    assert_int_equal(cs_yaml_node_dirs("data_file_directories: [/a\n", "t.yaml", &d, &e), CS_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_list_and_scalars),
        cmocka_unit_test(test_flow_list_and_unindented_items),
        cmocka_unit_test(test_nothing_set_and_relative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_set.c - backup set records and commits (parse, validate, round
 * trip), a set's state from its node backups, and retention by set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "repo/set.h"

#define ID "0123456789abcdef0123456789abcdef"
#define T0 1795305600.0
#define DAY 86400.0

static const char *record_text(void)
{
    return "{\"type\":\"cassette-set\",\"format\":1,\"name\":\"nightly-1\",\"set_id\":\"" ID "\","
           "\"cluster\":\"Test Cluster\",\"coordinator\":\"ops-1.example\",\"started\":1795305600.5,"
           "\"hosts\":[{\"host_id\":\"h1\",\"address\":\"127.0.0.1\",\"datacenter\":\"dc1\",\"rack\":\"r1\"},"
           "{\"host_id\":\"h2\",\"address\":\"127.0.0.2\",\"datacenter\":\"dc1\",\"rack\":\"r2\"},"
           "{\"host_id\":\"h3\",\"address\":\"127.0.0.3\",\"datacenter\":\"dc1\",\"rack\":\"r3\"}]}";
}

static void parse_ok(cs_backup_set *s)
{
    cs_err e;
    cs_err_clear(&e);
    const char *t = record_text();
    assert_int_equal(cs_set_record_from_json(t, strlen(t), s, &e), 0);
}

static void test_record_parses(void **state)
{
    (void)state;
    cs_backup_set s;
    parse_ok(&s);
    assert_string_equal(s.name, "nightly-1");
    assert_string_equal(s.set_id, ID);
    assert_string_equal(s.cluster, "Test Cluster");
    assert_string_equal(s.coordinator, "ops-1.example");
    assert_true(s.started == 1795305600.5);
    assert_int_equal(s.n_hosts, 3);
    assert_string_equal(s.hosts[2].host_id, "h3");
    assert_string_equal(s.hosts[1].rack, "r2");
    assert_false(s.committed);
    assert_non_null(cs_set_find_host(&s, "h2"));
    assert_null(cs_set_find_host(&s, "h4"));
    /* round trip */
    char *text = cs_set_record_to_json(&s);
    cs_backup_set back;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_set_record_from_json(text, strlen(text), &back, &e), 0);
    char *again = cs_set_record_to_json(&back);
    assert_string_equal(text, again);
    free(text);
    free(again);
    cs_backup_set_free(&back);
    cs_backup_set_free(&s);
}

/* Replace the first occurrence of from in the record by to, and parse. */
static int parse_changed(const char *from, const char *to)
{
    const char *t = record_text();
    const char *at = strstr(t, from);
    assert_non_null(at);
    cs_buf b = CS_BUF_INIT;
    cs_buf_add(&b, t, (size_t)(at - t));
    cs_buf_addstr(&b, to);
    cs_buf_addstr(&b, at + strlen(from));
    cs_backup_set s;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_set_record_from_json(b.data, b.len, &s, &e);
    if (rc) {
        assert_int_equal(rc, CS_E_CORRUPT);
        assert_null(strchr(e.msg, '\n'));
        assert_non_null(strstr(e.msg, "invalid set record"));
    } else {
        cs_backup_set_free(&s);
    }
    cs_buf_free(&b);
    return rc;
}

static void test_record_rejects(void **state)
{
    (void)state;
    assert_int_not_equal(parse_changed("cassette-set", "cassette-index"), 0);
    assert_int_not_equal(parse_changed("\"format\":1", "\"format\":2"), 0);
    assert_int_not_equal(parse_changed("nightly-1", "../etc"), 0);
    assert_int_not_equal(parse_changed("nightly-1", ".hidden"), 0);
    assert_int_not_equal(parse_changed(ID, "0123"), 0);
    assert_int_not_equal(parse_changed(ID, "0123456789ABCDEF0123456789ABCDEF"), 0);
    assert_int_not_equal(parse_changed("Test Cluster", "Test\\u001b[31mCluster"), 0);
    assert_int_not_equal(parse_changed("ops-1.example", "ops 1"), 0);
    assert_int_not_equal(parse_changed("1795305600.5", "-1"), 0);
    assert_int_not_equal(parse_changed("1795305600.5", "\"now\""), 0);
    assert_int_not_equal(parse_changed("\"h2\"", "\"h1\""), 0);          /* a host twice */
    assert_int_not_equal(parse_changed("\"h2\"", "\"h/2\""), 0);
    assert_int_not_equal(parse_changed("127.0.0.2", "127.0.0.2;rm"), 0);
    assert_int_not_equal(parse_changed("\"dc1\"", "1"), 0);
    assert_int_not_equal(parse_changed("\"hosts\":[", "\"hosts\":[1,"), 0);
    assert_int_not_equal(parse_changed("\"set_id\"", "\"set_id\":\"x\",\"set_id\""), 0); /* duplicate key */
    /* no host at all */
    const char *t = "{\"type\":\"cassette-set\",\"format\":1,\"name\":\"a\",\"set_id\":\"" ID "\",\"cluster\":\"c\","
                    "\"coordinator\":\"x\",\"started\":1,\"hosts\":[]}";
    cs_backup_set s;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_set_record_from_json(t, strlen(t), &s, &e), CS_E_CORRUPT);
    assert_int_equal(cs_set_record_from_json("{", 1, &s, &e), CS_E_CORRUPT);
    assert_int_equal(cs_set_record_from_json("", 0, &s, &e), CS_E_CORRUPT);
    /* an empty cluster, datacenter or rack is fine (a node that does not say) */
    assert_int_equal(parse_changed("\"dc1\"", "\"\""), 0);
}

static int commit(cs_backup_set *s, const char *text)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_set_commit_from_json(text, strlen(text), s, &e);
    if (rc) {
        assert_null(strchr(e.msg, '\n'));
        assert_non_null(strstr(e.msg, "invalid set commit"));
    }
    return rc;
}

#define COMMIT_HEAD "{\"type\":\"cassette-set-commit\",\"format\":1,\"name\":\"nightly-1\",\"set_id\":\"" ID "\","

static void test_commit(void **state)
{
    (void)state;
    cs_backup_set s;
    parse_ok(&s);
    assert_int_equal(commit(&s, COMMIT_HEAD "\"finished\":1795305700,\"hosts\":[{\"host_id\":\"h1\",\"ok\":true,"
                                            "\"reason\":null},{\"host_id\":\"h3\",\"ok\":false,\"reason\":\"agent "
                                            "killed\"}]}"),
                     0);
    assert_true(s.committed);
    assert_true(s.finished == 1795305700);
    assert_true(s.hosts[0].ok);
    assert_false(s.hosts[1].ok); /* left out: did not complete */
    assert_null(s.hosts[1].reason);
    assert_false(s.hosts[2].ok);
    assert_string_equal(s.hosts[2].reason, "agent killed");
    /* round trip of the commit */
    char *text = cs_set_commit_to_json(&s);
    cs_backup_set t;
    parse_ok(&t);
    assert_int_equal(commit(&t, text), 0);
    char *again = cs_set_commit_to_json(&t);
    assert_string_equal(text, again);
    free(text);
    free(again);
    cs_backup_set_free(&t);
    cs_backup_set_free(&s);

    const char *bad[] = {
        "{\"type\":\"cassette-set-commit\",\"format\":1,\"name\":\"other\",\"set_id\":\"" ID "\",\"finished\":1,\"hosts\":[]}",
        "{\"type\":\"cassette-set-commit\",\"format\":1,\"name\":\"nightly-1\",\"set_id\":\"ffffffffffffffffffffffffffffffff\","
        "\"finished\":1,\"hosts\":[]}",
        COMMIT_HEAD "\"finished\":1,\"hosts\":[{\"host_id\":\"h9\",\"ok\":true,\"reason\":null}]}",
        COMMIT_HEAD "\"finished\":1,\"hosts\":[{\"host_id\":\"h1\",\"ok\":true,\"reason\":\"why\"}]}",
        COMMIT_HEAD "\"finished\":1,\"hosts\":[{\"host_id\":\"h1\",\"ok\":1,\"reason\":null}]}",
        COMMIT_HEAD "\"finished\":1,\"hosts\":[{\"host_id\":\"h1\",\"ok\":false,\"reason\":\"a\\nb\"}]}",
        COMMIT_HEAD "\"finished\":1,\"hosts\":[{\"host_id\":\"h1\",\"ok\":true,\"reason\":null},"
                    "{\"host_id\":\"h1\",\"ok\":true,\"reason\":null}]}",
        COMMIT_HEAD "\"finished\":\"soon\",\"hosts\":[]}",
        "{\"type\":\"cassette-set\",\"format\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse_ok(&s);
        assert_int_equal(commit(&s, bad[i]), CS_E_CORRUPT);
        assert_false(s.committed); /* the record stands, uncommitted */
        for (size_t h = 0; h < s.n_hosts; h++) {
            assert_false(s.hosts[h].ok);
            assert_null(s.hosts[h].reason);
        }
        cs_backup_set_free(&s);
    }
}

static void entry(cs_backup_entry *b, const char *name, const char *host, bool complete, const char *damage)
{
    memset(b, 0, sizeof *b);
    b->name = (char *)name;
    b->host_id = (char *)host;
    b->address = (char *)"";
    b->complete = complete;
    b->damage = (char *)damage;
}

static void test_state(void **state)
{
    (void)state;
    cs_backup_set s;
    parse_ok(&s);
    cs_backup_entry e[4];
    entry(&e[0], "nightly-1", "h1", true, NULL);
    entry(&e[1], "nightly-1", "h2", false, NULL);
    entry(&e[2], "other", "h3", true, NULL);
    entry(&e[3], "nightly-1", "h9", true, NULL); /* not expected: does not count */
    cs_set_info info;
    /* before the commit, young: running */
    cs_set_state_of(&s, e, 4, s.started + 10, DAY, &info);
    assert_int_equal(info.expected, 3);
    assert_int_equal(info.complete_hosts, 1);
    assert_false(info.complete);
    assert_int_equal(info.n_missing, 2);
    assert_string_equal(info.missing[0].host_id, "h2");
    assert_string_equal(info.missing[0].address, "127.0.0.2");
    assert_string_equal(info.missing[0].reason, "running");
    assert_string_equal(info.missing[1].reason, "running");
    cs_set_info_clear(&info);
    /* before the commit, old: no manifest */
    cs_set_state_of(&s, e, 4, s.started + 2 * DAY, DAY, &info);
    assert_string_equal(info.missing[1].reason, "no manifest");
    cs_set_info_clear(&info);
    /* committed with a reason; a damaged node backup says so */
    s.committed = true;
    s.hosts[1].reason = strdup("agent killed");
    e[0].damage = (char *)"its index is missing";
    cs_set_state_of(&s, e, 4, s.started + 10, DAY, &info);
    assert_int_equal(info.complete_hosts, 0);
    assert_int_equal(info.n_missing, 3);
    assert_string_equal(info.missing[0].reason, "damaged: its index is missing");
    assert_string_equal(info.missing[1].reason, "agent killed");
    assert_string_equal(info.missing[2].reason, "no manifest");
    cs_set_info *dup = cs_set_info_dup(&info);
    assert_string_equal(dup->missing[1].reason, "agent killed");
    cs_set_info_free(dup);
    cs_set_info_clear(&info);
    /* committed, every host complete */
    e[0].damage = NULL;
    e[1].complete = true;
    e[2].name = (char *)"nightly-1";
    cs_set_state_of(&s, e, 4, s.started + 10, DAY, &info);
    assert_true(info.complete);
    assert_int_equal(info.complete_hosts, 3);
    assert_int_equal(info.n_missing, 0);
    cs_set_info_clear(&info);
    /* complete hosts but not committed: incomplete */
    s.committed = false;
    cs_set_state_of(&s, e, 4, s.started + 10, DAY, &info);
    assert_false(info.complete);
    assert_int_equal(info.complete_hosts, 3);
    cs_set_info_clear(&info);
    cs_backup_set_free(&s);
}

static cs_retention_item set_item(const char *name, double started, bool complete, const char *cluster)
{
    cs_retention_item it;
    memset(&it, 0, sizeof it);
    it.name = name;
    it.started = started;
    it.complete = complete;
    it.group = cluster;
    return it;
}

static void test_retention_by_set(void **state)
{
    (void)state;
    cs_retention p = { .last = 2 };
    cs_err e;
    cs_err_clear(&e);
    /* newest first in time: s5 incomplete, s4 complete, s3 incomplete, s2, s1 complete; cluster b apart */
    cs_retention_item it[7] = {
        set_item("s1", T0 + 1 * DAY, true, "a"),  set_item("s2", T0 + 2 * DAY, true, "a"),
        set_item("s3", T0 + 3 * DAY, false, "a"), set_item("s4", T0 + 4 * DAY, true, "a"),
        set_item("s5", T0 + 5 * DAY, false, "a"), set_item("b1", T0 + 0 * DAY, true, "b"),
        set_item("b2", T0 + 1 * DAY, false, "b"),
    };
    assert_int_equal(cs_set_retention_apply(&p, it, 7, &e), 0);
    assert_false(it[0].keep);  /* s1: third complete */
    assert_true(it[1].keep);   /* s2: last 2 (the incomplete s3, s5 do not count) */
    assert_true(it[3].keep);   /* s4 */
    assert_string_equal(it[1].reason, "last 2");
    assert_true(it[5].keep);   /* b1: the newest complete set of its cluster */
    /* keep-last 1 over one cluster: the newest complete set stays, whatever is newer and incomplete */
    cs_retention p1 = { .last = 1 };
    cs_retention_item one[3] = { set_item("x1", T0, true, "c"), set_item("x2", T0 + DAY, true, "c"),
                                 set_item("x3", T0 + 2 * DAY, false, "c") };
    assert_int_equal(cs_set_retention_apply(&p1, one, 3, &e), 0);
    assert_false(one[0].keep);
    assert_true(one[1].keep);
    /* a policy that keeps none by age still keeps the newest complete set */
    cs_retention within = { .within = 1 };
    cs_retention_item old[2] = { set_item("y1", T0, true, NULL), set_item("y2", T0 + DAY, true, NULL) };
    assert_int_equal(cs_set_retention_apply(&within, old, 2, &e), 0);
    assert_false(old[0].keep);
    assert_true(old[1].keep);
    cs_retention bad = { .last = -1 };
    assert_int_not_equal(cs_set_retention_apply(&bad, old, 2, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_parses),
        cmocka_unit_test(test_record_rejects),
        cmocka_unit_test(test_commit),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_retention_by_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

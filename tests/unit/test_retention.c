/* test_retention.c - retention policies over synthetic backup histories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/units.h"
#include "repo/retention.h"

#define HOUR 3600.0
#define DAY (24 * HOUR)
/* 2026-11-22 00:00:00 UTC, a Sunday (ISO week 47) */
#define T0 1795305600.0

enum { MAXN = 2000 };

typedef struct history {
    cs_retention_item items[MAXN];
    char names[MAXN][24];
    size_t n;
} history;

static history H;

/* n backups every `step` seconds going back from `newest`; complete unless
 * listed in `incomplete` (indexes from the newest, -1 terminated). */
static void make_history(size_t n, double newest, double step, const int *incomplete)
{
    memset(&H, 0, sizeof H);
    H.n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(H.names[i], sizeof H.names[i], "b%04zu", i);
        H.items[i].name = H.names[i];
        H.items[i].started = newest - (double)i * step;
        H.items[i].complete = true;
    }
    for (const int *p = incomplete; p && *p >= 0; p++)
        H.items[*p].complete = false;
}

static size_t kept(void)
{
    size_t k = 0;
    for (size_t i = 0; i < H.n; i++)
        k += H.items[i].keep;
    return k;
}

static void apply(cs_retention policy)
{
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_retention_apply(&policy, H.items, H.n, &e), 0);
}

static void test_default_keeps_168(void **state)
{
    (void)state;
    make_history(200, T0, HOUR, NULL);
    apply((cs_retention){ 0 });
    assert_int_equal(kept(), 168);
    assert_true(H.items[167].keep);
    assert_false(H.items[168].keep);
    assert_string_equal(H.items[168].reason, "no rule keeps it");
    assert_string_equal(H.items[0].reason, "newest complete backup");
    assert_string_equal(H.items[5].reason, "last 168");
}

static void test_keep_last_skips_incomplete(void **state)
{
    (void)state;
    static const int inc[] = { 0, 2, -1 };
    make_history(10, T0, HOUR, inc);
    apply((cs_retention){ .last = 3 });
    /* complete: 1,3,4 are the newest three; the incomplete ones stay too */
    assert_true(H.items[1].keep && H.items[3].keep && H.items[4].keep);
    assert_false(H.items[5].keep);
    assert_true(H.items[0].keep && H.items[2].keep);
    assert_string_equal(H.items[0].reason, "incomplete: not retention's to remove");
    assert_string_equal(H.items[1].reason, "newest complete backup");
    assert_int_equal(kept(), 5);
}

static void test_hourly_takes_newest_of_each_hour(void **state)
{
    (void)state;
    make_history(48, T0 + 45 * 60, 15 * 60, NULL); /* four per hour over 12 hours */
    apply((cs_retention){ .hourly = 5 });
    assert_int_equal(kept(), 5);
    for (size_t i = 0; i < 20; i += 4)
        assert_true(H.items[i].keep); /* xx:45 of each of the newest five hours */
    assert_string_equal(H.items[4].reason, "hourly 2026-11-21 23");
}

static void test_daily_weekly_monthly(void **state)
{
    (void)state;
    make_history(400, T0 + 23 * HOUR, DAY, NULL); /* one a day for 400 days */
    apply((cs_retention){ .daily = 7, .weekly = 4, .monthly = 12 });
    /* 7 days; weeks add the newest of 3 earlier weeks (this week is counted by a daily);
     * months add the newest of the 11 earlier months */
    size_t daily = 0, weekly = 0, monthly = 0;
    for (size_t i = 0; i < H.n; i++) {
        if (!H.items[i].keep)
            continue;
        if (!strncmp(H.items[i].reason, "daily", 5))
            daily++;
        else if (!strncmp(H.items[i].reason, "weekly", 6))
            weekly++;
        else if (!strncmp(H.items[i].reason, "monthly", 7))
            monthly++;
    }
    assert_int_equal(daily, 6); /* the newest is "newest complete backup" */
    assert_true(weekly >= 2 && weekly <= 4);
    assert_true(monthly >= 10 && monthly <= 12);
    assert_true(H.items[399].keep == false);
    assert_string_equal(H.items[0].reason, "newest complete backup");
}

static void test_within_counts_from_newest_complete(void **state)
{
    (void)state;
    /* the host stopped backing up 30 days ago: within 7d still keeps a week of backups */
    make_history(100, T0 - 30 * DAY, 6 * HOUR, NULL);
    apply((cs_retention){ .within = 7 * DAY });
    assert_int_equal(kept(), 29); /* 0..28: 28 steps of 6 h = 7 days */
    assert_string_equal(H.items[10].reason, "within the duration");
}

static void test_only_incomplete_newer_than_cutoff(void **state)
{
    (void)state;
    /* the newest 24 backups all failed: retention must keep the newest complete one and
     * what the rules say of the complete ones, and leave the incomplete ones alone */
    int inc[25];
    for (int i = 0; i < 24; i++)
        inc[i] = i;
    inc[24] = -1;
    make_history(100, T0, HOUR, inc);
    apply((cs_retention){ .within = 12 * HOUR, .last = 2 });
    assert_true(H.items[24].keep);
    assert_string_equal(H.items[24].reason, "newest complete backup");
    assert_true(H.items[25].keep); /* last 2 */
    /* within 12 h of the newest complete (item 24): items 24..36 */
    assert_true(H.items[36].keep);
    assert_false(H.items[37].keep);
    for (int i = 0; i < 24; i++)
        assert_true(H.items[i].keep);
    assert_int_equal(kept(), 24 + 13);
}

static void test_combination_union_and_unsorted_input(void **state)
{
    (void)state;
    make_history(72, T0, HOUR, NULL);
    /* reverse the order: apply must not depend on it */
    for (size_t i = 0; i < H.n / 2; i++) {
        cs_retention_item t = H.items[i];
        H.items[i] = H.items[H.n - 1 - i];
        H.items[H.n - 1 - i] = t;
    }
    apply((cs_retention){ .last = 3, .daily = 3 });
    /* last 3: 22 00:00, 21 23:00, 21 22:00; daily 3: the newest of the 22nd and of the 21st
     * are among them, the 20th adds its 23:00 */
    assert_int_equal(kept(), 3 + 1);
    assert_true(H.items[H.n - 1].keep); /* the newest, now last in the array */
}

static void test_all_incomplete_keeps_all(void **state)
{
    (void)state;
    int inc[6] = { 0, 1, 2, 3, 4, -1 };
    make_history(5, T0, HOUR, inc);
    apply((cs_retention){ .last = 1 });
    assert_int_equal(kept(), 5);
}

static void test_bad_policy_and_durations(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    make_history(3, T0, HOUR, NULL);
    cs_retention neg = { .last = -1 };
    assert_int_equal(cs_retention_apply(&neg, H.items, H.n, &e), CS_E_INVAL);
    double s = 0;
    assert_int_equal(cs_parse_duration("1d12h", &s, &e), 0);
    assert_true(s == 36 * HOUR);
    assert_int_equal(cs_parse_duration("2w", &s, &e), 0);
    assert_true(s == 14 * DAY);
    assert_int_equal(cs_parse_duration("90m", &s, &e), 0);
    assert_true(s == 5400);
    static const char *const bad[] = { "", "7", "d", "7x", "-1d", "1.5h", "7d ", NULL };
    for (const char *const *b = bad; *b; b++) {
        cs_err_clear(&e);
        assert_int_equal(cs_parse_duration(*b, &s, &e), CS_E_INVAL);
        assert_non_null(strstr(e.msg, "duration"));
    }
}

/* Scopes: a partial backup never stands in for a full one. */
static void test_partial_never_counts_as_full(void **state)
{
    (void)state;
    make_history(6, T0, HOUR, NULL); /* items[0] is the newest */
    /* The newest backup is partial (backup --keyspace ks1), the rest full. */
    H.items[0].group = "partial:aaaa";
    apply((cs_retention){ .last = 1 });
    assert_true(H.items[0].keep); /* the newest of its scope */
    assert_string_equal(H.items[0].reason, "newest complete backup of its scope");
    assert_true(H.items[1].keep); /* the newest full one is kept */
    assert_string_equal(H.items[1].reason, "newest complete backup");
    for (size_t i = 2; i < 6; i++)
        assert_false(H.items[i].keep);
    assert_int_equal(kept(), 2);

    /* An explicit "all" is the same group as NULL. */
    for (size_t i = 1; i < 6; i++)
        H.items[i].group = i % 2 ? "all" : NULL;
    apply((cs_retention){ .last = 2 });
    assert_true(H.items[1].keep && H.items[2].keep);
    assert_false(H.items[3].keep);
}

static void test_groups_counted_apart(void **state)
{
    (void)state;
    /* Hourly backups alternating between two partial scopes and the full one. */
    make_history(30, T0, HOUR, NULL);
    const char *groups[] = { NULL, "partial:ks1", "partial:ks2" };
    for (size_t i = 0; i < H.n; i++)
        H.items[i].group = groups[i % 3];
    apply((cs_retention){ .last = 2 });
    assert_int_equal(kept(), 6); /* two of each */
    for (size_t i = 0; i < 6; i++)
        assert_true(H.items[i].keep);
    assert_string_equal(H.items[4].reason, "last 2 of its scope");
    assert_string_equal(H.items[3].reason, "last 2");

    /* An incomplete newest full backup: the newest complete full one stays,
     * whatever the partial ones do. */
    H.items[0].complete = false;
    H.items[3].complete = false;
    apply((cs_retention){ .last = 1 });
    assert_true(H.items[6].keep); /* the newest complete full backup */
    assert_false(H.items[9].keep);
    assert_true(H.items[1].keep && H.items[2].keep);
    assert_false(H.items[4].keep || H.items[5].keep);

    /* --keep-within counts back from each group's newest. */
    make_history(30, T0, HOUR, NULL);
    for (size_t i = 0; i < H.n; i++)
        H.items[i].group = i < 10 ? NULL : "partial:old";
    apply((cs_retention){ .within = 2.5 * HOUR });
    /* full: 0, 1, 2; partial (its newest is item 10): 10, 11, 12 */
    assert_int_equal(kept(), 6);
    assert_true(H.items[10].keep && H.items[12].keep);
    assert_false(H.items[13].keep || H.items[3].keep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_keeps_168),
        cmocka_unit_test(test_keep_last_skips_incomplete),
        cmocka_unit_test(test_hourly_takes_newest_of_each_hour),
        cmocka_unit_test(test_daily_weekly_monthly),
        cmocka_unit_test(test_within_counts_from_newest_complete),
        cmocka_unit_test(test_only_incomplete_newer_than_cutoff),
        cmocka_unit_test(test_combination_union_and_unsorted_input),
        cmocka_unit_test(test_all_incomplete_keeps_all),
        cmocka_unit_test(test_bad_policy_and_durations),
        cmocka_unit_test(test_partial_never_counts_as_full),
        cmocka_unit_test(test_groups_counted_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

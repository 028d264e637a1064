/* test_schedule.c - server/schedule: cron in UTC and in zones across both
 * daylight saving changes, @every anchors, the misfire policy, schedules
 * that never fire, windows, and bad input. Expected times are written in
 * UTC (checked against Python's zoneinfo); a brute-force minute-by-minute
 * search through glibc cross-checks next and due around the changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "server/schedule.h"

#define MIN 60.0
#define HOUR 3600.0
#define DAY 86400.0

/* "2025-01-01T00:07:30Z" -> seconds since the epoch */
static double T(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec);
    assert_int_equal(n, 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm);
}

/* For failure messages: a time as ISO UTC. */
static const char *iso(double t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static cs_schedule *sched(const char *text, const char *tz)
{
    cs_schedule *s = NULL;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_schedule_parse(text, tz, &s, &e);
    if (rc)
        fail_msg("parse \"%s\" in %s: %s", text, tz ? tz : "UTC", e.msg);
    return s;
}

/* next(text, tz, after) == want, all as ISO UTC */
static void check_next(const char *text, const char *tz, const char *after, const char *want)
{
    cs_schedule *s = sched(text, tz);
    double got = cs_schedule_next(s, 0, T(after));
    char b1[32];
    if (got != T(want))
        fail_msg("\"%s\" in %s after %s: got %s, want %s", text, tz ? tz : "UTC", after, iso(got, b1), want);
    cs_schedule_free(s);
}

/* A chain of next times from `after`. */
static void check_chain(const char *text, const char *tz, const char *after, const char *const *want)
{
    cs_schedule *s = sched(text, tz);
    double t = T(after);
    char b1[32], b2[32];
    for (size_t i = 0; want[i]; i++) {
        double got = cs_schedule_next(s, 0, t);
        if (got != T(want[i]))
            fail_msg("\"%s\" in %s step %zu after %s: got %s, want %s", text, tz, i, iso(t, b2), iso(got, b1),
                     want[i]);
        t = got;
    }
    cs_schedule_free(s);
}

static void check_bad_schedule(const char *text, const char *tz, const char *field, const char *needle)
{
    cs_schedule *s = (cs_schedule *)1;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_schedule_parse(text, tz, &s, &e);
    if (rc != CS_E_INVAL)
        fail_msg("\"%s\" in %s: rc %d, want CS_E_INVAL", text, tz ? tz : "UTC", rc);
    assert_null(s);
    assert_int_equal(e.code, CS_E_INVAL);
    assert_string_equal(e.field, field);
    assert_null(strchr(e.msg, '\n'));
    if (!strstr(e.msg, needle))
        fail_msg("\"%s\": message \"%s\" does not name \"%s\"", text, e.msg, needle);
}

/* ---- cron in UTC ---- */

static void test_cron_utc(void **state)
{
    (void)state;
    check_next("*/15 * * * *", NULL, "2025-01-01T00:07:30Z", "2025-01-01T00:15:00Z");
    check_next("*/15 * * * *", "", "2025-01-01T00:15:00Z", "2025-01-01T00:30:00Z"); /* strictly after */
    check_next("*/15 * * * *", "UTC", "2025-01-01T23:59:59Z", "2025-01-02T00:00:00Z");
    check_next("0 9 * * mon-fri", NULL, "2025-01-03T10:00:00Z", "2025-01-06T09:00:00Z");
    check_next("30 2 1 * *", NULL, "2025-01-31T00:00:00Z", "2025-02-01T02:30:00Z");
    check_next("0 0 29 2 *", NULL, "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z");
    check_next("0 0 31 * *", NULL, "2025-04-01T00:00:00Z", "2025-05-31T00:00:00Z");
    check_next("0 12 * * 7", NULL, "2025-01-01T00:00:00Z", "2025-01-05T12:00:00Z"); /* 7: Sunday */
    check_next("0 12 * * 0", NULL, "2025-01-01T00:00:00Z", "2025-01-05T12:00:00Z");
    check_next("0 12 * * SUN", NULL, "2025-01-01T00:00:00Z", "2025-01-05T12:00:00Z");
    check_next("0 12 * * fri-sun", NULL, "2025-01-01T00:00:00Z", "2025-01-03T12:00:00Z");
    check_next("0 12 * * 5-7", NULL, "2025-01-04T13:00:00Z", "2025-01-05T12:00:00Z");
    check_next("0 12 * * 5-0", NULL, "2025-01-04T13:00:00Z", "2025-01-05T12:00:00Z");
    check_next("0 12 * * mon-sun", NULL, "2025-01-04T13:00:00Z", "2025-01-05T12:00:00Z");
    check_next("0 0 1 jan,Jul *", NULL, "2025-02-01T00:00:00Z", "2025-07-01T00:00:00Z");
    check_next("0 0 1 jun-aug/2 *", NULL, "2025-07-02T00:00:00Z", "2025-08-01T00:00:00Z");
    check_next("5-10/2 * * * *", NULL, "2025-01-01T00:06:00Z", "2025-01-01T00:07:00Z");
    check_next("5-10/2 * * * *", NULL, "2025-01-01T00:09:00Z", "2025-01-01T01:05:00Z");
    check_next("1/20 * * * *", NULL, "2025-01-01T00:22:00Z", "2025-01-01T00:41:00Z");
    check_next("0 0,12 * * *", NULL, "2025-12-31T12:00:00Z", "2026-01-01T00:00:00Z");
    check_next("59 23 31 12 *", NULL, "2025-01-01T00:00:00Z", "2025-12-31T23:59:00Z");
    check_next("  0   *  * * *  ", NULL, "2025-01-01T00:30:00Z", "2025-01-01T01:00:00Z");
    check_next("0\t*\t*\t*\t*", NULL, "2025-01-01T00:30:00Z", "2025-01-01T01:00:00Z");
    /* fractions of a second: still strictly after */
    check_next("* * * * *", NULL, "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z");
    cs_schedule *s = sched("* * * * *", NULL);
    assert_true(cs_schedule_next(s, 0, T("2025-01-01T00:00:59Z") + 0.5) == T("2025-01-01T00:01:00Z"));
    assert_true(cs_schedule_next(s, 0, T("2025-01-01T00:01:00Z") - 0.25) == T("2025-01-01T00:01:00Z"));
    assert_true(cs_schedule_next(s, 0, -1) == 0);   /* not a time */
    assert_true(cs_schedule_next(s, 0, 1e300) == 0);
    assert_true(cs_schedule_next(NULL, 0, 1000) == 0);
    cs_schedule_free(s);
    cs_schedule_free(NULL);
}

static void test_cron_dom_dow_rule(void **state)
{
    (void)state;
    /* both restricted: either fires (Friday the 3rd, then Monday the 13th) */
    check_next("0 0 13 * fri", NULL, "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z");
    check_next("0 0 13 * fri", NULL, "2025-01-12T00:00:00Z", "2025-01-13T00:00:00Z");
    /* a field that begins with '*' makes both needed: days 1,11,21,31 that are Sundays */
    check_next("0 0 */10 * sun", NULL, "2025-01-01T00:00:00Z", "2025-05-11T00:00:00Z");
    check_next("0 0 13 * */7", NULL, "2025-01-01T00:00:00Z", "2025-04-13T00:00:00Z");
    /* Feb 29 on a Sunday: 2032, then 2060 */
    check_next("0 0 29 2 */7", NULL, "2025-01-01T00:00:00Z", "2032-02-29T00:00:00Z");
    check_next("0 0 29 2 */7", NULL, "2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z");
    /* and across 2100 (no Feb 29): 2088, then 2128 */
    check_next("0 0 29 2 */7", NULL, "2088-03-01T00:00:00Z", "2128-02-29T00:00:00Z");
}

static void test_macros(void **state)
{
    (void)state;
    check_next("@hourly", NULL, "2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z");
    check_next("@daily", NULL, "2025-01-01T10:00:00Z", "2025-01-02T00:00:00Z");
    check_next("@weekly", NULL, "2025-01-01T10:00:00Z", "2025-01-05T00:00:00Z");
    check_next("@monthly", NULL, "2025-01-01T10:00:00Z", "2025-02-01T00:00:00Z");
    check_next("@yearly", NULL, "2025-01-01T10:00:00Z", "2026-01-01T00:00:00Z");
    check_next(" @DAILY ", NULL, "2025-01-01T10:00:00Z", "2025-01-02T00:00:00Z");
    check_next("@daily", "Europe/Berlin", "2025-01-01T10:00:00Z", "2025-01-01T23:00:00Z");
}

/* ---- cron in zones ---- */

static void test_cron_berlin_spring_forward(void **state)
{
    (void)state;
    /* 2025-03-30: 02:00 CET -> 03:00 CEST at 01:00Z; 02:30 does not exist that day */
    check_next("30 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00Z", "2025-03-31T00:30:00Z");
    check_next("0 3 * * *", "Europe/Berlin", "2025-03-29T12:00:00Z", "2025-03-30T01:00:00Z");
    static const char *const hourly[] = { "2025-03-30T00:00:00Z", /* 01:00 CET */
                                          "2025-03-30T01:00:00Z", /* 03:00 CEST (02:00 skipped) */
                                          "2025-03-30T02:00:00Z", NULL };
    check_chain("0 * * * *", "Europe/Berlin", "2025-03-29T23:30:00Z", hourly);
    static const char *const gap[] = { "2025-03-30T00:59:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:01:00Z",
                                       NULL };
    check_chain("* * * * *", "Europe/Berlin", "2025-03-30T00:58:00Z", gap);
}

static void test_cron_berlin_fall_back(void **state)
{
    (void)state;
    /* 2025-10-26: 03:00 CEST -> 02:00 CET at 01:00Z; 02:xx is shown twice, fires once */
    static const char *const twice[] = { "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z", NULL };
    check_chain("30 2 * * *", "Europe/Berlin", "2025-10-25T12:00:00Z", twice);
    static const char *const halves[] = { "2025-10-26T00:00:00Z", /* 02:00 CEST */
                                          "2025-10-26T00:30:00Z", /* 02:30 CEST */
                                          "2025-10-26T02:00:00Z", /* 03:00 CET: 02:00/02:30 CET do not fire again */
                                          "2025-10-26T02:30:00Z", NULL };
    check_chain("*/30 * * * *", "Europe/Berlin", "2025-10-25T23:40:00Z", halves);
    /* asked during the second pass (02:10 CET) */
    check_next("0 2 * * *", "Europe/Berlin", "2025-10-26T01:10:00Z", "2025-10-27T01:00:00Z");
    check_next("15 * * * *", "Europe/Berlin", "2025-10-26T01:10:00Z", "2025-10-26T02:15:00Z");
}

static void test_cron_new_york(void **state)
{
    (void)state;
    /* 2025-03-09: 02:00 EST -> 03:00 EDT at 07:00Z; 2025-11-02: 02:00 EDT -> 01:00 EST at 06:00Z */
    check_next("30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", "2025-03-10T06:30:00Z");
    check_next("0 9 * * *", "America/New_York", "2025-03-08T15:00:00Z", "2025-03-09T13:00:00Z");
    static const char *const fall[] = { "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z", NULL };
    check_chain("30 1 * * *", "America/New_York", "2025-11-01T12:00:00Z", fall);
    check_next("0 0 * * mon", "America/New_York", "2025-01-01T00:00:00Z", "2025-01-06T05:00:00Z");
    check_next("0 0 * * mon", "America/New_York", "2025-07-01T00:00:00Z", "2025-07-07T04:00:00Z");
}

/* ---- brute force cross-check in zones ---- */

/* Does a minute-aligned instant u fire? Its local time matches, and the
 * clock did not show that minute in the three hours before (the second
 * pass of a repeated hour or half hour). */
typedef bool (*cron_match)(const struct tm *tm);

static bool same_minute(const struct tm *a, const struct tm *b)
{
    return a->tm_min == b->tm_min && a->tm_hour == b->tm_hour && a->tm_mday == b->tm_mday &&
           a->tm_mon == b->tm_mon && a->tm_year == b->tm_year;
}

static bool fires_at(cron_match match, time_t u)
{
    struct tm now, before;
    localtime_r(&u, &now);
    if (now.tm_sec || !match(&now))
        return false;
    for (time_t b = u - 60; b >= u - 3 * 3600; b -= 60) {
        localtime_r(&b, &before);
        if (same_minute(&before, &now))
            return false;
    }
    return true;
}

static bool m_every7(const struct tm *tm) { return tm->tm_min % 7 == 0; }
static bool m_early(const struct tm *tm)
{
    return (tm->tm_min == 0 || tm->tm_min == 30) && tm->tm_hour >= 1 && tm->tm_hour <= 3;
}
static bool m_215(const struct tm *tm) { return tm->tm_min == 15 && tm->tm_hour == 2; }
static bool m_hour2(const struct tm *tm) { return tm->tm_hour == 2; }
static bool m_sunday(const struct tm *tm) { return tm->tm_wday == 0 && tm->tm_min == 45; }

static void brute_zone(const char *tz, const char *around)
{
    static const struct {
        const char *text;
        cron_match match;
    } cases[] = {
        { "*/7 * * * *", m_every7 }, { "0,30 1-3 * * *", m_early }, { "15 2 * * *", m_215 },
        { "* 2 * * *", m_hour2 },    { "45 * * * 0", m_sunday },
    };
    setenv("TZ", tz, 1);
    tzset();
    double center = T(around);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cs_schedule *s = sched(cases[c].text, tz);
        for (double t = center - 6 * HOUR; t < center + 6 * HOUR; t += 7 * MIN + 13) {
            /* next: the first firing minute after t */
            time_t u = ((time_t)t / 60 + 1) * 60;
            while (!fires_at(cases[c].match, u))
                u += 60;
            double got = cs_schedule_next(s, 0, t);
            char b1[32], b2[32], b3[32];
            if (got != (double)u)
                fail_msg("%s \"%s\" next after %s: got %s, brute force %s", tz, cases[c].text, iso(t, b3),
                         iso(got, b1), iso((double)u, b2));
            /* due with a last slot long ago: the last firing minute <= t */
            time_t p = ((time_t)t / 60) * 60;
            while (!fires_at(cases[c].match, p))
                p -= 60;
            double due = cs_schedule_due(s, center - 30 * DAY, center - 20 * DAY, t);
            if (due != (double)p)
                fail_msg("%s \"%s\" due at %s: got %s, brute force %s", tz, cases[c].text, iso(t, b3),
                         iso(due, b1), iso((double)p, b2));
        }
        cs_schedule_free(s);
    }
    unsetenv("TZ");
    tzset();
}

static bool m_midnight(const struct tm *tm) { return tm->tm_min == 0 && tm->tm_hour == 0; }
static bool m_late(const struct tm *tm) { return tm->tm_min % 10 == 5 && tm->tm_hour == 23; }

/* Zones whose changes are at midnight (Santiago) or half an hour (Lord Howe). */
static void brute_zone_odd(const char *tz, const char *around)
{
    static const struct {
        const char *text;
        cron_match match;
    } cases[] = { { "0 0 * * *", m_midnight }, { "5-55/10 23 * * *", m_late }, { "* 2 * * *", m_hour2 },
                  { "*/7 * * * *", m_every7 } };
    setenv("TZ", tz, 1);
    tzset();
    double center = T(around);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cs_schedule *s = sched(cases[c].text, tz);
        for (double t = center - 4 * HOUR; t < center + 4 * HOUR; t += 11 * MIN + 7) {
            time_t u = ((time_t)t / 60 + 1) * 60;
            while (!fires_at(cases[c].match, u))
                u += 60;
            char b1[32], b2[32], b3[32];
            double got = cs_schedule_next(s, 0, t);
            if (got != (double)u)
                fail_msg("%s \"%s\" next after %s: got %s, brute force %s", tz, cases[c].text, iso(t, b3),
                         iso(got, b1), iso((double)u, b2));
            time_t p = ((time_t)t / 60) * 60;
            while (!fires_at(cases[c].match, p))
                p -= 60;
            double due = cs_schedule_due(s, center - 30 * DAY, center - 20 * DAY, t);
            if (due != (double)p)
                fail_msg("%s \"%s\" due at %s: got %s, brute force %s", tz, cases[c].text, iso(t, b3),
                         iso(due, b1), iso((double)p, b2));
        }
        cs_schedule_free(s);
    }
    unsetenv("TZ");
    tzset();
}

static void test_brute_force_zones(void **state)
{
    (void)state;
    brute_zone("Europe/Berlin", "2025-03-30T01:00:00Z");
    brute_zone("Europe/Berlin", "2025-10-26T01:00:00Z");
    brute_zone("America/New_York", "2025-03-09T07:00:00Z");
    brute_zone("America/New_York", "2025-11-02T06:00:00Z");
    brute_zone("Europe/Berlin", "2025-07-01T00:00:00Z");
    brute_zone("Australia/Lord_Howe", "2025-04-05T15:00:00Z");
    brute_zone("Australia/Lord_Howe", "2025-10-04T15:30:00Z");
    brute_zone_odd("America/Santiago", "2025-04-06T03:00:00Z");
    brute_zone_odd("America/Santiago", "2025-09-07T04:00:00Z");
    brute_zone_odd("Australia/Lord_Howe", "2025-04-05T15:00:00Z");
}

/* A daily span "HH:MM-HH:MM" by the local clock, read through glibc. */
static bool brute_open(int from, int to, time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    int m = tm.tm_hour * 60 + tm.tm_min;
    return from < to ? m >= from && m < to : m >= from || m < to;
}

static void brute_window(const char *tz, const char *around, const char *text, int from, int to)
{
    const char *spans[] = { text };
    cs_window *w = NULL;
    cs_err e;
    assert_int_equal(cs_window_parse(spans, 1, tz, &w, &e), 0);
    setenv("TZ", tz, 1);
    tzset();
    double center = T(around);
    char b1[32], b2[32], b3[32];
    for (double t = center - 5 * HOUR; t < center + 5 * HOUR; t += 6 * MIN + 11) {
        time_t tt = (time_t)t;
        bool open = brute_open(from, to, tt);
        if (cs_window_open(w, t) != open)
            fail_msg("%s %s at %s: open %d", tz, text, iso(t, b1), !open);
        time_t u = (tt / 60 + 1) * 60; /* the first minute at which it is the other way */
        while (brute_open(from, to, u) == open)
            u += 60;
        double got = open ? cs_window_end(w, t) : cs_window_next_open(w, t);
        if (got != (double)u)
            fail_msg("%s %s at %s: %s %s, brute force %s", tz, text, iso(t, b3), open ? "end" : "next open",
                     iso(got, b1), iso((double)u, b2));
    }
    unsetenv("TZ");
    tzset();
    cs_window_free(w);
}

static void test_brute_force_windows(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int from, to;
    } spans[] = { { "01:30-02:30", 90, 150 }, { "02:10-02:20", 130, 140 }, { "23:30-00:30", 1410, 30 },
                  { "02:45-03:30", 165, 210 },  { "00:00-01:00", 0, 60 } };
    static const struct {
        const char *tz, *at;
    } changes[] = { { "Europe/Berlin", "2025-03-30T01:00:00Z" },     { "Europe/Berlin", "2025-10-26T01:00:00Z" },
                    { "America/New_York", "2025-03-09T07:00:00Z" }, { "America/New_York", "2025-11-02T06:00:00Z" },
                    { "America/Santiago", "2025-04-06T03:00:00Z" }, { "America/Santiago", "2025-09-07T04:00:00Z" },
                    { "Australia/Lord_Howe", "2025-04-05T15:00:00Z" },
                    { "Australia/Lord_Howe", "2025-10-04T15:30:00Z" } };
    for (size_t z = 0; z < sizeof changes / sizeof changes[0]; z++)
        for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++)
            brute_window(changes[z].tz, changes[z].at, spans[i].text, spans[i].from, spans[i].to);
}

/* The zone switch leaves TZ as it found it. */
static void test_tz_restored(void **state)
{
    (void)state;
    cs_schedule *s = sched("0 * * * *", "America/New_York");
    unsetenv("TZ");
    assert_true(cs_schedule_next(s, 0, T("2025-01-01T00:00:00Z")) > 0);
    assert_null(getenv("TZ"));
    setenv("TZ", "Asia/Tokyo", 1);
    assert_true(cs_schedule_due(s, 0, 0, T("2025-01-01T00:00:00Z")) > 0);
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    tzset();
    time_t t = 0;
    struct tm tm;
    localtime_r(&t, &tm);
    assert_int_equal(tm.tm_gmtoff, 9 * 3600);
    unsetenv("TZ");
    tzset();
    cs_schedule_free(s);
}

/* ---- @every ---- */

static void test_every(void **state)
{
    (void)state;
    cs_schedule *s = sched("@every 20s", NULL);
    double a = 1000;
    assert_true(cs_schedule_next(s, a, a) == 1020);
    assert_true(cs_schedule_next(s, a, 1019.9) == 1020);
    assert_true(cs_schedule_next(s, a, 1020) == 1040);
    assert_true(cs_schedule_next(s, a, 500) == 1020); /* before the anchor: its first slot */
    assert_true(cs_schedule_next(s, 1000.5, 1020.5) == 1040.5);
    assert_true(cs_schedule_next(s, 1000.5, 1020.4) == 1020.5);
    cs_schedule_free(s);

    s = sched("@every 1h30m", "Europe/Berlin"); /* the zone does not matter */
    double t0 = T("2025-03-30T00:10:00Z");
    assert_true(cs_schedule_next(s, t0, t0 + 2 * HOUR) == t0 + 3 * HOUR);
    assert_true(cs_schedule_next(s, t0, t0 + 3 * HOUR) == t0 + 4.5 * HOUR);
    cs_schedule_free(s);

    s = sched("@every 2d", NULL);
    assert_true(cs_schedule_next(s, t0, t0 + 1) == t0 + 2 * DAY);
    cs_schedule_free(s);
    s = sched("@EVERY   1s", NULL);
    assert_true(cs_schedule_next(s, t0, t0 + 1) == t0 + 2);
    cs_schedule_free(s);

    /* exact slots far from the anchor are found however the division rounds */
    s = sched("@every 7s", NULL);
    double an = 1700000000.3;
    for (int k = 1; k < 2000; k += 37) {
        double slot = an + k * 7.0;
        assert_true(cs_schedule_next(s, an, slot) == an + (k + 1) * 7.0);
        assert_true(cs_schedule_due(s, an, 0, slot) == slot);
    }
    cs_schedule_free(s);
}

/* ---- the misfire policy ---- */

static void test_due_every(void **state)
{
    (void)state;
    cs_schedule *s = sched("@every 20s", NULL);
    double a = 1000;
    assert_true(cs_schedule_due(s, a, 0, 1010) == 0);
    assert_true(cs_schedule_due(s, a, 0, 1000) == 0);
    assert_true(cs_schedule_due(s, a, 0, 1020) == 1020);
    assert_true(cs_schedule_due(s, a, 1020, 1039) == 0);
    assert_true(cs_schedule_due(s, a, 1020, 1040) == 1040);
    /* a long gap: one run, the newest slot */
    assert_true(cs_schedule_due(s, a, 1040, 1000005) == 1000000);
    assert_true(cs_schedule_due(s, a, 1000000, 1000019) == 0);
    assert_true(cs_schedule_due(s, a, 1000000, 1000020) == 1000020);
    /* a last slot before the anchor (the task was re-created) does not count */
    assert_true(cs_schedule_due(s, a, 500, 1010) == 0);
    assert_true(cs_schedule_due(NULL, a, 0, 1020) == 0);
    cs_schedule_free(s);
}

static void test_due_cron(void **state)
{
    (void)state;
    cs_schedule *s = sched("*/5 * * * *", NULL);
    double t0 = T("2025-01-01T00:00:30Z"); /* the task's creation */
    assert_true(cs_schedule_due(s, t0, 0, t0 + 15) == 0);
    assert_true(cs_schedule_due(s, t0, 0, T("2025-01-01T00:04:59Z")) == 0);
    assert_true(cs_schedule_due(s, t0, 0, T("2025-01-01T00:05:00Z")) == T("2025-01-01T00:05:00Z"));
    assert_true(cs_schedule_due(s, t0, T("2025-01-01T00:05:00Z"), T("2025-01-01T00:09:00Z")) == 0);
    /* the server was down ten days: one run, for the newest slot */
    double last = T("2025-01-01T00:05:00Z");
    double now = T("2025-01-11T00:07:00Z");
    double due = cs_schedule_due(s, t0, last, now);
    assert_true(due == T("2025-01-11T00:05:00Z"));
    assert_true(cs_schedule_due(s, t0, due, now + 60) == 0);
    assert_true(cs_schedule_due(s, t0, due, T("2025-01-11T00:10:00Z")) == T("2025-01-11T00:10:00Z"));
    cs_schedule_free(s);

    s = sched("0 0 29 2 *", NULL);
    assert_true(cs_schedule_due(s, 0, T("2024-02-29T00:00:00Z"), T("2031-06-01T00:00:00Z")) ==
                T("2028-02-29T00:00:00Z"));
    assert_true(cs_schedule_due(s, 0, T("2028-02-29T00:00:00Z"), T("2031-06-01T00:00:00Z")) == 0);
    cs_schedule_free(s);
}

static void test_due_fall_back_fires_once(void **state)
{
    (void)state;
    cs_schedule *s = sched("0 * * * *", "Europe/Berlin");
    double a = T("2025-10-01T00:00:00Z");
    double first = cs_schedule_due(s, a, T("2025-10-25T23:00:00Z"), T("2025-10-26T00:00:10Z"));
    assert_true(first == T("2025-10-26T00:00:00Z")); /* 02:00 CEST */
    /* 02:00 CET (01:00Z) is the same local time again: not due */
    assert_true(cs_schedule_due(s, a, first, T("2025-10-26T01:00:10Z")) == 0);
    assert_true(cs_schedule_due(s, a, first, T("2025-10-26T01:59:59Z")) == 0);
    assert_true(cs_schedule_due(s, a, first, T("2025-10-26T02:00:00Z")) == T("2025-10-26T02:00:00Z"));
    cs_schedule_free(s);
}

/* ---- schedules refused ---- */

static void test_never_fires(void **state)
{
    (void)state;
    check_bad_schedule("0 0 30 2 *", NULL, "schedule", "never fires");
    check_bad_schedule("0 0 31 4 *", NULL, "schedule", "0 0 31 4 *");
    check_bad_schedule("0 0 31 2,4,6,9,11 *", NULL, "schedule", "never fires");
    check_bad_schedule("0 0 30,31 feb *", "Europe/Berlin", "schedule", "never fires");
    /* Berlin's clock skips 02:00-03:00 on the last Sunday of March */
    check_bad_schedule("30 2 25-31 3 */7", "Europe/Berlin", "schedule", "Europe/Berlin");
    cs_schedule *s = sched("30 2 25-31 3 */7", "UTC");
    cs_schedule_free(s);
    s = sched("0 0 29 2 *", "Europe/Berlin");
    cs_schedule_free(s);
    s = sched("0 0 31 * *", NULL);
    cs_schedule_free(s);
}

static void test_bad_schedules(void **state)
{
    (void)state;
    check_bad_schedule("", NULL, "schedule", "empty");
    check_bad_schedule("   ", NULL, "schedule", "empty");
    check_bad_schedule(NULL, NULL, "schedule", "empty");
    check_bad_schedule("* * * *", NULL, "schedule", "4 fields");
    check_bad_schedule("* * * * * *", NULL, "schedule", "6 fields");
    check_bad_schedule("60 * * * *", NULL, "schedule", "minute field \"60\": 60 is out of range 0-59");
    check_bad_schedule("* 24 * * *", NULL, "schedule", "hour field");
    check_bad_schedule("* * 0 * *", NULL, "schedule", "day-of-month field \"0\"");
    check_bad_schedule("* * 32 * *", NULL, "schedule", "day-of-month");
    check_bad_schedule("* * * 13 *", NULL, "schedule", "month field");
    check_bad_schedule("* * * * 8", NULL, "schedule", "day-of-week field");
    check_bad_schedule("*/0 * * * *", NULL, "schedule", "step 0");
    check_bad_schedule("*/ * * * *", NULL, "schedule", "step");
    check_bad_schedule("5-1 * * * *", NULL, "schedule", "backwards");
    check_bad_schedule("* * * * fri-mon", NULL, "schedule", "backwards");
    check_bad_schedule("1,,2 * * * *", NULL, "schedule", "empty list item");
    check_bad_schedule("1, * * * *", NULL, "schedule", "empty list item");
    check_bad_schedule("abc * * * *", NULL, "schedule", "unknown name \"abc\"");
    check_bad_schedule("* * * foo *", NULL, "schedule", "unknown name \"foo\"");
    check_bad_schedule("* * * * monday", NULL, "schedule", "monday");
    check_bad_schedule("* * * jan-mon *", NULL, "schedule", "mon");
    check_bad_schedule("1-2-3 * * * *", NULL, "schedule", "unexpected");
    check_bad_schedule("*5 * * * *", NULL, "schedule", "unexpected");
    check_bad_schedule("-1 * * * *", NULL, "schedule", "expected a number");
    check_bad_schedule("99999999999999999999 * * * *", NULL, "schedule", "out of range");
    check_bad_schedule("@every", NULL, "schedule", "@every needs a duration");
    check_bad_schedule("@every 0s", NULL, "schedule", "at least 1s");
    check_bad_schedule("@every 0", NULL, "schedule", "at least 1s");
    check_bad_schedule("@every 5x", NULL, "schedule", "5x");
    check_bad_schedule("@every -1s", NULL, "schedule", "-1s");
    check_bad_schedule("@every 1h 30m", NULL, "schedule", "1h 30m");
    check_bad_schedule("@fortnightly", NULL, "schedule", "@fortnightly");
    check_bad_schedule("@daily 5", NULL, "schedule", "nothing may follow");
    check_bad_schedule("0 0 * * *\n0 1 * * *", NULL, "schedule", "?");
    /* zones */
    check_bad_schedule("@daily", "Mars/Olympus_Mons", "timezone", "Mars/Olympus_Mons");
    check_bad_schedule("@daily", "../../../etc/passwd", "timezone", "not an IANA zone name");
    check_bad_schedule("@daily", "/etc/localtime", "timezone", "not an IANA zone name");
    check_bad_schedule("@daily", "Europe", "timezone", "unknown");       /* a directory */
    check_bad_schedule("@daily", "zone.tab", "timezone", "zone.tab");    /* a file, no zone */
    check_bad_schedule("@daily", "Europe/Berlin ", "timezone", "Berlin"); /* a blank */
    check_bad_schedule("@every 1h", "Nowhere/City", "timezone", "Nowhere/City");
    check_bad_schedule("@daily", "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                       "timezone", "too long");
}

/* ---- windows ---- */

static cs_window *win(const char *tz, const char *const *spans, size_t n)
{
    cs_window *w = NULL;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_window_parse(spans, n, tz, &w, &e);
    if (rc)
        fail_msg("window %s...: %s", n ? spans[0] : "(none)", e.msg);
    return w;
}

static void check_window(const cs_window *w, const char *at, bool open, const char *end, const char *next_open)
{
    double t = T(at);
    char b1[32];
    if (cs_window_open(w, t) != open)
        fail_msg("at %s: open %d, want %d", at, !open, open);
    double e = cs_window_end(w, t);
    if (e != (end ? T(end) : t))
        fail_msg("at %s: end %s, want %s", at, iso(e, b1), end ? end : at);
    double n = cs_window_next_open(w, t);
    if (n != (next_open ? T(next_open) : t))
        fail_msg("at %s: next open %s, want %s", at, iso(n, b1), next_open ? next_open : at);
}

static void test_window_weekly(void **state)
{
    (void)state;
    static const char *const spans[] = { "mon-01:00-mon-05:00" };
    cs_window *w = win(NULL, spans, 1);
    /* 2025-01-06 is a Monday */
    check_window(w, "2025-01-06T03:00:00Z", true, "2025-01-06T05:00:00Z", NULL);
    check_window(w, "2025-01-06T01:00:00Z", true, "2025-01-06T05:00:00Z", NULL);
    check_window(w, "2025-01-06T04:59:59Z", true, "2025-01-06T05:00:00Z", NULL);
    check_window(w, "2025-01-06T05:00:00Z", false, NULL, "2025-01-13T01:00:00Z");
    check_window(w, "2025-01-06T00:59:59Z", false, NULL, "2025-01-06T01:00:00Z");
    check_window(w, "2025-01-09T12:00:00Z", false, NULL, "2025-01-13T01:00:00Z");
    cs_window_free(w);
}

static void test_window_daily_across_midnight(void **state)
{
    (void)state;
    static const char *const spans[] = { "22:00-02:00" };
    cs_window *w = win("UTC", spans, 1);
    check_window(w, "2025-01-07T23:00:00Z", true, "2025-01-08T02:00:00Z", NULL);
    check_window(w, "2025-01-08T01:59:59Z", true, "2025-01-08T02:00:00Z", NULL);
    check_window(w, "2025-01-08T02:00:00Z", false, NULL, "2025-01-08T22:00:00Z");
    check_window(w, "2025-01-08T21:00:00Z", false, NULL, "2025-01-08T22:00:00Z");
    /* Sunday night into Monday: across the week's end too */
    check_window(w, "2025-01-12T23:30:00Z", true, "2025-01-13T02:00:00Z", NULL);
    check_window(w, "2025-01-13T00:30:00Z", true, "2025-01-13T02:00:00Z", NULL);
    cs_window_free(w);
}

static void test_window_across_week(void **state)
{
    (void)state;
    static const char *const spans[] = { "sat-00:00-mon-00:00", "sun-23:00:00-mon-00:00:00" };
    cs_err e;
    cs_window *w = NULL;
    /* those two overlap */
    assert_int_equal(cs_window_parse(spans, 2, NULL, &w, &e), CS_E_INVAL);
    assert_null(w);
    w = win(NULL, spans, 1);
    check_window(w, "2025-01-12T12:00:00Z", true, "2025-01-13T00:00:00Z", NULL);
    check_window(w, "2025-01-11T00:00:00Z", true, "2025-01-13T00:00:00Z", NULL);
    check_window(w, "2025-01-13T00:00:00Z", false, NULL, "2025-01-18T00:00:00Z");
    cs_window_free(w);

    static const char *const wrap[] = { "SUN-22:00-Mon-02:00" };
    w = win(NULL, wrap, 1);
    check_window(w, "2025-01-12T23:00:00Z", true, "2025-01-13T02:00:00Z", NULL);
    check_window(w, "2025-01-13T01:00:00Z", true, "2025-01-13T02:00:00Z", NULL);
    check_window(w, "2025-01-13T03:00:00Z", false, NULL, "2025-01-19T22:00:00Z");
    cs_window_free(w);

    /* a start weekday alone: the end is that day, or the next */
    static const char *const fri[] = { "fri-22:00-02:00", "tue-08:00-17:00" };
    w = win(NULL, fri, 2);
    check_window(w, "2025-01-11T01:00:00Z", true, "2025-01-11T02:00:00Z", NULL); /* Saturday */
    check_window(w, "2025-01-10T21:00:00Z", false, NULL, "2025-01-10T22:00:00Z");
    check_window(w, "2025-01-11T22:30:00Z", false, NULL, "2025-01-14T08:00:00Z");
    check_window(w, "2025-01-14T16:00:00Z", true, "2025-01-14T17:00:00Z", NULL);
    cs_window_free(w);
}

static void test_window_adjacent_and_full(void **state)
{
    (void)state;
    static const char *const adj[] = { "mon-06:00-mon-08:00", "mon-00:00-mon-06:00" };
    cs_window *w = win(NULL, adj, 2);
    check_window(w, "2025-01-06T01:00:00Z", true, "2025-01-06T08:00:00Z", NULL);
    cs_window_free(w);

    static const char *const full[] = { "00:00-12:00", "12:00-00:00" };
    w = win(NULL, full, 2);
    assert_true(cs_window_open(w, T("2025-01-06T01:00:00Z")));
    assert_true(cs_window_end(w, T("2025-01-06T01:00:00Z")) == 0); /* never closes */
    assert_true(cs_window_next_open(w, T("2025-01-06T01:00:00Z")) == T("2025-01-06T01:00:00Z"));
    cs_window_free(w);

    /* seconds: a window of a few seconds */
    static const char *const secs[] = { "10:00:00-10:00:05" };
    w = win(NULL, secs, 1);
    check_window(w, "2025-01-06T10:00:03Z", true, "2025-01-06T10:00:05Z", NULL);
    check_window(w, "2025-01-06T10:00:05Z", false, NULL, "2025-01-07T10:00:00Z");
    cs_window_free(w);
}

static void test_window_none(void **state)
{
    (void)state;
    double t = T("2025-01-06T01:00:00Z");
    assert_true(cs_window_open(NULL, t));
    assert_true(cs_window_end(NULL, t) == 0);
    assert_true(cs_window_next_open(NULL, t) == 0);
    cs_window *w = win("Europe/Berlin", NULL, 0);
    assert_non_null(w);
    assert_true(cs_window_open(w, t));
    assert_true(cs_window_end(w, t) == 0);
    assert_true(cs_window_next_open(w, t) == 0);
    cs_window_free(w);
    cs_window_free(NULL);
}

static void test_window_zone(void **state)
{
    (void)state;
    static const char *const night[] = { "01:00-03:00" };
    cs_window *w = win("Europe/Berlin", night, 1);
    check_window(w, "2025-01-06T00:30:00Z", true, "2025-01-06T02:00:00Z", NULL);
    check_window(w, "2025-07-06T00:30:00Z", true, "2025-07-06T01:00:00Z", NULL);
    /* spring forward: the clock reaches 03:00 (CEST) at 01:00Z */
    check_window(w, "2025-03-30T00:30:00Z", true, "2025-03-30T01:00:00Z", NULL);
    cs_window_free(w);

    /* a span inside the skipped hour does not open that day */
    static const char *const skipped[] = { "02:15-02:45" };
    w = win("Europe/Berlin", skipped, 1);
    check_window(w, "2025-03-30T00:00:00Z", false, NULL, "2025-03-31T00:15:00Z");
    cs_window_free(w);

    /* fall back: 02:00-02:30 is on the clock twice, so open twice */
    static const char *const twice[] = { "02:00-02:30" };
    w = win("Europe/Berlin", twice, 1);
    check_window(w, "2025-10-25T23:50:00Z", false, NULL, "2025-10-26T00:00:00Z");
    check_window(w, "2025-10-26T00:10:00Z", true, "2025-10-26T00:30:00Z", NULL);
    check_window(w, "2025-10-26T00:40:00Z", false, NULL, "2025-10-26T01:00:00Z");
    check_window(w, "2025-10-26T01:10:00Z", true, "2025-10-26T01:30:00Z", NULL);
    cs_window_free(w);

    /* the clock set back out of a span closes it, and opens it again later */
    static const char *const back[] = { "02:45-03:30" };
    w = win("Europe/Berlin", back, 1);
    check_window(w, "2025-10-26T00:50:00Z", true, "2025-10-26T01:00:00Z", NULL);
    check_window(w, "2025-10-26T01:00:00Z", false, NULL, "2025-10-26T01:45:00Z");
    check_window(w, "2025-10-26T01:50:00Z", true, "2025-10-26T02:30:00Z", NULL);
    cs_window_free(w);

    static const char *const ny[] = { "sat-23:00-sun-03:00" };
    w = win("America/New_York", ny, 1);
    check_window(w, "2025-01-12T05:00:00Z", true, "2025-01-12T08:00:00Z", NULL);
    check_window(w, "2025-01-12T08:00:00Z", false, NULL, "2025-01-19T04:00:00Z");
    cs_window_free(w);
}

static void check_bad_window(const char *const *spans, size_t n, const char *tz, const char *field,
                             const char *needle)
{
    cs_window *w = (cs_window *)1;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_window_parse(spans, n, tz, &w, &e);
    if (rc != CS_E_INVAL)
        fail_msg("window %s: rc %d, want CS_E_INVAL", n ? spans[0] : "", rc);
    assert_null(w);
    assert_string_equal(e.field, field);
    assert_null(strchr(e.msg, '\n'));
    if (!strstr(e.msg, needle))
        fail_msg("window %s: message \"%s\" does not name \"%s\"", n ? spans[0] : "", e.msg, needle);
}

static void test_window_overlaps(void **state)
{
    (void)state;
    static const char *const a[] = { "mon-01:00-mon-05:00", "04:00-06:00" };
    check_bad_window(a, 2, NULL, "window", "\"mon-01:00-mon-05:00\" and \"04:00-06:00\" overlap");
    static const char *const b[] = { "22:00-02:00", "tue-08:00-17:00", "sun-01:00-sun-03:00" };
    check_bad_window(b, 3, NULL, "window", "sun-01:00-sun-03:00");
    static const char *const c[] = { "sun-23:00-mon-01:00", "mon-00:30-mon-02:00" };
    check_bad_window(c, 2, NULL, "window", "overlap");
    static const char *const d[] = { "10:00-11:00", "10:00-11:00" };
    check_bad_window(d, 2, NULL, "window", "overlap");
    static const char *const e[] = { "fri-12:00-mon-12:00", "wed-00:00-tue-00:00" };
    check_bad_window(e, 2, NULL, "window", "overlap");
    /* touching is fine */
    static const char *const ok[] = { "mon-01:00-mon-05:00", "mon-05:00-mon-06:00", "05:00-06:00" };
    cs_err err;
    cs_window *w = NULL;
    assert_int_equal(cs_window_parse(ok, 2, NULL, &w, &err), 0);
    cs_window_free(w);
    check_bad_window(ok, 3, NULL, "window", "overlap");
}

static void test_window_bad(void **state)
{
    (void)state;
    static const struct {
        const char *span, *needle;
    } bad[] = {
        { "25:00-26:00", "not [WEEKDAY-]HH:MM" },
        { "10:60-11:00", "10:60-11:00" },
        { "mon-01:00", "not [WEEKDAY-]" },
        { "xyz-01:00-02:00", "unknown weekday \"xyz\"" },
        { "mon-01:00-xyz-02:00", "unknown weekday \"xyz\"" },
        { "monday-01:00-02:00", "monday" },
        { "01:00-01:00", "empty" },
        { "mon-01:00-mon-01:00", "empty" },
        { "mon-01:00-01:00", "empty" },
        { "01:00-mon-02:00", "a weekday at the end needs one at the start" },
        { "1:0-2:00", "1:0-2:00" },
        { "01:00:5-02:00", "not [WEEKDAY-]" },
        { "001:00-02:00", "not [WEEKDAY-]" },
        { "", "not [WEEKDAY-]" },
        { "-", "not [WEEKDAY-]" },
        { "mon-01:00-tue-02:00-x", "not [WEEKDAY-]" },
        { "01:00 - 02:00", "not [WEEKDAY-]" },
        { "01:00-02:00\n", "not [WEEKDAY-]" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *spans[] = { "03:00-04:00", bad[i].span };
        check_bad_window(spans, 2, NULL, "window", bad[i].needle);
    }
    const char *null_span[] = { NULL };
    check_bad_window(null_span, 1, NULL, "window", "not [WEEKDAY-]");
    static const char *const good[] = { "01:00-02:00" };
    check_bad_window(good, 1, "Nowhere/City", "timezone", "Nowhere/City");
    const char *many[101];
    for (size_t i = 0; i < 101; i++)
        many[i] = "01:00-02:00";
    check_bad_window(many, 101, NULL, "window", "too many");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_utc),
        cmocka_unit_test(test_cron_dom_dow_rule),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_cron_berlin_spring_forward),
        cmocka_unit_test(test_cron_berlin_fall_back),
        cmocka_unit_test(test_cron_new_york),
        cmocka_unit_test(test_brute_force_zones),
        cmocka_unit_test(test_brute_force_windows),
        cmocka_unit_test(test_tz_restored),
        cmocka_unit_test(test_every),
        cmocka_unit_test(test_due_every),
        cmocka_unit_test(test_due_cron),
        cmocka_unit_test(test_due_fall_back_fires_once),
        cmocka_unit_test(test_never_fires),
        cmocka_unit_test(test_bad_schedules),
        cmocka_unit_test(test_window_weekly),
        cmocka_unit_test(test_window_daily_across_midnight),
        cmocka_unit_test(test_window_across_week),
        cmocka_unit_test(test_window_adjacent_and_full),
        cmocka_unit_test(test_window_none),
        cmocka_unit_test(test_window_zone),
        cmocka_unit_test(test_window_overlaps),
        cmocka_unit_test(test_window_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

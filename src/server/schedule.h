/* schedule.h - when a task runs: schedules, windows, the misfire policy.
 *
 * Owns: the text forms an operator writes and the arithmetic on them, all
 * pure (no clock is read here: callers pass "now"):
 *   - a schedule: a 5-field cron expression ("m h dom mon dow": numbers,
 *     "*", lists "1,5", ranges "1-5", steps "* /15" and "10-40/10", month and
 *     weekday names "jan", "mon"; dow 0 and 7 are Sunday, "fri-sun" too;
 *     when both dom and dow are restricted, either matching fires, as cron
 *     does; a field that starts with "*" is not restricted), or
 *     "@every DURATION" ("20s", "1h", "1h30m", "2d"; at least 1 s), or
 *     "@hourly", "@daily", "@weekly", "@monthly", "@yearly"; cron runs in a
 *     time zone (an IANA name such as "Europe/Berlin"; default "UTC"): a
 *     local time the clock skips (spring forward) does not fire, one it
 *     shows twice (fall back) fires once, the first time;
 *   - a window: where a task may run, a list of "[WEEKDAY-]HH:MM-[WEEKDAY-]HH:MM"
 *     spans in the same zone ("mon-01:00-mon-05:00", "22:00-02:00": every
 *     day, across midnight; "sat-00:00-mon-00:00"; "fri-22:00-02:00": the
 *     end on the start's day or the next; times may be HH:MM:SS; weekdays
 *     mon..sun); no list: always open;
 *   - the misfire policy: slots missed while no server ran fire once, not
 *     once per slot.
 * Bad text is one error naming the part that is wrong; a cron expression
 * that can never fire ("0 0 30 2 *") is refused at parse time, and so are
 * windows that overlap or are empty.
 * Must not: read the clock or sleep. Zones are glibc's (TZ set and
 * tzset() under this module's own lock, restored after): nothing else in
 * cassette reads local time (it uses UTC only: gmtime_r, timegm), so no
 * other thread can see the switch. */
#ifndef CS_SERVER_SCHEDULE_H
#define CS_SERVER_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef struct cs_schedule cs_schedule;
typedef struct cs_window cs_window;

/* Parse text in time zone tz (NULL or "": UTC). CS_E_INVAL with field
 * "schedule" (or "timezone") and a message naming the bad part. */
int cs_schedule_parse(const char *text, const char *tz, cs_schedule **out, cs_err *e);
void cs_schedule_free(cs_schedule *s);
/* The first time the schedule fires strictly after t (seconds since the
 * epoch, whole seconds), or 0 when it never does again (a bug for parsed
 * schedules: parse refuses those) or t is not a time in 1970..9999.
 * @every counts from anchor (the task's creation: its slots are
 * anchor + k*interval, k >= 1). */
double cs_schedule_next(const cs_schedule *s, double anchor, double t);
/* The misfire policy: the slot to run at `now`, given the last slot that
 * ran (0: none yet, then the first slot after anchor counts). Returns the
 * newest slot in (max(last, anchor), now], or 0 when none is due. Whatever
 * the number of slots missed, one run: the caller records the returned
 * slot as the new `last`. */
double cs_schedule_due(const cs_schedule *s, double anchor, double last, double now);

/* Parse a list of window spans (n may be 0: always open). CS_E_INVAL,
 * field "window", naming the span. */
int cs_window_parse(const char *const *spans, size_t n, const char *tz, cs_window **out, cs_err *e);
void cs_window_free(cs_window *w); /* NULL is fine */
/* Is t inside the window? (NULL window: always.) */
bool cs_window_open(const cs_window *w, double t);
/* When the window that contains t ends (t itself when closed at t; 0: NULL
 * window, or spans that cover the whole week: never), and when the next
 * one opens after t (t itself when open now; 0: NULL window). Adjacent
 * spans ("mon-00:00-mon-06:00", "mon-06:00-mon-08:00") make one opening. */
double cs_window_end(const cs_window *w, double t);
double cs_window_next_open(const cs_window *w, double t);

#endif

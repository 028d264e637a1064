/* fuzz_schedule.c - libFuzzer target for schedules and windows.
 *
 * A task's schedule, time zone and window spans come from the REST API, so
 * cs_schedule_parse and cs_window_parse must refuse anything bad in one
 * line (with the field named) and what they accept must keep the header's
 * promises, quickly. The input is lines: the schedule text, the zone name,
 * then up to 12 window spans. For a few instants (around daylight saving
 * changes, the ends of the range, and some taken from the input) it checks:
 *   - next(t) is after t (a cron slot a whole minute), and a parsed cron
 *     expression always has one (parse refuses those that never fire);
 *   - the misfire policy agrees with next: the slot after t is due at that
 *     slot with t as the last one, and nothing is due a second before it;
 *     a due slot lies in (max(last, anchor), now];
 *   - a window is open at t exactly when its next opening is t; when open
 *     it ends after t (or never), when closed it "ends" at t, and it is
 *     closed at its end and open at its next opening.
 * Any broken promise aborts; everything is freed (LeakSanitizer).
 * The seed corpus in tests/fuzz/corpus/schedule/ holds cron expressions,
 * @every and @daily forms, zones with daylight saving, and window lists.
 *
 * Build and run (clang with libFuzzer), or `make fuzz`:
 *   make fuzz-build && build/fuzz/fuzz_schedule -max_total_time=60 -timeout=10 \
 *       build/fuzz/schedule.work tests/fuzz/corpus/schedule
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LINES = 14, MAX_INPUT = 4096 };

static void check_error(const cs_err *e, const char *f1, const char *f2)
{
    if (e->code != CS_E_INVAL || !e->msg[0] || strchr(e->msg, '\n') || strchr(e->msg, '\r'))
        abort();
    if (strcmp(e->field, f1) && strcmp(e->field, f2))
        abort();
}

/* Instants to probe: DST changes in Europe and America, the range's ends,
 * and two from the input. */
static size_t probe_times(const uint8_t *data, size_t size, double *out)
{
    static const double fixed[] = {
        1743296400, /* 2025-03-30T01:00:00Z: Europe springs forward */
        1761440400, /* 2025-10-26T01:00:00Z: Europe falls back */
        1741503600, /* 2025-03-09T07:00:00Z: New York springs forward */
        1762063200, /* 2025-11-02T06:00:00Z: New York falls back */
        0,
        253402300000, /* late in 9999 */
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        out[n++] = fixed[i];
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the input */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    out[n++] = (double)(h % 4102444800ull);                 /* 1970..2100 */
    out[n++] = 1735689600 + (double)((h >> 32) % (2 * 86400)) + 0.5; /* 2025-01-01 and a half second */
    return n;
}

static void check_schedule(const cs_schedule *s, const char *text, const double *times, size_t nt)
{
    const double anchor = 1000;
    const char *word = text + strspn(text, " \t\r");
    bool cron = strncasecmp(word, "@every", 6) != 0;
    for (size_t i = 0; i < nt; i++) {
        double t = times[i];
        double next = cs_schedule_next(s, anchor, t);
        if (next == 0) {
            /* none only past the year 9999 (cron; "@every 9000y" from anywhere) */
            if (cron && t < 253000000000.0)
                abort();
            continue;
        }
        if (!(next > t))
            abort();
        if (cron && (next != (double)(int64_t)next || (int64_t)next % 60))
            abort();
        if (t >= anchor) {
            if (cs_schedule_due(s, anchor, t, next) != next)
                abort();
            if (next - 1 > t && cs_schedule_due(s, anchor, t, next - 1) != 0)
                abort();
        }
        double last = t / 2;
        double due = cs_schedule_due(s, anchor, last, t);
        double after = last > anchor ? last : anchor;
        if (due != 0 && !(due > after && due <= t))
            abort();
    }
}

static void check_window(const cs_window *w, size_t nspans, const double *times, size_t nt)
{
    for (size_t i = 0; i < nt; i++) {
        double t = times[i];
        bool open = cs_window_open(w, t);
        double end = cs_window_end(w, t);
        double next = cs_window_next_open(w, t);
        if (nspans == 0) { /* no spans: always open, as no window at all */
            if (!open || end != 0 || next != 0)
                abort();
            continue;
        }
        if (open != (next == t))
            abort();
        if (open && end != 0 && !(end > t))
            abort();
        if (!open && end != t)
            abort();
        if (!open && !(next > t))
            abort();
        if (open && end != 0 && end < 253402300000.0 && cs_window_open(w, end))
            abort();
        if (!open && next < 253402300000.0 && !cs_window_open(w, next))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* lines; a NUL inside ends the text early, as a C string would */
    const char *lines[MAX_LINES];
    size_t n = 0;
    for (char *p = copy; n < MAX_LINES;) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    const char *text = lines[0];
    const char *tz = n > 1 ? lines[1] : NULL;
    double times[8];
    size_t nt = probe_times(data, size, times);

    cs_err e;
    cs_err_clear(&e);
    cs_schedule *s = (cs_schedule *)copy;
    if (cs_schedule_parse(text, tz, &s, &e)) {
        if (s)
            abort();
        check_error(&e, "schedule", "timezone");
    } else {
        check_schedule(s, text, times, nt);
        cs_schedule_free(s);
    }

    cs_err_clear(&e);
    cs_window *w = (cs_window *)copy;
    size_t nspans = n > 2 ? n - 2 : 0;
    if (cs_window_parse(lines + 2, nspans, tz, &w, &e)) {
        if (w)
            abort();
        check_error(&e, "window", "timezone");
    } else {
        check_window(w, nspans, times, nt);
        cs_window_free(w);
    }
    free(copy);
    return 0;
}

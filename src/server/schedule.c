/* schedule.c - schedules, windows and the misfire policy (see the header).
 *
 * Times are whole seconds (int64_t) inside: "real" instants since the epoch,
 * and "wall" times, the local clock of the zone read as if it were UTC
 * (wall = real + UTC offset), on which the calendar arithmetic runs with no
 * libc at all (days_from_civil and back). Only the conversions between the
 * two ask glibc, under the zone lock.
 *
 * A cron slot is a wall minute that matches the fields; it fires at the
 * first real instant the clock shows it: a wall minute that is skipped
 * (spring forward) does not fire, one shown twice (fall back) fires once,
 * the first time. */
#include "server/schedule.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/units.h"

#define MINUTE 60
#define HOUR 3600
#define DAY 86400
#define WEEK (7 * DAY)
/* The last second of 9999: later (or negative, or NaN) times are refused. */
#define T_MAX 253402300799.0
/* How far a search for a cron slot runs: 400 years, the Gregorian cycle,
 * after which every calendar pattern repeats. Feb 29 on a Sunday (a
 * day-of-month 29 with a starred day-of-week step, which cron ANDs) comes
 * 28 or 40 years apart: a shorter limit would miss slots. */
#define SEARCH_SPAN ((int64_t)146097 * DAY)
/* Where parse looks for a first slot to refuse schedules that never fire:
 * 2024-01-01 00:00:00 UTC. */
#define FIRE_CHECK_BASE 1704067200
#define ZONEINFO "/usr/share/zoneinfo/"
#define MAX_SPANS 100
/* "No such time" from the searches (wall times before 1970 are negative). */
#define NONE INT64_MIN

/* ------------------------------------------------------------------ */
/* messages */

/* User text for a message: cut at 60 characters, control characters as '?'. */
static const char *shown(const char *text, size_t len, char out[72])
{
    size_t n = 0;
    for (; n < len && n < 60; n++)
        out[n] = iscntrl((unsigned char)text[n]) ? '?' : text[n];
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static int schedule_error(cs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int schedule_error(cs_err *e, const char *fmt, ...)
{
    char msg[CS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_err_set(e, CS_E_INVAL, "%s", msg);
    return cs_err_field(e, "schedule");
}

/* ------------------------------------------------------------------ */
/* integer arithmetic */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static bool time_ok(double t)
{
    return t >= 0 && t <= T_MAX; /* false for NaN */
}

/* t is time_ok: non-negative, so the cast truncates down. */
static int64_t whole(double t)
{
    return (int64_t)t;
}

/* Days since 1970-01-01 of a proleptic Gregorian date and back (Howard
 * Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ------------------------------------------------------------------ */
/* zones */

enum { ZONE_NAME_MAX = 64 };

typedef struct zone {
    bool utc;
    char name[ZONE_NAME_MAX];                          /* as given, for messages */
    char tzvalue[1 + sizeof ZONEINFO + ZONE_NAME_MAX]; /* ":/usr/share/zoneinfo/NAME" */
} zone;

/* Guards the TZ variable and glibc's zone while one is switched in. */
static pthread_mutex_t zone_lock = PTHREAD_MUTEX_INITIALIZER;

static int zone_error(cs_err *e, const char *tz, const char *why)
{
    char buf[72];
    cs_err_set(e, CS_E_INVAL, "time zone \"%s\": %s", shown(tz, strlen(tz), buf), why);
    return cs_err_field(e, "timezone");
}

/* Is path a regular file that starts as a compiled zone does ("TZif")? */
static bool is_tzif(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* never wait on a FIFO */
    if (fd < 0)
        return false;
    struct stat st;
    char magic[4];
    bool ok = !fstat(fd, &st) && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 && !memcmp(magic, "TZif", 4);
    close(fd);
    return ok;
}

/* An IANA name of a zone installed under /usr/share/zoneinfo. The file
 * is named by its full path in TZ, so glibc reads the very file checked
 * here whatever TZDIR says. */
static int zone_parse(const char *tz, zone *z, cs_err *e)
{
    memset(z, 0, sizeof *z);
    if (!tz || !*tz || !strcmp(tz, "UTC")) {
        z->utc = true;
        snprintf(z->name, sizeof z->name, "UTC");
        return 0;
    }
    size_t len = strlen(tz);
    if (len >= sizeof z->name)
        return zone_error(e, tz, "name too long");
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)tz[i]) && !strchr("/_+-", tz[i]))
            return zone_error(e, tz, "not an IANA zone name such as Europe/Berlin");
    if (tz[0] == '/' || strstr(tz, ".."))
        return zone_error(e, tz, "not an IANA zone name such as Europe/Berlin");
    memcpy(z->name, tz, len + 1);
    snprintf(z->tzvalue, sizeof z->tzvalue, ":%s%s", ZONEINFO, tz);
    if (!is_tzif(z->tzvalue + 1))
        return zone_error(e, tz, "unknown (no such zone in " ZONEINFO ")");
    return 0;
}

/* A zone switched in for one computation: TZ as it was, restored after. */
typedef struct zone_use {
    const zone *z;
    bool had;          /* TZ was set */
    char saved[128];   /* its value */
    char *saved_heap;  /* its value when longer */
} zone_use;

static bool zone_enter(const zone *z, zone_use *u)
{
    u->z = z;
    u->saved_heap = NULL;
    if (z->utc)
        return true;
    pthread_mutex_lock(&zone_lock);
    const char *old = getenv("TZ");
    u->had = old != NULL;
    if (old) {
        size_t len = strlen(old);
        if (len < sizeof u->saved)
            memcpy(u->saved, old, len + 1);
        else if (!(u->saved_heap = strdup(old)))
            goto fail;
    }
    if (setenv("TZ", z->tzvalue, 1))
        goto fail;
    tzset();
    return true;
fail:
    free(u->saved_heap);
    pthread_mutex_unlock(&zone_lock);
    return false;
}

static void zone_leave(zone_use *u)
{
    if (u->z->utc)
        return;
    if (u->had)
        setenv("TZ", u->saved_heap ? u->saved_heap : u->saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(u->saved_heap);
    pthread_mutex_unlock(&zone_lock);
}

/* The zone's UTC offset at real instant t (the zone is switched in). */
static int64_t utc_offset(const zone *z, int64_t t)
{
    if (z->utc)
        return 0;
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return 0;
    return tm.tm_gmtoff;
}

static int64_t wall_of(const zone *z, int64_t t)
{
    return t + utc_offset(z, t);
}

/* The real instants at which the clock shows wall time g, earliest first:
 * none (skipped), one, or two (shown twice). The offsets a day either side
 * are the candidates (no zone changes its offset twice in two days). */
static int wall_instants(const zone *z, int64_t g, int64_t out[2])
{
    if (z->utc) {
        out[0] = g;
        return 1;
    }
    int64_t offs[2] = { utc_offset(z, g - DAY), utc_offset(z, g + DAY) };
    int n = 0;
    for (int i = 0; i < 2; i++) {
        if (i == 1 && offs[1] == offs[0])
            break;
        int64_t t = g - offs[i];
        if (utc_offset(z, t) == offs[i])
            out[n++] = t;
    }
    if (n == 2 && out[1] < out[0]) {
        int64_t x = out[0];
        out[0] = out[1];
        out[1] = x;
    }
    return n;
}

/* For a wall time g the clock skips: the instant it jumps over g (the
 * first at which it shows a later time). */
static int64_t wall_jump(const zone *z, int64_t g)
{
    int64_t a = utc_offset(z, g - DAY), b = utc_offset(z, g + DAY);
    int64_t lo = g - (a > b ? a : b), hi = g - (a > b ? b : a);
    /* wall_of(lo) < g <= wall_of(hi) */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (wall_of(z, mid) >= g)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* The first instant after t at which the clock reaches wall time g
 * (shows it, or jumps over it); NONE when that happened at or before t. */
static int64_t wall_reached_after(const zone *z, int64_t g, int64_t t)
{
    int64_t u[2];
    int n = wall_instants(z, g, u);
    for (int i = 0; i < n; i++)
        if (u[i] > t)
            return u[i];
    if (n == 0) {
        int64_t j = wall_jump(z, g);
        if (j > t)
            return j;
    }
    return NONE;
}

/* ------------------------------------------------------------------ */
/* cron fields */

enum { KIND_CRON, KIND_EVERY };

struct cs_schedule {
    int kind;
    double every;                /* KIND_EVERY: seconds between slots */
    uint64_t minutes;            /* bit m: minute m matches (0-59) */
    uint32_t hours;              /* 0-23 */
    uint32_t mdays;              /* 1-31 */
    uint32_t months;             /* 1-12 */
    uint32_t wdays;              /* 0-6, 0 Sunday */
    bool mday_star, wday_star;   /* the field began with '*': cron then wants both to match */
    zone tz;
};

static const char *const MONTH_NAMES[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const WDAY_NAMES[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL };

typedef struct field_spec {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is lo + i */
} field_spec;

static const field_spec FIELDS[5] = {
    { "minute", 0, 59, NULL },
    { "hour", 0, 23, NULL },
    { "day-of-month", 1, 31, NULL },
    { "month", 1, 12, MONTH_NAMES },
    { "day-of-week", 0, 7, WDAY_NAMES }, /* 7 is Sunday too */
};

/* The index of a three-letter name in names (case-insensitive), or -1. */
static int name_index(const char *const *names, const char *p, size_t len)
{
    for (int i = 0; names && names[i]; i++)
        if (len == 3 && !strncasecmp(names[i], p, 3))
            return i;
    return -1;
}

typedef struct field_text {
    const field_spec *spec;
    const char *text; /* the whole field, for messages */
    size_t len;
} field_text;

static int field_error(const field_text *f, cs_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int field_error(const field_text *f, cs_err *e, const char *fmt, ...)
{
    char what[160], buf[72];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return schedule_error(e, "cron %s field \"%s\": %s", f->spec->name, shown(f->text, f->len, buf), what);
}

/* A number or a name at *p (before end); moves *p past it. */
static int field_value(const field_text *f, const char **p, const char *end, int *out, cs_err *e)
{
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        long v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            if (v < 100000)
                v = v * 10 + (*s - '0');
            s++;
        }
        if (v < f->spec->lo || v > f->spec->hi)
            return field_error(f, e, "%ld is out of range %d-%d", v, f->spec->lo, f->spec->hi);
        *out = (int)v;
    } else if (s < end && isalpha((unsigned char)*s)) {
        while (s < end && isalpha((unsigned char)*s))
            s++;
        int i = name_index(f->spec->names, *p, (size_t)(s - *p));
        char buf[72];
        if (i < 0)
            return field_error(f, e, "unknown name \"%s\"", shown(*p, (size_t)(s - *p), buf));
        *out = f->spec->lo + i;
    } else {
        return field_error(f, e, "expected a number%s", f->spec->names ? " or a name" : "");
    }
    *p = s;
    return 0;
}

/* One list item: "*", "V", "A-B", each optionally "/STEP" ("V/STEP" runs
 * from V to the field's end). */
static int field_item(const field_text *f, const char *p, const char *end, uint64_t *bits, cs_err *e)
{
    int lo, hi, step = 1;
    bool single = false;
    if (p < end && *p == '*') {
        lo = f->spec->lo;
        hi = f->spec->hi;
        p++;
    } else {
        int rc = field_value(f, &p, end, &lo, e);
        if (rc)
            return rc;
        hi = lo;
        single = true;
        if (p < end && *p == '-') {
            p++;
            if ((rc = field_value(f, &p, end, &hi, e)))
                return rc;
            single = false;
            if (f->spec->hi == 7 && hi == 0)
                hi = 7; /* "fri-sun": Sunday as the end of a range is 7 */
            if (hi < lo)
                return field_error(f, e, "range %d-%d goes backwards", lo, hi);
        }
    }
    if (p < end && *p == '/') {
        p++;
        if (p == end || !isdigit((unsigned char)*p))
            return field_error(f, e, "a step must be a number");
        long v = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            if (v < 100000)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v < 1 || v > f->spec->hi)
            return field_error(f, e, "step %ld is out of range 1-%d", v, f->spec->hi);
        step = (int)v;
        if (single)
            hi = f->spec->hi;
    }
    if (p != end)
        return field_error(f, e, "unexpected \"%c\"", iscntrl((unsigned char)*p) ? '?' : *p);
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << v;
    return 0;
}

/* A comma-separated list of items into a bit set. */
static int field_parse(const field_spec *spec, const char *text, size_t len, uint64_t *bits, cs_err *e)
{
    field_text f = { spec, text, len };
    const char *p = text, *end = text + len;
    *bits = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if (item_end == p)
            return field_error(&f, e, "empty list item");
        int rc = field_item(&f, p, item_end, bits, e);
        if (rc)
            return rc;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* "m h dom mon dow" into s. */
static int cron_parse(const char *text, size_t len, cs_schedule *s, cs_err *e)
{
    const char *starts[5];
    size_t lens[5];
    size_t n = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        while (p < end && is_blank(*p))
            p++;
        if (p == end)
            break;
        const char *q = p;
        while (q < end && !is_blank(*q))
            q++;
        if (n < 5) {
            starts[n] = p;
            lens[n] = (size_t)(q - p);
        }
        n++;
        p = q;
    }
    if (n != 5) {
        char buf[72];
        return schedule_error(e,
                              "cron expression \"%s\" has %zu field%s, not 5 (minute hour day-of-month month "
                              "day-of-week)",
                              shown(text, len, buf), n, n == 1 ? "" : "s");
    }
    uint64_t bits[5];
    for (size_t i = 0; i < 5; i++) {
        int rc = field_parse(&FIELDS[i], starts[i], lens[i], &bits[i], e);
        if (rc)
            return rc;
    }
    s->kind = KIND_CRON;
    s->minutes = bits[0];
    s->hours = (uint32_t)bits[1];
    s->mdays = (uint32_t)bits[2];
    s->months = (uint32_t)bits[3];
    s->wdays = (uint32_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 -> 0: Sunday */
    s->mday_star = starts[2][0] == '*';
    s->wday_star = starts[4][0] == '*';
    return 0;
}

/* ------------------------------------------------------------------ */
/* cron search on wall time */

/* A position on the wall calendar, minute by minute. */
typedef struct cursor {
    int64_t day; /* days since 1970-01-01 */
    int64_t y;
    int m, d, h, mi;
} cursor;

static void cursor_day(cursor *c, int64_t day, int h, int mi)
{
    c->day = day;
    civil_from_days(day, &c->y, &c->m, &c->d);
    c->h = h;
    c->mi = mi;
}

static cursor cursor_at(int64_t g)
{
    cursor c;
    int64_t sec = floor_mod(g, DAY);
    cursor_day(&c, floor_div(g, DAY), (int)(sec / HOUR), (int)(sec % HOUR / MINUTE));
    return c;
}

static int64_t cursor_wall(const cursor *c)
{
    return c->day * DAY + c->h * HOUR + c->mi * MINUTE;
}

static bool day_matches(const cs_schedule *s, const cursor *c)
{
    bool mday = (s->mdays >> c->d) & 1u;
    bool wday = (s->wdays >> floor_mod(c->day + 4, 7)) & 1u; /* 1970-01-01 was a Thursday */
    return (s->mday_star || s->wday_star) ? mday && wday : mday || wday;
}

static int next_bit(uint64_t bits, int from, int max)
{
    for (int i = from; i <= max; i++)
        if ((bits >> i) & 1u)
            return i;
    return -1;
}

static int prev_bit(uint64_t bits, int from)
{
    for (int i = from; i >= 0; i--)
        if ((bits >> i) & 1u)
            return i;
    return -1;
}

/* The first matching wall minute at or after g (minute-aligned), NONE past
 * limit. Steps by month, day, hour, then minute: never minute by minute
 * over days that cannot match. */
static int64_t next_wall(const cs_schedule *s, int64_t g, int64_t limit)
{
    cursor c = cursor_at(g);
    while (cursor_wall(&c) <= limit) {
        if (!((s->months >> c.m) & 1u)) {
            int64_t y = c.m == 12 ? c.y + 1 : c.y;
            int m = c.m == 12 ? 1 : c.m + 1;
            cursor_day(&c, days_from_civil(y, m, 1), 0, 0);
            continue;
        }
        if (!day_matches(s, &c)) {
            cursor_day(&c, c.day + 1, 0, 0);
            continue;
        }
        int h = next_bit(s->hours, c.h, 23);
        if (h < 0) {
            cursor_day(&c, c.day + 1, 0, 0);
            continue;
        }
        if (h != c.h) {
            c.h = h;
            c.mi = 0;
        }
        int mi = next_bit(s->minutes, c.mi, 59);
        if (mi < 0) {
            if (c.h == 23)
                cursor_day(&c, c.day + 1, 0, 0);
            else {
                c.h++;
                c.mi = 0;
            }
            continue;
        }
        c.mi = mi;
        return cursor_wall(&c);
    }
    return NONE;
}

/* The last matching wall minute at or before g, NONE before floor. */
static int64_t prev_wall(const cs_schedule *s, int64_t g, int64_t floor)
{
    cursor c = cursor_at(g);
    while (cursor_wall(&c) >= floor) {
        if (!((s->months >> c.m) & 1u)) {
            cursor_day(&c, days_from_civil(c.y, c.m, 1) - 1, 23, 59);
            continue;
        }
        if (!day_matches(s, &c)) {
            cursor_day(&c, c.day - 1, 23, 59);
            continue;
        }
        int h = prev_bit(s->hours, c.h);
        if (h < 0) {
            cursor_day(&c, c.day - 1, 23, 59);
            continue;
        }
        if (h != c.h) {
            c.h = h;
            c.mi = 59;
        }
        int mi = prev_bit(s->minutes, c.mi);
        if (mi < 0) {
            if (c.h == 0)
                cursor_day(&c, c.day - 1, 23, 59);
            else {
                c.h--;
                c.mi = 59;
            }
            continue;
        }
        c.mi = mi;
        return cursor_wall(&c);
    }
    return NONE;
}

/* The first slot strictly after real time t, NONE within the search span. */
static int64_t cron_next(const cs_schedule *s, int64_t t)
{
    const zone *z = &s->tz;
    int64_t g = floor_div(wall_of(z, t), MINUTE) * MINUTE + MINUTE;
    int64_t limit = g + SEARCH_SPAN;
    for (;;) {
        g = next_wall(s, g, limit);
        if (g == NONE)
            return NONE;
        int64_t u[2];
        int n = wall_instants(z, g, u);
        if (n && u[0] > t)
            return u[0];
        if (n == 0) { /* skipped: go on from where the clock lands */
            int64_t landed = wall_of(z, wall_jump(z, g));
            int64_t next = floor_div(landed + MINUTE - 1, MINUTE) * MINUTE;
            g = next > g ? next : g + MINUTE;
        } else { /* shown before t already (the second pass of a repeated hour) */
            g += MINUTE;
        }
    }
}

/* The last slot at or before real time t, NONE within the search span. */
static int64_t cron_prev(const cs_schedule *s, int64_t t)
{
    const zone *z = &s->tz;
    int64_t g = floor_div(wall_of(z, t), MINUTE) * MINUTE;
    int64_t u[2];
    /* In the second pass of a repeated hour, the wall minutes after g fired
     * in the first pass, before t: start from the last of them. */
    for (int i = 0; i < 24 * 60; i++) {
        int n = wall_instants(z, g + MINUTE, u);
        if (!n || u[0] > t)
            break;
        g += MINUTE;
    }
    int64_t floor = g - SEARCH_SPAN;
    for (;;) {
        g = prev_wall(s, g, floor);
        if (g == NONE)
            return NONE;
        int n = wall_instants(z, g, u);
        if (n && u[0] <= t)
            return u[0];
        g -= MINUTE;
    }
}

/* ------------------------------------------------------------------ */
/* schedules */

static int every_parse(const char *text, size_t len, cs_schedule *s, cs_err *e)
{
    char dur[64], buf[72];
    while (len && is_blank(*text))
        text++, len--;
    if (!len || len >= sizeof dur)
        return schedule_error(e, "@every needs a duration such as 20s, 1h or 1h30m, not \"%s\"",
                              shown(text, len, buf));
    memcpy(dur, text, len);
    dur[len] = '\0';
    cs_err sub;
    cs_err_clear(&sub);
    double secs;
    if (cs_parse_duration(dur, &secs, &sub))
        return schedule_error(e, "@every: %s", sub.msg);
    if (secs < 1)
        return schedule_error(e, "@every \"%s\": the interval must be at least 1s", shown(dur, len, buf));
    s->kind = KIND_EVERY;
    s->every = secs;
    return 0;
}

/* "@hourly" and friends as the cron expressions they stand for. */
static const char *macro_cron(const char *word, size_t len)
{
    static const struct {
        const char *name, *cron;
    } macros[] = {
        { "@hourly", "0 * * * *" }, { "@daily", "0 0 * * *" },  { "@weekly", "0 0 * * 0" },
        { "@monthly", "0 0 1 * *" }, { "@yearly", "0 0 1 1 *" },
    };
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (strlen(macros[i].name) == len && !strncasecmp(macros[i].name, word, len))
            return macros[i].cron;
    return NULL;
}

static int text_parse(const char *text, cs_schedule *s, cs_err *e)
{
    size_t len = strlen(text);
    while (len && (is_blank(*text) || *text == '\n' || *text == '\r'))
        text++, len--;
    while (len && (is_blank(text[len - 1]) || text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (!len)
        return schedule_error(e, "empty schedule (a cron expression such as \"0 * * * *\", or @every 1h)");
    if (text[0] != '@')
        return cron_parse(text, len, s, e);
    size_t wlen = 0;
    while (wlen < len && !is_blank(text[wlen]))
        wlen++;
    if (wlen == 6 && !strncasecmp(text, "@every", 6))
        return every_parse(text + wlen, len - wlen, s, e);
    const char *cron = macro_cron(text, wlen);
    char buf[72];
    if (!cron)
        return schedule_error(e,
                              "unknown schedule \"%s\" (use a cron expression, @every DURATION, @hourly, @daily, "
                              "@weekly, @monthly or @yearly)",
                              shown(text, len, buf));
    if (wlen != len)
        return schedule_error(e, "schedule \"%s\": nothing may follow %.*s", shown(text, len, buf), (int)wlen,
                              text);
    return cron_parse(cron, strlen(cron), s, e);
}

/* Refuse a cron expression that has no slot in 400 years (then it has
 * none ever), or whose every slot falls in a skipped hour of the zone. */
static int check_fires(const cs_schedule *s, const char *text, cs_err *e)
{
    zone_use u;
    if (!zone_enter(&s->tz, &u))
        return cs_err_set(e, CS_E_NOMEM, "cannot switch to time zone %s", s->tz.name);
    int64_t first = cron_next(s, FIRE_CHECK_BASE);
    zone_leave(&u);
    if (first != NONE)
        return 0;
    char buf[72];
    if (next_wall(s, FIRE_CHECK_BASE, FIRE_CHECK_BASE + SEARCH_SPAN) == NONE)
        return schedule_error(e, "cron expression \"%s\" never fires (no date matches its day and month fields)",
                              shown(text, strlen(text), buf));
    return schedule_error(e,
                          "cron expression \"%s\" never fires in %s (all its times are skipped by daylight saving "
                          "changes)",
                          shown(text, strlen(text), buf), s->tz.name);
}

int cs_schedule_parse(const char *text, const char *tz, cs_schedule **out, cs_err *e)
{
    *out = NULL;
    cs_schedule *s = calloc(1, sizeof *s);
    if (!s)
        return cs_err_set(e, CS_E_NOMEM, "out of memory");
    int rc = zone_parse(tz, &s->tz, e);
    if (!rc)
        rc = text_parse(text ? text : "", s, e);
    if (!rc && s->kind == KIND_CRON)
        rc = check_fires(s, text, e);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cs_schedule_free(cs_schedule *s)
{
    free(s);
}

/* @every: the k (>= 1) of the last slot anchor + k*every at or before t,
 * 0 when t is before the first. */
static double every_index(const cs_schedule *s, double anchor, double t)
{
    if (t < anchor + s->every)
        return 0;
    double k = (double)(int64_t)((t - anchor) / s->every);
    /* the division may land a hair either side of a slot */
    if (anchor + (k + 1) * s->every <= t)
        k += 1;
    if (k > 1 && anchor + k * s->every > t)
        k -= 1;
    return k;
}

double cs_schedule_next(const cs_schedule *s, double anchor, double t)
{
    if (!s || !time_ok(t))
        return 0;
    if (s->kind == KIND_EVERY) {
        if (!time_ok(anchor))
            return 0;
        double next = anchor + (every_index(s, anchor, t) + 1) * s->every;
        return next > T_MAX ? 0 : next;
    }
    zone_use u;
    if (!zone_enter(&s->tz, &u))
        return 0;
    int64_t next = cron_next(s, whole(t));
    zone_leave(&u);
    return next == NONE || (double)next > T_MAX ? 0 : (double)next;
}

double cs_schedule_due(const cs_schedule *s, double anchor, double last, double now)
{
    if (!s || !time_ok(now) || !time_ok(anchor) || !(last >= 0))
        return 0;
    double after = last > anchor ? last : anchor; /* no slot before the task existed */
    if (now <= after)
        return 0;
    if (s->kind == KIND_EVERY) {
        double k = every_index(s, anchor, now);
        double slot = anchor + k * s->every;
        return k >= 1 && slot > after ? slot : 0;
    }
    zone_use u;
    if (!zone_enter(&s->tz, &u))
        return 0;
    int64_t slot = cron_prev(s, whole(now));
    zone_leave(&u);
    return slot != NONE && (double)slot > after ? (double)slot : 0;
}

/* ------------------------------------------------------------------ */
/* windows */

/* An interval of the week in wall seconds from Monday 00:00; it may run
 * past the week's end (and then goes on from Monday). */
typedef struct span {
    int64_t start, len;
    size_t src; /* index of the text it came from */
} span;

struct cs_window {
    zone tz;
    size_t n;     /* spans (a daily text gives seven) */
    span *spans;  /* by start */
};

static int window_error(cs_err *e, const char *text, const char *why)
{
    char buf[72];
    cs_err_set(e, CS_E_INVAL, "window span \"%s\": %s", shown(text, strlen(text), buf), why);
    return cs_err_field(e, "window");
}

#define SPAN_FORM "not [WEEKDAY-]HH:MM-[WEEKDAY-]HH:MM (e.g. mon-01:00-mon-05:00 or 22:00-02:00)"

/* "HH:MM" or "HH:MM:SS" -> seconds of the day, -1 when malformed. */
static int64_t time_of_day(const char *p, size_t len)
{
    int parts[3] = { 0, 0, 0 }, np = 0;
    size_t i = 0;
    while (np < 3) {
        size_t digits = 0;
        int v = 0;
        while (i < len && isdigit((unsigned char)p[i]) && digits < 3)
            v = v * 10 + (p[i++] - '0'), digits++;
        if (digits == 0 || digits > 2 || (np > 0 && digits != 2))
            return -1;
        parts[np++] = v;
        if (i == len)
            break;
        if (p[i++] != ':')
            return -1;
    }
    if (i != len || np < 2 || parts[0] > 23 || parts[1] > 59 || parts[2] > 59)
        return -1;
    return parts[0] * HOUR + parts[1] * MINUTE + parts[2];
}

/* Monday 0 .. Sunday 6, -1 when not a weekday name. */
static int weekday_of(const char *p, size_t len)
{
    static const char *const names[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun", NULL };
    return name_index(names, p, len);
}

/* One span text into 1 (with weekdays) or 7 (daily) spans at out. */
static int span_parse(const char *text, size_t src, span *out, size_t *nout, cs_err *e)
{
    const char *tok[4];
    size_t len[4], n = 0;
    for (const char *p = text;; n++) {
        const char *dash = strchr(p, '-');
        if (n == 4)
            return window_error(e, text, SPAN_FORM);
        tok[n] = p;
        len[n] = dash ? (size_t)(dash - p) : strlen(p);
        if (!dash) {
            n++;
            break;
        }
        p = dash + 1;
    }
    int day_from = -1, day_to = -1;
    int64_t from, to;
    if (n == 2) {
        from = time_of_day(tok[0], len[0]);
        to = time_of_day(tok[1], len[1]);
    } else if (n == 3 || n == 4) {
        day_from = weekday_of(tok[0], len[0]);
        if (day_from < 0) {
            if (n == 3 && time_of_day(tok[0], len[0]) >= 0 && weekday_of(tok[1], len[1]) >= 0)
                return window_error(e, text, "a weekday at the end needs one at the start");
            char buf[72], why[128];
            snprintf(why, sizeof why, "unknown weekday \"%s\" (mon..sun)", shown(tok[0], len[0], buf));
            return window_error(e, text, why);
        }
        if (n == 4 && (day_to = weekday_of(tok[2], len[2])) < 0) {
            char buf[72], why[128];
            snprintf(why, sizeof why, "unknown weekday \"%s\" (mon..sun)", shown(tok[2], len[2], buf));
            return window_error(e, text, why);
        }
        from = time_of_day(tok[1], len[1]);
        to = time_of_day(tok[n - 1], len[n - 1]);
    } else {
        return window_error(e, text, SPAN_FORM);
    }
    if (from < 0 || to < 0)
        return window_error(e, text, SPAN_FORM);
    if (day_from < 0) { /* every day; "22:00-02:00" runs into the next */
        int64_t l = floor_mod(to - from, DAY);
        if (!l)
            return window_error(e, text, "starts where it ends (empty)");
        for (int d = 0; d < 7; d++)
            out[d] = (span){ d * DAY + from, l, src };
        *nout = 7;
        return 0;
    }
    /* one weekday: ends that day, or the next when the end comes first */
    int64_t start = day_from * DAY + from;
    int64_t end = day_to < 0 ? day_from * DAY + to + (to < from ? DAY : 0) : day_to * DAY + to;
    int64_t l = floor_mod(end - start, WEEK);
    if (!l)
        return window_error(e, text, "starts where it ends (empty)");
    out[0] = (span){ start, l, src };
    *nout = 1;
    return 0;
}

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* Spans sorted by start overlap iff one runs past the next's start (the
 * last one past the week's end into the first). */
static int check_overlaps(const cs_window *w, const char *const *texts, cs_err *e)
{
    for (size_t i = 0; i < w->n; i++) {
        const span *a = &w->spans[i];
        const span *b = &w->spans[(i + 1) % w->n];
        int64_t b_start = i + 1 < w->n ? b->start : b->start + WEEK;
        if (w->n > 1 && a->start + a->len > b_start) {
            char b1[72], b2[72];
            const char *ta = texts[a->src], *tb = texts[b->src];
            cs_err_set(e, CS_E_INVAL, "window spans \"%s\" and \"%s\" overlap", shown(ta, strlen(ta), b1),
                       shown(tb, strlen(tb), b2));
            return cs_err_field(e, "window");
        }
    }
    return 0;
}

int cs_window_parse(const char *const *spans, size_t n, const char *tz, cs_window **out, cs_err *e)
{
    *out = NULL;
    if (n > MAX_SPANS) {
        cs_err_set(e, CS_E_INVAL, "too many window spans (%zu; at most %d)", n, MAX_SPANS);
        return cs_err_field(e, "window");
    }
    cs_window *w = calloc(1, sizeof *w);
    if (!w || (n && !(w->spans = calloc(7 * n, sizeof *w->spans)))) {
        cs_window_free(w);
        return cs_err_set(e, CS_E_NOMEM, "out of memory");
    }
    int rc = zone_parse(tz, &w->tz, e);
    for (size_t i = 0; !rc && i < n; i++) {
        size_t got = 0;
        if (!spans[i])
            rc = window_error(e, "", SPAN_FORM);
        else
            rc = span_parse(spans[i], i, w->spans + w->n, &got, e);
        w->n += got;
    }
    if (!rc && w->n) {
        qsort(w->spans, w->n, sizeof *w->spans, span_cmp);
        rc = check_overlaps(w, spans, e);
    }
    if (rc) {
        cs_window_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void cs_window_free(cs_window *w)
{
    if (!w)
        return;
    free(w->spans);
    free(w);
}

/* Seconds since Monday 00:00 of wall time g. */
static int64_t week_second(int64_t g)
{
    return floor_mod(floor_div(g, DAY) + 3, 7) * DAY + floor_mod(g, DAY); /* 1970-01-01: Thursday */
}

/* How far into span sp week second ws is, or -1 when outside. */
static int64_t span_offset(const span *sp, int64_t ws)
{
    int64_t d = floor_mod(ws - sp->start, WEEK);
    return d < sp->len ? d : -1;
}

static const span *span_at(const cs_window *w, int64_t ws)
{
    for (size_t i = 0; i < w->n; i++)
        if (span_offset(&w->spans[i], ws) >= 0)
            return &w->spans[i];
    return NULL;
}

static bool open_at(const cs_window *w, int64_t t)
{
    return span_at(w, week_second(wall_of(&w->tz, t))) != NULL;
}

bool cs_window_open(const cs_window *w, double t)
{
    if (!w || !w->n)
        return true;
    if (!time_ok(t))
        return false;
    zone_use u;
    if (!zone_enter(&w->tz, &u))
        return false;
    bool open = open_at(w, whole(t));
    zone_leave(&u);
    return open;
}

/* Wall seconds from ws until the window closes (through spans that follow
 * each other), -1 when it never does. */
static int64_t open_for(const cs_window *w, const span *sp, int64_t ws)
{
    int64_t left = sp->len - span_offset(sp, ws);
    for (size_t hops = 0; hops <= w->n; hops++) {
        if (left >= WEEK)
            return -1;
        int64_t end = floor_mod(ws + left, WEEK);
        const span *next = NULL;
        for (size_t i = 0; i < w->n && !next; i++)
            if (w->spans[i].start == end)
                next = &w->spans[i];
        if (!next)
            return left;
        left += next->len;
    }
    return -1;
}

/* The first instant in (t, r] at which the clock is set back (fall back),
 * NONE when it is not (r is at most a week after t: one change at most). */
static int64_t set_back_between(const zone *z, int64_t t, int64_t r)
{
    if (z->utc)
        return NONE;
    int64_t off = utc_offset(z, t);
    if (utc_offset(z, r) >= off)
        return NONE;
    int64_t lo = t, hi = r; /* utc_offset(lo) == off > utc_offset(hi) */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (utc_offset(z, mid) < off)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Where the wall clock next reaches the end of the spans open at t (or
 * jumps past it), or is set back out of them; NONE: never (they cover the
 * week). Each step is re-checked because the clock may jump into another
 * span or be set back into or out of one. */
static int64_t window_end_at(const cs_window *w, int64_t t)
{
    int64_t cur = t;
    for (size_t i = 0; i < 2 * w->n + 8; i++) {
        int64_t g = wall_of(&w->tz, cur), ws = week_second(g);
        int64_t left = open_for(w, span_at(w, ws), ws);
        if (left < 0)
            return NONE;
        int64_t r = wall_reached_after(&w->tz, g + left, cur);
        if (r <= cur)
            r = cur + left;
        int64_t back = set_back_between(&w->tz, cur, r);
        if (back != NONE)
            r = back;
        if (!open_at(w, r))
            return r;
        cur = r;
    }
    return cur;
}

double cs_window_end(const cs_window *w, double t)
{
    if (!w || !w->n)
        return 0;
    if (!time_ok(t))
        return 0;
    zone_use u;
    if (!zone_enter(&w->tz, &u))
        return 0;
    int64_t tt = whole(t);
    double end = t; /* closed: it has ended */
    if (open_at(w, tt)) {
        int64_t r = window_end_at(w, tt);
        end = r == NONE ? 0 : (double)r;
    }
    zone_leave(&u);
    return end;
}

/* The next instant after t at which a span starts by the wall clock, or
 * the clock is set back (which may open one). */
static int64_t next_start(const cs_window *w, int64_t t)
{
    int64_t g = wall_of(&w->tz, t), ws = week_second(g), best = WEEK;
    for (size_t i = 0; i < w->n; i++) {
        int64_t d = floor_mod(w->spans[i].start - ws, WEEK);
        if (d > 0 && d < best)
            best = d;
    }
    int64_t r = wall_reached_after(&w->tz, g + best, t);
    if (r <= t)
        r = t + best;
    int64_t back = set_back_between(&w->tz, t, r);
    return back != NONE ? back : r;
}

double cs_window_next_open(const cs_window *w, double t)
{
    if (!w || !w->n)
        return 0;
    if (!time_ok(t))
        return 0;
    zone_use u;
    if (!zone_enter(&w->tz, &u))
        return 0;
    int64_t cur = whole(t);
    double at = t;
    if (!open_at(w, cur)) {
        /* a start the clock jumps over may land past its span: try the next */
        for (size_t i = 0; i < 2 * w->n + 8; i++) {
            cur = next_start(w, cur);
            if (open_at(w, cur))
                break;
        }
        at = (double)cur;
    }
    zone_leave(&u);
    return at;
}

/* units.c - durations and sizes (see the header). */
#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "24h", "7d", "90m", "45s": a duration as cs_parse_duration reads it. */
void cs_format_duration(double s, char out[24])
{
    long v = (long)s;
    if (v && v % 86400 == 0)
        snprintf(out, 24, "%ldd", v / 86400);
    else if (v && v % 3600 == 0)
        snprintf(out, 24, "%ldh", v / 3600);
    else if (v && v % 60 == 0)
        snprintf(out, 24, "%ldm", v / 60);
    else
        snprintf(out, 24, "%lds", v);
}

int cs_parse_duration(const char *text, double *seconds, cs_err *e)
{
    static const struct {
        char unit;
        double seconds;
    } units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 }, { 'y', 365 * 86400 } };
    const char *p = text;
    double total = 0;
    if (!p || !*p)
        return cs_err_set(e, CS_E_INVAL, "empty duration (e.g. 36h, 7d, 2w, 1d12h)");
    if (!strcmp(p, "0")) {
        *seconds = 0;
        return 0;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return cs_err_set(e, CS_E_INVAL, "invalid duration \"%s\" (e.g. 36h, 7d, 2w, 1d12h)", text);
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        size_t u = 0;
        while (u < sizeof units / sizeof units[0] && units[u].unit != *end)
            u++;
        if (u == sizeof units / sizeof units[0] || v > 1e9)
            return cs_err_set(e, CS_E_INVAL, "invalid duration \"%s\" (units: s, m, h, d, w, y)", text);
        total += (double)v * units[u].seconds;
        p = end + 1;
    }
    *seconds = total;
    return 0;
}

int cs_parse_size(const char *text, uint64_t *bytes, cs_err *e)
{
    /* strtoull would take blanks and signs first: a size starts with a digit */
    if (!text || !isdigit((unsigned char)text[0]))
        return cs_err_set(e, CS_E_INVAL, "not a size such as 64M: \"%s\"", text ? text : "");
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    uint64_t mult = 1;
    if (end && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': mult = 1ull << 10; end++; break;
        case 'm': case 'M': mult = 1ull << 20; end++; break;
        case 'g': case 'G': mult = 1ull << 30; end++; break;
        default: break;
        }
    }
    if (errno || !*text || text[0] == '-' || !end || *end || v > (UINT64_MAX >> 30))
        return cs_err_set(e, CS_E_INVAL, "not a size such as 64M: \"%s\"", text);
    *bytes = (uint64_t)v * mult;
    return 0;
}

void cs_human_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
}

void cs_human_duration(double s, char *buf, size_t cap)
{
    long n = s > 0 && s < 1e15 ? (long)s : 0;
    if (n < 60)
        snprintf(buf, cap, "%lds", n);
    else if (n < 3600)
        snprintf(buf, cap, "%ldm%02lds", n / 60, n % 60);
    else if (n < 86400)
        snprintf(buf, cap, "%ldh%02ldm", n / 3600, n % 3600 / 60);
    else
        snprintf(buf, cap, "%ldd%02ldh", n / 86400, n % 86400 / 3600);
}

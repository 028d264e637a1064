/* retention.c - the retention policy's verdict (see the header). */
#include "repo/retention.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"

typedef struct bucket_rule {
    const char *label;  /* "hourly" */
    long count;
    const char *format; /* strftime format of the bucket */
} bucket_rule;

static const char *group_of(const cs_retention_item *it)
{
    return it->group ? it->group : "all";
}

/* Indexes of the complete items of one group, newest first. */
static size_t *complete_newest_first(const cs_retention_item *items, size_t n, const char *group, size_t *count)
{
    size_t *idx = cs_calloc(n + 1, sizeof *idx);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].complete && !strcmp(group_of(&items[i]), group))
            idx[k++] = i;
    /* insertion sort: retention runs over thousands, not millions */
    for (size_t i = 1; i < k; i++) {
        size_t v = idx[i], j = i;
        while (j > 0 && items[idx[j - 1]].started < items[v].started) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
    *count = k;
    return idx;
}

static void keep(cs_retention_item *it, const char *reason)
{
    if (it->keep)
        return; /* the first rule that keeps it names the reason */
    it->keep = true;
    bool partial = strcmp(group_of(it), "all") != 0;
    snprintf(it->reason, sizeof it->reason, "%s%s", reason, partial ? " of its scope" : "");
}

/* The formats are the constants of bucket_rule below, never outside input. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void bucket_of(double t, const char *format, char out[32])
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (strftime(out, 32, format, &tm) == 0)
        out[0] = '\0';
}
#pragma GCC diagnostic pop

/* The newest backup of each of the newest `count` buckets. */
static void apply_buckets(const bucket_rule *r, cs_retention_item *items, const size_t *idx, size_t k)
{
    char last[32] = "", cur[32];
    long taken = 0;
    for (size_t i = 0; i < k && taken < r->count; i++) {
        bucket_of(items[idx[i]].started, r->format, cur);
        if (i > 0 && !strcmp(cur, last))
            continue; /* an older backup of a bucket already counted */
        char reason[64];
        snprintf(reason, sizeof reason, "%s %s", r->label, cur);
        keep(&items[idx[i]], reason);
        memcpy(last, cur, sizeof last);
        taken++;
    }
}

/* The policy over the complete items of one group. */
static void apply_group(const cs_retention *p, cs_retention_item *items, size_t n, const char *group)
{
    size_t k = 0;
    size_t *idx = complete_newest_first(items, n, group, &k);
    if (k > 0)
        keep(&items[idx[0]], "newest complete backup");
    for (size_t i = 0; i < k && (long)i < p->last; i++) {
        char reason[32];
        snprintf(reason, sizeof reason, "last %ld", p->last);
        keep(&items[idx[i]], reason);
    }
    const bucket_rule rules[] = {
        { "hourly", p->hourly, "%Y-%m-%d %H" },
        { "daily", p->daily, "%Y-%m-%d" },
        { "weekly", p->weekly, "%G-W%V" },
        { "monthly", p->monthly, "%Y-%m" },
    };
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
        if (rules[r].count > 0)
            apply_buckets(&rules[r], items, idx, k);
    if (p->within > 0 && k > 0) {
        double cutoff = items[idx[0]].started - p->within;
        for (size_t i = 0; i < k; i++)
            if (items[idx[i]].started >= cutoff)
                keep(&items[idx[i]], "within the duration");
    }
    free(idx);
}

int cs_retention_apply(const cs_retention *policy, cs_retention_item *items, size_t n, cs_err *e)
{
    cs_retention p = *policy;
    if (p.last < 0 || p.hourly < 0 || p.daily < 0 || p.weekly < 0 || p.monthly < 0 || p.within < 0)
        return cs_err_set(e, CS_E_INVAL, "retention counts and durations cannot be negative");
    if (!p.last && !p.hourly && !p.daily && !p.weekly && !p.monthly && p.within == 0)
        p.last = CS_RETENTION_DEFAULT_LAST;
    for (size_t i = 0; i < n; i++) {
        items[i].keep = false;
        items[i].reason[0] = '\0';
    }
    /* Each group once, at its first item: quadratic in the number of
     * groups only, and a node has a handful of scopes. */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(group_of(&items[j]), group_of(&items[i]));
        if (!seen)
            apply_group(&p, items, n, group_of(&items[i]));
    }
    for (size_t i = 0; i < n; i++) {
        if (!items[i].complete) {
            items[i].keep = true;
            snprintf(items[i].reason, sizeof items[i].reason, "incomplete: not retention's to remove");
        } else if (!items[i].keep) {
            snprintf(items[i].reason, sizeof items[i].reason, "no rule keeps it");
        }
    }
    return 0;
}

/* retention.h - which backups a retention policy keeps, and why.
 *
 * Owns: the policy (keep the last N, the newest of each of the last N
 * hours, days, weeks, months, and all within a duration of the newest
 * backup) and its verdict on a list of backups, with a reason for each, so
 * that `purge --dry-run` can say what would go and why. Pure logic: no
 * storage, no clock (the caller passes the backups' times). Rules:
 *   - backups are counted in groups of one scope ("all" for full backups,
 *     one group per partial scope): the policy applies to each group on
 *     its own, as if it were a node of its own, so a partial backup never
 *     stands in for a full one (nor for a partial one of another scope);
 *   - only complete backups count for every rule; an incomplete backup is
 *     never removed by retention (stale ones are cleaned by age elsewhere);
 *   - the newest complete backup of each group is always kept (so the
 *     newest complete full backup always is; a partial scope no longer
 *     backed up keeps its newest until `cassette delete` removes it);
 *   - time buckets are UTC: hour "YYYY-MM-DD HH", day, ISO week, month;
 *   - --keep-within counts back from the newest complete backup, not from
 *     now, so a host that stopped backing up does not lose everything;
 *   - a policy with no rule set keeps the last 168 (Fluxer's week of hourly
 *     backups). */
#ifndef CS_RETENTION_H
#define CS_RETENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define CS_RETENTION_DEFAULT_LAST 168

typedef struct cs_retention {
    long last, hourly, daily, weekly, monthly; /* 0: rule not set */
    double within;                             /* seconds; 0: rule not set */
} cs_retention;

typedef struct cs_retention_item {
    /* in */
    const char *name;
    double started;   /* seconds since the epoch */
    bool complete;
    const char *group; /* the scope's group: NULL or "all" for full backups, else any other text */
    /* out */
    bool keep;
    char reason[96];  /* "last 3", "daily 2026-11-22", "incomplete", "no rule keeps it"
                       * ("... of its scope" in a partial group) */
} cs_retention_item;

/* Decide keep/remove for every item (any order; items are not reordered).
 * CS_E_INVAL for a negative count or duration. */
int cs_retention_apply(const cs_retention *policy, cs_retention_item *items, size_t n, cs_err *e);

#endif

/* cover.c - replica covers (see the header). */
#include "cluster/cover.h"

#include <stdlib.h>
#include <string.h>

/* The number after "'key': '" in text, or -1. */
static long quoted_number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return -1;
    p += strlen(key);
    char *end = NULL;
    long v = strtol(p, &end, 10);
    return end != p && *end == '\'' ? v : -1;
}

int cs_cover_replication_factor(const char *cql)
{
    if (!cql)
        return 0;
    const char *repl = strstr(cql, "replication = {");
    if (!repl)
        return 0;
    const char *end = strchr(repl, '}');
    if (!end)
        return 0;
    char *map = strndup(repl, (size_t)(end - repl));
    if (!map)
        return 0;
    long rf = 0;
    if (strstr(map, "SimpleStrategy'")) {
        rf = quoted_number_after(map, "'replication_factor': '");
    } else if (strstr(map, "NetworkTopologyStrategy'")) {
        /* {'class': '...NetworkTopologyStrategy', 'dc1': '3'}: one DC only */
        size_t quotes = 0;
        for (const char *p = map; *p; p++)
            quotes += *p == '\'';
        const char *last = strrchr(map, ':');
        if (quotes == 8 && last && last[1] == ' ' && last[2] == '\'')
            rf = strtol(last + 3, NULL, 10);
    }
    free(map);
    return rf > 0 && rf < 1000 ? (int)rf : 0;
}

size_t cs_cover_choose(size_t n, int rf, bool *chosen)
{
    memset(chosen, 0, n * sizeof *chosen);
    if (rf <= 1) {
        for (size_t i = 0; i < n; i++)
            chosen[i] = true;
        return n;
    }
    /* Node j holds the ranges of nodes j, j-1, ..., j-rf+1 (its own and
     * the rf-1 before it, around the ring): take every rf-th node. */
    size_t k = 0, r = (size_t)rf;
    for (size_t u = 0; u < n; u += r) {
        size_t j = (u + r - 1) % n;
        if (u + r - 1 >= n) /* the last piece: the last node holds it and wraps to the first */
            j = n - 1;
        if (!chosen[j]) {
            chosen[j] = true;
            k++;
        }
    }
    return k;
}

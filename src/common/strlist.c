/* strlist.c - a growable list of owned strings. */
#include "common/strlist.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

void cs_strlist_add(cs_strlist *l, const char *s)
{
    l->items = cs_realloc(l->items, (l->n + 1) * sizeof *l->items);
    l->items[l->n++] = cs_strdup(s);
}

void cs_strlist_free(cs_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

bool cs_strlist_has(const cs_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i], s))
            return true;
    return false;
}

void cs_strlist_add_csv(cs_strlist *l, const char *text)
{
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n) {
            char *item = cs_strndup(p, n);
            cs_strlist_add(l, item);
            free(item);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
}

json_t *cs_strlist_json(const cs_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->items[i]));
    return a;
}

/* kvlist.c - a small list of named string values. */
#include "common/kvlist.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

static void wipe_free(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

void cs_kvlist_set(cs_kvlist *l, const char *name, const char *value)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name)) {
            wipe_free(l->items[i].value);
            l->items[i].value = cs_strdup(value);
            return;
        }
    l->items = cs_realloc(l->items, (l->n + 1) * sizeof *l->items);
    l->items[l->n].name = cs_strdup(name);
    l->items[l->n].value = cs_strdup(value);
    l->n++;
}

const char *cs_kvlist_get(const cs_kvlist *l, const char *name)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (!strcmp(l->items[i].name, name))
            return l->items[i].value;
    return NULL;
}

void cs_kvlist_free(cs_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        wipe_free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

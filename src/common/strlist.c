/* strlist.c - a growable list of owned strings. */
#include "common/strlist.h"

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

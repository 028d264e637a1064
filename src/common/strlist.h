/* strlist.h - a growable list of owned strings (keyspaces, tables,
 * directories, recipients): the one list type every layer shares.
 * Must not: know what the strings mean. */
#ifndef CS_STRLIST_H
#define CS_STRLIST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cs_strlist {
    char **items;
    size_t n;
} cs_strlist;

void cs_strlist_add(cs_strlist *l, const char *s);
/* Add each item of a comma-separated text ("ks1, ks2"): blanks around
 * items are dropped, empty items skipped. */
void cs_strlist_add_csv(cs_strlist *l, const char *text);
void cs_strlist_free(cs_strlist *l);
bool cs_strlist_has(const cs_strlist *l, const char *s);
/* The list as a JSON array of strings (new reference; [] when empty). */
json_t *cs_strlist_json(const cs_strlist *l);

#endif

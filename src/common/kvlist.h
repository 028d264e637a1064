/* kvlist.h - a small list of named string values ("s3.region" = "eu-west-1"):
 * the settings a caller hands to a module that parses them itself (storage
 * drivers own their options this way, see storage/storage.h).
 * Owns: the names and values it holds (copies). Values may be secrets: they
 * are wiped when replaced or freed. Lists are short (tens of entries): a
 * linear search is all they need.
 * Must not: know what the names mean or parse the values. */
#ifndef CS_KVLIST_H
#define CS_KVLIST_H

#include <stddef.h>

typedef struct cs_kv {
    char *name;
    char *value;
} cs_kv;

/* A zeroed cs_kvlist (CS_KVLIST_INIT) is valid and empty. */
typedef struct cs_kvlist {
    cs_kv *items; /* in the order names were first set */
    size_t n;
} cs_kvlist;

#define CS_KVLIST_INIT { NULL, 0 }

/* Set name to value (copies of both); a name set before gets the new value. */
void cs_kvlist_set(cs_kvlist *l, const char *name, const char *value);
/* The value of name, or NULL when it is not set. */
const char *cs_kvlist_get(const cs_kvlist *l, const char *name);
void cs_kvlist_free(cs_kvlist *l);

#endif

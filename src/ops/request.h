/* request.h - typed requests: the fields of an operation's request (and of
 * the host), described once, read from text or JSON, checked, freed.
 *
 * Owns: cs_field, one row per field of a request struct (its JSON name,
 * type, place in the struct, default, and what a good value is), and the
 * generic code over such rows: defaults, values from text (the CLI's flags,
 * environment and INI give text) and from JSON (an agent's or a server's
 * request), the checks every request gets before it runs (required
 * fields, bounds, enumerations, the field's own check), JSON out, free.
 * Every message names the field as {name} (see common/err.h), so that each
 * front end says it its own way.
 * Must not: know of flags, environment variables or INI files (cli/ maps
 * them onto fields), or run anything. */
#ifndef CS_OPS_REQUEST_H
#define CS_OPS_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/kvlist.h"
#include "common/strlist.h"

/* The type of a field and what it is stored as in the struct. */
typedef enum cs_ftype {
    CS_F_STRING,   /* char * (owned; NULL: not given) */
    CS_F_BOOL,     /* bool */
    CS_F_INT,      /* long */
    CS_F_NUMBER,   /* double (NAN: not given; null in JSON) */
    CS_F_DURATION, /* double, seconds ("10m", "1d12h" as text; seconds in JSON, or the text) */
    CS_F_SIZE,     /* uint64_t, bytes ("64M" as text; bytes in JSON, or the text) */
    CS_F_STRLIST,  /* cs_strlist (JSON: an array of strings) */
    CS_F_ENUM,     /* char *, one of the field's values */
    CS_F_SETTINGS, /* cs_kvlist of named text values ("name=value" as text; a JSON object of strings) */
} cs_ftype;

#define CS_F_REQUIRED 1u /* must be given (a bool: must be true) */

typedef struct cs_field cs_field;

/* A field's own check of its value in req (names, percentages): 0 or an
 * error naming the field. */
typedef int (*cs_field_check)(const cs_field *f, const void *req, cs_err *e);

struct cs_field {
    const char *name;      /* as in JSON, and in messages as {name}: "keep_last" */
    cs_ftype type;
    size_t offset;         /* of the value in the request struct */
    const char *def;       /* the default, as text ("10m", "4", "import"); NULL: none */
    unsigned flags;        /* CS_F_REQUIRED */
    long min, max;         /* CS_F_INT: bounds, when min < max */
    const char *values;    /* CS_F_ENUM: "import|replace" */
    const char *what;      /* what a good value is, for messages ("zstd level") */
    const char *needs;     /* CS_F_REQUIRED: said after "OP needs {name}" */
    cs_field_check check;  /* NULL: none */
};

/* The field named name among fields[0..n), or NULL. */
const cs_field *cs_fields_find(const cs_field *fields, size_t n, const char *name);

/* Zero req and set every default. */
int cs_fields_init(const cs_field *fields, size_t n, void *req, size_t size, cs_err *e);
/* Free what the fields own (strings, lists) and zero them. */
void cs_fields_free(const cs_field *fields, size_t n, void *req);

/* Set one field from text, as a flag or a config file gives it. */
int cs_field_set_text(const cs_field *f, void *req, const char *text, cs_err *e);
/* Set one field from a JSON value of the right type. */
int cs_field_set_json(const cs_field *f, void *req, const json_t *value, cs_err *e);
/* The value as JSON (null for a string not given). New reference. */
json_t *cs_field_to_json(const cs_field *f, const void *req);

/* Set fields from a JSON object: an unknown member, a value of the wrong
 * type or a bad value is one error naming the field (what is a name for
 * messages: "backup request"). Fields not in the object keep their values. */
int cs_fields_from_json(const cs_field *fields, size_t n, const json_t *obj, const char *what, void *req,
                        cs_err *e);
/* Every field as one JSON object. New reference. */
json_t *cs_fields_to_json(const cs_field *fields, size_t n, const void *req);

/* The checks of every field: given when required (op names the operation
 * in "OP needs {name}"), within bounds, one of its values, its own check. */
int cs_fields_check(const cs_field *fields, size_t n, const void *req, const char *op, cs_err *e);

/* Typed access to a field's value in req (its type must match). */
#define CS_FIELD_PTR(T, req, f) ((T *)(void *)((char *)(req) + (f)->offset))
#define CS_FIELD_CPTR(T, req, f) ((const T *)(const void *)((const char *)(req) + (f)->offset))

#endif

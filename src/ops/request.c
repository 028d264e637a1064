/* request.c - typed request fields (see the header). */
#include "ops/request.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/units.h"

const cs_field *cs_fields_find(const cs_field *fields, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (!strcmp(fields[i].name, name))
            return &fields[i];
    return NULL;
}

/* ---- messages ---- */

/* What a value of this type looks like, for "{name} wants ...". */
static const char *type_noun(const cs_field *f)
{
    if (f->what)
        return f->what;
    switch (f->type) {
    case CS_F_STRING: return "a string";
    case CS_F_BOOL: return "true or false";
    case CS_F_INT: return "a whole number";
    case CS_F_NUMBER: return "a number";
    case CS_F_DURATION: return "a duration such as 10m (or seconds)";
    case CS_F_SIZE: return "a size such as 64M (or bytes)";
    case CS_F_STRLIST: return "a list of strings";
    case CS_F_ENUM: return "one of its values";
    case CS_F_SETTINGS: return "settings as name=value";
    }
    return "a value";
}

static const char *json_noun(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

static int bad_text(const cs_field *f, const char *text, cs_err *e)
{
    cs_err_set(e, CS_E_USAGE, "{%s} wants %s, not \"%s\"", f->name, type_noun(f), text);
    return cs_err_field(e, f->name);
}

static int bad_json(const cs_field *f, const json_t *v, cs_err *e)
{
    if (json_is_number(v))
        cs_err_set(e, CS_E_USAGE, "{%s} wants %s, not %g", f->name, type_noun(f), json_number_value(v));
    else
        cs_err_set(e, CS_E_USAGE, "{%s} wants %s, not %s", f->name, type_noun(f), json_noun(v));
    return cs_err_field(e, f->name);
}

/* "import|replace" -> "import or replace"; "a|b|c" -> "a, b or c". */
static void enum_words(const char *values, cs_buf *out)
{
    const char *p = values;
    while (*p) {
        size_t n = strcspn(p, "|");
        const char *next = p[n] ? p + n + 1 : p + n;
        if (out->len)
            cs_buf_addstr(out, *next ? ", " : " or ");
        cs_buf_add(out, p, n);
        p = next;
    }
}

static bool enum_has(const char *values, const char *v)
{
    size_t len = strlen(v);
    for (const char *p = values; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && !strncmp(p, v, n))
            return true;
        p += n + (p[n] ? 1 : 0);
    }
    return false;
}

/* ---- setting ---- */

static void set_string(char **slot, const char *text, size_t n)
{
    free(*slot);
    *slot = text ? cs_strndup(text, n) : NULL;
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = { "1", "true", "yes", "on" }, *const no[] = { "0", "false", "no", "off" };
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(text, yes[i]) || !strcmp(text, no[i])) {
            *out = !strcmp(text, yes[i]);
            return 0;
        }
    }
    return -1;
}

int cs_field_set_text(const cs_field *f, void *req, const char *text, cs_err *e)
{
    char *end = NULL;
    switch (f->type) {
    case CS_F_STRING:
    case CS_F_ENUM: /* checked with the others, in order (cs_fields_check) */
        set_string(CS_FIELD_PTR(char *, req, f), text, strlen(text));
        return 0;
    case CS_F_BOOL:
        return parse_bool(text, CS_FIELD_PTR(bool, req, f)) ? bad_text(f, text, e) : 0;
    case CS_F_INT: {
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || !*text || *end)
            return bad_text(f, text, e);
        *CS_FIELD_PTR(long, req, f) = v;
        return 0;
    }
    case CS_F_NUMBER: {
        errno = 0;
        double v = strtod(text, &end);
        if (errno || !*text || *end || !isfinite(v))
            return bad_text(f, text, e);
        *CS_FIELD_PTR(double, req, f) = v;
        return 0;
    }
    case CS_F_DURATION:
        if (cs_parse_duration(text, CS_FIELD_PTR(double, req, f), e)) {
            cs_err_prefix(e, "{%s}", f->name);
            if (e)
                e->code = CS_E_USAGE; /* a bad value in a request, as any other */
            return cs_err_field(e, f->name);
        }
        return 0;
    case CS_F_SIZE:
        return cs_parse_size(text, CS_FIELD_PTR(uint64_t, req, f), e) ? bad_text(f, text, e) : 0;
    case CS_F_STRLIST:
        cs_strlist_add_csv(CS_FIELD_PTR(cs_strlist, req, f), text);
        return 0;
    case CS_F_SETTINGS: {
        const char *eq = strchr(text, '=');
        if (!eq || eq == text)
            return bad_text(f, text, e);
        char *name = cs_strndup(text, (size_t)(eq - text));
        cs_kvlist_set(CS_FIELD_PTR(cs_kvlist, req, f), name, eq + 1);
        free(name);
        return 0;
    }
    }
    return cs_err_set(e, CS_E_INVAL, "field %s has no type", f->name);
}

/* A JSON object of strings: each member one setting (null: none). */
static int set_settings_json(const cs_field *f, void *req, const json_t *v, cs_err *e)
{
    cs_kvlist *l = CS_FIELD_PTR(cs_kvlist, req, f);
    const char *key;
    const json_t *item;
    if (json_is_null(v)) {
        cs_kvlist_free(l);
        return 0;
    }
    if (!json_is_object(v))
        return bad_json(f, v, e);
    json_object_foreach((json_t *)v, key, item)
        if (!json_is_string(item))
            return bad_json(f, item, e);
    cs_kvlist_free(l);
    json_object_foreach((json_t *)v, key, item)
        cs_kvlist_set(l, key, json_string_value(item));
    return 0;
}

static int set_list_json(const cs_field *f, void *req, const json_t *v, cs_err *e)
{
    cs_strlist *l = CS_FIELD_PTR(cs_strlist, req, f);
    size_t i;
    const json_t *item;
    if (!json_is_array(v))
        return bad_json(f, v, e);
    json_array_foreach(v, i, item)
        if (!json_is_string(item))
            return bad_json(f, item, e);
    cs_strlist_free(l);
    json_array_foreach(v, i, item)
        cs_strlist_add(l, json_string_value(item));
    return 0;
}

int cs_field_set_json(const cs_field *f, void *req, const json_t *v, cs_err *e)
{
    switch (f->type) {
    case CS_F_STRING:
    case CS_F_ENUM:
        if (json_is_null(v)) {
            set_string(CS_FIELD_PTR(char *, req, f), NULL, 0);
            return 0;
        }
        if (!json_is_string(v))
            return bad_json(f, v, e);
        set_string(CS_FIELD_PTR(char *, req, f), json_string_value(v), json_string_length(v));
        return 0;
    case CS_F_BOOL:
        if (!json_is_boolean(v))
            return bad_json(f, v, e);
        *CS_FIELD_PTR(bool, req, f) = json_is_true(v);
        return 0;
    case CS_F_INT:
        if (!json_is_integer(v))
            return bad_json(f, v, e);
        *CS_FIELD_PTR(long, req, f) = (long)json_integer_value(v);
        return 0;
    case CS_F_NUMBER:
        if (json_is_null(v)) {
            *CS_FIELD_PTR(double, req, f) = NAN;
            return 0;
        }
        if (!json_is_number(v))
            return bad_json(f, v, e);
        *CS_FIELD_PTR(double, req, f) = json_number_value(v);
        return 0;
    case CS_F_DURATION:
        if (json_is_string(v))
            return cs_field_set_text(f, req, json_string_value(v), e);
        if (!json_is_number(v) || !(json_number_value(v) >= 0) || !isfinite(json_number_value(v)))
            return bad_json(f, v, e);
        *CS_FIELD_PTR(double, req, f) = json_number_value(v);
        return 0;
    case CS_F_SIZE:
        if (json_is_string(v))
            return cs_field_set_text(f, req, json_string_value(v), e);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad_json(f, v, e);
        *CS_FIELD_PTR(uint64_t, req, f) = (uint64_t)json_integer_value(v);
        return 0;
    case CS_F_STRLIST:
        if (json_is_null(v)) {
            cs_strlist_free(CS_FIELD_PTR(cs_strlist, req, f));
            return 0;
        }
        return set_list_json(f, req, v, e);
    case CS_F_SETTINGS:
        return set_settings_json(f, req, v, e);
    }
    return cs_err_set(e, CS_E_INVAL, "field %s has no type", f->name);
}

json_t *cs_field_to_json(const cs_field *f, const void *req)
{
    switch (f->type) {
    case CS_F_STRING:
    case CS_F_ENUM: {
        const char *s = *CS_FIELD_CPTR(char *, req, f);
        return s ? json_string(s) : json_null();
    }
    case CS_F_BOOL: return json_boolean(*CS_FIELD_CPTR(bool, req, f));
    case CS_F_INT: return json_integer((json_int_t)*CS_FIELD_CPTR(long, req, f));
    case CS_F_NUMBER: {
        double v = *CS_FIELD_CPTR(double, req, f);
        return isnan(v) ? json_null() : json_real(v);
    }
    case CS_F_DURATION: return json_real(*CS_FIELD_CPTR(double, req, f));
    case CS_F_SIZE: return json_integer((json_int_t)*CS_FIELD_CPTR(uint64_t, req, f));
    case CS_F_STRLIST: {
        const cs_strlist *l = CS_FIELD_CPTR(cs_strlist, req, f);
        json_t *a = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(a, json_string(l->items[i]));
        return a;
    }
    case CS_F_SETTINGS: {
        /* names only: values may be credentials, and a document is shown */
        const cs_kvlist *l = CS_FIELD_CPTR(cs_kvlist, req, f);
        json_t *a = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(a, json_string(l->items[i].name));
        return a;
    }
    }
    return json_null();
}

/* ---- whole requests ---- */

int cs_fields_init(const cs_field *fields, size_t n, void *req, size_t size, cs_err *e)
{
    memset(req, 0, size);
    for (size_t i = 0; i < n; i++)
        if (fields[i].type == CS_F_NUMBER)
            *CS_FIELD_PTR(double, req, &fields[i]) = NAN; /* not given */
    for (size_t i = 0; i < n; i++)
        if (fields[i].def) {
            int rc = cs_field_set_text(&fields[i], req, fields[i].def, e);
            if (rc)
                return cs_err_prefix(e, "the default of %s", fields[i].name);
        }
    return 0;
}

void cs_fields_free(const cs_field *fields, size_t n, void *req)
{
    for (size_t i = 0; i < n; i++) {
        const cs_field *f = &fields[i];
        if (f->type == CS_F_STRING || f->type == CS_F_ENUM)
            set_string(CS_FIELD_PTR(char *, req, f), NULL, 0);
        else if (f->type == CS_F_STRLIST)
            cs_strlist_free(CS_FIELD_PTR(cs_strlist, req, f));
        else if (f->type == CS_F_SETTINGS)
            cs_kvlist_free(CS_FIELD_PTR(cs_kvlist, req, f));
    }
}

int cs_fields_from_json(const cs_field *fields, size_t n, const json_t *obj, const char *what, void *req,
                        cs_err *e)
{
    if (!json_is_object(obj))
        return cs_err_set(e, CS_E_USAGE, "a %s is a JSON object, not %s", what, json_noun(obj));
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        const cs_field *f = cs_fields_find(fields, n, key);
        if (!f) {
            cs_err_set(e, CS_E_USAGE, "unknown field \"%s\" in a %s", key, what);
            return cs_err_field(e, key);
        }
        int rc = cs_field_set_json(f, req, v, e);
        if (rc)
            return rc;
    }
    return 0;
}

json_t *cs_fields_to_json(const cs_field *fields, size_t n, const void *req)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(obj, fields[i].name, cs_field_to_json(&fields[i], req));
    return obj;
}

static bool is_given(const cs_field *f, const void *req)
{
    switch (f->type) {
    case CS_F_STRING:
    case CS_F_ENUM: return *CS_FIELD_CPTR(char *, req, f) != NULL;
    case CS_F_BOOL: return *CS_FIELD_CPTR(bool, req, f);
    case CS_F_STRLIST: return CS_FIELD_CPTR(cs_strlist, req, f)->n > 0;
    case CS_F_SETTINGS: return CS_FIELD_CPTR(cs_kvlist, req, f)->n > 0;
    case CS_F_NUMBER: return !isnan(*CS_FIELD_CPTR(double, req, f));
    default: return true; /* these numbers always hold a value */
    }
}

static int check_field(const cs_field *f, const void *req, const char *op, cs_err *e)
{
    if ((f->flags & CS_F_REQUIRED) && !is_given(f, req)) {
        cs_err_set(e, CS_E_USAGE, "%s needs {%s}%s", op, f->name, f->needs ? f->needs : "");
        return cs_err_field(e, f->name);
    }
    if (f->type == CS_F_INT && f->min < f->max) {
        long v = *CS_FIELD_CPTR(long, req, f);
        if (v < f->min || v > f->max) {
            if (f->what)
                cs_err_set(e, CS_E_USAGE, "{%s} wants %s, not %ld", f->name, f->what, v);
            else
                cs_err_set(e, CS_E_USAGE, "{%s} must be between %ld and %ld", f->name, f->min, f->max);
            return cs_err_field(e, f->name);
        }
    }
    if (f->type == CS_F_ENUM) {
        const char *v = *CS_FIELD_CPTR(char *, req, f);
        if (v && !enum_has(f->values, v)) {
            cs_buf words = CS_BUF_INIT;
            enum_words(f->values, &words);
            cs_err_set(e, CS_E_USAGE, "{%s} must be %s, not \"%s\"", f->name, cs_buf_str(&words), v);
            cs_buf_free(&words);
            return cs_err_field(e, f->name);
        }
    }
    if (f->check) {
        int rc = f->check(f, req, e);
        if (rc)
            return e && !e->field[0] ? cs_err_field(e, f->name) : rc;
    }
    return 0;
}

int cs_fields_check(const cs_field *fields, size_t n, const void *req, const char *op, cs_err *e)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_field(&fields[i], req, op, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* yaml.c - the directory settings of a cassandra.yaml, line by line. */
#include "cassandra/yaml.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

void cs_node_dirs_free(cs_node_dirs *d)
{
    cs_strlist_free(&d->data_dirs);
    free(d->commitlog_dir);
    free(d->hints_dir);
    free(d->saved_caches_dir);
    memset(d, 0, sizeof *d);
}

/* A value without its comment, blanks and quotes (in place). */
static char *scalar(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '"' || *s == '\'') {
        char *close = strchr(s + 1, *s);
        if (close) {
            *close = '\0';
            return s + 1;
        }
    }
    for (char *p = s; *p; p++)
        if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int add_dir(cs_strlist *l, char *value, const char *origin, size_t lineno, cs_err *e)
{
    char *v = scalar(value);
    if (!*v)
        return 0;
    if (v[0] != '/')
        return cs_err_set(e, CS_E_INVAL, "%s:%zu: data directory \"%s\" is not an absolute path", origin, lineno, v);
    cs_strlist_add(l, v);
    return 0;
}

/* "[/a, /b]" */
static int add_flow_list(cs_strlist *l, char *value, const char *origin, size_t lineno, cs_err *e)
{
    char *close = strrchr(value, ']');
    if (!close)
        return cs_err_set(e, CS_E_INVAL, "%s:%zu: unclosed [ in data_file_directories", origin, lineno);
    *close = '\0';
    int rc = 0;
    for (char *item, *save = value + 1; !rc && (item = strsep(&save, ",")) != NULL;)
        rc = add_dir(l, item, origin, lineno, e);
    return rc;
}

static int set_single(char **field, char *value, const char *key, const char *origin, size_t lineno, cs_err *e)
{
    char *v = scalar(value);
    if (!*v)
        return 0;
    if (v[0] != '/')
        return cs_err_set(e, CS_E_INVAL, "%s:%zu: %s \"%s\" is not an absolute path", origin, lineno, key, v);
    free(*field);
    *field = cs_strdup(v);
    return 0;
}

/* One top-level "key: value" line; *in_list says that block items of
 * data_file_directories follow. */
static int top_level(cs_node_dirs *out, char *line, bool *in_list, const char *origin, size_t lineno, cs_err *e)
{
    char *colon = strchr(line, ':');
    *in_list = false;
    if (!colon)
        return 0;
    *colon = '\0';
    char *key = line, *value = colon + 1;
    if (!strcmp(key, "data_file_directories")) {
        char *v = value;
        while (isspace((unsigned char)*v))
            v++;
        cs_strlist_free(&out->data_dirs);
        if (*v == '[')
            return add_flow_list(&out->data_dirs, v, origin, lineno, e);
        *in_list = !*scalar(v);
        return *in_list ? 0 : add_dir(&out->data_dirs, v, origin, lineno, e);
    }
    if (!strcmp(key, "commitlog_directory"))
        return set_single(&out->commitlog_dir, value, key, origin, lineno, e);
    if (!strcmp(key, "hints_directory"))
        return set_single(&out->hints_dir, value, key, origin, lineno, e);
    if (!strcmp(key, "saved_caches_directory"))
        return set_single(&out->saved_caches_dir, value, key, origin, lineno, e);
    return 0;
}

int cs_yaml_node_dirs(const char *text, const char *origin, cs_node_dirs *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    char *copy = cs_strdup(text);
    bool in_list = false;
    size_t lineno = 0;
    int rc = 0;
    for (char *line, *save = copy; !rc && (line = strsep(&save, "\n")) != NULL;) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        if (in_list && *s == '-' && (s[1] == ' ' || s[1] == '\t' || !s[1]))
            rc = add_dir(&out->data_dirs, s + 1, origin, lineno, e);
        else if (s == line)
            rc = top_level(out, line, &in_list, origin, lineno, e);
        /* an indented line of some other key: not ours */
    }
    free(copy);
    if (rc)
        cs_node_dirs_free(out);
    return rc;
}

int cs_yaml_read_node_dirs(const char *path, cs_node_dirs *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    int rc = cs_read_file(path, 4u << 20, &text, NULL, e);
    if (!rc)
        rc = cs_yaml_node_dirs(text, path, out, e);
    free(text);
    return rc;
}

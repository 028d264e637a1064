#include "common/err.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cs_err_clear(cs_err *e)
{
    if (!e)
        return;
    e->code = CS_OK;
    e->msg[0] = '\0';
    e->field[0] = '\0';
}

static void format_into(char *dst, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(dst, cap, fmt, ap);
    if (n < 0)
        dst[0] = '\0';
    /* Keep the message on one line whatever we were given. */
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int cs_err_set(cs_err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    format_into(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    e->field[0] = '\0';
    return code;
}

int cs_err_field(cs_err *e, const char *field)
{
    if (!e)
        return CS_E_INVAL;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    return e->code;
}

/* The length of a field reference at p ("{keep_last}"), 0 if p holds none. */
static size_t field_ref_len(const char *p, char *name, size_t cap)
{
    if (p[0] != '{' || !islower((unsigned char)p[1]))
        return 0;
    size_t n = 1;
    /* a dot for the storage drivers' options ({s3.part_size}) */
    while (islower((unsigned char)p[n + 1]) || isdigit((unsigned char)p[n + 1]) || p[n + 1] == '_' ||
           p[n + 1] == '.')
        n++;
    if (p[n + 1] != '}' || n >= cap)
        return 0;
    memcpy(name, p + 1, n);
    name[n] = '\0';
    return n + 2;
}

void cs_err_render(const cs_err *e, cs_err_namer namer, void *arg, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return;
    for (const char *p = e->msg; *p && o + 1 < cap;) {
        char name[CS_ERR_FIELD_MAX];
        size_t len = field_ref_len(p, name, sizeof name);
        const char *text = len ? (namer ? namer(name, arg) : name) : NULL;
        if (!text) {
            out[o++] = *p++;
            continue;
        }
        size_t n = strlen(text);
        if (n > cap - 1 - o)
            n = cap - 1 - o;
        memcpy(out + o, text, n);
        o += n;
        p += len;
    }
    out[o] = '\0';
}

int cs_err_sys(cs_err *e, int code, int errnum, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    format_into(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    size_t len = strlen(e->msg);
    snprintf(e->msg + len, sizeof e->msg - len, ": %s", strerror(errnum));
    e->code = code;
    e->field[0] = '\0';
    return code;
}

int cs_err_prefix(cs_err *e, const char *fmt, ...)
{
    if (!e)
        return CS_E_INVAL;
    char ctx[CS_ERR_MSG_MAX];
    char old[CS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    format_into(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* ctx + ": " + old, cut at the buffer's end. */
    size_t n = strlen(ctx);
    memcpy(e->msg, ctx, n + 1);
    if (old[0] && n + 2 < sizeof e->msg) {
        memcpy(e->msg + n, ": ", 3);
        n += 2;
        size_t rest = strlen(old);
        if (rest > sizeof e->msg - n - 1)
            rest = sizeof e->msg - n - 1;
        memcpy(e->msg + n, old, rest);
        e->msg[n + rest] = '\0';
    }
    if (e->code == CS_OK)
        e->code = CS_E_INVAL;
    return e->code;
}

int cs_err_code_of(const char *name)
{
    for (int code = CS_E_INVAL; name && code >= CS_E_STALE; code--)
        if (!strcmp(cs_err_name(code), name))
            return code;
    return CS_E_EXTERNAL;
}

const char *cs_err_name(int code)
{
    switch (code) {
    case CS_OK: return "ok";
    case CS_E_INVAL: return "invalid input";
    case CS_E_NOMEM: return "out of memory";
    case CS_E_IO: return "I/O error";
    case CS_E_NOTFOUND: return "not found";
    case CS_E_PROTO: return "protocol error";
    case CS_E_CORRUPT: return "corrupt data";
    case CS_E_EXTERNAL: return "external command failed";
    case CS_E_EXISTS: return "already exists";
    case CS_E_UNAVAIL: return "unavailable";
    case CS_E_NOKEY: return "no identity matches";
    case CS_E_CANCELED: return "interrupted";
    case CS_E_USAGE: return "usage error";
    case CS_E_LOCKED: return "locked";
    case CS_E_STALE: return "backup too old";
    default: return "error";
    }
}

int cs_exit_code(int err)
{
    switch (err) {
    case CS_OK: return CS_EXIT_OK;
    case CS_E_USAGE: return CS_EXIT_USAGE;
    case CS_E_CORRUPT: return CS_EXIT_DAMAGED;
    case CS_E_LOCKED: return CS_EXIT_LOCKED;
    case CS_E_NOKEY: return CS_EXIT_NOKEY;
    case CS_E_STALE: return CS_EXIT_STALE;
    case CS_E_CANCELED: return CS_EXIT_INTERRUPTED;
    default: return CS_EXIT_ERROR;
    }
}

/* Where word starts a word of text (not "block" for "lock"), or NULL. */
static const char *word_at(const char *text, const char *word)
{
    for (const char *at = strstr(text, word); at; at = strstr(at + 1, word))
        if (at == text || !isalnum((unsigned char)at[-1]))
            return at;
    return NULL;
}

const char *cs_err_kind(int code, const char *msg)
{
    if (code == CS_E_LOCKED)
        return "lock";
    if (code == CS_E_NOKEY)
        return "crypto";
    static const struct {
        const char *word, *kind;
    } words[] = { /* at one place the first of these wins: "agent" before "age" */
                  { "lock", "lock" },          { "agent", "agent" },         { "decrypt", "crypto" },
                  { "age", "crypto" },         { "identity", "crypto" },     { "nodetool", "cassandra" },
                  { "cql", "cassandra" },      { "cassandra", "cassandra" }, { "snapshot", "cassandra" },
                  { "s3", "storage" },         { "storage", "storage" },     { "repository", "storage" },
                  { "object", "storage" },     { "upload", "storage" },      { "bucket", "storage" } };
    char lower[CS_ERR_MSG_MAX];
    size_t n = 0;
    for (; msg && msg[n] && n + 1 < sizeof lower; n++)
        lower[n] = (char)tolower((unsigned char)msg[n]);
    lower[n] = '\0';
    const char *best = NULL, *best_at = NULL;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        const char *at = word_at(lower, words[i].word);
        if (at && (!best_at || at < best_at)) {
            best = words[i].kind;
            best_at = at;
        }
    }
    if (best)
        return best;
    switch (code) {
    case CS_E_IO:
    case CS_E_NOTFOUND:
    case CS_E_CORRUPT:
    case CS_E_PROTO:
    case CS_E_EXISTS:
        return "storage";
    case CS_E_EXTERNAL:
    case CS_E_UNAVAIL:
        return "cassandra";
    default:
        return "other";
    }
}

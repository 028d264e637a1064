/* s3xml.c - the S3 XML reader and writers (see s3xml.h for what it owns).
 *
 * The reader is a single pass over the document that keeps only the stack
 * of open element names (pointers into the document) and the text of the
 * innermost element. It calls a document's handlers when an element opens,
 * when a leaf element (one without child elements) closes with its text,
 * and when any element closes; the handlers fill the plain structs. */
#include "storage/s3xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PFX "S3 response: "

/* ---- the reader ----------------------------------------------------------- */

typedef struct xml_name {
    const char *raw; /* as written, prefix included */
    size_t rawn;
    const char *p; /* local name: after the prefix */
    size_t n;
} xml_name;

/* A document's handlers; path[0..depth) are the open elements, path[0] the
 * root. Any handler may be NULL. */
typedef struct xml_ops {
    const char *root;
    int (*open)(void *ctx, const xml_name *path, size_t depth, cs_err *e);
    int (*leaf)(void *ctx, const xml_name *path, size_t depth, const char *text, size_t n, cs_err *e);
    int (*close)(void *ctx, const xml_name *path, size_t depth, cs_err *e);
    int (*finish)(void *ctx, cs_err *e);
} xml_ops;

typedef struct xr {
    const unsigned char *s;
    size_t n, i;
    xml_name path[CS_S3XML_MAX_DEPTH];
    bool has_child[CS_S3XML_MAX_DEPTH];
    size_t depth;
    cs_buf text; /* the innermost element's text, while it has no child */
    const xml_ops *ops;
    void *ctx;
    bool is_error;      /* the root turned out to be <Error> */
    cs_s3xml_error *err; /* where an <Error> root goes */
    cs_err *e;
} xr;

static int perr(cs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(cs_err *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cs_err_set(e, CS_E_PROTO, PFX "%s", msg);
}

static int xfail(xr *x, const char *what)
{
    if (x->depth) {
        const xml_name *nm = &x->path[x->depth - 1];
        return cs_err_set(x->e, CS_E_PROTO, PFX "%s in <%.*s> (byte %zu)", what, (int)nm->rawn, nm->raw,
                          x->i);
    }
    return cs_err_set(x->e, CS_E_PROTO, PFX "%s (byte %zu)", what, x->i);
}

static int xeof(xr *x)
{
    x->i = x->n;
    if (x->depth) {
        const xml_name *nm = &x->path[x->depth - 1];
        return cs_err_set(x->e, CS_E_PROTO, PFX "unexpected end of document in <%.*s>", (int)nm->rawn,
                          nm->raw);
    }
    return cs_err_set(x->e, CS_E_PROTO, PFX "unexpected end of document");
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool skip_ws(xr *x)
{
    size_t st = x->i;
    while (x->i < x->n && is_ws(x->s[x->i]))
        x->i++;
    return x->i > st;
}

/* 1 when the input at the cursor starts with lit, -1 when what is left is a
 * proper prefix of lit (the document ends inside it), 0 otherwise. */
static int at(const xr *x, const char *lit)
{
    size_t l = strlen(lit), left = x->n - x->i;
    if (left >= l)
        return memcmp(x->s + x->i, lit, l) == 0;
    return memcmp(x->s + x->i, lit, left) == 0 ? -1 : 0;
}

static bool xml_char_ok(uint32_t cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* The UTF-8 sequence of a non-ASCII XML character at s[0..avail): 1 and its
 * length, 0 when invalid, -1 when cut short by the end of the input. */
static int utf8_seq(const unsigned char *s, size_t avail, size_t *len)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t k = 1; k < need; k++) {
        if (k >= avail)
            return -1;
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if (cp < min || !xml_char_ok(cp))
        return 0;
    *len = need;
    return 1;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Append to the text being collected (out NULL: check only). */
static int put(xr *x, cs_buf *out, const void *p, size_t k)
{
    if (!out)
        return 0;
    if (k > CS_S3XML_MAX_TEXT - out->len)
        return xfail(x, "text longer than 65536 bytes");
    cs_buf_add(out, p, k);
    return 0;
}

/* One character of text, a comment or an attribute value, checked; line
 * ends (CR LF, lone CR) become LF as XML wants. */
static int take_char(xr *x, cs_buf *out)
{
    unsigned char c = x->s[x->i];
    if (c < 0x80) {
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return xfail(x, "control character");
        x->i++;
        if (c == '\r') {
            if (x->i < x->n && x->s[x->i] == '\n')
                x->i++;
            c = '\n';
        }
        return put(x, out, &c, 1);
    }
    size_t len = 0;
    int r = utf8_seq(x->s + x->i, x->n - x->i, &len);
    if (r < 0)
        return xeof(x);
    if (r == 0)
        return xfail(x, "invalid UTF-8 or a character XML cannot carry");
    int rc = put(x, out, x->s + x->i, len);
    x->i += len;
    return rc;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A reference after '&': the five predefined entities, &#N; and &#xH;. */
static int parse_ref(xr *x, cs_buf *out)
{
    size_t st = x->i + 1, j = st;
    for (;; j++) {
        if (j >= x->n)
            return xeof(x);
        if (x->s[j] == ';')
            break;
        if (j - st >= 10)
            return xfail(x, "bad entity reference");
    }
    const char *nm = (const char *)x->s + st;
    size_t len = j - st;
    uint32_t cp = 0;
    if (len == 3 && memcmp(nm, "amp", 3) == 0) {
        cp = '&';
    } else if (len == 2 && memcmp(nm, "lt", 2) == 0) {
        cp = '<';
    } else if (len == 2 && memcmp(nm, "gt", 2) == 0) {
        cp = '>';
    } else if (len == 4 && memcmp(nm, "quot", 4) == 0) {
        cp = '"';
    } else if (len == 4 && memcmp(nm, "apos", 4) == 0) {
        cp = '\'';
    } else if (len >= 1 && nm[0] == '#') {
        int base = len >= 2 && nm[1] == 'x' ? 16 : 10;
        size_t k = base == 16 ? 2 : 1;
        if (k >= len)
            return xfail(x, "bad character reference");
        for (; k < len; k++) {
            int d = hexval((unsigned char)nm[k]);
            if (d < 0 || d >= base)
                return xfail(x, "bad character reference");
            cp = cp * (uint32_t)base + (uint32_t)d;
            if (cp > 0x10FFFF)
                return xfail(x, "bad character reference");
        }
        if (!xml_char_ok(cp))
            return xfail(x, "character reference to a character XML cannot carry");
    } else {
        return xfail(x, "unknown entity");
    }
    char u[4];
    size_t ulen = utf8_encode(cp, u);
    x->i = j + 1;
    return put(x, out, u, ulen);
}

static bool name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}

/* An element or attribute name (ASCII, at most one ':' with a non-empty
 * prefix and local part). */
static int parse_name(xr *x, xml_name *nm)
{
    size_t st = x->i;
    if (x->i >= x->n)
        return xeof(x);
    if (!name_start(x->s[x->i]))
        return xfail(x, "bad name");
    while (x->i < x->n && name_char(x->s[x->i])) {
        x->i++;
        if (x->i - st > CS_S3XML_MAX_NAME)
            return xfail(x, "name longer than 256 bytes");
    }
    nm->raw = (const char *)x->s + st;
    nm->rawn = x->i - st;
    nm->p = nm->raw;
    nm->n = nm->rawn;
    const char *colon = memchr(nm->raw, ':', nm->rawn);
    if (colon) {
        nm->p = colon + 1;
        nm->n = nm->rawn - (size_t)(nm->p - nm->raw);
        if (!nm->n || !name_start((unsigned char)nm->p[0]) || memchr(nm->p, ':', nm->n))
            return xfail(x, "bad name");
    }
    return 0;
}

static bool name_is(const xml_name *nm, const char *s)
{
    size_t l = strlen(s);
    return nm->n == l && memcmp(nm->p, s, l) == 0;
}

static int skip_comment(xr *x)
{
    x->i += 4; /* "<!--" */
    for (;;) {
        if (x->i >= x->n)
            return xeof(x);
        if (x->s[x->i] == '-') {
            int r = at(x, "--");
            if (r < 0)
                return xeof(x);
            if (r > 0) {
                r = at(x, "-->");
                if (r < 0)
                    return xeof(x);
                if (r == 0)
                    return xfail(x, "\"--\" inside a comment");
                x->i += 3;
                return 0;
            }
        }
        int rc = take_char(x, NULL);
        if (rc)
            return rc;
    }
}

/* A processing instruction; the XML declaration only where allowed. */
static int skip_pi(xr *x, bool decl_allowed)
{
    xml_name t;
    int rc;
    x->i += 2; /* "<?" */
    if ((rc = parse_name(x, &t)))
        return rc;
    if (t.rawn == 3 && strncasecmp(t.raw, "xml", 3) == 0 && !decl_allowed)
        return xfail(x, "misplaced XML declaration");
    if (x->i >= x->n)
        return xeof(x);
    if (!is_ws(x->s[x->i]) && x->s[x->i] != '?')
        return xfail(x, "bad processing instruction");
    for (;;) {
        if (x->i >= x->n)
            return xeof(x);
        int r = at(x, "?>");
        if (r < 0)
            return xeof(x);
        if (r > 0) {
            x->i += 2;
            return 0;
        }
        if ((rc = take_char(x, NULL)))
            return rc;
    }
}

static int parse_cdata(xr *x, cs_buf *out)
{
    x->i += 9; /* "<![CDATA[" */
    for (;;) {
        if (x->i >= x->n)
            return xeof(x);
        if (x->s[x->i] == ']') {
            int r = at(x, "]]>");
            if (r < 0)
                return xeof(x);
            if (r > 0) {
                x->i += 3;
                return 0;
            }
        }
        int rc = take_char(x, out);
        if (rc)
            return rc;
    }
}

/* name = "value" or 'value': checked, then forgotten. */
static int parse_attribute(xr *x)
{
    xml_name an;
    int rc;
    if ((rc = parse_name(x, &an)))
        return rc;
    skip_ws(x);
    if (x->i >= x->n)
        return xeof(x);
    if (x->s[x->i] != '=')
        return xfail(x, "bad attribute");
    x->i++;
    skip_ws(x);
    if (x->i >= x->n)
        return xeof(x);
    unsigned char q = x->s[x->i];
    if (q != '"' && q != '\'')
        return xfail(x, "bad attribute");
    x->i++;
    for (;;) {
        if (x->i >= x->n)
            return xeof(x);
        unsigned char c = x->s[x->i];
        if (c == q) {
            x->i++;
            return 0;
        }
        if (c == '<')
            return xfail(x, "'<' in an attribute value");
        rc = c == '&' ? parse_ref(x, NULL) : take_char(x, NULL);
        if (rc)
            return rc;
    }
}

static int close_element(xr *x)
{
    size_t d = x->depth;
    int rc = 0;
    if (!x->has_child[d - 1] && x->ops->leaf)
        rc = x->ops->leaf(x->ctx, x->path, d, cs_buf_str(&x->text), x->text.len, x->e);
    if (!rc && x->ops->close)
        rc = x->ops->close(x->ctx, x->path, d, x->e);
    x->depth--;
    cs_buf_reset(&x->text);
    return rc;
}

static const xml_ops error_ops;

/* The root decides the document: the one expected, or an S3 <Error>. */
static int check_root(xr *x, const xml_name *nm)
{
    if (name_is(nm, x->ops->root))
        return 0;
    if (name_is(nm, "Error") && strcmp(x->ops->root, "Error") != 0) {
        x->is_error = true;
        x->ops = &error_ops;
        x->ctx = x->err;
        return 0;
    }
    return perr(x->e, "expected <%s>, got <%.*s>", x->ops->root, (int)nm->rawn, nm->raw);
}

static int open_element(xr *x, const xml_name *nm, bool empty)
{
    int rc;
    if (x->depth == CS_S3XML_MAX_DEPTH)
        return xfail(x, "elements nested deeper than 16");
    if (x->depth)
        x->has_child[x->depth - 1] = true;
    else if ((rc = check_root(x, nm)))
        return rc;
    x->path[x->depth] = *nm;
    x->has_child[x->depth] = false;
    x->depth++;
    cs_buf_reset(&x->text);
    if (x->ops->open && (rc = x->ops->open(x->ctx, x->path, x->depth, x->e)))
        return rc;
    return empty ? close_element(x) : 0;
}

static int parse_start_tag(xr *x)
{
    xml_name nm;
    int rc;
    x->i++; /* '<' */
    if ((rc = parse_name(x, &nm)))
        return rc;
    for (;;) {
        bool ws = skip_ws(x);
        if (x->i >= x->n)
            return xeof(x);
        unsigned char c = x->s[x->i];
        if (c == '>') {
            x->i++;
            return open_element(x, &nm, false);
        }
        if (c == '/') {
            x->i++;
            if (x->i >= x->n)
                return xeof(x);
            if (x->s[x->i] != '>')
                return xfail(x, "bad start tag");
            x->i++;
            return open_element(x, &nm, true);
        }
        if (!ws)
            return xfail(x, "bad start tag");
        if ((rc = parse_attribute(x)))
            return rc;
    }
}

static int parse_end_tag(xr *x)
{
    xml_name nm;
    int rc;
    x->i += 2; /* "</" */
    if ((rc = parse_name(x, &nm)))
        return rc;
    skip_ws(x);
    if (x->i >= x->n)
        return xeof(x);
    if (x->s[x->i] != '>')
        return xfail(x, "bad end tag");
    const xml_name *open = &x->path[x->depth - 1];
    if (nm.rawn != open->rawn || memcmp(nm.raw, open->raw, nm.rawn) != 0)
        return cs_err_set(x->e, CS_E_PROTO, PFX "</%.*s> does not close <%.*s> (byte %zu)", (int)nm.rawn,
                          nm.raw, (int)open->rawn, open->raw, x->i);
    x->i++;
    return close_element(x);
}

/* Character data up to the next '<'; kept only while the element is a leaf. */
static int parse_text(xr *x)
{
    cs_buf *out = x->has_child[x->depth - 1] ? NULL : &x->text;
    while (x->i < x->n && x->s[x->i] != '<') {
        size_t j = x->i;
        while (j < x->n && x->s[j] >= 0x20 && x->s[j] < 0x80 && x->s[j] != '<' && x->s[j] != '&')
            j++;
        int rc;
        if (j > x->i) {
            rc = put(x, out, x->s + x->i, j - x->i);
            x->i = j;
        } else if (x->s[x->i] == '&') {
            rc = parse_ref(x, out);
        } else {
            rc = take_char(x, out);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* Markup inside the root element. */
static int parse_markup(xr *x)
{
    int r;
    if ((r = at(x, "</")) != 0)
        return r < 0 ? xeof(x) : parse_end_tag(x);
    if ((r = at(x, "<!--")) != 0)
        return r < 0 ? xeof(x) : skip_comment(x);
    if ((r = at(x, "<![CDATA[")) != 0)
        return r < 0 ? xeof(x) : parse_cdata(x, x->has_child[x->depth - 1] ? NULL : &x->text);
    if ((r = at(x, "<?")) != 0)
        return r < 0 ? xeof(x) : skip_pi(x, false);
    if (at(x, "<!") > 0)
        return xfail(x, "unexpected markup");
    return parse_start_tag(x);
}

/* Whitespace, comments and processing instructions (before and after the
 * root). Returns 0 with the cursor on the next '<' or at the end. */
static int parse_misc(xr *x, bool *decl_allowed)
{
    int r, rc;
    for (;;) {
        skip_ws(x);
        if (x->i >= x->n)
            return 0;
        if (x->s[x->i] != '<')
            return xfail(x, "text outside the root element");
        if ((r = at(x, "<!--")) != 0) {
            rc = r < 0 ? xeof(x) : skip_comment(x);
        } else if ((r = at(x, "<?")) != 0) {
            rc = r < 0 ? xeof(x) : skip_pi(x, *decl_allowed);
        } else if ((r = at(x, "<!DOCTYPE")) != 0) {
            rc = r < 0 ? xeof(x) : xfail(x, "DOCTYPE is not allowed");
        } else {
            return 0;
        }
        *decl_allowed = false;
        if (rc)
            return rc;
    }
}

static int xml_run(xr *x)
{
    bool decl_allowed = true;
    int rc;
    if (at(x, "\xEF\xBB\xBF") > 0)
        x->i += 3;
    /* Leading whitespace is tolerated: S3's keep-alive before a slow body. */
    skip_ws(x);
    if (x->i >= x->n)
        return perr(x->e, "empty document");
    if ((rc = parse_misc(x, &decl_allowed)))
        return rc;
    if (x->i >= x->n)
        return xeof(x);
    if (at(x, "<!") > 0)
        return xfail(x, "unexpected markup");
    if (x->i + 1 >= x->n)
        return xeof(x);
    if ((rc = parse_start_tag(x)))
        return rc;
    while (x->depth > 0) {
        if (x->i >= x->n)
            return xeof(x);
        rc = x->s[x->i] == '<' ? parse_markup(x) : parse_text(x);
        if (rc)
            return rc;
    }
    decl_allowed = false;
    if ((rc = parse_misc(x, &decl_allowed)))
        return rc;
    if (x->i < x->n)
        return xfail(x, "content after the root element");
    return 0;
}

static int error_sentence(const cs_s3xml_error *er, cs_err *e)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_printf(&b, "S3 error %s", er->code);
    if (er->message && er->message[0])
        cs_buf_printf(&b, ": %s", er->message);
    if (er->request_id && er->request_id[0])
        cs_buf_printf(&b, " (request id %s)", er->request_id);
    cs_err_set(e, CS_E_EXTERNAL, "%s", cs_buf_str(&b));
    cs_buf_free(&b);
    return CS_E_EXTERNAL;
}

static int xml_parse(const char *doc, size_t len, const xml_ops *ops, void *ctx, cs_err *e)
{
    cs_s3xml_error err = { 0 };
    xr x;
    int rc;
    if (!doc && len)
        return cs_err_set(e, CS_E_INVAL, "S3 response: no document given");
    memset(&x, 0, sizeof x);
    x.s = (const unsigned char *)(doc ? doc : "");
    x.n = len;
    x.ops = ops;
    x.ctx = ctx;
    x.err = &err;
    x.e = e;
    if ((rc = xml_run(&x)))
        goto out;
    if (x.ops->finish && (rc = x.ops->finish(x.ctx, e)))
        goto out;
    if (x.is_error)
        rc = error_sentence(&err, e);
out:
    cs_buf_free(&x.text);
    cs_s3xml_error_free(&err);
    return rc;
}

/* ---- values ---------------------------------------------------------------- */

static bool at2(const xml_name *path, size_t depth, const char *a)
{
    return depth == 2 && name_is(&path[1], a);
}

static bool at3(const xml_name *path, size_t depth, const char *a, const char *b)
{
    return depth == 3 && name_is(&path[1], a) && name_is(&path[2], b);
}

static int set_str(char **dst, const char *text, size_t n, const char *what, cs_err *e)
{
    if (*dst)
        return perr(e, "<%s> given twice", what);
    *dst = cs_strndup(text, n);
    return 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n && is_ws((unsigned char)**p))
        (*p)++, (*n)--;
    while (*n && is_ws((unsigned char)(*p)[*n - 1]))
        (*n)--;
}

static int set_u64(uint64_t *dst, bool *seen, const char *p, size_t n, const char *what, cs_err *e)
{
    uint64_t v = 0;
    if (*seen)
        return perr(e, "<%s> given twice", what);
    trim(&p, &n);
    if (!n)
        return perr(e, "<%s> is not a number", what);
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return perr(e, "<%s> is not a number", what);
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return perr(e, "<%s> is out of range", what);
        v = v * 10 + d;
    }
    *dst = v;
    *seen = true;
    return 0;
}

static int set_bool(bool *dst, bool *seen, const char *p, size_t n, const char *what, cs_err *e)
{
    if (*seen)
        return perr(e, "<%s> given twice", what);
    trim(&p, &n);
    if (n == 4 && memcmp(p, "true", 4) == 0)
        *dst = true;
    else if (n == 5 && memcmp(p, "false", 5) == 0)
        *dst = false;
    else
        return perr(e, "<%s> is neither true nor false", what);
    *seen = true;
    return 0;
}

/* Fixed-width decimal field; false unless all digits. */
static bool digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* ISO 8601 as S3 writes it: YYYY-MM-DDTHH:MM:SS, optional fraction, then
 * Z or +HH:MM / -HH:MM. */
static bool parse_iso8601(const char *p, size_t n, time_t *out)
{
    int y, mo, d, h, mi, s, oh = 0, om = 0;
    size_t i = 19;
    if (n < 20 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2, &h) ||
        p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' || !digits(p + 17, 2, &s))
        return false;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60)
        return false;
    if (p[i] == '.') {
        size_t st = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == st)
            return false;
    }
    if (i + 1 == n && (p[i] == 'Z' || p[i] == 'z')) {
        /* UTC */
    } else if (i + 6 == n && (p[i] == '+' || p[i] == '-') && digits(p + i + 1, 2, &oh) &&
               p[i + 3] == ':' && digits(p + i + 4, 2, &om) && oh <= 23 && om <= 59) {
        if (p[i] == '-')
            oh = -oh, om = -om;
    } else {
        return false;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - oh * 3600 - om * 60;
    *out = (time_t)t;
    return true;
}

static int set_time(time_t *dst, bool *seen, const char *p, size_t n, const char *what, cs_err *e)
{
    if (*seen)
        return perr(e, "<%s> given twice", what);
    trim(&p, &n);
    if (!parse_iso8601(p, n, dst))
        return perr(e, "<%s> is not an ISO 8601 time", what);
    *seen = true;
    return 0;
}

static bool empty(const char *s)
{
    return !s || !s[0];
}

/* Room for one more entry in a list of at most CS_S3XML_MAX_ITEMS. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc > CS_S3XML_MAX_ITEMS)
        nc = CS_S3XML_MAX_ITEMS;
    arr = cs_realloc(arr, nc * elem);
    memset((char *)arr + *cap * elem, 0, (nc - *cap) * elem);
    *cap = nc;
    return arr;
}

static int too_many(size_t n, const char *what, cs_err *e)
{
    if (n < CS_S3XML_MAX_ITEMS)
        return 0;
    return perr(e, "more than %d <%s> entries", CS_S3XML_MAX_ITEMS, what);
}

/* ---- <Error> ------------------------------------------------------------------ */

static int error_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n, cs_err *e)
{
    cs_s3xml_error *o = ctx;
    if (at2(path, depth, "Code"))
        return set_str(&o->code, t, n, "Code", e);
    if (at2(path, depth, "Message"))
        return set_str(&o->message, t, n, "Message", e);
    if (at2(path, depth, "RequestId"))
        return set_str(&o->request_id, t, n, "RequestId", e);
    if (at2(path, depth, "Resource"))
        return set_str(&o->resource, t, n, "Resource", e);
    return 0;
}

static int error_finish(void *ctx, cs_err *e)
{
    const cs_s3xml_error *o = ctx;
    return empty(o->code) ? perr(e, "<Error> without <Code>") : 0;
}

static const xml_ops error_ops = { "Error", NULL, error_leaf, NULL, error_finish };

void cs_s3xml_error_free(cs_s3xml_error *x)
{
    if (!x)
        return;
    free(x->code);
    free(x->message);
    free(x->request_id);
    free(x->resource);
    memset(x, 0, sizeof *x);
}

int cs_s3xml_parse_error(const char *doc, size_t len, cs_s3xml_error *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &error_ops, out, e);
    if (rc)
        cs_s3xml_error_free(out);
    return rc;
}

/* ---- <ListBucketResult> --------------------------------------------------------- */

typedef struct list_ctx {
    cs_s3xml_list *o;
    size_t cap_objects, cap_prefixes;
    bool seen_truncated;
    bool seen_size, seen_time; /* of the open <Contents> */
} list_ctx;

static int list_open(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    list_ctx *c = ctx;
    cs_s3xml_list *o = c->o;
    int rc;
    if (at2(path, depth, "Contents")) {
        if ((rc = too_many(o->nobjects, "Contents", e)))
            return rc;
        o->objects = grow(o->objects, o->nobjects, &c->cap_objects, sizeof *o->objects);
        o->nobjects++;
        c->seen_size = c->seen_time = false;
    } else if (at2(path, depth, "CommonPrefixes")) {
        if ((rc = too_many(o->nprefixes, "CommonPrefixes", e)))
            return rc;
        o->prefixes = grow(o->prefixes, o->nprefixes, &c->cap_prefixes, sizeof *o->prefixes);
        o->nprefixes++;
    }
    return 0;
}

static int list_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n, cs_err *e)
{
    list_ctx *c = ctx;
    cs_s3xml_list *o = c->o;
    if (at2(path, depth, "IsTruncated"))
        return set_bool(&o->is_truncated, &c->seen_truncated, t, n, "IsTruncated", e);
    if (at2(path, depth, "NextContinuationToken"))
        return set_str(&o->next_continuation_token, t, n, "NextContinuationToken", e);
    if (at2(path, depth, "KeyCount"))
        return set_u64(&o->key_count, &o->has_key_count, t, n, "KeyCount", e);
    if (depth == 3 && name_is(&path[1], "Contents")) {
        cs_s3xml_object *ob = &o->objects[o->nobjects - 1];
        if (name_is(&path[2], "Key"))
            return set_str(&ob->key, t, n, "Key", e);
        if (name_is(&path[2], "Size"))
            return set_u64(&ob->size, &c->seen_size, t, n, "Size", e);
        if (name_is(&path[2], "LastModified"))
            return set_time(&ob->last_modified, &c->seen_time, t, n, "LastModified", e);
        if (name_is(&path[2], "ETag"))
            return set_str(&ob->etag, t, n, "ETag", e);
    }
    if (at3(path, depth, "CommonPrefixes", "Prefix"))
        return set_str(&o->prefixes[o->nprefixes - 1], t, n, "Prefix", e);
    return 0;
}

static int list_close(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    list_ctx *c = ctx;
    cs_s3xml_list *o = c->o;
    if (at2(path, depth, "Contents")) {
        const cs_s3xml_object *ob = &o->objects[o->nobjects - 1];
        if (empty(ob->key))
            return perr(e, "<Contents> without <Key>");
        if (!c->seen_size)
            return perr(e, "<Contents> without <Size>");
        if (!c->seen_time)
            return perr(e, "<Contents> without <LastModified>");
    } else if (at2(path, depth, "CommonPrefixes") && !o->prefixes[o->nprefixes - 1]) {
        return perr(e, "<CommonPrefixes> without <Prefix>");
    }
    return 0;
}

static int list_finish(void *ctx, cs_err *e)
{
    const list_ctx *c = ctx;
    if (!c->seen_truncated)
        return perr(e, "<ListBucketResult> without <IsTruncated>");
    if (c->o->is_truncated && empty(c->o->next_continuation_token))
        return perr(e, "<IsTruncated> is true but <NextContinuationToken> is missing");
    return 0;
}

static const xml_ops list_ops = { "ListBucketResult", list_open, list_leaf, list_close, list_finish };

void cs_s3xml_list_free(cs_s3xml_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nobjects; i++) {
        free(l->objects[i].key);
        free(l->objects[i].etag);
    }
    for (size_t i = 0; i < l->nprefixes; i++)
        free(l->prefixes[i]);
    free(l->objects);
    free(l->prefixes);
    free(l->next_continuation_token);
    memset(l, 0, sizeof *l);
}

int cs_s3xml_parse_list(const char *doc, size_t len, cs_s3xml_list *out, cs_err *e)
{
    list_ctx c = { out, 0, 0, false, false, false };
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &list_ops, &c, e);
    if (rc)
        cs_s3xml_list_free(out);
    return rc;
}

/* ---- <InitiateMultipartUploadResult> -------------------------------------------- */

static int initiate_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n,
                         cs_err *e)
{
    cs_s3xml_initiate *o = ctx;
    if (at2(path, depth, "Bucket"))
        return set_str(&o->bucket, t, n, "Bucket", e);
    if (at2(path, depth, "Key"))
        return set_str(&o->key, t, n, "Key", e);
    if (at2(path, depth, "UploadId"))
        return set_str(&o->upload_id, t, n, "UploadId", e);
    return 0;
}

static int initiate_finish(void *ctx, cs_err *e)
{
    const cs_s3xml_initiate *o = ctx;
    return empty(o->upload_id) ? perr(e, "<InitiateMultipartUploadResult> without <UploadId>") : 0;
}

static const xml_ops initiate_ops = { "InitiateMultipartUploadResult", NULL, initiate_leaf, NULL,
                                      initiate_finish };

void cs_s3xml_initiate_free(cs_s3xml_initiate *x)
{
    if (!x)
        return;
    free(x->bucket);
    free(x->key);
    free(x->upload_id);
    memset(x, 0, sizeof *x);
}

int cs_s3xml_parse_initiate(const char *doc, size_t len, cs_s3xml_initiate *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &initiate_ops, out, e);
    if (rc)
        cs_s3xml_initiate_free(out);
    return rc;
}

/* ---- <CompleteMultipartUploadResult> -------------------------------------------- */

static int complete_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n,
                         cs_err *e)
{
    cs_s3xml_complete *o = ctx;
    if (at2(path, depth, "Location"))
        return set_str(&o->location, t, n, "Location", e);
    if (at2(path, depth, "Bucket"))
        return set_str(&o->bucket, t, n, "Bucket", e);
    if (at2(path, depth, "Key"))
        return set_str(&o->key, t, n, "Key", e);
    if (at2(path, depth, "ETag"))
        return set_str(&o->etag, t, n, "ETag", e);
    return 0;
}

static int complete_finish(void *ctx, cs_err *e)
{
    const cs_s3xml_complete *o = ctx;
    return empty(o->etag) ? perr(e, "<CompleteMultipartUploadResult> without <ETag>") : 0;
}

static const xml_ops complete_ops = { "CompleteMultipartUploadResult", NULL, complete_leaf, NULL,
                                      complete_finish };

void cs_s3xml_complete_free(cs_s3xml_complete *x)
{
    if (!x)
        return;
    free(x->location);
    free(x->bucket);
    free(x->key);
    free(x->etag);
    memset(x, 0, sizeof *x);
}

int cs_s3xml_parse_complete(const char *doc, size_t len, cs_s3xml_complete *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &complete_ops, out, e);
    if (rc)
        cs_s3xml_complete_free(out);
    return rc;
}

/* ---- <DeleteResult> ------------------------------------------------------------- */

typedef struct delete_ctx {
    cs_s3xml_delete *o;
    size_t cap_deleted, cap_errors;
} delete_ctx;

static int delete_open(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    delete_ctx *c = ctx;
    cs_s3xml_delete *o = c->o;
    int rc;
    if (at2(path, depth, "Deleted")) {
        if ((rc = too_many(o->ndeleted, "Deleted", e)))
            return rc;
        o->deleted = grow(o->deleted, o->ndeleted, &c->cap_deleted, sizeof *o->deleted);
        o->ndeleted++;
    } else if (at2(path, depth, "Error")) {
        if ((rc = too_many(o->nerrors, "Error", e)))
            return rc;
        o->errors = grow(o->errors, o->nerrors, &c->cap_errors, sizeof *o->errors);
        o->nerrors++;
    }
    return 0;
}

static int delete_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n, cs_err *e)
{
    cs_s3xml_delete *o = ((delete_ctx *)ctx)->o;
    if (at3(path, depth, "Deleted", "Key"))
        return set_str(&o->deleted[o->ndeleted - 1], t, n, "Key", e);
    if (depth == 3 && name_is(&path[1], "Error")) {
        cs_s3xml_delete_error *er = &o->errors[o->nerrors - 1];
        if (name_is(&path[2], "Key"))
            return set_str(&er->key, t, n, "Key", e);
        if (name_is(&path[2], "Code"))
            return set_str(&er->code, t, n, "Code", e);
        if (name_is(&path[2], "Message"))
            return set_str(&er->message, t, n, "Message", e);
    }
    return 0;
}

static int delete_close(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    const cs_s3xml_delete *o = ((delete_ctx *)ctx)->o;
    if (at2(path, depth, "Deleted") && empty(o->deleted[o->ndeleted - 1]))
        return perr(e, "<Deleted> without <Key>");
    if (at2(path, depth, "Error")) {
        const cs_s3xml_delete_error *er = &o->errors[o->nerrors - 1];
        if (empty(er->key))
            return perr(e, "<Error> entry without <Key>");
        if (empty(er->code))
            return perr(e, "<Error> entry without <Code>");
    }
    return 0;
}

static const xml_ops delete_ops = { "DeleteResult", delete_open, delete_leaf, delete_close, NULL };

void cs_s3xml_delete_free(cs_s3xml_delete *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->ndeleted; i++)
        free(x->deleted[i]);
    for (size_t i = 0; i < x->nerrors; i++) {
        free(x->errors[i].key);
        free(x->errors[i].code);
        free(x->errors[i].message);
    }
    free(x->deleted);
    free(x->errors);
    memset(x, 0, sizeof *x);
}

int cs_s3xml_parse_delete(const char *doc, size_t len, cs_s3xml_delete *out, cs_err *e)
{
    delete_ctx c = { out, 0, 0 };
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &delete_ops, &c, e);
    if (rc)
        cs_s3xml_delete_free(out);
    return rc;
}

/* ---- <ListMultipartUploadsResult> ------------------------------------------------ */

typedef struct uploads_ctx {
    cs_s3xml_uploads *o;
    size_t cap;
    bool seen_truncated;
    bool seen_initiated; /* of the open <Upload> */
} uploads_ctx;

static int uploads_open(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    uploads_ctx *c = ctx;
    cs_s3xml_uploads *o = c->o;
    int rc;
    if (at2(path, depth, "Upload")) {
        if ((rc = too_many(o->nuploads, "Upload", e)))
            return rc;
        o->uploads = grow(o->uploads, o->nuploads, &c->cap, sizeof *o->uploads);
        o->nuploads++;
        c->seen_initiated = false;
    }
    return 0;
}

static int uploads_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n,
                        cs_err *e)
{
    uploads_ctx *c = ctx;
    cs_s3xml_uploads *o = c->o;
    if (at2(path, depth, "IsTruncated"))
        return set_bool(&o->is_truncated, &c->seen_truncated, t, n, "IsTruncated", e);
    if (at2(path, depth, "NextKeyMarker"))
        return set_str(&o->next_key_marker, t, n, "NextKeyMarker", e);
    if (at2(path, depth, "NextUploadIdMarker"))
        return set_str(&o->next_upload_id_marker, t, n, "NextUploadIdMarker", e);
    if (depth == 3 && name_is(&path[1], "Upload")) {
        cs_s3xml_upload *u = &o->uploads[o->nuploads - 1];
        if (name_is(&path[2], "Key"))
            return set_str(&u->key, t, n, "Key", e);
        if (name_is(&path[2], "UploadId"))
            return set_str(&u->upload_id, t, n, "UploadId", e);
        if (name_is(&path[2], "Initiated"))
            return set_time(&u->initiated, &c->seen_initiated, t, n, "Initiated", e);
    }
    return 0;
}

static int uploads_close(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    const cs_s3xml_uploads *o = ((uploads_ctx *)ctx)->o;
    if (at2(path, depth, "Upload")) {
        const cs_s3xml_upload *u = &o->uploads[o->nuploads - 1];
        if (empty(u->key))
            return perr(e, "<Upload> without <Key>");
        if (empty(u->upload_id))
            return perr(e, "<Upload> without <UploadId>");
    }
    return 0;
}

static int uploads_finish(void *ctx, cs_err *e)
{
    const uploads_ctx *c = ctx;
    if (!c->seen_truncated)
        return perr(e, "<ListMultipartUploadsResult> without <IsTruncated>");
    if (c->o->is_truncated && empty(c->o->next_key_marker))
        return perr(e, "<IsTruncated> is true but <NextKeyMarker> is missing");
    return 0;
}

static const xml_ops uploads_ops = { "ListMultipartUploadsResult", uploads_open, uploads_leaf,
                                     uploads_close, uploads_finish };

void cs_s3xml_uploads_free(cs_s3xml_uploads *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nuploads; i++) {
        free(x->uploads[i].key);
        free(x->uploads[i].upload_id);
    }
    free(x->uploads);
    free(x->next_key_marker);
    free(x->next_upload_id_marker);
    memset(x, 0, sizeof *x);
}

int cs_s3xml_parse_uploads(const char *doc, size_t len, cs_s3xml_uploads *out, cs_err *e)
{
    uploads_ctx c = { out, 0, false, false };
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &uploads_ops, &c, e);
    if (rc)
        cs_s3xml_uploads_free(out);
    return rc;
}

/* ---- <ListPartsResult> ---------------------------------------------------------- */

typedef struct parts_ctx {
    cs_s3xml_parts *o;
    size_t cap;
    bool seen_truncated, seen_marker;
    bool seen_number, seen_size; /* of the open <Part> */
} parts_ctx;

static int parts_open(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    parts_ctx *c = ctx;
    cs_s3xml_parts *o = c->o;
    int rc;
    if (at2(path, depth, "Part")) {
        if ((rc = too_many(o->nparts, "Part", e)))
            return rc;
        o->parts = grow(o->parts, o->nparts, &c->cap, sizeof *o->parts);
        o->nparts++;
        c->seen_number = c->seen_size = false;
    }
    return 0;
}

static int parts_leaf(void *ctx, const xml_name *path, size_t depth, const char *t, size_t n, cs_err *e)
{
    parts_ctx *c = ctx;
    cs_s3xml_parts *o = c->o;
    if (at2(path, depth, "IsTruncated"))
        return set_bool(&o->is_truncated, &c->seen_truncated, t, n, "IsTruncated", e);
    if (at2(path, depth, "NextPartNumberMarker"))
        return set_u64(&o->next_part_number_marker, &c->seen_marker, t, n, "NextPartNumberMarker", e);
    if (depth == 3 && name_is(&path[1], "Part")) {
        cs_s3xml_listed_part *pt = &o->parts[o->nparts - 1];
        if (name_is(&path[2], "PartNumber")) {
            uint64_t v = 0;
            int rc = set_u64(&v, &c->seen_number, t, n, "PartNumber", e);
            if (!rc && (v < 1 || v > 10000))
                rc = perr(e, "<PartNumber> is out of range");
            pt->part_number = (unsigned)v;
            return rc;
        }
        if (name_is(&path[2], "Size"))
            return set_u64(&pt->size, &c->seen_size, t, n, "Size", e);
        if (name_is(&path[2], "ETag"))
            return set_str(&pt->etag, t, n, "ETag", e);
    }
    return 0;
}

static int parts_close(void *ctx, const xml_name *path, size_t depth, cs_err *e)
{
    const parts_ctx *c = ctx;
    if (at2(path, depth, "Part")) {
        const cs_s3xml_listed_part *pt = &c->o->parts[c->o->nparts - 1];
        if (!c->seen_number)
            return perr(e, "<Part> without <PartNumber>");
        if (empty(pt->etag))
            return perr(e, "<Part> without <ETag>");
        if (!c->seen_size)
            return perr(e, "<Part> without <Size>");
    }
    return 0;
}

static int parts_finish(void *ctx, cs_err *e)
{
    const parts_ctx *c = ctx;
    if (!c->seen_truncated)
        return perr(e, "<ListPartsResult> without <IsTruncated>");
    if (c->o->is_truncated && !c->seen_marker)
        return perr(e, "<IsTruncated> is true but <NextPartNumberMarker> is missing");
    return 0;
}

static const xml_ops parts_ops = { "ListPartsResult", parts_open, parts_leaf, parts_close, parts_finish };

void cs_s3xml_parts_free(cs_s3xml_parts *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nparts; i++)
        free(x->parts[i].etag);
    free(x->parts);
    memset(x, 0, sizeof *x);
}

int cs_s3xml_parse_parts(const char *doc, size_t len, cs_s3xml_parts *out, cs_err *e)
{
    parts_ctx c = { out, 0, false, false, false, false };
    memset(out, 0, sizeof *out);
    int rc = xml_parse(doc, len, &parts_ops, &c, e);
    if (rc)
        cs_s3xml_parts_free(out);
    return rc;
}

/* ---- writers ------------------------------------------------------------------ */

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"

/* Escape s[0..n) into out; false (out partly written) when s is not valid
 * UTF-8 or holds a character XML 1.0 cannot carry. */
static bool escape_into(const char *s, size_t n, cs_buf *out)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        case '\t': rep = "&#9;"; break;
        case '\n': rep = "&#10;"; break;
        case '\r': rep = "&#13;"; break;
        default: break;
        }
        if (rep) {
            cs_buf_addstr(out, rep);
            i++;
        } else if (c < 0x20) {
            return false;
        } else if (c < 0x80) {
            cs_buf_addch(out, (char)c);
            i++;
        } else {
            size_t len = 0;
            if (utf8_seq((const unsigned char *)s + i, n - i, &len) != 1)
                return false;
            cs_buf_add(out, s + i, len);
            i += len;
        }
    }
    return true;
}

int cs_s3xml_escape(const char *s, size_t n, cs_buf *out, cs_err *e)
{
    cs_buf tmp = CS_BUF_INIT;
    int rc = 0;
    if (!s && n) {
        rc = cs_err_set(e, CS_E_INVAL, "S3 request: no text given");
        goto out;
    }
    if (!escape_into(s, n, &tmp)) {
        rc = cs_err_set(e, CS_E_INVAL,
                        "S3 request: text is not valid UTF-8 or holds a character XML cannot carry");
        goto out;
    }
    cs_buf_add(out, cs_buf_str(&tmp), tmp.len);
out:
    cs_buf_free(&tmp);
    return rc;
}

int cs_s3xml_complete_body(const cs_s3xml_part *parts, size_t n, cs_buf *out, cs_err *e)
{
    cs_buf tmp = CS_BUF_INIT;
    unsigned prev = 0;
    int rc = 0;
    if (!parts || n == 0 || n > 10000) {
        rc = cs_err_set(e, CS_E_INVAL, "S3 request: a multipart upload has 1 to 10000 parts, not %zu", n);
        goto out;
    }
    cs_buf_addstr(&tmp, XML_DECL "<CompleteMultipartUpload xmlns=\"" S3_NS "\">");
    for (size_t i = 0; i < n; i++) {
        unsigned pn = parts[i].part_number;
        if (pn < 1 || pn > 10000 || pn <= prev) {
            rc = cs_err_set(e, CS_E_INVAL,
                            "S3 request: part numbers must ascend within 1..10000 (part %u after %u)", pn,
                            prev);
            goto out;
        }
        if (empty(parts[i].etag)) {
            rc = cs_err_set(e, CS_E_INVAL, "S3 request: part %u has no ETag", pn);
            goto out;
        }
        cs_buf_printf(&tmp, "<Part><PartNumber>%u</PartNumber><ETag>", pn);
        if (!escape_into(parts[i].etag, strlen(parts[i].etag), &tmp)) {
            rc = cs_err_set(e, CS_E_INVAL, "S3 request: the ETag of part %u cannot be written in XML", pn);
            goto out;
        }
        cs_buf_addstr(&tmp, "</ETag></Part>");
        prev = pn;
    }
    cs_buf_addstr(&tmp, "</CompleteMultipartUpload>");
    cs_buf_add(out, tmp.data, tmp.len);
out:
    cs_buf_free(&tmp);
    return rc;
}

int cs_s3xml_delete_body(const char *const *keys, size_t n, bool quiet, cs_buf *out, cs_err *e)
{
    cs_buf tmp = CS_BUF_INIT;
    int rc = 0;
    if (!keys || n == 0 || n > 1000) {
        rc = cs_err_set(e, CS_E_INVAL, "S3 request: a delete names 1 to 1000 keys, not %zu", n);
        goto out;
    }
    cs_buf_addstr(&tmp, XML_DECL "<Delete xmlns=\"" S3_NS "\">");
    if (quiet)
        cs_buf_addstr(&tmp, "<Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        size_t len = keys[i] ? strlen(keys[i]) : 0;
        if (len == 0 || len > 1024) {
            rc = cs_err_set(e, CS_E_INVAL, "S3 request: key %zu is empty or longer than 1024 bytes", i + 1);
            goto out;
        }
        cs_buf_addstr(&tmp, "<Object><Key>");
        if (!escape_into(keys[i], len, &tmp)) {
            rc = cs_err_set(e, CS_E_INVAL,
                            "S3 request: key %zu is not valid UTF-8 or holds a character XML cannot carry",
                            i + 1);
            goto out;
        }
        cs_buf_addstr(&tmp, "</Key></Object>");
    }
    cs_buf_addstr(&tmp, "</Delete>");
    cs_buf_add(out, tmp.data, tmp.len);
out:
    cs_buf_free(&tmp);
    return rc;
}

/* xml.c - the XML reader on libexpat (see xml.h for what it owns).
 *
 * expat checks well-formedness, UTF-8 and the XML character set, decodes
 * references and normalises line ends; this file adds what a response
 * reader needs on top: no DOCTYPE (so no entities but the predefined ones),
 * the limits, QName checks, a path of local names, leaf text, and errors
 * that say where. The document is given to expat in two calls: all of it
 * (not final), then an empty final one; expat waits for more input at the
 * end of the first, so a failure in the second is always a document that
 * ended too early. */
#include "storage/xml.h"

#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

typedef struct xml_reader {
    XML_Parser parser;
    const cs_xml_handlers *h;
    void *arg;
    cs_err *e;
    int rc;                                /* first failure, ours or a callback's */
    const char *doc;                       /* what expat reads */
    size_t len;
    size_t skipped;                        /* bytes before it: BOM, whitespace */
    char *raw[CS_XML_MAX_DEPTH];           /* open elements' names as written */
    const char *local[CS_XML_MAX_DEPTH];   /* the same without prefix */
    bool has_child[CS_XML_MAX_DEPTH];
    size_t depth;
    cs_buf text;                           /* the innermost element's, while a leaf */
} xml_reader;

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Byte offset (in the caller's document) of what expat is reading. */
static size_t position(const xml_reader *x)
{
    XML_Index i = XML_GetCurrentByteIndex(x->parser);
    return x->skipped + (i > 0 ? (size_t)i : 0);
}

static int vfail(xml_reader *x, bool with_position, const char *fmt, va_list ap)
{
    char what[512];
    vsnprintf(what, sizeof what, fmt, ap);
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, what);
    if (x->depth)
        cs_buf_printf(&b, " in <%s>", x->raw[x->depth - 1]);
    if (with_position)
        cs_buf_printf(&b, " (byte %zu)", position(x));
    x->rc = cs_err_set(x->e, CS_E_PROTO, "%s", cs_buf_str(&b));
    cs_buf_free(&b);
    return x->rc;
}

/* A failure found in a callback: recorded, and expat stops. */
static void fail(xml_reader *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(xml_reader *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(x, true, fmt, ap);
    va_end(ap);
    XML_StopParser(x->parser, XML_FALSE);
}

static void stop_on(xml_reader *x, int rc)
{
    if (rc) {
        x->rc = rc;
        XML_StopParser(x->parser, XML_FALSE);
    }
}

/* A local name starts with a NameStartChar other than ':' (Namespaces in
 * XML's NCName); expat has checked the rest is made of name characters. */
static bool ncname_start(const unsigned char *s)
{
    if (!s[0] || (s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '.')
        return false;
    if (s[0] == 0xC2 && s[1] == 0xB7) /* U+00B7 */
        return false;
    if ((s[0] == 0xCC && s[1] >= 0x80) || (s[0] == 0xCD && s[1] <= 0xAF)) /* U+0300..U+036F */
        return false;
    if (s[0] == 0xE2 && ((s[1] == 0x80 && s[2] == 0xBF) || (s[1] == 0x81 && s[2] == 0x80))) /* U+203F, U+2040 */
        return false;
    return true;
}

/* False (the parse stopped) for a name that is too long or not a QName. */
static bool check_name(xml_reader *x, const char *name)
{
    if (strlen(name) > CS_XML_MAX_NAME) {
        fail(x, "name longer than %d bytes", CS_XML_MAX_NAME);
        return false;
    }
    const char *colon = strchr(name, ':');
    if (colon && (colon == name || strchr(colon + 1, ':') || !ncname_start((const unsigned char *)colon + 1))) {
        fail(x, "bad name <%s>", name);
        return false;
    }
    return true;
}

static cs_xml_path path_of(const xml_reader *x)
{
    return (cs_xml_path){ x->local, x->depth };
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_reader *x = ud;
    if (x->rc)
        return;
    if (x->depth == CS_XML_MAX_DEPTH) {
        fail(x, "elements nested deeper than %d", CS_XML_MAX_DEPTH);
        return;
    }
    if (!check_name(x, name))
        return;
    for (size_t i = 0; atts[i]; i += 2)
        if (!check_name(x, atts[i]))
            return;
    if (x->depth)
        x->has_child[x->depth - 1] = true;
    char *raw = cs_strdup(name);
    const char *colon = strchr(raw, ':');
    x->raw[x->depth] = raw;
    x->local[x->depth] = colon ? colon + 1 : raw;
    x->has_child[x->depth] = false;
    x->depth++;
    cs_buf_reset(&x->text);
    if (x->h->open) {
        cs_xml_path p = path_of(x);
        stop_on(x, x->h->open(x->arg, &p, x->e));
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xml_reader *x = ud;
    (void)name; /* expat has matched it with the start tag */
    if (x->rc)
        return;
    cs_xml_path p = path_of(x);
    int rc = 0;
    if (!x->has_child[x->depth - 1] && x->h->leaf)
        rc = x->h->leaf(x->arg, &p, cs_buf_str(&x->text), x->text.len, x->e);
    if (!rc && x->h->close)
        rc = x->h->close(x->arg, &p, x->e);
    stop_on(x, rc);
    x->depth--;
    free(x->raw[x->depth]);
    x->raw[x->depth] = NULL;
    cs_buf_reset(&x->text);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xml_reader *x = ud;
    if (x->rc || !x->depth || x->has_child[x->depth - 1] || len <= 0)
        return;
    if ((size_t)len > CS_XML_MAX_TEXT - x->text.len) {
        fail(x, "text longer than %d bytes", CS_XML_MAX_TEXT);
        return;
    }
    cs_buf_add(&x->text, s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail(ud, "DOCTYPE is not allowed");
}

/* Unreachable (entities are declared only in a DOCTYPE): belt and braces. */
static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_parameter, const XML_Char *value,
                                   int value_length, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
    (void)name, (void)is_parameter, (void)value, (void)value_length, (void)base, (void)sysid, (void)pubid,
        (void)notation;
    fail(ud, "entity declarations are not allowed");
}

static int XMLCALL on_external_entity(XML_Parser p, const XML_Char *context, const XML_Char *base,
                                      const XML_Char *sysid, const XML_Char *pubid)
{
    (void)p, (void)context, (void)base, (void)sysid, (void)pubid;
    return XML_STATUS_ERROR; /* never fetched */
}

/* The byte at expat's error position, or -1 past the end. */
static int byte_at_error(const xml_reader *x)
{
    XML_Index i = XML_GetCurrentByteIndex(x->parser);
    return i >= 0 && (size_t)i < x->len ? (unsigned char)x->doc[i] : -1;
}

/* The name of the end tag at expat's error position ("</NAME>"). */
static int end_tag_mismatch(xml_reader *x)
{
    XML_Index i = XML_GetCurrentByteIndex(x->parser);
    size_t at = i > 0 ? (size_t)i : 0, n = 0;
    if (at >= 2 && at <= x->len && x->doc[at - 2] == '<' && x->doc[at - 1] == '/')
        while (at + n < x->len && n < CS_XML_MAX_NAME && x->doc[at + n] != '>' && !is_ws((unsigned char)x->doc[at + n]))
            n++;
    const char *open = x->depth ? x->raw[x->depth - 1] : "";
    x->rc = cs_err_set(x->e, CS_E_PROTO, "</%.*s> does not close <%s> (byte %zu)", (int)n, x->doc + at, open,
                       position(x));
    return x->rc;
}

static int report(xml_reader *x, bool with_position, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int report(xml_reader *x, bool with_position, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(x, with_position, fmt, ap);
    va_end(ap);
    return rc;
}

/* expat's verdict as one sentence; final: the error came when the end of
 * the document was announced. */
static int expat_error(xml_reader *x, bool final)
{
    enum XML_Error code = XML_GetErrorCode(x->parser);
    int c = byte_at_error(x);
    if (final && (code == XML_ERROR_NO_ELEMENTS || code == XML_ERROR_UNCLOSED_TOKEN ||
                  code == XML_ERROR_PARTIAL_CHAR || code == XML_ERROR_UNCLOSED_CDATA_SECTION))
        return report(x, false, "unexpected end of document");
    switch (code) {
    case XML_ERROR_JUNK_AFTER_DOC_ELEMENT:
        return report(x, true, c == '<' ? "content after the root element" : "text outside the root element");
    case XML_ERROR_SYNTAX:
        return report(x, true, c == '<' ? "unexpected markup" : "text outside the root element");
    case XML_ERROR_MISPLACED_XML_PI:
        return report(x, true, "misplaced XML declaration");
    case XML_ERROR_TAG_MISMATCH:
        return end_tag_mismatch(x);
    case XML_ERROR_UNDEFINED_ENTITY:
        return report(x, true, "unknown entity");
    case XML_ERROR_BAD_CHAR_REF:
        return report(x, true, "character reference to a character XML cannot carry");
    case XML_ERROR_INVALID_TOKEN:
        if (c >= 0 && c < 0x20 && !is_ws((unsigned char)c))
            return report(x, true, "control character");
        if (c >= 0x80)
            return report(x, true, "invalid UTF-8 or a character XML cannot carry");
        if (c > 0x20 && c < 0x7F)
            return report(x, true, "not well-formed at '%c'", c);
        return report(x, true, "not well-formed");
    default:
        return report(x, true, "%s", XML_ErrorString(code));
    }
}

static XML_Parser new_parser(xml_reader *x)
{
    /* Always UTF-8, whatever the declaration says; no namespace processing
     * (prefixes are dropped, not resolved). */
    XML_Parser p = XML_ParserCreate("UTF-8");
    if (!p) {
        fputs("cassette: out of memory\n", stderr);
        abort();
    }
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetExternalEntityRefHandler(p, on_external_entity);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    return p;
}

static int run(xml_reader *x)
{
    if (XML_Parse(x->parser, x->doc, (int)x->len, XML_FALSE) != XML_STATUS_OK)
        return x->rc ? x->rc : expat_error(x, false);
    if (XML_Parse(x->parser, "", 0, XML_TRUE) != XML_STATUS_OK)
        return x->rc ? x->rc : expat_error(x, true);
    return x->rc;
}

int cs_xml_parse(const char *doc, size_t len, const cs_xml_handlers *h, void *arg, cs_err *e)
{
    if (!doc && len)
        return cs_err_set(e, CS_E_INVAL, "no document given");
    if (len > CS_XML_MAX_DOC)
        return cs_err_set(e, CS_E_PROTO, "document longer than %u bytes", CS_XML_MAX_DOC);
    size_t skip = 0;
    if (len >= 3 && memcmp(doc, "\xEF\xBB\xBF", 3) == 0)
        skip = 3;
    while (skip < len && is_ws((unsigned char)doc[skip]))
        skip++;
    if (skip == len)
        return cs_err_set(e, CS_E_PROTO, "empty document");
    xml_reader x;
    memset(&x, 0, sizeof x);
    x.h = h;
    x.arg = arg;
    x.e = e;
    x.doc = doc + skip;
    x.len = len - skip;
    x.skipped = skip;
    x.parser = new_parser(&x);
    int rc = run(&x);
    XML_ParserFree(x.parser);
    for (size_t i = 0; i < x.depth; i++)
        free(x.raw[i]);
    cs_buf_free(&x.text);
    return rc;
}

bool cs_xml_path_is(const cs_xml_path *p, const char *pattern)
{
    const char *s = pattern;
    for (size_t i = 0; i < p->depth; i++) {
        size_t n = strcspn(s, "/");
        if (!n)
            return false;
        bool any = n == 1 && s[0] == '*';
        if (!any && (strlen(p->names[i]) != n || memcmp(p->names[i], s, n) != 0))
            return false;
        s += n;
        if (i + 1 < p->depth) {
            if (*s != '/')
                return false;
            s++;
        }
    }
    return *s == '\0';
}

/* ---- leaf values ----------------------------------------------------------------- */

static int twice(const char *what, cs_err *e)
{
    return cs_err_set(e, CS_E_PROTO, "<%s> given twice", what);
}

int cs_xml_str(char **dst, const char *text, size_t len, const char *what, cs_err *e)
{
    if (*dst)
        return twice(what, e);
    *dst = cs_strndup(text, len);
    return 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n && is_ws((unsigned char)**p))
        (*p)++, (*n)--;
    while (*n && is_ws((unsigned char)(*p)[*n - 1]))
        (*n)--;
}

int cs_xml_u64(uint64_t *dst, bool *seen, const char *p, size_t n, const char *what, cs_err *e)
{
    uint64_t v = 0;
    if (*seen)
        return twice(what, e);
    trim(&p, &n);
    if (!n)
        return cs_err_set(e, CS_E_PROTO, "<%s> is not a number", what);
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return cs_err_set(e, CS_E_PROTO, "<%s> is not a number", what);
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return cs_err_set(e, CS_E_PROTO, "<%s> is out of range", what);
        v = v * 10 + d;
    }
    *dst = v;
    *seen = true;
    return 0;
}

int cs_xml_bool(bool *dst, bool *seen, const char *p, size_t n, const char *what, cs_err *e)
{
    if (*seen)
        return twice(what, e);
    trim(&p, &n);
    if (n == 4 && memcmp(p, "true", 4) == 0)
        *dst = true;
    else if (n == 5 && memcmp(p, "false", 5) == 0)
        *dst = false;
    else
        return cs_err_set(e, CS_E_PROTO, "<%s> is neither true nor false", what);
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

static bool parse_iso8601(const char *p, size_t n, time_t *out)
{
    int y, mo, d, h, mi, s, oh = 0, om = 0;
    size_t i = 19;
    if (n < 20 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2, &h) || p[13] != ':' ||
        !digits(p + 14, 2, &mi) || p[16] != ':' || !digits(p + 17, 2, &s))
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
    } else if (i + 6 == n && (p[i] == '+' || p[i] == '-') && digits(p + i + 1, 2, &oh) && p[i + 3] == ':' &&
               digits(p + i + 4, 2, &om) && oh <= 23 && om <= 59) {
        if (p[i] == '-')
            oh = -oh, om = -om;
    } else {
        return false;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - oh * 3600 - om * 60;
    *out = (time_t)t;
    return true;
}

int cs_xml_iso8601(time_t *dst, bool *seen, const char *p, size_t n, const char *what, cs_err *e)
{
    if (*seen)
        return twice(what, e);
    trim(&p, &n);
    if (!parse_iso8601(p, n, dst))
        return cs_err_set(e, CS_E_PROTO, "<%s> is not an ISO 8601 time", what);
    *seen = true;
    return 0;
}

int cs_xml_list_add(void *items, size_t *n, size_t *cap, size_t size, const char *what, cs_err *e)
{
    void **arr = items;
    if (*n >= CS_XML_MAX_ITEMS)
        return cs_err_set(e, CS_E_PROTO, "more than %d <%s> entries", CS_XML_MAX_ITEMS, what);
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        if (nc > CS_XML_MAX_ITEMS)
            nc = CS_XML_MAX_ITEMS;
        *arr = cs_realloc(*arr, nc * size);
        *cap = nc;
    }
    memset((char *)*arr + *n * size, 0, size);
    (*n)++;
    return 0;
}

/* fuzz_xml.c - libFuzzer target for the XML reader (storage/xml).
 *
 * Every input is read from an exact-size heap copy (any read past the end
 * is caught) by callbacks that check the promises of xml.h: elements open
 * and close in pairs, at most CS_XML_MAX_DEPTH deep, with non-empty local
 * names of at most CS_XML_MAX_NAME bytes and no ':'; a leaf is an element
 * that had no child, its text NUL-terminated, of at most CS_XML_MAX_TEXT
 * bytes of valid UTF-8 without NUL; a success read exactly one root, closed.
 * A failure is CS_E_PROTO with a message (CS_E_INVAL never: doc is never
 * NULL). Then the same input again, with the callback failing at one event
 * chosen from the input: the parse must return that failure, as it was,
 * after exactly that many events. Leaks show up under LeakSanitizer.
 * Seeds: tests/fuzz/corpus/xml/ (S3 and Azure documents, a DOCTYPE, billion
 * laughs, XXE, prefixes, CDATA, deep nesting).
 *
 * Build and run: make fuzz-build; build/fuzz/fuzz_xml build/fuzz/xml.work
 * tests/fuzz/corpus/xml -max_total_time=60 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct checker {
    size_t depth;
    bool has_child[CS_XML_MAX_DEPTH + 1];
    unsigned roots;
    unsigned events;
    unsigned stop_at; /* 0: never */
} checker;

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 2, cp = c & 0x1Fu, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 3, cp = c & 0x0Fu, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 4, cp = c & 0x07u, min = 0x10000;
        else
            return false;
        if (i + need > n)
            return false;
        for (size_t k = 1; k < need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need;
    }
    return true;
}

static void check_path(const checker *c, const cs_xml_path *p)
{
    if (p->depth != c->depth || p->depth == 0 || p->depth > CS_XML_MAX_DEPTH)
        abort();
    /* The path matches its own names joined, and as many "*", not one more. */
    char names[CS_XML_MAX_DEPTH * (CS_XML_MAX_NAME + 1) + 1], stars[2 * CS_XML_MAX_DEPTH + 3];
    size_t nl = 0, sl = 0;
    for (size_t i = 0; i < p->depth; i++) {
        size_t n = strlen(p->names[i]);
        if (n == 0 || n > CS_XML_MAX_NAME || strpbrk(p->names[i], ":/*") ||
            !valid_utf8((const unsigned char *)p->names[i], n))
            abort();
        if (i) {
            names[nl++] = '/';
            stars[sl++] = '/';
        }
        memcpy(names + nl, p->names[i], n);
        nl += n;
        stars[sl++] = '*';
    }
    names[nl] = stars[sl] = '\0';
    if (!cs_xml_path_is(p, names) || !cs_xml_path_is(p, stars))
        abort();
    memcpy(stars + sl, "/*", 3);
    if (cs_xml_path_is(p, stars))
        abort();
}

static int event(checker *c, cs_err *e)
{
    if (++c->events == c->stop_at)
        return cs_err_set(e, CS_E_CORRUPT, "stop %u", c->events);
    return 0;
}

static int on_open(void *arg, const cs_xml_path *p, cs_err *e)
{
    checker *c = arg;
    if (c->depth)
        c->has_child[c->depth - 1] = true;
    else
        c->roots++;
    c->depth++;
    c->has_child[c->depth - 1] = false;
    check_path(c, p);
    return event(c, e);
}

static int on_leaf(void *arg, const cs_xml_path *p, const char *text, size_t len, cs_err *e)
{
    checker *c = arg;
    check_path(c, p);
    if (c->has_child[c->depth - 1] || len > CS_XML_MAX_TEXT || text[len] != '\0' ||
        !valid_utf8((const unsigned char *)text, len))
        abort();
    return event(c, e);
}

static int on_close(void *arg, const cs_xml_path *p, cs_err *e)
{
    checker *c = arg;
    check_path(c, p);
    c->depth--;
    return event(c, e);
}

static const cs_xml_handlers handlers = { on_open, on_leaf, on_close };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *doc = malloc(size ? size : 1);
    if (!doc)
        abort();
    if (size)
        memcpy(doc, data, size);

    checker c;
    memset(&c, 0, sizeof c);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_xml_parse(doc, size, &handlers, &c, &e);
    if (rc == 0) {
        if (c.depth != 0 || c.roots != 1)
            abort();
    } else if (rc != CS_E_PROTO || e.code != rc || !e.msg[0]) {
        abort();
    }

    /* Again, failing at one of the events the first run saw. */
    if (c.events) {
        unsigned stop = 1 + (unsigned)(size ? data[size / 2] : 0) % c.events;
        checker d;
        memset(&d, 0, sizeof d);
        d.stop_at = stop;
        cs_err_clear(&e);
        int rc2 = cs_xml_parse(doc, size, &handlers, &d, &e);
        if (rc2 != CS_E_CORRUPT || d.events != stop || e.code != CS_E_CORRUPT || strncmp(e.msg, "stop ", 5))
            abort();
    }
    free(doc);
    return 0;
}

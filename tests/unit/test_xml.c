/* test_xml.c - storage/xml: the XML reader on libexpat.
 *
 * The callbacks and paths (every event of a small document, in order),
 * path patterns, text decoding, namespace prefixes and QName checks, the
 * refusals that keep outside input harmless (DOCTYPE, billion laughs,
 * external entities, undefined entities), the limits, documents cut short
 * at every byte, callbacks that stop the parse, the leaf value helpers,
 * and Azure's List Blobs and Error documents read with path patterns (what
 * the Azure driver will do). Samples seed tests/fuzz/corpus/xml/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/xml.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a recorder: every event as one line ------------------------------------ */

typedef struct recorder {
    cs_buf log;
    int stop_at; /* fail the event with this number (1-based); 0: never */
    int events;
} recorder;

static void add_path(cs_buf *b, const cs_xml_path *p)
{
    for (size_t i = 0; i < p->depth; i++)
        cs_buf_printf(b, "%s%s", i ? "/" : "", p->names[i]);
}

static int count(recorder *r, cs_err *e)
{
    if (++r->events == r->stop_at)
        return cs_err_set(e, CS_E_CORRUPT, "stopped at event %d", r->events);
    return 0;
}

static int rec_open(void *arg, const cs_xml_path *p, cs_err *e)
{
    recorder *r = arg;
    cs_buf_addstr(&r->log, "open ");
    add_path(&r->log, p);
    cs_buf_addch(&r->log, '\n');
    return count(r, e);
}

static int rec_leaf(void *arg, const cs_xml_path *p, const char *text, size_t len, cs_err *e)
{
    recorder *r = arg;
    assert_int_equal(strlen(text), len); /* NUL-terminated, no NUL inside */
    cs_buf_addstr(&r->log, "leaf ");
    add_path(&r->log, p);
    cs_buf_printf(&r->log, "=[%s]\n", text);
    return count(r, e);
}

static int rec_close(void *arg, const cs_xml_path *p, cs_err *e)
{
    recorder *r = arg;
    cs_buf_addstr(&r->log, "close ");
    add_path(&r->log, p);
    cs_buf_addch(&r->log, '\n');
    return count(r, e);
}

static const cs_xml_handlers recording = { rec_open, rec_leaf, rec_close };

/* Parse from an exact-size heap copy (ASan sees any read past the end). */
static int parse_rec(const char *doc, size_t len, recorder *r, cs_err *e)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, doc, len);
    cs_err_clear(e);
    int rc = cs_xml_parse(copy, len, &recording, r, e);
    free(copy);
    if (rc)
        assert_int_equal(e->code, rc);
    return rc;
}

/* The events of doc, which must parse. */
static void expect_events(const char *doc, const char *want)
{
    recorder r = { CS_BUF_INIT, 0, 0 };
    cs_err e;
    if (parse_rec(doc, strlen(doc), &r, &e))
        fail_msg("%s: %s", doc, e.msg);
    assert_string_equal(cs_buf_str(&r.log), want);
    cs_buf_free(&r.log);
}

static void expect_bad(const char *doc, size_t len, const char *needle)
{
    recorder r = { CS_BUF_INIT, 0, 0 };
    cs_err e;
    int rc = parse_rec(doc, len, &r, &e);
    if (rc != CS_E_PROTO)
        fail_msg("expected CS_E_PROTO (%s) for %.*s, got %d", needle, (int)len, doc, rc);
    if (!strstr(e.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
    cs_buf_free(&r.log);
}

#define BAD(doc, needle) expect_bad(doc, strlen(doc), needle)

/* The text of the leaf <r><k>inner</k></r>. */
static void expect_text(const char *inner, const char *want)
{
    char *doc = cs_sprintf("<r><k>%s</k></r>", inner);
    char *events = cs_sprintf("open r\nopen r/k\nleaf r/k=[%s]\nclose r/k\nclose r\n", want);
    expect_events(doc, events);
    free(doc);
    free(events);
}

/* ---- events and paths ------------------------------------------------------------- */

static void test_events(void **state)
{
    (void)state;
    expect_events("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<a x=\"1\">\n  <b>one</b>\n  <c><d/><e>two</e></c>\n  <b></b>\n</a>\n",
                  "open a\n"
                  "open a/b\nleaf a/b=[one]\nclose a/b\n"
                  "open a/c\n"
                  "open a/c/d\nleaf a/c/d=[]\nclose a/c/d\n"
                  "open a/c/e\nleaf a/c/e=[two]\nclose a/c/e\n"
                  "close a/c\n"
                  "open a/b\nleaf a/b=[]\nclose a/b\n"
                  "close a\n");
    /* A root without children is a leaf too; text around children is not kept. */
    expect_events("<a>only</a>", "open a\nleaf a=[only]\nclose a\n");
    expect_events("<a>x<b>y</b>z</a>", "open a\nopen a/b\nleaf a/b=[y]\nclose a/b\nclose a\n");
    /* Namespace prefixes are dropped (and need no declaration). */
    expect_events("<s3:a xmlns:s3=\"urn:x\"><s3:b>k</s3:b><c:d>v</c:d></s3:a>",
                  "open a\nopen a/b\nleaf a/b=[k]\nclose a/b\nopen a/d\nleaf a/d=[v]\nclose a/d\nclose a\n");
    /* Leading whitespace and a byte order mark; trailing comments and PIs. */
    expect_events("\xEF\xBB\xBF  \r\n<?xml version='1.0'?><!-- c --><?pi x?><a/>\n<!-- t --><?pi?>\n",
                  "open a\nleaf a=[]\nclose a\n");
    /* Non-ASCII names are XML. */
    expect_events("<caf\xc3\xa9/>", "open caf\xc3\xa9\nleaf caf\xc3\xa9=[]\nclose caf\xc3\xa9\n");
}

static bool path_is(const char *const *names, size_t depth, const char *pattern)
{
    cs_xml_path p = { names, depth };
    return cs_xml_path_is(&p, pattern);
}

static void test_path_is(void **state)
{
    (void)state;
    const char *const names[] = { "ListBucketResult", "Contents", "Key" };
    assert_true(path_is(names, 3, "ListBucketResult/Contents/Key"));
    assert_true(path_is(names, 3, "*/Contents/Key"));
    assert_true(path_is(names, 3, "*/*/*"));
    assert_true(path_is(names, 2, "ListBucketResult/Contents"));
    assert_true(path_is(names, 1, "ListBucketResult"));
    assert_true(path_is(names, 0, ""));
    assert_false(path_is(names, 3, "ListBucketResult/Contents"));
    assert_false(path_is(names, 2, "ListBucketResult/Contents/Key"));
    assert_false(path_is(names, 3, "ListBucketResult/Contents/Ke"));
    assert_false(path_is(names, 3, "ListBucketResult/Contents/Keys"));
    assert_false(path_is(names, 3, "ListBucketResult//Key"));
    assert_false(path_is(names, 3, "ListBucketResult/Contents/Key/"));
    assert_false(path_is(names, 3, "/ListBucketResult/Contents/Key"));
    assert_false(path_is(names, 3, "*/Content*/Key"));
    assert_false(path_is(names, 1, ""));
    assert_false(path_is(names, 0, "ListBucketResult"));
}

static void test_text(void **state)
{
    (void)state;
    expect_text("&amp;&lt;&gt;&quot;&apos;", "&<>\"'");
    expect_text("&#65;&#x42;&#x20AC;&#128512;&#xFFFD;&#x10FFFF;",
                "AB\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf");
    expect_text("a&#9;b&#10;c&#13;d", "a\tb\nc\rd");
    expect_text("a\r\nb\rc\nd", "a\nb\nc\nd"); /* line ends normalised, as XML says */
    expect_text("a<![CDATA[<b>&amp;]]>c", "a<b>&amp;c");
    expect_text("a<!-- comment -->b<?pi data?>c", "abc");
    expect_text(" padded ", " padded ");
    expect_text("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* Always UTF-8, whatever the declaration says. */
    expect_events("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xc3\xa9</a>",
                  "open a\nleaf a=[caf\xc3\xa9]\nclose a\n");
    BAD("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xe9</a>", "invalid UTF-8");
    BAD("<a>\xc0\xaf</a>", "invalid UTF-8");     /* overlong */
    BAD("<a>\xed\xa0\x80</a>", "invalid UTF-8"); /* surrogate */
    BAD("<a>\xef\xbf\xbf</a>", "invalid UTF-8"); /* U+FFFF */
    BAD("<a>&#0;</a>", "XML cannot carry");
    BAD("<a>&#xD800;</a>", "XML cannot carry");
    BAD("<a>x\x01y</a>", "control character in <a>");
    expect_bad("<a>\0</a>", 8, "control character in <a> (byte 3)");
    BAD("<a>]]></a>", "not well-formed");
}

static void test_names(void **state)
{
    (void)state;
    BAD("<a><a:b:c/></a>", "bad name <a:b:c>");
    BAD("<a><:b/></a>", "bad name");
    BAD("<a><b:/></a>", "bad name");
    BAD("<a><b:1c/></a>", "bad name");
    BAD("<a><b:-c/></a>", "bad name");
    BAD("<a x:y:z=\"1\"/>", "bad name");
    BAD("<1a/>", "not well-formed");
    cs_buf b = CS_BUF_INIT;
    char name[258];
    memset(name, 'n', sizeof name);
    name[256] = '\0';
    cs_buf_printf(&b, "<r><%s %s='1'/></r>", name, name);
    recorder r = { CS_BUF_INIT, 0, 0 };
    cs_err e;
    assert_int_equal(parse_rec(b.data, b.len, &r, &e), 0);
    cs_buf_free(&r.log);
    name[256] = 'n';
    name[257] = '\0';
    cs_buf_reset(&b);
    cs_buf_printf(&b, "<r><%s/></r>", name);
    BAD(cs_buf_str(&b), "name longer than 256 bytes in <r>");
    cs_buf_reset(&b);
    cs_buf_printf(&b, "<r><a %s='1'/></r>", name);
    BAD(cs_buf_str(&b), "name longer than 256 bytes");
    cs_buf_free(&b);
}

/* ---- what outside input must not do ---------------------------------------------- */

static void test_doctype_refused(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "<!DOCTYPE a><a/>",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ELEMENT a (#PCDATA)>]><a>x</a>",
        /* billion laughs */
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n<lolz>&lol9;</lolz>",
        /* XXE: an external entity naming a local file */
        "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><r><Key>&xxe;</Key></r>",
        /* an external parameter entity, and an external DTD */
        "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1:9/evil.dtd\"> %p;]><r/>",
        "<!DOCTYPE r SYSTEM \"http://127.0.0.1:9/evil.dtd\"><r>&x;</r>",
        "<!DOCTYPE r PUBLIC \"-//X//Y\" \"file:///dev/zero\"><r/>",
    };
    for (size_t i = 0; i < N(docs); i++) {
        recorder r = { CS_BUF_INIT, 0, 0 };
        cs_err e;
        assert_int_equal(parse_rec(docs[i], strlen(docs[i]), &r, &e), CS_E_PROTO);
        if (!strstr(e.msg, "DOCTYPE is not allowed"))
            fail_msg("doc %zu: %s", i, e.msg);
        assert_int_equal(r.events, 0); /* refused before anything was read */
        cs_buf_free(&r.log);
    }
    /* Without a DOCTYPE no entity but the five predefined exists. */
    BAD("<r>&xxe;</r>", "unknown entity");
    BAD("<r a=\"&lol;\"/>", "unknown entity");
    BAD("<r>&AMP;</r>", "unknown entity");
    /* A DOCTYPE anywhere else is not well-formed. */
    BAD("<r><!DOCTYPE r></r>", "not well-formed");
    BAD("<r/><!DOCTYPE r>", "content after the root element");
}

static void test_limits(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    recorder r = { CS_BUF_INIT, 0, 0 };
    cs_err e;
    /* 16 open elements are fine, 17 are not. */
    for (int i = 0; i < CS_XML_MAX_DEPTH; i++)
        cs_buf_addstr(&b, "<a>");
    for (int i = 0; i < CS_XML_MAX_DEPTH; i++)
        cs_buf_addstr(&b, "</a>");
    assert_int_equal(parse_rec(b.data, b.len, &r, &e), 0);
    cs_buf_reset(&b);
    for (int i = 0; i < 10000; i++)
        cs_buf_addstr(&b, "<a>");
    BAD(cs_buf_str(&b), "elements nested deeper than 16 in <a> (byte 48)");

    /* A leaf's text: 64 KiB at most, counted after decoding. */
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<r><k>");
    for (size_t i = 0; i < CS_XML_MAX_TEXT / 4; i++)
        cs_buf_addstr(&b, "abcd");
    cs_buf_addstr(&b, "</k></r>");
    cs_buf_reset(&r.log);
    assert_int_equal(parse_rec(b.data, b.len, &r, &e), 0);
    b.len -= strlen("</k></r>");
    cs_buf_addstr(&b, "&amp;</k></r>");
    BAD(cs_buf_str(&b), "text longer than 65536 bytes in <k>");
    /* Text beside children is not kept, so not limited. */
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<r><k/>");
    for (size_t i = 0; i < CS_XML_MAX_TEXT; i++)
        cs_buf_addstr(&b, "x ");
    cs_buf_addstr(&b, "</r>");
    cs_buf_reset(&r.log);
    assert_int_equal(parse_rec(b.data, b.len, &r, &e), 0);

    /* The whole document: CS_XML_MAX_DOC bytes at most. */
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<r><k/>");
    size_t fill = CS_XML_MAX_DOC - strlen("<r><k/></r>");
    cs_buf_reserve(&b, fill + 8);
    memset(b.data + b.len, ' ', fill);
    b.len += fill;
    cs_buf_addstr(&b, "</r>");
    assert_int_equal(b.len, CS_XML_MAX_DOC);
    assert_int_equal(cs_xml_parse(b.data, b.len, &recording, &r, &e), 0);
    cs_buf_addch(&b, ' ');
    assert_int_equal(cs_xml_parse(b.data, b.len, &recording, &r, &e), CS_E_PROTO);
    assert_string_equal(e.msg, "document longer than 16777216 bytes");

    /* Lists. */
    char **items = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < CS_XML_MAX_ITEMS; i++) {
        assert_int_equal(cs_xml_list_add(&items, &n, &cap, sizeof *items, "Blob", &e), 0);
        assert_null(items[n - 1]);
    }
    assert_int_equal(n, CS_XML_MAX_ITEMS);
    assert_int_equal(cs_xml_list_add(&items, &n, &cap, sizeof *items, "Blob", &e), CS_E_PROTO);
    assert_string_equal(e.msg, "more than 100000 <Blob> entries");
    assert_int_equal(n, CS_XML_MAX_ITEMS);
    free(items);
    cs_buf_free(&r.log);
    cs_buf_free(&b);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    recorder r = { CS_BUF_INIT, 0, 0 };
    cs_err e;
    assert_int_equal(cs_xml_parse(NULL, 0, &recording, &r, &e), CS_E_PROTO);
    assert_string_equal(e.msg, "empty document");
    assert_int_equal(cs_xml_parse(NULL, 1, &recording, &r, &e), CS_E_INVAL);
    BAD(" \r\n\t", "empty document");
    BAD("\xEF\xBB\xBF", "empty document");
    BAD("<?xml version=\"1.0\"?>", "unexpected end of document");
    BAD("<r><k>v</k>", "unexpected end of document in <r>");
    BAD("hello", "text outside the root element");
    BAD("<r/>trailing", "text outside the root element (byte 4)");
    BAD("  <r/>trailing", "text outside the root element (byte 6)");
    BAD("<r/><r/>", "content after the root element");
    BAD("<![CDATA[x]]><r/>", "unexpected markup");
    BAD("<!-- x --><?xml version=\"1.0\"?><r/>", "misplaced XML declaration");
    BAD("<r><a></b></r>", "</b> does not close <a> (byte 8)");
    BAD("<s3:r></r>", "</r> does not close <s3:r>");
    BAD("<r a></r>", "not well-formed at '>' (byte 4)");
    BAD("<r a=\"1\" a=\"2\"/>", "duplicate attribute");
    cs_buf_free(&r.log);
}

/* Every prefix of a document: a clean "unexpected end of document" (or
 * "empty document") until its root element is complete, then success. */
static void test_truncation(void **state)
{
    (void)state;
    static const char doc[] =
        "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
        "<!-- c --><r xmlns=\"urn:x\" a='&amp;'><k>caf\xc3\xa9 &lt;&#x20AC;&#128512;<![CDATA[<>]]></k>"
        "<?pi x?><e/><s3:k>v</s3:k></r>\n";
    size_t len = strlen(doc), end = (size_t)(strrchr(doc, '>') - doc) + 1;
    for (size_t k = 0; k <= len; k++) {
        recorder r = { CS_BUF_INIT, 0, 0 };
        cs_err e;
        int rc = parse_rec(doc, k, &r, &e);
        if (k >= end) {
            if (rc)
                fail_msg("%zu of %zu bytes: %s", k, len, e.msg);
        } else if (rc != CS_E_PROTO || (strncmp(e.msg, "unexpected end of document", 26) != 0 &&
                                        strcmp(e.msg, "empty document") != 0)) {
            fail_msg("%zu of %zu bytes: %d %s", k, len, rc, e.msg);
        }
        cs_buf_free(&r.log);
    }
}

/* A callback's failure stops the parse and comes back as it was. */
static void test_callback_stops(void **state)
{
    (void)state;
    static const char doc[] = "<r><a>1</a><b><c/></b></r>";
    recorder all = { CS_BUF_INIT, 0, 0 };
    cs_err e;
    assert_int_equal(parse_rec(doc, strlen(doc), &all, &e), 0);
    for (int stop = 1; stop <= all.events; stop++) {
        recorder r = { CS_BUF_INIT, stop, 0 };
        assert_int_equal(parse_rec(doc, strlen(doc), &r, &e), CS_E_CORRUPT);
        assert_int_equal(r.events, stop); /* nothing after the failure */
        char want[64];
        snprintf(want, sizeof want, "stopped at event %d", stop);
        assert_string_equal(e.msg, want);
        cs_buf_free(&r.log);
    }
    cs_buf_free(&all.log);
    /* No callbacks at all is fine: a well-formedness check. */
    static const cs_xml_handlers none = { NULL, NULL, NULL };
    assert_int_equal(cs_xml_parse(doc, strlen(doc), &none, NULL, &e), 0);
}

/* ---- leaf values --------------------------------------------------------------------- */

static void test_values(void **state)
{
    (void)state;
    cs_err e;
    char *s = NULL;
    assert_int_equal(cs_xml_str(&s, " a b ", 5, "Name", &e), 0);
    assert_string_equal(s, " a b ");
    assert_int_equal(cs_xml_str(&s, "c", 1, "Name", &e), CS_E_PROTO);
    assert_string_equal(e.msg, "<Name> given twice");
    free(s);

    uint64_t v = 0;
    bool seen = false;
    assert_int_equal(cs_xml_u64(&v, &seen, " 18446744073709551615\n", 22, "Content-Length", &e), 0);
    assert_true(seen && v == UINT64_MAX);
    assert_int_equal(cs_xml_u64(&v, &seen, "1", 1, "Content-Length", &e), CS_E_PROTO);
    assert_string_equal(e.msg, "<Content-Length> given twice");
    static const char *const bad_numbers[] = { "", " ", "-1", "1a", "0x10", "+1", "1 2" };
    for (size_t i = 0; i < N(bad_numbers); i++) {
        seen = false;
        assert_int_equal(cs_xml_u64(&v, &seen, bad_numbers[i], strlen(bad_numbers[i]), "Size", &e), CS_E_PROTO);
        assert_string_equal(e.msg, "<Size> is not a number");
        assert_false(seen);
    }
    seen = false;
    assert_int_equal(cs_xml_u64(&v, &seen, "18446744073709551616", 20, "Size", &e), CS_E_PROTO);
    assert_string_equal(e.msg, "<Size> is out of range");

    bool t = false;
    seen = false;
    assert_int_equal(cs_xml_bool(&t, &seen, "\ttrue ", 6, "IsTruncated", &e), 0);
    assert_true(t);
    seen = false;
    assert_int_equal(cs_xml_bool(&t, &seen, "false", 5, "IsTruncated", &e), 0);
    assert_false(t);
    seen = false;
    assert_int_equal(cs_xml_bool(&t, &seen, "True", 4, "IsTruncated", &e), CS_E_PROTO);
    assert_string_equal(e.msg, "<IsTruncated> is neither true nor false");

    static const struct {
        const char *text;
        int64_t want;
    } times[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "2009-10-12T17:50:30.000Z", 1255369830 },
        { "2025-01-27T12:00:00.0000000Z", 1737979200 }, /* Azure's seven digits */
        { "2009-10-12T12:20:30-05:30", 1255369830 },
        { " 2000-02-29T12:00:00Z ", 951825600 },
    };
    for (size_t i = 0; i < N(times); i++) {
        time_t tt = 0;
        seen = false;
        if (cs_xml_iso8601(&tt, &seen, times[i].text, strlen(times[i].text), "Time", &e))
            fail_msg("%s: %s", times[i].text, e.msg);
        assert_true((int64_t)tt == times[i].want);
    }
    static const char *const bad_times[] = { "2009-10-12", "2023-02-29T00:00:00Z", "2009-10-12T17:50:30",
                                             "Mon, 27 Jan 2025 12:00:00 GMT" };
    for (size_t i = 0; i < N(bad_times); i++) {
        time_t tt = 0;
        seen = false;
        assert_int_equal(cs_xml_iso8601(&tt, &seen, bad_times[i], strlen(bad_times[i]), "Time", &e), CS_E_PROTO);
        assert_string_equal(e.msg, "<Time> is not an ISO 8601 time");
    }
}

/* ---- Azure's documents, read the way a driver reads them ---------------------------- */

static const char AZURE_LIST[] =
    "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<EnumerationResults ServiceEndpoint=\"http://127.0.0.1:10000/devstoreaccount1\" ContainerName=\"cassette\">"
    "<Prefix>objects/</Prefix><MaxResults>2</MaxResults><Blobs>"
    "<Blob><Name>objects/ab/abcdef</Name><Properties>"
    "<Creation-Time>Mon, 27 Jan 2025 12:00:00 GMT</Creation-Time>"
    "<Last-Modified>Mon, 27 Jan 2025 12:00:00 GMT</Last-Modified><Etag>0x8DD3F0A1B2C3D4E</Etag>"
    "<Content-Length>1048576</Content-Length><Content-Type>application/octet-stream</Content-Type>"
    "<BlobType>BlockBlob</BlobType><LeaseStatus>unlocked</LeaseStatus></Properties></Blob>"
    "<Blob><Name>objects/ab/Tom &amp; Jerry</Name><Properties><Content-Length>0</Content-Length>"
    "</Properties><Metadata/></Blob>"
    "<BlobPrefix><Name>objects/cd/</Name></BlobPrefix>"
    "</Blobs><NextMarker>2!84!MDAwMDE5IW9iamVjdHMvYWIvYWJjZGVm</NextMarker></EnumerationResults>";

static const char AZURE_ERROR[] =
    "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobAlreadyExists</Code>"
    "<Message>The specified blob already exists.\n"
    "RequestId:3b1c2f7e-601e-0061-3c3a-70b1d4000000\n"
    "Time:2025-01-27T12:00:00.0000000Z</Message></Error>";

typedef struct blob {
    char *name;
    uint64_t size;
    bool has_size;
} blob;

typedef struct listing {
    blob *blobs;
    size_t n, cap;
    char *next_marker;
    char **prefixes;
    size_t nprefixes, cap_prefixes;
} listing;

static int list_open(void *arg, const cs_xml_path *p, cs_err *e)
{
    listing *l = arg;
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob"))
        return cs_xml_list_add(&l->blobs, &l->n, &l->cap, sizeof *l->blobs, "Blob", e);
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/BlobPrefix"))
        return cs_xml_list_add(&l->prefixes, &l->nprefixes, &l->cap_prefixes, sizeof *l->prefixes, "BlobPrefix",
                               e);
    return 0;
}

static int list_leaf(void *arg, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    listing *l = arg;
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob/Name"))
        return cs_xml_str(&l->blobs[l->n - 1].name, t, n, "Name", e);
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob/Properties/Content-Length"))
        return cs_xml_u64(&l->blobs[l->n - 1].size, &l->blobs[l->n - 1].has_size, t, n, "Content-Length", e);
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/BlobPrefix/Name"))
        return cs_xml_str(&l->prefixes[l->nprefixes - 1], t, n, "Name", e);
    if (cs_xml_path_is(p, "EnumerationResults/NextMarker"))
        return cs_xml_str(&l->next_marker, t, n, "NextMarker", e);
    return 0;
}

static int list_close(void *arg, const cs_xml_path *p, cs_err *e)
{
    listing *l = arg;
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob") && !l->blobs[l->n - 1].name)
        return cs_err_set(e, CS_E_PROTO, "<Blob> without <Name>");
    return 0;
}

static void listing_free(listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->blobs[i].name);
    for (size_t i = 0; i < l->nprefixes; i++)
        free(l->prefixes[i]);
    free(l->blobs);
    free(l->prefixes);
    free(l->next_marker);
}

static void test_azure_documents(void **state)
{
    (void)state;
    static const cs_xml_handlers list = { list_open, list_leaf, list_close };
    listing l = { 0 };
    cs_err e;
    assert_int_equal(cs_xml_parse(AZURE_LIST, strlen(AZURE_LIST), &list, &l, &e), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.blobs[0].name, "objects/ab/abcdef");
    assert_true(l.blobs[0].has_size && l.blobs[0].size == 1048576);
    assert_string_equal(l.blobs[1].name, "objects/ab/Tom & Jerry");
    assert_true(l.blobs[1].has_size && l.blobs[1].size == 0);
    assert_int_equal(l.nprefixes, 1);
    assert_string_equal(l.prefixes[0], "objects/cd/");
    assert_string_equal(l.next_marker, "2!84!MDAwMDE5IW9iamVjdHMvYWIvYWJjZGVm");
    listing_free(&l);

    /* The driver's own checks come back as they were. */
    static const char nameless[] = "<EnumerationResults><Blobs><Blob><Properties/></Blob></Blobs></EnumerationResults>";
    memset(&l, 0, sizeof l);
    assert_int_equal(cs_xml_parse(nameless, strlen(nameless), &list, &l, &e), CS_E_PROTO);
    assert_string_equal(e.msg, "<Blob> without <Name>");
    listing_free(&l);

    expect_events(AZURE_ERROR, "open Error\nopen Error/Code\nleaf Error/Code=[BlobAlreadyExists]\nclose Error/Code\n"
                               "open Error/Message\nleaf Error/Message=[The specified blob already exists.\n"
                               "RequestId:3b1c2f7e-601e-0061-3c3a-70b1d4000000\n"
                               "Time:2025-01-27T12:00:00.0000000Z]\nclose Error/Message\nclose Error\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_path_is),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_doctype_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_azure_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* azxml.c - the Azure Blob documents (see azxml.h), on storage/xml. */
#include "storage/azxml.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/xml.h"

/* ---- List Blobs ------------------------------------------------------------------ */

typedef struct list_ctx {
    cs_azxml_list *out;
    size_t cap;
    bool *seen_size; /* by blob: was Content-Length given */
    size_t cap_seen;
    bool root_ok;
} list_ctx;

static int list_open(void *arg, const cs_xml_path *p, cs_err *e)
{
    list_ctx *c = arg;
    if (p->depth == 1) {
        if (!cs_xml_path_is(p, "EnumerationResults"))
            return cs_err_set(e, CS_E_PROTO, "<%s> where <EnumerationResults> was expected", p->names[0]);
        c->root_ok = true;
        return 0;
    }
    if (!cs_xml_path_is(p, "EnumerationResults/Blobs/Blob"))
        return 0;
    size_t n = c->out->nblobs;
    int rc = cs_xml_list_add(&c->out->blobs, &c->out->nblobs, &c->cap, sizeof *c->out->blobs, "Blob", e);
    if (!rc) {
        size_t k = n;
        rc = cs_xml_list_add(&c->seen_size, &k, &c->cap_seen, sizeof *c->seen_size, "Blob", e);
    }
    return rc;
}

static int list_leaf(void *arg, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    list_ctx *c = arg;
    cs_azxml_list *o = c->out;
    if (cs_xml_path_is(p, "EnumerationResults/NextMarker"))
        return cs_xml_str(&o->next_marker, t, n, "NextMarker", e);
    if (o->nblobs == 0)
        return 0;
    cs_azxml_blob *b = &o->blobs[o->nblobs - 1];
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob/Name"))
        return cs_xml_str(&b->name, t, n, "Name", e);
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob/Properties/Content-Length"))
        return cs_xml_u64(&b->size, &c->seen_size[o->nblobs - 1], t, n, "Content-Length", e);
    if (cs_xml_path_is(p, "EnumerationResults/Blobs/Blob/Properties/Last-Modified") &&
        !cs_azxml_http_date(t, n, &b->mtime))
        return cs_err_set(e, CS_E_PROTO, "<Last-Modified> is not an HTTP date");
    return 0;
}

static int list_close(void *arg, const cs_xml_path *p, cs_err *e)
{
    list_ctx *c = arg;
    if (!cs_xml_path_is(p, "EnumerationResults/Blobs/Blob"))
        return 0;
    size_t i = c->out->nblobs - 1;
    if (!c->out->blobs[i].name || !c->out->blobs[i].name[0])
        return cs_err_set(e, CS_E_PROTO, "<Blob> without <Name>");
    if (!c->seen_size[i])
        return cs_err_set(e, CS_E_PROTO, "<Blob> without <Content-Length>");
    return 0;
}

void cs_azxml_list_free(cs_azxml_list *l)
{
    for (size_t i = 0; i < l->nblobs; i++)
        free(l->blobs[i].name);
    free(l->blobs);
    free(l->next_marker);
    memset(l, 0, sizeof *l);
}

int cs_azxml_parse_list(const char *doc, size_t len, cs_azxml_list *out, cs_err *e)
{
    static const cs_xml_handlers h = { list_open, list_leaf, list_close };
    memset(out, 0, sizeof *out);
    list_ctx c = { .out = out };
    int rc = cs_xml_parse(doc, len, &h, &c, e);
    free(c.seen_size);
    if (rc) {
        cs_azxml_list_free(out);
        if (rc == CS_E_PROTO)
            cs_err_prefix(e, "Azure response");
    }
    return rc;
}

/* ---- Error ----------------------------------------------------------------------- */

static int error_open(void *arg, const cs_xml_path *p, cs_err *e)
{
    (void)arg;
    if (p->depth == 1 && !cs_xml_path_is(p, "Error"))
        return cs_err_set(e, CS_E_PROTO, "<%s> where <Error> was expected", p->names[0]);
    return 0;
}

static int error_leaf(void *arg, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    cs_azxml_error *x = arg;
    if (cs_xml_path_is(p, "Error/Code"))
        return cs_xml_str(&x->code, t, n, "Code", e);
    if (cs_xml_path_is(p, "Error/Message"))
        return cs_xml_str(&x->message, t, strcspn(t, "\n"), "Message", e);
    return 0;
}

void cs_azxml_error_free(cs_azxml_error *x)
{
    free(x->code);
    free(x->message);
    memset(x, 0, sizeof *x);
}

int cs_azxml_parse_error(const char *doc, size_t len, cs_azxml_error *out, cs_err *e)
{
    static const cs_xml_handlers h = { error_open, error_leaf, NULL };
    memset(out, 0, sizeof *out);
    int rc = cs_xml_parse(doc, len, &h, out, e);
    if (rc) {
        cs_azxml_error_free(out);
        if (rc == CS_E_PROTO)
            cs_err_prefix(e, "Azure response");
    }
    return rc;
}

/* ---- Put Block List ---------------------------------------------------------------- */

void cs_azxml_block_list_body(const char *const *ids, size_t n, cs_buf *out)
{
    cs_buf_reset(out);
    cs_buf_addstr(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>");
    for (size_t i = 0; i < n; i++)
        cs_buf_printf(out, "<Latest>%s</Latest>", ids[i]); /* base64: nothing to escape */
    cs_buf_addstr(out, "</BlockList>");
}

/* ---- HTTP dates ------------------------------------------------------------------------ */

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

static int index_of(const char *p, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strncmp(p, names[i], 3))
            return i;
    return -1;
}

bool cs_azxml_http_date(const char *t, size_t len, int64_t *out)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    /* "Sun, 11 Oct 2009 21:49:13 GMT": 29 bytes, fixed positions. */
    if (len != 29 || t[3] != ',' || t[4] != ' ' || t[7] != ' ' || t[11] != ' ' || t[16] != ' ' || t[19] != ':' ||
        t[22] != ':' || t[25] != ' ' || memcmp(t + 26, "GMT", 3) || index_of(t, days, 7) < 0)
        return false;
    int mday, year, hour, min, sec, mon = index_of(t + 8, months, 12);
    if (mon < 0 || !digits(t + 5, 2, &mday) || !digits(t + 12, 4, &year) || !digits(t + 17, 2, &hour) ||
        !digits(t + 20, 2, &min) || !digits(t + 23, 2, &sec))
        return false;
    if (mday < 1 || mday > 31 || year < 1970 || hour > 23 || min > 59 || sec > 59)
        return false;
    struct tm tm = { .tm_year = year - 1900, .tm_mon = mon, .tm_mday = mday, .tm_hour = hour, .tm_min = min,
                     .tm_sec = sec };
    time_t v = timegm(&tm);
    if (v == (time_t)-1)
        return false;
    *out = (int64_t)v;
    return true;
}

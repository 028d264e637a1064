/* fuzz_azxml.c - libFuzzer target for the Azure Blob documents
 * (storage/azxml).
 *
 * Every input is read by both parse functions (a List Blobs page, an Error
 * document) and, as text, by the HTTP date parser, each from an exact-size
 * heap copy so that any read past the end is caught. Each must end in a
 * documented way: 0, or CS_E_PROTO with "Azure response: ...". A failed
 * parse leaves its output empty; a successful List Blobs gives every blob a
 * non-empty name without NUL; a parsed date formats back to the same text.
 * Leaks show up under LeakSanitizer. Seeds: tests/fuzz/corpus/azxml/.
 *
 * Build and run: make fuzz-build; build/fuzz/fuzz_azxml build/fuzz/azxml.work
 * tests/fuzz/corpus/azxml -max_total_time=60 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/azxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_outcome(int rc, const cs_err *e)
{
    if (rc == 0)
        return;
    if (rc != CS_E_PROTO || e->code != rc || strncmp(e->msg, "Azure response: ", 16) != 0)
        abort();
}

static void check_date(const char *doc, size_t size)
{
    int64_t t = 0;
    if (!cs_azxml_http_date(doc, size, &t))
        return;
    time_t tt = (time_t)t;
    struct tm tm;
    char back[64];
    if (!gmtime_r(&tt, &tm) || strftime(back, sizeof back, "%a, %d %b %Y %H:%M:%S GMT", &tm) != 29)
        abort();
    /* Day names are not checked against the date, nor days against the month (timegm
     * normalises): only the time of day must come back. */
    if (memcmp(back + 17, doc + 17, 8) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *doc = malloc(size ? size : 1);
    if (!doc)
        return 0;
    memcpy(doc, data, size);
    cs_err e;

    cs_azxml_list l;
    int rc = cs_azxml_parse_list(doc, size, &l, &e);
    check_outcome(rc, &e);
    if (rc && (l.blobs || l.nblobs || l.next_marker))
        abort();
    for (size_t i = 0; i < l.nblobs; i++)
        if (!l.blobs[i].name || !l.blobs[i].name[0])
            abort();
    cs_azxml_list_free(&l);

    cs_azxml_error x;
    rc = cs_azxml_parse_error(doc, size, &x, &e);
    check_outcome(rc, &e);
    if (rc && (x.code || x.message))
        abort();
    if (x.message && strchr(x.message, '\n'))
        abort();
    cs_azxml_error_free(&x);

    check_date(doc, size);
    free(doc);
    return 0;
}

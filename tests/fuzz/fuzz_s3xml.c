/* fuzz_s3xml.c - libFuzzer target for the S3 XML reader and writers
 * (storage/s3xml).
 *
 * Every input is read by every parse function (list, initiate, complete,
 * error, delete, uploads, parts), each from an exact-size heap copy so that any read
 * past the end is caught. Each must end in a documented way: 0, CS_E_PROTO
 * with "S3 response: ...", or CS_E_EXTERNAL with "S3 error ..." (and the
 * latter exactly when cs_s3xml_parse_error accepts the same input). A failed
 * parse leaves its output empty; a successful one gives the required fields
 * and only strings that cs_s3xml_escape accepts (valid UTF-8, XML
 * characters); each such string, escaped and read back inside a
 * <DeleteResult>, comes back identical. The input itself, when it can be
 * escaped, round-trips the same way, and goes through both body writers.
 * Leaks show up under LeakSanitizer. Seeds: tests/fuzz/corpus/s3xml/ (the
 * unit tests' samples of every document, a 200 OK <Error>, a keep-alive
 * body, syntax corner cases, deep nesting).
 *
 * Build and run: make fuzz-build; build/fuzz/fuzz_s3xml build/fuzz/s3xml.work
 * tests/fuzz/corpus/s3xml -max_total_time=60 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* A parsed string: required or NULL, escapable, and read back unchanged. */
static void check_str(const char *s, int required)
{
    if (!s) {
        if (required)
            abort();
        return;
    }
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    size_t n = strlen(s);
    if (cs_s3xml_escape(s, n, &b, &e))
        abort();
    if (n) {
        cs_buf doc = CS_BUF_INIT;
        cs_buf_printf(&doc, "<DeleteResult><Deleted><Key>%s</Key></Deleted></DeleteResult>", cs_buf_str(&b));
        cs_s3xml_delete d;
        int rc = cs_s3xml_parse_delete(doc.data, doc.len, &d, &e);
        /* Only the text limit may refuse it (entities grow it). */
        if (rc == 0) {
            if (d.ndeleted != 1 || strcmp(d.deleted[0], s) != 0)
                abort();
        } else if (rc != CS_E_PROTO || !strstr(e.msg, "text longer than")) {
            abort();
        }
        cs_s3xml_delete_free(&d);
        cs_buf_free(&doc);
    }
    cs_buf_free(&b);
}

static void check_outcome(int rc, const cs_err *e, int may_be_external)
{
    if (rc == 0)
        return;
    if (e->code != rc)
        abort();
    if (rc == CS_E_PROTO && starts(e->msg, "S3 response: "))
        return;
    if (rc == CS_E_EXTERNAL && may_be_external && starts(e->msg, "S3 error "))
        return;
    abort();
}

/* Returns the parse code; aborts on any broken promise. */
static int run_list(const char *p, size_t n)
{
    cs_s3xml_list o;
    cs_err e;
    int rc = cs_s3xml_parse_list(p, n, &o, &e);
    check_outcome(rc, &e, 1);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    if (o.is_truncated && (!o.next_continuation_token || !o.next_continuation_token[0]))
        abort();
    check_str(o.next_continuation_token, 0);
    for (size_t i = 0; i < o.nobjects; i++) {
        check_str(o.objects[i].key, 1);
        check_str(o.objects[i].etag, 0);
    }
    for (size_t i = 0; i < o.nprefixes; i++)
        check_str(o.prefixes[i], 1);
    cs_s3xml_list_free(&o);
    return 0;
}

static int run_initiate(const char *p, size_t n)
{
    cs_s3xml_initiate o;
    cs_err e;
    int rc = cs_s3xml_parse_initiate(p, n, &o, &e);
    check_outcome(rc, &e, 1);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    check_str(o.bucket, 0);
    check_str(o.key, 0);
    check_str(o.upload_id, 1);
    cs_s3xml_initiate_free(&o);
    return 0;
}

static int run_complete(const char *p, size_t n)
{
    cs_s3xml_complete o;
    cs_err e;
    int rc = cs_s3xml_parse_complete(p, n, &o, &e);
    check_outcome(rc, &e, 1);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    check_str(o.location, 0);
    check_str(o.bucket, 0);
    check_str(o.key, 0);
    check_str(o.etag, 1);
    cs_s3xml_complete_free(&o);
    return 0;
}

static int run_error(const char *p, size_t n)
{
    cs_s3xml_error o;
    cs_err e;
    int rc = cs_s3xml_parse_error(p, n, &o, &e);
    check_outcome(rc, &e, 0);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    check_str(o.code, 1);
    check_str(o.message, 0);
    check_str(o.request_id, 0);
    check_str(o.resource, 0);
    cs_s3xml_error_free(&o);
    return 0;
}

static int run_delete(const char *p, size_t n)
{
    cs_s3xml_delete o;
    cs_err e;
    int rc = cs_s3xml_parse_delete(p, n, &o, &e);
    check_outcome(rc, &e, 1);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    for (size_t i = 0; i < o.ndeleted; i++)
        check_str(o.deleted[i], 1);
    for (size_t i = 0; i < o.nerrors; i++) {
        check_str(o.errors[i].key, 1);
        check_str(o.errors[i].code, 1);
        check_str(o.errors[i].message, 0);
    }
    cs_s3xml_delete_free(&o);
    return 0;
}

static int run_uploads(const char *p, size_t n)
{
    cs_s3xml_uploads o;
    cs_err e;
    int rc = cs_s3xml_parse_uploads(p, n, &o, &e);
    check_outcome(rc, &e, 1);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    if (o.is_truncated && (!o.next_key_marker || !o.next_key_marker[0]))
        abort();
    check_str(o.next_key_marker, 0);
    check_str(o.next_upload_id_marker, 0);
    for (size_t i = 0; i < o.nuploads; i++) {
        check_str(o.uploads[i].key, 1);
        check_str(o.uploads[i].upload_id, 1);
    }
    cs_s3xml_uploads_free(&o);
    return 0;
}

static int run_parts(const char *p, size_t n)
{
    cs_s3xml_parts o;
    cs_err e;
    int rc = cs_s3xml_parse_parts(p, n, &o, &e);
    check_outcome(rc, &e, 1);
    if (rc) {
        if (!all_zero(&o, sizeof o))
            abort();
        return rc;
    }
    for (size_t i = 0; i < o.nparts; i++) {
        if (o.parts[i].part_number < 1 || o.parts[i].part_number > 10000)
            abort();
        check_str(o.parts[i].etag, 1);
    }
    cs_s3xml_parts_free(&o);
    return 0;
}

/* The input as text to write: escape, read back, and both body writers. */
static void run_writers(const char *p, size_t n)
{
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    int rc = cs_s3xml_escape(p, n, &b, &e);
    if (rc) {
        if (rc != CS_E_INVAL || b.len || !starts(e.msg, "S3 request: "))
            abort();
        cs_buf_free(&b);
        return;
    }
    if (n && n <= 1024 && !memchr(p, '\0', n)) {
        char *s = malloc(n + 1);
        if (!s)
            abort();
        memcpy(s, p, n);
        s[n] = '\0';
        check_str(s, 1);
        const char *keys[2] = { s, "k" };
        cs_buf body = CS_BUF_INIT;
        if (cs_s3xml_delete_body(keys, 2, n & 1, &body, &e))
            abort(); /* an escapable key of 1..1024 bytes is always accepted */
        cs_buf_reset(&body);
        cs_s3xml_part parts[2] = { { 1, s }, { 2, "\"x\"" } };
        if (cs_s3xml_complete_body(parts, 2, &body, &e))
            abort();
        cs_buf_free(&body);
        free(s);
    }
    cs_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);

    int is_error = run_error(p, size) == 0;
    int rcs[6] = { run_list(p, size), run_initiate(p, size), run_complete(p, size),
                   run_delete(p, size), run_uploads(p, size), run_parts(p, size) };
    /* An <Error> document is recognised by every result parser, and only it. */
    for (int i = 0; i < 6; i++)
        if ((rcs[i] == CS_E_EXTERNAL) != is_error)
            abort();
    /* One document is at most one kind. */
    int ok = 0;
    for (int i = 0; i < 6; i++)
        ok += rcs[i] == 0;
    if (ok + is_error > 1)
        abort();

    run_writers(p, size);
    free(p);
    return 0;
}

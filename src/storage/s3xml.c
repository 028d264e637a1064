/* s3xml.c - the S3 documents read and written by the S3 driver (see
 * s3xml.h for what it owns).
 *
 * Reading is storage/xml's (libexpat): each document is a set of path
 * callbacks that fill its plain struct, behind one wrapper that checks the
 * root element (the expected one, or an S3 <Error> in its place), runs the
 * document's final checks and gives every error its "S3 response: " prefix.
 * Writing is a few fixed templates with escaped text. */
#include "storage/s3xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/xml.h"

/* ---- the wrapper ---------------------------------------------------------------- */

/* A document's callbacks (on paths below a root already checked) and the
 * checks of what it must hold once read; any may be NULL. */
typedef struct doc_ops {
    const char *root;
    cs_xml_handlers h;
    int (*finish)(void *ctx, cs_err *e);
} doc_ops;

typedef struct doc_reader {
    const doc_ops *ops; /* the expected document's, or error_ops */
    void *ctx;
    cs_s3xml_error *err; /* where an <Error> root goes */
    bool is_error;
} doc_reader;

static const doc_ops error_ops;

static bool empty(const char *s)
{
    return !s || !s[0];
}

static int perr(cs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(cs_err *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cs_err_set(e, CS_E_PROTO, "%s", msg);
}

/* The root decides the document: the one expected, or an S3 <Error>. */
static int check_root(doc_reader *r, const char *name, cs_err *e)
{
    if (!strcmp(name, r->ops->root))
        return 0;
    if (!strcmp(name, "Error") && strcmp(r->ops->root, "Error") != 0) {
        r->is_error = true;
        r->ops = &error_ops;
        r->ctx = r->err;
        return 0;
    }
    return perr(e, "expected <%s>, got <%s>", r->ops->root, name);
}

static int on_open(void *arg, const cs_xml_path *p, cs_err *e)
{
    doc_reader *r = arg;
    int rc = p->depth == 1 ? check_root(r, p->names[0], e) : 0;
    return !rc && r->ops->h.open ? r->ops->h.open(r->ctx, p, e) : rc;
}

static int on_leaf(void *arg, const cs_xml_path *p, const char *text, size_t len, cs_err *e)
{
    doc_reader *r = arg;
    return r->ops->h.leaf ? r->ops->h.leaf(r->ctx, p, text, len, e) : 0;
}

static int on_close(void *arg, const cs_xml_path *p, cs_err *e)
{
    doc_reader *r = arg;
    return r->ops->h.close ? r->ops->h.close(r->ctx, p, e) : 0;
}

static const cs_xml_handlers reader_handlers = { on_open, on_leaf, on_close };

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

static int xml_parse(const char *doc, size_t len, const doc_ops *ops, void *ctx, cs_err *e)
{
    cs_s3xml_error err = { 0 };
    doc_reader r = { ops, ctx, &err, false };
    int rc = cs_xml_parse(doc, len, &reader_handlers, &r, e);
    if (!rc && r.ops->finish)
        rc = r.ops->finish(r.ctx, e);
    if (!rc && r.is_error)
        rc = error_sentence(&err, e);
    else if (rc)
        cs_err_prefix(e, "S3 response");
    cs_s3xml_error_free(&err);
    return rc;
}

/* ---- <Error> ------------------------------------------------------------------ */

static int error_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    cs_s3xml_error *o = ctx;
    if (cs_xml_path_is(p, "*/Code"))
        return cs_xml_str(&o->code, t, n, "Code", e);
    if (cs_xml_path_is(p, "*/Message"))
        return cs_xml_str(&o->message, t, n, "Message", e);
    if (cs_xml_path_is(p, "*/RequestId"))
        return cs_xml_str(&o->request_id, t, n, "RequestId", e);
    if (cs_xml_path_is(p, "*/Resource"))
        return cs_xml_str(&o->resource, t, n, "Resource", e);
    return 0;
}

static int error_finish(void *ctx, cs_err *e)
{
    const cs_s3xml_error *o = ctx;
    return empty(o->code) ? perr(e, "<Error> without <Code>") : 0;
}

static const doc_ops error_ops = { "Error", { NULL, error_leaf, NULL }, error_finish };

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

static int list_open(void *ctx, const cs_xml_path *p, cs_err *e)
{
    list_ctx *c = ctx;
    cs_s3xml_list *o = c->o;
    if (cs_xml_path_is(p, "*/Contents")) {
        c->seen_size = c->seen_time = false;
        return cs_xml_list_add(&o->objects, &o->nobjects, &c->cap_objects, sizeof *o->objects, "Contents", e);
    }
    if (cs_xml_path_is(p, "*/CommonPrefixes"))
        return cs_xml_list_add(&o->prefixes, &o->nprefixes, &c->cap_prefixes, sizeof *o->prefixes,
                               "CommonPrefixes", e);
    return 0;
}

static int list_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    list_ctx *c = ctx;
    cs_s3xml_list *o = c->o;
    if (cs_xml_path_is(p, "*/IsTruncated"))
        return cs_xml_bool(&o->is_truncated, &c->seen_truncated, t, n, "IsTruncated", e);
    if (cs_xml_path_is(p, "*/NextContinuationToken"))
        return cs_xml_str(&o->next_continuation_token, t, n, "NextContinuationToken", e);
    if (cs_xml_path_is(p, "*/KeyCount"))
        return cs_xml_u64(&o->key_count, &o->has_key_count, t, n, "KeyCount", e);
    cs_s3xml_object *ob = o->nobjects ? &o->objects[o->nobjects - 1] : NULL;
    if (cs_xml_path_is(p, "*/Contents/Key"))
        return cs_xml_str(&ob->key, t, n, "Key", e);
    if (cs_xml_path_is(p, "*/Contents/Size"))
        return cs_xml_u64(&ob->size, &c->seen_size, t, n, "Size", e);
    if (cs_xml_path_is(p, "*/Contents/LastModified"))
        return cs_xml_iso8601(&ob->last_modified, &c->seen_time, t, n, "LastModified", e);
    if (cs_xml_path_is(p, "*/Contents/ETag"))
        return cs_xml_str(&ob->etag, t, n, "ETag", e);
    if (cs_xml_path_is(p, "*/CommonPrefixes/Prefix"))
        return cs_xml_str(&o->prefixes[o->nprefixes - 1], t, n, "Prefix", e);
    return 0;
}

static int list_close(void *ctx, const cs_xml_path *p, cs_err *e)
{
    list_ctx *c = ctx;
    cs_s3xml_list *o = c->o;
    if (cs_xml_path_is(p, "*/Contents")) {
        const cs_s3xml_object *ob = &o->objects[o->nobjects - 1];
        if (empty(ob->key))
            return perr(e, "<Contents> without <Key>");
        if (!c->seen_size)
            return perr(e, "<Contents> without <Size>");
        if (!c->seen_time)
            return perr(e, "<Contents> without <LastModified>");
    } else if (cs_xml_path_is(p, "*/CommonPrefixes") && !o->prefixes[o->nprefixes - 1]) {
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

static const doc_ops list_ops = { "ListBucketResult", { list_open, list_leaf, list_close }, list_finish };

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

static int initiate_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    cs_s3xml_initiate *o = ctx;
    if (cs_xml_path_is(p, "*/Bucket"))
        return cs_xml_str(&o->bucket, t, n, "Bucket", e);
    if (cs_xml_path_is(p, "*/Key"))
        return cs_xml_str(&o->key, t, n, "Key", e);
    if (cs_xml_path_is(p, "*/UploadId"))
        return cs_xml_str(&o->upload_id, t, n, "UploadId", e);
    return 0;
}

static int initiate_finish(void *ctx, cs_err *e)
{
    const cs_s3xml_initiate *o = ctx;
    return empty(o->upload_id) ? perr(e, "<InitiateMultipartUploadResult> without <UploadId>") : 0;
}

static const doc_ops initiate_ops = { "InitiateMultipartUploadResult", { NULL, initiate_leaf, NULL },
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

static int complete_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    cs_s3xml_complete *o = ctx;
    if (cs_xml_path_is(p, "*/Location"))
        return cs_xml_str(&o->location, t, n, "Location", e);
    if (cs_xml_path_is(p, "*/Bucket"))
        return cs_xml_str(&o->bucket, t, n, "Bucket", e);
    if (cs_xml_path_is(p, "*/Key"))
        return cs_xml_str(&o->key, t, n, "Key", e);
    if (cs_xml_path_is(p, "*/ETag"))
        return cs_xml_str(&o->etag, t, n, "ETag", e);
    return 0;
}

static int complete_finish(void *ctx, cs_err *e)
{
    const cs_s3xml_complete *o = ctx;
    return empty(o->etag) ? perr(e, "<CompleteMultipartUploadResult> without <ETag>") : 0;
}

static const doc_ops complete_ops = { "CompleteMultipartUploadResult", { NULL, complete_leaf, NULL },
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

static int delete_open(void *ctx, const cs_xml_path *p, cs_err *e)
{
    delete_ctx *c = ctx;
    cs_s3xml_delete *o = c->o;
    if (cs_xml_path_is(p, "*/Deleted"))
        return cs_xml_list_add(&o->deleted, &o->ndeleted, &c->cap_deleted, sizeof *o->deleted, "Deleted", e);
    if (cs_xml_path_is(p, "*/Error"))
        return cs_xml_list_add(&o->errors, &o->nerrors, &c->cap_errors, sizeof *o->errors, "Error", e);
    return 0;
}

static int delete_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    cs_s3xml_delete *o = ((delete_ctx *)ctx)->o;
    if (cs_xml_path_is(p, "*/Deleted/Key"))
        return cs_xml_str(&o->deleted[o->ndeleted - 1], t, n, "Key", e);
    cs_s3xml_delete_error *er = o->nerrors ? &o->errors[o->nerrors - 1] : NULL;
    if (cs_xml_path_is(p, "*/Error/Key"))
        return cs_xml_str(&er->key, t, n, "Key", e);
    if (cs_xml_path_is(p, "*/Error/Code"))
        return cs_xml_str(&er->code, t, n, "Code", e);
    if (cs_xml_path_is(p, "*/Error/Message"))
        return cs_xml_str(&er->message, t, n, "Message", e);
    return 0;
}

static int delete_close(void *ctx, const cs_xml_path *p, cs_err *e)
{
    const cs_s3xml_delete *o = ((delete_ctx *)ctx)->o;
    if (cs_xml_path_is(p, "*/Deleted") && empty(o->deleted[o->ndeleted - 1]))
        return perr(e, "<Deleted> without <Key>");
    if (cs_xml_path_is(p, "*/Error")) {
        const cs_s3xml_delete_error *er = &o->errors[o->nerrors - 1];
        if (empty(er->key))
            return perr(e, "<Error> entry without <Key>");
        if (empty(er->code))
            return perr(e, "<Error> entry without <Code>");
    }
    return 0;
}

static const doc_ops delete_ops = { "DeleteResult", { delete_open, delete_leaf, delete_close }, NULL };

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

static int uploads_open(void *ctx, const cs_xml_path *p, cs_err *e)
{
    uploads_ctx *c = ctx;
    cs_s3xml_uploads *o = c->o;
    if (!cs_xml_path_is(p, "*/Upload"))
        return 0;
    c->seen_initiated = false;
    return cs_xml_list_add(&o->uploads, &o->nuploads, &c->cap, sizeof *o->uploads, "Upload", e);
}

static int uploads_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    uploads_ctx *c = ctx;
    cs_s3xml_uploads *o = c->o;
    if (cs_xml_path_is(p, "*/IsTruncated"))
        return cs_xml_bool(&o->is_truncated, &c->seen_truncated, t, n, "IsTruncated", e);
    if (cs_xml_path_is(p, "*/NextKeyMarker"))
        return cs_xml_str(&o->next_key_marker, t, n, "NextKeyMarker", e);
    if (cs_xml_path_is(p, "*/NextUploadIdMarker"))
        return cs_xml_str(&o->next_upload_id_marker, t, n, "NextUploadIdMarker", e);
    cs_s3xml_upload *u = o->nuploads ? &o->uploads[o->nuploads - 1] : NULL;
    if (cs_xml_path_is(p, "*/Upload/Key"))
        return cs_xml_str(&u->key, t, n, "Key", e);
    if (cs_xml_path_is(p, "*/Upload/UploadId"))
        return cs_xml_str(&u->upload_id, t, n, "UploadId", e);
    if (cs_xml_path_is(p, "*/Upload/Initiated"))
        return cs_xml_iso8601(&u->initiated, &c->seen_initiated, t, n, "Initiated", e);
    return 0;
}

static int uploads_close(void *ctx, const cs_xml_path *p, cs_err *e)
{
    const cs_s3xml_uploads *o = ((uploads_ctx *)ctx)->o;
    if (cs_xml_path_is(p, "*/Upload")) {
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

static const doc_ops uploads_ops = { "ListMultipartUploadsResult", { uploads_open, uploads_leaf, uploads_close },
                                     uploads_finish };

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

static int parts_open(void *ctx, const cs_xml_path *p, cs_err *e)
{
    parts_ctx *c = ctx;
    cs_s3xml_parts *o = c->o;
    if (!cs_xml_path_is(p, "*/Part"))
        return 0;
    c->seen_number = c->seen_size = false;
    return cs_xml_list_add(&o->parts, &o->nparts, &c->cap, sizeof *o->parts, "Part", e);
}

static int part_number(cs_s3xml_listed_part *pt, bool *seen, const char *t, size_t n, cs_err *e)
{
    uint64_t v = 0;
    int rc = cs_xml_u64(&v, seen, t, n, "PartNumber", e);
    if (!rc && (v < 1 || v > 10000))
        rc = perr(e, "<PartNumber> is out of range");
    pt->part_number = (unsigned)v;
    return rc;
}

static int parts_leaf(void *ctx, const cs_xml_path *p, const char *t, size_t n, cs_err *e)
{
    parts_ctx *c = ctx;
    cs_s3xml_parts *o = c->o;
    if (cs_xml_path_is(p, "*/IsTruncated"))
        return cs_xml_bool(&o->is_truncated, &c->seen_truncated, t, n, "IsTruncated", e);
    if (cs_xml_path_is(p, "*/NextPartNumberMarker"))
        return cs_xml_u64(&o->next_part_number_marker, &c->seen_marker, t, n, "NextPartNumberMarker", e);
    cs_s3xml_listed_part *pt = o->nparts ? &o->parts[o->nparts - 1] : NULL;
    if (cs_xml_path_is(p, "*/Part/PartNumber"))
        return part_number(pt, &c->seen_number, t, n, e);
    if (cs_xml_path_is(p, "*/Part/Size"))
        return cs_xml_u64(&pt->size, &c->seen_size, t, n, "Size", e);
    if (cs_xml_path_is(p, "*/Part/ETag"))
        return cs_xml_str(&pt->etag, t, n, "ETag", e);
    return 0;
}

static int parts_close(void *ctx, const cs_xml_path *p, cs_err *e)
{
    const parts_ctx *c = ctx;
    if (cs_xml_path_is(p, "*/Part")) {
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

static const doc_ops parts_ops = { "ListPartsResult", { parts_open, parts_leaf, parts_close }, parts_finish };

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

/* ---- checks of the text the writers take ------------------------------------------ */

static bool xml_char_ok(uint32_t cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
           (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* The UTF-8 sequence of a non-ASCII XML character at s[0..avail): 1 and its
 * length, 0 when invalid or cut short. */
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
        if (k >= avail || (s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if (cp < min || !xml_char_ok(cp))
        return 0;
    *len = need;
    return 1;
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

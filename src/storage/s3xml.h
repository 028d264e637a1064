/* s3xml.h - the XML the S3 driver reads and writes.
 *
 * Owns: parse functions for exactly the S3 documents the driver needs,
 * each into a plain struct, and the writers of the two request bodies the
 * driver sends (CompleteMultipartUpload and Delete). Reading is
 * storage/xml's (libexpat; see xml.h for what it accepts and refuses: no
 * DOCTYPE, no entities but the predefined ones, the limits below, leading
 * whitespace allowed as S3's keep-alive before a slow
 * CompleteMultipartUpload body, namespace prefixes dropped: <s3:Key> is
 * Key). Elements a parser does not know are skipped (S3 keeps adding
 * fields: Owner, StorageClass, ChecksumAlgorithm), and so are known names
 * at other depths. Lists hold at most CS_S3XML_MAX_ITEMS entries.
 *
 * Every parse function: doc/len is the whole body (not NUL-terminated; the
 * driver caps its size). It fills *out (which it clears first) and returns
 * 0; on failure *out is left empty (nothing to free, freeing is harmless)
 * and the return is:
 *   CS_E_PROTO    the body is not the expected document; e->msg is one
 *                 sentence starting "S3 response: " ("S3 response: unexpected
 *                 end of document in <Key>");
 *   CS_E_EXTERNAL the body is an S3 <Error> document where a result was
 *                 expected (S3 can answer CompleteMultipartUpload with 200 and
 *                 an <Error> body); e->msg is "S3 error CODE: MESSAGE (request
 *                 id ID)". Call cs_s3xml_parse_error on the same body for the
 *                 fields (to tell InternalError or SlowDown from the rest);
 *   CS_E_INVAL    doc is NULL with a non-zero len.
 * Text values never contain NUL bytes and are valid UTF-8.
 *
 * Must not: do I/O, log, keep more than the parsed values, or crash on any
 * input (tests/fuzz/fuzz_s3xml.c). */
#ifndef CS_STORAGE_S3XML_H
#define CS_STORAGE_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/xml.h"

#define CS_S3XML_MAX_DEPTH CS_XML_MAX_DEPTH  /* elements open at once */
#define CS_S3XML_MAX_NAME CS_XML_MAX_NAME    /* bytes in an element or attribute name */
#define CS_S3XML_MAX_TEXT CS_XML_MAX_TEXT    /* bytes of one leaf element's decoded text */
#define CS_S3XML_MAX_ITEMS CS_XML_MAX_ITEMS  /* entries of one list in one document */

/* <Error>: Code is required; the rest is NULL when absent. */
typedef struct cs_s3xml_error {
    char *code;
    char *message;
    char *request_id;
    char *resource;
} cs_s3xml_error;

int cs_s3xml_parse_error(const char *doc, size_t len, cs_s3xml_error *out, cs_err *e);
void cs_s3xml_error_free(cs_s3xml_error *x);

/* <ListBucketResult> of ListObjectsV2. IsTruncated is required, and when
 * it is true so is NextContinuationToken. Each <Contents> needs Key, Size
 * and LastModified (ISO 8601: "2009-10-12T17:50:30.000Z"); ETag is kept as
 * sent, quotes included, or NULL. Each <CommonPrefixes> needs a Prefix.
 * Values are as S3 sent them: with encoding-type=url they are URL-encoded. */
typedef struct cs_s3xml_object {
    char *key;
    uint64_t size;
    time_t last_modified;
    char *etag; /* NULL when absent */
} cs_s3xml_object;

typedef struct cs_s3xml_list {
    bool is_truncated;
    char *next_continuation_token; /* NULL when absent */
    bool has_key_count;
    uint64_t key_count;
    cs_s3xml_object *objects;
    size_t nobjects;
    char **prefixes; /* CommonPrefixes/Prefix */
    size_t nprefixes;
} cs_s3xml_list;

int cs_s3xml_parse_list(const char *doc, size_t len, cs_s3xml_list *out, cs_err *e);
void cs_s3xml_list_free(cs_s3xml_list *l);

/* <InitiateMultipartUploadResult>: UploadId is required and not empty. */
typedef struct cs_s3xml_initiate {
    char *bucket; /* NULL when absent */
    char *key;    /* NULL when absent */
    char *upload_id;
} cs_s3xml_initiate;

int cs_s3xml_parse_initiate(const char *doc, size_t len, cs_s3xml_initiate *out, cs_err *e);
void cs_s3xml_initiate_free(cs_s3xml_initiate *x);

/* <CompleteMultipartUploadResult>: ETag is required (the multipart ETag,
 * "...-N" with quotes). A 200 response with an <Error> body is
 * CS_E_EXTERNAL: the upload did not complete. */
typedef struct cs_s3xml_complete {
    char *location; /* NULL when absent */
    char *bucket;   /* NULL when absent */
    char *key;      /* NULL when absent */
    char *etag;
} cs_s3xml_complete;

int cs_s3xml_parse_complete(const char *doc, size_t len, cs_s3xml_complete *out, cs_err *e);
void cs_s3xml_complete_free(cs_s3xml_complete *x);

/* <DeleteResult> of DeleteObjects: the keys deleted (none in quiet mode) and
 * those that failed, each with Key and Code (Message may be NULL). */
typedef struct cs_s3xml_delete_error {
    char *key;
    char *code;
    char *message; /* NULL when absent */
} cs_s3xml_delete_error;

typedef struct cs_s3xml_delete {
    char **deleted;
    size_t ndeleted;
    cs_s3xml_delete_error *errors;
    size_t nerrors;
} cs_s3xml_delete;

int cs_s3xml_parse_delete(const char *doc, size_t len, cs_s3xml_delete *out, cs_err *e);
void cs_s3xml_delete_free(cs_s3xml_delete *x);

/* <ListMultipartUploadsResult>: each Upload needs Key and UploadId;
 * Initiated is 0 when absent. IsTruncated is required, and when it is true
 * so is a non-empty NextKeyMarker (NextUploadIdMarker may be empty). */
typedef struct cs_s3xml_upload {
    char *key;
    char *upload_id;
    time_t initiated;
} cs_s3xml_upload;

typedef struct cs_s3xml_uploads {
    bool is_truncated;
    char *next_key_marker;       /* NULL when absent */
    char *next_upload_id_marker; /* NULL when absent */
    cs_s3xml_upload *uploads;
    size_t nuploads;
} cs_s3xml_uploads;

int cs_s3xml_parse_uploads(const char *doc, size_t len, cs_s3xml_uploads *out, cs_err *e);
void cs_s3xml_uploads_free(cs_s3xml_uploads *x);

/* <ListPartsResult>: each Part needs PartNumber (1..10000), ETag and Size.
 * IsTruncated is required, and when it is true so is NextPartNumberMarker. */
typedef struct cs_s3xml_listed_part {
    unsigned part_number;
    char *etag; /* as sent, quotes included */
    uint64_t size;
} cs_s3xml_listed_part;

typedef struct cs_s3xml_parts {
    bool is_truncated;
    uint64_t next_part_number_marker; /* 0 when absent */
    cs_s3xml_listed_part *parts;
    size_t nparts;
} cs_s3xml_parts;

int cs_s3xml_parse_parts(const char *doc, size_t len, cs_s3xml_parts *out, cs_err *e);
void cs_s3xml_parts_free(cs_s3xml_parts *x);

/* ---- writers ------------------------------------------------------------------
 * They append to out only on success; on failure out is unchanged and the
 * return is CS_E_INVAL with a sentence starting "S3 request: ". */

/* Append s[0..n) as XML text: & < > " ' become entities, tab, LF and CR
 * character references (so they survive the server's XML parser). Fails on
 * invalid UTF-8 and on characters XML 1.0 cannot carry (NUL, other control
 * characters, U+FFFE, U+FFFF). */
int cs_s3xml_escape(const char *s, size_t n, cs_buf *out, cs_err *e);

/* One part of a multipart upload: its number (1..10000) and the ETag its
 * UploadPart response gave, as given (quotes included). */
typedef struct cs_s3xml_part {
    unsigned part_number;
    const char *etag;
} cs_s3xml_part;

/* The CompleteMultipartUpload body. 1..10000 parts in strictly ascending
 * part number order (S3 refuses any other), each with a non-empty ETag. */
int cs_s3xml_complete_body(const cs_s3xml_part *parts, size_t n, cs_buf *out, cs_err *e);

/* The DeleteObjects body: 1..1000 keys, each 1..1024 bytes of valid UTF-8.
 * quiet asks S3 to report only the failures. (S3 requires a Content-MD5 or
 * x-amz-checksum-* header on this request: the driver adds it.) */
int cs_s3xml_delete_body(const char *const *keys, size_t n, bool quiet, cs_buf *out, cs_err *e);

#endif

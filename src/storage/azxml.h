/* azxml.h - the XML the Azure Blob driver reads and writes.
 *
 * Owns: the parse functions for exactly the Azure Blob documents the driver
 * needs (a List Blobs page, an Error document), each into a plain struct;
 * the writer of the Put Block List body; and the parse of the HTTP dates
 * Azure writes in listings ("Mon, 27 Jan 2025 12:00:00 GMT"). Reading is
 * storage/xml's (libexpat; no DOCTYPE, no entities but the predefined ones,
 * bounded sizes). Elements a parser does not know are skipped (Azure keeps
 * adding properties), and so are known names at other depths.
 *
 * Every parse function: doc/len is the whole body (not NUL-terminated). It
 * fills *out (cleared first) and returns 0; on failure *out is left empty
 * (freeing it is harmless) and the return is CS_E_PROTO with one sentence
 * starting "Azure response: ", or CS_E_INVAL when doc is NULL with a
 * non-zero len. Text values hold no NUL and are valid UTF-8.
 * Must not: do I/O, log, or crash on any input. */
#ifndef CS_STORAGE_AZXML_H
#define CS_STORAGE_AZXML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct cs_azxml_blob {
    char *name;      /* the whole blob name, prefix included */
    uint64_t size;   /* Properties/Content-Length (required) */
    int64_t mtime;   /* Properties/Last-Modified, seconds since the epoch; 0 when absent */
} cs_azxml_blob;

/* One page of List Blobs (EnumerationResults). */
typedef struct cs_azxml_list {
    cs_azxml_blob *blobs;
    size_t nblobs;
    char *next_marker; /* NULL or "" on the last page */
} cs_azxml_list;

int cs_azxml_parse_list(const char *doc, size_t len, cs_azxml_list *out, cs_err *e);
void cs_azxml_list_free(cs_azxml_list *l);

/* An <Error> document: Code, and the first line of Message (Azure's next
 * lines are a request id and a time). Either may be NULL. */
typedef struct cs_azxml_error {
    char *code;
    char *message;
} cs_azxml_error;

int cs_azxml_parse_error(const char *doc, size_t len, cs_azxml_error *out, cs_err *e);
void cs_azxml_error_free(cs_azxml_error *x);

/* The body of Put Block List committing ids (base64 block ids, in order)
 * as the latest blocks, into out (reset first). */
void cs_azxml_block_list_body(const char *const *ids, size_t n, cs_buf *out);

/* "Sun, 11 Oct 2009 21:49:13 GMT" (RFC 1123, English names, GMT) to
 * seconds since the epoch. false when text is not exactly that form. */
bool cs_azxml_http_date(const char *text, size_t len, int64_t *out);

#endif

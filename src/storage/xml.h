/* xml.h - reading the XML documents HTTP storage services answer with.
 *
 * Owns: the one XML reader of cassette (libexpat underneath), for small
 * response bodies of S3 (ListBucketResult, InitiateMultipartUploadResult,
 * ...) and Azure Blob (EnumerationResults, Error), and helpers that turn
 * leaf text into values. A driver's parser is three callbacks over the
 * path of open elements: open (an element starts), leaf (an element without
 * child elements ends, with its text) and close (any element ends); it
 * matches paths with cs_xml_path_is(p, "ListBucketResult/Contents/Key").
 * Memory: the stack of open elements and the text of the innermost one;
 * nothing is kept of a document but what the callbacks keep.
 *
 * What is read: well-formed XML 1.0, always as UTF-8 (an encoding
 * declaration is ignored), after a byte order mark and leading whitespace
 * (S3 sends spaces as keep-alives before the body of a slow
 * CompleteMultipartUpload); comments and processing instructions are
 * skipped, CDATA is text, the five predefined entities and character
 * references are decoded, line ends become LF. Attributes are checked and
 * ignored. Names are QNames (at most one ':', non-empty prefix and local
 * part); the prefix is dropped: <s3:Key> is Key (prefixes need not be
 * declared: namespaces are not resolved).
 * Refused (CS_E_PROTO): a DOCTYPE (so no entity definitions: billion
 * laughs and external entities cannot happen), any entity but the five
 * predefined, documents longer than CS_XML_MAX_DOC, nesting deeper than
 * CS_XML_MAX_DEPTH, names longer than CS_XML_MAX_NAME, leaf text longer
 * than CS_XML_MAX_TEXT (the text of elements with children is not kept, so
 * not limited), anything that is not well-formed.
 *
 * Errors: a sentence without a prefix ("unexpected end of document in
 * <Key>", "elements nested deeper than 16 in <a> (byte 80)"); the driver
 * prefixes it with what it read ("S3 response: ..."). A document cut short
 * always fails with "unexpected end of document" (or "empty document").
 * Must not: do I/O, log, or crash on any input (tests/fuzz/fuzz_xml.c). */
#ifndef CS_STORAGE_XML_H
#define CS_STORAGE_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

#define CS_XML_MAX_DOC (16u << 20)  /* bytes of one document */
#define CS_XML_MAX_DEPTH 16         /* elements open at once */
#define CS_XML_MAX_NAME 256         /* bytes of an element or attribute name */
#define CS_XML_MAX_TEXT (64 * 1024) /* bytes of one leaf's decoded text */
#define CS_XML_MAX_ITEMS 100000     /* entries of one list (cs_xml_list_add) */

/* The open elements, outermost first: names[0] is the root, names[depth-1]
 * the element the callback is about. Names are local (prefix dropped). */
typedef struct cs_xml_path {
    const char *const *names;
    size_t depth;
} cs_xml_path;

/* Any callback may be NULL. A non-zero return stops the parse, which
 * returns that value with e as the callback left it. text is NUL-terminated
 * (len bytes, valid UTF-8, no NUL inside). */
typedef struct cs_xml_handlers {
    int (*open)(void *arg, const cs_xml_path *p, cs_err *e);
    int (*leaf)(void *arg, const cs_xml_path *p, const char *text, size_t len, cs_err *e);
    int (*close)(void *arg, const cs_xml_path *p, cs_err *e);
} cs_xml_handlers;

/* Read doc[0..len) (not NUL-terminated) with h. 0 when the document is
 * well-formed and every callback returned 0; CS_E_PROTO when it is not (or
 * breaks a limit); CS_E_INVAL when doc is NULL with a non-zero len; or what
 * a callback returned. */
int cs_xml_parse(const char *doc, size_t len, const cs_xml_handlers *h, void *arg, cs_err *e);

/* True when the open elements are exactly pattern's '/'-separated names,
 * root first ("EnumerationResults/Blobs/Blob/Name"); "*" matches any one. */
bool cs_xml_path_is(const cs_xml_path *p, const char *pattern);

/* ---- leaf values ---------------------------------------------------------------
 * For callbacks: each sets *dst from a leaf's text, or fails with
 * CS_E_PROTO and "<what> given twice" when it was set before (a string is
 * set when *dst is not NULL, other values when *seen), "<what> is not a
 * number", ... Numbers, booleans and times may be padded with whitespace;
 * strings are kept as they are. */
int cs_xml_str(char **dst, const char *text, size_t len, const char *what, cs_err *e);
int cs_xml_u64(uint64_t *dst, bool *seen, const char *text, size_t len, const char *what, cs_err *e);
int cs_xml_bool(bool *dst, bool *seen, const char *text, size_t len, const char *what, cs_err *e);
/* ISO 8601 as S3 and Azure write it: YYYY-MM-DDTHH:MM:SS, an optional
 * fraction, then Z or +HH:MM / -HH:MM. */
int cs_xml_iso8601(time_t *dst, bool *seen, const char *text, size_t len, const char *what, cs_err *e);

/* Room for one more zeroed entry of a list: items is the address of the
 * list's pointer (a T **), size is sizeof(T); the list grows (capacity *cap,
 * 0 at first) and *n is incremented, so the new entry is (*items)[*n - 1].
 * Fails with
 * "more than 100000 <what> entries" past CS_XML_MAX_ITEMS. */
int cs_xml_list_add(void *items, size_t *n, size_t *cap, size_t size, const char *what, cs_err *e);

#endif

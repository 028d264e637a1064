/* test_s3xml.c - storage/s3xml: the S3 XML reader and the request bodies.
 *
 * Samples of every document the driver reads, written the way AWS's
 * documentation shows them and the way MinIO / versitygw send them (one
 * line, &#34; for quotes), with xmlns; the same samples seed the fuzzer
 * (tests/fuzz/corpus/s3xml/). Then: entities and character references,
 * escaping round trips, every prefix of every sample (a truncated body
 * fails cleanly with "unexpected end of document", and succeeds exactly when
 * the root element is complete), nesting and size limits, the strictness
 * rules, <Error> bodies where a result was expected, and the writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/s3xml.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- samples (identical to tests/fuzz/corpus/s3xml/) ------------------------- */

static const char LIST_AWS[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "    <Name>examplebucket</Name>\n"
    "    <Prefix></Prefix>\n"
    "    <KeyCount>3</KeyCount>\n"
    "    <MaxKeys>1000</MaxKeys>\n"
    "    <IsTruncated>false</IsTruncated>\n"
    "    <Contents>\n"
    "        <Key>my-image.jpg</Key>\n"
    "        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
    "        <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>\n"
    "        <Size>434234</Size>\n"
    "        <StorageClass>STANDARD</StorageClass>\n"
    "    </Contents>\n"
    "    <Contents>\n"
    "        <Key>Tom &amp; Jerry/caf&#xE9; &lt;1&gt;.txt</Key>\n"
    "        <LastModified>2010-11-10T20:48:33.000Z</LastModified>\n"
    "        <ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>\n"
    "        <Size>18446744073709551615</Size>\n"
    "        <Owner>\n"
    "            <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>\n"
    "            <DisplayName>mtd@amazon.com</DisplayName>\n"
    "        </Owner>\n"
    "        <StorageClass>STANDARD</StorageClass>\n"
    "    </Contents>\n"
    "    <CommonPrefixes>\n"
    "        <Prefix>photos/2006/</Prefix>\n"
    "    </CommonPrefixes>\n"
    "</ListBucketResult>\n";

static const char LIST_MINIO[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>cassette</Name><Prefix>objects/</Prefix><NextContinuationToken>1Ld7ZJmNGZz/cGQZ4fI0QKTKt0+E0Q==</NextContinuationToken><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter></Delimiter><IsTruncated>true</IsTruncated><Contents><Key>objects/3f/3f2a9c</Key><LastModified>2024-03-01T10:20:30.123Z</LastModified><ETag>&#34;d41d8cd98f00b204e9800998ecf8427e&#34;</ETag><Size>0</Size><Owner><ID>02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4</ID><DisplayName>minio</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>objects/3f/3f2b00</Key><LastModified>2024-03-01T10:20:30Z</LastModified><ETag>&#34;9b2cf535f27731c974343645a3985328&#34;</ETag><Size>1048576</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>";

static const char LIST_EMPTY[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>cassette</Name><Prefix>nothing/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>";

static const char INITIATE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Bucket>example-bucket</Bucket>\n"
    "  <Key>example-object</Key>\n"
    "  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>\n"
    "</InitiateMultipartUploadResult>";

static const char COMPLETE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Location>http://Example-Bucket.s3.us-east-1.amazonaws.com/Example-Object</Location>\n"
    "  <Bucket>Example-Bucket</Bucket>\n"
    "  <Key>Example-Object</Key>\n"
    "  <ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>\n"
    "</CompleteMultipartUploadResult>\n";

static const char COMPLETE_KEEPALIVE[] =
    "                                                                                \n"
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>http://127.0.0.1:7070/cassette/objects/ab/abcdef</Location><Bucket>cassette</Bucket><Key>objects/ab/abcdef</Key><ETag>&quot;17fbc0a106abbb6f381aac6e331f2a19-3&quot;</ETag></CompleteMultipartUploadResult>";

static const char COMPLETE_ERROR[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "\n"
    "<Error>\n"
    "<Code>InternalError</Code>\n"
    "<Message>We encountered an internal error. Please try again.</Message>\n"
    "<RequestId>656c76696e6727732072657175657374</RequestId>\n"
    "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>\n"
    "</Error>\n";

static const char ERROR[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Error>\n"
    "  <Code>NoSuchKey</Code>\n"
    "  <Message>The resource you requested does not exist</Message>\n"
    "  <Resource>/mybucket/myfoto.jpg</Resource>\n"
    "  <RequestId>4442587FB7D0A2F9</RequestId>\n"
    "</Error>";

static const char DELETE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Deleted>\n"
    "    <Key>sample1.txt</Key>\n"
    "  </Deleted>\n"
    "  <Deleted>\n"
    "    <Key>objects/ab/abcdef</Key>\n"
    "    <VersionId>3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo</VersionId>\n"
    "  </Deleted>\n"
    "  <Error>\n"
    "    <Key>sample2.txt</Key>\n"
    "    <Code>AccessDenied</Code>\n"
    "    <Message>Access Denied</Message>\n"
    "  </Error>\n"
    "</DeleteResult>";

static const char UPLOADS[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Bucket>bucket</Bucket>\n"
    "  <KeyMarker></KeyMarker>\n"
    "  <UploadIdMarker></UploadIdMarker>\n"
    "  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>\n"
    "  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>\n"
    "  <MaxUploads>3</MaxUploads>\n"
    "  <IsTruncated>true</IsTruncated>\n"
    "  <Upload>\n"
    "    <Key>my-divisor</Key>\n"
    "    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>\n"
    "    <Initiator>\n"
    "      <ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID>\n"
    "      <DisplayName>user1-11111a31-17b5-4fb7-9df5-b111111f13de</DisplayName>\n"
    "    </Initiator>\n"
    "    <Owner>\n"
    "      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>\n"
    "      <DisplayName>OwnerDisplayName</DisplayName>\n"
    "    </Owner>\n"
    "    <StorageClass>STANDARD</StorageClass>\n"
    "    <Initiated>2010-11-10T20:48:33.000Z</Initiated>\n"
    "  </Upload>\n"
    "  <Upload>\n"
    "    <Key>my-movie.m2ts</Key>\n"
    "    <UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>\n"
    "    <StorageClass>STANDARD</StorageClass>\n"
    "    <Initiated>2010-11-10T20:48:33.000Z</Initiated>\n"
    "  </Upload>\n"
    "</ListMultipartUploadsResult>";

static const char UPLOADS_NONE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>cassette</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker><Prefix>objects/</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";

/* ---- helpers ------------------------------------------------------------------ */

enum kind { K_LIST, K_INITIATE, K_COMPLETE, K_ERROR, K_DELETE, K_UPLOADS, K_COUNT };

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Parse doc[0..len) as kind from an exact-size heap copy (so that ASan sees
 * any read past the end); on failure the output must be empty. */
static int parse_kind(enum kind k, const char *doc, size_t len, cs_err *e)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, doc, len);
    cs_err_clear(e);
    int rc = 0;
    switch (k) {
    case K_LIST: {
        cs_s3xml_list o;
        rc = cs_s3xml_parse_list(copy, len, &o, e);
        if (rc)
            assert_true(all_zero(&o, sizeof o));
        cs_s3xml_list_free(&o);
        break;
    }
    case K_INITIATE: {
        cs_s3xml_initiate o;
        rc = cs_s3xml_parse_initiate(copy, len, &o, e);
        if (rc)
            assert_true(all_zero(&o, sizeof o));
        cs_s3xml_initiate_free(&o);
        break;
    }
    case K_COMPLETE: {
        cs_s3xml_complete o;
        rc = cs_s3xml_parse_complete(copy, len, &o, e);
        if (rc)
            assert_true(all_zero(&o, sizeof o));
        cs_s3xml_complete_free(&o);
        break;
    }
    case K_ERROR: {
        cs_s3xml_error o;
        rc = cs_s3xml_parse_error(copy, len, &o, e);
        if (rc)
            assert_true(all_zero(&o, sizeof o));
        cs_s3xml_error_free(&o);
        break;
    }
    case K_DELETE: {
        cs_s3xml_delete o;
        rc = cs_s3xml_parse_delete(copy, len, &o, e);
        if (rc)
            assert_true(all_zero(&o, sizeof o));
        cs_s3xml_delete_free(&o);
        break;
    }
    case K_UPLOADS: {
        cs_s3xml_uploads o;
        rc = cs_s3xml_parse_uploads(copy, len, &o, e);
        if (rc)
            assert_true(all_zero(&o, sizeof o));
        cs_s3xml_uploads_free(&o);
        break;
    }
    default:
        fail();
    }
    free(copy);
    if (rc)
        assert_int_equal(e->code, rc);
    if (rc == CS_E_PROTO)
        assert_true(strncmp(e->msg, "S3 response: ", 13) == 0);
    if (rc == CS_E_EXTERNAL)
        assert_true(strncmp(e->msg, "S3 error ", 9) == 0);
    return rc;
}

static void expect_proto(enum kind k, const char *doc, const char *needle)
{
    cs_err e;
    int rc = parse_kind(k, doc, strlen(doc), &e);
    if (rc != CS_E_PROTO)
        fail_msg("expected CS_E_PROTO (%s) for %s, got %d", needle, doc, rc);
    if (!strstr(e.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void expect_ok(enum kind k, const char *doc)
{
    cs_err e;
    int rc = parse_kind(k, doc, strlen(doc), &e);
    if (rc)
        fail_msg("%s: %s", doc, e.msg);
}

/* The decoded text of one <Key> inside a DeleteResult wrapper. */
static int key_of(const char *inner, char **out, cs_err *e)
{
    char *doc = cs_sprintf("<DeleteResult><Deleted><Key>%s</Key></Deleted></DeleteResult>", inner);
    cs_s3xml_delete d;
    int rc = cs_s3xml_parse_delete(doc, strlen(doc), &d, e);
    free(doc);
    *out = NULL;
    if (rc)
        return rc;
    assert_int_equal(d.ndeleted, 1);
    *out = cs_strdup(d.deleted[0]);
    cs_s3xml_delete_free(&d);
    return 0;
}

static void expect_key(const char *inner, const char *want)
{
    char *got;
    cs_err e;
    if (key_of(inner, &got, &e))
        fail_msg("%s: %s", inner, e.msg);
    assert_string_equal(got, want);
    free(got);
}

static void expect_key_bad(const char *inner, const char *needle)
{
    char *got;
    cs_err e;
    assert_int_equal(key_of(inner, &got, &e), CS_E_PROTO);
    assert_null(got);
    if (!strstr(e.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

/* ---- the documents ------------------------------------------------------------- */

static void test_list(void **state)
{
    (void)state;
    cs_err e;
    cs_s3xml_list l;
    assert_int_equal(cs_s3xml_parse_list(LIST_AWS, strlen(LIST_AWS), &l, &e), 0);
    assert_false(l.is_truncated);
    assert_null(l.next_continuation_token);
    assert_true(l.has_key_count);
    assert_int_equal(l.key_count, 3);
    assert_int_equal(l.nobjects, 2);
    assert_string_equal(l.objects[0].key, "my-image.jpg");
    assert_int_equal(l.objects[0].size, 434234);
    assert_int_equal(l.objects[0].last_modified, 1255369830);
    assert_string_equal(l.objects[0].etag, "\"fba9dede5f27731c9771645a39863328\"");
    assert_string_equal(l.objects[1].key, "Tom & Jerry/caf\xc3\xa9 <1>.txt");
    assert_true(l.objects[1].size == UINT64_MAX);
    assert_int_equal(l.objects[1].last_modified, 1289422113);
    assert_string_equal(l.objects[1].etag, "\"3858f62230ac3c915f300c664312c11f-9\"");
    assert_int_equal(l.nprefixes, 1);
    assert_string_equal(l.prefixes[0], "photos/2006/");
    cs_s3xml_list_free(&l);
    assert_null(l.objects);

    assert_int_equal(cs_s3xml_parse_list(LIST_MINIO, strlen(LIST_MINIO), &l, &e), 0);
    assert_true(l.is_truncated);
    assert_string_equal(l.next_continuation_token, "1Ld7ZJmNGZz/cGQZ4fI0QKTKt0+E0Q==");
    assert_int_equal(l.key_count, 2);
    assert_int_equal(l.nobjects, 2);
    assert_string_equal(l.objects[0].key, "objects/3f/3f2a9c");
    assert_int_equal(l.objects[0].size, 0);
    assert_int_equal(l.objects[0].last_modified, 1709288430);
    assert_string_equal(l.objects[0].etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    assert_int_equal(l.objects[1].size, 1048576);
    assert_int_equal(l.objects[1].last_modified, 1709288430);
    assert_int_equal(l.nprefixes, 0);
    cs_s3xml_list_free(&l);

    assert_int_equal(cs_s3xml_parse_list(LIST_EMPTY, strlen(LIST_EMPTY), &l, &e), 0);
    assert_int_equal(l.nobjects, 0);
    assert_int_equal(l.key_count, 0);
    assert_false(l.is_truncated);
    cs_s3xml_list_free(&l);

    /* What a listing must have, and what it must not repeat. */
    expect_proto(K_LIST, "<ListBucketResult></ListBucketResult>", "without <IsTruncated>");
    expect_proto(K_LIST, "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                 "<NextContinuationToken> is missing");
    expect_proto(K_LIST,
                 "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken/></ListBucketResult>",
                 "<NextContinuationToken> is missing");
    expect_proto(K_LIST, "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
                 "<IsTruncated> is neither true nor false");
    expect_proto(K_LIST,
                 "<ListBucketResult><IsTruncated>false</IsTruncated><IsTruncated>false</IsTruncated>"
                 "</ListBucketResult>",
                 "<IsTruncated> given twice");
#define C(x) "<ListBucketResult><IsTruncated>false</IsTruncated><Contents>" x "</Contents></ListBucketResult>"
    expect_ok(K_LIST, C("<Key>k</Key><Size>1</Size><LastModified>2009-10-12T17:50:30Z</LastModified>"));
    expect_proto(K_LIST, C("<Size>1</Size><LastModified>2009-10-12T17:50:30Z</LastModified>"),
                 "<Contents> without <Key>");
    expect_proto(K_LIST, C("<Key></Key><Size>1</Size><LastModified>2009-10-12T17:50:30Z</LastModified>"),
                 "<Contents> without <Key>");
    expect_proto(K_LIST, C("<Key>k</Key><LastModified>2009-10-12T17:50:30Z</LastModified>"),
                 "<Contents> without <Size>");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size>"), "<Contents> without <LastModified>");
    expect_proto(K_LIST, C("<Key>k</Key><Key>k</Key>"), "<Key> given twice");
    expect_proto(K_LIST, C("<Key>k</Key><Size>-1</Size>"), "<Size> is not a number");
    expect_proto(K_LIST, C("<Key>k</Key><Size>12a</Size>"), "<Size> is not a number");
    expect_proto(K_LIST, C("<Key>k</Key><Size></Size>"), "<Size> is not a number");
    expect_proto(K_LIST, C("<Key>k</Key><Size>18446744073709551616</Size>"), "<Size> is out of range");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size><Size>1</Size>"), "<Size> given twice");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size><LastModified>2009-10-12 17:50:30Z</LastModified>"),
                 "<LastModified> is not an ISO 8601 time");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size><LastModified>2023-02-29T00:00:00Z</LastModified>"),
                 "<LastModified> is not an ISO 8601 time");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size><LastModified>2009-10-12T17:50:30</LastModified>"),
                 "<LastModified> is not an ISO 8601 time");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size><LastModified>2009-10-12T17:50:30.Z</LastModified>"),
                 "<LastModified> is not an ISO 8601 time");
    expect_proto(K_LIST, C("<Key>k</Key><Size>1</Size><LastModified>2009-10-12T24:00:00Z</LastModified>"),
                 "<LastModified> is not an ISO 8601 time");
#undef C
    expect_proto(K_LIST,
                 "<ListBucketResult><IsTruncated>false</IsTruncated><CommonPrefixes/></ListBucketResult>",
                 "<CommonPrefixes> without <Prefix>");
    expect_proto(K_LIST, "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>x</KeyCount>"
                         "</ListBucketResult>",
                 "<KeyCount> is not a number");
    /* Numbers, booleans and times may be padded; unknown elements are skipped
     * wherever they are, and so are fields at the wrong depth. */
    cs_err_clear(&e);
    static const char padded[] =
        "<ListBucketResult><IsTruncated> false\n</IsTruncated><Contents><Key> k </Key><Size> 7 </Size>"
        "<LastModified> 2000-02-29T12:00:00+02:00 </LastModified><Extra><Key>no</Key><Size>x</Size></Extra>"
        "</Contents><Deep><Contents><Key>not a listing entry</Key></Contents></Deep></ListBucketResult>";
    assert_int_equal(cs_s3xml_parse_list(padded, strlen(padded), &l, &e), 0);
    assert_int_equal(l.nobjects, 1);
    assert_string_equal(l.objects[0].key, " k ");
    assert_int_equal(l.objects[0].size, 7);
    assert_int_equal(l.objects[0].last_modified, 951825600 - 7200);
    assert_null(l.objects[0].etag);
    cs_s3xml_list_free(&l);
}

static void test_times(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t want;
    } ok[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "1969-12-31T23:59:59.999Z", -1 },
        { "2009-10-12T17:50:30.000Z", 1255369830 },
        { "2009-10-12T17:50:30z", 1255369830 },
        { "2009-10-12T19:50:30.5+02:00", 1255369830 },
        { "2009-10-12T12:20:30-05:30", 1255369830 },
        { "2000-02-29T12:00:00Z", 951825600 },
        { "9999-12-31T23:59:59Z", 253402300799 },
        { "0001-01-01T00:00:00Z", -62135596800 },
    };
    for (size_t i = 0; i < N(ok); i++) {
        char *doc = cs_sprintf("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>"
                               "<Size>1</Size><LastModified>%s</LastModified></Contents></ListBucketResult>",
                               ok[i].text);
        cs_s3xml_list l;
        cs_err e;
        if (cs_s3xml_parse_list(doc, strlen(doc), &l, &e))
            fail_msg("%s: %s", ok[i].text, e.msg);
        assert_true((int64_t)l.objects[0].last_modified == ok[i].want);
        cs_s3xml_list_free(&l);
        free(doc);
    }
    static const char *const bad[] = { "",
                                       "2009-10-12",
                                       "2009-10-12T17:50Z",
                                       "0000-01-01T00:00:00Z",
                                       "2009-00-12T17:50:30Z",
                                       "2009-04-31T17:50:30Z",
                                       "2009-10-12T17:60:30Z",
                                       "2009-10-12T17:50:61Z",
                                       "2009-10-12T17:50:30+0200",
                                       "2009-10-12T17:50:30+24:00",
                                       "2009-10-12T17:50:30ZZ",
                                       "+2009-10-12T17:50:30Z",
                                       "2009-1a-12T17:50:30Z" };
    for (size_t i = 0; i < N(bad); i++) {
        char *doc = cs_sprintf("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>k"
                               "</Key><UploadId>u</UploadId><Initiated>%s</Initiated></Upload>"
                               "</ListMultipartUploadsResult>",
                               bad[i]);
        expect_proto(K_UPLOADS, doc, "<Initiated> is not an ISO 8601 time");
        free(doc);
    }
}

static void test_initiate_complete(void **state)
{
    (void)state;
    cs_err e;
    cs_s3xml_initiate in;
    assert_int_equal(cs_s3xml_parse_initiate(INITIATE, strlen(INITIATE), &in, &e), 0);
    assert_string_equal(in.bucket, "example-bucket");
    assert_string_equal(in.key, "example-object");
    assert_string_equal(in.upload_id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
    cs_s3xml_initiate_free(&in);
    cs_s3xml_initiate_free(&in); /* twice is harmless */
    expect_proto(K_INITIATE, "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>",
                 "without <UploadId>");
    expect_proto(K_INITIATE,
                 "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>",
                 "without <UploadId>");

    cs_s3xml_complete c;
    assert_int_equal(cs_s3xml_parse_complete(COMPLETE, strlen(COMPLETE), &c, &e), 0);
    assert_string_equal(c.location, "http://Example-Bucket.s3.us-east-1.amazonaws.com/Example-Object");
    assert_string_equal(c.bucket, "Example-Bucket");
    assert_string_equal(c.key, "Example-Object");
    assert_string_equal(c.etag, "\"3858f62230ac3c915f300c664312c11f-9\"");
    cs_s3xml_complete_free(&c);

    /* Keep-alive whitespace before the body. */
    assert_int_equal(cs_s3xml_parse_complete(COMPLETE_KEEPALIVE, strlen(COMPLETE_KEEPALIVE), &c, &e), 0);
    assert_string_equal(c.etag, "\"17fbc0a106abbb6f381aac6e331f2a19-3\"");
    assert_string_equal(c.key, "objects/ab/abcdef");
    cs_s3xml_complete_free(&c);
    expect_proto(K_COMPLETE, "<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>",
                 "without <ETag>");
}

/* 200 OK with an <Error> body: the upload did not complete. */
static void test_error_where_result_expected(void **state)
{
    (void)state;
    cs_err e;
    cs_s3xml_complete c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(cs_s3xml_parse_complete(COMPLETE_ERROR, strlen(COMPLETE_ERROR), &c, &e), CS_E_EXTERNAL);
    assert_true(all_zero(&c, sizeof c));
    assert_int_equal(e.code, CS_E_EXTERNAL);
    assert_string_equal(e.msg, "S3 error InternalError: We encountered an internal error. Please try again. "
                               "(request id 656c76696e6727732072657175657374)");
    cs_s3xml_error er;
    assert_int_equal(cs_s3xml_parse_error(COMPLETE_ERROR, strlen(COMPLETE_ERROR), &er, &e), 0);
    assert_string_equal(er.code, "InternalError");
    assert_string_equal(er.request_id, "656c76696e6727732072657175657374");
    assert_null(er.resource);
    cs_s3xml_error_free(&er);

    /* Every result parser recognises it. */
    for (int k = 0; k < K_COUNT; k++) {
        int rc = parse_kind((enum kind)k, ERROR, strlen(ERROR), &e);
        if (k == K_ERROR) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, CS_E_EXTERNAL);
            assert_string_equal(e.msg, "S3 error NoSuchKey: The resource you requested does not exist "
                                       "(request id 4442587FB7D0A2F9)");
        }
    }
    /* A minimal one, and a broken one (which is a protocol error). */
    assert_int_equal(parse_kind(K_DELETE, "<Error><Code>SlowDown</Code></Error>", 36, &e), CS_E_EXTERNAL);
    assert_string_equal(e.msg, "S3 error SlowDown");
    expect_proto(K_LIST, "<Error><Message>no code</Message></Error>", "<Error> without <Code>");
    expect_proto(K_LIST, "<Error><Code>X</Code>", "unexpected end of document in <Error>");
    /* An element named Error deeper down is not an error document. */
    expect_proto(K_INITIATE, "<Foo><Error><Code>X</Code></Error></Foo>",
                 "expected <InitiateMultipartUploadResult>, got <Foo>");
}

static void test_error_document(void **state)
{
    (void)state;
    cs_err e;
    cs_s3xml_error er;
    assert_int_equal(cs_s3xml_parse_error(ERROR, strlen(ERROR), &er, &e), 0);
    assert_string_equal(er.code, "NoSuchKey");
    assert_string_equal(er.message, "The resource you requested does not exist");
    assert_string_equal(er.request_id, "4442587FB7D0A2F9");
    assert_string_equal(er.resource, "/mybucket/myfoto.jpg");
    cs_s3xml_error_free(&er);
    expect_proto(K_ERROR, LIST_EMPTY, "expected <Error>, got <ListBucketResult>");
    expect_proto(K_ERROR, "<Error><Code></Code></Error>", "<Error> without <Code>");
}

static void test_delete_result(void **state)
{
    (void)state;
    cs_err e;
    cs_s3xml_delete d;
    assert_int_equal(cs_s3xml_parse_delete(DELETE, strlen(DELETE), &d, &e), 0);
    assert_int_equal(d.ndeleted, 2);
    assert_string_equal(d.deleted[0], "sample1.txt");
    assert_string_equal(d.deleted[1], "objects/ab/abcdef");
    assert_int_equal(d.nerrors, 1);
    assert_string_equal(d.errors[0].key, "sample2.txt");
    assert_string_equal(d.errors[0].code, "AccessDenied");
    assert_string_equal(d.errors[0].message, "Access Denied");
    cs_s3xml_delete_free(&d);

    /* Quiet mode with nothing failed. */
    assert_int_equal(cs_s3xml_parse_delete("<DeleteResult/>", 15, &d, &e), 0);
    assert_int_equal(d.ndeleted + d.nerrors, 0);
    cs_s3xml_delete_free(&d);
    expect_proto(K_DELETE, "<DeleteResult><Deleted/></DeleteResult>", "<Deleted> without <Key>");
    expect_proto(K_DELETE, "<DeleteResult><Error><Code>X</Code></Error></DeleteResult>",
                 "<Error> entry without <Key>");
    expect_proto(K_DELETE, "<DeleteResult><Error><Key>k</Key></Error></DeleteResult>",
                 "<Error> entry without <Code>");
}

static void test_uploads(void **state)
{
    (void)state;
    cs_err e;
    cs_s3xml_uploads u;
    assert_int_equal(cs_s3xml_parse_uploads(UPLOADS, strlen(UPLOADS), &u, &e), 0);
    assert_true(u.is_truncated);
    assert_string_equal(u.next_key_marker, "my-movie.m2ts");
    assert_string_equal(u.next_upload_id_marker, "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ");
    assert_int_equal(u.nuploads, 2);
    assert_string_equal(u.uploads[0].key, "my-divisor");
    assert_string_equal(u.uploads[0].upload_id, "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw");
    assert_int_equal(u.uploads[0].initiated, 1289422113);
    assert_string_equal(u.uploads[1].key, "my-movie.m2ts");
    cs_s3xml_uploads_free(&u);

    assert_int_equal(cs_s3xml_parse_uploads(UPLOADS_NONE, strlen(UPLOADS_NONE), &u, &e), 0);
    assert_false(u.is_truncated);
    assert_int_equal(u.nuploads, 0);
    assert_string_equal(u.next_key_marker, "");
    cs_s3xml_uploads_free(&u);

    expect_proto(K_UPLOADS, "<ListMultipartUploadsResult/>", "without <IsTruncated>");
    expect_proto(K_UPLOADS,
                 "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated><NextKeyMarker></NextKeyMarker>"
                 "</ListMultipartUploadsResult>",
                 "<NextKeyMarker> is missing");
    expect_proto(K_UPLOADS,
                 "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>k</Key></Upload>"
                 "</ListMultipartUploadsResult>",
                 "<Upload> without <UploadId>");
    expect_proto(K_UPLOADS,
                 "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><UploadId>u</UploadId>"
                 "</Upload></ListMultipartUploadsResult>",
                 "<Upload> without <Key>");
}

static void expect_parts_proto(const char *doc, const char *needle)
{
    cs_err e;
    cs_s3xml_parts o;
    cs_err_clear(&e);
    assert_int_equal(cs_s3xml_parse_parts(doc, strlen(doc), &o, &e), CS_E_PROTO);
    assert_true(all_zero(&o, sizeof o));
    if (!strstr(e.msg, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, e.msg);
}

static void test_parts(void **state)
{
    (void)state;
    static const char doc[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>b</Bucket><Key>objects/ab/cd</Key><UploadId>u1</UploadId>"
        "<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>"
        "<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>"
        "<Part><PartNumber>1</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified>"
        "<ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>\"aaaa\"</ETag><Size>5</Size></Part>"
        "</ListPartsResult>";
    cs_err e;
    cs_s3xml_parts o;
    assert_int_equal(cs_s3xml_parse_parts(doc, strlen(doc), &o, &e), 0);
    assert_true(o.is_truncated);
    assert_int_equal(o.next_part_number_marker, 2);
    assert_int_equal(o.nparts, 2);
    assert_int_equal(o.parts[0].part_number, 1);
    assert_string_equal(o.parts[0].etag, "\"7778aef83f66abc1fa1e8477f296d394\"");
    assert_int_equal(o.parts[0].size, 10485760);
    assert_int_equal(o.parts[1].part_number, 2);
    assert_int_equal(o.parts[1].size, 5);
    cs_s3xml_parts_free(&o);

    static const char none[] = "<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>";
    assert_int_equal(cs_s3xml_parse_parts(none, strlen(none), &o, &e), 0);
    assert_int_equal(o.nparts, 0);
    cs_s3xml_parts_free(&o);

    static const char err[] = "<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>";
    assert_int_equal(cs_s3xml_parse_parts(err, strlen(err), &o, &e), CS_E_EXTERNAL);

    expect_parts_proto("<ListPartsResult/>", "without <IsTruncated>");
    expect_parts_proto("<ListPartsResult><IsTruncated>true</IsTruncated></ListPartsResult>",
                       "<NextPartNumberMarker> is missing");
    expect_parts_proto("<ListPartsResult><IsTruncated>false</IsTruncated><Part><ETag>x</ETag><Size>1</Size>"
                       "</Part></ListPartsResult>",
                       "<Part> without <PartNumber>");
    expect_parts_proto("<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber>"
                       "<Size>1</Size></Part></ListPartsResult>",
                       "<Part> without <ETag>");
    expect_parts_proto("<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber>"
                       "<ETag>x</ETag></Part></ListPartsResult>",
                       "<Part> without <Size>");
    expect_parts_proto("<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>0</PartNumber>"
                       "<ETag>x</ETag><Size>1</Size></Part></ListPartsResult>",
                       "<PartNumber> is out of range");
    expect_parts_proto("<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>10001</PartNumber>"
                       "<ETag>x</ETag><Size>1</Size></Part></ListPartsResult>",
                       "<PartNumber> is out of range");
}

/* ---- the reader ------------------------------------------------------------------- */

static void test_entities(void **state)
{
    (void)state;
    expect_key("&amp;&lt;&gt;&quot;&apos;", "&<>\"'");
    expect_key("&#65;&#x42;&#x43;&#0000068;&#x20AC;&#128512;&#xFFFD;&#x10FFFF;",
               "ABCD\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf");
    expect_key("a&#9;b&#10;c&#13;d", "a\tb\nc\rd");
    expect_key("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    expect_key("a\r\nb\rc\nd", "a\nb\nc\nd"); /* line ends normalised, as XML says */
    expect_key("a<![CDATA[<b>&amp;]]>c", "a<b>&amp;c");
    expect_key("a<!-- a comment, - and all -->b<?pi data?>c", "abc");
    expect_key("]]&gt; > ' \"", "]]> > ' \"");
    expect_key_bad("]]>", "not well-formed"); /* XML forbids "]]>" in text */
    expect_key_bad("&foo;", "unknown entity");
    expect_key_bad("&AMP;", "unknown entity");
    expect_key_bad("& amp;", "not well-formed");
    expect_key_bad("a & b", "not well-formed");
    expect_key_bad("&#;", "not well-formed");
    expect_key_bad("&#x;", "not well-formed");
    expect_key_bad("&#X41;", "not well-formed");
    expect_key_bad("&#12a;", "not well-formed");
    expect_key_bad("&#x110000;", "XML cannot carry");
    expect_key_bad("&#99999999999;", "XML cannot carry");
    expect_key_bad("&#0;", "XML cannot carry");
    expect_key_bad("&#1;", "XML cannot carry");
    expect_key_bad("&#xD800;", "XML cannot carry");
    expect_key_bad("&#xFFFE;", "XML cannot carry");
    expect_key_bad("a\x01" "b", "control character");
    expect_key_bad("\xc3(", "invalid UTF-8");
    expect_key_bad("\xc0\xaf", "invalid UTF-8");         /* overlong */
    expect_key_bad("\xed\xa0\x80", "invalid UTF-8");     /* surrogate */
    expect_key_bad("\xef\xbf\xbf", "invalid UTF-8");     /* U+FFFF */
    expect_key_bad("\xf4\x90\x80\x80", "invalid UTF-8"); /* past U+10FFFF */
    expect_key_bad("\xff", "invalid UTF-8");
    expect_key_bad("a<!-- x -- y -->", "not well-formed");
    expect_key_bad("a<!DOCTYPE x>", "not well-formed");
    expect_key_bad("a<?xml version=\"1.0\"?>", "misplaced XML declaration");
}

static void test_escape_round_trip(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "plain",
        "&<>\"'",
        "&amp; is not decoded twice &lt;",
        " leading and trailing spaces ",
        "tab\tnewline\ncarriage return\r\nend\r",
        "backups/2024-01-01T00:00:00Z/host-1.manifest",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd",
        "]]>",
        "",
    };
    for (size_t i = 0; i < N(texts); i++) {
        cs_buf b = CS_BUF_INIT;
        cs_err e;
        assert_int_equal(cs_s3xml_escape(texts[i], strlen(texts[i]), &b, &e), 0);
        assert_null(strchr(cs_buf_str(&b), '<'));
        assert_null(strchr(cs_buf_str(&b), '\r'));
        if (texts[i][0]) {
            char *got;
            if (key_of(cs_buf_str(&b), &got, &e))
                fail_msg("%s: %s", cs_buf_str(&b), e.msg);
            assert_string_equal(got, texts[i]);
            free(got);
        }
        cs_buf_free(&b);
    }
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    cs_s3xml_escape("a&b", 3, &b, &e);
    assert_string_equal(cs_buf_str(&b), "a&amp;b");
    cs_s3xml_escape("<'\">\t", 5, &b, &e);
    assert_string_equal(cs_buf_str(&b), "a&amp;b&lt;&apos;&quot;&gt;&#9;");
    static const char *const bad[] = { "\x01", "a\0b", "\x1f", "\xc3(", "\xc0\xaf", "\xed\xa0\x80",
                                       "\xef\xbf\xbe", "\xf4\x90\x80\x80", "\xe2\x82" };
    static const size_t badlen[] = { 1, 3, 1, 2, 2, 3, 3, 4, 2 };
    for (size_t i = 0; i < N(bad); i++) {
        cs_err_clear(&e);
        assert_int_equal(cs_s3xml_escape(bad[i], badlen[i], &b, &e), CS_E_INVAL);
        assert_true(strncmp(e.msg, "S3 request: ", 12) == 0);
        assert_string_equal(cs_buf_str(&b), "a&amp;b&lt;&apos;&quot;&gt;&#9;"); /* unchanged */
    }
    cs_buf_free(&b);
}

static void test_syntax(void **state)
{
    (void)state;
    /* Accepted: BOM, whitespace and comments around, single quotes, spaces
     * in tags, namespace prefixes, self-closing root, processing
     * instructions, a declaration with every pseudo-attribute. */
    expect_ok(K_DELETE, "\xEF\xBB\xBF<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\r\n"
                        "<!-- head --><?pi x?>\n<DeleteResult  xmlns = 'x' a=\"&amp;&#65;>\" >"
                        "<Deleted ><Key >k</Key ></Deleted\n></DeleteResult>\n<!-- tail -->\n<?pi?>\n\n");
    expect_ok(K_DELETE, "<s3:DeleteResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s3:Deleted>"
                        "<s3:Key>k</s3:Key></s3:Deleted></s3:DeleteResult>");
    expect_ok(K_DELETE, "<DeleteResult/>");
    expect_ok(K_DELETE, "  \n\t <DeleteResult></DeleteResult>");

    expect_proto(K_DELETE, "", "empty document");
    expect_proto(K_DELETE, " \r\n\t", "empty document");
    expect_proto(K_DELETE, "\xEF\xBB\xBF", "empty document");
    expect_proto(K_DELETE, "<?xml version=\"1.0\"?>", "unexpected end of document");
    expect_proto(K_DELETE, "<!-- only a comment -->", "unexpected end of document");
    expect_proto(K_DELETE, "hello", "text outside the root element");
    expect_proto(K_DELETE, "<DeleteResult></DeleteResult>trailing", "text outside the root element");
    expect_proto(K_DELETE, "<DeleteResult/><DeleteResult/>", "content after the root element");
    expect_proto(K_DELETE, "<DeleteResult></DeleteResult><![CDATA[x]]>", "content after the root element");
    expect_proto(K_DELETE, "<!DOCTYPE DeleteResult [<!ENTITY a \"b\">]><DeleteResult/>", "DOCTYPE is not allowed");
    expect_proto(K_DELETE, "<![CDATA[x]]><DeleteResult/>", "unexpected markup");
    expect_proto(K_DELETE, "<!-- x --><?xml version=\"1.0\"?><DeleteResult/>", "misplaced XML declaration");
    expect_proto(K_DELETE, "<DeleteResult></Deleteresult>", "</Deleteresult> does not close <DeleteResult>");
    expect_proto(K_DELETE, "<DeleteResult><a></b></DeleteResult>", "</b> does not close <a>");
    expect_proto(K_DELETE, "<s3:DeleteResult></DeleteResult>", "does not close");
    expect_proto(K_DELETE, "<DeleteResult a></DeleteResult>", "not well-formed at '>'");
    expect_proto(K_DELETE, "<DeleteResult a=b></DeleteResult>", "not well-formed at 'b'");
    expect_proto(K_DELETE, "<DeleteResult a=\"<\"></DeleteResult>", "not well-formed at '<'");
    expect_proto(K_DELETE, "<DeleteResult a=\"&bad;\"></DeleteResult>", "unknown entity");
    expect_proto(K_DELETE, "<DeleteResult a=\"1\"b=\"2\"></DeleteResult>", "not well-formed");
    expect_proto(K_DELETE, "<DeleteResult/ ></DeleteResult>", "not well-formed");
    expect_proto(K_DELETE, "<DeleteResult></DeleteResult x>", "not well-formed");
    expect_proto(K_DELETE, "<1DeleteResult/>", "not well-formed");
    expect_proto(K_DELETE, "<DeleteResult><:Key/></DeleteResult>", "bad name");
    expect_proto(K_DELETE, "<DeleteResult><a:/></DeleteResult>", "bad name");
    expect_proto(K_DELETE, "<DeleteResult><a:b:c/></DeleteResult>", "bad name");
    expect_ok(K_DELETE, "<DeleteResult><K\xc3\xa9y/></DeleteResult>"); /* XML names need not be ASCII */
    expect_proto(K_DELETE, "<DeleteResult><!ELEMENT x></DeleteResult>", "not well-formed");
    expect_proto(K_DELETE, "<DeleteResult><?xml version=\"1.0\"?></DeleteResult>", "misplaced XML declaration");
    expect_proto(K_DELETE, "<DeleteResult><?pi\x01?></DeleteResult>", "control character");
    expect_proto(K_DELETE, "<DeleteResult>\0</DeleteResult>", "unexpected end of document");
    expect_proto(K_LIST, "<Foo/>", "expected <ListBucketResult>, got <Foo>");
    cs_err e;
    assert_int_equal(parse_kind(K_DELETE, "<DeleteResult>\0</DeleteResult>", 30, &e), CS_E_PROTO);
    assert_non_null(strstr(e.msg, "control character in <DeleteResult>"));
    assert_int_equal(cs_s3xml_parse_delete(NULL, 0, &(cs_s3xml_delete){ 0 }, &e), CS_E_PROTO);
    assert_int_equal(cs_s3xml_parse_delete(NULL, 5, &(cs_s3xml_delete){ 0 }, &e), CS_E_INVAL);

    /* Names up to 256 bytes. */
    cs_buf b = CS_BUF_INIT;
    char name[258];
    memset(name, 'n', sizeof name);
    name[256] = '\0';
    cs_buf_printf(&b, "<DeleteResult><%s a='1'/><%s>x</%s></DeleteResult>", name, name, name);
    expect_ok(K_DELETE, cs_buf_str(&b));
    cs_buf_reset(&b);
    name[256] = 'n';
    name[257] = '\0';
    cs_buf_printf(&b, "<DeleteResult><%s/></DeleteResult>", name);
    expect_proto(K_DELETE, cs_buf_str(&b), "name longer than 256 bytes");
    cs_buf_reset(&b);
    cs_buf_printf(&b, "<DeleteResult><a %s='1'/></DeleteResult>", name);
    expect_proto(K_DELETE, cs_buf_str(&b), "name longer than 256 bytes");
    cs_buf_free(&b);
}

static void test_limits(void **state)
{
    (void)state;
    /* 16 open elements are fine, 17 are not. */
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, "<DeleteResult>");
    for (int i = 0; i < 15; i++)
        cs_buf_addstr(&b, "<a>");
    for (int i = 0; i < 15; i++)
        cs_buf_addstr(&b, "</a>");
    cs_buf_addstr(&b, "</DeleteResult>");
    expect_ok(K_DELETE, cs_buf_str(&b));
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<DeleteResult>");
    for (int i = 0; i < 16; i++)
        cs_buf_addstr(&b, "<a>");
    expect_proto(K_DELETE, cs_buf_str(&b), "elements nested deeper than 16 in <a>");
    /* A deep document that never ends is refused at depth 17, not read on. */
    for (int i = 0; i < 10000; i++)
        cs_buf_addstr(&b, "<a>");
    expect_proto(K_DELETE, cs_buf_str(&b), "nested deeper than 16");

    /* One element's text: 64 KiB at most, also through entities. */
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<DeleteResult><Deleted><Key>");
    for (size_t i = 0; i < CS_S3XML_MAX_TEXT / 4; i++)
        cs_buf_addstr(&b, "abcd");
    cs_buf_addstr(&b, "</Key></Deleted></DeleteResult>");
    cs_s3xml_delete d;
    cs_err e;
    assert_int_equal(cs_s3xml_parse_delete(b.data, b.len, &d, &e), 0);
    assert_int_equal(strlen(d.deleted[0]), CS_S3XML_MAX_TEXT);
    cs_s3xml_delete_free(&d);
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<DeleteResult><Deleted><Key>");
    for (size_t i = 0; i < CS_S3XML_MAX_TEXT / 4; i++)
        cs_buf_addstr(&b, "abcd");
    cs_buf_addstr(&b, "&amp;</Key></Deleted></DeleteResult>");
    expect_proto(K_DELETE, cs_buf_str(&b), "text longer than 65536 bytes in <Key>");
    /* Text of elements with children is not kept, so not limited either. */
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<DeleteResult><Deleted><Key>k</Key>");
    for (size_t i = 0; i < CS_S3XML_MAX_TEXT; i++)
        cs_buf_addstr(&b, "x ");
    cs_buf_addstr(&b, "</Deleted></DeleteResult>");
    expect_ok(K_DELETE, cs_buf_str(&b));

    /* Lists: CS_S3XML_MAX_ITEMS entries at most. */
    cs_buf_reset(&b);
    cs_buf_addstr(&b, "<DeleteResult>");
    for (size_t i = 0; i < CS_S3XML_MAX_ITEMS; i++)
        cs_buf_addstr(&b, "<Deleted><Key>k</Key></Deleted>");
    cs_buf_addstr(&b, "</DeleteResult>");
    assert_int_equal(cs_s3xml_parse_delete(b.data, b.len, &d, &e), 0);
    assert_int_equal(d.ndeleted, CS_S3XML_MAX_ITEMS);
    cs_s3xml_delete_free(&d);
    b.len -= strlen("</DeleteResult>");
    cs_buf_addstr(&b, "<Deleted><Key>k</Key></Deleted></DeleteResult>");
    expect_proto(K_DELETE, cs_buf_str(&b), "more than 100000 <Deleted> entries");
    cs_buf_free(&b);
}

/* Every prefix of every sample: a clean "unexpected end of document" (or
 * "empty document") until the root element is complete, then success. */
static void test_truncation(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        enum kind kind;
        int rc;
    } samples[] = {
        { LIST_AWS, K_LIST, 0 },         { LIST_MINIO, K_LIST, 0 },
        { LIST_EMPTY, K_LIST, 0 },       { INITIATE, K_INITIATE, 0 },
        { COMPLETE, K_COMPLETE, 0 },     { COMPLETE_KEEPALIVE, K_COMPLETE, 0 },
        { COMPLETE_ERROR, K_COMPLETE, CS_E_EXTERNAL }, { ERROR, K_ERROR, 0 },
        { DELETE, K_DELETE, 0 },         { UPLOADS, K_UPLOADS, 0 },
        { UPLOADS_NONE, K_UPLOADS, 0 },
    };
    size_t tried = 0;
    for (size_t s = 0; s < N(samples); s++) {
        const char *doc = samples[s].doc;
        size_t len = strlen(doc);
        size_t end = (size_t)(strrchr(doc, '>') - doc) + 1;
        for (size_t k = 0; k <= len; k++) {
            cs_err e;
            int rc = parse_kind(samples[s].kind, doc, k, &e);
            tried++;
            if (k >= end) {
                if (rc != samples[s].rc)
                    fail_msg("sample %zu, %zu of %zu bytes: %d %s", s, k, len, rc, e.msg);
                continue;
            }
            if (rc != CS_E_PROTO)
                fail_msg("sample %zu, %zu of %zu bytes: %d", s, k, len, rc);
            if (strncmp(e.msg, "S3 response: unexpected end of document", 39) != 0 &&
                strcmp(e.msg, "S3 response: empty document") != 0)
                fail_msg("sample %zu, %zu of %zu bytes: %s", s, k, len, e.msg);
        }
    }
    assert_true(tried > 5000);
}

/* Each sample read by every other parser: a clean refusal, never a crash. */
static void test_wrong_document(void **state)
{
    (void)state;
    static const char *const docs[] = { LIST_AWS, INITIATE, COMPLETE, DELETE, UPLOADS };
    static const enum kind kinds[] = { K_LIST, K_INITIATE, K_COMPLETE, K_DELETE, K_UPLOADS };
    for (size_t d = 0; d < N(docs); d++) {
        for (int k = 0; k < K_COUNT; k++) {
            cs_err e;
            int rc = parse_kind((enum kind)k, docs[d], strlen(docs[d]), &e);
            if (kinds[d] == (enum kind)k) {
                assert_int_equal(rc, 0);
            } else {
                assert_int_equal(rc, CS_E_PROTO);
                assert_non_null(strstr(e.msg, "expected <"));
            }
        }
    }
}

/* ---- the writers -------------------------------------------------------------------- */

static void test_complete_body(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    const cs_s3xml_part parts[] = { { 1, "\"a54357aff0632cce46d942af68356b38\"" },
                                    { 2, "\"0c78aef83f66abc1fa1e8477f296d394\"" },
                                    { 7, "\"acbd18db4cc2f85cedef654fccc4a4d8\"" } };
    assert_int_equal(cs_s3xml_complete_body(parts, N(parts), &b, &e), 0);
    assert_string_equal(cs_buf_str(&b),
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                        "<Part><PartNumber>1</PartNumber><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>"
                        "<Part><PartNumber>2</PartNumber><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag></Part>"
                        "<Part><PartNumber>7</PartNumber><ETag>&quot;acbd18db4cc2f85cedef654fccc4a4d8&quot;</ETag></Part>"
                        "</CompleteMultipartUpload>");
    size_t before = b.len;
    const cs_s3xml_part dup[] = { { 1, "a" }, { 1, "b" } };
    const cs_s3xml_part desc[] = { { 2, "a" }, { 1, "b" } };
    const cs_s3xml_part zero[] = { { 0, "a" } };
    const cs_s3xml_part big[] = { { 10001, "a" } };
    const cs_s3xml_part noetag[] = { { 1, "" } };
    const cs_s3xml_part nulletag[] = { { 1, NULL } };
    const cs_s3xml_part badetag[] = { { 1, "\x01" } };
    assert_int_equal(cs_s3xml_complete_body(dup, 2, &b, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "part 1 after 1"));
    assert_int_equal(cs_s3xml_complete_body(desc, 2, &b, &e), CS_E_INVAL);
    assert_int_equal(cs_s3xml_complete_body(zero, 1, &b, &e), CS_E_INVAL);
    assert_int_equal(cs_s3xml_complete_body(big, 1, &b, &e), CS_E_INVAL);
    assert_int_equal(cs_s3xml_complete_body(noetag, 1, &b, &e), CS_E_INVAL);
    assert_string_equal(e.msg, "S3 request: part 1 has no ETag");
    assert_int_equal(cs_s3xml_complete_body(nulletag, 1, &b, &e), CS_E_INVAL);
    assert_int_equal(cs_s3xml_complete_body(badetag, 1, &b, &e), CS_E_INVAL);
    assert_int_equal(cs_s3xml_complete_body(parts, 0, &b, &e), CS_E_INVAL);
    assert_int_equal(b.len, before);

    /* 10000 parts is the most S3 takes. */
    cs_s3xml_part *many = calloc(10001, sizeof *many);
    for (unsigned i = 0; i < 10001; i++)
        many[i] = (cs_s3xml_part){ i + 1, "\"e\"" };
    cs_buf_reset(&b);
    assert_int_equal(cs_s3xml_complete_body(many, 10000, &b, &e), 0);
    assert_non_null(strstr(cs_buf_str(&b), "<Part><PartNumber>10000</PartNumber><ETag>&quot;e&quot;</ETag></Part>"
                                           "</CompleteMultipartUpload>"));
    assert_int_equal(cs_s3xml_complete_body(many, 10001, &b, &e), CS_E_INVAL);
    free(many);
    cs_buf_free(&b);
}

static void test_delete_body(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    const char *keys[] = { "objects/ab/abcdef", "Tom & Jerry's <\"best\">", "caf\xc3\xa9\ttab" };
    assert_int_equal(cs_s3xml_delete_body(keys, N(keys), true, &b, &e), 0);
    assert_string_equal(cs_buf_str(&b),
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
                        "<Object><Key>objects/ab/abcdef</Key></Object>"
                        "<Object><Key>Tom &amp; Jerry&apos;s &lt;&quot;best&quot;&gt;</Key></Object>"
                        "<Object><Key>caf\xc3\xa9&#9;tab</Key></Object></Delete>");
    cs_buf_reset(&b);
    assert_int_equal(cs_s3xml_delete_body(keys, 1, false, &b, &e), 0);
    assert_string_equal(cs_buf_str(&b), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                        "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                        "<Object><Key>objects/ab/abcdef</Key></Object></Delete>");
    size_t before = b.len;
    const char *empty_key[] = { "a", "" };
    const char *null_key[] = { NULL };
    const char *bad_key[] = { "a", "b", "\xff" };
    assert_int_equal(cs_s3xml_delete_body(empty_key, 2, true, &b, &e), CS_E_INVAL);
    assert_string_equal(e.msg, "S3 request: key 2 is empty or longer than 1024 bytes");
    assert_int_equal(cs_s3xml_delete_body(null_key, 1, true, &b, &e), CS_E_INVAL);
    assert_int_equal(cs_s3xml_delete_body(bad_key, 3, true, &b, &e), CS_E_INVAL);
    assert_string_equal(e.msg, "S3 request: key 3 is not valid UTF-8 or holds a character XML cannot carry");
    assert_int_equal(cs_s3xml_delete_body(keys, 0, true, &b, &e), CS_E_INVAL);
    char longkey[1026];
    memset(longkey, 'k', sizeof longkey);
    longkey[1024] = '\0';
    const char *lk[] = { longkey };
    assert_int_equal(cs_s3xml_delete_body(lk, 1, true, &b, &e), 0);
    before = b.len;
    longkey[1024] = 'k';
    longkey[1025] = '\0';
    assert_int_equal(cs_s3xml_delete_body(lk, 1, true, &b, &e), CS_E_INVAL);
    const char **many = calloc(1001, sizeof *many);
    for (size_t i = 0; i < 1001; i++)
        many[i] = "k";
    assert_int_equal(cs_s3xml_delete_body(many, 1001, true, &b, &e), CS_E_INVAL);
    assert_int_equal(b.len, before);
    cs_buf_reset(&b);
    assert_int_equal(cs_s3xml_delete_body(many, 1000, true, &b, &e), 0);
    free(many);
    cs_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_initiate_complete),
        cmocka_unit_test(test_error_where_result_expected),
        cmocka_unit_test(test_error_document),
        cmocka_unit_test(test_delete_result),
        cmocka_unit_test(test_uploads),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_escape_round_trip),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_wrong_document),
        cmocka_unit_test(test_complete_body),
        cmocka_unit_test(test_delete_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

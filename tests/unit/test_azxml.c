/* test_azxml.c - the Azure Blob documents: List Blobs pages (names
 * decoded, sizes and times, markers, properties Azure may add, the checks
 * of a Blob's fields), Error documents (code and the first line of the
 * message), the Put Block List body and HTTP dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/azxml.h"

static const char PAGE[] =
    "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<EnumerationResults ServiceEndpoint=\"http://127.0.0.1:10000/devstoreaccount1\" ContainerName=\"cassette\">"
    "<Prefix>objects/</Prefix><MaxResults>2</MaxResults><Blobs>"
    "<Blob><Name>objects/ab/abcdef</Name><Properties>"
    "<Creation-Time>Mon, 27 Jan 2025 11:00:00 GMT</Creation-Time>"
    "<Last-Modified>Mon, 27 Jan 2025 12:00:00 GMT</Last-Modified><Etag>0x8DD3F0A1B2C3D4E</Etag>"
    "<Content-Length>1048576</Content-Length><Content-Type>application/octet-stream</Content-Type>"
    "<BlobType>BlockBlob</BlobType><NewProperty><Nested>x</Nested></NewProperty></Properties></Blob>"
    "<Blob><Name>objects/ab/Tom &amp; Jerry &#x263A;</Name><Properties><Content-Length>0</Content-Length>"
    "</Properties><Metadata/></Blob>"
    "<BlobPrefix><Name>objects/cd/</Name></BlobPrefix>"
    "</Blobs><NextMarker>2!84!MDAwMDE5IW9iamVjdHMvYWIvYWJjZGVm</NextMarker></EnumerationResults>";

static void test_list_page(void **state)
{
    (void)state;
    cs_azxml_list l;
    cs_err e;
    assert_int_equal(cs_azxml_parse_list(PAGE, strlen(PAGE), &l, &e), 0);
    assert_int_equal(l.nblobs, 2);
    assert_string_equal(l.blobs[0].name, "objects/ab/abcdef");
    assert_true(l.blobs[0].size == 1048576);
    assert_true(l.blobs[0].mtime == 1737979200); /* Last-Modified, not Creation-Time */
    assert_string_equal(l.blobs[1].name, "objects/ab/Tom & Jerry \xE2\x98\xBA");
    assert_true(l.blobs[1].size == 0 && l.blobs[1].mtime == 0);
    assert_string_equal(l.next_marker, "2!84!MDAwMDE5IW9iamVjdHMvYWIvYWJjZGVm");
    cs_azxml_list_free(&l);
    cs_azxml_list_free(&l); /* harmless twice */

    static const char last[] = "<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>";
    assert_int_equal(cs_azxml_parse_list(last, strlen(last), &l, &e), 0);
    assert_int_equal(l.nblobs, 0);
    assert_true(l.next_marker == NULL || l.next_marker[0] == '\0');
    cs_azxml_list_free(&l);
}

static void expect_list_error(const char *doc, const char *msg)
{
    cs_azxml_list l;
    cs_err e;
    assert_int_equal(cs_azxml_parse_list(doc, strlen(doc), &l, &e), CS_E_PROTO);
    assert_string_equal(e.msg, msg);
    assert_null(l.blobs);
    assert_int_equal(l.nblobs, 0);
    cs_azxml_list_free(&l);
}

static void test_list_refused(void **state)
{
    (void)state;
    expect_list_error("<EnumerationResults><Blobs><Blob><Properties><Content-Length>1</Content-Length>"
                      "</Properties></Blob></Blobs></EnumerationResults>",
                      "Azure response: <Blob> without <Name>");
    expect_list_error("<EnumerationResults><Blobs><Blob><Name>a</Name></Blob></Blobs></EnumerationResults>",
                      "Azure response: <Blob> without <Content-Length>");
    expect_list_error("<EnumerationResults><Blobs><Blob><Name>a</Name><Properties><Content-Length>x"
                      "</Content-Length></Properties></Blob></Blobs></EnumerationResults>",
                      "Azure response: <Content-Length> is not a number");
    expect_list_error("<EnumerationResults><Blobs><Blob><Name>a</Name><Properties><Content-Length>1"
                      "</Content-Length><Last-Modified>2025-01-27</Last-Modified></Properties></Blob></Blobs>"
                      "</EnumerationResults>",
                      "Azure response: <Last-Modified> is not an HTTP date");
    expect_list_error("<Error><Code>AuthenticationFailed</Code></Error>",
                      "Azure response: <Error> where <EnumerationResults> was expected");
    cs_azxml_list l;
    cs_err e;
    static const char cut[] = "<EnumerationResults><Blobs><Blob><Name>a</Name>";
    assert_int_equal(cs_azxml_parse_list(cut, strlen(cut), &l, &e), CS_E_PROTO);
    assert_non_null(strstr(e.msg, "unexpected end of document"));
    static const char doctype[] = "<!DOCTYPE x [<!ENTITY a \"b\">]><EnumerationResults/>";
    assert_int_equal(cs_azxml_parse_list(doctype, strlen(doctype), &l, &e), CS_E_PROTO);
    assert_int_equal(cs_azxml_parse_list(NULL, 3, &l, &e), CS_E_INVAL);
}

static void test_error_document(void **state)
{
    (void)state;
    static const char doc[] = "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobAlreadyExists"
                              "</Code><Message>The specified blob already exists.\n"
                              "RequestId:3b1c2f7e-601e-0061-3c3a-70b1d4000000\n"
                              "Time:2025-01-27T12:00:00.0000000Z</Message></Error>";
    cs_azxml_error x;
    cs_err e;
    assert_int_equal(cs_azxml_parse_error(doc, strlen(doc), &x, &e), 0);
    assert_string_equal(x.code, "BlobAlreadyExists");
    assert_string_equal(x.message, "The specified blob already exists.");
    cs_azxml_error_free(&x);

    static const char bare[] = "<Error/>";
    assert_int_equal(cs_azxml_parse_error(bare, strlen(bare), &x, &e), 0);
    assert_null(x.code);
    assert_null(x.message);
    cs_azxml_error_free(&x);

    static const char other[] = "<EnumerationResults/>";
    assert_int_equal(cs_azxml_parse_error(other, strlen(other), &x, &e), CS_E_PROTO);
    assert_string_equal(e.msg, "Azure response: <EnumerationResults> where <Error> was expected");
    static const char twice[] = "<Error><Code>a</Code><Code>b</Code></Error>";
    assert_int_equal(cs_azxml_parse_error(twice, strlen(twice), &x, &e), CS_E_PROTO);
    assert_null(x.code);
}

static void test_block_list_body(void **state)
{
    (void)state;
    const char *ids[] = { "MDAwMQ==", "MDAwMg==" };
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, "stale");
    cs_azxml_block_list_body(ids, 2, &b);
    assert_string_equal(cs_buf_str(&b), "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>"
                                        "<Latest>MDAwMQ==</Latest><Latest>MDAwMg==</Latest></BlockList>");
    cs_azxml_block_list_body(ids, 0, &b);
    assert_string_equal(cs_buf_str(&b), "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList></BlockList>");
    cs_buf_free(&b);
}

static void test_http_date(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_true(cs_azxml_http_date("Sun, 11 Oct 2009 21:49:13 GMT", 29, &t));
    assert_true(t == 1255297753);
    assert_true(cs_azxml_http_date("Thu, 01 Jan 1970 00:00:00 GMT", 29, &t));
    assert_true(t == 0);
    assert_true(cs_azxml_http_date("Mon, 29 Feb 2100 00:00:00 GMTxx", 29, &t)); /* len bounds it */
    static const char *const bad[] = {
        "Sun, 11 Oct 2009 21:49:13 UTC", "Sun 11 Oct 2009 21:49:13 GMT ", "Xyz, 11 Oct 2009 21:49:13 GMT",
        "Sun, 11 Okt 2009 21:49:13 GMT", "Sun, 1a Oct 2009 21:49:13 GMT", "Sun, 11 Oct 2009 24:49:13 GMT",
        "Sun, 00 Oct 2009 21:49:13 GMT", "Sun, 11 Oct 1969 21:49:13 GMT", "2009-10-11T21:49:13Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cs_azxml_http_date(bad[i], strlen(bad[i]), &t));
    assert_false(cs_azxml_http_date("Sun, 11 Oct 2009 21:49:13 GMT", 28, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_page),
        cmocka_unit_test(test_list_refused),
        cmocka_unit_test(test_error_document),
        cmocka_unit_test(test_block_list_body),
        cmocka_unit_test(test_http_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

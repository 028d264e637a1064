/* test_sigv4.c - storage/sigv4: AWS Signature Version 4.
 *
 * Known answers from two AWS sources:
 *  - the S3 API Reference, "Authenticating Requests: Using the Authorization
 *    Header (AWS Signature Version 4)", its worked examples (GET Object with
 *    Range, PUT Object, GET Bucket lifecycle, GET Bucket list objects):
 *    canonical request, string to sign and signature each checked;
 *  - the aws-sig-v4-test-suite (service "service", 20150830T123600Z): the
 *    cases whose rules hold for S3. Not used: the normalize-path cases that
 *    collapse "." and ".." segments and the cases that give the path already
 *    percent-encoded and expect it encoded a second time; S3 does neither
 *    (our path is given unencoded and encoded exactly once), and
 *    post-sts-header-after, which adds the token after signing (we always
 *    sign it); get-header-value-multiline (we refuse line breaks in values).
 * Then URI encoding edge cases, the query string, the headers to send, the
 * time formats, SHA-256 helpers and the refusals. */
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
#include "crypto/sha256.h"
#include "storage/sigv4.h"

#define EMPTY CS_SIGV4_EMPTY_SHA256

/* The S3 documentation's examples. */
static const cs_sigv4_creds S3_CREDS = { "AKIAIOSFODNN7EXAMPLE",
                                         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL,
                                         "us-east-1", "s3" };
#define S3_HOST "examplebucket.s3.amazonaws.com"
#define S3_DATE "20130524T000000Z"
static const time_t S3_TIME = 1369353600; /* 2013-05-24T00:00:00Z */

/* The aws-sig-v4-test-suite. */
static const cs_sigv4_creds SUITE_CREDS = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                            NULL, "us-east-1", "service" };
#define SUITE_HOST "example.amazonaws.com"
#define SUITE_DATE "20150830T123600Z"
static const time_t SUITE_TIME = 1440938160; /* 2015-08-30T12:36:00Z */
#define SUITE_AUTH "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
#define SUITE_SCOPE "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void sign_ok(const cs_sigv4_creds *c, const cs_sigv4_request *r, cs_sigv4_result *res)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_sigv4_sign(c, r, res, &e);
    if (rc)
        fail_msg("sign failed: %s", e.msg);
}

static char *enc(const char *s, bool keep_slash)
{
    cs_buf b = CS_BUF_INIT;
    cs_sigv4_uri_encode(s, strlen(s), keep_slash, &b);
    return cs_buf_detach(&b);
}

static void assert_enc(const char *in, bool keep_slash, const char *want)
{
    char *got = enc(in, keep_slash);
    assert_string_equal(got, want);
    free(got);
}

/* ---- the S3 documentation's examples ---------------------------------------- */

static void test_s3_get_object(void **state)
{
    (void)state;
    const cs_sigv4_pair h[] = { { "Host", S3_HOST },
                                { "Range", "bytes=0-9" },
                                { "x-amz-content-sha256", EMPTY },
                                { "x-amz-date", S3_DATE } };
    cs_sigv4_request r = { "GET", S3_HOST, "/test.txt", NULL, 0, h, N(h), EMPTY, S3_TIME };
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    sign_ok(&S3_CREDS, &r, &res);
    assert_string_equal(cs_buf_str(&res.canonical_request),
                        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                        "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n\n"
                        "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY);
    assert_string_equal(cs_buf_str(&res.string_to_sign),
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    assert_string_equal(res.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(cs_buf_str(&res.authorization),
                        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(cs_buf_str(&res.signed_headers), "host;range;x-amz-content-sha256;x-amz-date");
    assert_string_equal(res.amz_date, S3_DATE);
    cs_sigv4_result_free(&res);
}

static void test_s3_put_object(void **state)
{
    (void)state;
    static const char body[] = "Welcome to Amazon S3.";
    char hash[CS_SIGV4_HEX];
    cs_sha256_hex(body, strlen(body), hash);
    assert_string_equal(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

    const cs_sigv4_pair h[] = { { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
                                { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
                                { "x-amz-date", S3_DATE },
                                { "x-amz-content-sha256", hash },
                                { "Host", S3_HOST } };
    /* The key is "test$file.text": '$' is encoded by the signer. */
    cs_sigv4_request r = { "PUT", S3_HOST, "/test$file.text", NULL, 0, h, N(h), hash, S3_TIME };
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    sign_ok(&S3_CREDS, &r, &res);
    assert_string_equal(cs_buf_str(&res.canonical_request),
                        "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
                        "host:examplebucket.s3.amazonaws.com\n"
                        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
                        "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    assert_string_equal(cs_buf_str(&res.string_to_sign),
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    assert_string_equal(res.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    assert_string_equal(cs_buf_str(&res.authorization),
                        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
                        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    cs_sigv4_result_free(&res);
}

static void test_s3_get_lifecycle(void **state)
{
    (void)state;
    const cs_sigv4_pair q[] = { { "lifecycle", "" } };
    const cs_sigv4_pair h[] = { { "host", S3_HOST },
                                { "x-amz-date", S3_DATE },
                                { "x-amz-content-sha256", EMPTY } };
    cs_sigv4_request r = { "GET", S3_HOST, "/", q, N(q), h, N(h), EMPTY, S3_TIME };
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    sign_ok(&S3_CREDS, &r, &res);
    assert_string_equal(cs_buf_str(&res.canonical_request),
                        "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
                        "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n\n"
                        "host;x-amz-content-sha256;x-amz-date\n" EMPTY);
    assert_string_equal(cs_buf_str(&res.string_to_sign),
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
    assert_string_equal(res.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    cs_sigv4_result_free(&res);
}

static void test_s3_list_objects(void **state)
{
    (void)state;
    /* Given out of order: the signer sorts. */
    const cs_sigv4_pair q[] = { { "prefix", "J" }, { "max-keys", "2" } };
    const cs_sigv4_pair h[] = { { "x-amz-content-sha256", EMPTY },
                                { "X-Amz-Date", S3_DATE },
                                { "HOST", S3_HOST } };
    cs_sigv4_request r = { "GET", S3_HOST, "/", q, N(q), h, N(h), EMPTY, S3_TIME };
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    sign_ok(&S3_CREDS, &r, &res);
    assert_string_equal(cs_buf_str(&res.canonical_request),
                        "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
                        "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n\n"
                        "host;x-amz-content-sha256;x-amz-date\n" EMPTY);
    assert_string_equal(cs_buf_str(&res.string_to_sign),
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
    assert_string_equal(res.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    cs_sigv4_result_free(&res);
}

/* ---- aws-sig-v4-test-suite ----------------------------------------------------- */

typedef struct suite_case {
    const char *name;
    const char *method;
    const char *path; /* unencoded */
    cs_sigv4_pair query[2];
    size_t nquery;
    cs_sigv4_pair headers[4]; /* besides Host and X-Amz-Date */
    size_t nheaders;
    const char *body;
    const char *session_token;
    const char *creq;
    const char *sts_hash;
    const char *authz_tail; /* "SignedHeaders=..., Signature=..." */
} suite_case;

static const char STS_TOKEN[] =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIe"
    "oIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq"
    "5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC"
    "9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

#define VANILLA_HEADERS "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY

static const suite_case SUITE[] = {
    { "get-vanilla", "GET", "/", { { 0 } }, 0, { { 0 } }, 0, "", NULL,
      "GET\n/\n\n" VANILLA_HEADERS,
      "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
      "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
    { "get-vanilla-query-order-key-case", "GET", "/",
      { { "Param2", "value2" }, { "Param1", "value1" } }, 2, { { 0 } }, 0, "", NULL,
      "GET\n/\nParam1=value1&Param2=value2\n" VANILLA_HEADERS,
      "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
      "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
    { "get-vanilla-empty-query-key", "GET", "/", { { "Param1", "value1" } }, 1, { { 0 } }, 0, "", NULL,
      "GET\n/\nParam1=value1\n" VANILLA_HEADERS,
      "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
      "SignedHeaders=host;x-amz-date, Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" },
    { "get-vanilla-query-unreserved", "GET", "/",
      { { "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
          "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" } }, 1,
      { { 0 } }, 0, "", NULL,
      "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n" VANILLA_HEADERS,
      "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
      "SignedHeaders=host;x-amz-date, Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },
    { "get-vanilla-utf8-query", "GET", "/", { { "\xe1\x88\xb4", "bar" } }, 1, { { 0 } }, 0, "", NULL,
      "GET\n/\n%E1%88%B4=bar\n" VANILLA_HEADERS,
      "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
      "SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
    { "get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
      { { 0 } }, 0, { { 0 } }, 0, "", NULL,
      "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\n" VANILLA_HEADERS,
      "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
      "SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },
    { "get-utf8", "GET", "/\xe1\x88\xb4", { { 0 } }, 0, { { 0 } }, 0, "", NULL,
      "GET\n/%E1%88%B4\n\n" VANILLA_HEADERS,
      "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
      "SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
    /* normalize-path/get-space: the space is encoded once, as S3 wants too. */
    { "get-space", "GET", "/example space/", { { 0 } }, 0, { { 0 } }, 0, "", NULL,
      "GET\n/example%20space/\n\n" VANILLA_HEADERS,
      "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
      "SignedHeaders=host;x-amz-date, Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },
    { "post-vanilla-query", "POST", "/", { { "Param1", "value1" } }, 1, { { 0 } }, 0, "", NULL,
      "POST\n/\nParam1=value1\n" VANILLA_HEADERS,
      "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
      "SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },
    { "get-header-value-trim", "GET", "/", { { 0 } }, 0,
      { { "My-Header1", " value1" }, { "My-Header2", " \"a   b   c\"" } }, 2, "", NULL,
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
      "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY,
      "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
      "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
      "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
    { "get-header-key-duplicate", "GET", "/", { { 0 } }, 0,
      { { "My-Header1", "value2" }, { "My-Header1", "value2" }, { "My-Header1", "value1" } }, 3, "", NULL,
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
      "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY,
      "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
      "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
    { "post-header-value-case", "POST", "/", { { 0 } }, 0, { { "My-Header1", "VALUE1" } }, 1, "", NULL,
      "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\n"
      "host;my-header1;x-amz-date\n" EMPTY,
      "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
      "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d" },
    /* The suite's original version of this case: body Param1=value1. */
    { "post-x-www-form-urlencoded", "POST", "/", { { 0 } }, 0,
      { { "Content-Type", "application/x-www-form-urlencoded" } }, 1, "Param1=value1", NULL,
      "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
      "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
      "SignedHeaders=content-type;host;x-amz-date, "
      "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
    /* The suite's later edition: charset parameter, no body. Its .creq file
     * names "host;x-amz-date" as the signed headers, a slip: its .sts and
     * .authz (checked here) follow content-type;host;x-amz-date. */
    { "post-x-www-form-urlencoded (2nd edition)", "POST", "/", { { 0 } }, 0,
      { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } }, 1, "", NULL,
      "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:example.amazonaws.com\n"
      "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n" EMPTY,
      "6a42edc18395dd67cc71407d4307ff29ab1646b08c1a0107edb319e08e2bc584",
      "SignedHeaders=content-type;host;x-amz-date, "
      "Signature=0c3bc22986c53164a4755b4466c2e17db853888c5ddb98567e700a3ecdb262f6" },
    { "post-sts-header-before", "POST", "/", { { 0 } }, 0,
      { { "X-Amz-Security-Token", STS_TOKEN } }, 1, "", STS_TOKEN,
      "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
      "x-amz-security-token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIe"
      "oIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq"
      "5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC"
      "9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n\nhost;x-amz-date;x-amz-security-token\n" EMPTY,
      "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
      "SignedHeaders=host;x-amz-date;x-amz-security-token, "
      "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead" },
};

static void test_suite(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(SUITE); i++) {
        const suite_case *t = &SUITE[i];
        cs_sigv4_pair h[8];
        size_t nh = 0;
        h[nh++] = (cs_sigv4_pair){ "Host", SUITE_HOST };
        for (size_t j = 0; j < t->nheaders; j++)
            h[nh++] = t->headers[j];
        h[nh++] = (cs_sigv4_pair){ "X-Amz-Date", SUITE_DATE };
        char hash[CS_SIGV4_HEX];
        cs_sha256_hex(t->body, strlen(t->body), hash);
        cs_sigv4_creds c = SUITE_CREDS;
        c.session_token = t->session_token;
        cs_sigv4_request r = { t->method, SUITE_HOST, t->path, t->query, t->nquery, h, nh, hash,
                               SUITE_TIME };
        cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
        sign_ok(&c, &r, &res);
        printf("# %s\n", t->name);
        assert_string_equal(cs_buf_str(&res.canonical_request), t->creq);
        char *sts = cs_sprintf("%s%s", SUITE_SCOPE, t->sts_hash);
        assert_string_equal(cs_buf_str(&res.string_to_sign), sts);
        free(sts);
        char *authz = cs_sprintf("%s%s", SUITE_AUTH, t->authz_tail);
        assert_string_equal(cs_buf_str(&res.authorization), authz);
        free(authz);
        cs_sigv4_result_free(&res);
    }
}

/* ---- encoding ------------------------------------------------------------------ */

static void test_uri_encode(void **state)
{
    (void)state;
    assert_enc("", true, "");
    assert_enc("a b", false, "a%20b");
    assert_enc("a+b", false, "a%2Bb");
    assert_enc("~-._AZaz09", false, "~-._AZaz09");
    assert_enc("100%", false, "100%25");
    assert_enc("=&?#:@!$'()*,;[]", false, "%3D%26%3F%23%3A%40%21%24%27%28%29%2A%2C%3B%5B%5D");
    assert_enc("caf\xc3\xa9", false, "caf%C3%A9");                       /* é */
    assert_enc("\xe2\x82\xac/\xf0\x9f\x98\x80", true, "%E2%82%AC/%F0%9F%98%80"); /* € / 😀 */
    assert_enc("a/b", true, "a/b");
    assert_enc("a/b", false, "a%2Fb");
    assert_enc("%2F", true, "%252F"); /* the input is raw: a literal '%' is encoded */
    assert_enc("\x01\x7f\xff", false, "%01%7F%FF");
    /* Paths: S3 keeps every segment as is, no normalisation. */
    assert_enc("/bucket/a b/c", true, "/bucket/a%20b/c");
    assert_enc("/bucket/./x/../y//z/", true, "/bucket/./x/../y//z/");
}

static void test_query_string(void **state)
{
    (void)state;
    const cs_sigv4_pair q[] = { { "prefix", "backups/2024 01/" },
                                { "list-type", "2" },
                                { "continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=" },
                                { "b", "2" },
                                { "b", "1" },
                                { "uploads", "" },
                                { "a+b", "c d" } };
    cs_buf b = CS_BUF_INIT;
    cs_sigv4_query_string(q, N(q), &b);
    assert_string_equal(cs_buf_str(&b),
                        "a%2Bb=c%20d&b=1&b=2&"
                        "continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D&"
                        "list-type=2&prefix=backups%2F2024%2001%2F&uploads=");
    cs_buf_free(&b);
    cs_sigv4_query_string(NULL, 0, &b);
    assert_string_equal(cs_buf_str(&b), "");
    cs_buf_free(&b);
}

static void test_path_encoding_in_request(void **state)
{
    (void)state;
    const cs_sigv4_pair h[] = { { "host", "127.0.0.1:7070" },
                                { "x-amz-date", S3_DATE },
                                { "x-amz-content-sha256", CS_SIGV4_UNSIGNED_PAYLOAD } };
    cs_sigv4_request r = { "PUT", "127.0.0.1:7070", "/bucket/a b/c+d~/\xc3\xa9", NULL, 0, h, N(h),
                           CS_SIGV4_UNSIGNED_PAYLOAD, S3_TIME };
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    sign_ok(&S3_CREDS, &r, &res);
    assert_true(strncmp(cs_buf_str(&res.canonical_request), "PUT\n/bucket/a%20b/c%2Bd~/%C3%A9\n\n", 33) ==
                0);
    assert_non_null(strstr(cs_buf_str(&res.canonical_request), "\nhost:127.0.0.1:7070\n"));
    assert_true(strlen(cs_buf_str(&res.canonical_request)) > 16);
    assert_string_equal(cs_buf_str(&res.canonical_request) + res.canonical_request.len - 16,
                        "UNSIGNED-PAYLOAD");
    cs_sigv4_result_free(&res);
}

/* ---- the headers to send ---------------------------------------------------------- */

static void test_headers_helper(void **state)
{
    (void)state;
    cs_err e;
    cs_sigv4_sent s;
    const cs_sigv4_pair h[] = { { "Range", "bytes=0-9" } };
    cs_sigv4_request r = { "GET", S3_HOST, "/test.txt", NULL, 0, h, N(h), EMPTY, S3_TIME };
    assert_int_equal(cs_sigv4_headers(&S3_CREDS, &r, &s, &e), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.lines[0], "Range: bytes=0-9");
    assert_string_equal(s.lines[1], "Host: " S3_HOST);
    assert_string_equal(s.lines[2], "x-amz-date: " S3_DATE);
    assert_string_equal(s.lines[3], "x-amz-content-sha256: " EMPTY);
    /* The documentation's GET Object example, signed by the helper. */
    assert_string_equal(s.lines[4],
                        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                        "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    cs_sigv4_sent_free(&s);
    assert_null(s.lines);

    /* A session token is sent and signed; an empty value uses curl's "Name;". */
    cs_sigv4_creds c = S3_CREDS;
    c.session_token = "FQoGZXIvYXdzEXAMPLE";
    const cs_sigv4_pair h2[] = { { "x-amz-meta-empty", "" } };
    cs_sigv4_request r2 = { "PUT", S3_HOST, "/k", NULL, 0, h2, N(h2), EMPTY, S3_TIME };
    assert_int_equal(cs_sigv4_headers(&c, &r2, &s, &e), 0);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.lines[0], "x-amz-meta-empty;");
    assert_string_equal(s.lines[4], "x-amz-security-token: FQoGZXIvYXdzEXAMPLE");
    assert_non_null(strstr(s.lines[5],
                           "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-empty;"
                           "x-amz-security-token, Signature="));
    cs_sigv4_sent_free(&s);

    /* The headers the helper adds cannot come from the caller. */
    const char *reserved[] = { "host", "X-Amz-Date", "x-amz-content-sha256", "x-amz-security-token",
                               "Authorization" };
    for (size_t i = 0; i < N(reserved); i++) {
        const cs_sigv4_pair h3[] = { { reserved[i], "x" } };
        cs_sigv4_request r3 = { "GET", S3_HOST, "/", NULL, 0, h3, 1, EMPTY, S3_TIME };
        cs_err_clear(&e);
        assert_int_equal(cs_sigv4_headers(&S3_CREDS, &r3, &s, &e), CS_E_INVAL);
        assert_null(s.lines);
        assert_int_equal(s.n, 0);
    }
    cs_sigv4_request r4 = { "GET", NULL, "/", NULL, 0, NULL, 0, EMPTY, S3_TIME };
    assert_int_equal(cs_sigv4_headers(&S3_CREDS, &r4, &s, &e), CS_E_INVAL);
}

/* ---- time and hashing ------------------------------------------------------------ */

static void test_format_time(void **state)
{
    (void)state;
    char amz[CS_SIGV4_AMZ_DATE], date[9];
    cs_err e;
    assert_int_equal(cs_sigv4_format_time(0, amz, date, &e), 0);
    assert_string_equal(amz, "19700101T000000Z");
    assert_string_equal(date, "19700101");
    assert_int_equal(cs_sigv4_format_time(SUITE_TIME, amz, date, &e), 0);
    assert_string_equal(amz, SUITE_DATE);
    assert_string_equal(date, "20150830");
    assert_int_equal(cs_sigv4_format_time(951782399, amz, date, &e), 0); /* leap day */
    assert_string_equal(amz, "20000228T235959Z");
    assert_int_equal(cs_sigv4_format_time(951782400 + 86399, amz, date, &e), 0);
    assert_string_equal(amz, "20000229T235959Z");
    assert_int_equal(cs_sigv4_format_time(253402300799, amz, date, &e), 0);
    assert_string_equal(amz, "99991231T235959Z");
    assert_int_equal(cs_sigv4_format_time(253402300800, amz, date, &e), CS_E_INVAL);
    assert_int_equal(cs_sigv4_format_time(-1, amz, date, &e), CS_E_INVAL);
}

/* ---- refusals --------------------------------------------------------------------- */

static void expect_refusal(const cs_sigv4_creds *c, const cs_sigv4_request *r, const char *needle)
{
    cs_err e;
    cs_err_clear(&e);
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    cs_buf_addstr(&res.authorization, "stale");
    assert_int_equal(cs_sigv4_sign(c, r, &res, &e), CS_E_INVAL);
    assert_int_equal(e.code, CS_E_INVAL);
    if (!strstr(e.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
    assert_true(strncmp(e.msg, "sigv4: ", 7) == 0);
    /* Nothing secret in the sentence, and nothing half-made left behind. */
    assert_null(strstr(e.msg, "wJalrXUtnFEMI"));
    assert_null(strstr(e.msg, "EXAMPLEKEY"));
    assert_string_equal(cs_buf_str(&res.authorization), "");
    assert_string_equal(cs_buf_str(&res.canonical_request), "");
    assert_string_equal(res.signature, "");
    cs_sigv4_result_free(&res);
}

static void test_refusals(void **state)
{
    (void)state;
    cs_sigv4_pair h[] = { { "host", S3_HOST },
                          { "x-amz-date", S3_DATE },
                          { "x-amz-content-sha256", EMPTY } };
    cs_sigv4_request ok = { "GET", S3_HOST, "/", NULL, 0, h, N(h), EMPTY, S3_TIME };
    cs_sigv4_request r;
    cs_sigv4_creds c;

    r = ok;
    r.path = "bucket/key";
    expect_refusal(&S3_CREDS, &r, "path");
    r = ok;
    r.method = "get";
    expect_refusal(&S3_CREDS, &r, "method");
    r = ok;
    r.payload_hash = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    expect_refusal(&S3_CREDS, &r, "payload hash");
    r = ok;
    r.host = "other.example.com";
    expect_refusal(&S3_CREDS, &r, "host header differs");
    r = ok;
    r.when = S3_TIME + 1;
    expect_refusal(&S3_CREDS, &r, "x-amz-date");
    r = ok;
    r.nheaders = 2; /* without x-amz-content-sha256 */
    expect_refusal(&S3_CREDS, &r, "x-amz-content-sha256");
    r = ok;
    r.payload_hash = CS_SIGV4_UNSIGNED_PAYLOAD;
    expect_refusal(&S3_CREDS, &r, "differs from the payload hash");
    r = ok;
    r.headers = h + 1;
    r.nheaders = 2; /* without host */
    expect_refusal(&S3_CREDS, &r, "no host header");

    cs_sigv4_pair bad[] = { { "host", S3_HOST },
                            { "x-amz-date", S3_DATE },
                            { "x-amz-content-sha256", EMPTY },
                            { "x-evil", "a\r\nInjected: yes" } };
    r = ok;
    r.headers = bad;
    r.nheaders = 4;
    expect_refusal(&S3_CREDS, &r, "x-evil");
    bad[3] = (cs_sigv4_pair){ "bad name", "v" };
    expect_refusal(&S3_CREDS, &r, "malformed name");
    bad[3] = (cs_sigv4_pair){ "Authorization", "v" };
    expect_refusal(&S3_CREDS, &r, "Authorization");
    bad[3] = (cs_sigv4_pair){ "x-amz-security-token", "tok" };
    expect_refusal(&S3_CREDS, &r, "without a session token");
    c = S3_CREDS;
    c.session_token = "other";
    expect_refusal(&c, &r, "x-amz-security-token");
    c.session_token = "tok\n";
    expect_refusal(&c, &r, "session token");

    c = S3_CREDS;
    c.secret_access_key = "";
    expect_refusal(&c, &ok, "secret access key is missing");
    c = S3_CREDS;
    c.access_key_id = "AKIA/EXAMPLE";
    expect_refusal(&c, &ok, "access key id");
    c = S3_CREDS;
    c.region = "us east";
    expect_refusal(&c, &ok, "region");
    c = S3_CREDS;
    c.service = NULL;
    expect_refusal(&c, &ok, "service");
    r = ok;
    r.when = -5;
    expect_refusal(&S3_CREDS, &r, "time");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_get_object),
        cmocka_unit_test(test_s3_put_object),
        cmocka_unit_test(test_s3_get_lifecycle),
        cmocka_unit_test(test_s3_list_objects),
        cmocka_unit_test(test_suite),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_query_string),
        cmocka_unit_test(test_path_encoding_in_request),
        cmocka_unit_test(test_headers_helper),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_http.c - storage/http: what can be checked without a server.
 *
 * The retry classification, the backoff's bounds, the token bucket (with
 * its own clock), the part buffer pool (bounded, a taker waits for a give),
 * and cs_http_request against nothing: a driver's prepare failure, a port
 * nobody listens on (retried, then the driver's sentence with "after N
 * attempts"), a cancel request. The S3 driver's use of it over a real
 * server, with faults, is tests/integration/test_s3.py's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cancel.h"
#include "common/err.h"
#include "storage/http.h"

static void test_retryable(void **state)
{
    (void)state;
    /* No answer: anything may have happened on the way; try again. */
    assert_true(cs_http_retryable(CURLE_COULDNT_CONNECT, 0));
    assert_true(cs_http_retryable(CURLE_OPERATION_TIMEDOUT, 0));
    assert_true(cs_http_retryable(CURLE_RECV_ERROR, 0));
    assert_true(cs_http_retryable(CURLE_SEND_ERROR, 0));
    assert_true(cs_http_retryable(CURLE_GOT_NOTHING, 0));
    assert_true(cs_http_retryable(CURLE_PARTIAL_FILE, 200));
    /* Answers: the server is busy or broke for now. */
    static const long again[] = { 500, 502, 503, 504, 429 };
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++)
        assert_true(cs_http_retryable(CURLE_OK, again[i]));
    /* Answers that will not change. */
    static const long final[] = { 200, 204, 206, 301, 400, 401, 403, 404, 409, 412, 416, 501, 505 };
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        assert_false(cs_http_retryable(CURLE_OK, final[i]));
}

static void test_backoff(void **state)
{
    (void)state;
    /* The ceiling doubles from 0.2 s and stops at 10 s; u scales it. */
    static const double ceiling[] = { 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10, 10, 10 };
    for (unsigned n = 0; n < sizeof ceiling / sizeof ceiling[0]; n++) {
        assert_true(cs_http_backoff(n, 0) == 0);
        double top = cs_http_backoff(n, 1);
        assert_true(top > ceiling[n] - 1e-9 && top < ceiling[n] + 1e-9);
        double mid = cs_http_backoff(n, 0.5);
        assert_true(mid > ceiling[n] / 2 - 1e-9 && mid < ceiling[n] / 2 + 1e-9);
    }
    assert_true(cs_http_backoff(1000, 1) <= 10);
    assert_true(cs_http_backoff(UINT32_MAX, 1) <= 10);
}

static bool near(double a, double b)
{
    return a > b - 1e-9 && a < b + 1e-9;
}

static void test_bucket(void **state)
{
    (void)state;
    /* Unlimited: never a wait. */
    cs_http_bucket free_bucket = { 0, 0, 100 };
    assert_true(cs_http_bucket_take(&free_bucket, 1u << 30, 100) == 0);

    /* 1000 B/s, starting empty: 500 bytes at once are a half-second debt. */
    cs_http_bucket b = { 1000, 0, 100 };
    assert_true(near(cs_http_bucket_take(&b, 500, 100), 0.5));
    /* Half a second later the debt is paid: the next 250 wait 0.25 s. */
    assert_true(near(cs_http_bucket_take(&b, 250, 100.5), 0.25));
    assert_true(cs_http_bucket_take(&b, 0, 100.5) == 0);
    /* A long idle time gives at most a quarter second of burst (250 B). */
    assert_true(cs_http_bucket_take(&b, 250, 200) == 0);
    assert_true(near(cs_http_bucket_take(&b, 100, 200), 0.1));

    /* Over a long run the rate holds: 100 s worth in 1 KiB writes, each
     * made when the last wait ends, takes 100 s of the fake clock. */
    cs_http_bucket c = { 1024 * 1024, 0, 0 };
    double now = 0;
    for (int i = 0; i < 100 * 1024; i++)
        now += cs_http_bucket_take(&c, 1024, now);
    assert_true(now > 99.7 && now < 100.01);
}

typedef struct taker {
    cs_http *h;
    uint8_t *got;
    volatile int done;
} taker;

static void *take_one(void *arg)
{
    taker *t = arg;
    t->got = cs_http_part_take(t->h);
    t->done = 1;
    return NULL;
}

static void test_part_pool(void **state)
{
    (void)state;
    cs_http_opts o = { .timeout_s = 5, .part_size = 4096, .part_buffers = 2 };
    cs_http *h = cs_http_new(&o);
    assert_int_equal(cs_http_part_size(h), 4096);
    uint8_t *a = cs_http_part_take(h);
    uint8_t *b = cs_http_part_take(h);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    memset(a, 1, 4096); /* the whole size is usable */
    memset(b, 2, 4096);

    /* A third taker waits until one is given back, and gets that one. */
    taker t = { h, NULL, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, take_one, &t), 0);
    struct timespec pause = { 0, 100 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    assert_int_equal(t.done, 0);
    cs_http_part_give(h, b);
    pthread_join(th, NULL);
    assert_ptr_equal(t.got, b);

    cs_http_part_give(h, NULL); /* harmless */
    cs_http_part_give(h, a);
    cs_http_part_give(h, t.got);
    /* Given back buffers are reused, never more than two made. */
    uint8_t *c = cs_http_part_take(h);
    uint8_t *d = cs_http_part_take(h);
    assert_true((c == a && d == b) || (c == b && d == a));
    cs_http_part_give(h, c);
    cs_http_part_give(h, d);
    cs_http_free(h); /* frees the pooled buffers (LeakSanitizer checks) */
}

/* ---- requests against nothing ------------------------------------------------------- */

typedef struct fake_driver {
    cs_http_req r; /* first: the callbacks find the driver's request from it */
    const char *url;
    int prepares, errors;
    bool fail_prepare;
    const char *last_range;
} fake_driver;

static int fake_prepare(cs_http_req *r, const char *range, cs_http_attempt *a, cs_err *e)
{
    fake_driver *d = (fake_driver *)(void *)r;
    d->prepares++;
    d->last_range = range;
    if (d->fail_prepare)
        return cs_err_set(e, CS_E_INVAL, "cannot sign");
    cs_http_attempt_url(a, d->url);
    cs_http_attempt_header(a, "X-Test: 1");
    return 0;
}

static int fake_error(const cs_http_req *r, cs_err *e)
{
    fake_driver *d = (fake_driver *)(void *)r;
    d->errors++;
    if (r->transport_error)
        return cs_err_set(e, CS_E_UNAVAIL, "cannot reach the test server: %s", r->transport_error);
    return cs_err_set(e, CS_E_EXTERNAL, "HTTP %ld", r->status);
}

static void fake_init(fake_driver *d, const char *method)
{
    memset(d, 0, sizeof *d);
    d->r.method = method;
    d->r.service = "TEST";
    d->r.target = "k";
    d->r.prepare = fake_prepare;
    d->r.error = fake_error;
    d->url = "http://127.0.0.1:1/nothing-listens-here"; /* port 1: refused at once */
}

static void test_request_without_server(void **state)
{
    (void)state;
    cs_http_opts o = { .timeout_s = 5, .retries = 2 };
    cs_http *h = cs_http_new(&o);
    cs_err e;

    /* The driver cannot sign: no attempt, its error as it was. */
    fake_driver d;
    fake_init(&d, "GET");
    d.fail_prepare = true;
    assert_int_equal(cs_http_request(h, &d.r, &e), CS_E_INVAL);
    assert_string_equal(e.msg, "cannot sign");
    assert_int_equal(d.prepares, 1);
    assert_int_equal(d.r.attempts, 0);
    assert_int_equal(d.errors, 0);
    cs_http_req_free(&d.r);

    /* Refused: retried (prepared again each time), then the driver's sentence. */
    fake_init(&d, "PUT");
    static const uint8_t body[] = "payload";
    d.r.body = body;
    d.r.body_len = sizeof body - 1;
    assert_int_equal(cs_http_request(h, &d.r, &e), CS_E_UNAVAIL);
    assert_int_equal(d.r.attempts, 3);
    assert_int_equal(d.prepares, 3);
    assert_int_equal(d.errors, 1);
    assert_null(d.last_range); /* nothing to resume: no sink */
    assert_int_equal(d.r.status, 0);
    assert_non_null(d.r.transport_error);
    assert_true(strncmp(e.msg, "after 3 attempts: cannot reach the test server: ", 48) == 0);
    assert_null(strstr(e.msg, "127.0.0.1:1")); /* URLs never reach messages from here */
    cs_http_req_free(&d.r);

    /* A cancel request ends a cancellable request after its attempt. */
    fake_init(&d, "POST");
    d.r.cancellable = true;
    cs_cancel_request();
    assert_int_equal(cs_http_request(h, &d.r, &e), CS_E_CANCELED);
    cs_cancel_reset();
    assert_int_equal(d.r.attempts, 1);
    assert_int_equal(d.errors, 0);
    cs_http_req_free(&d.r);
    cs_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_part_pool),
        cmocka_unit_test(test_request_without_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_httpd.c - net/httpd's pure parts: the bearer check, the listen
 * address, loopback, the token file, and the answers cs_http_dispatch
 * gives before a handler runs (401, 413) and their JSON shape; and one
 * live daemon on loopback for what goes on the wire (text answers and
 * their headers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/httpd.h"

#define TOKEN "0123456789abcdef-token"

static void test_bearer(void **state)
{
    (void)state;
    assert_true(cs_http_bearer_ok("Bearer " TOKEN, TOKEN));
    assert_true(cs_http_bearer_ok("bearer " TOKEN, TOKEN)); /* the scheme is case-insensitive */
    assert_false(cs_http_bearer_ok(NULL, TOKEN));
    assert_false(cs_http_bearer_ok("", TOKEN));
    assert_false(cs_http_bearer_ok(TOKEN, TOKEN));                  /* no scheme */
    assert_false(cs_http_bearer_ok("Basic " TOKEN, TOKEN));
    assert_false(cs_http_bearer_ok("Bearer " TOKEN "x", TOKEN));    /* longer */
    assert_false(cs_http_bearer_ok("Bearer 0123456789abcdef-toke", TOKEN)); /* shorter */
    assert_false(cs_http_bearer_ok("Bearer 0123456789abcdef-tokeN", TOKEN)); /* one byte off */
    assert_false(cs_http_bearer_ok("Bearer  " TOKEN, TOKEN));       /* two spaces */
    assert_false(cs_http_bearer_ok("Bearer " TOKEN, NULL));
}

static void test_listen(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_http_parse_listen("127.0.0.1:7620", "0.0.0.0", host, sizeof host, &port, &e), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7620);
    assert_int_equal(cs_http_parse_listen("[::1]:8000", "0.0.0.0", host, sizeof host, &port, &e), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8000);
    assert_int_equal(cs_http_parse_listen(":9000", "0.0.0.0", host, sizeof host, &port, &e), 0);
    assert_string_equal(host, "0.0.0.0");
    const char *bad[] = { "127.0.0.1", "127.0.0.1:", "h:0", "h:65536", "h:12x", "::1:80", "", NULL };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_err_clear(&e);
        assert_int_equal(cs_http_parse_listen(bad[i], "0.0.0.0", host, sizeof host, &port, &e), CS_E_USAGE);
        assert_non_null(strstr(e.msg, "--listen"));
    }
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(cs_http_is_loopback("127.0.0.1"));
    assert_true(cs_http_is_loopback("127.1.2.3"));
    assert_true(cs_http_is_loopback("::1"));
    assert_true(cs_http_is_loopback("localhost"));
    assert_false(cs_http_is_loopback("0.0.0.0"));
    assert_false(cs_http_is_loopback("::"));
    assert_false(cs_http_is_loopback("10.0.0.1"));
    assert_false(cs_http_is_loopback("128.0.0.1"));
}

static char *write_file(const char *text, mode_t mode)
{
    char *path = strdup("/tmp/cs-test-token-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
    return path;
}

static void test_token_file(void **state)
{
    (void)state;
    cs_err e;
    char *tok = NULL;
    char *path = write_file("  " TOKEN "  \nsecond line\n", 0600);
    cs_err_clear(&e);
    assert_int_equal(cs_http_read_token(path, &tok, &e), 0);
    assert_string_equal(tok, TOKEN);
    cs_http_token_free(tok);
    chmod(path, 0640); /* readable by the group: refused, and the message says how to fix it */
    cs_err_clear(&e);
    assert_int_equal(cs_http_read_token(path, &tok, &e), CS_E_INVAL);
    assert_null(tok);
    assert_non_null(strstr(e.msg, "chmod 600"));
    assert_null(strstr(e.msg, TOKEN)); /* never the token in a message */
    unlink(path);
    free(path);
    path = write_file("short\n", 0600);
    cs_err_clear(&e);
    assert_int_equal(cs_http_read_token(path, &tok, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "at least 16"));
    unlink(path);
    free(path);
    cs_err_clear(&e);
    assert_int_equal(cs_http_read_token("/nonexistent/token", &tok, &e), CS_E_INVAL);
}

static int handled;

static void handler(void *arg, const cs_http_request *req, cs_http_answer *ans)
{
    (void)arg;
    (void)req;
    handled++;
    ans->status = 200;
    ans->body = json_pack("{s:b}", "ok", 1);
}

/* Exactly one member "error" (a non-empty string), and "field" when given. */
static void assert_error_shape(const json_t *body, const char *field)
{
    assert_true(json_is_object(body));
    const json_t *msg = json_object_get(body, "error");
    assert_true(json_is_string(msg));
    assert_true(strlen(json_string_value(msg)) > 0);
    assert_null(strchr(json_string_value(msg), '\n'));
    if (field) {
        assert_string_equal(json_string_value(json_object_get(body, "field")), field);
        assert_int_equal(json_object_size(body), 2);
    } else {
        assert_int_equal(json_object_size(body), 1);
    }
}

static void test_dispatch(void **state)
{
    (void)state;
    cs_httpd_opts o = { .token = TOKEN, .max_body = 16, .handler = handler };
    cs_http_request req = { .method = "GET", .path = "/v1/ops", .body = "" };
    cs_http_answer ans;
    handled = 0;
    cs_http_dispatch(&o, &req, &ans); /* no token */
    assert_int_equal(ans.status, 401);
    assert_error_shape(ans.body, NULL);
    assert_null(strstr(json_string_value(json_object_get(ans.body, "error")), TOKEN));
    json_decref(ans.body);
    req.authorization = "Bearer wrong-token-0123456789";
    cs_http_dispatch(&o, &req, &ans);
    assert_int_equal(ans.status, 401);
    json_decref(ans.body);
    req.body_too_big = true; /* a wrong token and a big body: 401 first, nothing said of the body */
    cs_http_dispatch(&o, &req, &ans);
    assert_int_equal(ans.status, 401);
    json_decref(ans.body);
    req.authorization = "Bearer " TOKEN;
    cs_http_dispatch(&o, &req, &ans);
    assert_int_equal(ans.status, 413);
    assert_error_shape(ans.body, NULL);
    json_decref(ans.body);
    assert_int_equal(handled, 0); /* nothing reached the handler */
    req.body_too_big = false;
    cs_http_dispatch(&o, &req, &ans);
    assert_int_equal(ans.status, 200);
    assert_int_equal(handled, 1);
    json_decref(ans.body);
    o.token = NULL; /* --insecure-loopback: no token asked */
    req.authorization = NULL;
    cs_http_dispatch(&o, &req, &ans);
    assert_int_equal(ans.status, 200);
    json_decref(ans.body);
}

static void test_error_render(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_err_set(&e, CS_E_USAGE, "{jobs} must be between 1 and 64");
    cs_err_field(&e, "jobs");
    cs_http_answer ans = { 0 };
    cs_http_error(&ans, 400, &e);
    assert_int_equal(ans.status, 400);
    assert_error_shape(ans.body, "jobs");
    assert_string_equal(json_string_value(json_object_get(ans.body, "error")), "jobs must be between 1 and 64");
    json_decref(ans.body);
}

static const char page[] = "<!doctype html><p>hi</p>";

/* /page: a static text with a policy; /owned: a text from malloc; else JSON. */
static void text_handler(void *arg, const cs_http_request *req, cs_http_answer *ans)
{
    (void)arg;
    if (!strcmp(req->path, "/page")) {
        cs_http_answer_text(ans, 200, "text/html; charset=utf-8", page, sizeof page - 1, false);
        ans->csp = "default-src 'self'";
    } else if (!strcmp(req->path, "/owned")) {
        char *t = strdup("a 1\n");
        cs_http_answer_text(ans, 200, NULL, t, strlen(t), true);
    } else {
        ans->status = 200;
        ans->body = json_pack("{s:b}", "ok", 1);
    }
}

/* GET path from the daemon on port with HTTP/1.0; the whole answer (owned). */
static char *fetch(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t got;
    while ((got = read(fd, out + len, cap - len - 1)) > 0)
        len += (size_t)got;
    out[len] = '\0';
    close(fd);
    return out;
}

static void test_text_answers(void **state)
{
    (void)state;
    cs_http_answer ans = { 0 };
    char *t = strdup("x");
    cs_http_answer_text(&ans, 200, NULL, t, 1, true);
    cs_http_error_msg(&ans, 400, "replaced"); /* the owned text is freed (ASan would say) */
    assert_null(ans.text);
    assert_false(ans.text_owned);
    cs_http_answer_clear(&ans);
    assert_null(ans.body);

    cs_httpd_opts o = { .host = "127.0.0.1", .port = 0, .handler = text_handler };
    cs_httpd *d = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_httpd_start(&o, &d, &e), 0);
    int port = cs_httpd_port(d);
    char *r = fetch(port, "/page");
    assert_non_null(strstr(r, " 200 "));
    assert_non_null(strstr(r, "Content-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(r, "Content-Security-Policy: default-src 'self'\r\n"));
    assert_non_null(strstr(r, "X-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n<!doctype html><p>hi</p>"));
    free(r);
    r = fetch(port, "/owned");
    assert_non_null(strstr(r, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_null(strstr(r, "Content-Security-Policy"));
    assert_non_null(strstr(r, "\r\n\r\na 1\n"));
    free(r);
    r = fetch(port, "/json");
    assert_non_null(strstr(r, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(r, "X-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(r, "{\"ok\":true}\n"));
    free(r);
    cs_httpd_stop(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),     cmocka_unit_test(test_listen),   cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_token_file), cmocka_unit_test(test_dispatch), cmocka_unit_test(test_error_render),
        cmocka_unit_test(test_text_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

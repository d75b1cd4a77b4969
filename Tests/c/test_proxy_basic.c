/*
 * The proxy forwards requests and answers by its routes: GET and HEAD through a cluster, direct
 * responses, longest-prefix and host matching, 404 without a route, round robin between endpoints,
 * hop-by-hop headers removed, x-forwarded-for / x-forwarded-proto set, Host kept, several listeners,
 * and no log line per request at the default log level.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void test_get_through_cluster(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_response_t r;
    es_get(f->px.port, "/some/path?q=1", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /some/path\n");
    assert_string_equal(es_response_header(&r, "content-length"), "27");
    assert_non_null(es_response_header(&r, "x-upstream-conn"));
    assert_string_equal(es_response_header(&r, "x-upstream-req"), "1");
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up), 1);

    es_proxy_stop(&f->px);
}

static void test_head_through_cluster(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "HEAD /bytes?n=1000 HTTP/1.1\r\nHost: test\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, &(es_read_opts_t){ .head = 1 });
    assert_int_equal(r.status, 200);
    assert_string_equal(es_response_header(&r, "content-length"), "1000");
    assert_int_equal(r.body_total, 0);
    es_response_dispose(&r);

    /* No body bytes followed the HEAD response: the next response on the connection parses cleanly. */
    es_client_sendf(&c, "GET /after-head HTTP/1.1\r\nHost: test\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /after-head\n");
    es_response_dispose(&r);
    es_client_close(&c);

    es_proxy_stop(&f->px);
}

static void test_direct_response(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /down }\n"
                   "        direct_response: { status: 503, body: \"maintenance\\n\" }\n"
                   "      - match: { prefix: / }\n"
                   "        direct_response: { status: 200, body: \"hello\\n\" }\n");

    es_response_t r;
    es_get(f->px.port, "/", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello\n");
    assert_string_equal(es_response_header(&r, "content-length"), "6");
    es_response_dispose(&r);

    es_get(f->px.port, "/down/now", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "maintenance\n");
    es_response_dispose(&r);

    /* HEAD of a direct response: the headers, no body. */
    es_roundtrip(f->px.port, "HEAD / HTTP/1.1\r\nHost: test\r\n\r\n", &r, &(es_read_opts_t){ .head = 1 });
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_total, 0);
    es_response_dispose(&r);

    assert_int_equal(es_upstream_connections(&f->up), 0);
    es_proxy_stop(&f->px);
}

static void test_longest_prefix_wins(void **state) {
    es_fixture_t *f = *state;
    /* The shortest prefix comes first: a first-match router would answer "root" for everything. */
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        direct_response: { status: 200, body: \"root\\n\" }\n"
                   "      - match: { prefix: /api }\n"
                   "        cluster: backend\n"
                   "      - match: { prefix: /api/v2 }\n"
                   "        direct_response: { status: 200, body: \"v2\\n\" }\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);

    es_response_t r;
    es_get(f->px.port, "/api/users", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /api/users\n");
    es_response_dispose(&r);

    es_get(f->px.port, "/api/v2/users", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "v2\n");
    es_response_dispose(&r);

    es_get(f->px.port, "/other", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "root\n");
    es_response_dispose(&r);

    assert_int_equal(es_upstream_requests(&f->up), 1);
    es_proxy_stop(&f->px);
}

static void get_with_host(uint16_t port, const char *host, const char *path, es_response_t *r) {
    char raw[512];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
    es_roundtrip(port, raw, r, NULL);
}

static void test_host_matching(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /, host: example.com }\n"
                   "        direct_response: { status: 200, body: \"example\\n\" }\n"
                   "      - match: { prefix: /, host: backend.test }\n"
                   "        cluster: backend\n"
                   "      - match: { prefix: / }\n"
                   "        direct_response: { status: 200, body: \"any\\n\" }\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);

    es_response_t r;
    get_with_host(f->px.port, "example.com", "/x", &r);
    assert_string_equal(r.body, "example\n");
    es_response_dispose(&r);

    /* The port in Host is ignored, and the match is case-insensitive. */
    get_with_host(f->px.port, "EXAMPLE.com:8080", "/x", &r);
    assert_string_equal(r.body, "example\n");
    es_response_dispose(&r);

    get_with_host(f->px.port, "backend.test:1234", "/y", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /y\n");
    es_response_dispose(&r);

    get_with_host(f->px.port, "elsewhere.org", "/z", &r);
    assert_string_equal(r.body, "any\n");
    es_response_dispose(&r);

    /* A host that merely starts like a configured one does not match it. */
    get_with_host(f->px.port, "example.com.evil", "/z", &r);
    assert_string_equal(r.body, "any\n");
    es_response_dispose(&r);

    assert_int_equal(es_upstream_requests(&f->up), 1);
    es_proxy_stop(&f->px);
}

static void test_no_route_is_404(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /api }\n"
                   "        cluster: backend\n"
                   "      - match: { prefix: /, host: only.example }\n"
                   "        direct_response: { status: 200, body: \"only\\n\" }\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);

    es_response_t r;
    es_get(f->px.port, "/elsewhere", &r);
    assert_int_equal(r.status, 404);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_connections(&f->up), 0);

    es_proxy_stop(&f->px);
}

static void test_upstream_status_passes_through(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    static const int codes[] = { 201, 404, 500, 503 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char path[64], body[64];
        snprintf(path, sizeof path, "/status?code=%d", codes[i]);
        snprintf(body, sizeof body, "status %d\n", codes[i]);
        es_response_t r;
        es_get(f->px.port, path, &r);
        assert_int_equal(r.status, codes[i]);
        assert_string_equal(r.body, body);
        es_response_dispose(&r);
    }
    es_proxy_stop(&f->px);
}

static void test_hop_by_hop_headers_removed(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_response_t r;
    es_roundtrip(f->px.port,
                 "GET /headers?a=1&b=2 HTTP/1.1\r\n"
                 "Host: example.com:1234\r\n"
                 "Connection: keep-alive, X-Secret\r\n"
                 "X-Secret: do not forward\r\n"
                 "Keep-Alive: timeout=5\r\n"
                 "Proxy-Connection: keep-alive\r\n"
                 "TE: trailers\r\n"
                 "Upgrade: foo/1\r\n"
                 "X-End-To-End: yes\r\n"
                 "\r\n",
                 &r, NULL);
    assert_int_equal(r.status, 200);
    const char *head = r.body;

    char *line = es_head_request_line(head);
    assert_string_equal(line, "GET /headers?a=1&b=2 HTTP/1.1");
    free(line);

    char *host = es_head_value(head, "host");
    assert_non_null(host);
    assert_string_equal(host, "example.com:1234");
    free(host);
    assert_int_equal(es_head_count(head, "host"), 1);

    assert_int_equal(es_head_count(head, "x-secret"), 0);
    assert_int_equal(es_head_count(head, "keep-alive"), 0);
    assert_int_equal(es_head_count(head, "proxy-connection"), 0);
    assert_int_equal(es_head_count(head, "te"), 0);
    assert_int_equal(es_head_count(head, "upgrade"), 0);
    assert_int_equal(es_head_count(head, "transfer-encoding"), 0);
    /* The proxy may say keep-alive to its upstream, but the client's Connection header is not forwarded. */
    char *conn = es_head_value(head, "connection");
    if (conn) {
        assert_null(strcasestr(conn, "x-secret"));
        assert_null(strcasestr(conn, "close"));
        free(conn);
    }

    char *e2e = es_head_value(head, "x-end-to-end");
    assert_non_null(e2e);
    assert_string_equal(e2e, "yes");
    free(e2e);

    assert_int_equal(es_head_count(head, "x-forwarded-for"), 1);
    char *xff = es_head_value(head, "x-forwarded-for");
    assert_string_equal(xff, "127.0.0.1");
    free(xff);
    assert_int_equal(es_head_count(head, "x-forwarded-proto"), 1);
    char *xfp = es_head_value(head, "x-forwarded-proto");
    assert_string_equal(xfp, "http");
    free(xfp);
    es_response_dispose(&r);

    es_proxy_stop(&f->px);
}

static void test_x_forwarded_for_appended(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_response_t r;
    es_roundtrip(f->px.port,
                 "GET /headers HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 1.2.3.4\r\n"
                 "X-Forwarded-Proto: https\r\n\r\n",
                 &r, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(es_head_count(r.body, "x-forwarded-for"), 1);
    char *xff = es_head_value(r.body, "x-forwarded-for");
    assert_string_equal(xff, "1.2.3.4, 127.0.0.1");
    free(xff);
    /* The proxy says how the client reached it (plain HTTP), whatever the client claimed. */
    assert_int_equal(es_head_count(r.body, "x-forwarded-proto"), 1);
    char *xfp = es_head_value(r.body, "x-forwarded-proto");
    assert_string_equal(xfp, "http");
    free(xfp);
    es_response_dispose(&r);

    es_proxy_stop(&f->px);
}

static void test_round_robin_endpoints(void **state) {
    es_fixture_t *f = *state;
    assert_int_equal(es_upstream_start(&f->up2), 0);
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints:\n"
                   "      - { address: 127.0.0.1, port: %u }\n"
                   "      - { address: 127.0.0.1, port: %u }\n",
                   f->up.port, f->up2.port);

    /* Four requests in flight at once need four upstream connections: two to each endpoint. */
    enum { N = 4 };
    es_client_t c[N];
    for (int i = 0; i < N; i++) {
        es_client_connect(&c[i], f->px.port);
        es_client_sendf(&c[i], "GET /delay?ms=300 HTTP/1.1\r\nHost: test\r\n\r\n");
    }
    for (int i = 0; i < N; i++) {
        es_response_t r;
        es_client_read(&c[i], &r, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "upstream ok GET /delay\n");
        es_response_dispose(&r);
        es_client_close(&c[i]);
    }
    assert_int_equal(es_upstream_connections(&f->up), 2);
    assert_int_equal(es_upstream_connections(&f->up2), 2);
    assert_int_equal(es_upstream_requests(&f->up) + es_upstream_requests(&f->up2), N);

    es_proxy_stop(&f->px);
}

static void test_two_listeners(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 2,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: first\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        direct_response: { status: 200, body: \"first\\n\" }\n"
                   "  - name: second\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);
    uint16_t p1 = es_proxy_port(&f->px, "first"), p2 = es_proxy_port(&f->px, "second");
    assert_int_not_equal(p1, p2);

    es_response_t r;
    es_get(p1, "/a", &r);
    assert_string_equal(r.body, "first\n");
    es_response_dispose(&r);
    es_get(p2, "/b", &r);
    assert_string_equal(r.body, "upstream ok GET /b\n");
    es_response_dispose(&r);

    es_proxy_stop(&f->px);
}

static size_t log_lines(const es_proxy_t *p) {
    return es_proxy_log_count(p, "\n");
}

static void test_default_log_level_is_quiet_per_request(void **state) {
    es_fixture_t *f = *state;
    f->px.log_level = "";                 /* no --log-level: the default level */
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /direct }\n"
                   "        direct_response: { status: 200, body: \"direct\\n\" }\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);
    es_response_t r;
    es_get(f->px.port, "/warm-up", &r);   /* the first upstream connection may say something */
    es_response_dispose(&r);
    size_t before = log_lines(&f->px);

    for (int i = 0; i < 10; i++) {
        es_get(f->px.port, "/quiet", &r);
        assert_int_equal(r.status, 200);
        es_response_dispose(&r);
        es_get(f->px.port, "/direct", &r);
        assert_int_equal(r.status, 200);
        es_response_dispose(&r);
    }
    size_t after = log_lines(&f->px);
    if (after != before) {
        es_proxy_print_log(&f->px);
        fail_msg("20 ordinary requests added %zu log lines at the default level (want none)", after - before);
    }
    es_proxy_stop(&f->px);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_through_cluster, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_head_through_cluster, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_direct_response, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_longest_prefix_wins, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_host_matching, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_no_route_is_404, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_status_passes_through, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_hop_by_hop_headers_removed, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_x_forwarded_for_appended, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_endpoints, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_two_listeners, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_default_log_level_is_quiet_per_request, es_fixture_setup,
                                        es_fixture_teardown),
    };
    return cmocka_run_group_tests_name("proxy_basic", tests, NULL, NULL);
}

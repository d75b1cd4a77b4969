/*
 * Traffic through the proxy: request bodies both framings, large bodies both ways, keep-alive,
 * pipelining, HTTP/1.0, Expect, upstream failures and two workers (config errors: test_proxy_config_errors).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1024ull * 1024)

static void test_post_content_length_and_chunked(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    es_response_t r;
    es_roundtrip(f->px.port, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world", &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "len=11 "));
    es_response_dispose(&r);
    es_roundtrip(f->px.port,
                 "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: yes\r\n\r\n",
                 &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "len=11 "));
    assert_non_null(strstr(r.body, "trailer x-trailer: yes")); /* trailers reach the upstream */
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_64mib_each_way(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    es_upload_pattern(f->px.port, 64 * MiB, 0, 256 * 1024);
    es_upload_pattern(f->px.port, 64 * MiB, 1, 256 * 1024);
    for (int chunked = 0; chunked < 2; chunked++) {
        es_response_t r;
        char path[64];
        snprintf(path, sizeof path, "/bytes?n=%llu&chunked=%d", 64 * MiB, chunked);
        es_read_opts_t o = {.keep = 1};
        char raw[128];
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
        es_roundtrip(f->px.port, raw, &r, &o);
        assert_int_equal(r.status, 200);
        assert_true(r.body_total == 64 * MiB);
        assert_true(r.body_fnv == es_pattern_fnv(64 * MiB));
        assert_int_equal(r.chunked, chunked);
        es_response_dispose(&r);
    }
    es_proxy_stop(&f->px);
}

static void test_1gib_upload_in_bounded_memory(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    es_upload_pattern(f->px.port, 1 * MiB, 0, 256 * 1024); /* warm up: pools, buffers */
    long before = es_proc_status_kb(f->px.pid, "VmRSS");
    es_upload_pattern(f->px.port, 1024 * MiB, 0, 256 * 1024);
    long peak = es_proc_status_kb(f->px.pid, "VmHWM");
    assert_true(before > 0 && peak > 0);
    /* The proxy holds at most a few write-queue watermarks of body, never the body. */
    if (peak - before > 64 * 1024)
        fail_msg("resident memory grew by %ld KiB during a 1 GiB upload", peak - before);
    es_proxy_stop(&f->px);
}

static void test_keepalive_reuses_one_upstream_connection(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    es_client_t c;
    es_client_connect(&c, f->px.port);
    for (int i = 0; i < 20; i++) {
        es_client_sendf(&c, "GET /n%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
        es_response_dispose(&r);
    }
    es_client_close(&c);
    /* Another client, later: the pooled connection serves it too. */
    for (int i = 0; i < 5; i++) {
        es_response_t r;
        es_get(f->px.port, "/again", &r);
        assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
        es_response_dispose(&r);
    }
    assert_int_equal(es_upstream_connections(&f->up), 1);
    assert_int_equal(es_upstream_requests(&f->up), 25);
    es_proxy_stop(&f->px);
}

static void test_pipelined_requests_answered_in_order(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    routes:\n"
                   "      - match: { prefix: /direct }\n        direct_response: { status: 201, body: \"direct\\n\" }\n"
                   "      - match: { prefix: / }\n        cluster: backend\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /delay?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /direct HTTP/1.1\r\nHost: t\r\n\r\n"
                        "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                        "HEAD /bytes?n=10 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /last HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /delay\n"); /* the slow one still comes first */
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 201);
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_non_null(strstr(r.body, "len=3 "));
    es_response_dispose(&r);
    es_read_opts_t head = {.head = 1};
    es_client_read(&c, &r, &head);
    assert_string_equal(es_response_header(&r, "content-length"), "10");
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /last\n");
    es_response_dispose(&r);
    es_client_close(&c);
    es_proxy_stop(&f->px);
}

static void test_http10_expect_and_no_body_statuses(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    es_response_t r;
    /* HTTP/1.0: never chunked; a body without a length ends with the close. */
    es_roundtrip(f->px.port, "GET /bytes?n=1000&chunked=1 HTTP/1.0\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.chunked, 0);
    assert_true(r.body_total == 1000 && r.body_fnv == es_pattern_fnv(1000));
    es_response_dispose(&r);
    /* Expect: 100-continue is answered by the proxy before the body is sent. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 100);
    es_response_dispose(&r);
    es_client_send(&c, "data", 4);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "len=4 "));
    es_response_dispose(&r);
    /* 204 and 304 carry no body, and the connection goes on. */
    es_client_sendf(&c, "GET /status?code=204 HTTP/1.1\r\nHost: t\r\n\r\nGET /status?code=304 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_total, 0);
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_total, 0);
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /after\n");
    es_response_dispose(&r);
    es_client_close(&c);
    es_proxy_stop(&f->px);
}

static void test_upstream_down_is_503(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, es_closed_port());
    es_response_t r;
    es_get(f->px.port, "/x", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "upstream connect error"));
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_connect_timeout_is_503(void **state)
{
    es_fixture_t *f = *state;
    assert_int_equal(es_blackhole_start(&f->hole), 0);
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    routes:\n"
                   "      - match: { prefix: / }\n        cluster: slow\n"
                   "clusters:\n  - name: slow\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "    connect_timeout: 300ms\n",
                   f->hole.port);
    uint64_t t0 = es_now_ms();
    es_response_t r;
    es_get(f->px.port, "/x", &r);
    uint64_t took = es_now_ms() - t0;
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "upstream connect timeout"));
    if (took < 290 || took > 1000)
        fail_msg("the connect timeout fired after %llu ms (want ~300)", (unsigned long long)took);
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_two_workers(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 2, f->up.port);
    pid_t pids[4];
    assert_int_equal(es_proxy_workers(&f->px, pids, 4), 2); /* the supervisor forked 2 worker processes */
    enum { N = 40 };
    es_client_t c[N];
    for (int i = 0; i < N; i++)
        es_client_connect(&c[i], f->px.port);
    for (int i = 0; i < N; i++)
        es_client_sendf(&c[i], "GET /w%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    for (int i = 0; i < N; i++) {
        es_response_t r;
        es_client_read(&c[i], &r, NULL);
        assert_int_equal(r.status, 200);
        es_response_dispose(&r);
        es_client_close(&c[i]);
    }
    /* SO_REUSEPORT spreads connections over both workers. */
    assert_true(es_proxy_log_count(&f->px, "[w0.g1] accepted connection") > 0);
    assert_true(es_proxy_log_count(&f->px, "[w1.g1] accepted connection") > 0);
    es_proxy_stop(&f->px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_content_length_and_chunked, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_64mib_each_way, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_1gib_upload_in_bounded_memory, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuses_one_upstream_connection, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests_answered_in_order, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_http10_expect_and_no_body_statuses, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_down_is_503, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout_is_503, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_two_workers, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Async Swift filters end to end: hooks that suspend (Task.sleep, a call-out) and resume on the
 * worker through the posted callback. The output gate, watermark buffering while suspended,
 * cancellation when the client leaves, filter timeouts and throws, with the real
 * build/libswiftfilter.so and the reference filters async_sleep and callout_auth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1024u * 1024u)

/* One listener "main" (the given filters, everything to the backend) and a listener "admin"
 * without filters that serves the stats. */
/* Top-level keys for the next start() (then reset), e.g. "drain_timeout: 1s\n". */
static const char *top_extra = "";

static void start(es_fixture_t *f, unsigned workers, const char *listener_extra, const char *filters_yaml,
                  const char *clusters_extra)
{
    const char *top = top_extra;
    top_extra = "";
    es_proxy_start(&f->px, 2,
                   "%s"
                   "workers: %u\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n%s"
                   "    http_filters:\n%s"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "  - name: admin\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n%s",
                   top, workers, listener_extra ? listener_extra : "", filters_yaml, f->up.port,
                   clusters_extra ? clusters_extra : "");
}

/* The value of counter `name` in the admin listener's stats. */
static unsigned long stat_value(es_fixture_t *f, const char *name)
{
    es_response_t r;
    es_get(es_proxy_port(&f->px, "admin"), "/stats", &r);
    assert_int_equal(r.status, 200);
    char key[96];
    snprintf(key, sizeof key, "%s ", name);
    const char *at = strstr(r.body, key);
    if (at == NULL)
        fail_msg("no counter %s in:\n%s", name, r.body);
    unsigned long v = strtoul(at + strlen(key), NULL, 10);
    es_response_dispose(&r);
    return v;
}

typedef struct {
    es_fixture_t *f;
    const char *want;
} counters_wait_t;

static int counters_are(void *arg)
{
    counters_wait_t *w = arg;
    es_response_t r;
    es_get(w->f->px.port, "/_counters", &r);
    int ok = r.status == 200 && strcmp(r.body, w->want) == 0;
    es_response_dispose(&r);
    return ok;
}

static void expect_counters(es_fixture_t *f, const char *want, int timeout_ms)
{
    counters_wait_t w = {f, want};
    if (!es_poll_until(counters_are, &w, timeout_ms)) {
        es_response_t r;
        es_get(f->px.port, "/_counters", &r);
        fail_msg("counters: got \"%s\", want \"%s\"", r.body, want);
    }
}

/* ---- the output gate -------------------------------------------------------------------- */

/* While request headers are held by a sleeping filter, the upstream sees no connection. */
static void test_sleep_in_request_headers_holds_the_upstream_connect(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 400 }", NULL);
    start(f, 2, NULL, flt, NULL);
    free(flt);

    enum { N = 6 };
    es_client_t c[N];
    uint64_t t0 = es_now_ms();
    for (int i = 0; i < N; i++) {
        es_client_connect(&c[i], f->px.port);
        es_client_sendf(&c[i], "GET /headers HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    usleep(250 * 1000);
    assert_int_equal(atomic_load(&f->up.connections), 0); /* nothing left the proxy yet */
    assert_int_equal(atomic_load(&f->up.requests), 0);
    for (int i = 0; i < N; i++) {
        es_response_t r;
        es_client_read(&c[i], &r, NULL);
        uint64_t took = es_now_ms() - t0;
        assert_int_equal(r.status, 200);
        assert_true(took >= 395);
        /* Set after the await, on the worker thread: a mutation made by the task reached the wire. */
        char *v = es_head_value(r.body, "x-async-slept");
        assert_non_null(v);
        assert_string_equal(v, "400");
        free(v);
        es_response_dispose(&r);
        es_client_close(&c[i]);
    }
    assert_true(atomic_load(&f->up.connections) >= 1);
    assert_int_equal(atomic_load(&f->up.requests), N);
    assert_int_equal(stat_value(f, "filter.running"), N);
    assert_int_equal(stat_value(f, "filter.resumed"), N);
    es_proxy_stop(&f->px);
}

/* 100 Continue is a byte to the client: it waits until the filter lets the headers go. */
static void test_expect_continue_waits_for_the_filter(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 300 }", NULL);
    start(f, 1, NULL, flt, NULL);
    free(flt);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    uint64_t t0 = es_now_ms();
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 100);
    assert_true(es_now_ms() - t0 >= 295);
    es_response_dispose(&r);
    es_client_send(&c, "hello", 5);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "len=5 "));
    es_response_dispose(&r);
    es_client_close(&c);
    es_proxy_stop(&f->px);
}

/* ---- buffering while suspended ------------------------------------------------------------ */

/* A 256 MiB upload through a filter that sleeps 2 s: the proxy stops reading at the high
 * watermark, so its memory stays flat, and every byte arrives intact. */
static void test_upload_while_suspended_stays_bounded(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 2000 }", NULL);
    /* ASan keeps freed memory in quarantine (256 MB by default), so every Swift task freed along
     * the way would count as resident; a small quarantine lets VmHWM show what the proxy holds. */
    static const char *const env[] = {"ASAN_OPTIONS=quarantine_size_mb=1", NULL};
    f->px.extra_env = env;
    start(f, 1, "    buffer_limits: { high: 256KiB, low: 64KiB }\n", flt, NULL);
    free(flt);

    /* Warm up: the first request maps the read blocks, the pools and the Swift runtime's pages. */
    es_response_t r;
    es_client_t w;
    es_client_connect(&w, f->px.port);
    es_client_sendf(&w, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n", 4 * MiB);
    es_client_send_pattern(&w, 0, 4 * MiB, 0, 64 * 1024);
    es_client_read(&w, &r, NULL);
    es_response_dispose(&r);
    es_client_close(&w);
    long before = es_proc_status_kb(f->px.pid, "VmHWM");

    const uint64_t n = 256ull * MiB;
    es_client_t c;
    es_client_connect(&c, f->px.port);
    uint64_t t0 = es_now_ms();
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %llu\r\n\r\n", (unsigned long long)n);
    es_client_send_pattern(&c, 0, n, 0, 256 * 1024);
    es_client_read(&c, &r, NULL);
    assert_true(es_now_ms() - t0 >= 1995);
    assert_int_equal(r.status, 200);
    char want[96];
    snprintf(want, sizeof want, "len=%llu fnv=%016llx\n", (unsigned long long)n, (unsigned long long)es_pattern_fnv(n));
    assert_string_equal(r.body, want);
    es_response_dispose(&r);
    es_client_close(&c);

    long after = es_proc_status_kb(f->px.pid, "VmHWM");
    fprintf(stderr, "VmHWM %ld kB -> %ld kB (+%ld kB) for 256 MiB with high=256 KiB\n", before, after, after - before);
    /* A small multiple of the high watermark: the inbox, the body in flight and the write queue. */
    assert_true(after - before <= 16 * 256);
    es_proxy_stop(&f->px);
}

/* Response-side async filters on streamed responses: the headers, and every body chunk. */
static void test_response_side_async_on_a_streamed_response(void **state)
{
    es_fixture_t *f = *state;
    char *a = es_swift_filter_yaml("resp_headers", "async_sleep", "{ ms: 150, on: response_headers }", NULL);
    char *b = es_swift_filter_yaml("resp_body", "async_sleep", "{ ms: 1, on: response_body }", NULL);
    char *both = NULL;
    if (asprintf(&both, "%s%s", a, b) < 0)
        fail_msg("asprintf");
    start(f, 2, "    buffer_limits: { high: 64KiB }\n", both, NULL);
    free(a);
    free(b);
    free(both);

    const char *paths[] = {"/bytes?n=3145728&chunked=1&trailer=1", "/bytes?n=3145728", "/bytes?n=1048576&eof=1"};
    const uint64_t sizes[] = {3145728, 3145728, 1048576};
    for (int i = 0; i < 3; i++) {
        es_response_t r;
        uint64_t t0 = es_now_ms();
        es_get(f->px.port, paths[i], &r);
        assert_int_equal(r.status, 200);
        assert_true(es_now_ms() - t0 >= 145);
        assert_non_null(es_response_header(&r, "x-async-slept"));
        assert_string_equal(es_response_header(&r, "x-async-slept"), "150");
        assert_int_equal(r.body_total, sizes[i]);
        assert_int_equal(r.body_fnv, es_pattern_fnv(sizes[i]));
        if (i == 0) {
            char want[32];
            snprintf(want, sizeof want, "%016llx", (unsigned long long)es_pattern_fnv(sizes[i]));
            assert_non_null(es_response_trailer(&r, "x-checksum"));
            assert_string_equal(es_response_trailer(&r, "x-checksum"), want);
        }
        es_response_dispose(&r);
    }
    es_proxy_stop(&f->px);
}

/* A request body hook that suspends on every chunk: the bytes go upstream intact and in order. */
static void test_request_body_async_per_chunk(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("req_body", "async_sleep", "{ ms: 1, on: request_body }", NULL);
    start(f, 1, NULL, flt, NULL);
    free(flt);
    es_upload_pattern(f->px.port, 8ull * MiB, 0, 100 * 1000);
    es_upload_pattern(f->px.port, 8ull * MiB, 1, 100 * 1000);
    es_proxy_stop(&f->px);
}

/* ---- call-outs ---------------------------------------------------------------------------- */

static void test_callout_auth_allows_and_denies(void **state)
{
    es_fixture_t *f = *state;
    f->up2 = (es_upstream_t){0};
    assert_int_equal(es_upstream_start(&f->up2), 0);
    char *flt = es_swift_filter_yaml("auth", "callout_auth", "{ cluster: auth, path: /auth }", NULL);
    char clusters[256];
    snprintf(clusters, sizeof clusters, "  - name: auth\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n", f->up2.port);
    start(f, 2, NULL, flt, clusters);
    free(flt);

    for (int round = 0; round < 3; round++) {
        es_response_t r;
        es_roundtrip(f->px.port, "GET /headers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\n\r\n", &r, NULL);
        assert_int_equal(r.status, 200);
        char *user = es_head_value(r.body, "x-auth-user");
        assert_non_null(user);
        assert_string_equal(user, "alice"); /* copied from the auth service's answer */
        free(user);
        es_response_dispose(&r);
    }
    unsigned long backend_before = atomic_load(&f->up.requests);
    es_response_t r;
    es_roundtrip(f->px.port, "GET /headers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer bad\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "denied by auth service\n");
    es_response_dispose(&r);
    es_get(f->px.port, "/headers", &r); /* no token at all */
    assert_int_equal(r.status, 401);
    es_response_dispose(&r);
    assert_int_equal(atomic_load(&f->up.requests), backend_before); /* denied requests never left */
    assert_int_equal(atomic_load(&f->up2.requests), 5);
    assert_int_equal(stat_value(f, "callout.started"), 5);
    assert_int_equal(stat_value(f, "callout.failures"), 0);
    es_proxy_stop(&f->px);
}

static void test_callout_to_a_dead_service_is_503(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("auth", "callout_auth", "{ cluster: auth, path: /auth }", NULL);
    char clusters[256];
    snprintf(clusters, sizeof clusters, "  - name: auth\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
             es_closed_port());
    start(f, 1, NULL, flt, clusters);
    free(flt);
    es_response_t r;
    es_roundtrip(f->px.port, "GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 503);
    assert_true(strncmp(r.body, "auth service unavailable: ", 26) == 0);
    es_response_dispose(&r);
    assert_int_equal(stat_value(f, "callout.failures"), 1);
    assert_int_equal(atomic_load(&f->up.requests), 0);
    es_proxy_stop(&f->px);
}

/* ---- cancellation, timeouts, throws --------------------------------------------------------- */

/* A client that leaves while its filter sleeps: the task is cancelled, the filter completes
 * exactly once, and nothing leaks (the proxy exits clean under ASan). 1,000 times, two workers. */
static void test_client_disconnect_while_suspended_1000_times(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 60000, counters_path: /_counters }", NULL);
    /* One worker: the filter's counters live in its process, and /_counters must see every stream. */
    start(f, 1, NULL, flt, NULL);
    free(flt);

    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        es_client_t c;
        es_client_connect(&c, f->px.port);
        es_client_sendf(&c, "GET /slow/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_client_close(&c);
        if (i % 100 == 99)
            usleep(20 * 1000); /* let the workers keep up under ASan */
    }
    expect_counters(f, "started=1000 cancelled=1000 completed=1000\n", 30000);
    assert_int_equal(stat_value(f, "filter.cancelled"), N);
    assert_int_equal(stat_value(f, "filter.resumed"), 0);
    assert_int_equal(atomic_load(&f->up.connections), 0);
    es_proxy_stop(&f->px);
}

static void test_filter_timeout_is_504_and_the_proxy_keeps_serving(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 5000, counters_path: /_counters }", "        timeout: 300ms\n");
    start(f, 1, NULL, flt, NULL);
    free(flt);

    es_response_t r;
    uint64_t t0 = es_now_ms();
    es_get(f->px.port, "/", &r);
    uint64_t took = es_now_ms() - t0;
    assert_int_equal(r.status, 504);
    assert_string_equal(r.body, "filter timeout\n");
    assert_true(took >= 295 && took < 2000);
    es_response_dispose(&r);
    /* The late result is dropped; the task saw its cancellation. */
    expect_counters(f, "started=1 cancelled=1 completed=1\n", 5000);
    assert_int_equal(stat_value(f, "filter.timeouts"), 1);
    assert_int_equal(atomic_load(&f->up.connections), 0);
    assert_true(es_proxy_log_count(&f->px, "filter sleep: request headers did not finish within 300 ms; answering 504") == 1);
    es_proxy_stop(&f->px);

    /* timeout_status replaces 504. */
    flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 5000 }", "        timeout: 100ms\n        timeout_status: 503\n");
    start(f, 1, NULL, flt, NULL);
    free(flt);
    es_get(f->px.port, "/", &r);
    assert_int_equal(r.status, 503);
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_filter_throw_after_await_is_500_and_the_proxy_keeps_serving(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 50, fail: true, counters_path: /_counters }", NULL);
    start(f, 1, NULL, flt, NULL);
    free(flt);
    for (int i = 0; i < 3; i++) {
        es_response_t r;
        es_get(f->px.port, "/", &r);
        assert_int_equal(r.status, 500);
        assert_string_equal(r.body, "filter error\n");
        es_response_dispose(&r);
        es_get(f->px.port, "/_counters", &r); /* the next request on a new connection */
        assert_int_equal(r.status, 200);
        es_response_dispose(&r);
    }
    assert_int_equal(stat_value(f, "filter.errors"), 3);
    assert_int_equal(atomic_load(&f->up.connections), 0);
    es_proxy_stop(&f->px);
}

/* Stopping the proxy while a filter sleeps: the task is cancelled, the client's connection
 * closes, and the process exits clean (no leak report) without waiting for the sleep. */
/* SIGTERM drains: a filter suspended longer than drain_timeout is cut off at it, and the proxy exits 0. */
static void test_shutdown_while_suspended(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 60000 }", NULL);
    top_extra = "drain_timeout: 1s\n";
    start(f, 2, NULL, flt, NULL);
    free(flt);
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(200 * 1000);
    uint64_t t0 = es_now_ms();
    es_proxy_stop(&f->px);
    uint64_t took = es_now_ms() - t0;
    assert_true(took >= 1000 && took < 5000);
    assert_int_equal(es_client_wait_closed(&c, 1000), 1);
    es_client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sleep_in_request_headers_holds_the_upstream_connect, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue_waits_for_the_filter, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upload_while_suspended_stays_bounded, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_response_side_async_on_a_streamed_response, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_request_body_async_per_chunk, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_callout_auth_allows_and_denies, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_callout_to_a_dead_service_is_503, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnect_while_suspended_1000_times, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filter_timeout_is_504_and_the_proxy_keeps_serving, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filter_throw_after_await_is_500_and_the_proxy_keeps_serving,
                                        es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_while_suspended, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

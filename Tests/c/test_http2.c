/*
 * HTTP/2 from clients written by others: curl (h2c with prior knowledge, TLS with ALPN), nghttp, h2load, and
 * Tests/py/h2_client.py on the `h2` library for what only hand-made frames reach: tiny windows, floods, rapid
 * resets, resets while a filter holds the stream. The proxy under test is the ASan build; the upstream is the
 * harness's HTTP/1.1 upstream.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"

static es_tls_certs_t certs;
static pid_t server; /* a Python server a test started: stopped by the teardown, even when the test failed */

static int teardown(void **state)
{
    es_stop_server(server);
    server = 0;
    return es_fixture_teardown(state);
}

/* One h2c/HTTP/1.1 listener ("main", its routes below, `filters` as its chain), one TLS listener ("tls") and an
 * admin listener for /stats. */
static void start(es_fixture_t *f, const char *filters, const char *listener_extra)
{
    es_tls_make_certs(NULL, &certs);
    es_proxy_start(&f->px, 3,
                   "workers: 1\n"
                   "drain_timeout: 10s\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n%s%s%s"
                   "    routes:\n"
                   "      - match: { prefix: /direct }\n"
                   "        direct_response: { status: 200, body: \"hello\\n\" }\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "  - name: tls\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    tls: { cert: %s, key: %s }\n"
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
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   listener_extra ? listener_extra : "", filters ? "    http_filters:\n" : "", filters ? filters : "",
                   certs.server_cert, certs.server_key, f->up.port);
}

static uint64_t stat(es_fixture_t *f, const char *name)
{
    return es_stat(es_proxy_port(&f->px, "admin"), "/stats", name);
}

/* Runs Tests/py/h2_client.py against the main listener; the tool's output in *out. */
static int h2_client(es_fixture_t *f, char **out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int h2_client(es_fixture_t *f, char **out, const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return es_run_tool(out, "timeout 300 %s %s/h2_client.py 127.0.0.1:%u %s", es_python(), es_py_tools(),
                       es_proxy_port(&f->px, "main"), args);
}

/* The proxy still answers a fresh HTTP/2 connection. */
static void expect_still_serving(es_fixture_t *f)
{
    char *out;
    int rc = es_run_tool(&out, "curl -sS --max-time 10 --http2-prior-knowledge http://127.0.0.1:%u/direct",
                         es_proxy_port(&f->px, "main"));
    if (rc != 0 || strcmp(out, "hello\n") != 0)
        fail_msg("the proxy no longer serves: curl %d: %s", rc, out);
    free(out);
}

static void test_curl_h2c_prior_knowledge_and_http11_on_one_listener(void **state)
{
    es_fixture_t *f = *state;
    char *a = es_swift_filter_yaml("rewrite", "header_rewrite", "{ response: { set: { x-swift: seen } } }", NULL);
    char *b = es_swift_filter_yaml("probe", "chain_probe", "{ tag: p }", NULL);
    char flt[2048];
    snprintf(flt, sizeof flt, "%s%s", a, b);
    start(f, flt, NULL);
    free(a);
    free(b);
    uint16_t port = es_proxy_port(&f->px, "main");
    char *out;
    int rc = es_run_tool(&out, "curl -sS --max-time 10 --http2-prior-knowledge -D - -d hello "
                               "http://127.0.0.1:%u/headers?x=1", port);
    if (rc != 0)
        fail_msg("curl %d: %s", rc, out);
    /* HTTP/2 to the client, HTTP/1.1 upstream, the filter at work on the way back; filters see the protocol as
     * HTTP/2 and :authority as the authority. */
    assert_non_null(strstr(out, "HTTP/2 200"));
    assert_non_null(strstr(out, "x-swift: seen"));
    assert_non_null(strstr(out, "x-chain-version: HTTP/2"));
    char auth[64];
    snprintf(auth, sizeof auth, "x-chain-authority: 127.0.0.1:%u", port);
    assert_non_null(strstr(out, auth));
    assert_non_null(strstr(out, "POST /headers?x=1 HTTP/1.1"));
    char *host = es_head_value(strstr(out, "POST /headers"), "host"), want[64];
    assert_non_null(host); /* :authority went upstream as Host */
    snprintf(want, sizeof want, "127.0.0.1:%u", port);
    assert_string_equal(host, want);
    free(host);
    free(out);
    rc = es_run_tool(&out, "curl -sS --max-time 10 --http1.1 -D - http://127.0.0.1:%u/direct", port);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    free(out);
    assert_int_equal(stat(f, "h2.connections"), 1);
    assert_int_equal(stat(f, "h2.streams"), 1);
    es_proxy_stop(&f->px);
}

static void test_tls_alpn_chooses_h2_or_http11(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    uint16_t port = es_proxy_port(&f->px, "tls");
    char *out;
    int rc = es_run_tool(&out, "curl -sS --max-time 10 --http2 --cacert %s -D - https://localhost:%u/text?n=5",
                         certs.ca_cert, port);
    if (rc != 0 || strstr(out, "HTTP/2 200") == NULL)
        fail_msg("curl --http2 over TLS: %d: %s", rc, out);
    free(out);
    rc = es_run_tool(&out, "curl -sS --max-time 10 --http1.1 --cacert %s -D - https://localhost:%u/text?n=5",
                     certs.ca_cert, port);
    if (rc != 0 || strstr(out, "HTTP/1.1 200") == NULL)
        fail_msg("curl --http1.1 over TLS: %d: %s", rc, out);
    free(out);
    /* The Python client over TLS: 20 streams on one connection. */
    rc = es_run_tool(&out, "timeout 60 %s %s/h2_client.py 127.0.0.1:%u get --tls --streams 20 --path '/bytes?n=100000'",
                     es_python(), es_py_tools(), port);
    if (rc != 0)
        fail_msg("h2_client over TLS: %s", out);
    es_expect_kv(out, "completed", "20");
    free(out);
    es_proxy_stop(&f->px);
}

static void test_nghttp_and_h2load(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    uint16_t port = es_proxy_port(&f->px, "main");
    char *out;
    int rc = es_run_tool(&out, "nghttp -nv http://127.0.0.1:%u/direct", port);
    if (rc != 0)
        fail_msg("nghttp %d: %s", rc, out);
    /* The server's SETTINGS: 100 concurrent streams, and the window the proxy does not reopen by itself. */
    assert_non_null(strstr(out, "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100"));
    assert_non_null(strstr(out, ":status: 200"));
    free(out);
    rc = es_run_tool(&out, "h2load -c 4 -m 10 -n 4000 http://127.0.0.1:%u/text?n=100", port);
    if (rc != 0 || strstr(out, "4000 succeeded, 0 failed, 0 errored") == NULL)
        fail_msg("h2load %d: %s", rc, out);
    free(out);
    assert_int_equal(stat(f, "h2.streams"), 4001);
    es_proxy_stop(&f->px);
}

/* Fifty streams on one connection, the filter holding each in its request headers for 300 ms: all answered,
 * concurrently (together well under 50 x 300 ms). */
static void test_many_streams_with_a_filter_holding_them(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 300 }", NULL);
    start(f, flt, NULL);
    free(flt);
    char *out;
    int rc = h2_client(f, &out, "get --streams 50 --path '/bytes?n=200000' --header x-async-slept");
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "completed", "50");
    es_expect_kv(out, "statuses", "200:50");
    char *max = es_kv(out, "ms_max");
    assert_non_null(max);
    assert_true(atof(max) < 5000);
    free(max);
    free(out);
    assert_int_equal(stat(f, "filter.running"), 50);
    es_proxy_stop(&f->px);
}

/* 1 GiB each way through tiny client windows, checked by hash and length; the worker's memory stays bounded
 * because a window reopens only as bytes leave the proxy. */
static void test_one_gib_each_way_with_tiny_windows(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    pid_t w;
    assert_int_equal(es_proxy_workers(&f->px, &w, 1), 1);
    long rss0 = es_proc_status_kb(w, "VmRSS");
    char *out;
    int rc = h2_client(f, &out, "big-download --path '/bytes?n=1073741824' --size 1073741824 --window 16384");
    if (rc != 0)
        fail_msg("download: %s", out);
    char *got = es_kv(out, "sha256"), *want = es_kv(out, "expected_sha256");
    assert_non_null(got);
    assert_non_null(want);
    assert_string_equal(got, want);
    free(got);
    free(want);
    free(out);
    rc = h2_client(f, &out, "big-upload --path /sink --size 1073741824");
    if (rc != 0)
        fail_msg("upload: %s", out);
    es_expect_kv(out, "upstream_len", "1073741824");
    char fnv[32]; /* the hash of what the upstream read, against the pattern's */
    snprintf(fnv, sizeof fnv, "%016llx", (unsigned long long)es_pattern_fnv(1073741824ull));
    es_expect_kv(out, "upstream_fnv", fnv);
    free(out);
    long rss1 = es_proc_status_kb(w, "VmRSS");
    print_message("worker RSS %ld kB before, %ld kB after 1 GiB each way\n", rss0, rss1);
    assert_true(rss1 - rss0 < 96 * 1024); /* ASan's quarantine included; unbounded buffering would be a GiB */
    es_proxy_stop(&f->px);
}

/* A client that opens a stream and never reads: the proxy sends what the window allows and stops reading the
 * upstream, and the connection still serves other streams. */
static void test_window_stall_stops_at_the_window(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    char *out;
    int rc = h2_client(f, &out, "window-stall --path '/bytes?n=50000000' --window 16384");
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "received", "16384");
    es_expect_kv(out, "flow_control_violation", "0");
    es_expect_kv(out, "rst_codes", "none"); /* stream_idle_timeout is 300s by default */
    free(out);
    expect_still_serving(f);
    es_proxy_stop(&f->px);
    /* With stream_idle_timeout: 1s the stalled stream is reset, and counted; the connection serves on. */
    start(f, NULL, "    stream_idle_timeout: 1s\n");
    uint64_t t0 = es_now_ms();
    h2_client(f, &out, "window-stall --path '/bytes?n=50000000' --window 16384 --idle 2500");
    es_expect_kv(out, "rst_codes", "INTERNAL_ERROR:1");
    free(out);
    assert_true(es_now_ms() - t0 >= 1000);
    assert_int_equal(stat(f, "h2.stream_idle_timeouts"), 1);
    expect_still_serving(f);
    es_proxy_stop(&f->px);
}

static void test_rapid_reset_is_cut_with_goaway(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    char *out;
    h2_client(f, &out, "rapid-reset --count 5000 --path '/delay?ms=200'");
    char *g = es_kv(out, "goaway");
    if (g == NULL || strcmp(g, "none") == 0)
        fail_msg("no GOAWAY for 5000 resets: %s", out);
    free(g);
    free(out);
    assert_int_equal(stat(f, "h2.rapid_reset"), 1);
    expect_still_serving(f);
    es_proxy_stop(&f->px);
}

static void test_floods_get_goaway_enhance_your_calm(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    static const char *const modes[] = {"continuation-flood", "empty-data-flood", "ping-flood", "settings-flood"};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char *out;
        h2_client(f, &out, "%s", modes[i]);
        char *g = es_kv(out, "goaway");
        if (g == NULL || strcmp(g, "ENHANCE_YOUR_CALM") != 0)
            fail_msg("%s: goaway=%s:\n%s", modes[i], g ? g : "(none)", out);
        free(g);
        free(out);
        expect_still_serving(f);
    }
    assert_int_equal(stat(f, "h2.floods"), 4);
    es_proxy_stop(&f->px);
}

static void test_header_list_too_large_is_431(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, "    max_request_headers_kb: 8\n");
    char *out;
    h2_client(f, &out, "headers-too-large --size 16384");
    es_expect_kv(out, "status", "431");
    free(out);
    assert_int_equal(stat(f, "h2.headers_too_large"), 1);
    expect_still_serving(f);
    es_proxy_stop(&f->px);
}

/* A header block that stops halfway (HEADERS without END_HEADERS) is given request_headers_timeout, as an HTTP/1.1
 * head is: GOAWAY PROTOCOL_ERROR and the close at 1.00-1.15 s (the Python client's own latency included). */
static void test_a_stalled_header_block_is_cut_at_the_header_timeout(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, "    request_headers_timeout: 1s\n");
    char *out;
    h2_client(f, &out, "slow-headers --wait 4000");
    es_expect_kv(out, "goaway", "PROTOCOL_ERROR");
    char *t = es_kv(out, "closed_after_ms");
    assert_non_null(t);
    long ms = atol(t);
    if (ms < 1000 || ms > 1150)
        fail_msg("closed after %ld ms, not within 1000-1150:\n%s", ms, out);
    free(t);
    free(out);
    assert_int_equal(stat(f, "downstream.header_timeouts"), 1);
    expect_still_serving(f);
    es_proxy_stop(&f->px);
}

static void test_streams_over_the_limit_are_refused(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    char *out;
    h2_client(f, &out, "concurrent-streams --count 105 --path '/delay?ms=500'");
    es_expect_kv(out, "max_concurrent_streams", "100");
    es_expect_kv(out, "completed", "100");
    es_expect_kv(out, "rst_codes", "REFUSED_STREAM:5");
    free(out);
    assert_int_equal(stat(f, "h2.streams_refused"), 5);
    es_proxy_stop(&f->px);
    /* The limit is the listener's http2.max_concurrent_streams. */
    start(f, NULL, "    http2: { max_concurrent_streams: 10 }\n");
    h2_client(f, &out, "concurrent-streams --count 12 --path '/delay?ms=500'");
    es_expect_kv(out, "max_concurrent_streams", "10");
    es_expect_kv(out, "completed", "10");
    es_expect_kv(out, "rst_codes", "REFUSED_STREAM:2");
    free(out);
    es_proxy_stop(&f->px);
}

/* A client resets a stream whose async filter sleeps: the task is cancelled, the next stream on the same
 * connection is served, and nothing leaks (the ASan proxy exits clean). */
static void test_reset_while_an_async_filter_holds_the_stream(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 60000, counters_path: /_counters }", NULL);
    start(f, flt, NULL);
    free(flt);
    char *out;
    int rc = h2_client(f, &out, "reset-while-held --path /held --path2 /_counters --delay 300");
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "after_status", "200");
    free(out);
    /* The filter saw its sleep cancelled and its stream complete, once. */
    es_response_t r;
    es_get(es_proxy_port(&f->px, "main"), "/_counters", &r);
    assert_string_equal(r.body, "started=1 cancelled=1 completed=1\n");
    es_response_dispose(&r);
    assert_int_equal(stat(f, "filter.cancelled"), 1);
    assert_int_equal(stat(f, "h2.streams_reset_by_client"), 1);
    assert_int_equal(atomic_load(&f->up.connections), 0); /* the held request never left the proxy */
    es_proxy_stop(&f->px);
}

/* SIGTERM while a stream is in flight: the client gets GOAWAY, the stream finishes, the proxy exits 0. */
static void test_drain_sends_goaway_and_finishes_the_stream(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "timeout 60 %s %s/h2_client.py 127.0.0.1:%u get --streams 1 --path '/delay?ms=1500'",
             es_python(), es_py_tools(), es_proxy_port(&f->px, "main"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    usleep(600 * 1000); /* the stream is at the upstream */
    kill(f->px.pid, SIGTERM);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the stream did not finish across the drain:\n%s", out);
    es_expect_kv(out, "statuses", "200:1");
    es_expect_kv(out, "goaway", "NO_ERROR");
    es_proxy_wait_exit(&f->px, 15000); /* asserts exit status 0 */
}

/* WebSocket over HTTP/2 (RFC 8441): the listener advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, an extended CONNECT
 * with :protocol websocket reaches an HTTP/1.1 WebSocket upstream as an Upgrade, and the stream carries the frames:
 * 16 MiB echoed, ping, close codes both ways. A route with upgrades: [] gets the upstream's non-101 answer. */
static void test_websocket_over_http2(void **state)
{
    es_fixture_t *f = *state;
    uint16_t ws_port;
    server = es_spawn_server(&ws_port, "%s %s/ws_server.py --port 0", es_python(), es_py_tools());
    es_proxy_start(&f->px, 2,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /plain }\n"
                   "        cluster: ws\n"
                   "        upgrades: []\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: ws\n"
                   "  - name: admin\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "clusters:\n"
                   "  - name: ws\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   ws_port);
    uint16_t port = es_proxy_port(&f->px, "main");
    char *out;
    int rc = es_run_tool(&out, "timeout 120 %s %s/ws_h2_client.py 127.0.0.1:%u --size 16777216 --close-code 4100",
                         es_python(), es_py_tools(), port);
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "connect_protocol", "1");
    es_expect_kv(out, "echo_bytes", "16777216");
    es_expect_kv(out, "close_code", "4100");
    char *a = es_kv(out, "sent_sha256"), *b = es_kv(out, "echo_sha256");
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(out);
    rc = es_run_tool(&out, "timeout 60 %s %s/ws_h2_client.py 127.0.0.1:%u --path /close/4001 --messages 0 --no-ping "
                           "--expect-close 4001", es_python(), es_py_tools(), port);
    if (rc != 0)
        fail_msg("%s", out);
    free(out);
    rc = es_run_tool(&out, "timeout 60 %s %s/ws_h2_client.py 127.0.0.1:%u --path /plain", es_python(), es_py_tools(), port);
    if (rc == 0 || strstr(out, "the CONNECT got 4") == NULL)
        fail_msg("upgrades: [] let a WebSocket through: %s", out);
    free(out);
    assert_int_equal(es_stat(es_proxy_port(&f->px, "admin"), "/stats", "downstream.tunnels"), 2);
    es_proxy_stop(&f->px);
}

/* A plain CONNECT over HTTP/2 (RFC 9113 8.5): only on a route with connect: {} (else 403), tunnelled to the route's
 * cluster, the stream's DATA both ways. */
static void test_plain_connect_over_http2(void **state)
{
    es_fixture_t *f = *state;
    uint16_t echo_port;
    server = es_spawn_server(&echo_port, "%s %s/tcp_echo.py --port 0", es_python(), es_py_tools());
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /, host: echo.test }\n"
                   "        cluster: echo\n"
                   "        connect: {}\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: echo\n"
                   "clusters:\n"
                   "  - name: echo\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   echo_port);
    char *out;
    int rc = h2_client(f, &out, "connect --path echo.test:7 --size 3000000");
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "status", "200");
    es_expect_kv(out, "echo_bytes", "3000000");
    es_expect_kv(out, "ended", "1");
    free(out);
    h2_client(f, &out, "connect --path other.test:7 --size 10");
    es_expect_kv(out, "status", "403");
    free(out);
    es_proxy_stop(&f->px);
}

/* 2,000 connections of random frames after the preface (types, flags, stream ids, payloads, lengths that lie,
 * header blocks of odd fields): whatever each gets, the proxy keeps serving and exits clean under ASan. The seed is
 * printed; ES_H2_FUZZ_SEED replays one. */
static void test_random_frames_leave_the_proxy_serving(void **state)
{
    es_fixture_t *f = *state;
    start(f, NULL, NULL);
    const char *seed = getenv("ES_H2_FUZZ_SEED");
    char *out;
    int rc = seed != NULL ? h2_client(f, &out, "fuzz --count 2000 --seed %s", seed) : h2_client(f, &out, "fuzz --count 2000");
    print_message("%s", out);
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "connections", "2000");
    free(out);
    expect_still_serving(f);
    es_proxy_stop(&f->px); /* exit status 0: no sanitizer report */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_curl_h2c_prior_knowledge_and_http11_on_one_listener, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tls_alpn_chooses_h2_or_http11, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_nghttp_and_h2load, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_many_streams_with_a_filter_holding_them, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_one_gib_each_way_with_tiny_windows, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_window_stall_stops_at_the_window, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rapid_reset_is_cut_with_goaway, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_floods_get_goaway_enhance_your_calm, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_header_list_too_large_is_431, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_stalled_header_block_is_cut_at_the_header_timeout, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_streams_over_the_limit_are_refused, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_an_async_filter_holds_the_stream, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_drain_sends_goaway_and_finishes_the_stream, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_websocket_over_http2, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_connect_over_http2, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_frames_leave_the_proxy_serving, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

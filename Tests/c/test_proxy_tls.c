/*
 * TLS both ways, with certificates made by the `openssl` command at test time: curl through a TLS
 * listener, a verified TLS upstream (SNI, host name), a wrong name or an untrusted certificate refused
 * with a 503 that says why, plain HTTP on a TLS port answered and closed cleanly, a client stalling
 * mid-handshake closed at the handshake timeout, 64 MiB each way, back-pressure over TLS, and startup
 * errors that name the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "harness.h"

#define MiB (UINT64_C(1) << 20)

static es_tls_certs_t certs;

/* Starts f->up2 serving TLS with the test certificate (chain file). */
static void start_tls_upstream(es_fixture_t *f)
{
    memset(&f->up2, 0, sizeof f->up2);
    f->up2.tls_cert = certs.server_cert;
    f->up2.tls_key = certs.server_key;
    assert_int_equal(es_upstream_start(&f->up2), 0);
}

/*
 * Listener "main": TLS with the test certificate (handshake_timeout as given) and a chain_probe
 * filter (it reports the scheme filters see as x-chain-scheme), / to cluster
 * "backend" = `backend_port` (over TLS with `cluster_tls`, a YAML mapping, when not NULL), /stats.
 */
static void start_proxy(es_fixture_t *f, uint16_t backend_port, const char *cluster_tls, const char *handshake_timeout)
{
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    tls: { cert: %s, key: %s, handshake_timeout: %s }\n"
                   "    http_filters:\n"
                   "      - name: probe\n"
                   "        so_path: %s\n"
                   "        plugin_name: chain_probe\n"
                   "        plugin_config: { tag: p }\n"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "%s%s%s",
                   certs.server_cert, certs.server_key, handshake_timeout, es_swift_filter_lib(), backend_port,
                   cluster_tls ? "    tls: " : "", cluster_tls ? cluster_tls : "", cluster_tls ? "\n" : "");
}

/* A counter from /stats, over TLS. */
static uint64_t stat(uint16_t port, const char *name)
{
    es_response_t r;
    es_get_tls(port, certs.ca_cert, "localhost", "/stats", &r);
    assert_int_equal(r.status, 200);
    uint64_t v = es_stat_in(r.body, name);
    es_response_dispose(&r);
    return v;
}

/* Runs curl with `args` (a printf format); returns its exit status, its stdout in out (malloc'd). */
static int run_curl(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_curl(char **out, const char *fmt, ...)
{
    char args[2048], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 20 %s 2>&1", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_curl_through_tls_listener(void **state)
{
    es_fixture_t *f = *state;
    start_proxy(f, f->up.port, NULL, "10s");
    char *out;
    int rc = run_curl(&out, "--cacert %s -D - https://localhost:%u/headers", certs.ca_cert, f->px.port);
    if (rc != 0) fail_msg("curl exited %d: %s", rc, out);
    assert_non_null(strstr(out, "HTTP/2 200")); /* curl offers h2 first, and the listener takes it (ALPN) */
    /* The upstream (plain) learns the client spoke HTTPS, and so do filters. */
    assert_non_null(strstr(out, "x-forwarded-proto: https"));
    assert_non_null(strstr(out, "x-chain-scheme: https"));
    free(out);

    /* The TLS client in the harness: TLS 1.3 by default, ALPN http/1.1, and 1.2 is accepted too. */
    es_client_t c;
    es_client_connect_tls(&c, f->px.port, certs.ca_cert, "localhost");
    assert_string_equal(c.alpn, "http/1.1");
    assert_int_equal(c.tls_version, 0x0304);
    /* The chain in the certificate file is served whole: the leaf and the CA after it. */
    assert_int_equal(sk_X509_num(SSL_get_peer_cert_chain(c.ssl)), 2);
    es_client_sendf(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /a\n");
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /b\n");
    es_response_dispose(&r);
    es_client_close(&c);
    rc = run_curl(&out, "--tlsv1.2 --tls-max 1.2 --cacert %s https://127.0.0.1:%u/v12", certs.ca_cert, f->px.port);
    if (rc != 0 || strcmp(out, "upstream ok GET /v12\n") != 0) fail_msg("TLS 1.2: curl %d: %s", rc, out);
    free(out);
    /* TLS 1.1 is refused; the proxy keeps serving. */
    rc = run_curl(&out, "--tlsv1.1 --tls-max 1.1 --cacert %s https://127.0.0.1:%u/v11", certs.ca_cert, f->px.port);
    if (rc == 0) fail_msg("TLS 1.1 was accepted: %s", out);
    free(out);
    assert_true(stat(f->px.port, "tls.handshake_failures") >= 1);

    es_proxy_stop(&f->px);
}

/* Connection: close over TLS with the response arriving later: the whole response, then close_notify. (The
 * close_notify used to be written before the response's plaintext was encrypted, and OpenSSL then refused the
 * response: the client got nothing.) */
static void test_connection_close_after_a_late_response(void **state)
{
    es_fixture_t *f = *state;
    start_proxy(f, f->up.port, NULL, "10s");
    es_client_t c;
    es_client_connect_tls(&c, f->px.port, certs.ca_cert, "localhost");
    es_client_sendf(&c, "GET /delay?ms=200 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /delay\n");
    assert_false(r.keep_alive);
    es_response_dispose(&r);
    assert_int_equal(es_client_wait_closed(&c, 2000), 1);
    assert_true(c.tls_close_notify);
    es_client_close(&c);
    es_proxy_stop(&f->px);
}

static void test_verified_tls_upstream(void **state)
{
    es_fixture_t *f = *state;
    start_tls_upstream(f);
    char tls[1024];
    snprintf(tls, sizeof tls, "{ sni: upstream.test, ca: %s }", certs.ca_cert);
    start_proxy(f, f->up2.port, tls, "10s");

    es_client_t c;
    es_client_connect_tls(&c, f->px.port, certs.ca_cert, "localhost");
    for (int i = 0; i < 3; i++) {
        es_client_sendf(&c, "GET /n%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        /* One TLS connection upstream, pooled and reused like a plain one. */
        assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
        es_response_dispose(&r);
    }
    es_client_close(&c);
    assert_int_equal(es_upstream_connections(&f->up2), 1);
    char sni[256];
    es_upstream_last_sni(&f->up2, sni, sizeof sni);
    assert_string_equal(sni, "upstream.test");
    es_proxy_stop(&f->px);
}

static void test_wrong_name_or_untrusted_upstream_is_503(void **state)
{
    es_fixture_t *f = *state;
    start_tls_upstream(f);
    char tls[1024];
    snprintf(tls, sizeof tls, "{ sni: other.test, ca: %s }", certs.ca_cert);
    start_proxy(f, f->up2.port, tls, "10s");
    es_response_t r;
    es_get_tls(f->px.port, certs.ca_cert, "localhost", "/x", &r);
    if (r.status != 503 || strstr(r.body, "upstream TLS handshake failed: certificate verify failed: hostname mismatch") == NULL)
        fail_msg("a wrong host name got %d \"%s\"", r.status, r.body);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up2), 0);
    assert_int_equal(stat(f->px.port, "upstream.tls_failures"), 1);
    es_proxy_stop(&f->px);

    /* A CA that did not sign the upstream's certificate. */
    snprintf(tls, sizeof tls, "{ sni: upstream.test, ca: %s }", certs.untrusted_cert);
    start_proxy(f, f->up2.port, tls, "10s");
    es_get_tls(f->px.port, certs.ca_cert, "localhost", "/x", &r);
    if (r.status != 503 || strstr(r.body, "certificate verify failed") == NULL)
        fail_msg("an untrusted certificate got %d \"%s\"", r.status, r.body);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up2), 0);
    es_proxy_stop(&f->px);

    /* verify: false takes it (and says so at startup). */
    start_proxy(f, f->up2.port, "{ sni: other.test, verify: false }", "10s");
    es_get_tls(f->px.port, certs.ca_cert, "localhost", "/x", &r);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    assert_int_equal(es_proxy_log_count(&f->px, "tls.verify is false"), 1);
    es_proxy_stop(&f->px);
}

static void test_plain_http_to_tls_port_is_closed_cleanly(void **state)
{
    es_fixture_t *f = *state;
    start_proxy(f, f->up.port, NULL, "10s");
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "this port speaks HTTPS (TLS): use https:// here\n");
    es_response_dispose(&r);
    /* A FIN, not a reset. */
    struct pollfd pfd = { .fd = c.fd, .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 3000), 1);
    char b[16];
    assert_int_equal(recv(c.fd, b, sizeof b, 0), 0);
    es_client_close(&c);
    assert_int_equal(es_upstream_requests(&f->up), 0);
    assert_int_equal(stat(f->px.port, "tls.plain_http"), 1);
    es_proxy_stop(&f->px);
}

static void test_stalled_handshake_closed_at_timeout(void **state)
{
    es_fixture_t *f = *state;
    start_proxy(f, f->up.port, NULL, "500ms");
    /* The start of a ClientHello record, then nothing. */
    static const unsigned char hello_start[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03 };
    es_client_t c;
    uint64_t t0 = es_now_ms();
    es_client_connect(&c, f->px.port);
    es_client_send(&c, hello_start, sizeof hello_start);
    assert_int_equal(es_client_wait_closed(&c, 3000), 1);
    uint64_t dt = es_now_ms() - t0;
    es_client_close(&c);
    if (dt < 500 || dt > 600) fail_msg("closed after %" PRIu64 " ms, want 500", dt);
    /* One that never says anything goes the same way. */
    t0 = es_now_ms();
    es_client_connect(&c, f->px.port);
    assert_int_equal(es_client_wait_closed(&c, 3000), 1);
    dt = es_now_ms() - t0;
    es_client_close(&c);
    if (dt < 500 || dt > 600) fail_msg("a silent client closed after %" PRIu64 " ms, want 500", dt);
    assert_int_equal(stat(f->px.port, "tls.handshake_timeouts"), 2);
    /* And garbage instead of a handshake is a handshake failure, not a crash. */
    es_client_connect(&c, f->px.port);
    es_client_send(&c, "\x16\x03\x01\x00\x05hello", 10);
    /* An alert may come first; then the close. */
    struct pollfd pfd = { .fd = c.fd, .events = POLLIN };
    char b[256];
    ssize_t got = 1;
    while (got > 0 && poll(&pfd, 1, 3000) == 1) got = recv(c.fd, b, sizeof b, 0);
    assert_true(got <= 0);
    es_client_close(&c);
    assert_true(stat(f->px.port, "tls.handshake_failures") >= 1);
    es_proxy_stop(&f->px);
}

static void test_64mib_each_way_over_tls(void **state)
{
    es_fixture_t *f = *state;
    start_tls_upstream(f);
    char tls[1024];
    snprintf(tls, sizeof tls, "{ sni: localhost, ca: %s }", certs.ca_cert);
    start_proxy(f, f->up2.port, tls, "10s");
    es_upload_pattern_tls(f->px.port, certs.ca_cert, "localhost", 64 * MiB, 0, 256 * 1024);
    es_upload_pattern_tls(f->px.port, certs.ca_cert, "localhost", 64 * MiB, 1, 100000);
    for (int chunked = 0; chunked < 2; chunked++) {
        char raw[160];
        snprintf(raw, sizeof raw, "GET /bytes?n=%" PRIu64 "&chunked=%d HTTP/1.1\r\nHost: t\r\n\r\n", 64 * MiB, chunked);
        es_response_t r;
        es_roundtrip_tls(f->px.port, certs.ca_cert, "localhost", raw, &r, &(es_read_opts_t){ .keep = 1 });
        assert_int_equal(r.status, 200);
        assert_true(r.body_total == 64 * MiB);
        assert_true(r.body_fnv == es_pattern_fnv(64 * MiB));
        es_response_dispose(&r);
    }
    es_proxy_stop(&f->px);
}

static void test_backpressure_over_tls(void **state)
{
    es_fixture_t *f = *state;
    start_tls_upstream(f);
    char tls[1024];
    snprintf(tls, sizeof tls, "{ sni: localhost, ca: %s }", certs.ca_cert);
    start_proxy(f, f->up2.port, tls, "10s");
    es_response_t r;
    es_get_tls(f->px.port, certs.ca_cert, "localhost", "/bytes?n=1048576", &r);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    long before = es_proc_status_kb(f->px.pid, "VmRSS");

    /* A TLS client that reads nothing of a 256 MiB download: the TLS upstream must end up blocked. */
    const uint64_t body = 256 * MiB;
    es_client_t c;
    es_client_connect_tls(&c, f->px.port, certs.ca_cert, "localhost");
    unsigned long long base = atomic_load(&f->up2.bytes_out);
    es_client_sendf(&c, "GET /bytes?n=%" PRIu64 " HTTP/1.1\r\nHost: t\r\n\r\n", body);
    unsigned long long sent = es_wait_stalled(&f->up2.bytes_out, base + body) - base;
    long peak = es_proc_status_kb(f->px.pid, "VmHWM");
    if (sent >= body) fail_msg("the upstream sent the whole body to a client that read none (RSS +%ld KiB)", peak - before);
    if (peak - before > 64 * 1024) fail_msg("the proxy's RSS grew by %ld KiB holding a TLS download", peak - before);
    print_message("a stalled TLS download: the upstream sent %llu of %" PRIu64 " bytes; proxy RSS +%ld KiB\n", sent,
                  body, peak - before);
    es_client_read(&c, &r, &(es_read_opts_t){ .keep = 1 });
    assert_int_equal(r.status, 200);
    assert_true(r.body_total == body);
    assert_true(r.body_fnv == es_pattern_fnv(body));
    es_response_dispose(&r);
    es_client_close(&c);
    es_proxy_stop(&f->px);
}

static void test_tls_startup_errors_name_the_file(void **state)
{
    (void)state;
    static const char yaml[] = "listeners:\n"
                               "  - name: main\n"
                               "    address: 127.0.0.1\n"
                               "    port: 0\n"
                               "    tls: { cert: %s, key: %s }\n"
                               "    routes:\n"
                               "      - match: { prefix: / }\n"
                               "        direct_response: { status: 200 }\n";
    struct {
        const char *cert, *key, *want;
    } cases[] = {
        { "/nonexistent/cert.pem", certs.server_key, ":5: listeners[0].tls.cert: cannot read certificate \"/nonexistent/cert.pem\": No such file or directory" },
        { certs.server_cert, "/nonexistent/key.pem", ":5: listeners[0].tls.key: cannot read key \"/nonexistent/key.pem\": No such file or directory" },
        { certs.server_cert, certs.other_key, "does not match the certificate" },
        { certs.server_key, certs.server_key, "listeners[0].tls.cert: cannot load the certificate chain" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        es_run_t run;
        es_run_config(&run, yaml, cases[i].cert, cases[i].key);
        if (!run.exited || run.exit_code == 0 || strstr(run.err, cases[i].want) == NULL)
            fail_msg("case %zu: exit %d, stderr \"%s\", want \"%s\"", i, run.exit_code, run.err, cases[i].want);
        es_run_dispose(&run);
    }
    es_run_t run;
    es_run_config(&run,
                  "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    routes:\n"
                  "      - match: { prefix: / }\n        cluster: c\n"
                  "clusters:\n  - name: c\n    endpoints: [ { address: 127.0.0.1, port: 1 } ]\n"
                  "    tls: { ca: /nonexistent/ca.pem }\n");
    if (!run.exited || run.exit_code == 0 ||
        strstr(run.err, "clusters[0].tls.ca: cannot read CA file \"/nonexistent/ca.pem\"") == NULL)
        fail_msg("an unreadable CA: exit %d, stderr \"%s\"", run.exit_code, run.err);
    es_run_dispose(&run);
}

static int setup_certs(void **state)
{
    (void)state;
    return es_tls_make_certs(NULL, &certs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_curl_through_tls_listener, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_after_a_late_response, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_verified_tls_upstream, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_name_or_untrusted_upstream_is_503, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_plain_http_to_tls_port_is_closed_cleanly, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_handshake_closed_at_timeout, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_64mib_each_way_over_tls, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_over_tls, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test(test_tls_startup_errors_name_the_file),
    };
    return cmocka_run_group_tests_name("proxy_tls", tests, setup_certs, NULL);
}

/*
 * HTTP/2 to upstreams (clusters with `http2: true`) and gRPC end to end: grpcio clients through the proxy to a
 * grpcio server (Tests/py/grpc_*.py), curl over HTTP/1.1 and h2 to an h2 upstream on the `h2` library
 * (Tests/py/h2_upstream.py) that can refuse streams over a limit and say GOAWAY, and the proxy's own gRPC deadline.
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

static pid_t server;

static int teardown(void **state)
{
    es_stop_server(server);
    server = 0;
    return es_fixture_teardown(state);
}

/* A listener routing / to cluster "h2" (http2: true, at h2_port) and /h1 to the harness's HTTP/1.1 upstream. */
static void start(es_fixture_t *f, uint16_t h2_port)
{
    es_proxy_start(&f->px, 2,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /h1/ }\n"
                   "        cluster: h1\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: h2\n"
                   "  - name: admin\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "clusters:\n"
                   "  - name: h2\n"
                   "    http2: true\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "  - name: h1\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   h2_port, f->up.port);
}

static int grpc(es_fixture_t *f, char **out, const char *mode)
{
    return es_run_tool(out, "timeout 60 %s %s/grpc_client.py 127.0.0.1:%u %s", es_python(), es_py_tools(),
                       es_proxy_port(&f->px, "main"), mode);
}

static void test_grpc_unary_and_streaming(void **state)
{
    es_fixture_t *f = *state;
    uint16_t port;
    server = es_spawn_server(&port, "%s %s/grpc_server.py --port 0", es_python(), es_py_tools());
    start(f, port);
    static const char *const modes[] = {"unary", "server-stream", "client-stream", "bidi"};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char *out;
        if (grpc(f, &out, modes[i]) != 0)
            fail_msg("%s: %s", modes[i], out);
        es_expect_kv(out, "status", "OK");
        char *got = es_kv(out, "sha256"), *sent = es_kv(out, i == 2 ? "server_sha256" : "sent_sha256");
        if (i == 1) {
            free(sent);
            sent = es_kv(out, "expected_sha256");
        }
        if (i == 2) {
            free(got);
            got = es_kv(out, "sent_sha256");
        }
        if (got == NULL || sent == NULL || strcmp(got, sent) != 0)
            fail_msg("%s: the payload changed on the way:\n%s", modes[i], out);
        free(got);
        free(sent);
        free(out);
    }
    es_proxy_stop(&f->px);
}

static void test_grpc_statuses_trailers_and_deadlines(void **state)
{
    es_fixture_t *f = *state;
    uint16_t port;
    server = es_spawn_server(&port, "%s %s/grpc_server.py --port 0", es_python(), es_py_tools());
    start(f, port);
    char *out;
    /* A trailers-only answer (grpc-status in the only HEADERS) stays one. */
    grpc(f, &out, "status");
    es_expect_kv(out, "status", "NOT_FOUND");
    free(out);
    /* Trailing metadata, binary included, and initial metadata. */
    if (grpc(f, &out, "trailers") != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "trailer.x-trailer-one", "1");
    es_expect_kv(out, "trailer.x-trailer-bin", "0001");
    es_expect_kv(out, "initial.x-initial", "yes");
    free(out);
    grpc(f, &out, "deadline");
    es_expect_kv(out, "status", "DEADLINE_EXCEEDED");
    free(out);
    es_proxy_stop(&f->px);
}

/* The proxy enforces grpc-timeout itself, even when the upstream ignores it: 300 ms on a 3 s upstream is
 * answered DEADLINE_EXCEEDED (grpc-status 4, trailers-only) at 300 ms, over h2 and over HTTP/1.1. */
static void test_the_proxy_enforces_grpc_timeout(void **state)
{
    es_fixture_t *f = *state;
    uint16_t port;
    server = es_spawn_server(&port, "%s %s/h2_upstream.py --port 0", es_python(), es_py_tools());
    start(f, port);
    static const char *const versions[] = {"--http2-prior-knowledge", "--http1.1"};
    for (size_t i = 0; i < 2; i++) {
        char *out;
        uint64_t t0 = es_now_ms();
        int rc = es_run_tool(&out, "curl -sS --max-time 10 %s -D - -H 'content-type: application/grpc' "
                                   "-H 'grpc-timeout: 300m' --data-binary @/dev/null http://127.0.0.1:%u/slow/3000",
                             versions[i], es_proxy_port(&f->px, "main"));
        uint64_t took = es_now_ms() - t0;
        if (rc != 0 || strstr(out, "grpc-status: 4") == NULL || strstr(out, " 200") == NULL)
            fail_msg("%s: %d: %s", versions[i], rc, out);
        if (took < 300 || took > 2000)
            fail_msg("%s: answered after %llu ms, deadline 300 ms", versions[i], (unsigned long long)took);
        free(out);
    }
    es_proxy_stop(&f->px);
}

/* HTTP/1.1 and h2 clients to an h2 upstream: bodies both ways, trailers back. */
static void test_http11_and_h2_clients_to_an_h2_upstream(void **state)
{
    es_fixture_t *f = *state;
    uint16_t port;
    server = es_spawn_server(&port, "%s %s/h2_upstream.py --port 0", es_python(), es_py_tools());
    start(f, port);
    uint16_t p = es_proxy_port(&f->px, "main");
    char *out;
    int rc = es_run_tool(&out, "f=$(mktemp) && head -c 3000000 /dev/urandom > $f && curl -sS --max-time 20 --http1.1 "
                               "--data-binary @$f http://127.0.0.1:%u/sha256 && echo && sha256sum $f; rm -f $f", p);
    if (rc != 0)
        fail_msg("%s", out);
    /* "len=N sha256=HEX" from the upstream, then sha256sum's "HEX  file": the same hash. */
    const char *h = strstr(out, "sha256=");
    assert_non_null(h);
    assert_non_null(strstr(out, "len=3000000"));
    char hash[65];
    memcpy(hash, h + 7, 64);
    hash[64] = 0;
    if (strstr(h + 71, hash) == NULL)
        fail_msg("the upstream read other bytes than were sent:\n%s", out);
    free(out);
    for (int v = 0; v < 2; v++) {
        rc = es_run_tool(&out, "curl -sS --max-time 20 %s -D - http://127.0.0.1:%u/trailers",
                         v ? "--http2-prior-knowledge" : "--http1.1 --raw", p);
        if (rc != 0 || strstr(out, "x-trailer-one: 1") == NULL)
            fail_msg("trailers to an %s client: %s", v ? "h2" : "HTTP/1.1", out);
        free(out);
    }
    rc = es_run_tool(&out, "curl -sS --max-time 20 --http2-prior-knowledge http://127.0.0.1:%u/bytes/5000000 | "
                           "sha256sum; curl -sS --max-time 20 --http1.1 http://127.0.0.1:%u/bytes/5000000 | sha256sum", p, p);
    assert_int_equal(rc, 0);
    /* The same bytes to both clients. */
    assert_true(strncmp(out, strchr(out, '\n') + 1, 64) == 0);
    free(out);
    es_proxy_stop(&f->px);
}

/* Trailers from an HTTP/1.1 client (chunked) reach an h2 upstream as a trailing HEADERS frame; the same cluster
 * over TLS negotiates h2 by ALPN. */
static void test_request_trailers_and_an_h2_upstream_over_tls(void **state)
{
    es_fixture_t *f = *state;
    es_tls_certs_t certs;
    es_tls_make_certs(NULL, &certs);
    uint16_t port;
    server = es_spawn_server(&port, "%s %s/h2_upstream.py --port 0 --tls %s %s", es_python(), es_py_tools(),
                             certs.server_cert, certs.server_key);
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: h2tls\n"
                   "clusters:\n"
                   "  - name: h2tls\n"
                   "    http2: true\n"
                   "    tls: { ca: %s, sni: localhost }\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   certs.ca_cert, port);
    es_response_t r;
    es_roundtrip(f->px.port,
                 "POST /request-trailers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"
                 "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Done: yes\r\n\r\n",
                 &r, NULL);
    assert_int_equal(r.status, 200);
    if (strstr(r.body, "x-checksum: abc\n") == NULL || strstr(r.body, "x-done: yes\n") == NULL)
        fail_msg("the upstream saw these request trailers:\n%s", r.body);
    es_response_dispose(&r);
    es_get(f->px.port, "/bytes/100000", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100000);
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

/* Many streams share a pooled connection up to the upstream's limit, then a new one opens; a GOAWAY stops new
 * streams on a connection, and the ones it refused are sent again on a new connection. */
static void test_stream_limit_and_goaway_from_the_upstream(void **state)
{
    es_fixture_t *f = *state;
    uint16_t port;
    server = es_spawn_server(&port, "%s %s/h2_upstream.py --port 0 --max-streams 4 --goaway-after 10", es_python(),
                             es_py_tools());
    start(f, port);
    char *out;
    int rc = es_run_tool(&out, "timeout 60 %s %s/h2_client.py 127.0.0.1:%u get --streams 30 --path /slow/300 "
                               "--header x-upstream-conn",
                         es_python(), es_py_tools(), es_proxy_port(&f->px, "main"));
    if (rc != 0)
        fail_msg("%s", out);
    es_expect_kv(out, "completed", "30");
    es_expect_kv(out, "statuses", "200:30");
    /* At most 4 at once on a connection and at most 10 per connection: at least 3 connections served them. */
    int conns[64] = {0}, distinct = 0;
    for (int i = 0; i < 30; i++) {
        char key[64];
        snprintf(key, sizeof key, "stream%d.header.x-upstream-conn", i);
        char *v = es_kv(out, key);
        assert_non_null(v);
        int c = atoi(v);
        free(v);
        if (c >= 0 && c < 64 && !conns[c]++)
            distinct++;
    }
    if (distinct < 3)
        fail_msg("%d upstream connections served 30 streams:\n%s", distinct, out);
    free(out);
    es_proxy_stop(&f->px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grpc_unary_and_streaming, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpc_statuses_trailers_and_deadlines, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_proxy_enforces_grpc_timeout, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_http11_and_h2_clients_to_an_h2_upstream, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_trailers_and_an_h2_upstream_over_tls, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_limit_and_goaway_from_the_upstream, es_fixture_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

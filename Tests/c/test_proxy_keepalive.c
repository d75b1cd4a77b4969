/*
 * Connections on both sides: the upstream pool reuses one keep-alive connection for sequential
 * requests from one or several clients, does not reuse a connection the upstream closes (with or
 * without saying so), retries a GET (not a POST) whose reused connection is reset before any response
 * byte (also under load against an upstream that closes idle connections at random: no 5xx reaches a
 * client), a client's Connection: close ends its connection, and pipelined requests are
 * answered in order (many at once, and none after a Connection: close).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"

static void expect_body(es_response_t *r, const char *fmt, int i) {
    char want[128];
    snprintf(want, sizeof want, fmt, i);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, want);
}

static void test_one_client_many_requests_one_upstream_connection(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    for (int i = 1; i <= 10; i++) {
        es_client_sendf(&c, "GET /seq%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_response_t r;
        es_client_read(&c, &r, NULL);
        expect_body(&r, "upstream ok GET /seq%d\n", i);
        assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
        char req[16];
        snprintf(req, sizeof req, "%d", i);
        assert_string_equal(es_response_header(&r, "x-upstream-req"), req);
        es_response_dispose(&r);
    }
    es_client_close(&c);
    assert_int_equal(es_upstream_connections(&f->up), 1);
    assert_int_equal(es_upstream_requests(&f->up), 10);

    es_proxy_stop(&f->px);
}

static void test_interleaved_clients_share_one_upstream_connection(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    /* Three open client connections take turns; one request is in flight at a time. */
    enum { N = 3, ROUNDS = 4 };
    es_client_t c[N];
    for (int i = 0; i < N; i++) es_client_connect(&c[i], f->px.port);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            es_client_sendf(&c[i], "GET /c%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
            es_response_t r;
            es_client_read(&c[i], &r, NULL);
            expect_body(&r, "upstream ok GET /c%d\n", i);
            assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
            es_response_dispose(&r);
        }
    }
    for (int i = 0; i < N; i++) es_client_close(&c[i]);
    assert_int_equal(es_upstream_connections(&f->up), 1);
    assert_int_equal(es_upstream_requests(&f->up), N * ROUNDS);

    es_proxy_stop(&f->px);
}

static void test_upstream_connection_close_is_not_reused(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
    /* Connection is hop-by-hop: the upstream's close is not the client's. */
    const char *conn = es_response_header(&r, "connection");
    assert_true(conn == NULL || strcasestr(conn, "close") == NULL);
    es_response_dispose(&r);

    /* The client connection goes on; the proxy opens a new upstream connection. */
    es_client_sendf(&c, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /next\n");
    assert_string_equal(es_response_header(&r, "x-upstream-conn"), "2");
    assert_string_equal(es_response_header(&r, "x-upstream-req"), "1");
    es_response_dispose(&r);
    es_client_close(&c);
    assert_int_equal(es_upstream_connections(&f->up), 2);

    es_proxy_stop(&f->px);
}

static void test_upstream_closing_idle_connection(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    /*
     * The upstream answers as if keep-alive, then closes (its idle timeout). Whether the proxy sees the
     * FIN before reusing the connection or only after writing the next request on it (a GET, so it may
     * retry), the next request succeeds on a new connection.
     */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    enum { ROUNDS = 10 };
    for (int i = 0; i < ROUNDS; i++) {
        es_client_sendf(&c, "GET /close-silently HTTP/1.1\r\nHost: t\r\n\r\n");
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "upstream ok GET /close-silently\n");
        es_response_dispose(&r);
        es_client_sendf(&c, "GET /after%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_client_read(&c, &r, NULL);
        if (r.status != 200) fail_msg("round %d: the request after an upstream close got %d: %s", i, r.status, r.body);
        expect_body(&r, "upstream ok GET /after%d\n", i);
        es_response_dispose(&r);
    }
    es_client_close(&c);
    assert_int_equal(es_upstream_requests(&f->up), 2 * ROUNDS);

    es_proxy_stop(&f->px);
}

static void test_reused_connection_reset_retries_get(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    /*
     * The pooled connection is reset under the next request before any response byte: an idempotent
     * request is retried once on a new connection (DESIGN.md, upstream keep-alive), so the client never
     * sees the pool's race with the upstream's idle timeout.
     */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /drop-next HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
    es_response_dispose(&r);

    es_client_sendf(&c, "GET /retry-me HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&c, &r, NULL);
    if (r.status != 200) fail_msg("a GET on a reused connection that was reset got %d \"%s\", not a retry", r.status, r.body);
    assert_string_equal(r.body, "upstream ok GET /retry-me\n");
    assert_string_equal(es_response_header(&r, "x-upstream-conn"), "2");
    es_response_dispose(&r);
    es_client_close(&c);
    assert_int_equal(es_upstream_connections(&f->up), 2);
    assert_int_equal(es_upstream_requests(&f->up), 3);

    es_proxy_stop(&f->px);
}

/* ---- an upstream that closes idle keep-alive connections at random, under load -------------- */

enum { RACE_CLIENTS = 8, RACE_SECONDS = 10 };

typedef struct {
    uint16_t port;
    unsigned seed;
    uint64_t until;
    unsigned long ok, status5xx, other;
    char first_bad[160];
} race_client_t;

static void *run_race_client(void *arg) {
    race_client_t *rc = arg;
    es_client_t c;
    if (es_try_client_connect(&c, rc->port) != 0) {
        rc->other++;
        return NULL;
    }
    for (unsigned i = 0; es_now_ms() < rc->until; i++) {
        char req[96];
        int n = snprintf(req, sizeof req, "GET /race/%u HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_response_t r;
        if (es_try_client_send(&c, req, (size_t)n) != 0 || es_try_client_read(&c, &r, NULL) != 0) {
            snprintf(rc->first_bad, sizeof rc->first_bad, "request %u: %.120s", i, c.error);
            rc->other++;
            break;
        }
        char want[64];
        snprintf(want, sizeof want, "upstream ok GET /race/%u\n", i);
        if (r.status == 200 && strcmp(r.body, want) == 0) {
            rc->ok++;
        } else {
            if (r.status >= 500) rc->status5xx++; else rc->other++;
            if (!rc->first_bad[0]) snprintf(rc->first_bad, sizeof rc->first_bad, "request %u: %d %.100s", i, r.status, r.body);
        }
        es_response_dispose(&r);
        /* Think time: the pooled connections sit idle for varying spells, as under real traffic. */
        usleep((useconds_t)(rand_r(&rc->seed) % 15000));
    }
    es_client_close(&c);
    return NULL;
}

static void test_upstream_idle_close_races_are_retried(void **state) {
    es_fixture_t *f = *state;
    /* The upstream closes each keep-alive connection after a random 1-20 ms idle, and its close takes
     * 2 ms to land (as a FIN crossing a network would): requests sent into that window are reset. */
    memset(&f->up2, 0, sizeof f->up2);
    f->up2.idle_close_max_ms = 20;
    f->up2.close_lag_ms = 2;
    assert_int_equal(es_upstream_start(&f->up2), 0);
    es_proxy_start(&f->px, 1,
                   "workers: 2\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "    retries: { on_reset: 1 }\n",
                   f->up2.port);

    race_client_t rc[RACE_CLIENTS];
    pthread_t th[RACE_CLIENTS];
    uint64_t until = es_now_ms() + RACE_SECONDS * 1000;
    for (int i = 0; i < RACE_CLIENTS; i++) {
        rc[i] = (race_client_t){ .port = f->px.port, .seed = 7919u * (unsigned)(i + 1), .until = until };
        assert_int_equal(pthread_create(&th[i], NULL, run_race_client, &rc[i]), 0);
    }
    unsigned long ok = 0, bad5xx = 0, other = 0;
    for (int i = 0; i < RACE_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += rc[i].ok;
        bad5xx += rc[i].status5xx;
        other += rc[i].other;
    }

    unsigned long retries = (unsigned long)es_stat(f->px.port, "/stats", "upstream.retries");
    print_message("%lu requests in %d s: %lu ok, %lu 5xx, %lu other; upstream closed %lu idle connections "
                  "(%lu accepted), the proxy retried %lu requests\n",
                  ok + bad5xx + other, RACE_SECONDS, ok, bad5xx, other, atomic_load(&f->up2.idle_closes),
                  es_upstream_connections(&f->up2), retries);
    for (int i = 0; i < RACE_CLIENTS; i++)
        if (rc[i].first_bad[0]) fail_msg("client %d: %s", i, rc[i].first_bad);
    assert_int_equal(bad5xx, 0);
    assert_int_equal(other, 0);
    assert_true(ok > 1000);
    /* The races happened, and each one was caught by a retry rather than reaching a client. */
    assert_true(retries > 0);

    es_proxy_stop(&f->px);
}

static void test_reused_connection_reset_put_with_body_is_503(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /drop-next HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);

    /* PUT is idempotent, but its body went upstream before the reset and is not kept: never replayed. */
    es_client_sendf(&c, "PUT /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 503);
    es_response_dispose(&r);
    es_client_close(&c);
    assert_int_equal(es_upstream_connections(&f->up), 1);

    es_proxy_stop(&f->px);
}

static void test_reused_connection_reset_post_is_503(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /drop-next HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);

    /* A POST is not idempotent: not retried, the client gets 503. */
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 503);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up), 2);
    assert_int_equal(es_upstream_connections(&f->up), 1);
    es_client_close(&c);

    es_get(f->px.port, "/fine", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /fine\n");
    es_response_dispose(&r);

    es_proxy_stop(&f->px);
}

static void test_client_connection_close(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /bye\n");
    const char *conn = es_response_header(&r, "connection");
    assert_non_null(conn);
    assert_non_null(strcasestr(conn, "close"));
    es_response_dispose(&r);
    assert_int_equal(es_client_wait_closed(&c, 5000), 1);
    es_client_close(&c);

    /* The client's close did not close the upstream connection: the next client reuses it. */
    es_get(f->px.port, "/again", &r);
    assert_string_equal(es_response_header(&r, "x-upstream-conn"), "1");
    es_response_dispose(&r);
    assert_int_equal(es_upstream_connections(&f->up), 1);

    es_proxy_stop(&f->px);
}

static void test_many_pipelined_requests_in_order(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    /* 50 requests in one write, a slow one and a chunked POST among them. */
    enum { N = 50 };
    size_t cap = 64 * 1024, len = 0;
    char *all = malloc(cap);
    for (int i = 0; i < N; i++) {
        if (i == 1) {
            len += (size_t)snprintf(all + len, cap - len, "GET /delay?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n");
        } else if (i == 25) {
            len += (size_t)snprintf(all + len, cap - len,
                                    "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "4\r\nwxyz\r\n0\r\n\r\n");
        } else {
            len += (size_t)snprintf(all + len, cap - len, "GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        }
    }
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_send(&c, all, len);
    free(all);
    for (int i = 0; i < N; i++) {
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        if (i == 1) {
            assert_string_equal(r.body, "upstream ok GET /delay\n");
        } else if (i == 25) {
            assert_non_null(strstr(r.body, "len=4 "));
        } else {
            expect_body(&r, "upstream ok GET /p%d\n", i);
        }
        es_response_dispose(&r);
    }
    es_client_close(&c);
    assert_int_equal(es_upstream_requests(&f->up), N);

    es_proxy_stop(&f->px);
}

static void test_nothing_answered_after_pipelined_close(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                        "GET /never HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /first\n");
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_string_equal(r.body, "upstream ok GET /last\n");
    es_response_dispose(&r);
    /* After the response to the request that said close, the connection ends: /never is not answered. */
    assert_int_equal(es_client_wait_closed(&c, 5000), 1);
    es_client_close(&c);
    assert_int_equal(es_upstream_requests(&f->up), 2);

    es_proxy_stop(&f->px);
}

static void test_keepalive_across_direct_responses_and_404(void **state) {
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
                   "      - match: { prefix: /hello }\n"
                   "        direct_response: { status: 200, body: \"hello\\n\" }\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    static const char *const paths[] = { "/hello", "/nothing-here", "/api/x", "/hello", "/api/y" };
    static const int want[] = { 200, 404, 200, 200, 200 };
    for (int i = 0; i < 5; i++) {
        es_client_sendf(&c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i]);
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, want[i]);
        assert_false(r.eof_delimited);
        es_response_dispose(&r);
    }
    es_client_close(&c);
    assert_int_equal(es_upstream_connections(&f->up), 1);
    assert_int_equal(es_upstream_requests(&f->up), 2);

    es_proxy_stop(&f->px);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_client_many_requests_one_upstream_connection, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_interleaved_clients_share_one_upstream_connection, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_connection_close_is_not_reused, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_closing_idle_connection, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reused_connection_reset_retries_get, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_idle_close_races_are_retried, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reused_connection_reset_put_with_body_is_503, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reused_connection_reset_post_is_503, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_client_connection_close, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_many_pipelined_requests_in_order, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_nothing_answered_after_pipelined_close, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_across_direct_responses_and_404, es_fixture_setup,
                                        es_fixture_teardown),
    };
    return cmocka_run_group_tests_name("proxy_keepalive", tests, NULL, NULL);
}

/*
 * Connections done right (DESIGN.md): the request header deadline, keep-alive idle and whole-request
 * timeouts, answers made before the request is read (408, 413, 431, a filter's reply) closing cleanly
 * with a drain instead of a reset, an immediate close when the request was read, and the upstream
 * pool's own idle timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define MiB (1024ull * 1024)

/* A listener "main" on an ephemeral port: `extra` (listener keys, indented 4) and `filters` (an
 * http_filters block or ""), /stats answering the counters, everything else to the fixture upstream,
 * and `cluster_extra` under the cluster. */
static void start(es_fixture_t *f, const char *extra, const char *filters, const char *cluster_extra)
{
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "%s"
                   "%s"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "%s",
                   extra, filters, f->up.port, cluster_extra);
}

static int connect_nonblocking(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) fail_msg("connect: %s", strerror(errno));
    return fd;
}

/* After the response was read: the proxy's close is a FIN (EOF), never a reset. Returns ms waited. */
static void expect_clean_eof(es_client_t *c, int timeout_ms, const char *what)
{
    assert_true(c->off == c->len); /* nothing beyond the response */
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    if (poll(&pfd, 1, timeout_ms) != 1) fail_msg("%s: the connection stayed open", what);
    char b[4096];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    if (n < 0) fail_msg("%s: the connection was reset (%s), not closed", what, strerror(errno));
    if (n > 0) fail_msg("%s: %zd unexpected bytes after the response", what, n);
}

/* ---- the header deadline, under load ------------------------------------------------------ */

typedef struct {
    uint16_t port;
    atomic_int stop;
    unsigned long ok, bad;
    uint64_t worst_ms;
} load_t;

/* Normal keep-alive traffic beside the slow clients: every response must be right, and quick. */
static void *run_load(void *arg)
{
    load_t *l = arg;
    es_client_t c;
    if (es_try_client_connect(&c, l->port) != 0) {
        l->bad++;
        return NULL;
    }
    for (unsigned i = 0; !atomic_load(&l->stop); i++) {
        char req[96];
        int n = snprintf(req, sizeof req, "GET /load/%u HTTP/1.1\r\nHost: t\r\n\r\n", i);
        uint64_t t0 = es_now_ms();
        es_response_t r;
        if (es_try_client_send(&c, req, (size_t)n) != 0 || es_try_client_read(&c, &r, NULL) != 0) {
            l->bad++;
            break;
        }
        char want[64];
        snprintf(want, sizeof want, "upstream ok GET /load/%u\n", i);
        if (r.status == 200 && strcmp(r.body, want) == 0)
            l->ok++;
        else
            l->bad++;
        es_response_dispose(&r);
        uint64_t dt = es_now_ms() - t0;
        if (dt > l->worst_ms) l->worst_ms = dt;
    }
    es_client_close(&c);
    return NULL;
}

enum { SLOW = 200, SILENT = 10 };

typedef struct {
    int fd;
    uint64_t t0, closed_at;
    size_t sent;
    char got[512];
    size_t got_len;
    int reset;
} slow_t;

static void test_slow_drip_clients_closed_at_header_timeout(void **state)
{
    es_fixture_t *f = *state;
    start(f, "    request_headers_timeout: 1s\n    idle_timeout: 2s\n", "", "");

    load_t load = { .port = f->px.port };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_load, &load), 0);

    /* An idle keep-alive connection: one request, then nothing. The header deadline is not its concern. */
    es_client_t idle;
    es_client_connect(&idle, f->px.port);
    es_client_sendf(&idle, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&idle, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    uint64_t idle_since = es_now_ms();

    /* The slow clients drip a request head a byte every 50 ms; it would take seconds to complete. Some
     * say nothing at all. */
    static const char head[] = "GET /slow HTTP/1.1\r\nHost: t\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    slow_t *s = calloc(SLOW + SILENT, sizeof *s);
    for (int i = 0; i < SLOW + SILENT; i++) {
        s[i].t0 = es_now_ms();
        s[i].fd = connect_nonblocking(f->px.port);
    }
    struct pollfd *pfd = calloc(SLOW + SILENT, sizeof *pfd);
    int open_left = SLOW + SILENT;
    uint64_t next_drip = es_now_ms() + 50;
    while (open_left > 0) {
        uint64_t now = es_now_ms();
        if (now >= next_drip) {
            for (int i = 0; i < SLOW; i++)
                if (s[i].closed_at == 0 && s[i].sent < sizeof head - 5 &&
                    send(s[i].fd, head + s[i].sent, 1, MSG_NOSIGNAL) == 1)
                    s[i].sent++;
            next_drip = now + 50;
        }
        if (now > s[0].t0 + 5000) break;
        int n = 0;
        for (int i = 0; i < SLOW + SILENT; i++)
            if (s[i].closed_at == 0) pfd[n++] = (struct pollfd){ .fd = s[i].fd, .events = POLLIN };
        int wait = next_drip > now ? (int)(next_drip - now) : 0;
        if (poll(pfd, (nfds_t)n, wait) <= 0) continue;
        now = es_now_ms();
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            slow_t *c = NULL;
            for (int i = 0; i < SLOW + SILENT; i++)
                if (s[i].fd == pfd[k].fd) c = &s[i];
            char b[512];
            ssize_t got = recv(c->fd, b, sizeof b, 0);
            if (got > 0) {
                size_t room = sizeof c->got - 1 - c->got_len;
                size_t take = (size_t)got < room ? (size_t)got : room;
                memcpy(c->got + c->got_len, b, take);
                c->got_len += take;
                continue;
            }
            if (got < 0 && errno == EAGAIN) continue;
            c->reset = got < 0;
            c->closed_at = now;
            open_left--;
        }
    }

    /* The idle keep-alive connection outlived the header deadline; it goes at its idle timeout. */
    uint64_t now = es_now_ms();
    if (now < idle_since + 1300) usleep((useconds_t)(idle_since + 1300 - now) * 1000);
    struct pollfd ip = { .fd = idle.fd, .events = POLLIN };
    if (poll(&ip, 1, 0) != 0) fail_msg("the idle keep-alive connection was closed by the header deadline");
    assert_int_equal(es_client_wait_closed(&idle, 3000), 1);
    uint64_t idle_closed_ms = es_now_ms() - idle_since;
    es_client_close(&idle);

    atomic_store(&load.stop, 1);
    pthread_join(th, NULL);

    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < SLOW + SILENT; i++) {
        if (s[i].closed_at == 0) fail_msg("slow client %d was never closed", i);
        uint64_t dt = s[i].closed_at - s[i].t0;
        if (dt < lo) lo = dt;
        if (dt > hi) hi = dt;
        if (dt < 1000 || dt > 1050) fail_msg("client %d (%s) closed after %" PRIu64 " ms, not within 1000-1050", i,
                                             i < SLOW ? "dripping" : "silent", dt);
        if (s[i].reset) fail_msg("client %d saw a reset", i);
        s[i].got[s[i].got_len] = 0;
        if (i < SLOW) {
            /* It had begun a request: it is told why (408) and that the connection ends. */
            if (strncmp(s[i].got, "HTTP/1.1 408 ", 13) != 0 || strstr(s[i].got, "connection: close\r\n") == NULL)
                fail_msg("dripping client %d got \"%s\"", i, s[i].got);
        } else if (s[i].got_len != 0) {
            fail_msg("silent client %d got \"%s\"", i, s[i].got); /* nothing began: nothing to answer */
        }
        close(s[i].fd);
    }
    print_message("slow clients closed after %" PRIu64 "-%" PRIu64 " ms; idle connection closed after %" PRIu64
                  " ms; normal traffic: %lu ok, %lu bad, slowest %" PRIu64 " ms\n",
                  lo, hi, idle_closed_ms, load.ok, load.bad, load.worst_ms);
    free(s);
    free(pfd);
    if (idle_closed_ms < 2000 || idle_closed_ms > 2150) fail_msg("idle connection closed after %" PRIu64 " ms, want ~2000", idle_closed_ms);
    assert_int_equal(load.bad, 0);
    assert_true(load.ok > 20);
    assert_true(load.worst_ms < 500);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.header_timeouts"), SLOW + SILENT);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.idle_timeouts"), 1);

    es_proxy_stop(&f->px);
}

/* ---- request_timeout ---------------------------------------------------------------------- */

static void test_request_timeout_504_and_408(void **state)
{
    es_fixture_t *f = *state;
    start(f, "    request_timeout: 400ms\n", "", "");

    /* The upstream is too slow: 504 at the deadline, and the connection closes at once (it was read). */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    uint64_t t0 = es_now_ms();
    es_client_sendf(&c, "GET /delay?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    uint64_t dt = es_now_ms() - t0;
    assert_int_equal(r.status, 504);
    assert_string_equal(r.body, "upstream request timeout\n");
    assert_string_equal(es_response_header(&r, "connection"), "close");
    es_response_dispose(&r);
    if (dt < 400 || dt > 600) fail_msg("504 after %" PRIu64 " ms, want 400", dt);
    expect_clean_eof(&c, 200, "after the 504");
    es_client_close(&c);

    /* The client is too slow with its body: 408, Connection: close, and the rest of the upload is
     * drained, so the client reads the answer without a reset. */
    es_client_connect(&c, f->px.port);
    t0 = es_now_ms();
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n0123456789");
    struct pollfd pfd = { .fd = c.fd, .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 3000), 1);
    dt = es_now_ms() - t0;
    es_client_send_pattern(&c, 10, 100000 - 10, 0, 16384);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 408);
    assert_string_equal(es_response_header(&r, "connection"), "close");
    es_response_dispose(&r);
    if (dt < 400 || dt > 600) fail_msg("408 after %" PRIu64 " ms, want 400", dt);
    expect_clean_eof(&c, 2000, "after the 408");
    es_client_close(&c);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.request_timeouts"), 2);

    es_proxy_stop(&f->px);
}

/* ---- answers before the request is read ---------------------------------------------------- */

enum { UPLOADS = 100, UPLOADERS = 5 };

typedef struct {
    uint16_t port;
    int first, count;
    char error[512];
} uploader_t;

static void *run_uploads(void *arg)
{
    uploader_t *u = arg;
    for (int i = u->first; i < u->first + u->count && !u->error[0]; i++) {
        int chunked = i % 2;
        es_client_t c;
        if (es_try_client_connect(&c, u->port) != 0) {
            snprintf(u->error, sizeof u->error, "upload %d: connect: %.200s", i, c.error);
            break;
        }
        char head[160];
        int n = chunked ? snprintf(head, sizeof head, "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                        : snprintf(head, sizeof head, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %llu\r\n\r\n",
                                   8 * MiB);
        /* Every byte of the upload goes out (a send error here is the reset the drain must prevent). */
        static char block[256 * 1024];
        int failed = es_try_client_send(&c, head, (size_t)n) != 0;
        for (uint64_t off = 0; !failed && off < 8 * MiB; off += sizeof block) {
            if (chunked) {
                char line[32];
                int ln = snprintf(line, sizeof line, "%zx\r\n", sizeof block);
                failed = es_try_client_send(&c, line, (size_t)ln) != 0;
            }
            failed = failed || es_try_client_send(&c, block, sizeof block) != 0 ||
                     (chunked && es_try_client_send(&c, "\r\n", 2) != 0);
        }
        if (!failed && chunked) failed = es_try_client_send(&c, "0\r\n\r\n", 5) != 0;
        if (failed) {
            snprintf(u->error, sizeof u->error, "upload %d (%s): sending: %.200s", i, chunked ? "chunked" : "length", c.error);
            es_client_close(&c);
            break;
        }
        es_response_t r;
        if (es_try_client_read(&c, &r, NULL) != 0) {
            snprintf(u->error, sizeof u->error, "upload %d: reading the response: %.200s", i, c.error);
        } else if (r.status != 413 || strcmp(r.body, "request body too large\n") != 0 ||
                   es_response_header(&r, "connection") == NULL || strcmp(es_response_header(&r, "connection"), "close")) {
            snprintf(u->error, sizeof u->error, "upload %d: got %d \"%s\"", i, r.status, r.body);
        } else {
            struct pollfd pfd = { .fd = c.fd, .events = POLLIN };
            char b[64];
            ssize_t got = poll(&pfd, 1, 3000) == 1 ? recv(c.fd, b, sizeof b, 0) : -2;
            if (got != 0) snprintf(u->error, sizeof u->error, "upload %d: after the 413: %s", i,
                                   got == -2 ? "still open" : got < 0 ? strerror(errno) : "more bytes");
        }
        if (r.status) es_response_dispose(&r);
        es_client_close(&c);
    }
    return NULL;
}

static void test_body_over_limit_is_413_without_reset(void **state)
{
    es_fixture_t *f = *state;
    char filters[1024];
    snprintf(filters, sizeof filters,
             "    buffer_limits: { max_body: 1MiB }\n"
             "    http_filters:\n"
             "      - name: buffer\n"
             "        so_path: %s\n"
             "        plugin_name: request_buffer\n",
             es_swift_filter_lib());
    start(f, "", filters, "");

    /* Under the limit the filter holds the body and the upstream gets it whole. */
    es_upload_pattern(f->px.port, 512 * 1024, 1, 65536);

    uint64_t t0 = es_now_ms();
    uploader_t u[UPLOADERS];
    pthread_t th[UPLOADERS];
    for (int i = 0; i < UPLOADERS; i++) {
        u[i] = (uploader_t){ .port = f->px.port, .first = i * (UPLOADS / UPLOADERS), .count = UPLOADS / UPLOADERS };
        assert_int_equal(pthread_create(&th[i], NULL, run_uploads, &u[i]), 0);
    }
    for (int i = 0; i < UPLOADERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < UPLOADERS; i++)
        if (u[i].error[0]) fail_msg("%s", u[i].error);
    print_message("%d uploads of 8 MiB, each a complete 413 and a clean close, in %" PRIu64 " ms\n", UPLOADS,
                  es_now_ms() - t0);
    assert_int_equal(es_upstream_requests(&f->up), 1); /* only the upload under the limit */
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.rq_413"), UPLOADS);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.delayed_close_timeouts"), 0);

    es_proxy_stop(&f->px);
}

static void test_filter_reply_mid_upload_drains(void **state)
{
    es_fixture_t *f = *state;
    char filters[1024];
    snprintf(filters, sizeof filters,
             "    http_filters:\n"
             "      - name: auth\n"
             "        so_path: %s\n"
             "        plugin_name: bearer_auth\n"
             "        plugin_config: { token: s3cret }\n",
             es_swift_filter_lib());
    start(f, "", filters, "");

    /* The filter answers 401 from the headers; the client is still sending 4 MiB. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %llu\r\n\r\n", 4 * MiB);
    es_client_send_pattern(&c, 0, 4 * MiB, 0, 65536);
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(es_response_header(&r, "connection"), "close");
    es_response_dispose(&r);
    expect_clean_eof(&c, 2000, "after the filter's 401");
    es_client_close(&c);
    assert_int_equal(es_upstream_requests(&f->up), 0);

    es_proxy_stop(&f->px);
}

static void test_read_request_closes_at_once(void **state)
{
    es_fixture_t *f = *state;
    start(f, "", "", "");

    /* The request was read whole: the close follows the response at once, not after a delay. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(es_response_header(&r, "connection"), "close");
    es_response_dispose(&r);
    uint64_t t0 = es_now_ms();
    expect_clean_eof(&c, 2000, "after Connection: close");
    uint64_t dt = es_now_ms() - t0;
    es_client_close(&c);
    if (dt > 100) fail_msg("closed %" PRIu64 " ms after the response; want at once", dt);

    es_proxy_stop(&f->px);
}

static void test_head_too_large_is_431(void **state)
{
    es_fixture_t *f = *state;
    start(f, "    max_request_headers_kb: 2\n", "", "");

    /* Just under the limit passes. */
    char big[4096];
    memset(big, 'a', sizeof big);
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: %.*s\r\n\r\n", 1900, big);
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    es_client_close(&c);

    /* Over it: 431, Connection: close, and a client still sending its body reads it without a reset. */
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nX-Big: %.*s\r\nContent-Length: %llu\r\n\r\n", 2100, big,
                    2 * MiB);
    es_client_send_pattern(&c, 0, 2 * MiB, 0, 65536);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 431);
    assert_string_equal(es_response_header(&r, "connection"), "close");
    es_response_dispose(&r);
    expect_clean_eof(&c, 2000, "after the 431");
    es_client_close(&c);
    assert_int_equal(es_upstream_requests(&f->up), 1);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.rq_431"), 1);

    es_proxy_stop(&f->px);
}

/* ---- the upstream pool's idle timeout ----------------------------------------------------- */

static void test_upstream_idle_timeout(void **state)
{
    es_fixture_t *f = *state;
    start(f, "", "", "    idle_timeout: 300ms\n");

    es_client_t c;
    es_client_connect(&c, f->px.port);
    const char *want_conn[] = { "1", "1", "2" };
    const int pause_ms[] = { 0, 100, 600 };
    for (int i = 0; i < 3; i++) {
        usleep((useconds_t)pause_ms[i] * 1000);
        es_client_sendf(&c, "GET /n%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        /* Reused within the idle timeout; after it, the pool had closed the connection. */
        if (strcmp(es_response_header(&r, "x-upstream-conn"), want_conn[i]) != 0)
            fail_msg("request %d went on upstream connection %s, want %s", i, es_response_header(&r, "x-upstream-conn"),
                     want_conn[i]);
        es_response_dispose(&r);
    }
    es_client_close(&c);
    assert_int_equal(es_stat(f->px.port, "/stats", "upstream.idle_closed"), 1);
    assert_int_equal(es_stat(f->px.port, "/stats", "upstream.retries"), 0);

    es_proxy_stop(&f->px);
}

/* A response made while the request is being parsed (the /stats route here, like any direct
 * response or a filter's reply) leaves the connection idle too: the idle timeout governs it, not
 * the header deadline. */
static void test_idle_after_a_proxy_answer(void **state)
{
    es_fixture_t *f = *state;
    start(f, "    request_headers_timeout: 300ms\n    idle_timeout: 1500ms\n", "", "");
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    uint64_t t0 = es_now_ms();
    if (es_client_wait_closed(&c, 800) != 0) fail_msg("closed %" PRIu64 " ms after a direct answer: the header deadline, not the idle timeout", es_now_ms() - t0);
    assert_int_equal(es_client_wait_closed(&c, 3000), 1);
    uint64_t dt = es_now_ms() - t0;
    es_client_close(&c);
    /* t0 is when this client had read the answer, a little after the proxy wrote it and armed the timer. */
    if (dt < 1490 || dt > 1650) fail_msg("closed %" PRIu64 " ms after the answer, want 1500", dt);
    es_proxy_stop(&f->px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_drip_clients_closed_at_header_timeout, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout_504_and_408, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit_is_413_without_reset, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filter_reply_mid_upload_drains, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_read_request_closes_at_once, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_head_too_large_is_431, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_idle_timeout, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_idle_after_a_proxy_answer, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests_name("proxy_connections", tests, NULL, NULL);
}

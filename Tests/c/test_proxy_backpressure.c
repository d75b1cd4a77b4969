/*
 * Bodies are streamed with back-pressure, never buffered whole: a client that stops reading a large
 * download makes the proxy stop reading the upstream, and an upstream that stops reading a large
 * upload makes the proxy stop reading the client. Either way the proxy's memory stays bounded, and
 * once both ends move again every byte arrives intact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

#define MiB (UINT64_C(1) << 20)
#define BODY (256 * MiB)
#define GROWTH_LIMIT_KB (64 * 1024)     /* the proxy may hold a few watermarks of body, not the body */

static void warm_up(uint16_t port) {
    es_response_t r;
    es_get(port, "/bytes?n=1048576", &r);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    es_roundtrip(port, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
}

static void test_slow_client_download_is_bounded(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    warm_up(f->px.port);
    long before = es_proc_status_kb(f->px.pid, "VmRSS");
    assert_true(before > 0);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    unsigned long long base = atomic_load(&f->up.bytes_out);
    es_client_sendf(&c, "GET /bytes?n=%" PRIu64 " HTTP/1.1\r\nHost: t\r\n\r\n", BODY);

    /* The client reads nothing: the upstream must end up blocked, far short of the whole body. */
    unsigned long long sent = es_wait_stalled(&f->up.bytes_out, base + BODY) - base;
    long peak = es_proc_status_kb(f->px.pid, "VmHWM");
    if (sent >= BODY) {
        fail_msg("the upstream sent all %" PRIu64 " bytes to a client that read none: the proxy buffered the "
                 "download (its peak RSS grew by %ld KiB)", BODY, peak - before);
    }
    if (peak - before > GROWTH_LIMIT_KB) {
        fail_msg("the proxy's RSS grew by %ld KiB while holding a download for a client that did not read",
                 peak - before);
    }

    /* Now read it all: every byte arrives. */
    es_response_t r;
    es_client_read(&c, &r, &(es_read_opts_t){ .keep = 1 });
    assert_int_equal(r.status, 200);
    assert_true(r.body_total == BODY);
    assert_true(r.body_fnv == es_pattern_fnv(BODY));
    es_response_dispose(&r);
    es_client_close(&c);

    es_proxy_stop(&f->px);
}

typedef struct {
    int fd;
    uint64_t len;
    atomic_ullong sent;
    int err;                            /* errno of a failed send, 0 if all went */
} sender_t;

/* Sends the pattern on a raw socket (no cmocka off the main thread). */
static void *send_body(void *arg) {
    sender_t *s = arg;
    static unsigned char buf[65536 + 256];
    es_pattern_fill(buf, 0, sizeof buf);
    uint64_t done = 0;
    while (done < s->len) {
        size_t n = s->len - done < 65536 ? (size_t)(s->len - done) : 65536;
        ssize_t k = send(s->fd, buf + (done & 0xff), n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            s->err = errno;
            return NULL;
        }
        done += (uint64_t)k;
        atomic_store(&s->sent, done);
    }
    return NULL;
}

static int upstream_holding(void *arg) {
    es_upstream_t *u = arg;
    return atomic_load(&u->holding) > 0;
}

static void test_slow_upstream_upload_is_bounded(void **state) {
    es_fixture_t *f = *state;
    es_proxy_start_backend(&f->px, 1, f->up.port);
    warm_up(f->px.port);
    long before = es_proc_status_kb(f->px.pid, "VmRSS");
    assert_true(before > 0);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "POST /sink?hold=1 HTTP/1.1\r\nHost: t\r\nContent-Length: %" PRIu64 "\r\n\r\n", BODY);
    /* The upstream has the request head and reads nothing more until released. */
    if (!es_poll_until(upstream_holding, &f->up, 10000)) fail_msg("the request head never reached the upstream");

    sender_t s = { .fd = c.fd, .len = BODY };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_body, &s), 0);
    unsigned long long sent = es_wait_stalled(&s.sent, BODY);
    long peak = es_proc_status_kb(f->px.pid, "VmHWM");
    es_upstream_release(&f->up);
    pthread_join(t, NULL);

    if (sent >= BODY) {
        fail_msg("the client sent all %" PRIu64 " bytes to an upstream that read none: the proxy buffered the "
                 "upload (its peak RSS grew by %ld KiB)", BODY, peak - before);
    }
    if (peak - before > GROWTH_LIMIT_KB) {
        fail_msg("the proxy's RSS grew by %ld KiB while holding an upload for an upstream that did not read",
                 peak - before);
    }
    if (s.err != 0) fail_msg("sending the body failed after the upstream was released: %s", strerror(s.err));

    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "len=%" PRIu64 " fnv=%016" PRIx64 "\n", BODY, es_pattern_fnv(BODY));
    assert_string_equal(r.body, want);
    es_response_dispose(&r);
    es_client_close(&c);

    es_proxy_stop(&f->px);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_client_download_is_bounded, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_slow_upstream_upload_is_bounded, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests_name("proxy_backpressure", tests, NULL, NULL);
}

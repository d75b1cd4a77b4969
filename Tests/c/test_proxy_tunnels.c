/*
 * Tunnels through the proxy, with real clients over real sockets: WebSocket upgrades (the `websockets` library
 * on both ends, Tests/py/ws_server.py and ws_client.py: a 16 MiB message echoed, ping/pong, close codes),
 * `upgrades: []` (no 101, the upstream's own answer), a filter refusing an upgrade with a local reply, CONNECT
 * refused (403) and allowed (bytes echoed by a TCP server on a thread of this test), an unreachable cluster
 * (503), the tunnel idle timeout, back-pressure both ways, either side's close, and a drain with a tunnel open.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

#define MiB (UINT64_C(1) << 20)
#define FLOOD (256 * MiB)
#define IN_FLIGHT_LIMIT (32 * MiB)      /* kernel buffers on both sides (about 8 MiB here) and a few watermarks */
#define GROWTH_LIMIT_KB (64 * 1024)

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static const char *build_dir(void)
{
    const char *b = getenv("ES_BUILD");
    return b != NULL && *b ? b : "build";
}

/* ---- a TCP server on a thread: echo, flood, or hold (never reads) ---------------------------- */

enum { ECHO = 0, FLOOD_MODE = 1, HOLD = 2 };

typedef struct {
    int mode;
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    atomic_int stop;
    atomic_int accepted;
    atomic_int eofs;               /* connections whose peer (the proxy) closed */
    atomic_ullong sent;            /* FLOOD: bytes sent */
} tcp_server_t;

/* Waits for fd to be ready for `events` (50 ms at a time, watching stop). 1 ready, 0 stopped. */
static int wait_fd(tcp_server_t *s, int fd, short events)
{
    while (!atomic_load(&s->stop)) {
        struct pollfd p = { .fd = fd, .events = events };
        if (poll(&p, 1, 50) > 0)
            return 1;
    }
    return 0;
}

static void serve_echo(tcp_server_t *s, int fd)
{
    char buf[65536];
    for (;;) {
        if (!wait_fd(s, fd, POLLIN))
            return;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            atomic_fetch_add(&s->eofs, 1);
            return;
        }
        /* "QUIT" at the end of a read: say bye and close first (the upstream ends the tunnel). */
        if (n >= 4 && memcmp(buf + n - 4, "QUIT", 4) == 0) {
            send(fd, "bye\n", 4, MSG_NOSIGNAL);
            return;
        }
        for (ssize_t off = 0; off < n;) {
            if (!wait_fd(s, fd, POLLOUT))
                return;
            ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN)
                return;
            if (w > 0)
                off += w;
        }
    }
}

static void serve_flood(tcp_server_t *s, int fd)
{
    static char block[65536];
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (char)(i * 31 + 7);
    while (atomic_load(&s->sent) < FLOOD) {
        if (!wait_fd(s, fd, POLLOUT))
            return;
        ssize_t w = send(fd, block, sizeof block, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN)
            return;
        if (w > 0)
            atomic_fetch_add(&s->sent, (unsigned long long)w);
    }
}

static void *tcp_server_main(void *arg)
{
    tcp_server_t *s = arg;
    while (wait_fd(s, s->listen_fd, POLLIN)) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        atomic_fetch_add(&s->accepted, 1);
        if (s->mode == ECHO)
            serve_echo(s, fd);
        else if (s->mode == FLOOD_MODE)
            serve_flood(s, fd);
        else
            wait_fd(s, s->listen_fd, 0); /* HOLD: reads nothing until stopped */
        close(fd);
    }
    return NULL;
}

static void tcp_server_start(tcp_server_t *s, int mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, tcp_server_main, s), 0);
}

static void tcp_server_stop(tcp_server_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

/* ---- the Python WebSocket tools --------------------------------------------------------------- */

static pid_t ws_server_pid;

/* Starts Tests/py/ws_server.py --port 0 and returns its port. */
static uint16_t ws_server_start(void)
{
    char py[700], script[700];
    snprintf(py, sizeof py, "%s/venv/bin/python", build_dir());
    snprintf(script, sizeof script, "%s/../Tests/py/ws_server.py", build_dir());
    if (access(py, X_OK) != 0)
        fail_msg("%s is missing: run scripts/py-deps.sh (make test-c does)", py);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    const char *argv[] = { py, script, "--port", "0", NULL };
    int err = posix_spawn(&ws_server_pid, py, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    assert_int_equal(err, 0);
    char line[128] = "";
    size_t n = 0;
    uint64_t deadline = es_now_ms() + 20000;
    while (n + 1 < sizeof line && es_now_ms() < deadline && strchr(line, '\n') == NULL) {
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fds[0], line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        line[n] = 0;
    }
    close(fds[0]);
    unsigned port = 0;
    if (sscanf(line, "port=%u", &port) != 1 || port == 0)
        fail_msg("ws_server.py did not say its port: \"%s\"", line);
    return (uint16_t)port;
}

static void ws_server_stop(void)
{
    if (ws_server_pid > 0) {
        kill(ws_server_pid, SIGTERM);
        waitpid(ws_server_pid, NULL, 0);
        ws_server_pid = 0;
    }
}

/* Runs Tests/py/ws_client.py URL ARGS; returns its exit status, its output (stdout + stderr) in out. */
static int ws_client(char *out, size_t outlen, uint16_t port, const char *path, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/venv/bin/python %s/../Tests/py/ws_client.py ws://127.0.0.1:%u%s %s 2>&1",
             build_dir(), build_dir(), port, path, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = 0;
    while (n + 1 < outlen) {
        size_t r = fread(out + n, 1, outlen - 1 - n, p);
        if (r == 0)
            break;
        n += r;
    }
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The value of "key=value" in ws_client's output (static buffer), or "" when absent. */
static const char *kv(const char *out, const char *key)
{
    static char v[256];
    size_t klen = strlen(key);
    v[0] = 0;
    for (const char *at = out; at != NULL && *at; at = strchr(at, '\n'), at = at ? at + 1 : NULL) {
        if (strncmp(at, key, klen) == 0 && at[klen] == '=') {
            size_t i = 0;
            for (at += klen + 1; *at && *at != '\n' && i + 1 < sizeof v; at++)
                v[i++] = *at;
            v[i] = 0;
            break;
        }
    }
    return v;
}

/* ---- the proxy ------------------------------------------------------------------------------- */

/*
 * Routes by Host: tunnel.test, flood.test, hold.test -> the TCP servers (connect: {}); dead.test -> a closed port
 * (connect: {}); plain.test -> the fixture's HTTP upstream; plain-off.test -> the same with upgrades: [];
 * /off -> the WebSocket server with upgrades: []; /stats; anything else -> the WebSocket server (upgrades on,
 * CONNECT not allowed).
 */
static void start_proxy(es_fixture_t *f, uint16_t ws_port, uint16_t tcp_port, const char *extra, const char *filters)
{
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "drain_timeout: 1500ms\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n%s%s"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "      - match: { prefix: /, host: tunnel.test }\n"
                   "        cluster: tcp\n"
                   "        connect: {}\n"
                   "      - match: { prefix: /, host: dead.test }\n"
                   "        cluster: dead\n"
                   "        connect: {}\n"
                   "      - match: { prefix: /, host: plain.test }\n"
                   "        cluster: backend\n"
                   "      - match: { prefix: /, host: plain-off.test }\n"
                   "        cluster: backend\n"
                   "        upgrades: []\n"
                   "      - match: { prefix: /off }\n"
                   "        cluster: ws\n"
                   "        upgrades: []\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: ws\n"
                   "        upgrades: [websocket]\n"
                   "clusters:\n"
                   "  - name: ws\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "  - name: tcp\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "  - name: dead\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   extra != NULL ? extra : "", filters != NULL ? filters : "", ws_port, tcp_port, es_closed_port(),
                   f->up.port);
}

static int setup(void **state)
{
    es_fixture_setup(state);
    ws_server_pid = 0;
    return 0;
}

static int teardown(void **state)
{
    ws_server_stop();
    return es_fixture_teardown(state);
}

/* Reads exactly n bytes (the client's own buffered bytes first); returns how many arrived before EOF. */
static size_t read_exact(es_client_t *c, char *out, size_t n)
{
    size_t got = 0;
    size_t have = c->len - c->off;
    if (have > 0) {
        size_t k = have < n ? have : n;
        memcpy(out, c->buf + c->off, k);
        c->off += k;
        got = k;
    }
    while (got < n) {
        ssize_t r = recv(c->fd, out + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Reads a response head byte by byte (nothing of the tunnel after it), NUL-terminated. */
static void read_head(es_client_t *c, char *head, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        ssize_t r = recv(c->fd, head + n, 1, 0);
        if (r <= 0)
            break;
        n++;
    }
    head[n] = 0;
}

/* CONNECT to `host` on a new client; asserts the 200 and returns with the tunnel open. `early`: bytes sent in
 * the same write as the request head. */
static void open_connect(es_client_t *c, uint16_t port, const char *host, const char *early)
{
    char head[1024];
    es_client_connect(c, port);
    es_client_sendf(c, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n%s", host, host, early != NULL ? early : "");
    read_head(c, head, sizeof head);
    if (strncmp(head, "HTTP/1.1 200 ", 13) != 0)
        fail_msg("CONNECT %s: expected a 200, got \"%s\"", host, head);
    assert_null(strcasestr(head, "content-length"));
    assert_null(strcasestr(head, "transfer-encoding"));
    assert_null(strcasestr(head, "connection: close"));
}

/* ---- WebSocket ------------------------------------------------------------------------------- */

static void test_websocket_16mib_echo_and_ping(void **state)
{
    es_fixture_t *f = *state;
    uint16_t ws = ws_server_start();
    start_proxy(f, ws, es_closed_port(), NULL, NULL);

    static char out[8192];
    int rc = ws_client(out, sizeof out, f->px.port, "/echo", "--size 16777216");
    if (rc != 0)
        fail_msg("ws_client failed:\n%s", out);
    assert_string_equal(kv(out, "echo_bytes"), "16777216");
    char sent[100];
    snprintf(sent, sizeof sent, "%s", kv(out, "sent_sha256"));
    assert_true(strlen(sent) == 64);
    assert_string_equal(kv(out, "echo_sha256"), sent);
    assert_string_not_equal(kv(out, "pong_ms"), "none");
    assert_string_equal(kv(out, "close_code"), "1000");

    /* Text messages and several of them on one tunnel. */
    rc = ws_client(out, sizeof out, f->px.port, "/echo", "--size 70000 --messages 5 --text");
    if (rc != 0)
        fail_msg("ws_client failed:\n%s", out);
    assert_string_equal(kv(out, "echo_bytes"), "350000");

    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.tunnels"), 2);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.upgrades_refused"), 0);
    es_proxy_stop(&f->px);
}

static void test_websocket_close_codes(void **state)
{
    es_fixture_t *f = *state;
    uint16_t ws = ws_server_start();
    start_proxy(f, ws, es_closed_port(), NULL, NULL);

    static char out[8192];
    /* The server closes at once with 4001: the code and reason reach the client through the tunnel. */
    int rc = ws_client(out, sizeof out, f->px.port, "/close/4001", "--messages 0 --no-ping --expect-close 4001");
    if (rc != 0)
        fail_msg("ws_client failed:\n%s", out);
    assert_string_equal(kv(out, "close_code"), "4001");
    assert_string_equal(kv(out, "close_reason"), "closed_by_path");
    /* Echo one message, then the server's close (4002). */
    rc = ws_client(out, sizeof out, f->px.port, "/echo-then-close/4002", "--size 100000 --no-ping --expect-close 4002");
    if (rc != 0)
        fail_msg("ws_client failed:\n%s", out);
    assert_string_equal(kv(out, "echo_bytes"), "100000");
    assert_string_equal(kv(out, "close_code"), "4002");
    /* The client's own close code (4100) reaches the server, which echoes it in its close frame. */
    rc = ws_client(out, sizeof out, f->px.port, "/echo", "--size 10 --close-code 4100");
    if (rc != 0)
        fail_msg("ws_client failed:\n%s", out);
    assert_string_equal(kv(out, "close_code"), "4100");
    es_proxy_stop(&f->px);
}

static void test_upgrades_off_gets_the_upstream_answer(void **state)
{
    es_fixture_t *f = *state;
    uint16_t ws = ws_server_start();
    start_proxy(f, ws, es_closed_port(), NULL, NULL);

    static char out[8192];
    /* upgrades: [] : the request goes without Upgrade, so the WebSocket server refuses it (426): no 101. */
    int rc = ws_client(out, sizeof out, f->px.port, "/off/chat", "--size 10");
    assert_int_not_equal(rc, 0);
    if (strstr(out, "HTTP 426") == NULL)
        fail_msg("expected the upstream's 426, got:\n%s", out);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.upgrades_refused"), 1);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.tunnels"), 0);
    es_proxy_stop(&f->px);
}

/* What goes upstream: Upgrade and Connection: upgrade where upgrades are on (other hop-by-hop fields still
 * dropped); neither where they are off. An answer other than 101 is an ordinary response, and HTTP/1.1 goes on
 * on the same connection. */
static void test_upgrade_headers_forwarded_and_non_101(void **state)
{
    es_fixture_t *f = *state;
    start_proxy(f, es_closed_port(), es_closed_port(), NULL, NULL);

    static const char *const hosts[] = { "plain.test", "plain-off.test" };
    for (int i = 0; i < 2; i++) {
        es_client_t c;
        es_client_connect(&c, f->px.port);
        es_client_sendf(&c, "GET /headers HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                            "Connection: keep-alive, Upgrade\r\nKeep-Alive: timeout=5\r\nSec-WebSocket-Version: 13\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", hosts[i]);
        es_response_t r;
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        char *up = es_head_value(r.body, "upgrade"), *conn = es_head_value(r.body, "connection");
        if (i == 0) {
            assert_non_null(up);
            assert_string_equal(up, "websocket");
            assert_non_null(conn);
            assert_string_equal(conn, "upgrade");
        } else {
            assert_null(up);
            assert_null(conn);
        }
        free(up);
        free(conn);
        assert_int_equal(es_head_count(r.body, "keep-alive"), 0);
        assert_int_equal(es_head_count(r.body, "sec-websocket-key"), 1);
        es_response_dispose(&r);
        /* The 200 was an ordinary answer: the connection carries the next request. */
        es_client_sendf(&c, "GET /next HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "upstream ok GET /next\n");
        es_response_dispose(&r);
        es_client_close(&c);
    }
    /* The fixture's upstream never upgrades; an h2c upgrade is not a WebSocket one: no Upgrade forwarded. */
    es_response_t r;
    es_roundtrip(f->px.port, "GET /headers HTTP/1.1\r\nHost: plain.test\r\nUpgrade: h2c\r\nConnection: Upgrade, "
                             "HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(es_head_count(r.body, "upgrade"), 0);
    assert_int_equal(es_head_count(r.body, "http2-settings"), 0);
    es_response_dispose(&r);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.upgrades_refused"), 1);
    es_proxy_stop(&f->px);
}

/* A WebSocket frame from the client (masked), and the echo back (unmasked), by hand. */
static void ws_frame_roundtrip(es_client_t *c, const char *text)
{
    size_t n = strlen(text);
    assert_true(n < 126);
    unsigned char frame[256] = { 0x81, (unsigned char)(0x80 | n), 1, 2, 3, 4 };
    for (size_t i = 0; i < n; i++)
        frame[6 + i] = (unsigned char)text[i] ^ frame[2 + i % 4];
    es_client_send(c, frame, 6 + n);
    char back[256];
    assert_int_equal(read_exact(c, back, 2 + n), 2 + n);
    assert_int_equal((unsigned char)back[0], 0x81);
    assert_int_equal((unsigned char)back[1], n);
    assert_memory_equal(back + 2, text, n);
}

/* A counter through a listener whose bearer_auth filter wants the token. */
static uint64_t authorized_stat(uint16_t port, const char *name)
{
    es_response_t r;
    es_roundtrip(port, "GET /stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    uint64_t v = es_stat_in(r.body, name);
    es_response_dispose(&r);
    return v;
}

static void test_filter_local_reply_refuses_upgrade(void **state)
{
    es_fixture_t *f = *state;
    uint16_t ws = ws_server_start();
    char *flt = es_swift_filter_yaml("auth", "bearer_auth", "{ token: s3cret, realm: ws }", NULL);
    char filters[2048];
    snprintf(filters, sizeof filters, "    http_filters:\n%s", flt);
    free(flt);
    start_proxy(f, ws, es_closed_port(), NULL, filters);

    /* Without the token: the filter's 401 answers the upgrade, and nothing is tunnelled. */
    static char out[8192];
    int rc = ws_client(out, sizeof out, f->px.port, "/chat", "--size 10");
    assert_int_not_equal(rc, 0);
    if (strstr(out, "HTTP 401") == NULL)
        fail_msg("expected the filter's 401, got:\n%s", out);
    assert_int_equal(authorized_stat(f->px.port, "downstream.tunnels"), 0);

    /* With it: the request header hook lets the upgrade go on, the 101 comes back, frames echo. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /chat HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    char head[2048];
    read_head(&c, head, sizeof head);
    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0)
        fail_msg("expected a 101, got \"%s\"", head);
    assert_non_null(strcasestr(head, "\r\nupgrade: websocket\r\n"));
    assert_non_null(strcasestr(head, "\r\nconnection: upgrade\r\n"));
    assert_non_null(strcasestr(head, "\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_null(strcasestr(head, "content-length"));
    ws_frame_roundtrip(&c, "hello through the tunnel");
    ws_frame_roundtrip(&c, "and again");
    es_client_close(&c);
    assert_int_equal(authorized_stat(f->px.port, "downstream.tunnels"), 1);
    es_proxy_stop(&f->px);
}

/* ---- CONNECT --------------------------------------------------------------------------------- */

static void test_connect_refused_without_connect_route(void **state)
{
    es_fixture_t *f = *state;
    tcp_server_t echo;
    tcp_server_start(&echo, ECHO);
    start_proxy(f, es_closed_port(), echo.port, NULL, NULL);

    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nnot http");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "connect: {}"));
    assert_string_equal(es_response_header(&r, "connection"), "close");
    es_response_dispose(&r);
    assert_int_equal(es_client_wait_closed(&c, 3000), 1);
    es_client_close(&c);
    assert_int_equal(atomic_load(&echo.accepted), 0);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.connect_refused"), 1);
    es_proxy_stop(&f->px);
    tcp_server_stop(&echo);
}

static void test_connect_tunnel_echo_and_closes(void **state)
{
    es_fixture_t *f = *state;
    tcp_server_t echo;
    tcp_server_start(&echo, ECHO);
    start_proxy(f, es_closed_port(), echo.port, NULL, NULL);

    /* Bytes sent right behind the CONNECT head go through the tunnel too. */
    es_client_t c;
    open_connect(&c, f->px.port, "tunnel.test", "early bytes");
    char buf[65536];
    assert_int_equal(read_exact(&c, buf, 11), 11);
    assert_memory_equal(buf, "early bytes", 11);
    /* 1 MiB both ways, in 64 KiB steps. */
    static char chunk[65536];
    for (int i = 0; i < 16; i++) {
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = (char)(k * 7 + (size_t)i);
        es_client_send(&c, chunk, sizeof chunk);
        assert_int_equal(read_exact(&c, buf, sizeof buf), sizeof buf);
        assert_memory_equal(buf, chunk, sizeof chunk);
    }
    /* The upstream ends the tunnel: its last bytes arrive, then the client's side closes. */
    es_client_send(&c, "QUIT", 4);
    assert_int_equal(read_exact(&c, buf, 4), 4);
    assert_memory_equal(buf, "bye\n", 4);
    assert_int_equal(es_client_wait_closed(&c, 3000), 1);
    es_client_close(&c);

    /* The client ends it: the upstream side closes. */
    int eofs = atomic_load(&echo.eofs);
    open_connect(&c, f->px.port, "tunnel.test", NULL);
    es_client_send(&c, "x", 1);
    assert_int_equal(read_exact(&c, buf, 1), 1);
    es_client_close(&c);
    uint64_t deadline = es_now_ms() + 3000;
    while (atomic_load(&echo.eofs) == eofs && es_now_ms() < deadline)
        sleep_ms(10);
    assert_int_equal(atomic_load(&echo.eofs), eofs + 1);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.tunnels"), 2);

    /* An upstream that cannot be reached: 503 before any tunnel, and the connection closes. */
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "CONNECT dead.test:443 HTTP/1.1\r\nHost: dead.test:443\r\n\r\n");
    es_response_t r;
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 503);
    es_response_dispose(&r);
    assert_int_equal(es_client_wait_closed(&c, 3000), 1);
    es_client_close(&c);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.tunnels"), 2);
    es_proxy_stop(&f->px);
    tcp_server_stop(&echo);
}

static void test_tunnel_idle_timeout(void **state)
{
    es_fixture_t *f = *state;
    tcp_server_t echo;
    tcp_server_start(&echo, ECHO);
    start_proxy(f, es_closed_port(), echo.port, "    tunnel_idle_timeout: 600ms\n", NULL);

    es_client_t c;
    open_connect(&c, f->px.port, "tunnel.test", NULL);
    /* Bytes every 200 ms keep it open well past the timeout. */
    char b;
    for (int i = 0; i < 8; i++) {
        sleep_ms(200);
        es_client_send(&c, "k", 1);
        assert_int_equal(read_exact(&c, &b, 1), 1);
    }
    /* Then silence: both sides close within the timeout (and some slack). */
    uint64_t t0 = es_now_ms();
    int eofs = atomic_load(&echo.eofs);
    assert_int_equal(es_client_wait_closed(&c, 5000), 1);
    uint64_t took = es_now_ms() - t0;
    if (took < 550 || took > 2000)
        fail_msg("the idle tunnel closed after %" PRIu64 " ms (tunnel_idle_timeout: 600ms)", took);
    es_client_close(&c);
    uint64_t deadline = es_now_ms() + 3000;
    while (atomic_load(&echo.eofs) == eofs && es_now_ms() < deadline)
        sleep_ms(10);
    assert_int_equal(atomic_load(&echo.eofs), eofs + 1);
    assert_int_equal(es_stat(f->px.port, "/stats", "downstream.tunnel_idle_timeouts"), 1);
    es_proxy_stop(&f->px);
    tcp_server_stop(&echo);
}

/* A client that does not read: the proxy stops reading the upstream (which ends up blocked far short of the
 * flood), its memory stays bounded, and once the upstream closes every byte it sent reaches the client. */
static void test_tunnel_backpressure_slow_client(void **state)
{
    es_fixture_t *f = *state;
    tcp_server_t flood;
    tcp_server_start(&flood, FLOOD_MODE);
    start_proxy(f, es_closed_port(), flood.port, NULL, NULL);
    long before = es_proc_status_kb(f->px.pid, "VmRSS");
    assert_true(before > 0);

    es_client_t c;
    open_connect(&c, f->px.port, "tunnel.test", NULL);
    unsigned long long sent = es_wait_stalled(&flood.sent, FLOOD);
    long peak = es_proc_status_kb(f->px.pid, "VmHWM");
    if (sent >= IN_FLIGHT_LIMIT)
        fail_msg("the upstream sent %llu bytes into a tunnel whose client read none: the proxy buffered them "
                 "(its peak RSS grew by %ld KiB)", sent, peak - before);
    if (peak - before > GROWTH_LIMIT_KB)
        fail_msg("the proxy's RSS grew by %ld KiB for a tunnel whose client did not read", peak - before);
    /* The upstream stops and closes: what it sent is all delivered before the client's side closes. */
    atomic_store(&flood.stop, 1);
    pthread_join(flood.thread, NULL);
    sent = atomic_load(&flood.sent);
    uint64_t got = 0;
    char buf[65536];
    for (ssize_t n; (n = recv(c.fd, buf, sizeof buf, 0)) > 0;)
        got += (uint64_t)n;
    assert_int_equal(got, sent);
    es_client_close(&c);
    es_proxy_stop(&f->px);
    close(flood.listen_fd);
}

/* An upstream that does not read: the proxy stops reading the client, whose sends end up blocked. */
static void test_tunnel_backpressure_slow_upstream(void **state)
{
    es_fixture_t *f = *state;
    tcp_server_t hold;
    tcp_server_start(&hold, HOLD);
    start_proxy(f, es_closed_port(), hold.port, NULL, NULL);
    long before = es_proc_status_kb(f->px.pid, "VmRSS");

    es_client_t c;
    open_connect(&c, f->px.port, "tunnel.test", NULL);
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    static char block[65536];
    uint64_t sent = 0, since = es_now_ms(), deadline = es_now_ms() + 20000;
    while (sent < FLOOD && es_now_ms() - since < 500 && es_now_ms() < deadline) {
        ssize_t w = send(c.fd, block, sizeof block, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (uint64_t)w;
            since = es_now_ms();
        } else {
            sleep_ms(5);
        }
    }
    long peak = es_proc_status_kb(f->px.pid, "VmHWM");
    if (sent >= IN_FLIGHT_LIMIT)
        fail_msg("the client sent %" PRIu64 " bytes into a tunnel whose upstream read none", sent);
    if (peak - before > GROWTH_LIMIT_KB)
        fail_msg("the proxy's RSS grew by %ld KiB for a tunnel whose upstream did not read", peak - before);
    es_client_close(&c);
    es_proxy_stop(&f->px);
    tcp_server_stop(&hold);
}

/* A draining worker leaves a tunnel open (it still carries bytes) until drain_timeout closes it. */
static void test_drain_with_open_tunnel(void **state)
{
    es_fixture_t *f = *state;
    tcp_server_t echo;
    tcp_server_start(&echo, ECHO);
    start_proxy(f, es_closed_port(), echo.port, NULL, NULL);

    es_client_t c;
    open_connect(&c, f->px.port, "tunnel.test", NULL);
    uint64_t t0 = es_now_ms();
    kill(f->px.pid, SIGTERM);
    sleep_ms(300);
    char b;
    es_client_send(&c, "d", 1);
    assert_int_equal(read_exact(&c, &b, 1), 1);
    assert_int_equal(b, 'd');
    assert_int_equal(es_client_wait_closed(&c, 8000), 1);
    uint64_t took = es_now_ms() - t0;
    if (took < 1000)
        fail_msg("the tunnel closed %" PRIu64 " ms into the drain, before drain_timeout (1500ms)", took);
    es_client_close(&c);
    es_proxy_wait_exit(&f->px, 10000);
    tcp_server_stop(&echo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_websocket_16mib_echo_and_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket_close_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrades_off_gets_the_upstream_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_headers_forwarded_and_non_101, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_local_reply_refuses_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused_without_connect_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_tunnel_echo_and_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_backpressure_slow_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_backpressure_slow_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_with_open_tunnel, setup, teardown),
    };
    return cmocka_run_group_tests_name("proxy_tunnels", tests, NULL, NULL);
}

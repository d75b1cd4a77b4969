/*
 * es_h2_session, the server side of HTTP/2, driven in memory: by a real nghttp2 client session (requests,
 * bodies, flow control, responses, trailers, resets, shutdown), and by frames written byte by byte for what
 * a well-behaved client never sends (floods, CONTINUATION runs, streams over the limit, a bad preface).
 * The server's events are logged as text lines and compared whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/h2_session.h"

#define MAX_IDS 512 /* stream ids up to 1023 */

typedef struct {
    int32_t id;
} sstream_t; /* the server side's "caller stream" */

typedef struct {
    es_buf_t head, body, trailers;
    int final_seen, in_trailers; /* a final :status came; the block being read is trailers */
    int closed;
    uint32_t close_code;
    int rst_recv;
    uint32_t rst_code;
} cstream_t; /* what the client saw of one stream */

typedef struct {
    es_h2_session_t s;
    nghttp2_session *c;
    es_buf_t s2c, c2s;
    es_buf_t log;
    int feed_rc;
    uint64_t now;
    int refuse;
    int answer_431;
    int reenter_rc[2];
    size_t data_bytes; /* request body bytes the server was given */
    es_buf_t data;
    sstream_t ss[MAX_IDS];
    cstream_t cs[MAX_IDS];
    int goaways;
    uint32_t goaway_code;
    int32_t goaway_last;
} pair_t;

static pair_t *P;

static void logf_(pair_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(pair_t *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(line));
    assert_int_equal(es_buf_append(&p->log, line, (size_t)n), 0);
}

static const char *log_str(pair_t *p)
{
    es_buf_reserve(&p->log, 1);
    p->log.base[p->log.len] = '\0';
    return p->log.base;
}

static void log_clear(pair_t *p)
{
    p->log.len = 0;
}

static int count_lines(pair_t *p, const char *prefix)
{
    int n = 0;
    const char *l = log_str(p);
    size_t plen = strlen(prefix);
    while (*l) {
        if (strncmp(l, prefix, plen) == 0)
            n++;
        const char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return n;
}

/* ---- the server's callbacks ---- */

static int32_t sid(void *stream)
{
    return ((sstream_t *)stream)->id;
}

static void *srv_open(void *user, int32_t id)
{
    pair_t *p = user;
    if (p->refuse)
        return NULL;
    assert_true(id > 0 && id / 2 < MAX_IDS);
    p->ss[id / 2].id = id;
    logf_(p, "open %d\n", id);
    return &p->ss[id / 2];
}

static int srv_header(void *user, void *st, const char *n, size_t nl, const char *v, size_t vl)
{
    logf_(user, "h %d %.*s=%.*s\n", sid(st), (int)nl, n, (int)vl, v);
    return 0;
}

static int srv_headers_done(void *user, void *st, int end)
{
    pair_t *p = user;
    logf_(p, "done %d end=%d\n", sid(st), end);
    /* No reentry from a callback. */
    p->reenter_rc[0] = es_h2_session_feed(&p->s, (const uint8_t *)"x", 1);
    p->reenter_rc[1] = es_h2_session_flush(&p->s);
    return 0;
}

static void srv_too_large(void *user, void *st)
{
    pair_t *p = user;
    logf_(p, "toolarge %d\n", sid(st));
    if (p->answer_431)
        assert_int_equal(es_h2_session_respond(&p->s, sid(st), 431, NULL, 0, ES_H2_END_STREAM), 0);
}

static int srv_trailer(void *user, void *st, const char *n, size_t nl, const char *v, size_t vl)
{
    logf_(user, "tr %d %.*s=%.*s\n", sid(st), (int)nl, n, (int)vl, v);
    return 0;
}

static int srv_trailers_done(void *user, void *st)
{
    logf_(user, "trdone %d\n", sid(st));
    return 0;
}

static int srv_data(void *user, void *st, const uint8_t *d, size_t len)
{
    pair_t *p = user;
    p->data_bytes += len;
    assert_int_equal(es_buf_append(&p->data, d, len), 0);
    return 0;
}

static int srv_request_end(void *user, void *st)
{
    logf_(user, "end %d\n", sid(st));
    return 0;
}

static void srv_close(void *user, void *st, uint32_t code)
{
    logf_(user, "close %d %u\n", sid(st), code);
}

static void srv_low(void *user, void *st)
{
    logf_(user, "low %d\n", sid(st));
}

static void srv_goaway(void *user, uint32_t code, int32_t last)
{
    logf_(user, "goaway %u %d\n", code, last);
}

static int srv_write(void *user, const uint8_t *d, size_t len)
{
    pair_t *p = user;
    return es_buf_append(&p->s2c, d, len) == 0 ? 0 : -12;
}

static uint64_t srv_now(void *user)
{
    return ((pair_t *)user)->now;
}

static const es_h2_callbacks_t srv_cb = {
    .on_stream_open = srv_open,
    .on_header = srv_header,
    .on_headers_done = srv_headers_done,
    .on_headers_too_large = srv_too_large,
    .on_trailer = srv_trailer,
    .on_trailers_done = srv_trailers_done,
    .on_data = srv_data,
    .on_request_end = srv_request_end,
    .on_stream_close = srv_close,
    .on_output_low = srv_low,
    .on_goaway = srv_goaway,
    .write = srv_write,
    .now_ms = srv_now,
};

/* ---- the client ---- */

static cstream_t *cs(pair_t *p, int32_t id)
{
    assert_true(id > 0 && id / 2 < MAX_IDS);
    return &p->cs[id / 2];
}

static int cli_header(nghttp2_session *c, const nghttp2_frame *f, const uint8_t *n, size_t nl, const uint8_t *v,
                      size_t vl, uint8_t flags, void *user)
{
    cstream_t *st = cs(user, f->hd.stream_id);
    if (!st->in_trailers && nl == 7 && memcmp(n, ":status", 7) == 0 && v[0] != '1')
        st->final_seen = 1;
    es_buf_t *b = st->in_trailers ? &st->trailers : &st->head;
    es_buf_append(b, n, nl);
    es_buf_append(b, ": ", 2);
    es_buf_append(b, v, vl);
    es_buf_append(b, "\n", 1);
    return 0;
}

static int cli_begin_headers(nghttp2_session *c, const nghttp2_frame *f, void *user)
{
    cstream_t *st = cs(user, f->hd.stream_id);
    st->in_trailers = st->final_seen; /* nghttp2 files a final head after a 1xx as HCAT_HEADERS too */
    return 0;
}

static int cli_data(nghttp2_session *c, uint8_t flags, int32_t id, const uint8_t *d, size_t len, void *user)
{
    es_buf_append(&cs(user, id)->body, d, len);
    return 0;
}

static int cli_close(nghttp2_session *c, int32_t id, uint32_t code, void *user)
{
    cstream_t *st = cs(user, id);
    st->closed = 1;
    st->close_code = code;
    return 0;
}

static int cli_frame(nghttp2_session *c, const nghttp2_frame *f, void *user)
{
    pair_t *p = user;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        p->goaways++;
        p->goaway_code = f->goaway.error_code;
        p->goaway_last = f->goaway.last_stream_id;
    } else if (f->hd.type == NGHTTP2_RST_STREAM) {
        cs(p, f->hd.stream_id)->rst_recv = 1;
        cs(p, f->hd.stream_id)->rst_code = f->rst_stream.error_code;
    }
    return 0;
}

static const char *str(es_buf_t *b)
{
    es_buf_reserve(b, 1);
    b->base[b->len] = '\0';
    return b->base;
}

/* ---- the pair ---- */

static es_h2_settings_t settings(void)
{
    es_h2_settings_t cfg;
    es_h2_settings_default(&cfg);
    return cfg;
}

/* A server with `cfg`, and (client != 0) an nghttp2 client whose SETTINGS carry `client_window` if not 0. */
static pair_t *pair_new(const es_h2_settings_t *cfg, int client, uint32_t client_window)
{
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    P = p;
    assert_int_equal(es_h2_session_init(&p->s, cfg, &srv_cb, p), 0);
    if (!client)
        return p;
    nghttp2_session_callbacks *cbs;
    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cli_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cli_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cli_frame);
    assert_int_equal(nghttp2_session_client_new(&p->c, cbs, p), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, client_window}};
    assert_int_equal(nghttp2_submit_settings(p->c, NGHTTP2_FLAG_NONE, iv, client_window ? 1 : 0), 0);
    return p;
}

static void pair_free(pair_t *p)
{
    es_h2_session_close(&p->s);
    if (p->c != NULL)
        nghttp2_session_del(p->c);
    es_buf_dispose(&p->s2c);
    es_buf_dispose(&p->c2s);
    es_buf_dispose(&p->log);
    es_buf_dispose(&p->data);
    for (int i = 0; i < MAX_IDS; i++) {
        es_buf_dispose(&p->cs[i].head);
        es_buf_dispose(&p->cs[i].body);
        es_buf_dispose(&p->cs[i].trailers);
    }
    free(p);
    P = NULL;
}

/* Client bytes queued so far, into c2s. */
static void client_out(pair_t *p)
{
    const uint8_t *d;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(p->c, &d)) > 0)
        assert_int_equal(es_buf_append(&p->c2s, d, (size_t)n), 0);
    assert_true(n == 0);
}

/* Server output to the client and back until neither side has anything to say (or the server failed). */
static void pump(pair_t *p)
{
    for (int i = 0; i < 10000; i++) {
        int moved = 0;
        assert_int_equal(es_h2_session_flush(&p->s), 0);
        if (p->s2c.len > 0) {
            ssize_t n = nghttp2_session_mem_recv(p->c, (const uint8_t *)p->s2c.base, p->s2c.len);
            assert_int_equal(n, (ssize_t)p->s2c.len);
            p->s2c.len = 0;
            moved = 1;
        }
        client_out(p);
        if (p->c2s.len > 0 && p->feed_rc == 0) {
            p->feed_rc = es_h2_session_feed(&p->s, (const uint8_t *)p->c2s.base, p->c2s.len);
            moved = 1;
        }
        p->c2s.len = 0;
        if (!moved)
            return;
    }
    fail_msg("the pair never settled");
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}

static int32_t get(pair_t *p, const char *path)
{
    nghttp2_nv nva[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "example.com"),
                        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NONE}};
    int32_t id = nghttp2_submit_request(p->c, NULL, nva, 4, NULL, NULL);
    assert_true(id > 0);
    return id;
}

/* A request body of `left` bytes of a pattern, then trailers (x-sum: ok) when `trailers`; never ends if
 * `left` is SIZE_MAX. */
typedef struct {
    size_t left, sent;
    int trailers;
} cbody_t;

static ssize_t cli_read(nghttp2_session *c, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *user)
{
    cbody_t *b = src->ptr;
    if (b->left == SIZE_MAX)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = b->left < len ? b->left : len;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)('a' + (b->sent + i) % 26);
    b->left -= n;
    b->sent += n;
    if (b->left == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (b->trailers) {
            nghttp2_nv tr[] = {NV("x-sum", "ok")};
            assert_int_equal(nghttp2_submit_trailer(c, id, tr, 1), 0);
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    }
    return (ssize_t)n;
}

static int32_t post(pair_t *p, cbody_t *body, const nghttp2_nv *extra, size_t nextra)
{
    nghttp2_nv nva[8] = {NV(":method", "POST"), NV(":scheme", "https"), NV(":authority", "example.com"),
                         NV(":path", "/up")};
    for (size_t i = 0; i < nextra; i++)
        nva[4 + i] = extra[i];
    nghttp2_data_provider prd = {.source.ptr = body, .read_callback = cli_read};
    int32_t id = nghttp2_submit_request(p->c, NULL, nva, 4 + nextra, &prd, NULL);
    assert_true(id > 0);
    return id;
}

/* ---- raw frames ---- */

static void frame(es_buf_t *b, uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t len)
{
    uint8_t hd[9] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags,
                     (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    assert_int_equal(es_buf_append(b, hd, 9), 0);
    assert_int_equal(es_buf_append(b, payload, len), 0);
}

/* The preface and an empty SETTINGS; `ack`: also the ACK of the server's SETTINGS. */
static void preface(es_buf_t *b, int ack)
{
    es_buf_append(b, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    frame(b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    if (ack)
        frame(b, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, NULL, 0);
}

/* HPACK, static table only: :method GET, :scheme https, :path /, :authority a (literal, not indexed). */
static const uint8_t GET_BLOCK[] = {0x82, 0x87, 0x84, 0x01, 0x01, 'a'};
/* x-a: b, a literal with a new name, not indexed. */
static const uint8_t XA_FIELD[] = {0x00, 0x03, 'x', '-', 'a', 0x01, 'b'};

static int feed_raw(pair_t *p, es_buf_t *b)
{
    int rc = es_h2_session_feed(&p->s, (const uint8_t *)b->base, b->len);
    b->len = 0;
    return rc;
}

/* The last frame of `type` (and stream `id` unless -1) the server wrote into s2c since the last clear. */
static const uint8_t *find_frame(pair_t *p, uint8_t type, int64_t id, size_t *len)
{
    const uint8_t *at = (const uint8_t *)p->s2c.base, *end = at + p->s2c.len, *found = NULL;
    while (end - at >= 9) {
        size_t flen = (size_t)at[0] << 16 | (size_t)at[1] << 8 | at[2];
        uint32_t fid = ((uint32_t)at[5] << 24 | (uint32_t)at[6] << 16 | (uint32_t)at[7] << 8 | at[8]) & 0x7fffffff;
        if (at[3] == type && (id < 0 || fid == id)) {
            found = at + 9;
            *len = flen;
        }
        at += 9 + flen;
    }
    return found;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The server flushes; its last GOAWAY must carry `code` and `last`. */
static void expect_goaway(pair_t *p, uint32_t code, int32_t last)
{
    p->s2c.len = 0;
    assert_int_equal(es_h2_session_flush(&p->s), 0);
    size_t len;
    const uint8_t *g = find_frame(p, NGHTTP2_GOAWAY, 0, &len);
    assert_non_null(g);
    assert_true(len >= 8);
    assert_int_equal(be32(g) & 0x7fffffff, (uint32_t)last);
    assert_int_equal(be32(g + 4), code);
    /* A GOAWAY that ends the session: nothing more to read or write. */
    assert_false(es_h2_session_want_read(&p->s));
    assert_false(es_h2_session_want_write(&p->s));
}

/* ---- tests ---- */

static void test_get_headers(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    nghttp2_nv nva[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "example.com"),
                        NV(":path", "/a?b=1"), NV("x-foo", "bar"), NV("accept", "*/*")};
    int32_t id = nghttp2_submit_request(p->c, NULL, nva, 6, NULL, NULL);
    assert_int_equal(id, 1);
    pump(p);
    assert_int_equal(p->feed_rc, 0);
    assert_string_equal(log_str(p), "open 1\n"
                                    "h 1 :method=GET\n"
                                    "h 1 :scheme=https\n"
                                    "h 1 :authority=example.com\n"
                                    "h 1 :path=/a?b=1\n"
                                    "h 1 x-foo=bar\n"
                                    "h 1 accept=*/*\n"
                                    "done 1 end=1\n"
                                    "end 1\n");
    /* feed and flush from inside a callback are refused. */
    assert_int_equal(p->reenter_rc[0], -EBUSY);
    assert_int_equal(p->reenter_rc[1], -EBUSY);
    assert_int_equal(es_h2_session_open_streams(&p->s), 1);
    assert_int_equal(p->s.counters.streams_opened, 1);

    log_clear(p);
    assert_int_equal(es_h2_session_respond(&p->s, 1, 204, NULL, 0, ES_H2_END_STREAM), 0);
    pump(p);
    assert_string_equal(str(&cs(p, 1)->head), ":status: 204\n");
    assert_true(cs(p, 1)->closed);
    assert_int_equal(cs(p, 1)->close_code, 0);
    assert_string_equal(log_str(p), "close 1 0\n");
    assert_int_equal(es_h2_session_open_streams(&p->s), 0);
    /* The stream is gone: every call about it says so. */
    assert_int_equal(es_h2_session_respond(&p->s, 1, 200, NULL, 0, 0), -ENOENT);
    assert_int_equal(es_h2_session_send_body(&p->s, 1, "x", 1), -ENOENT);
    assert_int_equal(es_h2_session_reset(&p->s, 1, ES_H2_CANCEL), -ENOENT);
    assert_int_equal(es_h2_session_consume(&p->s, 1, 10), 0);
    assert_true(es_h2_session_want_read(&p->s));
    pair_free(p);
}

/* Request body: the window stays shut until the caller consumes; then the rest, and trailers. */
static void test_post_body_flow_control(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.initial_window_size = 16384;
    pair_t *p = pair_new(&cfg, 1, 0);
    cbody_t body = {.left = 40000, .trailers = 1};
    nghttp2_nv extra[] = {NV("content-type", "text/plain")};
    int32_t id = post(p, &body, extra, 1);
    pump(p);
    assert_int_equal(p->feed_rc, 0);
    assert_string_equal(log_str(p), "open 1\n"
                                    "h 1 :method=POST\n"
                                    "h 1 :scheme=https\n"
                                    "h 1 :authority=example.com\n"
                                    "h 1 :path=/up\n"
                                    "h 1 content-type=text/plain\n"
                                    "done 1 end=0\n");
    /* One window's worth, and the client may send no more. */
    assert_int_equal(p->data_bytes, 16384);
    assert_int_equal(nghttp2_session_get_stream_remote_window_size(p->c, id), 0);
    pump(p);
    assert_int_equal(p->data_bytes, 16384);

    /* nghttp2 reopens at half the window consumed: 8000 is not enough, 8192 is. */
    assert_int_equal(es_h2_session_consume(&p->s, id, 8000), 0);
    pump(p);
    assert_int_equal(p->data_bytes, 16384);
    assert_int_equal(nghttp2_session_get_stream_remote_window_size(p->c, id), 0);
    assert_int_equal(es_h2_session_consume(&p->s, id, 192), 0);
    pump(p);
    assert_int_equal(p->data_bytes, 16384 + 8192);
    /* More than was delivered cannot be consumed. */
    assert_int_equal(es_h2_session_consume(&p->s, id, 100000), -EINVAL);

    size_t consumed = 8192;
    for (int i = 0; i < 100 && consumed < p->data_bytes; i++) {
        size_t n = p->data_bytes - consumed;
        assert_int_equal(es_h2_session_consume(&p->s, id, n), 0);
        consumed += n;
        pump(p);
    }
    assert_int_equal(p->data_bytes, 40000);
    for (size_t i = 0; i < 40000; i++)
        assert_int_equal(p->data.base[i], 'a' + i % 26);
    assert_non_null(strstr(log_str(p), "done 1 end=0\n"
                                       "tr 1 x-sum=ok\n"
                                       "trdone 1\n"
                                       "end 1\n"));
    assert_int_equal(count_lines(p, "close"), 0);
    pair_free(p);
}

static void test_response_body_and_trailers(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    int32_t id = get(p, "/r");
    pump(p);
    es_h2_field_t head[] = {
        {"Content-Type", 12, "text/plain", 10}, {"Connection", 10, "close", 5},
        {"Transfer-Encoding", 17, "chunked", 7}, {"x-a", 3, "1", 1}, {"Keep-Alive", 10, "5", 1},
    };
    es_h2_field_t bad[] = {{":path", 5, "/", 1}};
    assert_int_equal(es_h2_session_respond(&p->s, id, 200, bad, 1, 0), -EINVAL);
    assert_int_equal(es_h2_session_respond(&p->s, id, 101, NULL, 0, 0), -EINVAL);
    assert_int_equal(es_h2_session_send_body(&p->s, id, "x", 1), -EINVAL); /* no head yet */
    assert_int_equal(es_h2_session_interim(&p->s, id, 103, (es_h2_field_t[]){{"Link", 4, "</s>", 4}}, 1), 0);
    assert_int_equal(es_h2_session_respond(&p->s, id, 200, head, 5, 0), 0);
    assert_int_equal(es_h2_session_respond(&p->s, id, 200, head, 5, 0), -EINVAL);
    assert_int_equal(es_h2_session_send_body(&p->s, id, "hello ", 6), 0);
    assert_int_equal(es_h2_session_send_body(&p->s, id, "world", 5), 0);
    assert_int_equal(es_h2_session_buffered(&p->s, id), 11);
    es_h2_field_t tr[] = {{"grpc-status", 11, "0", 1}, {"X-Md5", 5, "abc", 3}, {"TE", 2, "trailers", 8}};
    assert_int_equal(es_h2_session_end_body(&p->s, id, tr, 3), 0);
    assert_int_equal(es_h2_session_send_body(&p->s, id, "late", 4), -EINVAL);
    pump(p);
    cstream_t *c = cs(p, id);
    assert_string_equal(str(&c->head), ":status: 103\nlink: </s>\n:status: 200\ncontent-type: text/plain\nx-a: 1\n");
    assert_string_equal(str(&c->body), "hello world");
    assert_string_equal(str(&c->trailers), "grpc-status: 0\nx-md5: abc\n");
    assert_true(c->closed);
    assert_int_equal(c->close_code, 0);
    assert_false(c->rst_recv);
    assert_int_equal(count_lines(p, "close 1 0"), 1);
    pair_free(p);
}

/* A body that arrives after the head, past the client's window: deferred, resumed, and the low watermark. */
static void test_deferred_body_and_watermarks(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.out_high = 1000;
    cfg.out_low = 100;
    pair_t *p = pair_new(&cfg, 1, 300);
    int32_t id = get(p, "/slow");
    pump(p);
    assert_int_equal(es_h2_session_respond(&p->s, id, 200, NULL, 0, 0), 0);
    pump(p);
    cstream_t *c = cs(p, id);
    assert_string_equal(str(&c->head), ":status: 200\n");
    assert_int_equal(c->body.len, 0);
    assert_false(c->closed);
    assert_false(es_h2_session_want_write(&p->s)); /* deferred: nothing to send */

    char big[2000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('A' + i % 26);
    log_clear(p);
    assert_int_equal(es_h2_session_send_body(&p->s, id, big, 600), 0);
    assert_int_equal(es_h2_session_send_body(&p->s, id, big + 600, 1400), 0);
    assert_int_equal(es_h2_session_buffered(&p->s, id), 2000);
    /* One flush: the client's 300-byte window, no more; still above the low watermark. */
    p->s2c.len = 0;
    assert_int_equal(es_h2_session_flush(&p->s), 0);
    assert_int_equal(es_h2_session_buffered(&p->s, id), 1700);
    assert_string_equal(log_str(p), "");
    pump(p);
    assert_int_equal(c->body.len, 2000);
    assert_memory_equal(c->body.base, big, 2000);
    assert_int_equal(es_h2_session_buffered(&p->s, id), 0);
    assert_string_equal(log_str(p), "low 1\n"); /* once */
    assert_false(c->closed);

    /* Later bytes resume the provider again, then the end. */
    assert_int_equal(es_h2_session_send_body(&p->s, id, "tail", 4), 0);
    pump(p);
    assert_int_equal(c->body.len, 2004);
    assert_false(c->closed);
    assert_int_equal(es_h2_session_end_body(&p->s, id, NULL, 0), 0);
    pump(p);
    assert_true(c->closed);
    assert_int_equal(c->close_code, 0);
    assert_int_equal(c->trailers.len, 0);
    assert_string_equal(log_str(p), "low 1\nclose 1 0\n");
    pair_free(p);
}

/* 100 streams open; the client holds the 101st until one closes. */
static void test_concurrent_streams(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    for (int i = 0; i < 101; i++)
        assert_int_equal(get(p, "/many"), 1 + 2 * i);
    pump(p);
    assert_int_equal(es_h2_session_open_streams(&p->s), 100);
    assert_int_equal(count_lines(p, "open "), 100);
    assert_int_equal(count_lines(p, "open 201\n"), 0);
    assert_int_equal(es_h2_session_respond(&p->s, 1, 200, NULL, 0, ES_H2_END_STREAM), 0);
    pump(p);
    assert_int_equal(count_lines(p, "open 201\n"), 1);
    assert_int_equal(es_h2_session_open_streams(&p->s), 100);
    assert_int_equal(p->s.counters.streams_opened, 101);
    pair_free(p);
}

/* A client that sends more streams than allowed before it acknowledged the limit: REFUSED_STREAM. */
static void test_streams_over_limit_refused(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_concurrent_streams = 2;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    preface(&b, 0);
    for (uint32_t id = 1; id <= 5; id += 2)
        frame(&b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id, GET_BLOCK,
              sizeof(GET_BLOCK));
    assert_int_equal(feed_raw(p, &b), 0);
    assert_int_equal(es_h2_session_flush(&p->s), 0);
    size_t len;
    const uint8_t *rst = find_frame(p, NGHTTP2_RST_STREAM, 5, &len);
    assert_non_null(rst);
    assert_int_equal(be32(rst), NGHTTP2_REFUSED_STREAM);
    assert_null(find_frame(p, NGHTTP2_RST_STREAM, 3, &len));
    assert_int_equal(p->s.counters.streams_refused, 1);
    assert_int_equal(es_h2_session_open_streams(&p->s), 2);
    assert_int_equal(count_lines(p, "open 5"), 0);
    es_buf_dispose(&b);
    pair_free(p);
}

/* on_stream_open may refuse: REFUSED_STREAM, and never a word about that stream. */
static void test_open_refused_by_caller(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    p->refuse = 1;
    int32_t id = get(p, "/no");
    pump(p);
    assert_true(cs(p, id)->closed);
    assert_int_equal(cs(p, id)->close_code, NGHTTP2_REFUSED_STREAM);
    assert_string_equal(log_str(p), "");
    assert_int_equal(p->s.counters.streams_refused, 1);
    assert_int_equal(es_h2_session_open_streams(&p->s), 0);
    pair_free(p);
}

/* Over max_header_list_size: fields stop, on_headers_too_large, the body is dropped, the caller answers 431. */
static void test_header_list_too_large(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_header_list_size = 1000;
    pair_t *p = pair_new(&cfg, 1, 0);
    p->answer_431 = 1;
    char a[500], b[600];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    nghttp2_nv extra[] = {
        {(uint8_t *)"x-a", (uint8_t *)a, 3, sizeof(a), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"x-b", (uint8_t *)b, 3, sizeof(b), NGHTTP2_NV_FLAG_NONE},
        NV("x-c", "c"),
    };
    cbody_t body = {.left = SIZE_MAX}; /* a body that never ends */
    int32_t id = post(p, &body, extra, 3);
    pump(p);
    assert_int_equal(p->feed_rc, 0);
    char expect[2048];
    snprintf(expect, sizeof(expect),
             "open 1\nh 1 :method=POST\nh 1 :scheme=https\nh 1 :authority=example.com\nh 1 :path=/up\n"
             "h 1 x-a=%.*s\ntoolarge 1\nclose 1 0\n",
             (int)sizeof(a), a);
    assert_string_equal(log_str(p), expect);
    assert_int_equal(p->s.counters.header_list_too_large, 1);
    cstream_t *c = cs(p, id);
    assert_string_equal(str(&c->head), ":status: 431\n");
    /* The response ended before the request: RST_STREAM NO_ERROR tells the client to stop sending. */
    assert_true(c->rst_recv);
    assert_int_equal(c->rst_code, NGHTTP2_NO_ERROR);
    assert_true(c->closed);

    /* A request under the limit on the same connection is fine. */
    log_clear(p);
    get(p, "/ok");
    pump(p);
    assert_int_equal(count_lines(p, "done 3 end=1"), 1);
    pair_free(p);
}

/* Trailers over the limit reset the stream. */
static void test_trailers_too_large(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_header_list_size = 200;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    preface(&b, 1);
    frame(&b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, GET_BLOCK, sizeof(GET_BLOCK));
    uint8_t tr[2 + 3 + 2 + 200] = {0x00, 0x03, 'x', '-', 't', 0x7f, 200 - 127};
    memset(tr + 7, 't', 200);
    frame(&b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, tr, sizeof(tr));
    assert_int_equal(feed_raw(p, &b), 0);
    assert_int_equal(es_h2_session_flush(&p->s), 0);
    size_t len;
    const uint8_t *rst = find_frame(p, NGHTTP2_RST_STREAM, 1, &len);
    assert_non_null(rst);
    assert_int_equal(be32(rst), NGHTTP2_INTERNAL_ERROR);
    assert_int_equal(p->s.counters.header_list_too_large, 1);
    assert_non_null(strstr(log_str(p), "done 1 end=0\nclose 1 2\n"));
    assert_int_equal(count_lines(p, "tr "), 0);
    es_buf_dispose(&b);
    pair_free(p);
}

/* CVE-2023-44487: streams opened and reset at once, past nghttp2's token bucket: GOAWAY. */
static void test_rapid_reset(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.reset_burst = 10;
    cfg.reset_rate = 1;
    pair_t *p = pair_new(&cfg, 1, 0);
    pump(p);
    for (int i = 0; i < 30; i++) {
        int32_t id = get(p, "/rr");
        client_out(p);
        assert_int_equal(nghttp2_submit_rst_stream(p->c, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL), 0);
        client_out(p);
    }
    p->feed_rc = es_h2_session_feed(&p->s, (const uint8_t *)p->c2s.base, p->c2s.len);
    p->c2s.len = 0;
    pump(p);
    assert_int_equal(p->goaways, 1);
    assert_int_equal(p->goaway_code, NGHTTP2_INTERNAL_ERROR);
    assert_int_equal(p->s.counters.rapid_reset, 1);
    assert_true(p->s.counters.streams_reset_by_peer >= 11);
    assert_int_equal(count_lines(p, "close 1 8\n"), 1);
    assert_int_equal(es_h2_session_open_streams(&p->s), 0);
    /* GOAWAY sent, no stream left: the session is finished. */
    assert_false(es_h2_session_want_read(&p->s));
    assert_false(es_h2_session_want_write(&p->s));
    pair_free(p);
}

/* A header block continued by `n` CONTINUATION frames of one field each. */
static void continued_headers(es_buf_t *b, uint32_t id, int n)
{
    frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, id, GET_BLOCK, sizeof(GET_BLOCK));
    for (int i = 0; i < n; i++)
        frame(b, NGHTTP2_CONTINUATION, i == n - 1 ? NGHTTP2_FLAG_END_HEADERS : 0, id, XA_FIELD, sizeof(XA_FIELD));
}

/* CVE-2024-28182: max_continuations CONTINUATION frames pass, one more ends the connection. */
static void test_continuation_flood(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_continuations = 4;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    preface(&b, 1);
    continued_headers(&b, 1, 4);
    assert_int_equal(feed_raw(p, &b), 0);
    assert_int_equal(count_lines(p, "h 1 x-a=b\n"), 4);
    assert_int_equal(count_lines(p, "done 1 end=1"), 1);
    continued_headers(&b, 3, 6);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    assert_int_equal(p->s.counters.continuation_flood, 1);
    assert_int_equal(count_lines(p, "h 3 x-a=b\n"), 4);
    assert_int_equal(count_lines(p, "done 3"), 0);
    expect_goaway(p, NGHTTP2_ENHANCE_YOUR_CALM, 3); /* nghttp2 had begun stream 3 */
    /* It stays failed. */
    preface(&b, 0);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    es_buf_dispose(&b);
    pair_free(p);
}

/* Empty DATA frames without END_STREAM: max_empty_data per window of the caller's clock, then GOAWAY. */
static void test_empty_data_flood(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_empty_data = 10;
    cfg.flood_window_ms = 1000;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    p->now = 5000;
    preface(&b, 1);
    frame(&b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, GET_BLOCK, sizeof(GET_BLOCK));
    for (int i = 0; i < 10; i++)
        frame(&b, NGHTTP2_DATA, 0, 1, NULL, 0);
    assert_int_equal(feed_raw(p, &b), 0);
    /* A new window: ten more, these all padding (no data either), and an empty END_STREAM that is not counted. */
    p->now += 1000;
    static const uint8_t pad_only[4] = {3, 0, 0, 0};
    for (int i = 0; i < 10; i++)
        frame(&b, NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, 1, pad_only, sizeof(pad_only));
    frame(&b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 3, GET_BLOCK, sizeof(GET_BLOCK));
    frame(&b, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 3, NULL, 0);
    assert_int_equal(feed_raw(p, &b), 0);
    assert_int_equal(p->s.counters.empty_data_flood, 0);
    assert_int_equal(count_lines(p, "end 3"), 1);
    /* The eleventh in this window, on a stream that is closed (nghttp2 ignores it; the count does not). */
    p->now += 999;
    frame(&b, NGHTTP2_DATA, 0, 3, NULL, 0);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    assert_int_equal(p->s.counters.empty_data_flood, 1);
    expect_goaway(p, NGHTTP2_ENHANCE_YOUR_CALM, 3);
    es_buf_dispose(&b);
    pair_free(p);
}

static void test_ping_flood(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_ping = 10;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    preface(&b, 1);
    static const uint8_t opaque[8] = "pingping";
    for (int i = 0; i < 10; i++)
        frame(&b, NGHTTP2_PING, 0, 0, opaque, 8);
    assert_int_equal(feed_raw(p, &b), 0);
    assert_int_equal(es_h2_session_flush(&p->s), 0);
    size_t len;
    assert_non_null(find_frame(p, NGHTTP2_PING, 0, &len)); /* answered */
    frame(&b, NGHTTP2_PING, 0, 0, opaque, 8);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    assert_int_equal(p->s.counters.ping_flood, 1);
    expect_goaway(p, NGHTTP2_ENHANCE_YOUR_CALM, 0);
    es_buf_dispose(&b);
    pair_free(p);
}

static void test_settings_flood(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_settings = 10;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    preface(&b, 1); /* two SETTINGS frames already */
    for (int i = 0; i < 8; i++)
        frame(&b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    assert_int_equal(feed_raw(p, &b), 0);
    frame(&b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    assert_int_equal(p->s.counters.settings_flood, 1);
    expect_goaway(p, NGHTTP2_ENHANCE_YOUR_CALM, 0);
    es_buf_dispose(&b);
    pair_free(p);
}

/* A client that sends PINGs and never reads the ACKs: nghttp2's max_outbound_ack. */
static void test_outbound_ack_flood(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.max_outbound_ack = 5;
    pair_t *p = pair_new(&cfg, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    preface(&b, 1);
    static const uint8_t opaque[8] = "pingping";
    for (int i = 0; i < 20; i++)
        frame(&b, NGHTTP2_PING, 0, 0, opaque, 8);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    assert_int_equal(p->s.counters.outbound_flood, 1);
    assert_int_equal(p->s.counters.ping_flood, 0);
    expect_goaway(p, NGHTTP2_ENHANCE_YOUR_CALM, 0);
    es_buf_dispose(&b);
    pair_free(p);
}

static void test_bad_preface(void **state)
{
    pair_t *p = pair_new(NULL, 0, 0);
    es_buf_t b;
    es_buf_init(&b);
    es_buf_append(&b, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    assert_int_equal(feed_raw(p, &b), -EPROTO);
    assert_int_equal(p->s.counters.protocol_errors, 1);
    expect_goaway(p, NGHTTP2_PROTOCOL_ERROR, 0);
    es_buf_dispose(&b);
    pair_free(p);
}

/* Graceful shutdown: a notice, a stream opened after it, the final GOAWAY with the last stream id. */
static void test_shutdown_then_goaway(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    get(p, "/1");
    pump(p);
    assert_int_equal(es_h2_session_shutdown_notice(&p->s), 0);
    /* The race the notice is for: the client opens stream 3 while the notice is on its way. */
    assert_int_equal(es_h2_session_flush(&p->s), 0);
    assert_int_equal(get(p, "/3"), 3);
    client_out(p);
    pump(p);
    assert_int_equal(p->goaways, 1);
    assert_int_equal(p->goaway_code, NGHTTP2_NO_ERROR);
    assert_int_equal(p->goaway_last, INT32_MAX);
    assert_int_equal(count_lines(p, "open 3\n"), 1);
    assert_int_equal(es_h2_session_goaway(&p->s, ES_H2_NO_ERROR), 0);
    pump(p);
    assert_int_equal(p->goaways, 2);
    assert_int_equal(p->goaway_code, NGHTTP2_NO_ERROR);
    assert_int_equal(p->goaway_last, 3);
    assert_int_equal(es_h2_session_open_streams(&p->s), 2);
    assert_true(es_h2_session_want_read(&p->s)); /* two streams to finish */
    assert_int_equal(p->s.counters.rapid_reset + p->s.counters.protocol_errors, 0);

    assert_int_equal(es_h2_session_respond(&p->s, 1, 200, NULL, 0, ES_H2_END_STREAM), 0);
    assert_int_equal(es_h2_session_respond(&p->s, 3, 200, NULL, 0, 0), 0);
    assert_int_equal(es_h2_session_end_body(&p->s, 3, NULL, 0), 0);
    pump(p);
    assert_true(cs(p, 1)->closed && cs(p, 3)->closed);
    assert_int_equal(es_h2_session_open_streams(&p->s), 0);
    assert_false(es_h2_session_want_read(&p->s));
    assert_false(es_h2_session_want_write(&p->s));
    pair_free(p);
}

/* The client resets a stream: on_stream_close with its code, then silence about it. */
static void test_client_reset(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    cbody_t body = {.left = SIZE_MAX};
    int32_t id = post(p, &body, NULL, 0);
    pump(p);
    assert_int_equal(es_h2_session_respond(&p->s, id, 200, NULL, 0, 0), 0);
    assert_int_equal(es_h2_session_send_body(&p->s, id, "partial", 7), 0);
    log_clear(p);
    assert_int_equal(nghttp2_submit_rst_stream(p->c, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL), 0);
    pump(p);
    assert_string_equal(log_str(p), "close 1 8\n");
    assert_int_equal(p->s.counters.streams_reset_by_peer, 1);
    assert_int_equal(es_h2_session_send_body(&p->s, id, "x", 1), -ENOENT);
    assert_int_equal(es_h2_session_end_body(&p->s, id, NULL, 0), -ENOENT);
    assert_int_equal(es_h2_session_buffered(&p->s, id), 0);
    assert_int_equal(es_h2_session_open_streams(&p->s), 0);
    pair_free(p);
}

/* Bytes delivered and never consumed go back to the connection's window when their stream closes. */
static void test_closed_stream_window_given_back(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.connection_window_size = 65535;
    pair_t *p = pair_new(&cfg, 1, 0);
    cbody_t body = {.left = 40000};
    int32_t id = post(p, &body, NULL, 0);
    pump(p);
    assert_int_equal(p->data_bytes, 40000);
    assert_int_equal(nghttp2_session_get_remote_window_size(p->c), 65535 - 40000);
    assert_int_equal(es_h2_session_reset(&p->s, id, ES_H2_CANCEL), 0);
    pump(p);
    assert_int_equal(count_lines(p, "close 1 8"), 1);
    assert_int_equal(nghttp2_session_get_remote_window_size(p->c), 65535);
    pair_free(p);
}

/* The caller resets a stream; closing the session reports the streams still open. */
static void test_server_reset_and_close(void **state)
{
    pair_t *p = pair_new(NULL, 1, 0);
    get(p, "/1");
    get(p, "/3");
    get(p, "/5");
    pump(p);
    log_clear(p);
    assert_int_equal(es_h2_session_reset(&p->s, 1, ES_H2_CANCEL), 0);
    assert_int_equal(es_h2_session_respond(&p->s, 1, 200, NULL, 0, 0), -ENOENT);
    pump(p);
    assert_true(cs(p, 1)->closed);
    assert_int_equal(cs(p, 1)->close_code, NGHTTP2_CANCEL);
    assert_string_equal(log_str(p), "close 1 8\n");
    log_clear(p);
    es_h2_session_close(&p->s);
    assert_string_equal(log_str(p), "close 3 8\nclose 5 8\n");
    /* pair_free closes again: make that a fresh, empty session. */
    assert_int_equal(es_h2_session_init(&p->s, NULL, &srv_cb, p), 0);
    pair_free(p);
}

/* RFC 8441: with SETTINGS_ENABLE_CONNECT_PROTOCOL, :protocol comes through. */
static void test_extended_connect(void **state)
{
    es_h2_settings_t cfg = settings();
    cfg.enable_connect_protocol = 1;
    pair_t *p = pair_new(&cfg, 1, 0);
    pump(p);
    assert_int_equal(nghttp2_session_get_remote_settings(p->c, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 1);
    nghttp2_nv nva[] = {NV(":method", "CONNECT"), NV(":protocol", "websocket"), NV(":scheme", "https"),
                        NV(":path", "/chat"), NV(":authority", "example.com")};
    cbody_t body = {.left = SIZE_MAX};
    nghttp2_data_provider prd = {.source.ptr = &body, .read_callback = cli_read};
    assert_int_equal(nghttp2_submit_request(p->c, NULL, nva, 5, &prd, NULL), 1);
    pump(p);
    assert_string_equal(log_str(p), "open 1\nh 1 :method=CONNECT\nh 1 :protocol=websocket\nh 1 :scheme=https\n"
                                    "h 1 :path=/chat\nh 1 :authority=example.com\ndone 1 end=0\n");
    pair_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_headers),
        cmocka_unit_test(test_post_body_flow_control),
        cmocka_unit_test(test_response_body_and_trailers),
        cmocka_unit_test(test_deferred_body_and_watermarks),
        cmocka_unit_test(test_concurrent_streams),
        cmocka_unit_test(test_streams_over_limit_refused),
        cmocka_unit_test(test_open_refused_by_caller),
        cmocka_unit_test(test_header_list_too_large),
        cmocka_unit_test(test_trailers_too_large),
        cmocka_unit_test(test_rapid_reset),
        cmocka_unit_test(test_continuation_flood),
        cmocka_unit_test(test_empty_data_flood),
        cmocka_unit_test(test_ping_flood),
        cmocka_unit_test(test_settings_flood),
        cmocka_unit_test(test_outbound_ack_flood),
        cmocka_unit_test(test_bad_preface),
        cmocka_unit_test(test_shutdown_then_goaway),
        cmocka_unit_test(test_client_reset),
        cmocka_unit_test(test_closed_stream_window_given_back),
        cmocka_unit_test(test_server_reset_and_close),
        cmocka_unit_test(test_extended_connect),
    };
    return cmocka_run_group_tests_name("h2_session", tests, NULL, NULL);
}

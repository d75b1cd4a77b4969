#include "codec/http2_server.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "codec/h2_session.h"
#include "codec/http1.h"
#include "core/log.h"
#include "core/stats.h"
#include "net/conn.h"
#include "stream/stream.h"

#define LIT(s) s, sizeof(s) - 1

/* How long the final GOAWAY waits after the shutdown notice: streams the client opened meanwhile (one round
 * trip) are still served (RFC 9113 6.8). */
#define ES_H2_GOAWAY_DELAY_MS 100

typedef struct es_h2_server_s es_h2_server_t;

typedef struct {
    es_stream_t stream;          /* first: the exchange */
    es_h2_server_t *srv;
    es_link_t link;              /* in srv->streams */
    int32_t id;
    size_t held;                 /* request body bytes delivered and not yet given back to the window */
    unsigned finished : 1;       /* the exchange is done: freed when the session closes the stream */
    unsigned in_headers : 1;     /* its header block is still arriving */
    uint64_t last_active;        /* loop time of its last byte either way, for stream_idle_timeout */
    unsigned websocket : 1;      /* an extended CONNECT with :protocol websocket (RFC 8441) */
    unsigned protocol : 1;       /* ... with another :protocol, which is not served */
    unsigned body_ended : 1;     /* the response's end went to the session */
    unsigned closed : 1;         /* the session closed it: no more events, no more calls */
    char method[32];             /* a method the proxy has no name for, copied */
} es_h2_stream_t;

struct es_h2_server_s {
    es_conn_t *conn;
    es_h2_session_t sess;
    es_link_t streams;           /* es_h2_stream_t, open or finishing */
    es_link_t dead;              /* closed by the session, freed at the next safe point */
    uv_idle_t *flusher;          /* a deferred flush: down ops never flush the session themselves */
    uv_timer_t *goaway_timer;    /* drain: the final GOAWAY after the shutdown notice */
    uv_timer_t *idle_check;      /* stream_idle_timeout: every half of it, the streams' last bytes are looked at */
    es_buf_t fields;             /* es_h2_field_t scratch for a response head */
    uint32_t in_headers;         /* streams whose header block is still arriving: request_headers_timeout runs */
    unsigned draining : 1;
    unsigned failed : 1;         /* the session failed: close once its GOAWAY is out */
    unsigned counted : 1;        /* the session's counters went to the stats */
};

static const es_h2_callbacks_t session_cb;
static const es_down_ops_t down_ops;
static void flush_later(es_h2_server_t *srv);

#define H2S(s) ((es_h2_stream_t *)(s))

static void free_stream(es_h2_stream_t *hs)
{
    es_list_remove(&hs->link);
    es_stream_dispose(&hs->stream);
    free(hs);
}

/*
 * stream_idle_timeout without a timer per stream: each stream notes the loop time of its last byte, and one
 * timer per connection looks at them every half of the timeout while streams are open. A stream idle for the
 * timeout is ended within half of it more: 408 or 504 if nothing was answered, else a reset.
 */
static void on_idle_check(uv_timer_t *t)
{
    es_h2_server_t *srv = t->data;
    const es_listener_config_t *l = srv->conn->listener;
    uint64_t now = uv_now(t->loop), limit = l->stream_idle_timeout_ms;
    if (es_list_empty(&srv->streams)) {
        uv_timer_stop(t); /* the next stream starts it again */
        return;
    }
    for (es_link_t *k = srv->streams.next; k != &srv->streams;) {
        es_h2_stream_t *hs = es_container_of(k, es_h2_stream_t, link);
        k = k->next;
        es_stream_t *s = &hs->stream;
        if (hs->closed || hs->finished || s->tunnel || now - hs->last_active < limit)
            continue; /* a tunnel has tunnel_idle_timeout instead */
        hs->last_active = now;
        es_stats_inc(ES_STAT_H2_STREAM_IDLE_TIMEOUTS);
        s->owner.info.flags |= ES_RF_SI;
        es_debug("client %s:%u: HTTP/2 stream %d idle for %llu ms", s->owner.peer_ip, s->owner.peer_port, hs->id,
                 (unsigned long long)limit);
        es_stream_timed_out(s, 1);
    }
    flush_later(srv);
}

/* A byte went either way: the stream is not idle. */
static inline void stream_touch(es_h2_stream_t *hs)
{
    hs->last_active = uv_now(hs->srv->conn->env->loop);
}

static void free_dead(es_h2_server_t *srv)
{
    while (!es_list_empty(&srv->dead))
        free_stream(es_container_of(srv->dead.next, es_h2_stream_t, link));
}

static uint64_t drain_grace_or_idle(es_h2_server_t *srv)
{
    es_conn_t *c = srv->conn;
    return c->env->draining ? c->ops->drain_grace(c) : c->listener->idle_timeout_ms;
}

/* The connection has no stream: idle_timeout (or the drain's grace) runs. */
static void maybe_idle(es_h2_server_t *srv)
{
    es_conn_t *c = srv->conn;
    es_conn_timer_t kind = c->env->draining ? ES_CONN_TIMER_DRAIN_IDLE : ES_CONN_TIMER_IDLE;
    if (!es_list_empty(&srv->streams) || c->closing || c->timer_kind == kind || c->timer_kind == ES_CONN_TIMER_DRAIN)
        return; /* busy, or the idle timer already runs from when the connection became idle */
    c->ops->arm(c, kind, drain_grace_or_idle(srv));
}

static void count_session(es_h2_server_t *srv)
{
    if (srv->counted)
        return;
    srv->counted = 1;
    const es_h2_counters_t *k = &srv->sess.counters;
    es_stats_add(ES_STAT_H2_STREAMS_REFUSED, k->streams_refused);
    es_stats_add(ES_STAT_H2_HEADERS_TOO_LARGE, k->header_list_too_large);
    es_stats_add(ES_STAT_H2_RAPID_RESET, k->rapid_reset);
    es_stats_add(ES_STAT_H2_FLOODS, k->continuation_flood + k->empty_data_flood + k->ping_flood +
                                        k->settings_flood + k->outbound_flood);
    es_stats_add(ES_STAT_H2_PROTOCOL_ERRORS, k->protocol_errors);
}

/* Writes what the session has for the client; closes the connection once the session is finished. Only at a
 * safe point: on_stream_close may free streams here. */
static void flush_now(es_h2_server_t *srv)
{
    es_conn_t *c = srv->conn;
    if (c->closing)
        return;
    int err = es_h2_session_flush(&srv->sess);
    free_dead(srv);
    if (err < 0 && err != -EBUSY) {
        es_debug("client %s:%u: HTTP/2 output failed: %s", c->peer_ip, c->peer_port, uv_strerror(err));
        c->ops->abort(c);
        return;
    }
    es_writeq_flush(&c->out);
    if (c->closing)
        return;
    if (!es_h2_session_want_read(&srv->sess) && !es_h2_session_want_write(&srv->sess)) {
        count_session(srv);
        c->ops->close_after_flush(c);
        return;
    }
    maybe_idle(srv);
}

static void on_flusher(uv_idle_t *h)
{
    es_h2_server_t *srv = h->data;
    uv_idle_stop(h);
    for (es_link_t *l = srv->streams.next; l != &srv->streams; l = l->next)
        es_stream_flush_upstream(&es_container_of(l, es_h2_stream_t, link)->stream);
    flush_now(srv);
}

static void flush_later(es_h2_server_t *srv)
{
    if (srv->flusher != NULL && !srv->conn->closing)
        uv_idle_start(srv->flusher, on_flusher);
}

static void on_handle_closed(uv_handle_t *h)
{
    free(h);
}

void *es_http2_server_new(es_conn_t *c)
{
    es_h2_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->conn = c;
    es_list_init(&srv->streams);
    es_list_init(&srv->dead);
    es_buf_init(&srv->fields);
    srv->flusher = malloc(sizeof(*srv->flusher));
    if (srv->flusher == NULL) {
        free(srv);
        return NULL;
    }
    uv_idle_init(c->env->loop, srv->flusher);
    srv->flusher->data = srv;
    if (c->listener->stream_idle_timeout_ms > 0 && (srv->idle_check = malloc(sizeof(*srv->idle_check))) != NULL) {
        uv_timer_init(c->env->loop, srv->idle_check);
        srv->idle_check->data = srv;
    }
    es_h2_settings_t cfg;
    es_h2_settings_default(&cfg);
    cfg.max_header_list_size = c->listener->max_request_headers;
    cfg.max_concurrent_streams = c->listener->h2_max_concurrent_streams;
    cfg.enable_connect_protocol = 1; /* WebSocket over HTTP/2 (RFC 8441) */
    cfg.out_high = ES_WRITE_HIGH;
    cfg.out_low = ES_WRITE_LOW;
    if (es_h2_session_init(&srv->sess, &cfg, &session_cb, srv) != 0) {
        uv_close((uv_handle_t *)srv->flusher, on_handle_closed);
        free(srv);
        return NULL;
    }
    es_stats_inc(ES_STAT_H2_CONNECTIONS);
    /* The preface and a first request are due within request_headers_timeout (armed at accept, or here after
     * a TLS handshake). */
    if (c->timer_kind != ES_CONN_TIMER_HEADERS)
        c->ops->arm(c, ES_CONN_TIMER_HEADERS, c->listener->request_headers_timeout_ms);
    return srv;
}

/* ---- es_codec_ops_t: the connection's side ------------------------------------------------- */

static ssize_t input(void *codec, const char *data, size_t len)
{
    es_h2_server_t *srv = codec;
    es_conn_t *c = srv->conn;
    int err = es_h2_session_feed(&srv->sess, (const uint8_t *)data, len);
    free_dead(srv);
    if (c->closing)
        return -1;
    /* A header block split over CONTINUATION frames is due within request_headers_timeout, as an HTTP/1.1 head
     * is: a client that stops halfway holds no stream for long. */
    if (srv->in_headers > 0 && c->timer_kind == ES_CONN_TIMER_NONE)
        c->ops->arm(c, ES_CONN_TIMER_HEADERS, c->listener->request_headers_timeout_ms);
    if (err < 0) {
        /* A protocol error or a flood: the session queued GOAWAY with its reason. */
        es_debug("client %s:%u: HTTP/2 connection error (%s); GOAWAY", c->peer_ip, c->peer_port, uv_strerror(err));
        srv->failed = 1;
        count_session(srv);
        es_h2_session_flush(&srv->sess);
        free_dead(srv);
        if (!c->closing) {
            c->force_drain = 1;
            c->ops->close_after_flush(c);
        }
        return -1;
    }
    return (ssize_t)len;
}

static int want_input(void *codec, size_t buffered)
{
    es_h2_server_t *srv = codec;
    /* A client that does not read what it asked for is not read either (its PINGs, SETTINGS, requests). */
    return !srv->failed && !srv->conn->out.above_high && es_h2_session_want_read(&srv->sess);
}

static void writable(void *codec, int drained)
{
    es_h2_server_t *srv = codec;
    flush_now(srv); /* the sink may have stopped a flush at the high watermark */
    if (!srv->conn->closing)
        srv->conn->ops->update_reading(srv->conn);
}

static void flush_streams(void *codec)
{
    es_h2_server_t *srv = codec;
    for (es_link_t *l = srv->streams.next; l != &srv->streams; l = l->next)
        es_stream_flush_upstream(&es_container_of(l, es_h2_stream_t, link)->stream);
    flush_now(srv);
}

static void header_timeout(void *codec)
{
    /* The preface and a first request, or a header block, did not arrive in time: the connection goes. */
    es_h2_server_t *srv = codec;
    es_conn_t *c = srv->conn;
    es_debug("client %s:%u: HTTP/2 header block not complete in time; GOAWAY", c->peer_ip, c->peer_port);
    es_h2_session_goaway(&srv->sess, ES_H2_PROTOCOL_ERROR);
    srv->failed = 1;
    es_h2_session_flush(&srv->sess);
    free_dead(srv);
    if (c->closing)
        return;
    es_writeq_flush(&c->out);
    if (!c->closing) {
        c->force_drain = 1;
        c->ops->close_after_flush(c);
    }
}

static void on_goaway_timer(uv_timer_t *t)
{
    es_h2_server_t *srv = t->data;
    es_h2_session_goaway(&srv->sess, ES_H2_NO_ERROR);
    flush_now(srv);
}

static void drain(void *codec)
{
    es_h2_server_t *srv = codec;
    es_conn_t *c = srv->conn;
    if (srv->draining || srv->failed)
        return;
    srv->draining = 1;
    /* A shutdown notice first (GOAWAY with the largest id): the client opens no more streams; then, a round
     * trip later, the final GOAWAY with the last stream served. The connection closes when the streams end. */
    es_h2_session_shutdown_notice(&srv->sess);
    srv->goaway_timer = malloc(sizeof(*srv->goaway_timer));
    if (srv->goaway_timer != NULL) {
        uv_timer_init(c->env->loop, srv->goaway_timer);
        srv->goaway_timer->data = srv;
        uv_timer_start(srv->goaway_timer, on_goaway_timer, ES_H2_GOAWAY_DELAY_MS, 0);
    } else {
        es_h2_session_goaway(&srv->sess, ES_H2_NO_ERROR);
    }
    flush_now(srv);
}

static int unread(void *codec)
{
    es_h2_server_t *srv = codec;
    for (es_link_t *l = srv->streams.next; l != &srv->streams; l = l->next) {
        es_h2_stream_t *hs = es_container_of(l, es_h2_stream_t, link);
        if (!hs->closed && !hs->stream.req_done)
            return 1;
    }
    return 0;
}

static int idle(void *codec)
{
    return es_list_empty(&((es_h2_server_t *)codec)->streams);
}

static void abort_streams(void *codec)
{
    es_h2_server_t *srv = codec;
    count_session(srv);
    /* Every open stream hears on_stream_close(CANCEL): its exchange is aborted and it is freed. */
    es_h2_session_close(&srv->sess);
    free_dead(srv);
    while (!es_list_empty(&srv->streams)) {
        es_h2_stream_t *hs = es_container_of(srv->streams.next, es_h2_stream_t, link);
        if (!hs->finished)
            es_stream_abort(&hs->stream);
        free_stream(hs);
    }
    if (srv->flusher != NULL) {
        uv_close((uv_handle_t *)srv->flusher, on_handle_closed);
        srv->flusher = NULL;
    }
    if (srv->goaway_timer != NULL) {
        uv_close((uv_handle_t *)srv->goaway_timer, on_handle_closed);
        srv->goaway_timer = NULL;
    }
    if (srv->idle_check != NULL) {
        uv_close((uv_handle_t *)srv->idle_check, on_handle_closed);
        srv->idle_check = NULL;
    }
}

static void free_codec(void *codec)
{
    es_h2_server_t *srv = codec;
    es_buf_dispose(&srv->fields);
    free(srv);
}

const es_codec_ops_t es_http2_server_ops = {
    .name = "h2",
    .input = input,
    .want_input = want_input,
    .writable = writable,
    .flush = flush_streams,
    .header_timeout = header_timeout,
    .drain = drain,
    .unread = unread,
    .idle = idle,
    .abort = abort_streams,
    .free = free_codec,
};

/* ---- the session's events: requests -------------------------------------------------------- */

static void *on_stream_open(void *user, int32_t id)
{
    es_h2_server_t *srv = user;
    es_conn_t *c = srv->conn;
    es_h2_stream_t *hs = malloc(sizeof(*hs));
    if (hs == NULL)
        return NULL;
    es_stream_init(&hs->stream, &down_ops, c->env, c->listener);
    hs->srv = srv;
    hs->last_active = uv_now(c->env->loop);
    if (srv->idle_check != NULL && !uv_is_active((uv_handle_t *)srv->idle_check)) {
        uint64_t half = c->listener->stream_idle_timeout_ms / 2 + 1;
        uv_timer_start(srv->idle_check, on_idle_check, half, half);
    }
    hs->id = id;
    hs->held = 0;
    hs->finished = hs->closed = 0;
    hs->websocket = hs->protocol = hs->body_ended = 0;
    hs->stream.owner.peer_ip = c->peer_ip;
    hs->stream.owner.peer_port = c->peer_port;
    hs->stream.owner.tls = c->tls != NULL;
    hs->stream.owner.protocol = ES_PROTO_HTTP2;
    hs->in_headers = 1;
    srv->in_headers++;
    es_list_push_back(&srv->streams, &hs->link);
    /* The connection is busy: its idle (or preface) timer stops. A header block still incomplete when the read
     * is done gets request_headers_timeout (input()). */
    if (c->timer_kind != ES_CONN_TIMER_NONE && c->timer_kind != ES_CONN_TIMER_DRAIN)
        c->ops->arm(c, ES_CONN_TIMER_NONE, 0);
    es_stats_inc(ES_STAT_H2_STREAMS);
    es_stream_begin(&hs->stream);
    return hs;
}

static const struct {
    const char *name;
    uint8_t len;
    int method;
} known_methods[] = {
    {"GET", 3, ES_METHOD_GET},         {"HEAD", 4, ES_METHOD_HEAD},       {"POST", 4, ES_METHOD_POST},
    {"PUT", 3, ES_METHOD_PUT},         {"DELETE", 6, ES_METHOD_DELETE},   {"OPTIONS", 7, ES_METHOD_OPTIONS},
    {"TRACE", 5, ES_METHOD_TRACE},     {"CONNECT", 7, ES_METHOD_CONNECT}, {"PATCH", 5, ES_METHOD_OTHER},
};

static int set_method(es_h2_stream_t *hs, const char *v, size_t len)
{
    es_stream_t *s = &hs->stream;
    for (size_t i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
        if (known_methods[i].len == len && memcmp(known_methods[i].name, v, len) == 0) {
            s->method = known_methods[i].method;
            s->owner.method = known_methods[i].name;
            s->owner.method_len = len;
            return 0;
        }
    }
    if (len >= sizeof(hs->method))
        return -1;
    memcpy(hs->method, v, len);
    hs->method[len] = '\0';
    s->method = ES_METHOD_OTHER;
    s->owner.method = hs->method;
    s->owner.method_len = (uint32_t)len;
    return 0;
}

static int on_header(void *user, void *stream, const char *name, size_t nlen, const char *value, size_t vlen)
{
    es_h2_stream_t *hs = stream;
    es_stream_t *s = &hs->stream;
    if (nlen > 0 && name[0] == ':') {
        if (es_name_eq(name, nlen, LIT(":method")))
            return set_method(hs, value, vlen);
        if (es_name_eq(name, nlen, LIT(":path")))
            return es_msg_on_first(&s->req, value, vlen);
        if (es_name_eq(name, nlen, LIT(":authority"))) {
            /* Filters and the upstream see the authority as Host, as an HTTP/1.1 request carries it. */
            if (es_msg_find(&s->req, LIT("host"), 0) >= 0)
                return 0;
            return es_msg_on_field(&s->req, LIT("host")) || es_msg_on_value(&s->req, value, vlen) ? -1 : 0;
        }
        if (es_name_eq(name, nlen, LIT(":protocol"))) {
            if (es_name_eq(value, vlen, LIT("websocket")))
                hs->websocket = 1;
            else
                hs->protocol = 1;
        }
        return 0; /* :scheme is the connection's */
    }
    if (es_name_eq(name, nlen, LIT("host")) && es_msg_find(&s->req, LIT("host"), 0) >= 0)
        return 0; /* :authority came first and wins (RFC 9113 8.3.1) */
    return es_msg_on_field(&s->req, name, nlen) || es_msg_on_value(&s->req, value, vlen) ? -1 : 0;
}

/*
 * CONNECT on HTTP/2. With :protocol websocket (RFC 8441) it becomes the HTTP/1.1 upgrade a WebSocket upstream
 * expects (GET, Upgrade: websocket, a fresh Sec-WebSocket-Key); a plain one names host:port as its target. Either
 * way the request is its head alone: the stream's DATA frames are the tunnel's bytes once it opens.
 */
static __attribute__((cold)) int connect_headers(es_h2_stream_t *hs)
{
    es_stream_t *s = &hs->stream;
    if (hs->protocol) {
        es_stream_request_error(s, 501, "an extended CONNECT for a protocol other than websocket");
        return 0;
    }
    if (hs->websocket) {
        unsigned char raw[16];
        char key[25];
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
            for (size_t i = 0; i < sizeof raw; i++)
                raw[i] = (unsigned char)rand();
        for (size_t i = 0, o = 0; i < 16; i += 3) {
            unsigned v = (unsigned)raw[i] << 16 | (i + 1 < 16 ? (unsigned)raw[i + 1] << 8 : 0) |
                         (i + 2 < 16 ? raw[i + 2] : 0);
            key[o++] = b64[(v >> 18) & 63];
            key[o++] = b64[(v >> 12) & 63];
            key[o++] = i + 1 < 16 ? b64[(v >> 6) & 63] : '=';
            key[o++] = i + 2 < 16 ? b64[v & 63] : '=';
        }
        key[24] = '\0';
        s->method = ES_METHOD_GET;
        s->owner.method = "GET";
        s->owner.method_len = 3;
        if (es_msg_add(&s->req, 0, LIT("upgrade"), LIT("websocket")) != 0 ||
            es_msg_add(&s->req, 0, LIT("connection"), LIT("upgrade")) != 0 ||
            (es_msg_find(&s->req, LIT("sec-websocket-key"), 0) < 0 &&
             es_msg_add(&s->req, 0, LIT("sec-websocket-key"), key, 24) != 0)) {
            es_stream_request_error(s, 500, "out of memory");
            return 0;
        }
        s->upgrade_req = 1;
    } else {
        int h = es_msg_find(&s->req, LIT("host"), 0);
        size_t alen = 0;
        const char *auth = h >= 0 ? es_msg_value(&s->req, (uint32_t)h, &alen) : "";
        if (s->req.first_len == 0 && es_msg_on_first(&s->req, auth, alen) != 0) {
            es_stream_request_error(s, 500, "out of memory");
            return 0;
        }
    }
    s->req_has_body = 0;
    if (es_stream_request_headers(s) == 0 && !hs->closed && !s->aborted)
        es_stream_request_complete(s);
    return 0;
}

/* The stream's header block is complete (or abandoned): when none is still arriving, no deadline runs. */
static void headers_arrived(es_h2_stream_t *hs)
{
    es_h2_server_t *srv = hs->srv;
    es_conn_t *c = srv->conn;
    if (!hs->in_headers)
        return;
    hs->in_headers = 0;
    if (--srv->in_headers == 0 && c->timer_kind == ES_CONN_TIMER_HEADERS)
        c->ops->arm(c, ES_CONN_TIMER_NONE, 0);
}

static int on_headers_done(void *user, void *stream, int end_stream)
{
    es_h2_stream_t *hs = stream;
    headers_arrived(hs);
    es_stream_t *s = &hs->stream;
    s->req_has_body = !end_stream;
    if (__builtin_expect(s->method == ES_METHOD_CONNECT, 0))
        return connect_headers(hs);
    es_stream_request_headers(s);
    return 0;
}

static void on_headers_too_large(void *user, void *stream)
{
    es_h2_stream_t *hs = stream;
    headers_arrived(hs);
    es_stream_request_error(&hs->stream, 431, "request header list too large");
}

static int on_trailer(void *user, void *stream, const char *name, size_t nlen, const char *value, size_t vlen)
{
    es_h2_stream_t *hs = stream;
    return es_msg_on_field(&hs->stream.req, name, nlen) || es_msg_on_value(&hs->stream.req, value, vlen) ? -1 : 0;
}

/* Gives the window back for what was delivered, unless the stream must not be read now. */
static void release_window(es_h2_stream_t *hs)
{
    if (hs->held == 0 || hs->closed || es_stream_read_blocked(&hs->stream))
        return;
    es_h2_session_consume(&hs->srv->sess, hs->id, hs->held);
    hs->held = 0;
}

static int on_data(void *user, void *stream, const uint8_t *data, size_t len)
{
    es_h2_stream_t *hs = stream;
    hs->held += len;
    stream_touch(hs);
    if (__builtin_expect(hs->stream.tunnel, 0))
        es_stream_tunnel_data(&hs->stream, (const char *)data, len);
    else
        es_stream_request_body(&hs->stream, (const char *)data, len);
    /* The bytes went upstream (or into the chain's buffer) unless the stream is now blocked: then the window
     * stays shut until it is not (read_changed). */
    release_window(hs);
    return 0;
}

static int on_request_end(void *user, void *stream)
{
    es_h2_stream_t *hs = stream;
    if (__builtin_expect(hs->stream.method == ES_METHOD_CONNECT || hs->stream.upgrade_req, 0)) {
        /* A tunnel's client side ended (END_STREAM): the upstream's side closes once what is queued is written. */
        if (hs->stream.tunnel)
            es_stream_tunnel_client_end(&hs->stream);
        return 0;
    }
    es_stream_request_complete(&hs->stream);
    return 0;
}

static void on_stream_close(void *user, void *stream, uint32_t code)
{
    es_h2_server_t *srv = user;
    es_h2_stream_t *hs = stream;
    headers_arrived(hs);
    hs->closed = 1;
    if (!hs->finished) {
        if (code != ES_H2_NO_ERROR && !hs->stream.resp_done)
            es_stats_inc(ES_STAT_H2_STREAMS_RESET);
        es_stream_abort(&hs->stream);
    }
    /* Freed at the next safe point: the caller of the flush that told us may still be inside the stream. */
    es_list_remove(&hs->link);
    es_list_push_back(&srv->dead, &hs->link);
}

static void on_output_low(void *user, void *stream)
{
    es_h2_stream_t *hs = stream;
    stream_touch(hs);
    es_stream_client_writable(&hs->stream);
}

static int session_write(void *user, const uint8_t *data, size_t len)
{
    es_h2_server_t *srv = user;
    es_conn_t *c = srv->conn;
    if (es_writeq_append(&c->out, data, len) != 0)
        return -ENOMEM;
    return c->out.above_high ? 1 : 0;
}

static uint64_t now_ms(void *user)
{
    return uv_now(((es_h2_server_t *)user)->conn->env->loop);
}

static const es_h2_callbacks_t session_cb = {
    .on_stream_open = on_stream_open,
    .on_header = on_header,
    .on_headers_done = on_headers_done,
    .on_headers_too_large = on_headers_too_large,
    .on_trailer = on_trailer,
    .on_trailers_done = NULL,
    .on_data = on_data,
    .on_request_end = on_request_end,
    .on_stream_close = on_stream_close,
    .on_output_low = on_output_low,
    .write = session_write,
    .now_ms = now_ms,
};

/* ---- es_down_ops_t: the stream's side ------------------------------------------------------ */

/* The fields of m's section `trailers` (hop-by-hop ones dropped, and Content-Length when drop_length), plus
 * up to two of the proxy's own, into srv->fields. Returns the count, or -1 when out of memory. */
static ssize_t collect(es_h2_server_t *srv, const es_msg_t *m, int trailers, int drop_length, const es_h2_field_t *extra,
                       size_t nextra)
{
    srv->fields.len = 0;
    size_t n = 0;
    if (m != NULL) {
        uint32_t from, to;
        es_msg_section(m, trailers, &from, &to);
        int names_others = es_http1_connection_names_others(m);
        for (uint32_t i = from; i < to; i++) {
            if (es_http1_drop_header_in(m, i, names_others))
                continue;
            es_h2_field_t f;
            f.name = es_msg_name(m, i, &f.name_len);
            f.value = es_msg_value(m, i, &f.value_len);
            if (drop_length && es_name_eq(f.name, f.name_len, LIT("content-length")))
                continue;
            if (es_buf_append(&srv->fields, &f, sizeof(f)) != 0)
                return -1;
            n++;
        }
    }
    if (nextra > 0 && es_buf_append(&srv->fields, extra, nextra * sizeof(*extra)) != 0)
        return -1;
    return (ssize_t)(n + nextra);
}

/* A non-negative length in decimal, as "%lld" writes it, without snprintf (~700 instructions a call). */
static size_t format_length(char out[24], int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* The stream cannot be answered: reset it (the client sees RST_STREAM INTERNAL_ERROR). */
static int stream_failed(es_h2_stream_t *hs)
{
    if (!hs->closed)
        es_h2_session_reset(&hs->srv->sess, hs->id, ES_H2_INTERNAL_ERROR);
    flush_later(hs->srv);
    return -1;
}

/* A 101 to a WebSocket upgrade, or a CONNECT's 200: on HTTP/2 both are a 200 that leaves the stream open
 * (RFC 8441 5, RFC 9113 8.5); the upgrade's own fields (Upgrade, Connection, Sec-WebSocket-Accept) stay behind. */
static __attribute__((cold)) int tunnel_head(es_h2_stream_t *hs, const es_msg_t *m)
{
    size_t n = 0;
    es_h2_field_t f[32];
    uint32_t from = 0, to = 0;
    if (m != NULL)
        es_msg_section(m, 0, &from, &to);
    for (uint32_t i = from; i < to && n < 32; i++) {
        f[n].name = es_msg_name(m, i, &f[n].name_len);
        f[n].value = es_msg_value(m, i, &f[n].value_len);
        if (es_name_eq(f[n].name, f[n].name_len, LIT("sec-websocket-accept")) ||
            es_name_eq(f[n].name, f[n].name_len, LIT("content-length")) ||
            es_http1_drop_header_in(m, i, 1))
            continue;
        n++;
    }
    if (es_h2_session_respond(&hs->srv->sess, hs->id, 200, f, n, 0) != 0)
        return stream_failed(hs);
    flush_later(hs->srv);
    return 0;
}

static int resp_headers(es_stream_t *s, int status, const es_msg_t *m, int64_t declared, int flags)
{
    es_h2_stream_t *hs = H2S(s);
    if (hs->closed)
        return -1;
    if (__builtin_expect(flags & ES_RESP_TUNNEL, 0))
        return tunnel_head(hs, m);
    char len[24];
    es_h2_field_t extra = {LIT("content-length"), len, 0};
    size_t nextra = 0;
    if (declared >= 0) {
        extra.value_len = format_length(len, declared);
        nextra = 1;
    }
    int nobody = s->head || status == 204 || status == 304;
    ssize_t n = collect(hs->srv, m, 0, !nobody, &extra, nextra);
    if (n < 0 || es_h2_session_respond(&hs->srv->sess, hs->id, status, (const es_h2_field_t *)hs->srv->fields.base,
                                       (size_t)n, (flags & ES_RESP_END) ? ES_H2_END_STREAM : 0) != 0)
        return stream_failed(hs);
    flush_later(hs->srv);
    return 0;
}

static int resp_body(es_stream_t *s, const char *at, size_t len)
{
    es_h2_stream_t *hs = H2S(s);
    if (hs->closed)
        return -1;
    if (s->head)
        return 0;
    stream_touch(hs);
    if (es_h2_session_send_body(&hs->srv->sess, hs->id, at, len) != 0)
        return stream_failed(hs);
    flush_later(hs->srv);
    return 0;
}

static int resp_end(es_stream_t *s, const es_msg_t *m)
{
    es_h2_stream_t *hs = H2S(s);
    if (hs->closed)
        return -1;
    ssize_t n = 0;
    if (m != NULL && m->ntrailers_from < m->nheaders)
        n = collect(hs->srv, m, 1, 0, NULL, 0);
    hs->body_ended = 1;
    if (n < 0 || es_h2_session_end_body(&hs->srv->sess, hs->id, (const es_h2_field_t *)hs->srv->fields.base,
                                        (size_t)n) != 0) {
        /* A response that ended with its head (END_STREAM there) has nothing more to end. */
        if (s->resp_body_eos || s->head)
            return 0;
        return stream_failed(hs);
    }
    flush_later(hs->srv);
    return 0;
}

static int reply(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len, int close)
{
    es_h2_stream_t *hs = H2S(s);
    if (hs->closed)
        return -1;
    char clen[24];
    es_h2_field_t extra[2] = {
        {LIT("content-length"), clen, format_length(clen, (int64_t)len)},
        {LIT("content-type"), LIT("text/plain")},
    };
    int has_type = headers != NULL && es_msg_find(headers, LIT("content-type"), 0) >= 0;
    size_t nextra = has_type || len == 0 ? 1 : 2;
    ssize_t n = collect(hs->srv, headers, 0, 1, extra, nextra);
    int nobody = len == 0 || s->head;
    if (n < 0 || es_h2_session_respond(&hs->srv->sess, hs->id, status, (const es_h2_field_t *)hs->srv->fields.base,
                                       (size_t)n, nobody ? ES_H2_END_STREAM : 0) != 0)
        return stream_failed(hs);
    if (!nobody && (es_h2_session_send_body(&hs->srv->sess, hs->id, body, len) != 0 ||
                    es_h2_session_end_body(&hs->srv->sess, hs->id, NULL, 0) != 0))
        return stream_failed(hs);
    flush_later(hs->srv);
    return 0;
}

static void send_continue(es_stream_t *s)
{
    es_h2_stream_t *hs = H2S(s);
    if (!hs->closed && es_h2_session_interim(&hs->srv->sess, hs->id, 100, NULL, 0) == 0)
        flush_later(hs->srv);
}

static void reset(es_stream_t *s)
{
    stream_failed(H2S(s));
}

static void finished(es_stream_t *s)
{
    es_h2_stream_t *hs = H2S(s);
    hs->finished = 1;
    if (hs->closed)
        return; /* on the dead list already */
    if (s->tunnel && !hs->body_ended) {
        hs->body_ended = 1; /* the tunnel ended: END_STREAM after what is queued */
        es_h2_session_end_body(&hs->srv->sess, hs->id, NULL, 0);
    }
    flush_later(hs->srv); /* the session closes the stream once its end is written */
}

static void read_changed(es_stream_t *s)
{
    es_h2_stream_t *hs = H2S(s);
    if (hs->held > 0 && !es_stream_read_blocked(s)) {
        release_window(hs);
        flush_later(hs->srv);
    }
}

static int client_behind(es_stream_t *s)
{
    es_h2_stream_t *hs = H2S(s);
    return es_h2_session_buffered(&hs->srv->sess, hs->id) >= ES_WRITE_HIGH;
}

static void flush(es_stream_t *s)
{
    flush_later(H2S(s)->srv);
}

static void abandon_request(es_stream_t *s)
{
    /* The session resets the stream (NO_ERROR) once the response is out, and drops the rest of the request. */
    es_h2_stream_t *hs = H2S(s);
    if (hs->held > 0 && !hs->closed) {
        es_h2_session_consume(&hs->srv->sess, hs->id, hs->held);
        hs->held = 0;
    }
    flush_later(hs->srv);
}

static const es_down_ops_t down_ops = {
    .headers = resp_headers,
    .body = resp_body,
    .end = resp_end,
    .reply = reply,
    .send_continue = send_continue,
    .reset = reset,
    .finished = finished,
    .read_changed = read_changed,
    .client_behind = client_behind,
    .flush = flush,
    .abandon_request = abandon_request,
};

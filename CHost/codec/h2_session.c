/*
 * es_h2_session: lifecycle, input and the request events (see h2_session.h), and at the end the flood counts.
 * Responses are in h2_output.c.
 */
#include "codec/h2_session_int.h"
#include "core/h2_mem.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void es_h2_settings_default(es_h2_settings_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_concurrent_streams = 100;
    cfg->max_header_list_size = 64 * 1024;
    cfg->initial_window_size = NGHTTP2_INITIAL_WINDOW_SIZE;
    cfg->connection_window_size = 1024 * 1024;
    cfg->out_high = 64 * 1024;
    cfg->out_low = 16 * 1024;
    cfg->reset_burst = 1000; /* nghttp2's own defaults */
    cfg->reset_rate = 33;
    cfg->max_continuations = 8;
    cfg->max_outbound_ack = 1000;
    cfg->flood_window_ms = 1000;
    cfg->max_empty_data = 100;
    cfg->max_ping = 100;
    cfg->max_settings = 100;
}

es_h2__stream_t *es_h2__stream(const es_h2_session_t *s, int32_t id)
{
    if (id <= 0)
        return NULL;
    es_h2__stream_t *st = nghttp2_session_get_stream_user_data(s->ng, id);
    return st != NULL && !st->dead ? st : NULL;
}

void es_h2__kill(es_h2_session_t *s, es_h2__stream_t *st, uint32_t code)
{
    if (st->dead)
        return;
    st->dead = 1;
    st->no_input = 1;
    /* Only NOMEM can fail here; the stream then closes with the session. */
    (void)nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, code);
}

void es_h2__terminate(es_h2_session_t *s, uint32_t code)
{
    if (nghttp2_session_terminate_session(s->ng, code) == 0)
        s->goaway_ours++;
}

/* Unlinks a stream that is closing; gives its unconsumed bytes back to the connection's window. */
static void stream_detach(es_h2_session_t *s, es_h2__stream_t *st)
{
    es_list_remove(&st->link);
    es_list_remove(&st->low_link);
    s->nstreams--;
    if (st->unconsumed > 0 && s->ng != NULL)
        (void)nghttp2_session_consume_connection(s->ng, st->unconsumed);
    st->unconsumed = 0;
}

static void stream_free(es_h2__stream_t *st)
{
    es_buf_dispose(&st->out);
    es_buf_dispose(&st->trailers);
    free(st);
}

/* ---- nghttp2's callbacks: input ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    es_h2_session_t *s = user;
    int32_t id = frame->hd.stream_id;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        es_h2__stream_t *st = nghttp2_session_get_stream_user_data(ng, id);
        if (st != NULL)
            st->hdr_bytes = 0; /* trailers: a section of their own */
        return 0;
    }
    es_h2__stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* nghttp2 resets the stream */
    st->user = s->cb->on_stream_open(s->user, id);
    if (st->user == NULL) {
        free(st);
        int rv = nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return nghttp2_is_fatal(rv) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    }
    st->id = id;
    es_list_init(&st->low_link);
    es_buf_init(&st->out);
    es_buf_init(&st->trailers);
    es_list_push_back(&s->streams, &st->link);
    s->nstreams++;
    s->counters.streams_opened++;
    nghttp2_session_set_stream_user_data(ng, id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    es_h2_session_t *s = user;
    es_h2__stream_t *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL || st->no_input)
        return 0;
    int trailer = frame->headers.cat != NGHTTP2_HCAT_REQUEST;
    /* RFC 7541 4.1's size, counted as fields arrive, so a huge section is never accumulated. */
    st->hdr_bytes += (uint64_t)namelen + valuelen + 32;
    if (st->hdr_bytes > s->cfg.max_header_list_size) {
        if (trailer) {
            s->counters.header_list_too_large++;
            es_h2__kill(s, st, NGHTTP2_INTERNAL_ERROR);
        } else if (!st->too_large) {
            st->too_large = 1;
            s->counters.header_list_too_large++;
        }
        return 0;
    }
    if (st->too_large)
        return 0;
    int (*cb)(void *, void *, const char *, size_t, const char *, size_t) =
        trailer ? s->cb->on_trailer : s->cb->on_header;
    if (cb != NULL && cb(s->user, st->user, (const char *)name, namelen, (const char *)value, valuelen) != 0)
        es_h2__kill(s, st, NGHTTP2_INTERNAL_ERROR);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user)
{
    es_h2_session_t *s = user;
    es_h2__stream_t *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL || st->no_input || s->cb->on_data == NULL) /* nobody will consume: give the window back */
        return nghttp2_session_consume(ng, id, len) != 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    st->unconsumed += len;
    if (s->cb->on_data(s->user, st->user, data, len) != 0)
        es_h2__kill(s, st, NGHTTP2_INTERNAL_ERROR);
    return 0;
}

static void request_end(es_h2_session_t *s, es_h2__stream_t *st)
{
    if (s->cb->on_request_end != NULL && s->cb->on_request_end(s->user, st->user) != 0)
        es_h2__kill(s, st, NGHTTP2_INTERNAL_ERROR);
}

static void on_headers_frame(es_h2_session_t *s, es_h2__stream_t *st, const nghttp2_frame *frame, int end)
{
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) { /* trailers (nghttp2 checked END_STREAM) */
        if (s->cb->on_trailers_done != NULL && s->cb->on_trailers_done(s->user, st->user) != 0)
            es_h2__kill(s, st, NGHTTP2_INTERNAL_ERROR);
        else
            request_end(s, st);
        return;
    }
    if (st->too_large) {
        st->no_input = 1; /* its body, if any, is dropped: the answer is 431 */
        if (s->cb->on_headers_too_large != NULL)
            s->cb->on_headers_too_large(s->user, st->user);
        return;
    }
    if (s->cb->on_headers_done != NULL && s->cb->on_headers_done(s->user, st->user, end) != 0)
        es_h2__kill(s, st, NGHTTP2_INTERNAL_ERROR);
    else if (end)
        request_end(s, st);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    es_h2_session_t *s = user;
    es_h2__stream_t *st = NULL;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (st == NULL)
            return 0;
        if (end)
            st->req_ended = 1;
        if (st->no_input)
            return 0;
        if (frame->hd.type == NGHTTP2_HEADERS)
            on_headers_frame(s, st, frame, end);
        else if (end)
            request_end(s, st);
        return 0;
    case NGHTTP2_RST_STREAM:
        s->counters.streams_reset_by_peer++;
        return 0;
    case NGHTTP2_GOAWAY:
        if (s->cb->on_goaway != NULL)
            s->cb->on_goaway(s->user, frame->goaway.error_code, frame->goaway.last_stream_id);
        return 0;
    default:
        return 0;
    }
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    es_h2_session_t *s = user;
    switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
        if (s->goaway_ours > 0)
            s->goaway_ours--;
        else if (frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR && frame->goaway.opaque_data_len == 0)
            s->counters.rapid_reset++; /* the only GOAWAY nghttp2 queues without a reason */
        else
            s->counters.protocol_errors++;
        return 0;
    case NGHTTP2_RST_STREAM:
        if (frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM)
            s->counters.streams_refused++;
        return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            return 0;
        es_h2__stream_t *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        /* The response is complete before the request: RFC 9113 8.1, the client may stop sending. */
        if (st != NULL && !st->req_ended && !st->dead) {
            st->no_input = 1;
            st->dead = 1;
            (void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        }
        return 0;
    default:
        return 0;
    }
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    es_h2_session_t *s = user;
    es_h2__stream_t *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    stream_detach(s, st);
    if (s->cb->on_stream_close != NULL)
        s->cb->on_stream_close(s->user, st->user, code);
    stream_free(st);
    return 0;
}

/* ---- lifecycle ---- */

static int submit_settings(es_h2_session_t *s)
{
    const es_h2_settings_t *c = &s->cfg;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->initial_window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->max_header_list_size},
        /* No RFC 7540 priority tree: nothing to build or keep for a client's PRIORITY frames. */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    size_t n = sizeof(iv) / sizeof(iv[0]) - (c->enable_connect_protocol ? 0 : 1);
    int rv = nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, n);
    if (rv == 0 && c->connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
        rv = nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)c->connection_window_size);
    return es_h2__err(rv);
}

static int new_session(es_h2_session_t *s)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    /* The caller reopens windows as bytes leave the proxy (es_h2_session_consume). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_stream_reset_rate_limit(opt, s->cfg.reset_burst, s->cfg.reset_rate);
    nghttp2_option_set_max_continuations(opt, s->cfg.max_continuations);
    nghttp2_option_set_max_outbound_ack(opt, s->cfg.max_outbound_ack);
    int rv = nghttp2_session_server_new3(&s->ng, cbs, s, opt, es_h2_mem());
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    return es_h2__err(rv);
}

int es_h2_session_init(es_h2_session_t *s, const es_h2_settings_t *cfg, const es_h2_callbacks_t *cb, void *user)
{
    memset(s, 0, sizeof(*s));
    es_list_init(&s->streams); /* first: es_h2_session_close is safe even after a failed init */
    es_list_init(&s->low);
    if (cfg != NULL)
        s->cfg = *cfg;
    else
        es_h2_settings_default(&s->cfg);
    if (cb == NULL || cb->write == NULL || cb->on_stream_open == NULL || s->cfg.out_low > s->cfg.out_high ||
        s->cfg.initial_window_size > NGHTTP2_MAX_WINDOW_SIZE ||
        s->cfg.connection_window_size > NGHTTP2_MAX_WINDOW_SIZE)
        return -EINVAL;
    s->cb = cb;
    s->user = user;
    es_buf_init(&s->pack);
    es_buf_init(&s->scratch);
    int err = new_session(s);
    if (err == 0 && (err = submit_settings(s)) != 0) {
        nghttp2_session_del(s->ng);
        s->ng = NULL;
    }
    return err;
}

void es_h2_session_close(es_h2_session_t *s)
{
    if (s->ng == NULL) /* init failed, or closed already */
        return;
    s->busy = 1;
    while (!es_list_empty(&s->streams)) {
        es_h2__stream_t *st = es_container_of(s->streams.next, es_h2__stream_t, link);
        nghttp2_session_set_stream_user_data(s->ng, st->id, NULL);
        stream_detach(s, st);
        if (s->cb->on_stream_close != NULL)
            s->cb->on_stream_close(s->user, st->user, NGHTTP2_CANCEL);
        stream_free(st);
    }
    nghttp2_session_del(s->ng);
    s->ng = NULL;
    es_buf_dispose(&s->pack);
    es_buf_dispose(&s->scratch);
}

/* ---- input and output ---- */

/* mem_recv failed: queue the GOAWAY the error calls for; feed returns what this returns from now on. */
static int feed_failed(es_h2_session_t *s, ssize_t rv)
{
    uint32_t code = NGHTTP2_INTERNAL_ERROR;
    switch (rv) {
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
        s->counters.continuation_flood++;
        code = NGHTTP2_ENHANCE_YOUR_CALM;
        break;
    case NGHTTP2_ERR_FLOODED:
        s->counters.outbound_flood++;
        code = NGHTTP2_ENHANCE_YOUR_CALM;
        break;
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
        s->counters.protocol_errors++;
        code = NGHTTP2_PROTOCOL_ERROR;
        break;
    default:
        break;
    }
    es_h2__terminate(s, code);
    s->error = rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
    return s->error;
}

int es_h2_session_feed(es_h2_session_t *s, const uint8_t *data, size_t len)
{
    if (s->busy)
        return -EBUSY;
    if (s->error != 0)
        return s->error;
    if (es_h2__scan(s, data, len) != 0)
        return s->error = -EPROTO;
    s->busy = 1;
    ssize_t rv = nghttp2_session_mem_recv(s->ng, data, len);
    s->busy = 0;
    return rv < 0 ? feed_failed(s, rv) : 0;
}

static void fire_low(es_h2_session_t *s)
{
    while (!es_list_empty(&s->low)) {
        es_h2__stream_t *st = es_container_of(s->low.next, es_h2__stream_t, low_link);
        es_list_remove(&st->low_link);
        if (s->cb->on_output_low != NULL)
            s->cb->on_output_low(s->user, st->user);
    }
}

int es_h2_session_flush(es_h2_session_t *s)
{
    if (s->busy)
        return -EBUSY;
    s->busy = 1;
    int err = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(s->ng, &p);
        if (n < 0) {
            err = n == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
            break;
        }
        if (n == 0) {
            if (es_list_empty(&s->low))
                break;
            fire_low(s); /* it may have appended more body */
            continue;
        }
        int rc = s->cb->write(s->user, p, (size_t)n);
        if (rc != 0) {
            err = rc < 0 ? rc : 0;
            break;
        }
    }
    fire_low(s);
    s->busy = 0;
    return err;
}

int es_h2_session_want_read(const es_h2_session_t *s)
{
    return s->error == 0 && nghttp2_session_want_read(s->ng);
}

int es_h2_session_want_write(const es_h2_session_t *s)
{
    return nghttp2_session_want_write(s->ng);
}

int es_h2_session_consume(es_h2_session_t *s, int32_t stream_id, size_t n)
{
    es_h2__stream_t *st = stream_id > 0 ? nghttp2_session_get_stream_user_data(s->ng, stream_id) : NULL;
    if (st == NULL)
        return 0; /* closed: its bytes went back at close */
    if (n > st->unconsumed)
        return -EINVAL;
    st->unconsumed -= n;
    return es_h2__err(nghttp2_session_consume(s->ng, stream_id, n));
}

int es_h2_session_reset(es_h2_session_t *s, int32_t stream_id, uint32_t error_code)
{
    es_h2__stream_t *st = es_h2__stream(s, stream_id);
    if (st == NULL)
        return -ENOENT;
    es_h2__kill(s, st, error_code);
    return 0;
}

int es_h2_session_shutdown_notice(es_h2_session_t *s)
{
    int rv = nghttp2_submit_shutdown_notice(s->ng);
    if (rv == 0)
        s->goaway_ours++;
    return es_h2__err(rv);
}

int es_h2_session_goaway(es_h2_session_t *s, uint32_t error_code)
{
    int32_t last = nghttp2_session_get_last_proc_stream_id(s->ng);
    int rv = nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, last, error_code, NULL, 0);
    if (rv == 0)
        s->goaway_ours++;
    return es_h2__err(rv);
}

/* ---- limits ---- */
/*
 * Floods nghttp2 1.52 does not cut: empty DATA frames without END_STREAM, PING and SETTINGS frames, each
 * counted per connection in a fixed window of the caller's clock. The count reads frame headers ahead of
 * nghttp2 (a 9-byte header, then a skip), because nghttp2 calls nothing for frames it ignores, such as
 * DATA on a closed stream, and those are the cheapest flood. A flood is answered before nghttp2 sees the
 * bytes: GOAWAY ENHANCE_YOUR_CALM, and feed fails.
 */
#define MAGIC_LEN 24 /* NGHTTP2_CLIENT_MAGIC */

enum { FLOOD_EMPTY_DATA, FLOOD_PING, FLOOD_SETTINGS };

static uint64_t now_ms(const es_h2_session_t *s)
{
    if (s->cb->now_ms != NULL)
        return s->cb->now_ms(s->user);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One more frame of kind `i`: whether it is one too many in the current window. */
static int over(es_h2_session_t *s, int i, uint64_t now, uint32_t max)
{
    if (now - s->flood[i].start >= s->cfg.flood_window_ms) {
        s->flood[i].start = now;
        s->flood[i].count = 0;
    }
    return ++s->flood[i].count > max;
}

/* The frame header in s->scan.hd is complete: count it. -1 on a flood. */
static int on_frame_header(es_h2_session_t *s, uint64_t now)
{
    const uint8_t *hd = s->scan.hd;
    uint32_t length = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
    uint8_t type = hd[3], flags = hd[4];
    s->scan.left = length;
    s->scan.have = 0;
    switch (type) {
    case NGHTTP2_DATA:
        if (flags & NGHTTP2_FLAG_END_STREAM)
            return 0;
        if (length == 0) {
            if (over(s, FLOOD_EMPTY_DATA, now, s->cfg.max_empty_data)) {
                s->counters.empty_data_flood++;
                return -1;
            }
        } else if (flags & NGHTTP2_FLAG_PADDED) {
            s->scan.pad = 1; /* all padding is empty too: decided on the next byte */
        }
        return 0;
    case NGHTTP2_PING:
        if (over(s, FLOOD_PING, now, s->cfg.max_ping)) {
            s->counters.ping_flood++;
            return -1;
        }
        return 0;
    case NGHTTP2_SETTINGS:
        if (over(s, FLOOD_SETTINGS, now, s->cfg.max_settings)) {
            s->counters.settings_flood++;
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

int es_h2__scan(es_h2_session_t *s, const uint8_t *p, size_t len)
{
    static const char magic[MAGIC_LEN + 1] = NGHTTP2_CLIENT_MAGIC;
    const uint8_t *end = p + len;
    uint64_t now = 0;
    int have_now = 0;

    while (p < end && !s->scan.off) {
        if (s->scan.magic < MAGIC_LEN) {
            if (*p != (uint8_t)magic[s->scan.magic]) {
                s->scan.off = 1;
                return 0;
            }
            s->scan.magic++;
            p++;
            continue;
        }
        if (s->scan.left > 0) {
            if (s->scan.pad) {
                s->scan.pad = 0;
                if (*p == s->scan.left - 1) { /* the pad length: nothing but padding */
                    if (!have_now++)
                        now = now_ms(s);
                    if (over(s, FLOOD_EMPTY_DATA, now, s->cfg.max_empty_data)) {
                        s->counters.empty_data_flood++;
                        goto flood;
                    }
                }
            }
            size_t skip = (size_t)(end - p) < s->scan.left ? (size_t)(end - p) : s->scan.left;
            p += skip;
            s->scan.left -= (uint32_t)skip;
            continue;
        }
        s->scan.hd[s->scan.have++] = *p++;
        if (s->scan.have < sizeof(s->scan.hd))
            continue;
        if (!have_now++)
            now = now_ms(s);
        if (on_frame_header(s, now) != 0)
            goto flood;
    }
    return 0;

flood:
    s->scan.off = 1;
    es_h2__terminate(s, ES_H2_ENHANCE_YOUR_CALM);
    return -EPROTO;
}

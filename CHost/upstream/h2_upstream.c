/*
 * HTTP/2 to a cluster with `http2: true`: prior knowledge in clear, ALPN h2 over the cluster's TLS. One connection
 * carries many exchanges, up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS; each exchange is an es_upconn_t
 * (u->h2 set) that the stream uses as it uses an HTTP/1.1 connection. A GOAWAY from the upstream stops new streams
 * on that connection; the streams it processed finish, the others are sent again on a new connection (they were
 * refused, so sending them again is safe). Response windows reopen only as the client takes the bytes.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/h2_mem.h"
#include "core/log.h"
#include "core/stats.h"
#include "upstream/upstream.h"

#define LIT(s) s, sizeof(s) - 1

/* The receive window the proxy gives each upstream stream, and the connection. */
#define H2UP_STREAM_WINDOW (256 * 1024)
#define H2UP_CONN_WINDOW (4 * 1024 * 1024)

typedef enum { H2UP_CONNECTING, H2UP_READY, H2UP_CLOSING } h2up_state_t;

struct es_h2up_s {
    uv_tcp_t tcp;
    uv_timer_t timer;            /* connect timeout, then the idle timeout with no stream */
    uv_connect_t connect_req;
    es_pool_t *pool;
    const es_endpoint_config_t *ep;
    es_link_t link;              /* in pool->h2conns */
    es_link_t streams;           /* es_upconn_t by h2_link */
    es_link_t dead;              /* released inside a read: freed when it is processed */
    uint32_t nstreams;
    uint32_t max_streams;        /* the peer's SETTINGS_MAX_CONCURRENT_STREAMS */
    nghttp2_session *ng;
    es_writeq_t out;
    es_tls_t *tls;
    h2up_state_t state;
    int closes_pending;
    unsigned goaway : 1;         /* the peer said GOAWAY: no new stream here */
    unsigned reading : 1;
    unsigned in_recv : 1;
};

static void h2up_close(es_h2up_t *h);
static void h2up_flush(es_h2up_t *h);

/* ---- streams ------------------------------------------------------------------------------- */

static void stream_free(es_upconn_t *u)
{
    es_list_remove(&u->h2_link);
    es_buf_dispose(&u->h2_body);
    es_msg_dispose(&u->resp);
    free(u);
}

/* The exchange on `u` failed: tell its user (who may send it again when it was refused unprocessed). */
static void stream_failed(es_upconn_t *u, int may_retry, int status, const char *reason)
{
    es_upuser_t *user = u->user;
    u->user = NULL;
    if (user == NULL)
        return;
    if (may_retry && user->ops->retry != NULL && user->ops->retry(user))
        return;
    user->ops->failed(user, status, reason);
}

static void arm_idle(es_h2up_t *h);

/* Detaches a stream from its connection (the user is done with it, or it closed). */
static void stream_detach(es_upconn_t *u)
{
    es_h2up_t *h = u->h2;
    if (h == NULL)
        return;
    if (u->h2_id > 0 && h->ng != NULL && h->state != H2UP_CLOSING)
        nghttp2_session_set_stream_user_data(h->ng, u->h2_id, NULL);
    es_list_remove(&u->h2_link);
    es_list_init(&u->h2_link);
    h->nstreams--;
    u->h2 = NULL;
    if (h->nstreams == 0 && h->state == H2UP_READY && (h->goaway || h->pool->env->stopping))
        h2up_close(h);
    else
        arm_idle(h);
}

/* Frees `u` now, or after the read being processed when the connection is inside nghttp2 (its callbacks
 * may still hold it). */
static void stream_release_memory(es_h2up_t *h, es_upconn_t *u)
{
    if (h != NULL && h->in_recv && h->state != H2UP_CLOSING) {
        es_list_push_back(&h->dead, &u->h2_link);
        return;
    }
    stream_free(u);
}

static void free_dead(es_h2up_t *h)
{
    while (!es_list_empty(&h->dead))
        stream_free(es_container_of(h->dead.next, es_upconn_t, h2_link));
}

/* ---- the connection ------------------------------------------------------------------------ */

static void on_closed(uv_handle_t *handle)
{
    es_h2up_t *h = handle->data;
    if (--h->closes_pending > 0)
        return;
    if (h->tls != NULL) {
        es_tls_dispose(h->tls);
        free(h->tls);
    }
    es_writeq_dispose(&h->out);
    if (h->ng != NULL)
        nghttp2_session_del(h->ng);
    free_dead(h);
    free(h);
}

/* Every stream still on the connection fails (retried when it was never processed); the user forgets it. */
static void h2up_fail_all(es_h2up_t *h, int status, const char *reason)
{
    while (!es_list_empty(&h->streams)) {
        es_upconn_t *u = es_container_of(h->streams.next, es_upconn_t, h2_link);
        int processed = u->got_bytes;
        stream_detach(u);
        stream_failed(u, !processed, status, reason);
        stream_free(u);
    }
}

static void h2up_close(es_h2up_t *h)
{
    if (h->state == H2UP_CLOSING)
        return;
    h->state = H2UP_CLOSING;
    es_list_remove(&h->link);
    h->closes_pending = 2;
    uv_close((uv_handle_t *)&h->tcp, on_closed);
    uv_close((uv_handle_t *)&h->timer, on_closed);
}

static void h2up_die(es_h2up_t *h, int status, const char *reason)
{
    if (h->state == H2UP_CLOSING)
        return;
    h2up_close(h);
    h2up_fail_all(h, status, reason);
}

static void on_idle_timeout(uv_timer_t *t)
{
    es_h2up_t *h = t->data;
    es_stats_inc(ES_STAT_UPSTREAM_IDLE_CLOSED);
    es_debug("cluster \"%s\": HTTP/2 connection idle for %llu ms; closing", h->pool->cfg->name,
             (unsigned long long)h->pool->cfg->idle_timeout_ms);
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    h2up_flush(h);
    h2up_close(h);
}

static void arm_idle(es_h2up_t *h)
{
    if (h->nstreams == 0 && h->state == H2UP_READY)
        uv_timer_start(&h->timer, on_idle_timeout, h->pool->cfg->idle_timeout_ms, 0);
}

/* Frames nghttp2 has queued go to the write queue, then the socket. */
static void h2up_flush(es_h2up_t *h)
{
    if (h->state == H2UP_CLOSING || h->ng == NULL)
        return;
    while (!h->out.above_high) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->ng, &data);
        if (n < 0) {
            h2up_die(h, 502, "upstream HTTP/2 session error");
            return;
        }
        if (n == 0)
            break;
        if (es_writeq_append(&h->out, data, (size_t)n) != 0) {
            h2up_die(h, 503, "out of memory");
            return;
        }
    }
    if (h->state == H2UP_READY)
        es_writeq_flush(&h->out);
    if (h->state != H2UP_CLOSING && !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng) &&
        es_writeq_idle(&h->out))
        h2up_die(h, 502, "upstream HTTP/2 session ended");
}

static void on_out_event(es_writeq_t *q, int status)
{
    es_h2up_t *h = q->data;
    if (h->state == H2UP_CLOSING)
        return;
    if (status < 0) {
        h2up_die(h, 503, "upstream write error");
        return;
    }
    h2up_flush(h); /* the queue made room: nghttp2 may write more */
    /* Streams whose request bodies wait may go on. */
    for (es_link_t *l = h->streams.next; l != &h->streams && h->state != H2UP_CLOSING;) {
        es_upconn_t *u = es_container_of(l, es_upconn_t, h2_link);
        l = l->next;
        if (u->h2_behind && u->h2_body.len < ES_WRITE_LOW && !h->out.above_high && u->user != NULL) {
            u->h2_behind = 0;
            u->user->ops->writable(u->user);
        }
    }
}

/* ---- nghttp2's events ---------------------------------------------------------------------- */

static es_upconn_t *stream_of(nghttp2_session *ng, int32_t id)
{
    return nghttp2_session_get_stream_user_data(ng, id);
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
    return NGHTTP2_ERR_WOULDBLOCK; /* mem_send is used */
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    es_upconn_t *u = stream_of(ng, frame->hd.stream_id);
    if (u == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    u->got_bytes = 1;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        u->status = 0;
        for (size_t i = 0; i < vlen && i < 3; i++)
            u->status = u->status * 10 + (value[i] - '0');
        return 0;
    }
    if (u->interim)
        return 0; /* the fields of a 1xx response are not forwarded */
    if (es_msg_on_field(&u->resp, (const char *)name, nlen) != 0 ||
        es_msg_on_value(&u->resp, (const char *)value, vlen) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    es_upconn_t *u = stream_of(ng, frame->hd.stream_id);
    if (u != NULL && !u->headers_done)
        u->interim = 0;
    return 0;
}

static void complete(es_upconn_t *u)
{
    if (u->complete || u->user == NULL)
        return;
    u->complete = 1;
    u->user->ops->complete(u->user, 1);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    es_h2up_t *h = user;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        h->goaway = 1;
        es_debug("cluster \"%s\": upstream GOAWAY (last stream %d, error %u)", h->pool->cfg->name,
                 frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        h->max_streams = nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        return 0;
    }
    es_upconn_t *u = stream_of(ng, frame->hd.stream_id);
    if (u == NULL || u->user == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (!u->headers_done) {
            if (u->status >= 100 && u->status < 200) {
                es_msg_reset(&u->resp); /* 1xx: the final response follows */
                u->interim = 1;
                return 0;
            }
            es_msg_headers_done(&u->resp);
            u->headers_done = 1;
            /* A response that ends with its head (gRPC's trailers-only answers) has no body: say so. */
            u->content_length = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ? 0 : es_msg_content_length(&u->resp);
            if (u->user->ops->headers(u->user, u) < 0) {
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_CANCEL);
                return 0;
            }
            if (u->h2 == NULL)
                return 0; /* answered and let go of inside the headers event */
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            complete(u);
    } else if (frame->hd.type == NGHTTP2_DATA && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        complete(u);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    es_upconn_t *u = stream_of(ng, id);
    if (u == NULL || u->user == NULL || !u->headers_done) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    u->got_bytes = 1;
    u->user->ops->body(u->user, (const char *)data, len);
    if (u->h2 == NULL) {
        nghttp2_session_consume_connection(ng, len); /* the user let go of it (and reset the stream) */
        return 0;
    }
    if (u->h2_paused)
        u->h2_held += len; /* the client is behind: the window stays shut until it catches up */
    else
        nghttp2_session_consume(ng, id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    es_h2up_t *h = user;
    es_upconn_t *u = stream_of(ng, id);
    if (u == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    u->h2_id = -1;
    if (u->complete || u->user == NULL)
        return 0;
    /* Refused (or beyond a GOAWAY's last stream): the upstream did not process it, so it may go again. */
    int refused = code == NGHTTP2_REFUSED_STREAM && !u->got_bytes;
    char reason[120];
    snprintf(reason, sizeof reason, "upstream reset the stream (%s)", nghttp2_http2_strerror(code));
    es_debug("cluster \"%s\": %s", h->pool->cfg->name, reason);
    stream_detach(u);
    stream_failed(u, refused, refused ? 503 : 502, reason);
    stream_release_memory(h, u);
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    es_upconn_t *u = src->ptr;
    size_t n = u->h2_body.len < len ? u->h2_body.len : len;
    if (n > 0) {
        memcpy(buf, u->h2_body.base, n);
        es_buf_consume(&u->h2_body, n);
    }
    if (u->h2_body.len == 0 && u->h2_body_end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (u->h2_trailers)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* the trailers end it */
    } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* ---- reading the socket -------------------------------------------------------------------- */

static void recv_plain(es_h2up_t *h, const char *data, size_t len)
{
    h->in_recv = 1;
    ssize_t n = nghttp2_session_mem_recv(h->ng, (const uint8_t *)data, len);
    h->in_recv = 0;
    free_dead(h);
    if (n < 0) {
        es_warn("cluster \"%s\": HTTP/2 error from %s:%u: %s", h->pool->cfg->name, h->ep->address, h->ep->port,
                nghttp2_strerror((int)n));
        h2up_die(h, 502, "upstream HTTP/2 protocol error");
        return;
    }
    h2up_flush(h);
}

static void alloc_block(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    es_h2up_t *h = handle->data;
    buf->base = es_env_block_get(h->pool->env);
    buf->len = buf->base ? ES_BLOCK_SIZE : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    es_h2up_t *h = s->data;
    es_env_t *env = h->pool->env;
    if (nread < 0 && h->state != H2UP_CLOSING) {
        es_debug("cluster \"%s\": HTTP/2 connection closed (%s)", h->pool->cfg->name, uv_err_name((int)nread));
        h2up_die(h, 503, "upstream closed the connection");
    } else if (nread > 0 && h->state == H2UP_READY && h->tls == NULL) {
        recv_plain(h, buf->base, (size_t)nread);
    } else if (nread > 0 && h->state == H2UP_READY) {
        es_tls_t *t = h->tls;
        if (es_tls_feed(t, buf->base, (size_t)nread) != 0) {
            h2up_die(h, 503, "out of memory");
        } else if (!t->handshake_done) {
            int r = es_tls_handshake(t);
            if (r == ES_TLS_ERROR) {
                es_stats_inc(ES_STAT_UPSTREAM_TLS_FAILURES);
                h2up_die(h, 503, "upstream TLS handshake failed");
            } else if (r == 1 && !es_tls_alpn_h2(t)) {
                es_warn("cluster \"%s\": %s:%u did not agree to HTTP/2 (ALPN)", h->pool->cfg->name, h->ep->address,
                        h->ep->port);
                h2up_die(h, 502, "upstream does not speak HTTP/2");
            } else if (r == 1) {
                uv_timer_stop(&h->timer);
            }
            es_writeq_flush(&h->out);
        }
        char *plain = es_env_block_get(env);
        while (plain != NULL && h->state == H2UP_READY && t->handshake_done) {
            ssize_t n = es_tls_read(t, plain, ES_BLOCK_SIZE);
            if (n > 0) {
                recv_plain(h, plain, (size_t)n);
                continue;
            }
            if (n != ES_TLS_AGAIN)
                h2up_die(h, 503, "upstream closed the connection");
            break;
        }
        if (plain != NULL)
            es_env_block_put(env, plain);
    }
    if (buf->base != NULL)
        es_env_block_put(env, buf->base);
    /* Each stream's client gets what this read produced. */
    for (es_link_t *l = h->streams.next; l != &h->streams;) {
        es_upconn_t *u = es_container_of(l, es_upconn_t, h2_link);
        l = l->next;
        if (u->user != NULL)
            u->user->ops->after_read(u->user);
    }
    if (h->state != H2UP_CLOSING)
        arm_idle(h);
}

static void on_connect_timeout(uv_timer_t *t)
{
    es_h2up_t *h = t->data;
    es_warn("cluster \"%s\": HTTP/2 connect to %s:%u timed out", h->pool->cfg->name, h->ep->address, h->ep->port);
    h2up_die(h, 503, "upstream connect timeout");
}

static void on_connect(uv_connect_t *req, int status)
{
    es_h2up_t *h = req->data;
    if (h->state == H2UP_CLOSING)
        return;
    if (status < 0) {
        char reason[160];
        snprintf(reason, sizeof reason, "upstream connect error: %s", uv_strerror(status));
        es_warn("cluster \"%s\": connect to %s:%u failed: %s", h->pool->cfg->name, h->ep->address, h->ep->port,
                uv_strerror(status));
        h2up_close(h);
        h2up_fail_all(h, 503, reason);
        return;
    }
    if (h->tls == NULL)
        uv_timer_stop(&h->timer);
    uv_tcp_nodelay(&h->tcp, 1);
    h->state = H2UP_READY;
    if (uv_read_start((uv_stream_t *)&h->tcp, alloc_block, on_read) == 0)
        h->reading = 1;
    es_writeq_attach(&h->out, (uv_stream_t *)&h->tcp);
    h2up_flush(h); /* the preface and SETTINGS (through TLS, which they set going) */
}

static es_h2up_t *h2up_new(es_pool_t *p)
{
    const es_cluster_config_t *cfg = p->cfg;
    es_h2up_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        free(h);
        return NULL;
    }
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    int err = nghttp2_session_client_new3(&h->ng, cb, h, opt, es_h2_mem());
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (err != 0) {
        free(h);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2UP_STREAM_WINDOW},
    };
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2UP_CONN_WINDOW);
    h->pool = p;
    h->ep = &cfg->endpoints[p->next++ % cfg->nendpoints];
    h->max_streams = 100;
    h->state = H2UP_CONNECTING;
    es_list_init(&h->streams);
    es_list_init(&h->dead);
    es_writeq_init(&h->out, ES_WRITE_HIGH, ES_WRITE_LOW, on_out_event, h);
    uv_tcp_init(p->env->loop, &h->tcp);
    uv_timer_init(p->env->loop, &h->timer);
    h->tcp.data = h;
    h->timer.data = h;
    h->connect_req.data = h;
    es_list_push_back(&p->h2conns, &h->link);
    if (cfg->tls_ctx != NULL) {
        const char *name = cfg->tls_sni != NULL ? cfg->tls_sni : h->ep->address;
        h->tls = calloc(1, sizeof(*h->tls));
        if (h->tls == NULL || es_tls_init(h->tls, cfg->tls_ctx, name, name) != 0) {
            h2up_close(h);
            return NULL;
        }
        es_writeq_set_tls(&h->out, h->tls);
    }
    if (uv_tcp_connect(&h->connect_req, &h->tcp, (const struct sockaddr *)&h->ep->addr, on_connect) != 0) {
        h2up_close(h);
        return NULL;
    }
    uv_timer_start(&h->timer, on_connect_timeout, cfg->connect_timeout_ms, 0);
    return h;
}

/* ---- what upstream.c delegates -------------------------------------------------------------- */

int es_h2up_acquire(es_pool_t *p, es_upuser_t *user, es_upconn_t **out, int fresh)
{
    es_h2up_t *h = NULL;
    if (!fresh) {
        for (es_link_t *l = p->h2conns.next; l != &p->h2conns; l = l->next) {
            es_h2up_t *c = es_container_of(l, es_h2up_t, link);
            if (c->state != H2UP_CLOSING && !c->goaway && c->nstreams < c->max_streams) {
                h = c;
                break;
            }
        }
    }
    if (h == NULL && (h = h2up_new(p)) == NULL)
        return UV_ENOMEM;
    es_upconn_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return UV_ENOMEM;
    u->pool = p;
    u->ep = h->ep;
    u->state = ES_UP_ACTIVE;
    u->user = user;
    u->h2 = h;
    u->h2x = 1;
    u->h2_id = 0;
    u->content_length = -1;
    u->reused = h->state == H2UP_READY;
    es_msg_init(&u->resp);
    es_buf_init(&u->h2_body);
    es_list_push_back(&h->streams, &u->h2_link);
    h->nstreams++;
    if (h->state == H2UP_READY)
        uv_timer_stop(&h->timer);
    *out = u;
    return 0;
}

static void add_nv(nghttp2_nv *nv, size_t *n, const char *name, size_t nlen, const char *value, size_t vlen)
{
    nv[*n] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
    (*n)++;
}

int es_h2up_send_head(es_upconn_t *u, const es_msg_t *m, const char *method, size_t method_len, int64_t length,
                      int body, const es_forwarded_t *fwd)
{
    es_h2up_t *h = u->h2;
    if (h == NULL)
        return UV_ECONNRESET;
    size_t urllen;
    const char *url = es_msg_first(m, &urllen);
    const char *path = url;
    size_t pathlen = urllen;
    if (urllen > 0 && url[0] != '/') { /* absolute-form: the path part */
        const char *a = memmem(url, urllen, "://", 3);
        const char *p = a != NULL ? memchr(a + 3, '/', urllen - (size_t)(a + 3 - url)) : NULL;
        path = p != NULL ? p : "/";
        pathlen = p != NULL ? urllen - (size_t)(p - url) : 1;
    }
    uint32_t from, to;
    es_msg_section(m, 0, &from, &to);
    size_t cap = 8 + (to - from), n = 0;
    nghttp2_nv stack[64], *nv = cap <= 64 ? stack : malloc(cap * sizeof(*nv));
    if (nv == NULL)
        return UV_ENOMEM;
    char authority[300], xff[512], clen[24];
    int hi = es_msg_find(m, LIT("host"), 0);
    size_t alen;
    const char *auth;
    if (hi >= 0) {
        auth = es_msg_value(m, (uint32_t)hi, &alen);
    } else {
        alen = (size_t)snprintf(authority, sizeof authority, "%s:%u", u->ep->address, u->ep->port);
        auth = authority;
    }
    add_nv(nv, &n, LIT(":method"), method, method_len);
    add_nv(nv, &n, LIT(":scheme"), h->tls != NULL ? "https" : "http", h->tls != NULL ? 5 : 4);
    add_nv(nv, &n, LIT(":authority"), auth, alen);
    add_nv(nv, &n, LIT(":path"), path, pathlen);
    int names_others = es_http1_connection_names_others(m);
    size_t xlen = 0;
    for (uint32_t i = from; i < to; i++) {
        size_t nlen, vlen;
        const char *name = es_msg_name(m, i, &nlen);
        const char *value = es_msg_value(m, i, &vlen);
        if (es_name_eq(name, nlen, LIT("te"))) {
            if (es_value_has_token(value, vlen, LIT("trailers")))
                add_nv(nv, &n, LIT("te"), LIT("trailers")); /* the one TE HTTP/2 carries (gRPC needs it) */
            continue;
        }
        if (es_http1_drop_header_in(m, i, names_others) || es_name_eq(name, nlen, LIT("host")) ||
            es_name_eq(name, nlen, LIT("content-length")) || es_name_eq(name, nlen, LIT("x-forwarded-proto")) ||
            (fwd->drop_expect && es_name_eq(name, nlen, LIT("expect"))))
            continue;
        if (es_name_eq(name, nlen, LIT("x-forwarded-for"))) {
            int w = snprintf(xff + xlen, sizeof xff - xlen, "%.*s, ", (int)vlen, value);
            if (w > 0 && (size_t)w < sizeof xff - xlen)
                xlen += (size_t)w;
            continue;
        }
        /* HTTP/2 field names are lower case (RFC 9113 8.2.1): nghttp2 lower-cases nothing, so neither may we
         * send a name with capitals; es_msg keeps the client's case, so copy-free only when already lower. */
        add_nv(nv, &n, name, nlen, value, vlen);
    }
    int w = snprintf(xff + xlen, sizeof xff - xlen, "%s", fwd->client_ip);
    if (w > 0)
        xlen += (size_t)w;
    add_nv(nv, &n, LIT("x-forwarded-for"), xff, xlen);
    add_nv(nv, &n, LIT("x-forwarded-proto"), fwd->tls ? "https" : "http", fwd->tls ? 5 : 4);
    if (length >= 0)
        add_nv(nv, &n, LIT("content-length"), clen, (size_t)snprintf(clen, sizeof clen, "%lld", (long long)length));
    /* Names go lower case on the wire (RFC 9113 8.2.1); a client's "Content-Type" is copied lowered. */
    char lowbuf[4096], *low = lowbuf;
    size_t need = 0;
    for (size_t i = 4; i < n; i++)
        need += nv[i].namelen;
    if (need > sizeof lowbuf && (low = malloc(need)) == NULL) {
        if (nv != stack)
            free(nv);
        return UV_ENOMEM;
    }
    for (size_t i = 4, at = 0; i < n; i++) {
        for (size_t j = 0; j < nv[i].namelen; j++) {
            uint8_t c = nv[i].name[j];
            low[at + j] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
        }
        nv[i].name = (uint8_t *)low + at;
        at += nv[i].namelen;
    }
    nghttp2_data_provider prd = {.source.ptr = u, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(h->ng, NULL, nv, n, body ? &prd : NULL, u);
    if (nv != stack)
        free(nv);
    if (low != lowbuf)
        free(low);
    if (id < 0)
        return UV_ENOMEM;
    u->h2_id = id;
    u->h2_body_end = !body;
    if (!h->in_recv)
        h2up_flush(h);
    return 0;
}

int es_h2up_send_body(es_upconn_t *u, const char *at, size_t len)
{
    es_h2up_t *h = u->h2;
    if (h == NULL || u->h2_id <= 0)
        return 0;
    if (es_buf_append(&u->h2_body, at, len) != 0)
        return UV_ENOMEM;
    nghttp2_session_resume_data(h->ng, u->h2_id);
    if (u->h2_body.len >= ES_WRITE_HIGH)
        u->h2_behind = 1;
    return 0;
}

int es_h2up_send_end(es_upconn_t *u, const es_msg_t *m)
{
    es_h2up_t *h = u->h2;
    if (h == NULL || u->h2_id <= 0 || u->h2_body_end)
        return 0;
    u->h2_body_end = 1;
    if (m != NULL && m->ntrailers_from < m->nheaders) {
        uint32_t from, to;
        es_msg_section(m, 1, &from, &to);
        nghttp2_nv nv[64];
        char low[4096];
        size_t n = 0, at = 0;
        for (uint32_t i = from; i < to && n < 64; i++) {
            size_t nlen, vlen;
            const char *name = es_msg_name(m, i, &nlen);
            const char *value = es_msg_value(m, i, &vlen);
            if (at + nlen > sizeof low)
                break;
            for (size_t j = 0; j < nlen; j++)
                low[at + j] = (char)(name[j] >= 'A' && name[j] <= 'Z' ? name[j] | 0x20 : name[j]);
            add_nv(nv, &n, low + at, nlen, value, vlen);
            at += nlen;
        }
        u->h2_trailers = 1;
        nghttp2_submit_trailer(h->ng, u->h2_id, nv, n);
    }
    nghttp2_session_resume_data(h->ng, u->h2_id);
    return 0;
}

int es_h2up_behind(const es_upconn_t *u)
{
    return u->h2_behind || (u->h2 != NULL && u->h2->out.above_high);
}

void es_h2up_flush(es_upconn_t *u)
{
    if (u->h2 != NULL && !u->h2->in_recv)
        h2up_flush(u->h2);
}

void es_h2up_read_pause(es_upconn_t *u, int pause)
{
    es_h2up_t *h = u->h2;
    u->h2_paused = pause ? 1 : 0;
    if (!pause && h != NULL && u->h2_held > 0 && u->h2_id > 0) {
        nghttp2_session_consume(h->ng, u->h2_id, u->h2_held);
        u->h2_held = 0;
        if (!h->in_recv)
            h2up_flush(h);
    }
}

/* The user is done with `u`: a stream still open is reset (CANCEL); the connection stays for others. */
void es_h2up_release(es_upconn_t *u)
{
    es_h2up_t *h = u->h2;
    u->user = NULL;
    if (h != NULL) {
        if (u->h2_id > 0 && h->state != H2UP_CLOSING) {
            nghttp2_session_set_stream_user_data(h->ng, u->h2_id, NULL);
            if (nghttp2_session_find_stream(h->ng, u->h2_id) != NULL)
                nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, u->h2_id, NGHTTP2_CANCEL);
            if (u->h2_held > 0)
                nghttp2_session_consume_connection(h->ng, u->h2_held);
        }
        u->h2_id = -1;
        stream_detach(u);
        if (h->state != H2UP_CLOSING && !h->in_recv)
            h2up_flush(h);
    }
    stream_release_memory(h, u);
}

void es_h2up_pool_close(es_pool_t *p)
{
    while (!es_list_empty(&p->h2conns)) {
        es_h2up_t *h = es_container_of(p->h2conns.next, es_h2up_t, link);
        for (es_link_t *l = h->streams.next; l != &h->streams; l = l->next) {
            es_upconn_t *u = es_container_of(l, es_upconn_t, h2_link);
            if (u->user != NULL) {
                es_upuser_t *user = u->user;
                u->user = NULL;
                user->ops->detach(user);
            }
        }
        h2up_close(h);
        while (!es_list_empty(&h->streams)) {
            es_upconn_t *u = es_container_of(h->streams.next, es_upconn_t, h2_link);
            stream_detach(u);
            stream_free(u);
        }
    }
}

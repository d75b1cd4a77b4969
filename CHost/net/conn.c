#include "net/conn.h"

#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/stats.h"
#include "upstream/upstream.h"
#include "worker/worker.h"

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings request_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static void alloc_block(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void process(es_conn_t *c);

static const es_listener_config_t *listener_of(const es_conn_t *c)
{
    return c->listener;
}

/* ---- the connection's timer: header deadline, keep-alive idle, delayed close ---------------- */

static void on_timer(uv_timer_t *t)
{
    es_conn_t *c = t->data;
    const es_listener_config_t *l = listener_of(c);
    es_conn_timer_t kind = (es_conn_timer_t)c->timer_kind;
    c->timer_kind = ES_CONN_TIMER_NONE;
    switch (kind) {
    case ES_CONN_TIMER_HEADERS:
        es_stats_inc(ES_STAT_HEADER_TIMEOUTS);
        if (!c->stream.active && c->rlen == 0) {
            /* Nothing of a request arrived: there is no one to answer. */
            es_debug("client %s:%u: no request within %llu ms; closing", c->peer_ip, c->peer_port,
                     (unsigned long long)l->request_headers_timeout_ms);
            es_conn_abort(c);
            return;
        }
        es_debug("client %s:%u: request head not complete within %llu ms; 408", c->peer_ip, c->peer_port,
                 (unsigned long long)l->request_headers_timeout_ms);
        es_stream__timed_out(&c->stream, 0);
        break;
    case ES_CONN_TIMER_IDLE:
        es_stats_inc(ES_STAT_IDLE_TIMEOUTS);
        es_debug("client %s:%u: idle for %llu ms; closing", c->peer_ip, c->peer_port,
                 (unsigned long long)l->idle_timeout_ms);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_HANDSHAKE:
        es_stats_inc(ES_STAT_TLS_HANDSHAKE_TIMEOUTS);
        es_debug("client %s:%u: TLS handshake not done within %llu ms; closing", c->peer_ip, c->peer_port,
                 (unsigned long long)l->tls_handshake_timeout_ms);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_DRAIN_IDLE:
        es_debug("client %s:%u: idle while the worker drains; closing", c->peer_ip, c->peer_port);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_DRAIN:
        es_stats_inc(ES_STAT_DELAYED_CLOSE_TIMEOUTS);
        es_debug("client %s:%u: delayed close timeout", c->peer_ip, c->peer_port);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_NONE:
        break;
    }
}

static void arm_timer(es_conn_t *c, es_conn_timer_t kind, uint64_t ms)
{
    c->timer_kind = kind;
    if (kind == ES_CONN_TIMER_NONE || ms == 0) {
        c->timer_kind = ES_CONN_TIMER_NONE;
        uv_timer_stop(&c->timer);
        return;
    }
    if (kind == ES_CONN_TIMER_HEADERS)
        uv_update_time(c->tcp.loop); /* the deadline counts from now, not from when the loop woke */
    uv_timer_start(&c->timer, on_timer, ms + ES_CLOCK_SLACK_MS, 0);
}

/* A request begins (its first byte arrived, or the connection was accepted): its head has a deadline. */
static void request_begins(es_conn_t *c)
{
    arm_timer(c, ES_CONN_TIMER_HEADERS, listener_of(c)->request_headers_timeout_ms);
}

void es_conn__headers_done(es_conn_t *c)
{
    if (c->timer_kind == ES_CONN_TIMER_HEADERS)
        arm_timer(c, ES_CONN_TIMER_NONE, 0);
}

static void on_out_event(es_writeq_t *q, int status)
{
    es_conn_t *c = q->data;
    if (c->closing)
        return;
    if (status < 0) {
        es_debug("client %s:%u: write failed: %s", c->peer_ip, c->peer_port, uv_strerror(status));
        es_conn_abort(c);
    } else if (status == ES_WRITEQ_LOW) {
        es_stream__client_writable(&c->stream);
    } else if (status == ES_WRITEQ_DRAINED && c->close_after) {
        es_conn_close_after_flush(c);
    } else if (status == ES_WRITEQ_DRAINED && !c->stream.active) {
        es_writeq_release(q); /* idle between requests: hold no buffers */
    }
}

void es_conn_accept(es_worker_t *w, const void *listener_cfg, uv_stream_t *server)
{
    es_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        es_error("out of memory accepting a connection");
        return;
    }
    es_stats_inc(ES_STAT_CONNECTIONS);
    c->worker = w;
    c->listener = listener_cfg;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->closes_pending = 0;
    es_list_push_back(&w->conns, &c->link);
    es_writeq_init(&c->out, ES_WRITE_HIGH, ES_WRITE_LOW, on_out_event, c);
    es_stream__init(&c->stream, c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    es_h1_guard_init(&c->guard, ((const es_listener_config_t *)listener_cfg)->max_request_headers);

    int err = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (err) {
        es_debug("accept: %s", uv_strerror(err));
        es_conn_abort(c);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->peer_ip, sizeof(c->peer_ip));
            c->peer_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->peer_ip, sizeof(c->peer_ip));
            c->peer_port = ntohs(a->sin_port);
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    es_writeq_attach(&c->out, (uv_stream_t *)&c->tcp);
    const es_listener_config_t *l = listener_cfg;
    if (l->tls_ctx != NULL) {
        c->tls = calloc(1, sizeof(*c->tls));
        if (c->tls == NULL || es_tls_init(c->tls, l->tls_ctx, NULL, NULL) != 0) {
            es_error("out of memory starting TLS on a connection");
            es_conn_abort(c);
            return;
        }
        es_writeq_set_tls(&c->out, c->tls);
        arm_timer(c, ES_CONN_TIMER_HANDSHAKE, l->tls_handshake_timeout_ms);
    } else {
        request_begins(c);
    }
    es_debug("accepted connection from %s:%u on listener \"%s\"", c->peer_ip, c->peer_port,
             ((const es_listener_config_t *)listener_cfg)->name);
    es_conn__update_reading(c);
}

static void closed_one(es_conn_t *c)
{
    if (--c->closes_pending > 0)
        return;
    es_stream__dispose(&c->stream);
    es_writeq_dispose(&c->out);
    if (c->tls != NULL) {
        es_tls_dispose(c->tls);
        free(c->tls);
    }
    es_worker_t *w = c->worker;
    if (c->rbuf != NULL)
        es_worker_block_put(w, c->rbuf);
    free(c);
    es_stats_sub(ES_STAT_CONNECTIONS, 1);
    es_worker__conn_closed(w);
}

static void on_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    es_conn_t *c = h->data;
    free(h);
    closed_one(c);
}

static uv_timer_t *lazy_timer(es_conn_t *c, uv_timer_t **slot)
{
    if (*slot == NULL && !c->closing) {
        uv_timer_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return NULL;
        uv_timer_init(c->tcp.loop, t);
        t->data = c;
        *slot = t;
    }
    return *slot;
}

uv_timer_t *es_conn__request_timer(es_conn_t *c)
{
    return lazy_timer(c, &c->request_timer);
}

uv_timer_t *es_conn__filter_timer(es_conn_t *c)
{
    return lazy_timer(c, &c->filter_timer);
}

void es_conn_abort(es_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    es_list_remove(&c->link);
    es_stream__abort(&c->stream);
    if (c->stream.up != NULL) {
        es_upconn_abandon(c->stream.up);
        c->stream.up = NULL;
    }
    c->closes_pending = 2 + (c->request_timer != NULL) + (c->filter_timer != NULL);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    if (c->request_timer != NULL)
        uv_close((uv_handle_t *)c->request_timer, on_timer_closed);
    if (c->filter_timer != NULL)
        uv_close((uv_handle_t *)c->filter_timer, on_timer_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    es_conn_t *c = req->data;
    free(req); /* runs before the handle's close callback, even when cancelled */
    if (status < 0 && !c->closing)
        es_conn_abort(c);
}

void es_conn_close_after_flush(es_conn_t *c)
{
    if (c->closing || c->draining)
        return;
    c->close_after = 1;
    if (c->tls != NULL && c->tls->handshake_done && !c->tls_notified) {
        /* Say the end in TLS too, so the client knows the response was not cut off: after the response, whose
         * plaintext may still wait to be encrypted (OpenSSL refuses to write after its close_notify). */
        c->tls_notified = 1;
        if (es_writeq_encode(&c->out) != 0 || c->closing)
            return;
        es_tls_close_notify(c->tls);
        es_writeq_flush(&c->out);
        if (c->closing)
            return;
    }
    if (!es_writeq_idle(&c->out))
        return; /* on_out_event calls back when drained */
    /*
     * Closing with unread input makes the kernel send RST, which can destroy the response before
     * the client reads it. If the request was not read completely, half-close and drain first.
     */
    int unread = c->rlen > 0 || (c->stream.active && !c->stream.req_done) || c->force_drain;
    if (!unread) {
        es_conn_abort(c);
        return;
    }
    c->draining = 1;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        es_conn_abort(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        es_conn_abort(c);
        return;
    }
    if (c->request_timer != NULL)
        uv_timer_stop(c->request_timer);
    arm_timer(c, ES_CONN_TIMER_DRAIN, listener_of(c)->delayed_close_timeout_ms);
    if (c->rbuf != NULL) {
        es_worker_block_put(c->worker, c->rbuf);
        c->rbuf = NULL;
        c->rlen = 0;
        c->approved = 0;
    }
    es_conn__update_reading(c);
}

void es_conn__update_reading(es_conn_t *c)
{
    if (c->closing)
        return;
    /* While a request waits for its response the parser is paused, but the socket is still read
     * (into the one read block) so that a client that goes away is seen at once: its stream is
     * reset and a RUNNING filter cancelled. A full block stops reading until the parser goes on. */
    int flow = !c->up_blocked && !c->filter_blocked && !c->close_after;
    /* With TLS, ciphertext not yet decrypted counts as unparsed input too. */
    size_t backlog = c->tls != NULL ? es_tls_pending_input(c->tls) : 0;
    int want = c->draining || (flow && backlog < ES_BLOCK_SIZE && (!c->waiting || c->rlen < ES_BLOCK_SIZE));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_block, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* How long a draining worker leaves an idle keep-alive connection open: the grace, or idle_timeout if shorter. */
static uint64_t drain_grace(const es_conn_t *c)
{
    uint64_t idle = listener_of(c)->idle_timeout_ms;
    return idle != 0 && idle < ES_DRAIN_IDLE_GRACE_MS ? idle : ES_DRAIN_IDLE_GRACE_MS;
}

void es_conn_drain(es_conn_t *c)
{
    if (c->closing || c->close_after || c->draining || c->stream.active || c->rlen > 0)
        return; /* a request in progress: its response says Connection: close and the close follows */
    if (c->timer_kind == ES_CONN_TIMER_IDLE || c->timer_kind == ES_CONN_TIMER_HEADERS)
        arm_timer(c, ES_CONN_TIMER_DRAIN_IDLE, drain_grace(c));
}

/* A keep-alive stream finished: bytes of the next request are already here (pipelined), so its
 * head is due; or the connection is idle, and gives its buffers back to the worker's cache. */
static void between_requests(es_conn_t *c)
{
    if (c->rlen > 0) {
        request_begins(c);
        return;
    }
    if (c->worker->draining) {
        /* The response went out keep-alive before the drain began: the client may already be sending. */
        arm_timer(c, ES_CONN_TIMER_DRAIN_IDLE, drain_grace(c));
    } else {
        arm_timer(c, ES_CONN_TIMER_IDLE, listener_of(c)->idle_timeout_ms);
    }
    es_msg_dispose(&c->stream.req);
    es_writeq_release(&c->out);
}

void es_conn__stream_finished(es_conn_t *c)
{
    es_stream_t *s = &c->stream;
    int keepalive = s->keepalive;
    s->active = 0;
    if (c->request_timer != NULL)
        uv_timer_stop(c->request_timer);
    if (!keepalive) {
        es_conn_close_after_flush(c);
        return;
    }
    if (c->waiting) {
        c->waiting = 0;
        http_parser_pause(&c->parser, 0);
    }
    /* Inside the parser (the stream was answered there) the bytes it has not consumed are not
     * counted off yet: process() decides between idle and the next head when it is done. */
    if (c->parsing) {
        c->finished_in_parse = 1;
        return;
    }
    between_requests(c);
    process(c);
}

static void alloc_block(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    es_conn_t *c = h->data;
    if (c->tls != NULL && !c->draining) {
        /* Ciphertext goes to OpenSSL at once; plaintext reaches rbuf as the parser makes room. */
        buf->base = es_worker_block_get(c->worker);
        buf->len = buf->base ? ES_BLOCK_SIZE : 0;
        return;
    }
    if (c->rbuf == NULL) {
        c->rbuf = es_worker_block_get(c->worker);
        c->rlen = 0;
    }
    if (c->rbuf == NULL || c->draining) {
        /* Draining reuses the block from offset 0: the bytes are dropped anyway. */
        buf->base = c->rbuf;
        buf->len = c->rbuf ? ES_BLOCK_SIZE : 0;
        return;
    }
    buf->base = c->rbuf + c->rlen;
    buf->len = ES_BLOCK_SIZE - c->rlen;
}

/* Plain HTTP on a TLS port: say so in plain HTTP (as nginx does), then close after a drain. */
static void plain_http_on_tls(es_conn_t *c)
{
    static const char reply[] = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 48\r\n"
                                "connection: close\r\n\r\nthis port speaks HTTPS (TLS): use https:// here\n";
    es_stats_inc(ES_STAT_TLS_PLAIN_HTTP);
    es_debug("client %s:%u: plain HTTP on a TLS listener", c->peer_ip, c->peer_port);
    arm_timer(c, ES_CONN_TIMER_NONE, 0);
    if (es_writeq_append_raw(&c->out, reply, sizeof(reply) - 1) != 0) {
        es_conn_abort(c);
        return;
    }
    c->force_drain = 1;
    es_conn_close_after_flush(c);
    es_writeq_flush(&c->out);
}

/* Ciphertext from the client. Returns 0 to go on parsing, -1 when the connection is done with. */
static int tls_input(es_conn_t *c, const char *data, size_t len)
{
    es_tls_t *t = c->tls;
    if (!c->tls_seen) {
        c->tls_seen = 1;
        /* A TLS connection starts with a handshake record (22); a letter is an HTTP method. */
        if (data[0] >= 'A' && data[0] <= 'Z') {
            plain_http_on_tls(c);
            return -1;
        }
    }
    if (es_tls_feed(t, data, len) != 0) {
        es_conn_abort(c);
        return -1;
    }
    if (t->handshake_done)
        return 0;
    int r = es_tls_handshake(t);
    es_writeq_flush(&c->out); /* the handshake's own messages, or its alert */
    if (c->closing)
        return -1;
    if (r == ES_TLS_ERROR) {
        char why[200];
        es_stats_inc(ES_STAT_TLS_HANDSHAKE_FAILURES);
        es_debug("client %s:%u: TLS handshake failed: %s", c->peer_ip, c->peer_port, es_tls_error(t, why, sizeof why));
        arm_timer(c, ES_CONN_TIMER_NONE, 0);
        es_conn_close_after_flush(c);
        return -1;
    }
    if (r != 1)
        return -1; /* more of the handshake to come */
    es_stats_inc(ES_STAT_TLS_HANDSHAKES);
    es_debug("client %s:%u: %s", c->peer_ip, c->peer_port, es_tls_version(t));
    request_begins(c);
    return 0;
}

/* Decrypts into rbuf as far as it has room. Returns 0, or ES_TLS_CLOSED / ES_TLS_ERROR. */
static int tls_fill(es_conn_t *c)
{
    if (c->tls == NULL || !c->tls->handshake_done || c->tls_eof)
        return 0;
    if (c->rbuf == NULL) {
        c->rbuf = es_worker_block_get(c->worker);
        c->rlen = 0;
        if (c->rbuf == NULL)
            return 0;
    }
    while (c->rlen < ES_BLOCK_SIZE) {
        ssize_t n = es_tls_read(c->tls, c->rbuf + c->rlen, ES_BLOCK_SIZE - c->rlen);
        if (n > 0) {
            c->rlen += (size_t)n;
            continue;
        }
        if (n == ES_TLS_AGAIN)
            break;
        return (int)n;
    }
    return 0;
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    es_conn_t *c = h->data;
    /* With TLS the block holds ciphertext (unless draining reused rbuf): it goes back after use. */
    char *cipher = c->tls != NULL && buf->base != NULL && buf->base != c->rbuf ? buf->base : NULL;
    if (c->closing) {
        if (cipher != NULL)
            es_worker_block_put(c->worker, cipher);
        return;
    }
    if (nread < 0) {
        if (c->draining || !c->stream.active)
            es_debug("client %s:%u: closed (%s)", c->peer_ip, c->peer_port, uv_err_name((int)nread));
        else
            es_debug("client %s:%u: closed mid-request (%s)", c->peer_ip, c->peer_port, uv_err_name((int)nread));
        if (cipher != NULL)
            es_worker_block_put(c->worker, cipher);
        es_conn_abort(c);
        return;
    }
    if (c->draining) {
        if (cipher != NULL)
            es_worker_block_put(c->worker, cipher);
        if (c->rbuf != NULL) {
            es_worker_block_put(c->worker, c->rbuf);
            c->rbuf = NULL;
        }
        return;
    }
    if (nread == 0) {
        if (cipher != NULL)
            es_worker_block_put(c->worker, cipher);
        if (c->rlen == 0 && c->rbuf != NULL) {
            es_worker_block_put(c->worker, c->rbuf);
            c->rbuf = NULL;
        }
        return;
    }
    if (cipher != NULL) {
        int r = tls_input(c, cipher, (size_t)nread);
        es_worker_block_put(c->worker, cipher);
        if (r < 0 || c->closing)
            return;
    } else {
        c->rlen += (size_t)nread;
    }
    if (c->timer_kind == ES_CONN_TIMER_IDLE || c->timer_kind == ES_CONN_TIMER_DRAIN_IDLE)
        request_begins(c); /* the first byte of the next request on a keep-alive connection */
    process(c);
}

/* Feeds unparsed bytes to the parser until they run out or a request must wait for its response.
 * Each byte is checked by the guard first, once, and the parser gets only what it passed. */
static void process(es_conn_t *c)
{
    c->parsing = 1;
    int tls = 0;
    while ((tls = tls_fill(c)) == 0 && c->rlen > 0 && !c->closing && !c->close_after && !c->draining) {
        if (c->approved < c->rlen) {
            ssize_t ok = es_h1_guard_scan(&c->guard, c->rbuf + c->approved, c->rlen - c->approved);
            if (ok < 0) {
                es_debug("client %s:%u: bad request: %s", c->peer_ip, c->peer_port, c->guard.why);
                c->rlen = 0;
                es_stream__request_error(&c->stream, c->guard.status, c->guard.why);
                break;
            }
            c->approved += (size_t)ok;
        }
        if (c->approved == 0) {
            /* The guard waits for the parser to reach a message boundary it already saw: they disagree. */
            es_warn("client %s:%u: request framing check out of step with the parser", c->peer_ip, c->peer_port);
            c->rlen = 0;
            es_stream__request_error(&c->stream, 400, "framing");
            break;
        }
        c->message_ended = 0;
        size_t n = http_parser_execute(&c->parser, &request_settings, c->rbuf, c->approved);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->closing)
            break;
        if (n < c->rlen)
            memmove(c->rbuf, c->rbuf + n, c->rlen - n);
        c->rlen -= n;
        /* After a message, what the guard passed beyond it (a body it did not frame) is checked again. */
        c->approved = c->message_ended ? 0 : c->approved - n;
        if (e == HPE_PAUSED) {
            if (c->waiting)
                break; /* resumed by es_conn__stream_finished */
            http_parser_pause(&c->parser, 0);
            continue;
        }
        if (e != HPE_OK) {
            es_debug("client %s:%u: bad request: %s", c->peer_ip, c->peer_port, http_errno_description(e));
            c->rlen = 0;
            /* A callback that refused the request has answered it already. http-parser's own limit on
             * header bytes (HTTP_MAX_HEADER_SIZE) is a head too large. */
            if (!c->close_after && !c->draining)
                es_stream__request_error(&c->stream, e == HPE_HEADER_OVERFLOW ? 431 : 400, http_errno_name(e));
            break;
        }
    }
    c->parsing = 0;
    if (c->closing)
        return;
    if (c->finished_in_parse && !c->close_after && !c->draining) {
        c->finished_in_parse = 0;
        if (!c->stream.active)
            between_requests(c);
        else if (!c->stream.req_headers_done)
            request_begins(c); /* a pipelined request whose head is still coming */
    }
    if (tls != 0) {
        /* close_notify or a TLS error: like the end of a plain connection, after what came before it. */
        c->tls_eof = 1;
        es_debug("client %s:%u: %s", c->peer_ip, c->peer_port, tls == ES_TLS_CLOSED ? "TLS close_notify" : "TLS error");
        es_stream__flush(&c->stream);
        if (!c->closing && !c->close_after && !c->draining)
            es_conn_abort(c);
        return;
    }
    if (c->rlen == 0 && c->rbuf != NULL) {
        c->approved = 0;
        es_worker_block_put(c->worker, c->rbuf);
        c->rbuf = NULL;
    }
    es_stream__flush(&c->stream);
    if (!c->closing)
        es_conn__update_reading(c);
}

static int on_message_begin(http_parser *p)
{
    es_conn_t *c = p->data;
    es_stream__begin(&c->stream);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    es_conn_t *c = p->data;
    return es_msg_on_first(&c->stream.req, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    es_conn_t *c = p->data;
    return es_msg_on_field(&c->stream.req, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    es_conn_t *c = p->data;
    return es_msg_on_value(&c->stream.req, at, len);
}

static int on_headers_complete(http_parser *p)
{
    es_conn_t *c = p->data;
    es_h1_guard_body(&c->guard, (p->flags & F_CHUNKED) != 0);
    return es_stream__request_headers(&c->stream) < 0 ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    es_conn_t *c = p->data;
    es_stream__request_body(&c->stream, at, len);
    return c->closing ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    es_conn_t *c = p->data;
    /* Stop after each request: the next one (pipelined) waits until this one is answered. */
    http_parser_pause(p, 1);
    c->waiting = 1;
    c->message_ended = 1;
    es_h1_guard_next(&c->guard);
    es_stream__request_complete(&c->stream);
    return 0;
}

#include "codec/http1_server.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/h1_guard.h"
#include "codec/http1.h"
#include "core/log.h"
#include "net/conn.h"
#include "stream/stream.h"

#define LIT(s) s, sizeof(s) - 1

typedef struct {
    es_stream_t stream;          /* the exchange being served (one at a time) */
    llhttp_t parser;
    es_h1_guard_t guard;         /* the checks llhttp lacks (h1_guard.h), before the parser sees bytes */
    uint32_t approved;           /* leading unparsed bytes the guard passed and the parser has not (< a read block) */
    unsigned keepalive : 1;
    unsigned http10 : 1;
    unsigned resp_chunked : 1;   /* the response body goes to the client chunked */
    unsigned parsing : 1;        /* inside llhttp_execute: do not re-enter */
    unsigned waiting : 1;        /* parser paused at a message end until the stream finishes */
    unsigned message_ended : 1;  /* on_message_complete ran in the current parser call */
    unsigned finished_in_parse : 1; /* the stream finished inside llhttp_execute */
    unsigned tunnel : 1;         /* a 101 / CONNECT 200 went out: the client's bytes are the tunnel's */
} es_h1_server_t;

#define SERVER_OF(s) ((es_h1_server_t *)(s))

/* The codec's memory follows its connection's (es_http1_server_init gets c + 1). */
static inline es_conn_t *conn_of(const es_h1_server_t *h)
{
    return (es_conn_t *)h - 1;
}

static int on_message_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static const llhttp_settings_t request_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static const es_down_ops_t down_ops;

/* A request begins (its first byte arrived, or the connection is ready): its head has a deadline. */
static void request_begins(es_h1_server_t *h)
{
    es_conn_t *c = conn_of(h);
    c->ops->arm(c, ES_CONN_TIMER_HEADERS, c->listener->request_headers_timeout_ms);
}

const size_t es_http1_server_size = sizeof(es_h1_server_t);
_Static_assert(_Alignof(es_h1_server_t) <= 8, "the codec lives 8-aligned behind its connection (net/conn.c)");

void *es_http1_server_init(void *mem, es_conn_t *c)
{
    es_h1_server_t *h = mem; /* == c + 1 */
    es_stream_init(&h->stream, &down_ops, c->env, c->listener);
    h->stream.owner.peer_ip = c->peer_ip;
    h->stream.owner.peer_port = c->peer_port;
    h->stream.owner.tls = c->tls != NULL;
    h->stream.owner.protocol = ES_PROTO_HTTP11;
    llhttp_init(&h->parser, HTTP_REQUEST, &request_settings);
    h->parser.data = h;
    es_h1_guard_init(&h->guard, c->listener->max_request_headers);
    if (c->timer_kind != ES_CONN_TIMER_HEADERS)
        request_begins(h); /* after a TLS handshake; a cleartext connection's deadline runs from its accept */
    return h;
}

/* The response about to be written must end the connection: the request is not all read, or the worker
 * drains (each request still to come on a connection is answered with Connection: close). */
static int must_close(const es_h1_server_t *h)
{
    return es_stream_request_unread(&h->stream) || conn_of(h)->env->draining;
}

/* A keep-alive stream finished: bytes of the next request are already here (pipelined), so its head is due;
 * or the connection is idle, and gives its buffers back to the worker's cache. `buffered`: unparsed bytes. */
static void between_requests(es_h1_server_t *h, size_t buffered)
{
    es_conn_t *c = conn_of(h);
    if (buffered > 0) {
        request_begins(h);
        return;
    }
    if (c->env->draining) {
        /* The response went out keep-alive before the drain began: the client may already be sending. */
        c->ops->arm(c, ES_CONN_TIMER_DRAIN_IDLE, c->ops->drain_grace(c));
    } else {
        c->ops->arm(c, ES_CONN_TIMER_IDLE, c->listener->idle_timeout_ms);
    }
    es_msg_dispose(&h->stream.req);
    es_writeq_release(&c->out);
}

/* ---- es_codec_ops_t: the connection's side ------------------------------------------------- */

/* Feeds bytes to the parser until they run out or a request must wait for its response. Each byte is
 * checked by the guard first, once, and the parser gets only what it passed. */
static ssize_t input(void *codec, const char *data, size_t len)
{
    es_h1_server_t *h = codec;
    es_conn_t *c = conn_of(h);
    if (__builtin_expect(h->tunnel, 0)) {
        es_stream_tunnel_data(&h->stream, data, len);
        return c->closing ? -1 : (ssize_t)len;
    }
    if (c->timer_kind == ES_CONN_TIMER_IDLE || c->timer_kind == ES_CONN_TIMER_DRAIN_IDLE)
        request_begins(h); /* the first byte of the next request on a keep-alive connection */
    size_t done = 0;
    h->parsing = 1;
    while (done < len && !h->waiting && !c->closing && !c->close_after && !c->draining) {
        const char *at = data + done;
        size_t avail = len - done;
        if (h->approved < avail) {
            ssize_t ok = es_h1_guard_scan(&h->guard, at + h->approved, avail - h->approved);
            if (ok < 0) {
                es_debug("client %s:%u: bad request: %s", c->peer_ip, c->peer_port, h->guard.why);
                done = len;
                es_stream_request_error(&h->stream, h->guard.status, h->guard.why);
                break;
            }
            h->approved += (size_t)ok;
        }
        if (h->approved == 0) {
            /* The guard waits for the parser to reach a message boundary it already saw: they disagree. */
            es_warn("client %s:%u: request framing check out of step with the parser", c->peer_ip, c->peer_port);
            done = len;
            es_stream_request_error(&h->stream, 400, "framing");
            break;
        }
        h->message_ended = 0;
        llhttp_errno_t e = llhttp_execute(&h->parser, at, h->approved);
        size_t n = e == HPE_OK ? h->approved : (size_t)(llhttp_get_error_pos(&h->parser) - at);
        if (c->closing)
            break;
        done += n;
        /* After a message, what the guard passed beyond it (a body it did not frame) is checked again. */
        h->approved = h->message_ended ? 0 : h->approved - n;
        if (e == HPE_PAUSED) {
            if (h->waiting)
                break; /* resumed when the stream finishes */
            llhttp_resume(&h->parser);
            continue;
        }
        if (e == HPE_PAUSED_UPGRADE) {
            /* An upgrade request that was answered without one (no 101): HTTP/1.1 goes on. */
            llhttp_resume_after_upgrade(&h->parser);
            continue;
        }
        if (e != HPE_OK) {
            const char *why = llhttp_get_error_reason(&h->parser);
            es_debug("client %s:%u: bad request: %s (%s)", c->peer_ip, c->peer_port, why, llhttp_errno_name(e));
            done = len;
            /* A callback that refused the request has answered it already. */
            if (!c->close_after && !c->draining)
                es_stream_request_error(&h->stream, 400, why != NULL ? why : llhttp_errno_name(e));
            break;
        }
    }
    h->parsing = 0;
    if (c->closing)
        return -1;
    if (h->finished_in_parse && !c->close_after && !c->draining) {
        h->finished_in_parse = 0;
        if (!h->stream.active)
            between_requests(h, len - done);
        else if (!h->stream.req_headers_done)
            request_begins(h); /* a pipelined request whose head is still coming */
    }
    if (done == len)
        h->approved = 0;
    return (ssize_t)done;
}

static int want_input(void *codec, size_t buffered)
{
    /* While a request waits for its response the parser is paused, but the socket is still read (into the
     * one read block) so that a client that goes away is seen at once: its stream is reset and a RUNNING
     * filter cancelled. A full block stops reading until the parser goes on. */
    es_h1_server_t *h = codec;
    return !es_stream_read_blocked(&h->stream) && (!h->waiting || buffered < ES_BLOCK_SIZE || h->tunnel);
}

static void writable(void *codec, int drained)
{
    es_h1_server_t *h = codec;
    if (!drained)
        es_stream_client_writable(&h->stream);
    else if (!h->stream.active)
        es_writeq_release(&conn_of(h)->out); /* idle between requests: hold no buffers */
}

static void flush_upstream(void *codec)
{
    es_stream_flush_upstream(&((es_h1_server_t *)codec)->stream);
}

static void header_timeout(void *codec)
{
    es_stream_timed_out(&((es_h1_server_t *)codec)->stream, 0);
}

static void drain(void *codec)
{
    es_h1_server_t *h = codec;
    es_conn_t *c = conn_of(h);
    if (h->stream.active || c->rlen > 0)
        return; /* a request in progress: its response says Connection: close and the close follows */
    if (c->timer_kind == ES_CONN_TIMER_IDLE || c->timer_kind == ES_CONN_TIMER_HEADERS)
        c->ops->arm(c, ES_CONN_TIMER_DRAIN_IDLE, c->ops->drain_grace(c));
}

static int unread(void *codec)
{
    es_h1_server_t *h = codec;
    return h->stream.active && !h->stream.req_done;
}

static int idle(void *codec)
{
    return !((es_h1_server_t *)codec)->stream.active;
}

static void abort_streams(void *codec)
{
    es_stream_abort(&((es_h1_server_t *)codec)->stream);
}

static void free_codec(void *codec)
{
    es_h1_server_t *h = codec;
    es_stream_dispose(&h->stream); /* the memory is the connection's */
}

const es_codec_ops_t es_http1_server_ops = {
    .name = "http/1.1",
    .input = input,
    .want_input = want_input,
    .writable = writable,
    .flush = flush_upstream,
    .header_timeout = header_timeout,
    .drain = drain,
    .unread = unread,
    .idle = idle,
    .abort = abort_streams,
    .free = free_codec,
};

/* ---- the parser's events: the request ------------------------------------------------------ */

static int on_message_begin(llhttp_t *p)
{
    es_h1_server_t *h = p->data;
    es_stream_begin(&h->stream);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    es_h1_server_t *h = p->data;
    return es_msg_on_first(&h->stream.req, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    es_h1_server_t *h = p->data;
    return es_msg_on_field(&h->stream.req, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    es_h1_server_t *h = p->data;
    return es_msg_on_value(&h->stream.req, at, len);
}

/*
 * Every Transfer-Encoding of `m` taken as one list: 0 when it is exactly "chunked"; 400 when chunked is
 * not the final coding (the body's end cannot be known: RFC 9112 6.3); 501 when other codings come
 * before it (the proxy re-frames the body, so they would reach the upstream undone).
 */
static int transfer_coding_verdict(const es_msg_t *m)
{
    int tokens = 0, last_chunked = 0;
    for (int i = es_msg_find(m, LIT("transfer-encoding"), 0); i >= 0;
         i = es_msg_find(m, LIT("transfer-encoding"), (uint32_t)i + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)i, &vlen);
        for (size_t k = 0; k < vlen;) {
            while (k < vlen && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
                k++;
            size_t start = k;
            while (k < vlen && v[k] != ',' && v[k] != ' ' && v[k] != '\t')
                k++;
            if (k == start)
                continue;
            tokens++;
            last_chunked = es_name_eq(v + start, k - start, LIT("chunked"));
        }
    }
    return !last_chunked ? 400 : tokens > 1 ? 501 : 0;
}

/* An HTTP/1.1 request asking to switch to WebSocket: Upgrade names websocket (Connection: upgrade llhttp checked). */
static int asks_websocket(const es_msg_t *m)
{
    for (int i = es_msg_find(m, LIT("upgrade"), 0); i >= 0; i = es_msg_find(m, LIT("upgrade"), (uint32_t)i + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)i, &vlen);
        if (es_value_has_token(v, vlen, LIT("websocket")))
            return 1;
    }
    return 0;
}

/* llhttp stops after this head (CONNECT, or Upgrade with Connection: upgrade): the bytes behind it are a tunnel's
 * if the answer opens one. */
static __attribute__((noinline, cold)) void upgrade_or_connect(es_h1_server_t *h, llhttp_t *p)
{
    es_stream_t *s = &h->stream;
    if (s->method == ES_METHOD_CONNECT)
        h->keepalive = 0; /* whatever the answer, what follows a CONNECT is not HTTP */
    else if (!h->http10 && !s->req_has_body && asks_websocket(&s->req))
        s->upgrade_req = 1;
    else
        p->upgrade = 0; /* another protocol (h2c, ...), or a body: an ordinary request, Upgrade dropped */
}

static int on_headers_complete(llhttp_t *p)
{
    es_h1_server_t *h = p->data;
    es_conn_t *c = conn_of(h);
    es_stream_t *s = &h->stream;
    es_h1_guard_body(&h->guard, (p->flags & F_CHUNKED) != 0);
    if (c->timer_kind == ES_CONN_TIMER_HEADERS)
        c->ops->arm(c, ES_CONN_TIMER_NONE, 0); /* request_headers_timeout no longer applies */
    s->method = p->method <= HTTP_TRACE ? (int)p->method : ES_METHOD_OTHER;
    s->owner.method = llhttp_method_name((llhttp_method_t)p->method);
    s->owner.method_len = (uint32_t)strlen(s->owner.method);
    h->http10 = p->http_major == 1 && p->http_minor == 0;
    s->owner.protocol = h->http10 ? ES_PROTO_HTTP10 : ES_PROTO_HTTP11;
    h->keepalive = llhttp_should_keep_alive(p) ? 1 : 0;
    h->resp_chunked = 0;
    s->req_has_body = (p->flags & F_CHUNKED) || p->content_length > 0;
    if (es_msg_find(&s->req, LIT("transfer-encoding"), 0) >= 0) {
        /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. Codings other than chunked
         * would reach the upstream undone once the proxy re-frames the body: refuse them (501). */
        if (h->http10) {
            es_stream_request_error(s, 400, "Transfer-Encoding in an HTTP/1.0 request");
            return -1;
        }
        int verdict = transfer_coding_verdict(&s->req);
        if (verdict != 0) {
            es_stream_request_error(s, verdict, verdict == 400 ? "Transfer-Encoding does not end with chunked"
                                                               : "a transfer coding other than chunked");
            return -1;
        }
    }
    if (__builtin_expect(p->upgrade, 0))
        upgrade_or_connect(h, p);
    if (!h->http10 && s->req_has_body) {
        int e = es_msg_find(&s->req, LIT("expect"), 0);
        if (e >= 0) {
            size_t vlen;
            const char *v = es_msg_value(&s->req, (uint32_t)e, &vlen);
            s->expect_continue = es_value_has_token(v, vlen, LIT("100-continue"));
        }
    }
    return es_stream_request_headers(s) < 0 ? -1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    es_h1_server_t *h = p->data;
    es_stream_request_body(&h->stream, at, len);
    return conn_of(h)->closing ? -1 : 0;
}

static int on_message_complete(llhttp_t *p)
{
    es_h1_server_t *h = p->data;
    /* Stop after each request: the next one (pipelined) waits until this one is answered. */
    h->waiting = 1;
    h->message_ended = 1;
    es_h1_guard_next(&h->guard);
    es_stream_request_complete(&h->stream);
    return HPE_PAUSED;
}

/* ---- es_down_ops_t: the stream's side ------------------------------------------------------ */

static int failed(es_h1_server_t *h)
{
    conn_of(h)->ops->abort(conn_of(h));
    return -1;
}

/* A 101 to a WebSocket upgrade (with its Upgrade fields and Connection: upgrade), or a 200 to a CONNECT: no
 * framing, no Connection: close; after it the connection is a tunnel until either side closes. */
static __attribute__((noinline, cold)) int tunnel_head(es_h1_server_t *h, int status, const es_msg_t *m)
{
    h->keepalive = 0;
    h->resp_chunked = 0;
    size_t rlen;
    const char *reason = es_msg_first(m, &rlen);
    if (rlen == 0) {
        reason = es_http1_reason(status);
        rlen = strlen(reason);
    }
    es_writeq_t *q = &conn_of(h)->out;
    int err = es_writeq_appendf(q, "HTTP/1.1 %d %.*s\r\n", status, (int)rlen, reason);
    if (!err)
        err = es_http1_write_headers(q, m, 1, 0, 0);
    if (!err && status == 101)
        err = es_http1_write_upgrade(q, m);
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    if (err)
        return failed(h);
    h->tunnel = 1;
    h->waiting = 0;
    return 0;
}

static int resp_headers(es_stream_t *s, int status, const es_msg_t *m, int64_t declared, int flags)
{
    es_h1_server_t *h = SERVER_OF(s);
    if (__builtin_expect(flags & ES_RESP_TUNNEL, 0))
        return tunnel_head(h, status, m);
    int nobody = s->head || status == 204 || status == 304;
    int eos = (flags & ES_RESP_END) != 0;
    if (!nobody && declared < 0 && !eos) {
        if (h->http10)
            h->keepalive = 0; /* an HTTP/1.0 client learns the body's end from the close */
        else
            h->resp_chunked = 1;
    }
    /* The upstream answers before the request body is all in: once this response is out, the rest
     * of the upload is drained, not waited for, so the connection closes. So does a draining worker's. */
    if (must_close(h))
        h->keepalive = 0;
    size_t rlen;
    const char *reason = es_msg_first(m, &rlen);
    if (rlen == 0) {
        reason = es_http1_reason(status);
        rlen = strlen(reason);
    }
    es_writeq_t *q = &conn_of(h)->out;
    int err = es_writeq_append(q, LIT("HTTP/1.1 "));
    if (!err)
        err = es_writeq_append_u64(q, (uint64_t)status);
    if (!err)
        err = es_writeq_append(q, " ", 1);
    if (!err)
        err = es_writeq_append(q, reason, rlen);
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    if (!err)
        err = es_http1_write_headers(q, m, !nobody, 0, 0);
    if (!err && !nobody && declared >= 0)
        err = es_writeq_append_num_field(q, LIT("content-length"), (uint64_t)declared);
    else if (!err && !nobody && declared < 0 && eos && !h->resp_chunked)
        err = es_writeq_append(q, LIT("content-length: 0\r\n"));
    if (!err && h->resp_chunked)
        err = es_writeq_append(q, LIT("transfer-encoding: chunked\r\n"));
    if (!err && !h->keepalive)
        err = es_writeq_append(q, LIT("connection: close\r\n"));
    else if (!err && h->http10)
        err = es_writeq_append(q, LIT("connection: keep-alive\r\n"));
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err ? failed(h) : 0;
}

static int resp_body(es_stream_t *s, const char *at, size_t len)
{
    es_h1_server_t *h = SERVER_OF(s);
    es_writeq_t *q = &conn_of(h)->out;
    int err = h->resp_chunked ? es_http1_write_chunk(q, at, len) : es_writeq_append(q, at, len);
    return err ? failed(h) : 0;
}

static int resp_end(es_stream_t *s, const es_msg_t *m)
{
    es_h1_server_t *h = SERVER_OF(s);
    if (h->resp_chunked && es_http1_write_last_chunk(&conn_of(h)->out, m) != 0)
        return failed(h);
    return 0;
}

static int reply(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len, int close)
{
    es_h1_server_t *h = SERVER_OF(s);
    /* The rest of the request is not waited for (nor is a body held back for 100 Continue): the reply
     * says Connection: close and the connection drains and closes (DESIGN.md, closing). */
    if (close || must_close(h))
        h->keepalive = 0;
    es_writeq_t *q = &conn_of(h)->out;
    if (headers == NULL) {
        if (es_http1_write_local_reply(q, status, body, len, h->http10, h->keepalive, s->head) != 0)
            return failed(h);
        return 0;
    }
    int err = es_writeq_appendf(q, "HTTP/1.1 %d %s\r\n", status, es_http1_reason(status));
    int has_type = 0;
    for (uint32_t i = 0; !err && i < headers->nheaders; i++) {
        size_t nlen, vlen;
        const char *name = es_msg_name(headers, i, &nlen);
        const char *value = es_msg_value(headers, i, &vlen);
        /* The proxy owns the framing and the connection. */
        if (es_http1_hop_by_hop(name, nlen) || es_name_eq(name, nlen, LIT("content-length")))
            continue;
        has_type |= es_name_eq(name, nlen, LIT("content-type"));
        err = es_writeq_appendf(q, "%.*s: %.*s\r\n", (int)nlen, name, (int)vlen, value);
    }
    if (!err && !has_type && len > 0)
        err = es_writeq_append(q, LIT("content-type: text/plain\r\n"));
    if (!err)
        err = es_writeq_appendf(q, "content-length: %zu\r\n%s\r\n", len,
                                !h->keepalive ? "connection: close\r\n" : h->http10 ? "connection: keep-alive\r\n" : "");
    if (!err && !s->head)
        err = es_writeq_append(q, body, len);
    return err ? failed(h) : 0;
}

static void send_continue(es_stream_t *s)
{
    es_h1_server_t *h = SERVER_OF(s);
    if (es_writeq_append(&conn_of(h)->out, LIT("HTTP/1.1 100 Continue\r\n\r\n")) != 0)
        failed(h);
}

static void reset(es_stream_t *s)
{
    failed(SERVER_OF(s));
}

static void finished(es_stream_t *s)
{
    es_h1_server_t *h = SERVER_OF(s);
    es_conn_t *c = conn_of(h);
    if (!h->keepalive) {
        c->ops->close_after_flush(c);
        return;
    }
    if (h->waiting) {
        h->waiting = 0;
        /* Inside on_message_complete the parser is not paused yet: input() resumes it when it is. */
        if (!h->parsing)
            llhttp_resume(&h->parser);
    }
    /* Inside the parser (the stream was answered there) the bytes it has not consumed are not counted off
     * yet: input() decides between idle and the next head when it is done. */
    if (h->parsing) {
        h->finished_in_parse = 1;
        return;
    }
    between_requests(h, c->rlen);
    c->ops->process(c);
}

static void read_changed(es_stream_t *s)
{
    es_h1_server_t *h = SERVER_OF(s);
    es_conn_t *c = conn_of(h);
    if (h->tunnel && c->rlen > 0 && !es_stream_read_blocked(s))
        c->ops->process(c); /* bytes that waited in the read buffer (behind the head, or while blocked) */
    else
        c->ops->update_reading(c);
}

static int client_behind(es_stream_t *s)
{
    return conn_of(SERVER_OF(s))->out.above_high;
}

static void flush(es_stream_t *s)
{
    es_conn_t *c = conn_of(SERVER_OF(s));
    if (!c->closing)
        es_writeq_flush(&c->out);
}

static void abandon_request(es_stream_t *s)
{
    /* A response that did not say Connection: close waits for the request's end (a bodiless one whose
     * message-end the parser is about to report); one that did ends the connection once it is out. */
    es_h1_server_t *h = SERVER_OF(s);
    if (!h->keepalive)
        conn_of(h)->ops->close_after_flush(conn_of(h));
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

/*
 * One request/response exchange on a downstream connection: the request runs through the
 * listener's filter chain (if any), is routed and goes upstream; the response runs back through
 * the chain to the client. The proxy's own answers (direct responses, errors, a filter's local
 * reply) are made here too.
 */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "net/conn.h"
#include "filters/filter_chain.h"
#include "codec/http1.h"
#include "core/log.h"
#include "core/router.h"
#include "core/stats.h"
#include "upstream/upstream.h"
#include "worker/worker.h"

#define LIT(s) s, sizeof(s) - 1

static const es_upuser_ops_t upstream_ops;
static void update_upstream_reading(es_stream_t *s);

void es_stream__init(es_stream_t *s, es_conn_t *c)
{
    memset(s, 0, sizeof(*s));
    s->user.ops = &upstream_ops;
    s->conn = c;
    es_msg_init(&s->req);
}

void es_stream__abort(es_stream_t *s)
{
    if (s->filters != NULL && !s->filters->halted) {
        if (s->filters->run.active) {
            es_stats_inc(ES_STAT_FILTER_CANCELLED);
            es_debug("client %s:%u went away while a filter was running; cancelling it", s->conn->peer_ip,
                     s->conn->peer_port);
        }
        es_filters_halt(s->filters);
    }
}

/* Stops the chain once the stream has its answer: a RUNNING hook is cancelled, waiting data dropped. */
static void halt_filters(es_stream_t *s)
{
    if (s->filters != NULL)
        es_filters_halt(s->filters);
}

static void end_filters(es_stream_t *s)
{
    if (s->filters != NULL) {
        es_filters_free(s->filters);
        s->filters = NULL;
    }
}

void es_stream__dispose(es_stream_t *s)
{
    end_filters(s);
    es_msg_dispose(&s->req);
}

static void on_request_timeout(uv_timer_t *t)
{
    es_conn_t *c = t->data;
    es_stats_inc(ES_STAT_REQUEST_TIMEOUTS);
    es_debug("client %s:%u: request not answered within request_timeout (%llu ms)", c->peer_ip, c->peer_port,
             (unsigned long long)((const es_listener_config_t *)c->listener)->request_timeout_ms);
    es_stream__timed_out(&c->stream, 1);
}

void es_stream__begin(es_stream_t *s)
{
    es_conn_t *c = s->conn;
    const es_listener_config_t *l = c->listener;
    end_filters(s);
    es_msg_reset(&s->req);
    memset(&s->route, 0, sizeof(*s) - offsetof(es_stream_t, route));
    s->declared[0] = s->declared[1] = -1;
    s->active = 1;
    uv_timer_t *t;
    if (l->request_timeout_ms > 0 && (t = es_conn__request_timer(c)) != NULL)
        uv_timer_start(t, on_request_timeout, l->request_timeout_ms + ES_CLOCK_SLACK_MS, 0);
}

/* Bytes of this request are still to come: answering now means closing, after a drain. */
static int request_unread(const es_stream_t *s)
{
    return !s->req_headers_done || (!s->req_done && s->req_has_body);
}

/* The response about to be written must end the connection: the request is not all read, or the worker
 * drains (each request still to come on a connection is answered with Connection: close). */
static int must_close(const es_stream_t *s)
{
    return request_unread(s) || s->conn->worker->draining;
}

/* Returns 1 when the stream finished (the connection may already have begun the next request). */
static int maybe_finished(es_stream_t *s)
{
    if (s->active && s->req_done && s->resp_done) {
        end_filters(s); /* each filter's stream-complete and destroy run exactly once, here */
        es_conn__stream_finished(s->conn);
        return 1;
    }
    return 0;
}

/* Detaches the upstream when the exchange ends early: it is mid-exchange, so it is not reused. */
static void drop_upstream(es_stream_t *s)
{
    if (s->up != NULL) {
        es_upconn_abandon(s->up);
        s->up = NULL;
        s->resp = NULL;
    }
    if (s->conn->up_blocked) {
        s->conn->up_blocked = 0;
        es_conn__update_reading(s->conn);
    }
}

static void finish_reply(es_stream_t *s)
{
    halt_filters(s);
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    /* Answered before the request was read: the connection ends once the reply is out (after a drain). */
    if (!maybe_finished(s) && !s->keepalive)
        es_conn_close_after_flush(s->conn);
}

static void local_reply(es_stream_t *s, int status, const char *body, size_t len, int close)
{
    es_conn_t *c = s->conn;
    /* The rest of the request is not waited for (nor is a body held back for 100 Continue): the reply
     * says Connection: close and the connection drains and closes (DESIGN.md, closing). */
    if (close || must_close(s))
        s->keepalive = 0;
    if (es_http1_write_local_reply(&c->out, status, body, len, s->http10, s->keepalive, s->head) != 0) {
        es_conn_abort(c);
        return;
    }
    finish_reply(s);
}

void es_stream__filter_reply(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len)
{
    es_conn_t *c = s->conn;
    drop_upstream(s);
    if (s->resp_started) {
        es_conn_abort(c); /* part of another response is out: the close is all that can be said */
        return;
    }
    if (must_close(s))
        s->keepalive = 0;
    es_writeq_t *q = &c->out;
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
                                !s->keepalive ? "connection: close\r\n" : s->http10 ? "connection: keep-alive\r\n" : "");
    if (!err && !s->head)
        err = es_writeq_append(q, body, len);
    if (err) {
        es_conn_abort(c);
        return;
    }
    finish_reply(s);
}

void es_stream__filter_failed(es_stream_t *s, int status, const char *reason)
{
    halt_filters(s);
    drop_upstream(s);
    if (s->resp_started) {
        es_conn_abort(s->conn);
        return;
    }
    char body[160];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    local_reply(s, status, body, (size_t)n, 0);
}

void es_stream__request_error(es_stream_t *s, int status, const char *why)
{
    es_conn_t *c = s->conn;
    es_stats_inc(status == 431 ? ES_STAT_HEADERS_TOO_LARGE : ES_STAT_BAD_REQUESTS);
    if (s->active && s->resp_started) {
        es_conn_abort(c);
        return;
    }
    if (!s->active)
        es_stream__begin(s); /* the error came before the parser began a message */
    halt_filters(s);
    drop_upstream(s);
    char body[160];
    int n = status == 431   ? snprintf(body, sizeof(body), "request header section too large\n")
            : status == 501 ? snprintf(body, sizeof(body), "not implemented: %s\n", why)
                            : snprintf(body, sizeof(body), "bad request: %s\n", why);
    s->keepalive = 0;
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    if (es_http1_write_local_reply(&c->out, status, body, (size_t)n, s->http10, 0, 0) != 0) {
        es_conn_abort(c);
        return;
    }
    es_conn_close_after_flush(c);
}

void es_stream__timed_out(es_stream_t *s, int whole)
{
    es_conn_t *c = s->conn;
    if (c->closing)
        return;
    if (s->active && s->resp_started) {
        /* Part of the response is out: the close is all that can be said. */
        es_debug("client %s:%u: timed out mid-response; closing", c->peer_ip, c->peer_port);
        es_conn_abort(c);
        return;
    }
    if (!s->active)
        es_stream__begin(s);
    halt_filters(s);
    drop_upstream(s);
    /* Still reading the request: the client is too slow (408). Read, but no answer: the upstream is (504). */
    int upstream_slow = whole && !request_unread(s);
    static const char slow_client[] = "request timeout\n";
    static const char slow_upstream[] = "upstream request timeout\n";
    if (upstream_slow)
        local_reply(s, 504, slow_upstream, sizeof(slow_upstream) - 1, 1);
    else
        local_reply(s, 408, slow_client, sizeof(slow_client) - 1, 1);
    if (!c->closing)
        es_stream__flush(s);
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

static int64_t content_length(const es_msg_t *m)
{
    int i = es_msg_find(m, LIT("content-length"), 0);
    if (i < 0)
        return -1;
    size_t vlen;
    const char *v = es_msg_value(m, (uint32_t)i, &vlen);
    /* The value may carry whitespace around it (RFC 9110 5.5), which http-parser accepts too. */
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vlen--;
    }
    int64_t n = 0;
    for (size_t k = 0; k < vlen; k++) {
        if (v[k] < '0' || v[k] > '9' || n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (v[k] - '0');
    }
    return vlen > 0 ? n : -1;
}

/* Copies the headers of `m` that are forwarded: hop-by-hop ones dropped. With drop_length the
 * proxy states the framing itself, so no Content-Length of the sender's goes along beside it. */
static int write_headers(es_writeq_t *q, const es_msg_t *m, int drop_length, int (*skip)(es_stream_t *, const char *, size_t),
                         es_stream_t *s)
{
    uint32_t from, to;
    es_msg_section(m, 0, &from, &to);
    int names_others = es_http1_connection_names_others(m);
    for (uint32_t i = from; i < to; i++) {
        if (es_http1_drop_header_in(m, i, names_others))
            continue;
        size_t nlen, vlen;
        const char *name = es_msg_name(m, i, &nlen);
        const char *value = es_msg_value(m, i, &vlen);
        if (drop_length && es_name_eq(name, nlen, LIT("content-length")))
            continue;
        if (skip != NULL && skip(s, name, nlen))
            continue;
        int err = es_writeq_append_field(q, name, nlen, value, vlen);
        if (err)
            return err;
    }
    return 0;
}

/* Request headers the proxy sets itself. */
static int skip_request_header(es_stream_t *s, const char *name, size_t nlen)
{
    return es_name_eq(name, nlen, LIT("x-forwarded-for")) || es_name_eq(name, nlen, LIT("x-forwarded-proto")) ||
           (s->expect_continue && es_name_eq(name, nlen, LIT("expect")));
}

/* The request head as it goes upstream: hop-by-hop headers removed, forwarding headers set. */
static int write_request_head(es_stream_t *s, es_writeq_t *q, const es_endpoint_config_t *ep, int64_t known_len)
{
    es_conn_t *c = s->conn;
    es_msg_t *m = &s->req;
    size_t urllen;
    const char *url = es_msg_first(m, &urllen);
    const char *method = http_method_str((enum http_method)s->method);
    int err = es_writeq_append(q, method, strlen(method));
    if (!err)
        err = es_writeq_append(q, " ", 1);
    if (!err)
        err = es_writeq_append(q, url, urllen);
    if (!err)
        err = es_writeq_append(q, LIT(" HTTP/1.1\r\n"));
    if (!err)
        err = write_headers(q, m, 1, skip_request_header, s);
    if (!err && es_msg_find(m, LIT("host"), 0) < 0)
        err = es_writeq_appendf(q, "host: %s:%u\r\n", ep->address, ep->port);
    /* x-forwarded-for: every incoming value in order, then the client's address. */
    if (!err)
        err = es_writeq_append(q, LIT("x-forwarded-for: "));
    for (int i = es_msg_find(m, LIT("x-forwarded-for"), 0); !err && i >= 0;
         i = es_msg_find(m, LIT("x-forwarded-for"), (uint32_t)i + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)i, &vlen);
        err = es_writeq_append(q, v, vlen);
        if (!err)
            err = es_writeq_append(q, ", ", 2);
    }
    if (!err)
        err = es_writeq_append(q, c->peer_ip, strlen(c->peer_ip));
    if (!err)
        err = c->tls != NULL ? es_writeq_append(q, LIT("\r\nx-forwarded-proto: https\r\n"))
                             : es_writeq_append(q, LIT("\r\nx-forwarded-proto: http\r\n"));
    if (!err && s->declared[ES_DIR_REQUEST] >= 0)
        err = es_writeq_append_num_field(q, LIT("content-length"), (uint64_t)s->declared[ES_DIR_REQUEST]);
    if (!err && s->req_chunked)
        err = es_writeq_append(q, LIT("transfer-encoding: chunked\r\n"));
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err;
}

static int forward_request_headers(es_stream_t *s, int eos, int64_t known_len)
{
    es_conn_t *c = s->conn;
    const es_listener_config_t *l = c->listener;
    size_t urllen;
    const char *url = es_msg_first(&s->req, &urllen);
    const char *path = url;
    size_t pathlen = urllen;
    if (urllen > 0 && url[0] != '/') {
        /* absolute-form (a client that talks to us as a forward proxy): route on its path */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, urllen, 0, &u) == 0 && (u.field_set & (1 << UF_PATH))) {
            path = url + u.field_data[UF_PATH].off;
            pathlen = u.field_data[UF_PATH].len;
        }
    }
    const char *q = memchr(path, '?', pathlen);
    if (q != NULL)
        pathlen = (size_t)(q - path);

    /* Routing happens after the request-header filters, so a filter can choose the route. */
    const es_route_config_t *r = es_route_match(l, &s->req, path, pathlen);
    s->route = r;
    if (r == NULL) {
        static const char body[] = "no route matched\n";
        local_reply(s, 404, body, sizeof(body) - 1, 0);
        return -1;
    }
    if (r->stats) {
        char body[2048];
        size_t n = es_stats_format(body, sizeof(body));
        local_reply(s, 200, body, n, 0);
        return -1;
    }
    if (r->cluster == NULL) {
        local_reply(s, r->direct_status, r->direct_body, r->direct_body_len, 0);
        return -1;
    }
    es_upconn_t *up;
    int err = es_pool_acquire(&c->worker->pools[r->cluster->index], &s->user, &up);
    if (err) {
        char body[160];
        int n = snprintf(body, sizeof(body), "upstream connect error: %s\n", uv_strerror(err));
        es_warn("cluster \"%s\": connect failed: %s", r->cluster->name, uv_strerror(err));
        local_reply(s, 503, body, (size_t)n, 0);
        return -1;
    }
    s->up = up;
    int had_length = es_msg_find(&s->req, LIT("content-length"), 0) >= 0;
    s->declared[ES_DIR_REQUEST] =
        known_len >= 0 ? (s->req_has_body || had_length ? known_len : -1) : content_length(&s->req);
    s->req_chunked = s->req_has_body && !eos && s->declared[ES_DIR_REQUEST] < 0;
    s->head_known_len = known_len;
    if (write_request_head(s, &up->out, up->ep, known_len) != 0) {
        es_conn_abort(c);
        return -1;
    }
    return 0;
}

static int forward_response_headers(es_stream_t *s, int eos, int64_t known_len)
{
    es_conn_t *c = s->conn;
    es_msg_t *m = s->resp;
    int status = s->resp_status;
    int nobody = s->head || status == 204 || status == 304;
    int64_t declared = known_len >= 0 && !nobody ? known_len : content_length(m);
    if (!nobody && declared < 0 && !eos) {
        if (s->http10)
            s->keepalive = 0; /* an HTTP/1.0 client learns the body's end from the close */
        else
            s->resp_chunked = 1;
    }
    s->declared[ES_DIR_RESPONSE] = nobody ? -1 : declared;
    /* The upstream answers before the request body is all in: once this response is out, the rest
     * of the upload is drained, not waited for, so the connection closes. So does a draining worker's. */
    if (must_close(s))
        s->keepalive = 0;
    size_t rlen;
    const char *reason = es_msg_first(m, &rlen);
    if (rlen == 0) {
        reason = es_http1_reason(status);
        rlen = strlen(reason);
    }
    es_writeq_t *q = &c->out;
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
        err = write_headers(q, m, !nobody, NULL, s);
    if (!err && !nobody && declared >= 0)
        err = es_writeq_append_num_field(q, LIT("content-length"), (uint64_t)declared);
    else if (!err && !nobody && declared < 0 && eos && !s->resp_chunked)
        err = es_writeq_append(q, LIT("content-length: 0\r\n"));
    if (!err && s->resp_chunked)
        err = es_writeq_append(q, LIT("transfer-encoding: chunked\r\n"));
    if (!err && !s->keepalive)
        err = es_writeq_append(q, LIT("connection: close\r\n"));
    else if (!err && s->http10)
        err = es_writeq_append(q, LIT("connection: keep-alive\r\n"));
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    if (err) {
        es_conn_abort(c);
        return -1;
    }
    s->resp_started = 1;
    return 0;
}

int es_stream__forward_headers(es_stream_t *s, int dir, int eos, int64_t known_len)
{
    return dir == ES_DIR_REQUEST ? forward_request_headers(s, eos, known_len)
                                 : forward_response_headers(s, eos, known_len);
}

int es_stream__forward_body(es_stream_t *s, int dir, const char *at, size_t len, int eos)
{
    es_conn_t *c = s->conn;
    if (s->filters != NULL && s->filters->dir[dir].headers_pending) {
        s->filters->dir[dir].headers_pending = false;
        s->filters->dir[dir].headers_sent = true;
        if (es_stream__forward_headers(s, dir, eos && len == 0, eos ? (int64_t)len : -1) != 0)
            return -1;
    }
    if (len == 0)
        return 0;
    if (s->declared[dir] >= 0 && s->sent[dir] + len > (uint64_t)s->declared[dir]) {
        /* A filter changed a streamed body after its Content-Length went out: the message would lie. */
        es_warn("a filter changed the length of a streamed %s body with a Content-Length; a filter that "
                "changes a streamed body must remove content-length in its headers callback",
                dir == ES_DIR_REQUEST ? "request" : "response");
        es_stream__filter_failed(s, dir == ES_DIR_REQUEST ? 500 : 502, "filter error");
        return -1;
    }
    s->sent[dir] += len;
    if (dir == ES_DIR_REQUEST) {
        es_upconn_t *up = s->up;
        if (s->discard_body || up == NULL)
            return 0;
        int err = s->req_chunked ? es_http1_write_chunk(&up->out, at, len) : es_writeq_append(&up->out, at, len);
        if (err) {
            es_conn_abort(c);
            return -1;
        }
        if (up->out.above_high && !c->up_blocked) {
            /* The upstream is slower than the client: stop reading the client until it catches up. */
            c->up_blocked = 1;
            es_conn__update_reading(c);
        }
        return 0;
    }
    int err = s->resp_chunked ? es_http1_write_chunk(&c->out, at, len) : es_writeq_append(&c->out, at, len);
    if (err) {
        es_conn_abort(c);
        return -1;
    }
    if (c->out.above_high && s->up != NULL)
        es_upconn_read_pause(s->up, 1); /* the client is slower than the upstream */
    return 0;
}

int es_stream__forward_end(es_stream_t *s, int dir)
{
    es_conn_t *c = s->conn;
    if (s->declared[dir] >= 0 && s->sent[dir] != (uint64_t)s->declared[dir] && s->filters != NULL) {
        es_warn("a filter shortened a streamed %s body with a Content-Length",
                dir == ES_DIR_REQUEST ? "request" : "response");
        es_stream__filter_failed(s, dir == ES_DIR_REQUEST ? 500 : 502, "filter error");
        return -1;
    }
    if (dir == ES_DIR_REQUEST) {
        if (s->up != NULL && !s->discard_body && s->req_chunked &&
            es_http1_write_last_chunk(&s->up->out, &s->req) != 0) {
            es_conn_abort(c);
            return -1;
        }
        maybe_finished(s);
        return 0;
    }
    es_upconn_t *up = s->up;
    if (s->resp_chunked && es_http1_write_last_chunk(&c->out, s->resp) != 0) {
        es_conn_abort(c);
        return -1;
    }
    s->resp_done = 1;
    s->up = NULL;
    s->resp = NULL;
    /* Reusable only if the whole request went out: otherwise the upstream is mid-request. */
    es_upconn_release(up, s->up_reusable && s->req_done && es_writeq_idle(&up->out));
    if (!s->req_done)
        s->discard_body = 1;
    if (c->up_blocked) {
        c->up_blocked = 0;
        es_conn__update_reading(c);
    }
    if (!maybe_finished(s) && !s->keepalive)
        es_conn_close_after_flush(c);
    return 0;
}

static void send_continue(es_stream_t *s)
{
    if (!s->continue_pending)
        return;
    s->continue_pending = 0;
    if (!s->resp_started && !s->req_done &&
        es_writeq_append(&s->conn->out, LIT("HTTP/1.1 100 Continue\r\n\r\n")) != 0)
        es_conn_abort(s->conn);
}

int es_stream__request_headers(es_stream_t *s)
{
    es_conn_t *c = s->conn;
    http_parser *p = &c->parser;
    es_msg_headers_done(&s->req);
    s->req_headers_done = 1;
    es_conn__headers_done(c);
    s->method = p->method;
    s->http10 = p->http_major == 1 && p->http_minor == 0;
    s->keepalive = http_should_keep_alive(p) ? 1 : 0;
    s->head = p->method == HTTP_HEAD;
    s->req_has_body = (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    if (es_msg_find(&s->req, LIT("transfer-encoding"), 0) >= 0) {
        /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. Codings other than chunked
         * would reach the upstream undone once the proxy re-frames the body: refuse them (501). */
        if (s->http10) {
            es_stream__request_error(s, 400, "Transfer-Encoding in an HTTP/1.0 request");
            return -1;
        }
        int verdict = transfer_coding_verdict(&s->req);
        if (verdict != 0) {
            es_stream__request_error(s, verdict, verdict == 400 ? "Transfer-Encoding does not end with chunked"
                                                                : "a transfer coding other than chunked");
            return -1;
        }
    }
    if (!s->http10 && s->req_has_body) {
        int e = es_msg_find(&s->req, LIT("expect"), 0);
        if (e >= 0) {
            size_t vlen;
            const char *v = es_msg_value(&s->req, (uint32_t)e, &vlen);
            s->expect_continue = es_value_has_token(v, vlen, LIT("100-continue"));
        }
    }
    const es_listener_config_t *l = c->listener;
    const es_filter_chain_t *chain = es_filters_chain((size_t)(l - c->worker->cfg->listeners));
    if (chain->n > 0) {
        const es_filter_entry_t *quarantined;
        s->filters = es_filters_new(chain, s, c->worker->id, l->buffer_high, l->buffer_low, l->max_body, &quarantined);
        if (s->filters == NULL && quarantined != NULL) {
            char body[200];
            int n = snprintf(body, sizeof(body), "filter \"%s\" is quarantined: it kept crashing workers\n",
                             quarantined->name);
            local_reply(s, 503, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, 0);
            return 0;
        }
        if (s->filters == NULL) {
            static const char body[] = "filter error\n";
            local_reply(s, 500, body, sizeof(body) - 1, 0);
            return 0;
        }
        if (es_filters_headers(s->filters, ES_DIR_REQUEST, !s->req_has_body) == ES_CHAIN_HALT)
            return 0;
    } else if (forward_request_headers(s, !s->req_has_body, -1) != 0) {
        return 0;
    }
    /* The request goes on (upstream, or buffered by a filter): the client may send its body. A
     * RUNNING filter holds the headers: nothing reaches the client until it lets them go. */
    if (s->expect_continue) {
        s->continue_pending = 1;
        if (s->filters == NULL || !s->filters->run.active)
            send_continue(s);
    }
    return 0;
}

void es_stream__request_body(es_stream_t *s, const char *at, size_t len)
{
    if (s->discard_body)
        return;
    if (s->filters != NULL)
        es_filters_body(s->filters, ES_DIR_REQUEST, at, len, false);
    else
        es_stream__forward_body(s, ES_DIR_REQUEST, at, len, 0);
}

void es_stream__request_complete(es_stream_t *s)
{
    s->req_done = 1;
    if (s->discard_body) {
        maybe_finished(s);
        return;
    }
    if (s->filters != NULL) {
        es_msg_t *m = &s->req;
        int has_trailers = m->ntrailers_from < m->nheaders;
        if (s->req_has_body && es_filters_body(s->filters, ES_DIR_REQUEST, NULL, 0, true) == ES_CHAIN_HALT)
            return;
        es_filters_end(s->filters, ES_DIR_REQUEST, has_trailers);
        return;
    }
    es_stream__forward_end(s, ES_DIR_REQUEST);
}

void es_stream__upstream_failed(es_stream_t *s, int status, const char *reason)
{
    es_conn_t *c = s->conn;
    halt_filters(s); /* a filter holding the response must not see it vanish */
    s->up = NULL;
    s->resp = NULL;
    if (c->up_blocked) {
        c->up_blocked = 0;
        es_conn__update_reading(c);
    }
    if (s->resp_started) {
        /* Part of the response is out: the client can only learn of the failure by the close. */
        es_conn_abort(c);
        return;
    }
    char body[200];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    local_reply(s, status, body, (size_t)n, 0);
    es_stream__flush(s);
}

int es_stream__response_headers(es_stream_t *s)
{
    es_upconn_t *up = s->up;
    http_parser *p = &up->parser;
    if (s->filters != NULL && s->filters->halted)
        return -1;
    s->resp = &up->resp;
    s->resp_status = p->status_code;
    s->resp_headers_in = 1;
    int nobody = s->head || s->resp_status == 204 || s->resp_status == 304;
    int eos = nobody || ((p->flags & F_CONTENTLENGTH) && p->content_length == 0);
    s->resp_body_eos = eos;
    int r = s->filters != NULL ? (es_filters_headers(s->filters, ES_DIR_RESPONSE, eos) == ES_CHAIN_HALT ? -1 : 0)
                               : forward_response_headers(s, eos, -1);
    if (r < 0)
        return -1;
    return s->head ? 1 : 0;
}

void es_stream__response_body(es_stream_t *s, const char *at, size_t len)
{
    if (s->filters != NULL)
        es_filters_body(s->filters, ES_DIR_RESPONSE, at, len, false);
    else
        es_stream__forward_body(s, ES_DIR_RESPONSE, at, len, 0);
}

void es_stream__response_complete(es_stream_t *s, int reusable)
{
    s->up_reusable = reusable ? 1 : 0;
    if (s->filters != NULL) {
        es_msg_t *m = s->resp;
        int has_trailers = m->ntrailers_from < m->nheaders;
        if (!s->resp_body_eos && es_filters_body(s->filters, ES_DIR_RESPONSE, NULL, 0, true) == ES_CHAIN_HALT)
            return;
        es_filters_end(s->filters, ES_DIR_RESPONSE, has_trailers);
        return;
    }
    es_stream__forward_end(s, ES_DIR_RESPONSE);
}

void es_stream__upstream_writable(es_stream_t *s)
{
    es_conn_t *c = s->conn;
    if (c->up_blocked) {
        c->up_blocked = 0;
        es_conn__update_reading(c);
    }
}

void es_stream__client_writable(es_stream_t *s)
{
    update_upstream_reading(s);
}

void es_stream__flush(es_stream_t *s)
{
    if (s->up != NULL)
        es_writeq_flush(&s->up->out);
    if (!s->conn->closing)
        es_writeq_flush(&s->conn->out);
}

/* ---- a RUNNING filter -------------------------------------------------------------------- */

static void on_filter_timeout(uv_timer_t *t)
{
    es_conn_t *c = t->data;
    es_stream_t *s = &c->stream;
    if (s->filters == NULL)
        return;
    es_filters_timeout(s->filters);
    es_stream__flush(s);
}

void es_stream__filter_waiting(es_stream_t *s, int on, uint64_t timeout_ms)
{
    es_conn_t *c = s->conn;
    if (c->closing)
        return;
    if (on) {
        es_stats_inc(ES_STAT_FILTER_RUNNING);
        uv_timer_t *t = es_conn__filter_timer(c);
        if (t != NULL)
            uv_timer_start(t, on_filter_timeout, timeout_ms, 0);
    } else if (c->filter_timer != NULL) {
        uv_timer_stop(c->filter_timer);
    }
}

/* The upstream is read unless the client or a RUNNING response filter is behind. */
static void update_upstream_reading(es_stream_t *s)
{
    if (s->up == NULL)
        return;
    int behind = s->conn->out.above_high || (s->filters != NULL && es_filters_blocked(s->filters, ES_DIR_RESPONSE));
    es_upconn_read_pause(s->up, behind);
}

void es_stream__filter_blocked(es_stream_t *s, int dir, int on)
{
    es_conn_t *c = s->conn;
    if (dir == ES_DIR_REQUEST) {
        c->filter_blocked = on ? 1 : 0;
        es_conn__update_reading(c);
    } else {
        update_upstream_reading(s);
    }
}

void es_stream__filter_resumed(es_stream_t *s)
{
    es_conn_t *c = s->conn;
    es_stats_inc(ES_STAT_FILTER_RESUMED);
    if (s->continue_pending && (s->filters == NULL || !s->filters->run.active))
        send_continue(s);
    es_stream__flush(s);
    if (!c->closing)
        es_conn__update_reading(c);
}

/* ---- the upstream connection's view of the stream ---------------------------------------- */

#define STREAM_OF(u) ((es_stream_t *)((char *)(u) - offsetof(es_stream_t, user)))

static void up_failed(es_upuser_t *u, int status, const char *reason)
{
    es_stream__upstream_failed(STREAM_OF(u), status, reason);
}

static void up_writable(es_upuser_t *u)
{
    es_stream__upstream_writable(STREAM_OF(u));
}

static int up_headers(es_upuser_t *u, es_upconn_t *up)
{
    (void)up;
    return es_stream__response_headers(STREAM_OF(u));
}

static void up_body(es_upuser_t *u, const char *at, size_t len)
{
    es_stream__response_body(STREAM_OF(u), at, len);
}

static void up_complete(es_upuser_t *u, int reusable)
{
    es_stream__response_complete(STREAM_OF(u), reusable);
}

static void up_after_read(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    if (!s->conn->closing)
        es_stream__flush(s);
}

static void up_detach(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    s->up = NULL;
    s->resp = NULL;
}

/* RFC 9110 9.2.2: sending these twice means the same as sending them once. */
static int idempotent(int method)
{
    switch (method) {
    case HTTP_GET: case HTTP_HEAD: case HTTP_OPTIONS: case HTTP_PUT: case HTTP_DELETE: case HTTP_TRACE:
        return 1;
    default:
        return 0;
    }
}

/*
 * A reused upstream connection died before any response byte: the upstream closed it as idle while
 * the request was on its way. Send the request again on a new connection, if nothing of its body has
 * gone (a body is never replayed: it is not kept) and the cluster's retry budget allows.
 */
static int up_retry(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    es_conn_t *c = s->conn;
    const es_route_config_t *r = s->route;
    s->up = NULL;
    s->resp = NULL;
    if (c->closing || r == NULL || r->cluster == NULL || s->retries >= r->cluster->retries_on_reset ||
        !idempotent(s->method) || s->sent[ES_DIR_REQUEST] > 0 || s->resp_headers_in ||
        (s->filters != NULL && s->filters->halted))
        return 0;
    es_upconn_t *up;
    if (es_pool_connect(&c->worker->pools[r->cluster->index], &s->user, &up) != 0)
        return 0;
    s->retries++;
    es_stats_inc(ES_STAT_UPSTREAM_RETRIES);
    es_debug("cluster \"%s\": a reused connection died before the response; %s sent again on a new one",
             r->cluster->name, http_method_str((enum http_method)s->method));
    s->up = up;
    if (write_request_head(s, &up->out, up->ep, s->head_known_len) != 0) {
        es_conn_abort(c);
        return 1;
    }
    if (s->req_done && s->req_chunked && es_http1_write_last_chunk(&up->out, &s->req) != 0) {
        es_conn_abort(c);
        return 1;
    }
    return 1;
}

static const es_upuser_ops_t upstream_ops = {
    .retry = up_retry,
    .failed = up_failed,
    .writable = up_writable,
    .headers = up_headers,
    .body = up_body,
    .complete = up_complete,
    .after_read = up_after_read,
    .detach = up_detach,
};

/*
 * One request/response exchange on a downstream connection: routing, the request going
 * upstream, the response coming back, and the local replies the proxy makes itself.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "http1.h"
#include "log.h"
#include "router.h"
#include "upstream.h"
#include "worker.h"

#define LIT(s) s, sizeof(s) - 1

void es_stream__init(es_stream_t *s, es_conn_t *c)
{
    memset(s, 0, sizeof(*s));
    s->conn = c;
    es_msg_init(&s->req);
}

void es_stream__dispose(es_stream_t *s)
{
    es_msg_dispose(&s->req);
}

void es_stream__begin(es_stream_t *s)
{
    es_conn_t *c = s->conn;
    es_msg_reset(&s->req);
    memset(&s->route, 0, sizeof(*s) - offsetof(es_stream_t, route));
    s->active = 1;
    (void)c;
}

static void maybe_finished(es_stream_t *s)
{
    if (s->active && s->req_done && s->resp_done)
        es_conn__stream_finished(s->conn);
}

static void local_reply(es_stream_t *s, int status, const char *body, size_t len, int close)
{
    es_conn_t *c = s->conn;
    /* A client still holding its body back for 100 Continue will never send it: end the connection. */
    if (close || (!s->req_done && s->expect_continue))
        s->keepalive = 0;
    if (es_http1_write_local_reply(&c->out, status, body, len, s->http10, s->keepalive, s->head) != 0) {
        es_conn_abort(c);
        return;
    }
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    maybe_finished(s);
}

void es_stream__request_error(es_stream_t *s, const char *why)
{
    es_conn_t *c = s->conn;
    if (s->active && s->resp_started) {
        es_conn_abort(c);
        return;
    }
    if (!s->active) {
        /* The error came before the parser began a message (garbage request line). */
        s->active = 1;
    }
    static const char body[] = "bad request\n";
    s->head = 0;
    s->keepalive = 0;
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    if (es_http1_write_local_reply(&c->out, 400, body, sizeof(body) - 1, s->http10, 0, 0) != 0) {
        es_conn_abort(c);
        return;
    }
    es_conn_close_after_flush(c);
}

/* The request head as it goes upstream: hop-by-hop headers removed, forwarding headers set. */
static int write_request_head(es_stream_t *s, es_writeq_t *q, const es_endpoint_config_t *ep)
{
    es_conn_t *c = s->conn;
    es_msg_t *m = &s->req;
    size_t urllen;
    const char *url = es_msg_first(m, &urllen);
    int err = es_writeq_appendf(q, "%s %.*s HTTP/1.1\r\n", http_method_str(c->parser.method), (int)urllen, url);
    int have_host = 0;
    const char *xff = NULL;
    size_t xfflen = 0;
    for (uint32_t i = 0; !err && i < m->ntrailers_from && i < m->nheaders; i++) {
        size_t nlen, vlen;
        const char *name = es_msg_name(m, i, &nlen);
        const char *value = es_msg_value(m, i, &vlen);
        if (es_http1_drop_header(m, i))
            continue;
        if (es_name_eq(name, nlen, LIT("x-forwarded-for"))) {
            /* Several x-forwarded-for lines are joined in order below; keep the last for appending. */
            if (xff != NULL)
                err = es_writeq_appendf(q, "x-forwarded-for: %.*s\r\n", (int)xfflen, xff);
            xff = value;
            xfflen = vlen;
            continue;
        }
        if (es_name_eq(name, nlen, LIT("x-forwarded-proto")))
            continue;
        if (s->expect_continue && es_name_eq(name, nlen, LIT("expect")))
            continue; /* the proxy answered 100 Continue itself */
        if (es_name_eq(name, nlen, LIT("host")))
            have_host = 1;
        err = es_writeq_appendf(q, "%.*s: %.*s\r\n", (int)nlen, name, (int)vlen, value);
    }
    if (!err && !have_host)
        err = es_writeq_appendf(q, "host: %s:%u\r\n", ep->address, ep->port);
    if (!err) {
        if (xff != NULL)
            err = es_writeq_appendf(q, "x-forwarded-for: %.*s, %s\r\n", (int)xfflen, xff, c->peer_ip);
        else
            err = es_writeq_appendf(q, "x-forwarded-for: %s\r\n", c->peer_ip);
    }
    if (!err)
        err = es_writeq_append(q, LIT("x-forwarded-proto: http\r\n"));
    if (!err && s->req_chunked)
        err = es_writeq_append(q, LIT("transfer-encoding: chunked\r\n"));
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err;
}

int es_stream__request_headers(es_stream_t *s)
{
    es_conn_t *c = s->conn;
    http_parser *p = &c->parser;
    const es_listener_config_t *l = c->listener;
    es_msg_headers_done(&s->req);
    s->req_headers_done = 1;
    s->http10 = p->http_major == 1 && p->http_minor == 0;
    s->keepalive = http_should_keep_alive(p) ? 1 : 0;
    s->head = p->method == HTTP_HEAD;
    s->req_chunked = (p->flags & F_CHUNKED) != 0;
    int has_body = s->req_chunked || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    if (!s->http10 && has_body) {
        int e = es_msg_find(&s->req, LIT("expect"), 0);
        if (e >= 0) {
            size_t vlen;
            const char *v = es_msg_value(&s->req, (uint32_t)e, &vlen);
            s->expect_continue = es_value_has_token(v, vlen, LIT("100-continue"));
        }
    }

    size_t urllen;
    const char *url = es_msg_first(&s->req, &urllen);
    const char *path = url;
    size_t pathlen = urllen;
    struct http_parser_url u;
    if (urllen > 0 && url[0] != '/') {
        /* absolute-form (a client that talks to us as a forward proxy): route on its path */
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, urllen, 0, &u) == 0 && (u.field_set & (1 << UF_PATH))) {
            path = url + u.field_data[UF_PATH].off;
            pathlen = u.field_data[UF_PATH].len;
        }
    }
    const char *q = memchr(path, '?', pathlen);
    if (q != NULL)
        pathlen = (size_t)(q - path);
    const es_route_config_t *r = es_route_match(l, &s->req, path, pathlen);
    s->route = r;
    if (r == NULL) {
        static const char body[] = "no route matched\n";
        local_reply(s, 404, body, sizeof(body) - 1, 0);
        return 0;
    }
    if (r->cluster == NULL) {
        local_reply(s, r->direct_status, r->direct_body, r->direct_body_len, 0);
        return 0;
    }
    es_upconn_t *up;
    int err = es_pool_acquire(&c->worker->pools[r->cluster->index], s, &up);
    if (err) {
        char body[160];
        int n = snprintf(body, sizeof(body), "upstream connect error: %s\n", uv_strerror(err));
        es_warn("cluster \"%s\": connect failed: %s", r->cluster->name, uv_strerror(err));
        local_reply(s, 503, body, (size_t)n, 0);
        return 0;
    }
    s->up = up;
    if (write_request_head(s, &up->out, up->ep) != 0) {
        es_conn_abort(c);
        return -1;
    }
    if (s->expect_continue && es_writeq_append(&c->out, LIT("HTTP/1.1 100 Continue\r\n\r\n")) != 0) {
        es_conn_abort(c);
        return -1;
    }
    return 0;
}

void es_stream__request_body(es_stream_t *s, const char *at, size_t len)
{
    es_upconn_t *up = s->up;
    if (s->discard_body || up == NULL)
        return;
    int err = s->req_chunked ? es_http1_write_chunk(&up->out, at, len) : es_writeq_append(&up->out, at, len);
    if (err) {
        es_conn_abort(s->conn);
        return;
    }
    if (up->out.above_high && !s->conn->up_blocked) {
        /* The upstream is slower than the client: stop reading the client until it catches up. */
        s->conn->up_blocked = 1;
        es_conn__update_reading(s->conn);
    }
}

void es_stream__request_complete(es_stream_t *s)
{
    s->req_done = 1;
    if (s->up != NULL && !s->discard_body && s->req_chunked) {
        if (es_http1_write_last_chunk(&s->up->out, &s->req) != 0) {
            es_conn_abort(s->conn);
            return;
        }
    }
    maybe_finished(s);
}

void es_stream__upstream_failed(es_stream_t *s, int status, const char *reason)
{
    es_conn_t *c = s->conn;
    s->up = NULL;
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
    es_conn_t *c = s->conn;
    es_upconn_t *up = s->up;
    http_parser *p = &up->parser;
    es_msg_t *m = &up->resp;
    int status = p->status_code;
    int nobody = s->head || status == 204 || status == 304;
    int has_length = (p->flags & F_CONTENTLENGTH) != 0;

    if (!nobody && !has_length) {
        if (s->http10)
            s->keepalive = 0; /* an HTTP/1.0 client learns the body's end from the close */
        else
            s->resp_chunked = 1;
    }
    size_t rlen;
    const char *reason = es_msg_first(m, &rlen);
    if (rlen == 0) {
        reason = es_http1_reason(status);
        rlen = strlen(reason);
    }
    es_writeq_t *q = &c->out;
    int err = es_writeq_appendf(q, "HTTP/1.1 %d %.*s\r\n", status, (int)rlen, reason);
    for (uint32_t i = 0; !err && i < m->nheaders; i++) {
        if (es_http1_drop_header(m, i))
            continue;
        size_t nlen, vlen;
        const char *name = es_msg_name(m, i, &nlen);
        const char *value = es_msg_value(m, i, &vlen);
        err = es_writeq_appendf(q, "%.*s: %.*s\r\n", (int)nlen, name, (int)vlen, value);
    }
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
    return s->head ? 1 : 0;
}

void es_stream__response_body(es_stream_t *s, const char *at, size_t len)
{
    es_conn_t *c = s->conn;
    int err = s->resp_chunked ? es_http1_write_chunk(&c->out, at, len) : es_writeq_append(&c->out, at, len);
    if (err) {
        es_conn_abort(c);
        return;
    }
    if (c->out.above_high && s->up != NULL)
        es_upconn_read_pause(s->up, 1); /* the client is slower than the upstream */
}

void es_stream__response_complete(es_stream_t *s, int reusable)
{
    es_conn_t *c = s->conn;
    es_upconn_t *up = s->up;
    if (s->resp_chunked && es_http1_write_last_chunk(&c->out, &up->resp) != 0) {
        es_conn_abort(c);
        return;
    }
    s->resp_done = 1;
    s->up = NULL;
    /* Reusable only if the whole request went out: otherwise the upstream is mid-request. */
    es_upconn_release(up, reusable && s->req_done && es_writeq_idle(&up->out));
    if (!s->req_done)
        s->discard_body = 1;
    if (c->up_blocked) {
        c->up_blocked = 0;
        es_conn__update_reading(c);
    }
    maybe_finished(s);
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
    if (s->up != NULL)
        es_upconn_read_pause(s->up, 0);
}

void es_stream__flush(es_stream_t *s)
{
    if (s->up != NULL)
        es_writeq_flush(&s->up->out);
    if (!s->conn->closing)
        es_writeq_flush(&s->conn->out);
}

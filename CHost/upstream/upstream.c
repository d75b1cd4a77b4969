#include "upstream/upstream.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/log.h"
#include "core/stats.h"
#include "codec/http1.h"

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static const es_resp_parser_events_t resp_events;
static void upconn_close(es_upconn_t *u);

void es_pool_init(es_pool_t *p, es_env_t *env, const es_cluster_config_t *cfg)
{
    p->env = env;
    p->cfg = cfg;
    p->next = 0;
    es_list_init(&p->idle);
    es_list_init(&p->all);
    es_list_init(&p->h2conns);
}

void es_pool_close(es_pool_t *p)
{
    es_h2up_pool_close(p);
    while (!es_list_empty(&p->all)) {
        es_upconn_t *u = es_container_of(p->all.next, es_upconn_t, link_all);
        if (u->user != NULL) {
            es_upuser_t *user = u->user;
            u->user = NULL;
            user->ops->detach(user);
        }
        upconn_close(u);
    }
}

static void on_closed(uv_handle_t *h)
{
    es_upconn_t *u = h->data;
    if (--u->closes_pending > 0)
        return;
    if (u->tls != NULL) {
        es_tls_dispose(u->tls);
        free(u->tls);
    }
    es_writeq_dispose(&u->out);
    free(u->early);
    es_msg_dispose(&u->resp);
    es_resp_parser_free(u->rp);
    free(u);
}

static void upconn_close(es_upconn_t *u)
{
    if (u->state == ES_UP_CLOSING)
        return;
    u->state = ES_UP_CLOSING;
    es_list_remove(&u->link_all);
    es_list_remove(&u->link_idle);
    u->closes_pending = 2;
    uv_close((uv_handle_t *)&u->tcp, on_closed);
    uv_close((uv_handle_t *)&u->timer, on_closed);
}

/* Fails the stream this connection serves (if any) and closes the connection. */
static void upconn_fail(es_upconn_t *u, int status, const char *reason)
{
    es_upuser_t *user = u->user;
    u->user = NULL;
    upconn_close(u);
    if (user != NULL)
        user->ops->failed(user, status, reason);
}

/*
 * The connection died under a request (reset, closed, a write failed). On a reused connection with
 * no response byte yet, that is the race with the upstream's idle close: the user may send again.
 */
static void upconn_died(es_upconn_t *u, int status, const char *reason)
{
    es_upuser_t *user = u->user;
    int may_retry = user != NULL && u->reused && !u->got_bytes && user->ops->retry != NULL;
    u->user = NULL;
    upconn_close(u);
    if (user == NULL)
        return;
    if (may_retry && user->ops->retry(user))
        return;
    user->ops->failed(user, status, reason);
}

static void on_out_event(es_writeq_t *q, int status)
{
    es_upconn_t *u = q->data;
    if (u->state == ES_UP_CLOSING)
        return;
    if (status < 0) {
        char reason[128];
        snprintf(reason, sizeof(reason), "upstream write error: %s", uv_strerror(status));
        es_debug("cluster \"%s\": %s", u->pool->cfg->name, reason);
        upconn_died(u, 503, reason);
    } else if (status == ES_WRITEQ_DRAINED && u->flush_close) {
        upconn_close(u);
    } else if (status == ES_WRITEQ_LOW && u->user != NULL) {
        u->user->ops->writable(u->user);
    }
}

static void alloc_block(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    es_upconn_t *u = h->data;
    buf->base = es_env_block_get(u->pool->env);
    buf->len = buf->base ? ES_BLOCK_SIZE : 0;
}

static void start_reading(es_upconn_t *u)
{
    if (!u->reading && uv_read_start((uv_stream_t *)&u->tcp, alloc_block, on_read) == 0)
        u->reading = 1;
}

void es_upconn_read_pause(es_upconn_t *u, int pause)
{
    if (u->h2x) {
        es_h2up_read_pause(u, pause);
        return;
    }
    if (u->state != ES_UP_ACTIVE)
        return;
    if (pause && u->reading) {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = 0;
    } else if (!pause && !u->complete && (u->raw || !u->upgraded) && !u->flush_close) {
        /* A complete response waits for its release unread; a 101 for its tunnel to start. */
        start_reading(u);
    }
}

static void on_connect_timeout(uv_timer_t *t)
{
    es_upconn_t *u = t->data;
    if (u->state == ES_UP_ACTIVE && u->tls != NULL) {
        es_stats_inc(ES_STAT_UPSTREAM_TLS_FAILURES);
        es_warn("cluster \"%s\": TLS handshake with %s:%u not done within %llu ms", u->pool->cfg->name,
                u->ep->address, u->ep->port, (unsigned long long)u->pool->cfg->connect_timeout_ms);
        upconn_fail(u, 503, "upstream TLS handshake timeout");
        return;
    }
    es_warn("cluster \"%s\": connect to %s:%u timed out after %llu ms", u->pool->cfg->name, u->ep->address,
            u->ep->port, (unsigned long long)u->pool->cfg->connect_timeout_ms);
    upconn_fail(u, 503, "upstream connect timeout");
}

static void on_connect(uv_connect_t *req, int status)
{
    es_upconn_t *u = req->data;
    if (u->state == ES_UP_CLOSING)
        return; /* closed while connecting (timeout or abandoned): status is UV_ECANCELED */
    if (u->tls == NULL)
        uv_timer_stop(&u->timer); /* with TLS it runs on until the handshake is done */
    if (status < 0) {
        uv_timer_stop(&u->timer);
        char reason[160];
        snprintf(reason, sizeof(reason), "upstream connect error: %s", uv_strerror(status));
        es_warn("cluster \"%s\": connect to %s:%u failed: %s", u->pool->cfg->name, u->ep->address, u->ep->port,
                uv_strerror(status));
        upconn_fail(u, 503, reason);
        return;
    }
    es_debug("cluster \"%s\": connected to %s:%u", u->pool->cfg->name, u->ep->address, u->ep->port);
    uv_tcp_nodelay(&u->tcp, 1);
    u->state = ES_UP_ACTIVE;
    if (u->connect_tunnel && u->tls == NULL) {
        /* A CONNECT: read once the tunnel starts (what a server says first is the tunnel's, not a response). */
        es_writeq_attach(&u->out, (uv_stream_t *)&u->tcp);
        if (u->user != NULL)
            u->user->ops->tunnel_ready(u->user);
        return;
    }
    start_reading(u);
    es_writeq_attach(&u->out, (uv_stream_t *)&u->tcp);
    es_writeq_flush(&u->out);
}

/* The idle timer runs lazily: releasing a connection only notes the time, and a timer that fires early (the
 * connection was used meanwhile) waits the rest; a connection in use keeps it, so a request costs no timer
 * start or stop. */
static void on_idle_timeout(uv_timer_t *t)
{
    es_upconn_t *u = t->data;
    uint64_t idle_ms = u->pool->cfg->idle_timeout_ms, now = uv_now(t->loop);
    if (u->state != ES_UP_IDLE || now - u->idle_since < idle_ms) {
        uint64_t left = u->state == ES_UP_IDLE ? idle_ms - (now - u->idle_since) : idle_ms;
        uv_timer_start(t, on_idle_timeout, left, 0);
        return;
    }
    u->idle_timer = 0;
    es_stats_inc(ES_STAT_UPSTREAM_IDLE_CLOSED);
    es_debug("cluster \"%s\": pooled connection idle for %llu ms; closing", u->pool->cfg->name,
             (unsigned long long)u->pool->cfg->idle_timeout_ms);
    upconn_close(u);
}

static void assign(es_upconn_t *u, es_upuser_t *user)
{
    u->user = user;
    u->peer_closed = 0;
    u->got_bytes = 0;
    u->headers_done = 0;
    u->interim = 0;
    u->complete = 0;
    u->upgrade_asked = 0;
    u->status = 0;
    u->content_length = -1;
    es_resp_parser_reset(u->rp, u);
    es_msg_reset(&u->resp);
}

int es_pool_acquire(es_pool_t *p, es_upuser_t *s, es_upconn_t **out)
{
    if (p->cfg->http2)
        return es_h2up_acquire(p, s, out, 0);
    uint64_t now = p->env->iteration;
    for (es_link_t *l = p->idle.next; l != &p->idle; l = l->next) {
        es_upconn_t *u = es_container_of(l, es_upconn_t, link_idle);
        /* Not in the iteration it was released in: a FIN already in flight is seen first. */
        if (u->released_at == now)
            continue;
        es_list_remove(&u->link_idle);
        u->state = ES_UP_ACTIVE; /* the idle timer runs on (on_idle_timeout) */
        assign(u, s);
        u->reused = 1;
        *out = u;
        return 0;
    }
    return es_pool_connect(p, s, out);
}

static int pool_connect_h1(es_pool_t *p, es_upuser_t *s, es_upconn_t **out);

int es_pool_connect(es_pool_t *p, es_upuser_t *s, es_upconn_t **out)
{
    if (p->cfg->http2)
        return es_h2up_acquire(p, s, out, 1);
    return pool_connect_h1(p, s, out);
}

static int pool_connect_h1(es_pool_t *p, es_upuser_t *s, es_upconn_t **out)
{
    const es_cluster_config_t *cfg = p->cfg;
    es_upconn_t *u = calloc(1, sizeof(*u));
    es_resp_parser_t *rp = u != NULL ? es_resp_parser_new(&resp_events) : NULL;
    if (rp == NULL) {
        free(u);
        return UV_ENOMEM;
    }
    u->rp = rp;
    u->pool = p;
    u->ep = &cfg->endpoints[p->next++ % cfg->nendpoints];
    u->state = ES_UP_CONNECTING;
    es_msg_init(&u->resp);
    es_writeq_init(&u->out, ES_WRITE_HIGH, ES_WRITE_LOW, on_out_event, u);
    uv_tcp_init(p->env->loop, &u->tcp);
    uv_timer_init(p->env->loop, &u->timer);
    u->tcp.data = u;
    u->timer.data = u;
    u->connect_req.data = u;
    es_list_init(&u->link_idle);
    es_list_push_back(&p->all, &u->link_all);
    if (cfg->tls_ctx != NULL) {
        /* SNI and the name checked: tls.sni, else the endpoint's address as written. */
        const char *name = cfg->tls_sni != NULL ? cfg->tls_sni : u->ep->address;
        u->tls = calloc(1, sizeof(*u->tls));
        if (u->tls == NULL || es_tls_init(u->tls, cfg->tls_ctx, name, name) != 0) {
            upconn_close(u);
            return UV_ENOMEM;
        }
        es_writeq_set_tls(&u->out, u->tls);
    }
    assign(u, s);
    int err = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)&u->ep->addr, on_connect);
    if (err) {
        u->user = NULL;
        upconn_close(u);
        return err;
    }
    uv_timer_start(&u->timer, on_connect_timeout, cfg->connect_timeout_ms, 0);
    *out = u;
    return 0;
}

void es_upconn_release(es_upconn_t *u, int reusable)
{
    if (u->h2x) {
        es_h2up_release(u);
        return;
    }
    /* Reusable only if the whole request went out: otherwise the upstream is mid-request. */
    reusable = reusable && es_writeq_idle(&u->out);
    u->user = NULL;
    if (!reusable || u->peer_closed || u->state != ES_UP_ACTIVE || u->pool->env->stopping) {
        upconn_close(u);
        return;
    }
    u->state = ES_UP_IDLE;
    u->released_at = u->pool->env->iteration;
    es_list_push_front(&u->pool->idle, &u->link_idle);
    start_reading(u); /* an idle connection watches for the upstream closing it */
    /* ... and leaves before the upstream's own idle timeout would close it under a request. */
    u->idle_since = uv_now(u->tcp.loop);
    if (!u->idle_timer) {
        u->idle_timer = 1;
        uv_timer_start(&u->timer, on_idle_timeout, u->pool->cfg->idle_timeout_ms, 0);
    }
}

void es_upconn_abandon(es_upconn_t *u)
{
    if (u->h2x) {
        es_h2up_release(u);
        return;
    }
    u->user = NULL;
    upconn_close(u);
}

/* The connection ended (EOF, reset, close_notify) while serving a stream. */
static void got_end(es_upconn_t *u, ssize_t err)
{
    if (u->raw && u->state == ES_UP_ACTIVE) {
        es_upuser_t *user = u->user;
        es_debug("cluster \"%s\": upstream ended the tunnel (%s)", u->pool->cfg->name, uv_err_name((int)err));
        u->user = NULL;
        upconn_close(u);
        if (user != NULL)
            user->ops->tunnel_end(user);
        return;
    }
    if (err == UV_EOF && u->headers_done && !u->complete) {
        /* A body delimited by the close ends here; if the parser wanted more, the response stays incomplete. */
        es_resp_parser_finish(u->rp);
    }
    if (u->state == ES_UP_ACTIVE && u->user != NULL && u->complete) {
        /* The response is complete and waits for a filter: release closes instead of pooling. */
        u->peer_closed = 1;
        es_upconn_read_pause(u, 1);
    } else if (u->state == ES_UP_ACTIVE && u->user != NULL) {
        es_debug("cluster \"%s\": upstream closed mid-response (%s)", u->pool->cfg->name, uv_err_name((int)err));
        upconn_died(u, 503, u->got_bytes ? "upstream closed the connection mid-response" : "upstream reset before response");
    } else if (u->state == ES_UP_ACTIVE) {
        upconn_close(u);
    }
}

/* Response bytes (plaintext) for the stream being served. */
/* Bytes after a 101's head (data[n..len)) are the tunnel's: to the user once it runs, kept until then. */
static __attribute__((noinline, cold)) void got_tunnel_bytes(es_upconn_t *u, const char *data, size_t len, size_t n)
{
    if (u->state != ES_UP_ACTIVE || n == len)
        goto out;
    if (u->raw) {
        if (u->user != NULL)
            u->user->ops->tunnel_data(u->user, data + n, len - n);
        return;
    }
    char *e = realloc(u->early, u->early_len + (len - n));
    if (e == NULL) {
        upconn_fail(u, 503, "out of memory");
        return;
    }
    memcpy(e + u->early_len, data + n, len - n);
    u->early = e;
    u->early_len += len - n;
out:
    if (!u->raw && u->state == ES_UP_ACTIVE)
        es_upconn_read_pause(u, 1);
}

static void got_data(es_upconn_t *u, const char *data, size_t len)
{
    u->got_bytes = 1;
    if (__builtin_expect(u->upgraded, 0)) {
        got_tunnel_bytes(u, data, len, 0);
        return;
    }
    size_t n;
    int r = es_resp_parser_execute(u->rp, data, len, &n);
    if (__builtin_expect(u->upgraded, 0) && r != ES_RESP_ERROR) {
        got_tunnel_bytes(u, data, len, n); /* the 101 came in this read */
        return;
    }
    if (u->state == ES_UP_IDLE && n < len) {
        es_debug("cluster \"%s\": bytes after the response; closing", u->pool->cfg->name);
        upconn_close(u);
    } else if (u->state == ES_UP_ACTIVE && r == ES_RESP_ERROR) {
        es_warn("cluster \"%s\": malformed response: %s", u->pool->cfg->name, es_resp_parser_error(u->rp));
        upconn_fail(u, 502, "upstream sent a malformed response");
    }
}

/* Ciphertext from a TLS upstream: the handshake first, then the plaintext goes where plain bytes go. */
static void got_tls(es_upconn_t *u, const char *data, size_t len)
{
    es_tls_t *t = u->tls;
    if (es_tls_feed(t, data, len) != 0) {
        upconn_fail(u, 503, "out of memory");
        return;
    }
    if (!t->handshake_done) {
        int r = es_tls_handshake(t);
        if (r == ES_TLS_ERROR) {
            char why[200], reason[280];
            es_stats_inc(ES_STAT_UPSTREAM_TLS_FAILURES);
            snprintf(reason, sizeof reason, "upstream TLS handshake failed: %s", es_tls_error(t, why, sizeof why));
            es_debug("cluster \"%s\": %s:%u: %s", u->pool->cfg->name, u->ep->address, u->ep->port, reason);
            upconn_fail(u, 503, reason);
            return;
        }
        if (r != 1) {
            es_writeq_flush(&u->out); /* the handshake's next messages */
            return;
        }
        uv_timer_stop(&u->timer); /* connect_timeout covered the connect and the handshake */
        es_debug("cluster \"%s\": %s with %s:%u", u->pool->cfg->name, es_tls_version(t), u->ep->address, u->ep->port);
        if (u->connect_tunnel && u->user != NULL)
            u->user->ops->tunnel_ready(u->user);
        else
            es_writeq_flush(&u->out); /* the request that waited for the handshake */
        if (u->state == ES_UP_CLOSING)
            return;
    }
    char *plain = es_env_block_get(u->pool->env);
    if (plain == NULL) {
        upconn_fail(u, 503, "out of memory");
        return;
    }
    while (u->state == ES_UP_ACTIVE || u->state == ES_UP_IDLE) {
        ssize_t n = es_tls_read(t, plain, ES_BLOCK_SIZE);
        if (n == ES_TLS_AGAIN)
            break; /* also what a session ticket on an idle connection looks like */
        if (u->state == ES_UP_IDLE) {
            es_debug("cluster \"%s\": idle TLS connection %s", u->pool->cfg->name, n > 0 ? "sent data" : "closed");
            upconn_close(u);
            break;
        }
        if (n > 0) {
            got_data(u, plain, (size_t)n);
            continue;
        }
        got_end(u, n == ES_TLS_CLOSED ? UV_EOF : UV_ECONNRESET);
        break;
    }
    es_env_block_put(u->pool->env, plain);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    es_upconn_t *u = h->data;
    es_env_t *w = u->pool->env;
    es_upuser_t *user = u->user;
    if (u->tls != NULL && nread > 0 && (u->state == ES_UP_ACTIVE || u->state == ES_UP_IDLE)) {
        got_tls(u, buf->base, (size_t)nread);
    } else if (u->state == ES_UP_IDLE) {
        /* The upstream closed an idle connection, or sent bytes nobody asked for. */
        es_debug("cluster \"%s\": idle connection %s", u->pool->cfg->name, nread < 0 ? "closed" : "sent data");
        upconn_close(u);
    } else if (u->state == ES_UP_ACTIVE && nread < 0) {
        got_end(u, nread);
    } else if (u->state == ES_UP_ACTIVE && nread > 0) {
        got_data(u, buf->base, (size_t)nread);
    }
    if (buf->base != NULL)
        es_env_block_put(w, buf->base);
    if (user != NULL)
        user->ops->after_read(user);
}

/* The response parser's events (upstream/resp_parser.c). */

static int on_resp_begin(void *user)
{
    es_upconn_t *u = user;
    if (u->user == NULL)
        return -1;
    es_msg_reset(&u->resp);
    u->headers_done = 0;
    return 0;
}

static int on_resp_status(void *user, const char *at, size_t len)
{
    es_upconn_t *u = user;
    return es_msg_on_first(&u->resp, at, len);
}

static int on_resp_field(void *user, const char *at, size_t len)
{
    es_upconn_t *u = user;
    return es_msg_on_field(&u->resp, at, len);
}

static int on_resp_value(void *user, const char *at, size_t len)
{
    es_upconn_t *u = user;
    return es_msg_on_value(&u->resp, at, len);
}

/* A 1xx, or the answer to an upgrade request. Returns what the headers event returns, or 2: an ordinary
 * final response, to be handed to the user. */
static __attribute__((noinline, cold)) int informational_or_upgrade(es_upconn_t *u)
{
    if (u->status == 101 && u->upgrade_asked) {
        /* The upgrade goes on: the 101 is the final answer, and no body follows it. */
        u->upgraded = 1;
        int r = u->user->ops->headers(u->user, u);
        return r < 0 ? -1 : 1;
    }
    if (u->status == 101)
        return -1; /* Upgrade was not forwarded, so this is not a valid answer */
    if (u->status < 200) {
        u->interim = 1; /* 1xx: the final response follows; the proxy answered 100 Continue itself */
        return 0;
    }
    /* An upgrade declined: the server may not expect HTTP on the connection any more, so it is not pooled
     * again (released as if the upstream had closed it). */
    u->peer_closed = 1;
    return 2;
}

static int on_resp_headers(void *user)
{
    es_upconn_t *u = user;
    es_msg_headers_done(&u->resp);
    u->headers_done = 1;
    u->status = es_resp_parser_status(u->rp);
    u->content_length = es_resp_parser_content_length(u->rp);
    if (__builtin_expect(u->status < 200 || u->upgrade_asked, 0)) {
        int r = informational_or_upgrade(u);
        if (r != 2)
            return r;
    }
    int r = u->user->ops->headers(u->user, u);
    return r < 0 ? -1 : r;
}

static int on_resp_body(void *user, const char *at, size_t len)
{
    es_upconn_t *u = user;
    u->user->ops->body(u->user, at, len);
    return u->state == ES_UP_ACTIVE && u->user != NULL ? 0 : -1;
}

static int on_resp_complete(void *user)
{
    es_upconn_t *u = user;
    if (__builtin_expect(u->interim || u->upgraded, 0)) {
        if (u->upgraded)
            return 1; /* the 101's end: the tunnel's bytes follow */
        u->interim = 0;
        return 0;
    }
    u->complete = 1;
    u->user->ops->complete(u->user, es_resp_parser_keep_alive(u->rp));
    if (u->user != NULL && u->state == ES_UP_ACTIVE)
        es_upconn_read_pause(u, 1); /* not released yet (a filter holds the response): EOF waits too */
    /* Stop here: anything after the response is an error, checked by got_data. */
    return 1;
}

static const es_resp_parser_events_t resp_events = {
    .begin = on_resp_begin,
    .status = on_resp_status,
    .field = on_resp_field,
    .value = on_resp_value,
    .headers = on_resp_headers,
    .body = on_resp_body,
    .complete = on_resp_complete,
};

/* ---- the request, framed for the upstream -------------------------------------------------- */

int es_upconn_behind(const es_upconn_t *u)
{
    return u->h2x ? es_h2up_behind(u) : u->out.above_high;
}

void es_upconn_flush(es_upconn_t *u)
{
    if (u->h2x)
        es_h2up_flush(u);
    else
        es_writeq_flush(&u->out);
}

int es_upconn_send_head(es_upconn_t *u, const es_msg_t *m, const char *method, size_t method_len, int64_t length,
                        int chunked, const es_forwarded_t *fwd)
{
    if (u->h2x)
        return es_h2up_send_head(u, m, method, method_len, length, chunked || length > 0, fwd);
    if (__builtin_expect(fwd->upgrade, 0))
        u->upgrade_asked = 1; /* a 101 is a valid answer (reset by assign) */
    return es_http1_write_request_head(&u->out, m, method, method_len, length, chunked, fwd, u->ep);
}

int es_upconn_send_body(es_upconn_t *u, const char *at, size_t len, int chunked)
{
    if (u->h2x)
        return es_h2up_send_body(u, at, len);
    return chunked ? es_http1_write_chunk(&u->out, at, len) : es_writeq_append(&u->out, at, len);
}

int es_upconn_send_end(es_upconn_t *u, const es_msg_t *m, int chunked)
{
    if (u->h2x)
        return es_h2up_send_end(u, m);
    return chunked ? es_http1_write_last_chunk(&u->out, m) : 0;
}

/* ---- tunnels ------------------------------------------------------------------------------- */

__attribute__((cold)) int es_pool_connect_tunnel(es_pool_t *p, es_upuser_t *user, es_upconn_t **out)
{
    int err = pool_connect_h1(p, user, out); /* a TCP connection, whatever the cluster speaks */
    if (err == 0)
        (*out)->connect_tunnel = 1;
    return err;
}

__attribute__((cold)) void es_upconn_start_tunnel(es_upconn_t *u)
{
    if (u->state != ES_UP_ACTIVE || u->raw)
        return;
    u->raw = 1;
    u->upgraded = 1; /* a CONNECT's too: no response parser from now on */
    es_debug("cluster \"%s\": tunnel to %s:%u", u->pool->cfg->name, u->ep->address, u->ep->port);
    if (u->early != NULL) {
        char *e = u->early;
        size_t n = u->early_len;
        u->early = NULL;
        u->early_len = 0;
        if (u->user != NULL)
            u->user->ops->tunnel_data(u->user, e, n);
        free(e);
        if (u->state != ES_UP_ACTIVE)
            return;
    }
    if (u->connect_tunnel)
        es_writeq_flush(&u->out); /* bytes the client sent right behind its CONNECT */
    start_reading(u);
}

static void on_flush_timeout(uv_timer_t *t)
{
    es_upconn_t *u = t->data;
    es_debug("cluster \"%s\": tunnel bytes not written within %d ms; closing", u->pool->cfg->name, ES_TUNNEL_FLUSH_MS);
    upconn_close(u);
}

__attribute__((cold)) void es_upconn_close_after_flush(es_upconn_t *u)
{
    u->user = NULL;
    if (u->state != ES_UP_ACTIVE || es_writeq_idle(&u->out)) {
        upconn_close(u);
        return;
    }
    u->flush_close = 1;
    if (u->reading) {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = 0;
    }
    u->idle_timer = 0;
    uv_timer_start(&u->timer, on_flush_timeout, ES_TUNNEL_FLUSH_MS, 0);
    es_writeq_flush(&u->out);
}

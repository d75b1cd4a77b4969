/*
 * The exchange's flow: request events from the client's codec run through the filter chain (if any) to routing and
 * the upstream; response events from the upstream run back through the chain to the codec. Flow control is
 * the watermarks of both sides' write queues and of the chain's buffers.
 */
#include "stream/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "core/log.h"
#include "core/stats.h"
#include "obs/builtin_metrics.h"
#include "obs/scrape.h"

#define LIT(s) s, sizeof(s) - 1

static const es_upuser_ops_t upstream_ops;
static const es_filters_owner_ops_t owner_ops;
static void update_upstream_reading(es_stream_t *s);

void es_stream_init(es_stream_t *s, const es_down_ops_t *down, es_env_t *env, const es_listener_config_t *l)
{
    memset(s, 0, sizeof(*s));
    s->user.ops = &upstream_ops;
    s->owner.ops = &owner_ops;
    s->owner.env = env;
    s->owner.req = &s->req;
    s->down = down;
    s->listener = l;
    es_msg_init(&s->req);
}











/* ---- the request: from the codec, through the chain, upstream ------------------------------ */

/* ---- tunnels: a WebSocket upgrade's 101, a CONNECT's 200, then bytes both ways -------------- */

static __attribute__((cold)) void on_tunnel_idle(uv_timer_t *t)
{
    es_stream_t *s = t->data;
    es_stats_inc(ES_STAT_TUNNEL_IDLE_TIMEOUTS);
    s->owner.info.flags |= ES_RF_SI;
    es_debug("client %s:%u: tunnel idle for %llu ms; closing", s->owner.peer_ip, s->owner.peer_port,
             (unsigned long long)s->listener->tunnel_idle_timeout_ms);
    s->down->reset(s);
}

/* A byte went through the tunnel: its idle timeout starts again. */
static inline void tunnel_touch(es_stream_t *s)
{
    if (s->request_timer != NULL && s->listener->tunnel_idle_timeout_ms > 0)
        uv_timer_again(s->request_timer);
}

/* The 101 or 200 went out (the codec knows from ES_RESP_TUNNEL): the upstream's bytes flow, then the client's. */
static __attribute__((noinline, cold)) void enter_tunnel(es_stream_t *s)
{
    uint64_t idle = s->listener->tunnel_idle_timeout_ms;
    s->tunnel = 1;
    es_stats_inc(ES_STAT_TUNNELS);
    /* The request timer becomes the tunnel's idle timer: request_timeout covers a request, not a tunnel. */
    if (s->request_timer != NULL)
        uv_timer_stop(s->request_timer);
    uv_timer_t *t;
    if (idle > 0 && (t = es_stream__lazy_timer(s, &s->request_timer)) != NULL)
        uv_timer_start(t, on_tunnel_idle, idle + ES_CLOCK_SLACK_MS, idle + ES_CLOCK_SLACK_MS);
    es_upconn_start_tunnel(s->up);
    if (!s->aborted)
        s->down->read_changed(s); /* what the client sent behind its request head goes now */
}

void es_stream_tunnel_data(es_stream_t *s, const char *at, size_t len)
{
    es_upconn_t *up = s->up;
    if (up == NULL || !s->tunnel)
        return;
    tunnel_touch(s);
    s->owner.info.bytes_received += len;
    if (es_upconn_send_body(up, at, len, 0) != 0) {
        s->down->reset(s);
        return;
    }
    if (es_upconn_behind(up) && !s->up_blocked) {
        s->up_blocked = 1; /* the upstream is slower than the client */
        s->down->read_changed(s);
    }
}

/* The tunnel is over (either side ended it): no more bytes, no timer, both directions done. */
static __attribute__((cold)) int tunnel_over(es_stream_t *s)
{
    s->up = NULL;
    s->owner.resp = NULL;
    s->up_blocked = 0;
    if (s->request_timer != NULL)
        uv_timer_stop(s->request_timer);
    s->req_done = 1;
    s->resp_done = 1;
    return es_stream__maybe_finished(s);
}

__attribute__((cold)) void es_stream_tunnel_client_end(es_stream_t *s)
{
    if (!s->tunnel)
        return;
    if (s->up != NULL)
        es_upconn_close_after_flush(s->up);
    tunnel_over(s);
}

/* A WebSocket upgrade goes on as one where the route allows it; elsewhere without Upgrade (a plain GET). */
static __attribute__((noinline, cold)) void decide_upgrade(es_stream_t *s, const es_route_config_t *r)
{
    s->upgrading = r->upgrade_websocket && !r->cluster->http2 ? 1 : 0; /* WebSocket goes to HTTP/1.1 upstreams */
    if (!s->upgrading)
        es_stats_inc(ES_STAT_UPGRADES_REFUSED);
}

/* The pool could not even begin a connection to the route's cluster: 503, saying why. */
static int connect_failed(es_stream_t *s, const es_route_config_t *r, int err, int close)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "upstream connect error: %s\n", uv_strerror(err));
    es_warn("cluster \"%s\": connect failed: %s", r->cluster->name, uv_strerror(err));
    es_stream__answer(s, 503, NULL, body, (size_t)n, close, ES_RF_UF | ES_RF_LR);
    return -1;
}

/* A CONNECT: only where the route says connect: {}, and only to the route's cluster (not to the host:port the
 * request names: that would make the proxy an open relay). */
static __attribute__((noinline, cold)) int forward_connect(es_stream_t *s, const es_route_config_t *r)
{
    if (!r->connect) {
        static const char body[] = "CONNECT is not allowed here: the route has no \"connect: {}\"\n";
        es_stats_inc(ES_STAT_CONNECT_REFUSED);
        es_stream__local_reply(s, 403, body, sizeof(body) - 1, 1);
        return -1;
    }
    es_upconn_t *up;
    int err = es_pool_connect_tunnel(&s->owner.env->pools[r->cluster->index], &s->user, &up);
    if (err)
        return connect_failed(s, r, err, 1);
    s->up = up; /* up_tunnel_ready answers 200 once it is connected; up_failed 503 if it cannot be */
    s->owner.info.endpoint = up->ep;
    return 0;
}

/* The route's own answer: the counters, readiness, or a direct_response. */
static __attribute__((noinline)) void route_answer(es_stream_t *s, const es_route_config_t *r)
{
    if (r->stats) {
        es_buf_t b;
        es_buf_init(&b);
        size_t ulen;
        const char *url = es_msg_first(&s->req, &ulen);
        const char *q = memchr(url, '?', ulen);
        size_t plen = q != NULL ? (size_t)(q - url) : ulen;
        /* <prefix>/prometheus: the Prometheus text format; anything else under the prefix: the flat list. */
        int prom = plen >= 11 && memcmp(url + plen - 11, "/prometheus", 11) == 0;
        int err = prom ? es_scrape_prometheus(&b) : es_scrape_flat(&b);
        if (err != 0) {
            es_buf_dispose(&b);
            static const char oom[] = "out of memory\n";
            es_stream__local_reply(s, 503, oom, sizeof(oom) - 1, 0);
            return;
        }
        es_msg_t h;
        es_msg_init(&h);
        es_msg_headers_done(&h);
        if (prom)
            es_msg_add(&h, 0, LIT("content-type"), LIT("text/plain; version=0.0.4; charset=utf-8"));
        else
            es_msg_add(&h, 0, LIT("content-type"), LIT("text/plain; charset=utf-8"));
        es_stream__answer(s, 200, &h, b.base != NULL ? b.base : "", b.len, 0, 0);
        es_msg_dispose(&h);
        es_buf_dispose(&b);
        return;
    }
    if (r->ready) {
        static const char ok[] = "ready\n", draining[] = "draining\n";
        if (s->owner.env->draining)
            es_stream__answer(s, 503, NULL, draining, sizeof(draining) - 1, 0, 0);
        else
            es_stream__answer(s, 200, NULL, ok, sizeof(ok) - 1, 0, 0);
        return;
    }
    es_stream__answer(s, r->direct_status, NULL, r->direct_body, r->direct_body_len, 0, 0);
}

static int forward_request_headers(es_stream_t *s, int eos, int64_t known_len)
{
    /* The route was matched when the head arrived, and again after any filter that changed what routes match on. */
    const es_route_config_t *r = s->owner.route;
    if (r == NULL) {
        static const char body[] = "no route matched\n";
        es_stream__answer(s, 404, NULL, body, sizeof(body) - 1, 0, ES_RF_NR | ES_RF_LR);
        return -1;
    }
    if (__builtin_expect(s->method == ES_METHOD_CONNECT, 0))
        return forward_connect(s, r);
    if (r->cluster == NULL) {
        route_answer(s, r);
        return -1;
    }
    if (__builtin_expect(s->upgrade_req, 0))
        decide_upgrade(s, r);
    es_upconn_t *up;
    int err = es_pool_acquire(&s->owner.env->pools[r->cluster->index], &s->user, &up);
    if (err)
        return connect_failed(s, r, err, 0);
    s->up = up;
    s->owner.info.endpoint = up->ep;
    int had_length = es_msg_find(&s->req, LIT("content-length"), 0) >= 0;
    s->declared[ES_DIR_REQUEST] =
        known_len >= 0 ? (s->req_has_body || had_length ? known_len : -1) : es_msg_content_length(&s->req);
    s->req_chunked = s->req_has_body && !eos && s->declared[ES_DIR_REQUEST] < 0;
    if (es_upconn_send_head(up, &s->req, s->owner.method, s->owner.method_len, s->declared[ES_DIR_REQUEST],
                            s->req_chunked, &(es_forwarded_t){s->owner.peer_ip, s->owner.tls, s->expect_continue, s->upgrading}) != 0) {
        s->down->reset(s);
        return -1;
    }
    return 0;
}

/* The 101 to an upgrade that went upstream: it goes to the client, and the tunnel begins. */
static __attribute__((noinline, cold)) int forward_tunnel_head(es_stream_t *s)
{
    es_stream__note_response(s, 101, s->owner.resp);
    if (s->down->headers(s, 101, s->owner.resp, -1, ES_RESP_END | ES_RESP_TUNNEL) != 0)
        return -1;
    s->resp_started = 1;
    enter_tunnel(s);
    return 0;
}

static int forward_response_headers(es_stream_t *s, int eos, int64_t known_len)
{
    es_msg_t *m = s->owner.resp;
    int status = s->owner.resp_status;
    if (__builtin_expect(s->upgrading, 0) && status == 101 && s->up != NULL)
        return forward_tunnel_head(s);
    int nobody = s->head || status == 204 || status == 304;
    int64_t declared = known_len >= 0 && !nobody ? known_len : es_msg_content_length(m);
    s->declared[ES_DIR_RESPONSE] = nobody ? -1 : declared;
    es_stream__note_response(s, status, m);
    if (s->down->headers(s, status, m, nobody ? -1 : declared, eos || nobody ? ES_RESP_END : 0) != 0)
        return -1;
    s->resp_started = 1;
    return 0;
}

int es_stream__forward_headers(es_stream_t *s, int dir, int eos, int64_t known_len)
{
    return dir == ES_DIR_REQUEST ? forward_request_headers(s, eos, known_len)
                                 : forward_response_headers(s, eos, known_len);
}

static int forward_body(es_stream_t *s, int dir, const char *at, size_t len, int eos)
{
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
        if (es_upconn_send_body(up, at, len, s->req_chunked) != 0) {
            s->down->reset(s);
            return -1;
        }
        if (es_upconn_behind(up) && !s->up_blocked) {
            /* The upstream is slower than the client: stop reading the client until it catches up. */
            s->up_blocked = 1;
            s->down->read_changed(s);
        }
        return 0;
    }
    if (s->down->body(s, at, len) != 0)
        return -1;
    if (s->up != NULL && s->down->client_behind(s))
        es_upconn_read_pause(s->up, 1); /* the client is slower than the upstream */
    return 0;
}

static int forward_end(es_stream_t *s, int dir)
{
    if (s->declared[dir] >= 0 && s->sent[dir] != (uint64_t)s->declared[dir] && s->filters != NULL) {
        es_warn("a filter shortened a streamed %s body with a Content-Length",
                dir == ES_DIR_REQUEST ? "request" : "response");
        es_stream__filter_failed(s, dir == ES_DIR_REQUEST ? 500 : 502, "filter error");
        return -1;
    }
    if (dir == ES_DIR_REQUEST) {
        if (s->up != NULL && !s->discard_body && es_upconn_send_end(s->up, &s->req, s->req_chunked) != 0) {
            s->down->reset(s);
            return -1;
        }
        es_stream__maybe_finished(s);
        return 0;
    }
    es_upconn_t *up = s->up;
    if (s->down->end(s, s->owner.resp) != 0)
        return -1;
    s->resp_done = 1;
    s->up = NULL;
    s->owner.resp = NULL;
    es_upconn_release(up, s->up_reusable && s->req_done);
    if (!s->req_done)
        s->discard_body = 1;
    if (s->up_blocked) {
        s->up_blocked = 0;
        s->down->read_changed(s);
    }
    if (!es_stream__maybe_finished(s))
        s->down->abandon_request(s);
    return 0;
}

static void send_continue(es_stream_t *s)
{
    if (!s->continue_pending)
        return;
    s->continue_pending = 0;
    if (!s->resp_started && !s->req_done)
        s->down->send_continue(s);
}

/* grpc-timeout (gRPC over HTTP/2: 1 to 8 digits and a unit H M S m u n) in ms, rounded up; -1 when absent or bad. */
static int64_t grpc_timeout_ms(const es_msg_t *m)
{
    int i = es_msg_find(m, LIT("grpc-timeout"), 0);
    if (i < 0)
        return -1;
    size_t len;
    const char *v = es_msg_value(m, (uint32_t)i, &len);
    if (len < 2 || len > 9)
        return -1;
    int64_t n = 0;
    for (size_t k = 0; k + 1 < len; k++) {
        if (v[k] < '0' || v[k] > '9')
            return -1;
        n = n * 10 + (v[k] - '0');
    }
    switch (v[len - 1]) {
    case 'H': return n * 3600000;
    case 'M': return n * 60000;
    case 'S': return n * 1000;
    case 'm': return n;
    case 'u': return (n + 999) / 1000;
    case 'n': return (n + 999999) / 1000000;
    default: return -1;
    }
}

int es_stream_request_headers(es_stream_t *s)
{
    es_msg_headers_done(&s->req);
    s->req_headers_done = 1;
    s->head = s->method == ES_METHOD_HEAD;
    int ct = es_msg_find(&s->req, LIT("content-type"), 0);
    if (ct >= 0) {
        size_t len;
        const char *v = es_msg_value(&s->req, (uint32_t)ct, &len);
        s->grpc = len >= 16 && strncasecmp(v, "application/grpc", 16) == 0;
    }
    int64_t deadline = s->grpc ? grpc_timeout_ms(&s->req) : -1;
    uv_timer_t *t;
    if (deadline >= 0 && (s->listener->request_timeout_ms == 0 || (uint64_t)deadline < s->listener->request_timeout_ms) &&
        (t = es_stream__lazy_timer(s, &s->request_timer)) != NULL) {
        /* The client's deadline is the proxy's too: past it, the answer is DEADLINE_EXCEEDED, not a late one. */
        uv_timer_start(t, es_stream__on_request_timeout, (uint64_t)deadline + ES_CLOCK_SLACK_MS, 0);
    }
    const es_listener_config_t *l = s->listener;
    /* Route first: every filter knows the route, and runs with the route's filter_config. */
    const es_route_config_t *r = es_stream__match_route(s);
    s->owner.route = r;
    const es_filter_chain_t *chain = es_filters_chain((size_t)(l - s->owner.env->cfg->listeners));
    if (chain->n > 0) {
        const es_filter_entry_t *quarantined;
        s->filters = es_filters_new(chain, &s->owner, r != NULL ? (long)r->index : -1, l->buffer_high, l->buffer_low,
                                    l->max_body, &quarantined);
        if (s->filters == NULL && quarantined != NULL) {
            char body[200];
            int n = snprintf(body, sizeof(body), "filter \"%s\" is quarantined: it kept crashing workers\n",
                             quarantined->name);
            es_stream__answer(s, 503, NULL, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, 0,
                              ES_RF_FE | ES_RF_LR);
            return 0;
        }
        if (s->filters == NULL) {
            static const char body[] = "filter error\n";
            es_stream__answer(s, 500, NULL, body, sizeof(body) - 1, 0, ES_RF_FE | ES_RF_LR);
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

void es_stream_request_body(es_stream_t *s, const char *at, size_t len)
{
    s->owner.info.bytes_received += len;
    if (s->discard_body)
        return;
    if (s->filters != NULL)
        es_filters_body(s->filters, ES_DIR_REQUEST, at, len, false);
    else
        forward_body(s, ES_DIR_REQUEST, at, len, 0);
}

void es_stream_request_complete(es_stream_t *s)
{
    s->req_done = 1;
    if (s->discard_body) {
        es_stream__maybe_finished(s);
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
    forward_end(s, ES_DIR_REQUEST);
}

void es_stream_client_writable(es_stream_t *s)
{
    update_upstream_reading(s);
}


/* Writes what the stream queued, on both sides. */
static void flush_both(es_stream_t *s)
{
    es_stream_flush_upstream(s);
    if (!s->aborted)
        s->down->flush(s);
}

/* ---- the response: from the upstream, through the chain, to the codec ---------------------- */

/* Why the upstream failed the exchange, from what the upstream layer said (its reasons are fixed strings): it refused
 * the stream (UO), answered nonsense (UPE), could not be reached (UF), or went away under it (UC). */
static __attribute__((cold)) uint32_t failure_flag(const char *reason)
{
    if (strstr(reason, "REFUSED_STREAM") != NULL)
        return ES_RF_UO;
    if (strstr(reason, "malformed") != NULL || strstr(reason, "protocol error") != NULL ||
        strstr(reason, "does not speak") != NULL)
        return ES_RF_UPE;
    if (strncmp(reason, "upstream connect", 16) == 0 || strstr(reason, "TLS handshake") != NULL)
        return ES_RF_UF;
    return ES_RF_UC;
}

static void upstream_failed(es_stream_t *s, int status, const char *reason)
{
    s->owner.info.flags |= failure_flag(reason);
    es_stream__halt_filters(s); /* a filter holding the response must not see it vanish */
    s->up = NULL;
    s->owner.resp = NULL;
    if (s->up_blocked) {
        s->up_blocked = 0;
        s->down->read_changed(s);
    }
    if (s->resp_started) {
        /* Part of the response is out: the client can only learn of the failure by a reset. */
        s->down->reset(s);
        return;
    }
    char body[200];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    es_stream__answer(s, status, NULL, body, (size_t)n, 0, ES_RF_LR);
    flush_both(s);
}

/* Returns 1 when the response has no body to read (HEAD), 0 otherwise, -1 to reject it. */
static int response_headers(es_stream_t *s, es_upconn_t *up)
{
    if (s->filters != NULL && s->filters->halted)
        return -1;
    s->owner.resp = &up->resp;
    s->owner.resp_status = up->status;
    s->resp_headers_in = 1;
    if (s->owner.info.upstream_first_ns == 0) {
        const es_route_config_t *r = s->owner.route;
        s->owner.info.upstream_first_ns = uv_hrtime();
        if (r != NULL && r->cluster != NULL) {
            es_builtin_upstream_first_byte(r->cluster, (double)(s->owner.info.upstream_first_ns - s->owner.info.start_ns) * 1e-9);
            es_builtin_upstream_rq(r->cluster, up->status);
        }
    }
    /* A 101 ends the response for the filters: they see its headers, never the tunnel's bytes. */
    int nobody = s->head || s->owner.resp_status == 204 || s->owner.resp_status == 304 || s->owner.resp_status == 101;
    int eos = nobody || up->content_length == 0;
    s->resp_body_eos = eos;
    int r = s->filters != NULL ? (es_filters_headers(s->filters, ES_DIR_RESPONSE, eos) == ES_CHAIN_HALT ? -1 : 0)
                               : forward_response_headers(s, eos, -1);
    if (r < 0)
        return -1;
    return s->head ? 1 : 0;
}

static void response_body(es_stream_t *s, const char *at, size_t len)
{
    if (s->filters != NULL)
        es_filters_body(s->filters, ES_DIR_RESPONSE, at, len, false);
    else
        forward_body(s, ES_DIR_RESPONSE, at, len, 0);
}

static void response_complete(es_stream_t *s, int reusable)
{
    s->up_reusable = reusable ? 1 : 0;
    if (s->filters != NULL) {
        es_msg_t *m = s->owner.resp;
        int has_trailers = m->ntrailers_from < m->nheaders;
        if (!s->resp_body_eos && es_filters_body(s->filters, ES_DIR_RESPONSE, NULL, 0, true) == ES_CHAIN_HALT)
            return;
        es_filters_end(s->filters, ES_DIR_RESPONSE, has_trailers);
        return;
    }
    forward_end(s, ES_DIR_RESPONSE);
}

/* The upstream is read unless the client or a RUNNING response filter is behind. */
static void update_upstream_reading(es_stream_t *s)
{
    if (s->up == NULL)
        return;
    int behind = s->down->client_behind(s) ||
                 (s->filters != NULL && es_filters_blocked(s->filters, ES_DIR_RESPONSE));
    es_upconn_read_pause(s->up, behind);
}

/* ---- the filter chain's view of the stream ------------------------------------------------- */

#define STREAM_OF_OWNER(o) ((es_stream_t *)((char *)(o) - offsetof(es_stream_t, owner)))

static int owner_forward_headers(es_filters_owner_t *o, int dir, int eos, int64_t known_len)
{
    return es_stream__forward_headers(STREAM_OF_OWNER(o), dir, eos, known_len);
}

static int owner_forward_body(es_filters_owner_t *o, int dir, const char *at, size_t len, int eos)
{
    return forward_body(STREAM_OF_OWNER(o), dir, at, len, eos);
}

static int owner_forward_end(es_filters_owner_t *o, int dir)
{
    return forward_end(STREAM_OF_OWNER(o), dir);
}

static void on_filter_timeout(uv_timer_t *t)
{
    es_stream_t *s = t->data;
    if (s->filters == NULL)
        return;
    s->owner.info.flags |= ES_RF_FT;
    es_filters_timeout(s->filters);
    flush_both(s);
}

static void owner_waiting(es_filters_owner_t *o, int on, uint64_t timeout_ms)
{
    es_stream_t *s = STREAM_OF_OWNER(o);
    if (s->aborted)
        return;
    if (on) {
        es_stats_inc(ES_STAT_FILTER_RUNNING);
        uv_timer_t *t = es_stream__lazy_timer(s, &s->filter_timer);
        if (t != NULL)
            uv_timer_start(t, on_filter_timeout, timeout_ms, 0);
    } else if (s->filter_timer != NULL) {
        uv_timer_stop(s->filter_timer);
    }
}

static void owner_blocked(es_filters_owner_t *o, int dir, int on)
{
    es_stream_t *s = STREAM_OF_OWNER(o);
    if (dir == ES_DIR_REQUEST) {
        s->filter_blocked = on ? 1 : 0;
        s->down->read_changed(s);
    } else {
        update_upstream_reading(s);
    }
}

static void owner_reply(es_filters_owner_t *o, int status, const es_msg_t *headers, const char *body, size_t len)
{
    es_stream_t *s = STREAM_OF_OWNER(o);
    es_stream__drop_upstream(s);
    if (s->resp_started) {
        s->down->reset(s); /* part of another response is out: the reset is all that can be said */
        return;
    }
    es_stream__answer(s, status, headers, body, len, 0, ES_RF_LR);
}

static void owner_failed(es_filters_owner_t *o, int status, const char *reason)
{
    es_stream__filter_failed(STREAM_OF_OWNER(o), status, reason);
}

static void owner_resumed(es_filters_owner_t *o)
{
    es_stream_t *s = STREAM_OF_OWNER(o);
    es_stats_inc(ES_STAT_FILTER_RESUMED);
    if (s->continue_pending && (s->filters == NULL || !s->filters->run.active))
        send_continue(s);
    flush_both(s);
    if (!s->aborted)
        s->down->read_changed(s);
}

static int owner_rematch(es_filters_owner_t *o, int index)
{
    es_stream_t *s = STREAM_OF_OWNER(o);
    const es_route_config_t *r = es_stream__match_route(s);
    s->owner.route = r;
    return es_filters_set_route(s->filters, r != NULL ? (long)r->index : -1, index);
}

static const es_filters_owner_ops_t owner_ops = {
    .forward_headers = owner_forward_headers,
    .forward_body = owner_forward_body,
    .forward_end = owner_forward_end,
    .waiting = owner_waiting,
    .blocked = owner_blocked,
    .reply = owner_reply,
    .failed = owner_failed,
    .resumed = owner_resumed,
    .rematch = owner_rematch,
};

/* ---- the upstream connection's view of the stream ---------------------------------------- */

#define STREAM_OF(u) ((es_stream_t *)((char *)(u) - offsetof(es_stream_t, user)))

static void up_failed(es_upuser_t *u, int status, const char *reason)
{
    upstream_failed(STREAM_OF(u), status, reason);
}

static void up_writable(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    if (s->up_blocked) {
        s->up_blocked = 0;
        s->down->read_changed(s);
    }
}

static int up_headers(es_upuser_t *u, es_upconn_t *up)
{
    return response_headers(STREAM_OF(u), up);
}

static void up_body(es_upuser_t *u, const char *at, size_t len)
{
    response_body(STREAM_OF(u), at, len);
}

static void up_complete(es_upuser_t *u, int reusable)
{
    response_complete(STREAM_OF(u), reusable);
}

static void up_after_read(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    if (!s->aborted)
        flush_both(s);
}

static __attribute__((cold)) void up_tunnel_ready(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    es_msg_t none;
    es_msg_init(&none);
    es_stream__note_response(s, 200, NULL);
    int r = s->down->headers(s, 200, &none, -1, ES_RESP_END | ES_RESP_TUNNEL);
    es_msg_dispose(&none);
    if (r != 0)
        return;
    s->resp_started = 1;
    enter_tunnel(s);
    if (!s->aborted)
        flush_both(s);
}

static void up_tunnel_data(es_upuser_t *u, const char *at, size_t len)
{
    es_stream_t *s = STREAM_OF(u);
    tunnel_touch(s);
    s->owner.info.bytes_sent += len;
    if (s->down->body(s, at, len) != 0)
        return;
    if (s->up != NULL && s->down->client_behind(s))
        es_upconn_read_pause(s->up, 1); /* the client is slower than the upstream */
}

/* The upstream closed the tunnel: the client's side closes once what is queued for it is written. */
static __attribute__((cold)) void up_tunnel_end(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    if (tunnel_over(s) && !s->aborted)
        s->down->flush(s);
}

static void up_detach(es_upuser_t *u)
{
    es_stream_t *s = STREAM_OF(u);
    s->up = NULL;
    s->owner.resp = NULL;
}

/* RFC 9110 9.2.2: sending these twice means the same as sending them once. */
static int idempotent(int method)
{
    switch (method) {
    case ES_METHOD_GET: case ES_METHOD_HEAD: case ES_METHOD_OPTIONS: case ES_METHOD_PUT: case ES_METHOD_DELETE:
    case ES_METHOD_TRACE:
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
    const es_route_config_t *r = s->owner.route;
    s->up = NULL;
    s->owner.resp = NULL;
    if (s->aborted || r == NULL || r->cluster == NULL || s->retries >= r->cluster->retries_on_reset ||
        !idempotent(s->method) || s->sent[ES_DIR_REQUEST] > 0 || s->resp_headers_in ||
        (s->filters != NULL && s->filters->halted))
        return 0;
    es_upconn_t *up;
    if (es_pool_connect(&s->owner.env->pools[r->cluster->index], &s->user, &up) != 0)
        return 0;
    s->retries++;
    s->owner.info.endpoint = up->ep;
    es_stats_inc(ES_STAT_UPSTREAM_RETRIES);
    es_debug("cluster \"%s\": a reused connection died before the response; %.*s sent again on a new one",
             r->cluster->name, (int)s->owner.method_len, s->owner.method);
    s->up = up;
    if (es_upconn_send_head(up, &s->req, s->owner.method, s->owner.method_len, s->declared[ES_DIR_REQUEST],
                            s->req_chunked, &(es_forwarded_t){s->owner.peer_ip, s->owner.tls, s->expect_continue, s->upgrading}) != 0 ||
        (s->req_done && es_upconn_send_end(up, &s->req, s->req_chunked) != 0)) {
        s->down->reset(s);
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
    .tunnel_ready = up_tunnel_ready,
    .tunnel_data = up_tunnel_data,
    .tunnel_end = up_tunnel_end,
};

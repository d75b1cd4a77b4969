#include "upstream/callout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/env.h"
#include "core/log.h"
#include "core/stats.h"
#include "upstream/upstream.h"

#define LIT(s) s, sizeof(s) - 1

typedef struct {
    es_upuser_t user;
    es_link_t link;                  /* in the stream's list, until answered */
    const es_filter_lib_t *lib;      /* the library that asked, and is answered */
    const es_cluster_config_t *cluster;
    uint64_t token;
    uint64_t timeout_ms;
    es_upconn_t *up;
    uv_timer_t timer;                /* the timeout; also defers an immediate failure */
    int status;
    es_buf_t body;
    int early_result;                /* a failure found while starting, answered from the timer */
    char early_reason[120];
    unsigned head : 1;
    unsigned done : 1;
} es_callout_t;

static const es_upuser_ops_t callout_ops;

static void on_timer_closed(uv_handle_t *h)
{
    es_callout_t *co = h->data;
    es_buf_dispose(&co->body);
    free(co);
}

/* Answers the library once, lets go of the connection and the stream, and frees the call-out. */
static void finish(es_callout_t *co, int result, const char *reason, es_upconn_t *resp_from, int reusable)
{
    if (co->done)
        return;
    co->done = 1;
    uv_timer_stop(&co->timer);
    es_list_remove(&co->link);
    envoy_swift_callout_response_t r = {.result = result, .reason = {reason, strlen(reason)}};
    envoy_swift_bytes_t names[64], values[64];
    envoy_swift_bytes_t *n = names, *v = values;
    if (result == ENVOY_SWIFT_OK) {
        const es_msg_t *m = &resp_from->resp;
        uint32_t from, to;
        es_msg_section(m, 0, &from, &to);
        size_t count = to - from;
        if (count > 64) {
            n = malloc(count * sizeof(*n));
            v = malloc(count * sizeof(*v));
        }
        if (n == NULL || v == NULL) {
            count = 0;
            r.result = ENVOY_SWIFT_ERR_NOMEM;
            r.reason = (envoy_swift_bytes_t){LIT("out of memory")};
        }
        for (size_t i = 0; i < count; i++) {
            n[i].ptr = es_msg_name(m, from + (uint32_t)i, &n[i].length);
            v[i].ptr = es_msg_value(m, from + (uint32_t)i, &v[i].length);
        }
        r.status = co->status;
        r.header_names = n;
        r.header_values = v;
        r.header_count = count;
        r.body = (envoy_swift_bytes_t){co->body.base ? co->body.base : "", co->body.len};
    } else {
        es_stats_inc(ES_STAT_CALLOUT_FAILURES);
    }
    co->lib->callout_done(co->token, &r);
    if (n != names)
        free(n);
    if (v != values)
        free(v);
    if (co->up != NULL) {
        if (resp_from != NULL)
            es_upconn_release(co->up, reusable);
        else
            es_upconn_abandon(co->up);
        co->up = NULL;
    }
    uv_close((uv_handle_t *)&co->timer, on_timer_closed);
}

static void on_timer(uv_timer_t *t)
{
    es_callout_t *co = t->data;
    if (co->early_result != 0) {
        finish(co, co->early_result, co->early_reason, NULL, 0);
        return;
    }
    char reason[96];
    snprintf(reason, sizeof(reason), "call-out to cluster \"%s\" timed out after %llu ms", co->cluster->name,
             (unsigned long long)co->timeout_ms);
    es_debug("%s", reason);
    finish(co, ENVOY_SWIFT_ERR_TIMEOUT, reason, NULL, 0);
}

void es_callouts_cancel(es_link_t *callouts)
{
    while (!es_list_empty(callouts)) {
        es_callout_t *co = es_container_of(callouts->next, es_callout_t, link);
        finish(co, ENVOY_SWIFT_ERR_CANCELLED, "the stream ended before the call-out's answer", NULL, 0);
    }
}

static int valid_token(envoy_swift_bytes_t b)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    if (b.length == 0 || b.ptr == NULL)
        return 0;
    for (size_t i = 0; i < b.length; i++) {
        unsigned char c = (unsigned char)b.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c && strchr(tchar, c))))
            return 0;
    }
    return 1;
}

/* Bytes that may sit in a request target or a header value: no controls (so no CR, LF, NUL). */
static int valid_text(envoy_swift_bytes_t b, int allow_space)
{
    if (b.length > 0 && b.ptr == NULL)
        return 0;
    for (size_t i = 0; i < b.length; i++) {
        unsigned char c = (unsigned char)b.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f || (!allow_space && (c == ' ' || c == '\t')))
            return 0;
    }
    return 1;
}

static int write_request(es_callout_t *co, const envoy_swift_callout_request_t *req)
{
    es_writeq_t *q = &co->up->out;
    int has_host = 0;
    int err = es_writeq_appendf(q, "%.*s %.*s HTTP/1.1\r\n", (int)req->method.length, req->method.ptr,
                                (int)req->path.length, req->path.ptr);
    for (size_t i = 0; !err && i < req->header_count; i++) {
        envoy_swift_bytes_t n = req->header_names[i], v = req->header_values[i];
        /* The host owns the framing and the connection. */
        if (es_name_eq(n.ptr, n.length, LIT("content-length")) || es_name_eq(n.ptr, n.length, LIT("transfer-encoding")) ||
            es_name_eq(n.ptr, n.length, LIT("connection")))
            continue;
        has_host |= es_name_eq(n.ptr, n.length, LIT("host"));
        err = es_writeq_appendf(q, "%.*s: %.*s\r\n", (int)n.length, n.ptr, (int)v.length, v.ptr);
    }
    if (!err && !has_host)
        err = es_writeq_appendf(q, "host: %s:%u\r\n", co->up->ep->address, co->up->ep->port);
    if (!err && (req->body.length > 0 || es_name_eq(req->method.ptr, req->method.length, LIT("post")) ||
                 es_name_eq(req->method.ptr, req->method.length, LIT("put"))))
        err = es_writeq_appendf(q, "content-length: %zu\r\n", req->body.length);
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    if (!err && req->body.length > 0)
        err = es_writeq_append(q, req->body.ptr, req->body.length);
    return err;
}

int es_callout_start(es_link_t *callouts, const es_filter_lib_t *lib, es_env_t *env,
                     const envoy_swift_callout_request_t *req, uint64_t token)
{
    const es_config_t *cfg = env->cfg;
    if (req == NULL || !valid_token(req->method) || req->path.length == 0 || req->path.ptr[0] != '/' ||
        !valid_text(req->path, 0) || (req->header_count > 0 && (req->header_names == NULL || req->header_values == NULL)) ||
        (req->body.length > 0 && req->body.ptr == NULL))
        return ENVOY_SWIFT_ERR_INVALID;
    for (size_t i = 0; i < req->header_count; i++)
        if (!valid_token(req->header_names[i]) || !valid_text(req->header_values[i], 1))
            return ENVOY_SWIFT_ERR_INVALID;
    const es_cluster_config_t *cluster = NULL;
    for (size_t i = 0; i < cfg->nclusters && cluster == NULL; i++)
        if (strlen(cfg->clusters[i].name) == req->cluster.length &&
            memcmp(cfg->clusters[i].name, req->cluster.ptr, req->cluster.length) == 0)
            cluster = &cfg->clusters[i];
    if (cluster == NULL)
        return ENVOY_SWIFT_ERR_NOT_FOUND;
    if (cluster->http2)
        return ENVOY_SWIFT_ERR_INVALID; /* call-outs speak HTTP/1.1: an http2 cluster cannot take them (yet) */

    es_callout_t *co = calloc(1, sizeof(*co));
    if (co == NULL)
        return ENVOY_SWIFT_ERR_NOMEM;
    co->user.ops = &callout_ops;
    co->lib = lib;
    co->cluster = cluster;
    co->token = token;
    co->timeout_ms = req->timeout_ms ? req->timeout_ms : ES_CALLOUT_DEFAULT_TIMEOUT_MS;
    co->head = es_name_eq(req->method.ptr, req->method.length, LIT("head"));
    uv_timer_init(env->loop, &co->timer);
    co->timer.data = co;
    es_list_push_back(callouts, &co->link);
    es_stats_inc(ES_STAT_CALLOUTS);

    int err = es_pool_acquire(&env->pools[cluster->index], &co->user, &co->up);
    if (err == 0 && write_request(co, req) != 0)
        err = UV_ENOMEM;
    if (err != 0) {
        /* Answered from the loop, never inside the library's call. */
        co->early_result = ENVOY_SWIFT_ERR_UPSTREAM;
        snprintf(co->early_reason, sizeof(co->early_reason), "call-out to cluster \"%s\": %s", cluster->name,
                 uv_strerror(err));
        uv_timer_start(&co->timer, on_timer, 0, 0);
        return ENVOY_SWIFT_OK;
    }
    es_writeq_flush(&co->up->out); /* a reused connection sends now; a new one on connect */
    uv_timer_start(&co->timer, on_timer, co->timeout_ms, 0);
    return ENVOY_SWIFT_OK;
}

/* ---- the upstream connection's view of the call-out --------------------------------------- */

#define CALLOUT_OF(u) ((es_callout_t *)(u))

static void co_failed(es_upuser_t *u, int status, const char *reason)
{
    (void)status;
    es_callout_t *co = CALLOUT_OF(u);
    co->up = NULL; /* already detached and closing */
    char why[200];
    snprintf(why, sizeof(why), "call-out to cluster \"%s\": %s", co->cluster->name, reason);
    finish(co, ENVOY_SWIFT_ERR_UPSTREAM, why, NULL, 0);
}

static void co_writable(es_upuser_t *u)
{
    (void)u;
}

static int co_headers(es_upuser_t *u, es_upconn_t *up)
{
    es_callout_t *co = CALLOUT_OF(u);
    co->status = up->status;
    return co->head ? 1 : 0;
}

static void co_body(es_upuser_t *u, const char *at, size_t len)
{
    es_callout_t *co = CALLOUT_OF(u);
    if (co->body.len + len > ES_CALLOUT_MAX_BODY || es_buf_append(&co->body, at, len) != 0) {
        char why[160];
        snprintf(why, sizeof(why), "call-out to cluster \"%s\": response body over %u bytes", co->cluster->name,
                 ES_CALLOUT_MAX_BODY);
        finish(co, ENVOY_SWIFT_ERR_UPSTREAM, why, NULL, 0); /* abandons the connection: the parser stops */
    }
}

static void co_complete(es_upuser_t *u, int reusable)
{
    es_callout_t *co = CALLOUT_OF(u);
    finish(co, ENVOY_SWIFT_OK, "", co->up, reusable && es_writeq_idle(&co->up->out));
}

static void co_after_read(es_upuser_t *u)
{
    (void)u;
}

static void co_detach(es_upuser_t *u)
{
    CALLOUT_OF(u)->up = NULL;
}

static const es_upuser_ops_t callout_ops = {
    .failed = co_failed,
    .writable = co_writable,
    .headers = co_headers,
    .body = co_body,
    .complete = co_complete,
    .after_read = co_after_read,
    .detach = co_detach,
};

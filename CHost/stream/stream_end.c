/*
 * How a stream begins and ends: its timers, its finish, its abort, and the proxy's own answers (direct
 * responses, errors, timeouts, a failed filter). An answer ends the exchange: the chain stops, the upstream is
 * let go, and the codec frames it. stream.c, the exchange's flow, builds on these; nothing here calls it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "core/log.h"
#include "core/stats.h"
#include "stream/stream.h"

void es_stream_abort(es_stream_t *s)
{
    s->aborted = 1;
    if (s->filters != NULL && !s->filters->halted) {
        if (s->filters->run.active) {
            es_stats_inc(ES_STAT_FILTER_CANCELLED);
            es_debug("client %s:%u went away while a filter was running; cancelling it", s->owner.peer_ip,
                     s->owner.peer_port);
        }
        es_filters_halt(s->filters);
    }
    if (s->up != NULL) {
        /* A tunnel's client went away: what it sent before goes to the upstream, then that closes too. */
        if (s->tunnel)
            es_upconn_close_after_flush(s->up);
        else
            es_upconn_abandon(s->up);
        s->up = NULL;
        s->owner.resp = NULL;
    }
    if (s->request_timer != NULL)
        uv_timer_stop(s->request_timer);
    if (s->filter_timer != NULL)
        uv_timer_stop(s->filter_timer);
}

void es_stream__halt_filters(es_stream_t *s)
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

/* The exchange is over (finished, or its client gone): its info is completed, its filters see it one last time,
 * then its access-log line and metrics are made. Exactly once per request that began. */
static void stream_end(es_stream_t *s)
{
    if (!s->begun) {
        end_filters(s);
        return;
    }
    s->begun = 0;
    es_stream__info_finish(s);
    end_filters(s);
    es_stream__record(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

void es_stream_dispose(es_stream_t *s)
{
    stream_end(s);
    es_msg_dispose(&s->req);
    /* The timers are their own allocations: the stream's memory may go before their close callbacks run. */
    if (s->request_timer != NULL)
        uv_close((uv_handle_t *)s->request_timer, on_timer_closed);
    if (s->filter_timer != NULL)
        uv_close((uv_handle_t *)s->filter_timer, on_timer_closed);
    s->request_timer = s->filter_timer = NULL;
}

uv_timer_t *es_stream__lazy_timer(es_stream_t *s, uv_timer_t **slot)
{
    if (*slot == NULL && !s->aborted) {
        uv_timer_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return NULL;
        uv_timer_init(s->owner.env->loop, t);
        t->data = s;
        *slot = t;
    }
    return *slot;
}

void es_stream__on_request_timeout(uv_timer_t *t)
{
    es_stream_t *s = t->data;
    es_stats_inc(ES_STAT_REQUEST_TIMEOUTS);
    es_debug("client %s:%u: request not answered within request_timeout (%llu ms)", s->owner.peer_ip,
             s->owner.peer_port, (unsigned long long)s->listener->request_timeout_ms);
    es_stream_timed_out(s, 1);
}

void es_stream_begin(es_stream_t *s)
{
    const es_listener_config_t *l = s->listener;
    stream_end(s);
    es_msg_reset(&s->req);
    memset(&s->resp_log, 0, sizeof(*s) - offsetof(es_stream_t, resp_log));
    memset(&s->owner.info, 0, sizeof(s->owner.info));
    s->begun = 1;
    s->owner.info.start_ns = uv_hrtime();
    s->owner.resp = NULL;
    s->owner.resp_status = 0;
    s->owner.route = NULL;
    s->declared[0] = s->declared[1] = -1;
    s->active = 1;
    uv_timer_t *t;
    if (l->request_timeout_ms > 0 && (t = es_stream__lazy_timer(s, &s->request_timer)) != NULL)
        uv_timer_start(t, es_stream__on_request_timeout, l->request_timeout_ms + ES_CLOCK_SLACK_MS, 0);
}

int es_stream__maybe_finished(es_stream_t *s)
{
    if (s->active && s->req_done && s->resp_done) {
        stream_end(s); /* each filter's stream-complete and destroy run exactly once, here */
        s->active = 0;
        if (s->request_timer != NULL)
            uv_timer_stop(s->request_timer);
        s->down->finished(s);
        return 1;
    }
    return 0;
}

void es_stream__drop_upstream(es_stream_t *s)
{
    if (s->up != NULL) {
        es_upconn_abandon(s->up);
        s->up = NULL;
        s->owner.resp = NULL;
    }
    if (s->up_blocked) {
        s->up_blocked = 0;
        s->down->read_changed(s);
    }
}

void es_stream_flush_upstream(es_stream_t *s)
{
    if (s->up != NULL)
        es_upconn_flush(s->up);
}

void es_stream__finish_reply(es_stream_t *s)
{
    es_stream__halt_filters(s);
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    /* Answered before the request was read: the rest of it is not waited for. */
    if (!es_stream__maybe_finished(s))
        s->down->abandon_request(s);
}

void es_stream__answer(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len, int close,
                       uint32_t flags)
{
    s->owner.info.flags |= flags;
    es_stream__note_response(s, status, headers);
    s->owner.info.bytes_sent += len;
    if (s->down->reply(s, status, headers, body, len, close) != 0)
        return;
    es_stream__finish_reply(s);
}

void es_stream__local_reply(es_stream_t *s, int status, const char *body, size_t len, int close)
{
    es_stream__answer(s, status, NULL, body, len, close, ES_RF_LR);
}

void es_stream__filter_failed(es_stream_t *s, int status, const char *reason)
{
    s->owner.info.flags |= ES_RF_FE;
    es_stream__halt_filters(s);
    es_stream__drop_upstream(s);
    if (s->resp_started) {
        s->down->reset(s);
        return;
    }
    char body[160];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    es_stream__local_reply(s, status, body, (size_t)n, 0);
}

void es_stream_request_error(es_stream_t *s, int status, const char *why)
{
    es_stats_inc(status == 431 ? ES_STAT_HEADERS_TOO_LARGE : ES_STAT_BAD_REQUESTS);
    if (s->active && s->resp_started) {
        s->owner.info.flags |= ES_RF_DPE;
        s->down->reset(s);
        return;
    }
    if (!s->active)
        es_stream_begin(s); /* the error came before the codec began a message */
    s->owner.info.flags |= ES_RF_DPE | ES_RF_LR;
    es_stream__note_response(s, status, NULL);
    es_stream__halt_filters(s);
    es_stream__drop_upstream(s);
    char body[160];
    int n = status == 431   ? snprintf(body, sizeof(body), "request header section too large\n")
            : status == 501 ? snprintf(body, sizeof(body), "not implemented: %s\n", why)
                            : snprintf(body, sizeof(body), "bad request: %s\n", why);
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    s->owner.info.bytes_sent += (size_t)n;
    if (s->down->reply(s, status, NULL, body, (size_t)n, 1) != 0)
        return;
    s->down->abandon_request(s);
}

void es_stream_timed_out(es_stream_t *s, int whole)
{
    if (s->aborted)
        return;
    /* The client was too slow (its request is not all read), or the upstream (it was): DT or UT. */
    uint32_t flag = whole && s->active && !es_stream_request_unread(s) ? ES_RF_UT : ES_RF_DT;
    if (s->active && s->resp_started) {
        s->owner.info.flags |= flag;
        /* Part of the response is out: the reset is all that can be said. */
        es_debug("client %s:%u: timed out mid-response", s->owner.peer_ip, s->owner.peer_port);
        s->down->reset(s);
        return;
    }
    if (!s->active)
        es_stream_begin(s);
    s->owner.info.flags |= flag;
    es_stream__halt_filters(s);
    es_stream__drop_upstream(s);
    if (whole && s->grpc) {
        /* gRPC: the deadline passed. A trailers-only answer (status 200, grpc-status in the head) is what a
         * gRPC client reads as DEADLINE_EXCEEDED; an HTTP 504 would read as UNAVAILABLE. */
        es_msg_t h;
        es_msg_init(&h);
        es_msg_headers_done(&h);
        int err = es_msg_add(&h, 0, "content-type", 12, "application/grpc", 16) ||
                  es_msg_add(&h, 0, "grpc-status", 11, "4", 1) ||
                  es_msg_add(&h, 0, "grpc-message", 12, "deadline exceeded", 17);
        if (!err)
            es_stream__answer(s, 200, &h, "", 0, 1, ES_RF_UT | ES_RF_LR);
        es_msg_dispose(&h);
        if (!s->aborted) {
            es_stream_flush_upstream(s);
            s->down->flush(s);
        }
        return;
    }
    /* Still reading the request: the client is too slow (408). Read, but no answer: the upstream is (504). */
    int upstream_slow = whole && !es_stream_request_unread(s);
    static const char slow_client[] = "request timeout\n";
    static const char slow_upstream[] = "upstream request timeout\n";
    if (upstream_slow)
        es_stream__local_reply(s, 504, slow_upstream, sizeof(slow_upstream) - 1, 1);
    else
        es_stream__local_reply(s, 408, slow_client, sizeof(slow_client) - 1, 1);
    if (!s->aborted) {
        es_stream_flush_upstream(s);
        s->down->flush(s);
    }
}

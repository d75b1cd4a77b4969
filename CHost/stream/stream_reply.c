/*
 * The proxy's own answers on a stream: direct responses, errors, timeouts and a failed filter. Each ends the
 * exchange: the chain stops, the upstream is let go, and the codec frames the answer.
 */
#include <stdio.h>
#include <string.h>

#include "codec/codec.h"
#include "core/log.h"
#include "core/stats.h"
#include "stream/stream.h"

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

void es_stream__local_reply(es_stream_t *s, int status, const char *body, size_t len, int close)
{
    if (s->down->reply(s, status, NULL, body, len, close) != 0)
        return;
    es_stream__finish_reply(s);
}

void es_stream__filter_failed(es_stream_t *s, int status, const char *reason)
{
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
        s->down->reset(s);
        return;
    }
    if (!s->active)
        es_stream_begin(s); /* the error came before the codec began a message */
    es_stream__halt_filters(s);
    es_stream__drop_upstream(s);
    char body[160];
    int n = status == 431   ? snprintf(body, sizeof(body), "request header section too large\n")
            : status == 501 ? snprintf(body, sizeof(body), "not implemented: %s\n", why)
                            : snprintf(body, sizeof(body), "bad request: %s\n", why);
    s->resp_started = 1;
    s->resp_done = 1;
    s->discard_body = 1;
    if (s->down->reply(s, status, NULL, body, (size_t)n, 1) != 0)
        return;
    s->down->abandon_request(s);
}

void es_stream_timed_out(es_stream_t *s, int whole)
{
    if (s->aborted)
        return;
    if (s->active && s->resp_started) {
        /* Part of the response is out: the reset is all that can be said. */
        es_debug("client %s:%u: timed out mid-response", s->owner.peer_ip, s->owner.peer_port);
        s->down->reset(s);
        return;
    }
    if (!s->active)
        es_stream_begin(s);
    es_stream__halt_filters(s);
    es_stream__drop_upstream(s);
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

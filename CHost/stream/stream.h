/*
 * One request/response exchange: the request runs through the listener's filter chain (if any), is routed and
 * goes upstream; the response runs back through the chain to the client. The proxy's own answers (direct
 * responses, errors, a filter's local reply) are made here too. A stream knows no wire format: the codec that
 * carries its client's side (HTTP/1 or HTTP/2) calls the es_stream_* events below and is called back through
 * `down` (codec/codec.h); the upstream side goes through upstream/upstream.h.
 */
#ifndef ES_STREAM_H
#define ES_STREAM_H

#include <stdint.h>
#include <uv.h>

#include "core/env.h"
#include "core/msg.h"
#include "filters/filter_chain.h"
#include "obs/stream_info.h"
#include "upstream/upstream.h"

typedef struct es_stream_s es_stream_t;
typedef struct es_down_ops_s es_down_ops_t;

/* Request methods the proxy treats specially, numbered as llhttp (and http-parser) number them; other methods
 * are ES_METHOD_OTHER, known by name only. */
enum {
    ES_METHOD_OTHER = -1,
    ES_METHOD_DELETE = 0,
    ES_METHOD_GET = 1,
    ES_METHOD_HEAD = 2,
    ES_METHOD_POST = 3,
    ES_METHOD_PUT = 4,
    ES_METHOD_CONNECT = 5,
    ES_METHOD_OPTIONS = 6,
    ES_METHOD_TRACE = 7,
};

struct es_stream_s {
    es_upuser_t user;            /* how the upstream connection reaches this stream */
    es_filters_owner_t owner;    /* what the filter chain sees of it (and calls back) */
    const es_down_ops_t *down;   /* the client's codec */
    const es_listener_config_t *listener;
    es_msg_t req;
    uv_timer_t *request_timer;   /* request_timeout, while a request is active; made on first use */
    uv_timer_t *filter_timer;    /* the timeout of a RUNNING filter hook; made on first use */
    /* Everything below is reset when a request begins (the route and the info, in owner, too). */
    es_msg_t *resp_log;          /* response headers an access log names (%RESP(X)%), kept until its line is made */
    es_filters_t *filters;       /* NULL when the listener has no filter chain */
    int64_t declared[2];         /* Content-Length sent on (request, response) or -1 */
    uint64_t sent[2];            /* body bytes forwarded */
    es_upconn_t *up;
    int method;                  /* an ES_METHOD_* (core/method.h) */
    unsigned resp_headers_in : 1;/* response headers arrived (from upstream) */
    unsigned req_has_body : 1;   /* set by the codec before es_stream_request_headers */
    unsigned resp_body_eos : 1;  /* the response had no body: headers carried the end */
    unsigned up_reusable : 1;
    unsigned active : 1;         /* a request has begun and is not finished */
    unsigned req_headers_done : 1;
    unsigned req_done : 1;       /* the whole request has been read */
    unsigned resp_started : 1;   /* response bytes were queued to the client */
    unsigned resp_done : 1;
    unsigned head : 1;
    unsigned req_chunked : 1;    /* the request body goes upstream without a known length */
    unsigned discard_body : 1;   /* the rest of the request body is read and dropped */
    unsigned expect_continue : 1;/* set by the codec: the client waits for 100 Continue before its body */
    unsigned continue_pending : 1;/* 100 Continue waits until a RUNNING filter lets the headers go */
    unsigned up_blocked : 1;     /* the upstream's write queue is above its high watermark */
    unsigned filter_blocked : 1; /* the body waiting for a RUNNING filter is above buffer_limits.high */
    unsigned aborted : 1;
    unsigned grpc : 1;           /* a gRPC request (content-type application/grpc): its errors are gRPC statuses */
    unsigned upgrade_req : 1;    /* set by the codec: the request asks for a WebSocket upgrade (HTTP/1.1) */
    unsigned upgrading : 1;      /* it went upstream as one (the route allows it): a 101 opens a tunnel */
    unsigned tunnel : 1;         /* the 101 (or a CONNECT's 200) went out: bytes go both ways raw */
    unsigned begun : 1;          /* a request began and its end is not recorded yet (stream_record.c) */
    uint8_t retries;             /* times the request was sent again after a reused connection died */
};

/* The codec sets up a stream for its client: peer facts go to s->owner (filters read them). */
void es_stream_init(es_stream_t *s, const es_down_ops_t *down, es_env_t *env, const es_listener_config_t *l);
/* Frees what the stream holds (its timers are closed; the memory of `s` may go at once). */
void es_stream_dispose(es_stream_t *s);

/* ---- events from the client's codec ---- */
void es_stream_begin(es_stream_t *s);
/* The client went away or the connection closes: a RUNNING filter is cancelled, the upstream abandoned. */
void es_stream_abort(es_stream_t *s);
/* The request head is in s->req (method, req_has_body and expect_continue set). Returns 0, or -1 when the
 * stream was answered and the codec must not go on with the request. */
int es_stream_request_headers(es_stream_t *s);
void es_stream_request_body(es_stream_t *s, const char *at, size_t len);
void es_stream_request_complete(es_stream_t *s);
/* A request the codec rejected: `status` (400, 431, 501) if nothing was answered yet. */
void es_stream_request_error(es_stream_t *s, int status, const char *why);
/* request_headers_timeout (whole = 0) or request_timeout (whole = 1) ran out: 408 or 504, or the close. */
void es_stream_timed_out(es_stream_t *s, int whole);
/* The client's output fell below its low watermark. */
void es_stream_client_writable(es_stream_t *s);
/* Writes what the stream queued upstream. */
void es_stream_flush_upstream(es_stream_t *s);
/* Once the tunnel runs (the codec was told by ES_RESP_TUNNEL): the client's bytes, as they came. The codec
 * reads no more while es_stream_read_blocked, and the stream ends the tunnel through down->finished (the
 * upstream closed it) or down->reset (its idle timeout). No filter sees these bytes. */
void es_stream_tunnel_data(es_stream_t *s, const char *at, size_t len);
/* The client ended its side of a running tunnel (HTTP/2 END_STREAM): the upstream's side closes once what is
 * queued for it is written, and the stream finishes (down->finished ends the client's side too). */
void es_stream_tunnel_client_end(es_stream_t *s);
/* Whether the request body must not be read now (the upstream or a filter is behind). */
static inline int es_stream_read_blocked(const es_stream_t *s)
{
    return s->up_blocked || s->filter_blocked;
}
/* Whether bytes of this request are still to come from the client. */
static inline int es_stream_request_unread(const es_stream_t *s)
{
    return !s->req_headers_done || (!s->req_done && s->req_has_body);
}

/* stream_record.c: what an exchange was, for the access log, the histograms and filters. */
/* The response head goes to the client: its status, and its headers if an access log reads them. */
void es_stream__note_response(es_stream_t *s, int status, const es_msg_t *headers);
/* The exchange has ended: its info is completed (filters read it in on_stream_complete). */
void es_stream__info_finish(es_stream_t *s);
/* After the filters completed: the access-log line and the request's metrics, then what was kept for them goes. */
void es_stream__record(es_stream_t *s);
/* The route for the request's current head (host, path, headers), or NULL. */
const es_route_config_t *es_stream__match_route(es_stream_t *s);

/* stream_end.c: beginnings, ends and the proxy's own answers. */
uv_timer_t *es_stream__lazy_timer(es_stream_t *s, uv_timer_t **slot);
/* request_timeout (or a gRPC deadline) ran out. */
void es_stream__on_request_timeout(uv_timer_t *t);
/* The proxy answers (headers may be NULL): the status and bytes are noted with `flags` (ES_RF_*). */
void es_stream__answer(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len, int close,
                       uint32_t flags);
/* An answer of the proxy's own (an error): es_stream__answer with ES_RF_LR. */
void es_stream__local_reply(es_stream_t *s, int status, const char *body, size_t len, int close);
void es_stream__finish_reply(es_stream_t *s);
/* Detaches the upstream when the exchange ends early: it is mid-exchange, so it is not reused. */
void es_stream__drop_upstream(es_stream_t *s);
/* Returns 1 when the stream finished (the codec may already have begun the next one). */
int es_stream__maybe_finished(es_stream_t *s);
void es_stream__halt_filters(es_stream_t *s);
int es_stream__forward_headers(es_stream_t *s, int dir, int eos, int64_t known_len);
void es_stream__filter_failed(es_stream_t *s, int status, const char *reason);

#endif

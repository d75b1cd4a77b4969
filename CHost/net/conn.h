/*
 * A downstream (client) connection and the stream it is serving. HTTP/1.1 serves one request
 * at a time: pipelined requests wait in the read buffer with the parser paused, so responses
 * go out in order and a client that pipelines is read no faster than it is answered.
 */
#ifndef ES_CONN_H
#define ES_CONN_H

#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <uv.h>

#include <stdint.h>

#include "codec/h1_guard.h"
#include "core/list.h"
#include "core/msg.h"
#include "upstream/upstream.h"
#include "net/writeq.h"

typedef struct es_worker_s es_worker_t;
typedef struct es_upconn_s es_upconn_t;
typedef struct es_conn_s es_conn_t;

/* Body bytes queued towards one peer before the other peer is no longer read. */
#define ES_WRITE_HIGH (256 * 1024)
#define ES_WRITE_LOW (64 * 1024)
/* libuv's loop clock counts whole milliseconds and may be the coarse clock, up to 1 ms behind: a
 * deadline armed with this much slack never fires before its time. */
#define ES_CLOCK_SLACK_MS 2

typedef struct es_filters_s es_filters_t;

struct es_stream_s {
    es_upuser_t user;            /* how the upstream connection reaches this stream */
    es_conn_t *conn;
    es_msg_t req;
    /* Everything below is reset when a request begins. */
    const void *route;           /* const es_route_config_t * */
    es_filters_t *filters;       /* NULL when the listener has no filter chain */
    es_msg_t *resp;              /* the upstream's response head, while the upstream is attached */
    int64_t declared[2];         /* Content-Length sent on (request, response) or -1 */
    uint64_t sent[2];            /* body bytes forwarded */
    int method;
    int resp_status;
    unsigned resp_headers_in : 1;/* response headers arrived (from upstream) */
    unsigned req_has_body : 1;
    unsigned resp_body_eos : 1;  /* the response had no body: headers carried the end */
    unsigned up_reusable : 1;
    es_upconn_t *up;
    unsigned active : 1;         /* a request has begun and is not finished */
    unsigned req_headers_done : 1;
    unsigned req_done : 1;       /* the whole request has been read */
    unsigned resp_started : 1;   /* response bytes were queued to the client */
    unsigned resp_done : 1;
    unsigned keepalive : 1;
    unsigned http10 : 1;
    unsigned head : 1;
    unsigned req_chunked : 1;    /* the request body goes upstream chunked */
    unsigned resp_chunked : 1;   /* the response body goes to the client chunked */
    unsigned discard_body : 1;   /* the rest of the request body is read and dropped */
    unsigned expect_continue : 1;/* the client waits for 100 Continue before sending the body */
    unsigned continue_pending : 1;/* 100 Continue waits until a RUNNING filter lets the headers go */
    uint8_t retries;             /* times the request was sent again after a reused connection died */
    int64_t head_known_len;      /* known_len the request head went upstream with, for a retry */
};
typedef struct es_stream_s es_stream_t;

/* What the connection's timer is counting down. */
typedef enum {
    ES_CONN_TIMER_NONE = 0,
    ES_CONN_TIMER_HEADERS,       /* request_headers_timeout: a request began, its head is not complete */
    ES_CONN_TIMER_IDLE,          /* idle_timeout: between requests on a keep-alive connection */
    ES_CONN_TIMER_DRAIN,         /* delayed_close_timeout: half-closed, draining unread input */
    ES_CONN_TIMER_HANDSHAKE,     /* tls.handshake_timeout: the TLS handshake is not done */
    ES_CONN_TIMER_DRAIN_IDLE,    /* the worker drains: an idle connection closes after a short grace */
} es_conn_timer_t;

/* A draining worker closes a keep-alive connection only once it has been idle this long: a client may be
 * sending its next request on it right now, and a close then loses that request (a reset, or nothing). */
#define ES_DRAIN_IDLE_GRACE_MS 1000

struct es_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;            /* what timer_kind says */
    /* Made on first use (most connections never need them): an idle connection stays small. */
    uv_timer_t *request_timer;   /* request_timeout, while a request is active */
    uv_timer_t *filter_timer;    /* the timeout of a RUNNING filter hook */
    es_worker_t *worker;
    const void *listener;        /* const es_listener_config_t * */
    es_link_t link;
    http_parser parser;
    es_h1_guard_t guard;         /* RFC 9112's grammar, checked before the lenient parser sees bytes */
    char *rbuf;                  /* a worker block while there are unparsed bytes */
    size_t rlen;
    size_t approved;             /* leading bytes of rbuf the guard passed and the parser has not */
    es_writeq_t out;
    es_tls_t *tls;               /* a TLS listener's session; NULL for plain HTTP */
    es_stream_t stream;
    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port;
    int closes_pending;
    uint8_t timer_kind;          /* es_conn_timer_t */
    unsigned reading : 1;
    unsigned parsing : 1;        /* inside http_parser_execute: do not re-enter */
    unsigned waiting : 1;        /* parser paused at a message end until the stream finishes */
    unsigned up_blocked : 1;     /* the upstream's write queue is above its high watermark */
    unsigned filter_blocked : 1; /* the body waiting for a RUNNING filter is above buffer_limits.high */
    unsigned close_after : 1;    /* close once the response is flushed */
    unsigned draining : 1;       /* half-closed, reading and dropping until EOF or the timer */
    unsigned closing : 1;
    unsigned message_ended : 1;  /* on_message_complete ran in the current parser call */
    unsigned tls_seen : 1;       /* the first byte of a TLS connection was looked at */
    unsigned tls_notified : 1;   /* close_notify queued */
    unsigned tls_eof : 1;        /* the client sent close_notify */
    unsigned force_drain : 1;    /* drain before closing even though no request is unread */
    unsigned finished_in_parse : 1; /* a stream finished inside http_parser_execute */
};

/* Accepts a connection from `server`. */
void es_conn_accept(es_worker_t *w, const void *listener_cfg, uv_stream_t *server);
/* The worker drains: an idle connection closes after ES_DRAIN_IDLE_GRACE_MS; one serving a request closes
 * once its response (sent with Connection: close) is out. */
void es_conn_drain(es_conn_t *c);
/* Closes at once; the stream's upstream connection, if any, is abandoned. */
void es_conn_abort(es_conn_t *c);
/* Closes once everything queued is written (half-closing and draining if input is unread). */
void es_conn_close_after_flush(es_conn_t *c);
/* The connection's request_timeout or filter timer, made on first use; NULL when out of memory. */
uv_timer_t *es_conn__request_timer(es_conn_t *c);
uv_timer_t *es_conn__filter_timer(es_conn_t *c);
/* Reading follows the stream's state: paused, blocked by upstream backpressure, or closing. */
void es_conn__update_reading(es_conn_t *c);
/* The stream finished: continue with a pipelined request, or close. */
void es_conn__stream_finished(es_conn_t *c);
/* The request's head is complete: request_headers_timeout no longer applies. */
void es_conn__headers_done(es_conn_t *c);

/* stream.c: the exchange, driven by the connection (request) and the upstream (response). */
void es_stream__init(es_stream_t *s, es_conn_t *c);
void es_stream__dispose(es_stream_t *s);
void es_stream__begin(es_stream_t *s);
/* The connection is closing: a RUNNING filter is cancelled and nothing more is processed. */
void es_stream__abort(es_stream_t *s);
int es_stream__request_headers(es_stream_t *s);
void es_stream__request_body(es_stream_t *s, const char *at, size_t len);
void es_stream__request_complete(es_stream_t *s);
/* A request the parser rejected: `status` (400, 431) if nothing was answered yet, then the clean close. */
void es_stream__request_error(es_stream_t *s, int status, const char *why);
/* request_headers_timeout (headers) or request_timeout (whole) ran out: 408 or 504, or the close. */
void es_stream__timed_out(es_stream_t *s, int whole);
void es_stream__upstream_failed(es_stream_t *s, int status, const char *reason);
/* Returns 1 when the response has no body to read (HEAD), 0 otherwise, -1 to reject it. */
int es_stream__response_headers(es_stream_t *s);
void es_stream__response_body(es_stream_t *s, const char *at, size_t len);
void es_stream__response_complete(es_stream_t *s, int reusable);
/* Flow control events. */
void es_stream__upstream_writable(es_stream_t *s);
void es_stream__client_writable(es_stream_t *s);
/* Writes what the stream queued, on both sides. */
void es_stream__flush(es_stream_t *s);

/* What leaves the end of the filter chain (or everything, when there is none), per direction
 * (ES_DIR_REQUEST / ES_DIR_RESPONSE). `known_len` is the whole body's length when the body came
 * with the headers, else -1. Return 0, or -1 when the stream was answered or aborted. */
int es_stream__forward_headers(es_stream_t *s, int dir, int eos, int64_t known_len);
int es_stream__forward_body(es_stream_t *s, int dir, const char *at, size_t len, int eos);
int es_stream__forward_end(es_stream_t *s, int dir);
/* A filter hook is RUNNING (on: arm its timeout) or no longer is. */
void es_stream__filter_waiting(es_stream_t *s, int on, uint64_t timeout_ms);
/* The body waiting for a RUNNING filter crossed the high watermark (on) or drained (off). */
void es_stream__filter_blocked(es_stream_t *s, int dir, int on);
/* A posted result was applied: write what it queued and let the client go on. */
void es_stream__filter_resumed(es_stream_t *s);
/* A filter's local reply, or its failure, ends the stream. */
void es_stream__filter_reply(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len);
void es_stream__filter_failed(es_stream_t *s, int status, const char *reason);

#endif

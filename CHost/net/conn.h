/*
 * A downstream (client) connection: the socket, TLS, the read buffer, the write queue, the connection's timer
 * and how it closes. What the bytes mean is its codec's business (codec/codec.h): the connection hands it
 * what it reads and asks it what to do; the codec asks back through es_conn_ops, which the connection fills.
 */
#ifndef ES_CONN_H
#define ES_CONN_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include <stdint.h>

#include "codec/codec.h"
#include "core/env.h"
#include "core/list.h"
#include "net/writeq.h"

typedef struct es_conn_s es_conn_t;

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

/* What a codec asks of its connection (filled by conn.c: the codec layer does not call up into net/). */
typedef struct {
    /* Arms the connection's timer (ES_CONN_TIMER_NONE or ms 0: stops it). */
    void (*arm)(es_conn_t *c, es_conn_timer_t kind, uint64_t ms);
    /* Closes at once. */
    void (*abort)(es_conn_t *c);
    /* Closes once everything queued is written (half-closing and draining if input is unread). */
    void (*close_after_flush)(es_conn_t *c);
    /* Reading follows the codec's want_input again. */
    void (*update_reading)(es_conn_t *c);
    /* Feeds the codec what is buffered (a paused codec can take input again). */
    void (*process)(es_conn_t *c);
    /* The idle grace of a draining worker: ES_DRAIN_IDLE_GRACE_MS, or idle_timeout if shorter. */
    uint64_t (*drain_grace)(es_conn_t *c);
} es_conn_ops_t;

struct es_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;            /* what timer_kind says */
    const es_conn_ops_t *ops;
    es_env_t *env;
    const es_listener_config_t *listener;
    es_link_t link;
    const es_codec_ops_t *codec_ops;
    void *codec;                 /* made when the connection is ready for requests */
    char *rbuf;                  /* a worker block while there are unparsed bytes */
    es_writeq_t out;
    es_tls_t *tls;               /* a TLS listener's session; NULL for plain HTTP */
    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port;
    uint32_t rlen;               /* bytes in rbuf (at most ES_BLOCK_SIZE) */
    uint8_t closes_pending;
    uint8_t timer_kind;          /* es_conn_timer_t */
    /* Flags in 16 bits: with the fields above they fill the block's last 8 bytes (an idle connection,
     * its HTTP/1.1 codec included, is one 1 KiB block). */
    uint16_t reading : 1;
    uint16_t processing : 1;     /* inside process(): do not re-enter */
    uint16_t close_after : 1;    /* close once the response is flushed */
    uint16_t draining : 1;       /* half-closed, reading and dropping until EOF or the timer */
    uint16_t closing : 1;
    uint16_t tls_seen : 1;       /* the first byte of a TLS connection was looked at */
    uint16_t tls_notified : 1;   /* close_notify queued */
    uint16_t tls_eof : 1;        /* the client sent close_notify */
    uint16_t force_drain : 1;    /* drain before closing even though no request is unread */
};

/* Accepts a connection from `server` for listener `l`. */
void es_conn_accept(es_env_t *env, const es_listener_config_t *l, uv_stream_t *server);
/* The worker drains: an idle connection closes after ES_DRAIN_IDLE_GRACE_MS; one serving a request closes
 * once its response (sent with Connection: close) is out. */
void es_conn_drain(es_conn_t *c);
/* Closes at once; the streams are aborted. */
void es_conn_abort(es_conn_t *c);

#endif

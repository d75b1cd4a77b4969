/*
 * The upstream side: one pool per cluster and worker, holding keep-alive connections to the
 * cluster's endpoints (round robin for new connections, most recently used first for reuse).
 */
#ifndef ES_UPSTREAM_H
#define ES_UPSTREAM_H

#include <uv.h>

#include "codec/http1.h"
#include "core/config.h"
#include "core/list.h"
#include "core/msg.h"
#include "net/writeq.h"
#include "upstream/resp_parser.h"

typedef struct es_env_s es_env_t;
typedef struct es_pool_s es_pool_t;
typedef struct es_upconn_s es_upconn_t;
typedef struct es_upuser_s es_upuser_t;
typedef struct es_h2up_s es_h2up_t;

/* Whoever a connection serves (a client's stream, or a filter's call-out), told what happens. */
typedef struct {
    /* The exchange failed (connect, reset, malformed response); the connection is detached. */
    void (*failed)(es_upuser_t *user, int status, const char *reason);
    /* The request queue fell below its low watermark. */
    void (*writable)(es_upuser_t *user);
    /* The response head is in up->resp. Returns 1 when no body follows (HEAD), 0, or -1 to reject. */
    int (*headers)(es_upuser_t *user, es_upconn_t *up);
    void (*body)(es_upuser_t *user, const char *at, size_t len);
    /* The response ended; reusable: the upstream keeps the connection open. */
    void (*complete)(es_upuser_t *user, int reusable);
    /* A read was processed: write what it queued. */
    void (*after_read)(es_upuser_t *user);
    /* The pool is closing the connection under the user (the worker stops). */
    void (*detach)(es_upuser_t *user);
    /* Optional. A reused connection was reset or closed before any response byte (the upstream's idle
     * close raced the request): return 1 after sending the request again (on es_pool_connect), 0 to
     * have `failed` called instead. */
    int (*retry)(es_upuser_t *user);
    /* Tunnels (a client's stream only; NULL for call-outs). A CONNECT's connection is ready (connected, and
     * its TLS handshake done): answer the client, then es_upconn_start_tunnel. */
    void (*tunnel_ready)(es_upuser_t *user);
    /* Bytes from the upstream once the tunnel runs (es_upconn_start_tunnel): no HTTP, no parser. */
    void (*tunnel_data)(es_upuser_t *user, const char *at, size_t len);
    /* The upstream closed (or reset) the tunnel; the connection is detached and closed. */
    void (*tunnel_end)(es_upuser_t *user);
} es_upuser_ops_t;

struct es_upuser_s {
    const es_upuser_ops_t *ops;
};



struct es_pool_s {
    es_env_t *env;
    const es_cluster_config_t *cfg;
    size_t next;     /* round-robin cursor */
    es_link_t idle;  /* reusable connections, most recent first */
    es_link_t all;
    es_link_t h2conns; /* HTTP/2 connections (http2: true), each serving many exchanges */
};

typedef enum {
    ES_UP_CONNECTING = 1,
    ES_UP_ACTIVE = 2,  /* serving a stream */
    ES_UP_IDLE = 3,    /* in the pool, watching for EOF */
    ES_UP_CLOSING = 4,
} es_upconn_state_t;

struct es_upconn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;            /* connect timeout, then the idle timeout while pooled */
    uv_connect_t connect_req;
    es_pool_t *pool;
    const es_endpoint_config_t *ep;
    es_link_t link_all;
    es_link_t link_idle;
    es_upconn_state_t state;
    int closes_pending;
    es_resp_parser_t *rp;        /* llhttp, reading responses (upstream/resp_parser.h) */
    int status;                  /* the response head's status, from the headers callback on */
    int64_t content_length;      /* its declared Content-Length, or -1 (chunked, until the close, none) */
    es_msg_t resp;               /* the response head and trailers being received */
    es_writeq_t out;             /* request bytes to the upstream */
    es_tls_t *tls;               /* a TLS cluster's session; NULL for plain HTTP */
    es_upuser_t *user;           /* what is being served, NULL when idle or abandoned */
    uint64_t released_at;        /* loop iteration when it went idle */
    uint64_t idle_since;         /* loop time (ms) when it went idle */
    unsigned reading : 1;
    unsigned reused : 1;         /* served a response before this stream: it may have gone stale */
    unsigned got_bytes : 1;      /* a response byte arrived for the current stream */
    unsigned headers_done : 1;
    unsigned interim : 1;        /* parsing a 1xx response, which is not forwarded */
    unsigned complete : 1;       /* the response for the current stream is complete */
    unsigned peer_closed : 1;    /* the upstream closed after a complete response not yet released */
    unsigned idle_timer : 1;     /* the timer is the idle timer (it runs on while the connection is in use) */
    /* An exchange on an HTTP/2 connection (upstream/h2_upstream.c): u is its stream, not a connection. */
    es_h2up_t *h2;
    unsigned h2x : 1;            /* an exchange of an HTTP/2 connection (h2 may be NULL once it closed) */
    int32_t h2_id;               /* 0 until submitted, -1 once closed */
    es_link_t h2_link;
    es_buf_t h2_body;            /* request body waiting for the upstream's window */
    size_t h2_held;              /* response bytes not yet given back to the window (the client is behind) */
    unsigned h2_body_end : 1;
    unsigned h2_trailers : 1;
    unsigned h2_paused : 1;
    unsigned h2_behind : 1;
    unsigned upgrade_asked : 1;  /* the request asked for a WebSocket upgrade: a 101 is a valid answer */
    unsigned upgraded : 1;       /* a 101 arrived: what follows its head is not HTTP */
    unsigned raw : 1;            /* the tunnel runs: bytes go to user->ops->tunnel_data */
    unsigned connect_tunnel : 1; /* opened for a CONNECT: tunnel_ready once connected, no request is sent */
    unsigned flush_close : 1;    /* detached: closes once what is queued is written */
    char *early;                 /* tunnel bytes that came with the 101, until es_upconn_start_tunnel */
    size_t early_len;
};

void es_pool_init(es_pool_t *p, es_env_t *env, const es_cluster_config_t *cfg);
/* Closes every connection; used when the worker stops. */
void es_pool_close(es_pool_t *p);
/*
 * Gives `user` a connection: an idle one released before this loop iteration, or a new one. The
 * request may be queued on it at once; it goes out when the connect completes. Returns 0 or a
 * libuv error. Later failures reach the user through ops->failed.
 */
int es_pool_acquire(es_pool_t *p, es_upuser_t *user, es_upconn_t **out);
/* Like es_pool_acquire, but always a new connection (a retry must not meet another stale one). */
int es_pool_connect(es_pool_t *p, es_upuser_t *user, es_upconn_t **out);
/* The stream is done with `u`: back to the pool when reusable, otherwise closed. */
void es_upconn_release(es_upconn_t *u, int reusable);
/* The stream is going away before its exchange finished: the connection cannot be reused. */
void es_upconn_abandon(es_upconn_t *u);
/* The request, framed for the upstream (HTTP/1.1): its head (hop-by-hop headers dropped, forwarding headers
 * set; `length` is the body's length or -1, `chunked` when it is unknown and a body follows), body bytes, and
 * its end (the trailers of `m`, if chunked). Queued on u->out; return 0 or UV_ENOMEM. */
int es_upconn_send_head(es_upconn_t *u, const es_msg_t *m, const char *method, size_t method_len, int64_t length,
                        int chunked, const es_forwarded_t *fwd);
int es_upconn_send_body(es_upconn_t *u, const char *at, size_t len, int chunked);
int es_upconn_send_end(es_upconn_t *u, const es_msg_t *m, int chunked);
/* Whether the upstream is behind on the request (above its high watermark: the client is not read). */
int es_upconn_behind(const es_upconn_t *u);
/* Writes what is queued for the upstream. */
void es_upconn_flush(es_upconn_t *u);
/* Flow control from the client side of the exchange. */
void es_upconn_read_pause(es_upconn_t *u, int pause);

/* upstream/h2_upstream.c, which the functions above call for an exchange on an HTTP/2 connection. */
int es_h2up_acquire(es_pool_t *p, es_upuser_t *user, es_upconn_t **out, int fresh);
int es_h2up_send_head(es_upconn_t *u, const es_msg_t *m, const char *method, size_t method_len, int64_t length,
                      int body, const es_forwarded_t *fwd);
int es_h2up_send_body(es_upconn_t *u, const char *at, size_t len);
int es_h2up_send_end(es_upconn_t *u, const es_msg_t *m);
int es_h2up_behind(const es_upconn_t *u);
void es_h2up_flush(es_upconn_t *u);
void es_h2up_read_pause(es_upconn_t *u, int pause);
void es_h2up_release(es_upconn_t *u);
void es_h2up_pool_close(es_pool_t *p);
/* ---- tunnels (WebSocket upgrades, CONNECT) ---- */
/* A new connection for a CONNECT: nothing is sent on it; user->ops->tunnel_ready says when it is ready (or
 * ops->failed, 503, that it could not be made). Returns 0 or a libuv error, as es_pool_connect. */
int es_pool_connect_tunnel(es_pool_t *p, es_upuser_t *user, es_upconn_t **out);
/* The 101 (or the CONNECT's 200) went to the client: from now on the connection's bytes go both ways raw,
 * upstream bytes to user->ops->tunnel_data (those that came with the 101 first), es_upconn_send_body(.., 0)
 * the other way; the end is user->ops->tunnel_end. */
void es_upconn_start_tunnel(es_upconn_t *u);
/* The client side of a tunnel went away: the connection is detached, writes what is queued for it (within
 * ES_TUNNEL_FLUSH_MS), then closes. */
void es_upconn_close_after_flush(es_upconn_t *u);
#define ES_TUNNEL_FLUSH_MS 5000

#endif

/*
 * The test upstream: a small, real HTTP/1.1 server on 127.0.0.1 that the C integration tests put behind
 * the proxy (in-process, on its own threads) and that `make run` starts as `build/es-upstream --port N`.
 *
 * Blocking sockets, one thread per connection, requests parsed with http-parser. Keep-alive and
 * pipelining work (responses go out in request order). What it answers, by path:
 *
 *   any other path            200 "upstream ok METHOD PATH\n"
 *   /headers                  200, body = the request head as received: "METHOD URL HTTP/x.y\n" then one
 *                             "name: value\n" per header, names and values as the parser saw them
 *   /sink[?hold=1]            reads the body (Content-Length or chunked) streaming, answers
 *                             "len=N fnv=HEX16\n" and, for chunked requests with trailers, one
 *                             "trailer name: value\n" line per trailer. hold=1: reads nothing after the
 *                             request head until es_upstream_release() (a slow upstream)
 *   /bytes?n=N[&chunked=1][&trailer=1][&eof=1][&cut=M]
 *                             N bytes of es_pattern_byte(i), streamed; Content-Length, or chunked (with a
 *                             trailer "x-checksum: HEX16", the FNV-1a of the body, when trailer=1), or with
 *                             eof=1 neither: the body ends when the connection closes. cut=M: only the first
 *                             M bytes are sent, then the connection closes (a response that dies midway)
 *   /text[?chunked=1]         200 "upstream ok METHOD PATH\n" as text/plain; chunked=1: in two chunks
 *   /status?code=C            status C, body "status C\n"; no body for 204 and 304
 *   /auth                     an auth service: "authorization: Bearer good" gets 200 with
 *                             "x-auth-user: alice", anything else 401
 *   /close                    answers with "Connection: close" and closes the connection
 *   /delay?ms=M               waits M ms, then answers like the default
 *   /close-silently           answers like the default (keep-alive, as far as the headers say), then
 *                             closes the connection: an upstream whose idle timeout fired
 *   /drop-next                answers like the default (keep-alive), then resets the connection when the
 *                             next request on it is complete, without answering it: a reused keep-alive
 *                             connection that dies under a request
 *   /malformed?kind=K         a response no parser accepts, on a connection left open: kind=status a bad
 *                             status code, kind=framing Content-Length with Transfer-Encoding
 *   /hangup[?notify=0]        closes the connection (FIN) without answering; over TLS a close_notify goes
 *                             first, unless notify=0 (a bare FIN: a truncated TLS stream)
 *   /reset                    resets the connection (RST) without answering
 *
 * Every response carries "x-upstream-conn: K" (the connection's ordinal, 1-based, in accept order) and
 * "x-upstream-req: R" (the request's ordinal on that connection, 1-based). HEAD gets the same headers
 * (and Content-Length) as GET and no body. A request it cannot parse gets a 400 and the connection's end
 * (counted in bad_requests).
 *
 * Hooks and modes, set before es_upstream_start():
 *
 *   silent                    accepts and reads, never answers
 *   on_request                called for every request whose message is complete, before it is answered
 *   on_bad_request            called for every request it cannot parse, before its 400
 *   idle_close_max_ms = M     racy idle close, the keep-alive race of a real network: after answering a
 *                             request on a keep-alive connection (and nothing of a next one read yet), it
 *                             waits a random 1..M ms for the next request. If none has begun by then it
 *                             decides to close (counted in idle_closes), but first lets close_lag_ms pass
 *                             without reading, as a FIN still travelling on a WAN path (on loopback it
 *                             would arrive at once), then closes. A request that arrived during the lag is
 *                             never read nor answered (and the close with unread data sends RST). The
 *                             first request on a connection is always answered.
 *
 * TLS, set before es_upstream_start():
 *
 *   tls_cert, tls_key         PEM files (es_tls_make_certs() in the harness makes them): the certificate
 *                             chain (leaf first) and its key; tls_key NULL = the key is in tls_cert. NULL
 *                             tls_cert = plain TCP. es_upstream_start() returns -EINVAL (OpenSSL's reasons on
 *                             stderr) when they do not load or do not match. Each accepted connection then
 *                             does a blocking SSL_accept on its thread (TLS 1.2 or 1.3; ALPN: http/1.1 when
 *                             the client offers it, else none; no client certificate asked), and everything
 *                             above works the same over SSL_read / SSL_write. A handshake that fails (a
 *                             client that refuses the certificate, plain HTTP, a reset) closes that
 *                             connection and counts in tls_handshake_failures (why: last_tls_error); it
 *                             still counts in `connections`, and has an ordinal. Every graceful close
 *                             (Connection: close, /close, /hangup, the racy idle close, the end of the
 *                             stream) sends close_notify before the FIN, never waiting to send it; /reset
 *                             and /drop-next stay a bare RST; a failed connection gets no close_notify.
 *                             bytes_out counts plaintext bytes.
 *   last_sni                  the SNI of the last ClientHello received ("" = none sent), recorded even when
 *                             that handshake then fails; last_alpn the protocol ALPN chose on the last
 *                             successful handshake ("" = none). Both under mu: read them with the accessors.
 *
 * es_upstream_stop() closes every socket, joins every thread and frees everything (the tests run under
 * LeakSanitizer).
 */
#ifndef ES_TEST_UPSTREAM_H
#define ES_TEST_UPSTREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_upstream_conn_s es_upstream_conn_t;

typedef struct {
    /* Set before es_upstream_start() (zero the struct first). */
    uint16_t want_port;                /* 0 = ephemeral */
    int silent;                        /* accept and read, never answer */
    int verbose;                       /* one line per request on stderr (the standalone binary) */
    /* Called on the connection threads (several at once: it must be thread-safe) with each request whose
     * message is complete, before it is answered; method and url need not outlive the call. */
    void (*on_request)(void *ctx, const char *method, const char *url, size_t url_len);
    /* Likewise, for each request it cannot parse (then answered 400), with the parser's error name and the
     * target read last on the connection: this request's as far as it got, else the previous request's
     * (empty when there was none). */
    void (*on_bad_request)(void *ctx, const char *url, size_t url_len, const char *error);
    void *on_request_ctx;              /* ctx for both */
    unsigned idle_close_max_ms;        /* racy idle close (see above); 0 = off */
    unsigned close_lag_ms;             /* its lag between the decision and the close; 0 = 2 ms */
    const char *tls_cert;              /* TLS (see above): chain PEM; NULL = plain */
    const char *tls_key;               /* its key PEM; NULL = in tls_cert */

    /* Set by es_upstream_start(). */
    uint16_t port;

    /* Counters: read them with atomic_load (or the accessors below). */
    atomic_ulong connections;          /* connections accepted */
    atomic_ulong requests;             /* requests whose message was complete */
    atomic_ullong bytes_out;           /* bytes sent on all connections */
    atomic_ulong holding;              /* /sink?hold=1 requests waiting for es_upstream_release() */
    atomic_ulong idle_closes;          /* racy idle close: connections it decided to close */
    atomic_ulong bad_requests;         /* requests it could not parse (answered 400) */
    atomic_ulong tls_handshakes;       /* TLS handshakes that succeeded */
    atomic_ulong tls_handshake_failures;  /* TLS handshakes that failed (the connection was closed) */
    atomic_ulong tls_resumed;          /* successful handshakes that resumed a session */
    atomic_int released;

    /* Private. */
    int started;
    int listen_fd;
    atomic_int stopping;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    es_upstream_conn_t *conns;
    struct ssl_ctx_st *tls_ctx;        /* the SSL_CTX when tls_cert is set */
    char last_sni[256];                /* under mu: use es_upstream_last_sni() */
    char last_alpn[32];                /* under mu: use es_upstream_last_alpn() */
    char last_tls_error[256];          /* under mu: use es_upstream_last_tls_error() */
} es_upstream_t;

/* Binds 127.0.0.1:want_port, listens and starts accepting. Returns 0 or a negative errno. */
int es_upstream_start(es_upstream_t *u);
/* Stops accepting, closes every connection, joins every thread, frees everything. Idempotent. */
void es_upstream_stop(es_upstream_t *u);

/* Lets every /sink?hold=1 request (now and later) go on reading its body. */
void es_upstream_release(es_upstream_t *u);

unsigned long es_upstream_connections(es_upstream_t *u);
unsigned long es_upstream_requests(es_upstream_t *u);

/* TLS: copy (NUL-terminated, truncated to len) the SNI of the last ClientHello ("" = none), the ALPN
 * protocol of the last successful handshake ("" = none), and why the last failed handshake failed
 * (OpenSSL's error string, "" = none failed). */
void es_upstream_last_sni(es_upstream_t *u, char *buf, size_t len);
void es_upstream_last_alpn(es_upstream_t *u, char *buf, size_t len);
void es_upstream_last_tls_error(es_upstream_t *u, char *buf, size_t len);

/*
 * A port where a TCP connect hangs: a socket listening with backlog 0 that never accepts, its accept
 * queue filled with a few connects of our own, so the kernel drops further SYNs. Used to make the
 * proxy's connect_timeout fire.
 */
typedef struct {
    uint16_t port;
    int listen_fd;
    int fds[16];
    int nfds;
} es_blackhole_t;

/* Returns 0, or a negative errno (-ETIMEDOUT when the queue never filled). */
int es_blackhole_start(es_blackhole_t *b);
void es_blackhole_stop(es_blackhole_t *b);

/* The byte pattern /bytes serves, and FNV-1a 64, shared with the tests. */
static inline unsigned char es_pattern_byte(uint64_t i) {
    return (unsigned char)((i * 31 + 7) & 0xff);
}

/* Fills buf with the pattern bytes offset .. offset+len-1. */
static inline void es_pattern_fill(unsigned char *buf, uint64_t offset, size_t len) {
    for (size_t i = 0; i < len; i++) buf[i] = es_pattern_byte(offset + i);
}

#define ES_FNV_INIT UINT64_C(0xcbf29ce484222325)

static inline uint64_t es_fnv1a(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

#endif

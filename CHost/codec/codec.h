/*
 * The codec layer's two small vtables.
 *
 * A downstream connection (net/conn.c) hands its bytes to a server codec (es_codec_ops_t): HTTP/1.1 now,
 * HTTP/2 next. The codec turns them into streams (stream/stream.h) and their events, and is called back by each
 * stream through es_down_ops_t to send the response the way its protocol frames it. Calls go down the layers
 * (connection -> codec -> stream); these tables carry events back up, so no file calls one above it.
 */
#ifndef ES_CODEC_H
#define ES_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/msg.h"

typedef struct es_stream_s es_stream_t;
typedef struct es_conn_s es_conn_t;

/* What a connection asks of its server codec. `codec` is what the codec's `new` returned. */
typedef struct {
    const char *name;
    /* Bytes from the client, in the connection's read buffer. Returns how many were consumed: fewer than
     * `len` when the codec cannot take more now (an HTTP/1.1 request waits for its response, with the next one
     * pipelined behind it), and -1 when the connection was closed or must close. */
    ssize_t (*input)(void *codec, const char *data, size_t len);
    /* Whether the socket should be read, with `buffered` bytes not yet consumed. */
    int (*want_input)(void *codec, size_t buffered);
    /* The connection's output fell below its low watermark, or was all written (drained = 1). */
    void (*writable)(void *codec, int drained);
    /* After a read was processed: write what the streams queued upstream. */
    void (*flush)(void *codec);
    /* request_headers_timeout ran out (armed by the codec through es_conn_arm). */
    void (*header_timeout)(void *codec);
    /* The worker drains: close when idle, say so in each response (Connection: close, GOAWAY). */
    void (*drain)(void *codec);
    /* Whether a request is unread (closing now would send RST: half-close and drain first). */
    int (*unread)(void *codec);
    /* Whether no request is in progress. */
    int (*idle)(void *codec);
    /* The connection closes: every stream is aborted. */
    void (*abort)(void *codec);
    /* The connection's handles are closed: free the codec. */
    void (*free)(void *codec);
} es_codec_ops_t;

/* Response flags for es_down_ops_t.headers. */
#define ES_RESP_END 1        /* no body follows */
#define ES_RESP_TUNNEL 2     /* a 101 to an upgrade or a 200 to a CONNECT: after this head, bytes go both ways raw
                              * (the codec's input to es_stream_tunnel_data, down->body to the client unframed) */

/* What a stream asks of the codec that carries its client's side. */
struct es_down_ops_s {
    /* The response head: `status`, the forwarded headers of `m`'s header section (hop-by-hop ones dropped
     * by the codec, which frames the body itself), and the body's length when known (else -1). Returns 0, or
     * -1 when the stream was aborted. */
    int (*headers)(es_stream_t *s, int status, const es_msg_t *m, int64_t content_length, int flags);
    int (*body)(es_stream_t *s, const char *at, size_t len);
    /* The response ends, with the trailer section of `m` (may be empty). Returns 0 or -1. */
    int (*end)(es_stream_t *s, const es_msg_t *m);
    /* A whole response the proxy makes: `headers` (may be NULL) and a body of `len` bytes. `close`: the
     * connection must not be reused. Returns 0 or -1. */
    int (*reply)(es_stream_t *s, int status, const es_msg_t *headers, const char *body, size_t len, int close);
    /* 100 Continue: the client may send its body. */
    void (*send_continue)(es_stream_t *s);
    /* The exchange failed after its response began: the codec tells the client the only way it can (HTTP/1.1
     * closes the connection; HTTP/2 resets the stream). */
    void (*reset)(es_stream_t *s);
    /* Both directions are done: the codec may reuse the stream for the next request or free it. */
    void (*finished)(es_stream_t *s);
    /* The stream's reading conditions changed (es_stream_read_blocked). */
    void (*read_changed)(es_stream_t *s);
    /* Whether the client is behind: its output is above the high watermark. */
    int (*client_behind)(es_stream_t *s);
    /* Writes what is queued to the client. */
    void (*flush)(es_stream_t *s);
    /* The response is all queued but the request is not all read, and will not be: HTTP/1.1 closes the
     * connection once the response is out (after a drain, so the client reads it); HTTP/2 resets the stream. */
    void (*abandon_request)(es_stream_t *s);
};

#endif

/*
 * es_h2_session: the server side of one HTTP/2 connection, framed by libnghttp2. Bytes in, bytes out, events
 * up through a callback struct; it knows nothing of sockets, libuv, streams or filters. The connection glue
 * owns the struct (embed it), feeds it what the socket read, writes what it flushes, and maps stream ids to
 * its own stream objects through the opaque pointer on_stream_open returns.
 *
 * The caller's loop, per connection:
 *   - es_h2_session_init, then es_h2_session_flush (the server's SETTINGS go out first).
 *   - Each read: es_h2_session_feed(s, bytes) -- the first bytes are the client preface, which the caller
 *     has already recognised (prior knowledge, or after TLS ALPN "h2"). A negative return means the
 *     connection is finished: a GOAWAY is queued; flush, write it, then close.
 *   - After feeding, and after any call that submits something (respond, send_body, end_body, reset,
 *     consume, goaway...): es_h2_session_flush. Its write callback gets the frames.
 *   - When es_h2_session_want_read and es_h2_session_want_write are both false after a flush, the
 *     connection is done: close it (after the written bytes leave).
 *   - At the end: es_h2_session_close, which reports on_stream_close for every stream still open.
 *
 * Events: for each request stream, in order:
 *   on_stream_open -> on_header* -> on_headers_done (or on_headers_too_large) -> on_data* ->
 *   [on_trailer* -> on_trailers_done] -> on_request_end -> ... -> on_stream_close
 * A stream may close at any point after on_stream_open (peer RST_STREAM, a malformed request that nghttp2
 * resets with PROTOCOL_ERROR, a reset by the caller, connection close); on_stream_close comes exactly once
 * per opened stream, and the module never mentions that stream (nor its pointer) again. The caller's
 * stream pointer must stay valid until then. A stream closes normally (error_code 0) once the response has
 * ended and the request has ended; if the response ends first, the module sends RST_STREAM NO_ERROR
 * (RFC 9113 8.1: the client may stop sending a body nobody reads).
 *
 * Reentrancy: callbacks fire only inside es_h2_session_feed (every request event, on_stream_close,
 * on_goaway), es_h2_session_flush (on_stream_close once a stream's last frame or RST_STREAM is written,
 * on_output_low, write) and es_h2_session_close (on_stream_close). Inside a callback the caller may call
 * anything below except feed, flush and close (feed and flush return -EBUSY; close must not be
 * called from a callback at all). Everything a callback submits goes out at the next flush.
 *
 * Flow control: the module never reopens a receive window by itself. Each byte on_data delivers counts
 * against the stream's and the connection's window until the caller calls es_h2_session_consume (as the
 * bytes leave the proxy). Bytes of a stream that closes are given back to the connection by the module,
 * so consume for a closed stream is a no-op. Padding and bytes the module drops are given back at once.
 *
 * Header list size: counted while decoding as RFC 7541 does (name + value + 32 per field). Once a request's
 * header section passes max_header_list_size, the module stops delivering its fields (those already
 * delivered stand), reports on_headers_too_large instead of on_headers_done, counts it, and from then on
 * drops the request's body (no on_data, no on_request_end; the bytes are given back). The caller answers 431
 * (es_h2_session_respond with ES_H2_END_STREAM) or resets the stream. Trailers over the limit reset the
 * stream (INTERNAL_ERROR), also counted.
 *
 * Limits and abuse (each counted in es_h2_counters_t):
 *   - max_concurrent_streams is advertised in SETTINGS. nghttp2 refuses a stream over it with RST_STREAM
 *     REFUSED_STREAM while the client has not yet acknowledged the SETTINGS; after that, a client that
 *     exceeds it breaks the protocol and nghttp2 ends the connection (GOAWAY PROTOCOL_ERROR). Well-behaved
 *     clients (nghttp2, curl, browsers) hold the extra request until a stream closes.
 *   - Rapid reset: nghttp2's token bucket (reset_burst, reset_rate per second, on its own clock) queues
 *     GOAWAY INTERNAL_ERROR with the last stream received; feed still returns 0, the streams in flight
 *     finish, and want_read/want_write end the connection. Counted when the GOAWAY is written.
 *   - CONTINUATION flood (max_continuations), ACKs the peer does not read (max_outbound_ack): feed fails,
 *     GOAWAY ENHANCE_YOUR_CALM.
 *   - Empty DATA without END_STREAM, PING, SETTINGS: more than max_* in flood_window_ms (cb->now_ms) and
 *     feed fails, GOAWAY ENHANCE_YOUR_CALM. They are counted from frame headers before nghttp2 reads them.
 *   - A protocol error nghttp2 finds itself (a malformed frame, a bad HPACK block): nghttp2 queues the GOAWAY
 *     and feed returns 0; the connection ends through want_read/want_write after the flush.
 * on_stream_open comes at the first HEADERS frame, so a stream can open and the connection then fail in
 * its CONTINUATION frames; es_h2_session_close reports it closed.
 *
 * Errors are negative errno values (the same numbers as libuv's UV_E* on Unix).
 */
#ifndef ES_H2_SESSION_H
#define ES_H2_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/list.h"

struct nghttp2_session;

/* HTTP/2 error codes (RFC 9113 7), as on_stream_close / on_goaway report them and reset / goaway take. */
enum {
    ES_H2_NO_ERROR = 0x0,
    ES_H2_PROTOCOL_ERROR = 0x1,
    ES_H2_INTERNAL_ERROR = 0x2,
    ES_H2_FLOW_CONTROL_ERROR = 0x3,
    ES_H2_STREAM_CLOSED = 0x5,
    ES_H2_REFUSED_STREAM = 0x7,
    ES_H2_CANCEL = 0x8,
    ES_H2_ENHANCE_YOUR_CALM = 0xb,
};

/* es_h2_session_respond flag: the response has no body (END_STREAM on HEADERS). */
#define ES_H2_END_STREAM 0x1

typedef struct {
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS (100) */
    uint32_t max_header_list_size;   /* bytes, RFC 7541 counting; also advertised (65536) */
    uint32_t initial_window_size;    /* each stream's receive window (65535) */
    uint32_t connection_window_size; /* the connection's receive window (1 MiB) */
    int enable_connect_protocol;     /* RFC 8441 SETTINGS_ENABLE_CONNECT_PROTOCOL: :protocol allowed (0) */
    size_t out_high, out_low;        /* per-stream buffered response bytes: on_output_low watermarks */
    /* Abuse limits. */
    uint64_t reset_burst, reset_rate; /* rapid reset (CVE-2023-44487): nghttp2's RST_STREAM token bucket */
    uint32_t max_continuations;       /* CONTINUATION frames after one HEADERS (CVE-2024-28182) (8) */
    uint32_t max_outbound_ack;        /* SETTINGS/PING ACKs queued unread by the peer (1000) */
    uint32_t flood_window_ms;         /* the window the three counts below are per (1000) */
    uint32_t max_empty_data;          /* DATA frames with no data and no END_STREAM (100) */
    uint32_t max_ping;                /* PING frames (100) */
    uint32_t max_settings;            /* SETTINGS frames (100) */
} es_h2_settings_t;

/* What this connection refused or cut; the caller adds them to its stats at close. */
typedef struct {
    uint64_t streams_opened;
    uint64_t streams_refused;        /* RST_STREAM REFUSED_STREAM sent (over the limit, or on_stream_open said no) */
    uint64_t streams_reset_by_peer;  /* RST_STREAM received */
    uint64_t header_list_too_large;  /* header or trailer sections over max_header_list_size */
    uint64_t rapid_reset;            /* GOAWAY sent by nghttp2's RST_STREAM rate limit */
    uint64_t continuation_flood;     /* more than max_continuations CONTINUATION frames */
    uint64_t empty_data_flood;
    uint64_t ping_flood;
    uint64_t settings_flood;
    uint64_t outbound_flood;         /* the peer did not read its ACKs (max_outbound_ack) */
    uint64_t protocol_errors;        /* connection errors: GOAWAY sent by nghttp2, bad preface */
} es_h2_counters_t;

/* A response or trailer field the caller gives. Names are lower-cased on the way out, connection-specific
 * fields (connection, keep-alive, proxy-connection, transfer-encoding, upgrade, te) dropped. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} es_h2_field_t;

/*
 * The events (a static const vtable). `user` is the session's user pointer, `stream` what on_stream_open
 * returned. An int-returning event that returns non-zero resets its stream (RST_STREAM INTERNAL_ERROR):
 * no further events for it but on_stream_close. Any entry but write and on_stream_open may be NULL.
 */
typedef struct {
    /* A client opened `stream_id`. Return the caller's stream (non-NULL), or NULL to refuse it
     * (RST_STREAM REFUSED_STREAM; the module then never mentions it). */
    void *(*on_stream_open)(void *user, int32_t stream_id);
    /* One request field, pseudo-headers (:method :scheme :authority :path :protocol) first, as nghttp2
     * validated them. The bytes are valid only during the call. */
    int (*on_header)(void *user, void *stream, const char *name, size_t name_len, const char *value,
                     size_t value_len);
    /* The header section is complete; end_stream: no body follows (on_request_end comes next). */
    int (*on_headers_done)(void *user, void *stream, int end_stream);
    /* The header section passed max_header_list_size (see above): answer 431 or reset. */
    void (*on_headers_too_large)(void *user, void *stream);
    int (*on_trailer)(void *user, void *stream, const char *name, size_t name_len, const char *value,
                      size_t value_len);
    int (*on_trailers_done)(void *user, void *stream);
    /* Request body bytes, valid only during the call; they hold flow-control window until consumed. */
    int (*on_data)(void *user, void *stream, const uint8_t *data, size_t len);
    /* END_STREAM: the request is complete (after on_headers_done, the last on_data or on_trailers_done). */
    int (*on_request_end)(void *user, void *stream);
    /* The stream is gone: error_code 0 after a complete exchange, else the RST_STREAM code (the peer's, the
     * caller's, nghttp2's) or ES_H2_CANCEL at es_h2_session_close. Last event for this stream. */
    void (*on_stream_close)(void *user, void *stream, uint32_t error_code);
    /* The stream's buffered response fell to out_low after it reached out_high: read the upstream again. */
    void (*on_output_low)(void *user, void *stream);
    /* The client sent GOAWAY: it opens no stream above last_stream_id. */
    void (*on_goaway)(void *user, uint32_t error_code, int32_t last_stream_id);
    /* The sink: bytes to write to the connection, valid only during the call (copy them). Return 0 for
     * more, 1 to stop this flush after these bytes (the caller's queue is full; flush again later), or a
     * negative error to fail the flush. */
    int (*write)(void *user, const uint8_t *data, size_t len);
    /* A millisecond clock for the flood windows (NULL: CLOCK_MONOTONIC). */
    uint64_t (*now_ms)(void *user);
} es_h2_callbacks_t;

/* Caller-owned; the fields are the module's. */
typedef struct {
    struct nghttp2_session *ng;
    const es_h2_callbacks_t *cb;
    void *user;
    es_h2_settings_t cfg;
    es_h2_counters_t counters;
    es_link_t streams;   /* open streams, es_h2__stream_t */
    es_link_t low;       /* streams owed on_output_low at the end of this flush */
    uint32_t nstreams;
    int error;           /* once feed failed: what it returns again */
    uint32_t goaway_ours; /* GOAWAYs the module queued and has not yet seen sent */
    uint8_t busy;        /* inside feed, flush or close */
    es_buf_t pack;       /* a response head's fields, packed (h2_output.c), reused */
    es_buf_t scratch;    /* the nghttp2_nv array for them, reused */
    struct {
        uint64_t start;
        uint32_t count;
    } flood[3];          /* empty DATA, PING, SETTINGS */
    struct {
        uint8_t hd[9];   /* the frame header being read */
        uint8_t have;    /* bytes of it so far */
        uint8_t magic;   /* preface bytes matched (24: all) */
        uint8_t pad;     /* the next byte is an END_STREAM-less DATA frame's pad length */
        uint8_t off;     /* not a preface: nghttp2 reports it, the scan stops */
        uint32_t left;   /* payload bytes to skip */
    } scan;              /* frame headers, read ahead of nghttp2 (the flood counts) */
} es_h2_session_t;

void es_h2_settings_default(es_h2_settings_t *cfg);

/* A server session. `cfg` NULL: the defaults. Queues the server's SETTINGS (flush to send them). */
int es_h2_session_init(es_h2_session_t *s, const es_h2_settings_t *cfg, const es_h2_callbacks_t *cb, void *user);
/* Reports on_stream_close(ES_H2_CANCEL) for each open stream, then frees everything. Not from a callback. */
void es_h2_session_close(es_h2_session_t *s);

/* Input. 0, or negative: the connection is finished (a GOAWAY with the right code is queued: flush, then
 * close). -EPROTO: a protocol error or a flood (see counters); -ENOMEM; -EBUSY from inside a callback. */
int es_h2_session_feed(es_h2_session_t *s, const uint8_t *data, size_t len);
/* Output: everything queued goes to cb->write (until it returns 1). 0 or a negative error. */
int es_h2_session_flush(es_h2_session_t *s);
/* Both false: the session is finished; close the connection. */
int es_h2_session_want_read(const es_h2_session_t *s);
int es_h2_session_want_write(const es_h2_session_t *s);

/* The caller is done with n bytes that on_data delivered for the stream: its window may reopen. */
int es_h2_session_consume(es_h2_session_t *s, int32_t stream_id, size_t n);

/*
 * Responses. -ENOENT: no such open stream (closed, refused, reset); -EINVAL: bad status, a pseudo-header
 * field, or out of order; -ENOMEM. Names must be valid field names (any case); values valid field values.
 */
/* A 1xx interim response (not 101), before the final one. */
int es_h2_session_interim(es_h2_session_t *s, int32_t stream_id, int status, const es_h2_field_t *fields,
                          size_t n);
/* The final response head; flags ES_H2_END_STREAM: no body. Otherwise a body follows through send_body
 * and end_body (data waits in the module until the client's window lets it go). */
int es_h2_session_respond(es_h2_session_t *s, int32_t stream_id, int status, const es_h2_field_t *fields,
                          size_t n, int flags);
/* Appends body bytes to the stream's output buffer (copied). */
int es_h2_session_send_body(es_h2_session_t *s, int32_t stream_id, const void *data, size_t len);
/* The body ends, with trailers (n > 0: a HEADERS frame with END_STREAM after the data) or without. */
int es_h2_session_end_body(es_h2_session_t *s, int32_t stream_id, const es_h2_field_t *trailers, size_t n);
/* Response bytes buffered for the stream and not yet framed (0 for an unknown stream). */
size_t es_h2_session_buffered(const es_h2_session_t *s, int32_t stream_id);

/* RST_STREAM: the stream closes (on_stream_close at the flush that writes it); no more request events. */
int es_h2_session_reset(es_h2_session_t *s, int32_t stream_id, uint32_t error_code);
/* Graceful shutdown, step one: GOAWAY with the largest stream id (the client stops opening streams). */
int es_h2_session_shutdown_notice(es_h2_session_t *s);
/* GOAWAY with the last stream id processed: streams up to it finish, later ones are ignored. */
int es_h2_session_goaway(es_h2_session_t *s, uint32_t error_code);
/* Streams opened and not yet closed. */
static inline uint32_t es_h2_session_open_streams(const es_h2_session_t *s)
{
    return s->nstreams;
}

#endif

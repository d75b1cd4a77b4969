/*
 * Access-log formats in Envoy's format language, compiled once at startup into a list of pieces (literal text
 * and operators), then rendered per request without printf. A text format renders as is (a '\n' ends the line
 * if the format has none); a JSON format is an object whose values are format strings, rendered as one JSON
 * object per line (an operator alone in a value that is a number, such as %RESPONSE_CODE%, renders as a JSON
 * number; "-" values render as null).
 *
 * Operators: %START_TIME% (2026-12-03T21:49:29.123Z, UTC), %REQ(X)% and %RESP(X)% (a header, or :METHOD,
 * :PATH, :AUTHORITY, :SCHEME for REQ; an optional ?Y alternative header and :N length limit as Envoy's),
 * %RESPONSE_CODE%, %RESPONSE_FLAGS%, %BYTES_RECEIVED%, %BYTES_SENT%, %DURATION% (ms),
 * %RESPONSE_DURATION% (ms to the upstream's first byte), %UPSTREAM_HOST%, %UPSTREAM_CLUSTER%, %ROUTE_NAME%,
 * %DOWNSTREAM_REMOTE_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %PROTOCOL%, %FILTER_STATE(name)%,
 * and %% for a percent sign. A value that is unknown renders as "-".
 */
#ifndef ES_ACCESS_FORMAT_H
#define ES_ACCESS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/msg.h"
#include "obs/stream_info.h"

typedef struct es_access_format_s es_access_format_t;

/* Everything one line may name: borrowed from the stream for the duration of the render. */
typedef struct {
    const es_stream_info_t *info;
    const es_msg_t *req;          /* the request head (headers; its first line is the URL) */
    const es_msg_t *resp;         /* the response headers as sent to the client; NULL when none were */
    const char *method;           /* the request method */
    size_t method_len;
    const char *scheme;           /* "http" or "https" */
    const char *route_name;       /* NULL: the route has no name, or none matched */
    const char *cluster_name;     /* NULL: no cluster */
    const char *upstream_host;    /* "127.0.0.1:8080", NULL when none */
    const char *peer_ip;
    uint16_t peer_port;
    const char *protocol;         /* "HTTP/1.1", "HTTP/1.0", "HTTP/2" */
    const es_msg_t *filter_state; /* values filters marked for the log: header name = state name; NULL: none */
} es_access_record_t;

/* Compiles a text format. NULL with one line in err ("unknown operator %FOO%", "unterminated %REQ(") when it
 * is not one. */
es_access_format_t *es_access_format_text(const char *format, char *err, size_t errlen);
/* Compiles a JSON format: `n` keys, each with a format string. */
es_access_format_t *es_access_format_json(const char *const *keys, const char *const *formats, size_t n, char *err,
                                          size_t errlen);
void es_access_format_free(es_access_format_t *f);

/* Appends one line (with its '\n') to `out`. Returns 0, or -1 when out of memory (out keeps what it had). */
int es_access_format_render(const es_access_format_t *f, const es_access_record_t *r, es_buf_t *out);

/* Whether the format reads response headers (%RESP(X)%): the stream then keeps them until the line is made. */
int es_access_format_reads_response(const es_access_format_t *f);
/* Copies the response headers the format names (%RESP(X)%) from `resp` into *keep, made on first use (free it
 * with es_msg_dispose and free): the response head goes back to its upstream connection before the line is
 * made. Returns 0 or -1 (out of memory). */
int es_access_format_keep_response(const es_access_format_t *f, const es_msg_t *resp, es_msg_t **keep);

#endif

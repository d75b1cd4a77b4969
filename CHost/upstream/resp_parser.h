/*
 * The upstream response parser: llhttp 8.1 behind plain types. Its events go to upstream.c's es_upconn__on_*.
 *
 * Why a file of its own: llhttp.h and http_parser.h define the same enumerators (HPE_*, F_*, HTTP_*), so no
 * file may include both, and until the request side moves to llhttp too, net/conn.h (and so stream.c) still
 * includes http_parser.h next to upstream.h. Once http_parser is gone, upstream.h may hold an llhttp_t itself
 * and this glue can fold into upstream.c.
 */
#ifndef ES_RESP_PARSER_H
#define ES_RESP_PARSER_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_upconn_s es_upconn_t;
typedef struct llhttp__internal_s es_resp_parser_t; /* llhttp_t */

enum {
    ES_RESP_OK = 0,     /* every byte consumed */
    ES_RESP_PAUSED = 1, /* stopped right after a complete response (es_upconn__on_complete asked so) */
    ES_RESP_ERROR = -1, /* malformed, or a callback refused: es_resp_parser_error says why */
};

/* NULL when out of memory. */
es_resp_parser_t *es_resp_parser_new(void);
void es_resp_parser_free(es_resp_parser_t *p);
/* A new exchange on connection `u`: the next bytes are a response. */
void es_resp_parser_reset(es_resp_parser_t *p, es_upconn_t *u);
/* Parses data[0..len). *consumed: the bytes parsed (all of them unless paused or failed). */
int es_resp_parser_execute(es_resp_parser_t *p, const char *data, size_t len, size_t *consumed);
/* The connection ended: a body delimited by the close ends here (ES_RESP_OK), or it was cut (ES_RESP_ERROR). */
int es_resp_parser_finish(es_resp_parser_t *p);
const char *es_resp_parser_error(const es_resp_parser_t *p);

/* The current response head, from es_upconn__on_headers on. */
int es_resp_parser_status(const es_resp_parser_t *p);
/* The declared Content-Length, or -1 (chunked, delimited by the close, or none). */
int64_t es_resp_parser_content_length(const es_resp_parser_t *p);
int es_resp_parser_chunked(const es_resp_parser_t *p);
/* In es_upconn__on_complete: whether the connection may carry another exchange. */
int es_resp_parser_keep_alive(const es_resp_parser_t *p);

/* The events, implemented by upstream.c. Each returns 0 to go on or -1 to stop with an error; on_headers returns
 * 1 when no body follows (a response to HEAD); on_complete returns 1 to pause right after the response. */
int es_upconn__on_begin(es_upconn_t *u);
int es_upconn__on_status(es_upconn_t *u, const char *at, size_t len);
int es_upconn__on_field(es_upconn_t *u, const char *at, size_t len);
int es_upconn__on_value(es_upconn_t *u, const char *at, size_t len);
int es_upconn__on_headers(es_upconn_t *u);
int es_upconn__on_body(es_upconn_t *u, const char *at, size_t len);
int es_upconn__on_complete(es_upconn_t *u);

#endif

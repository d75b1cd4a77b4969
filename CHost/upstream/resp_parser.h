/*
 * The upstream response parser: llhttp 8.1 behind plain types, its events through a vtable (upstream.c's), so
 * llhttp.h stays out of upstream.h and the parser calls nothing above it.
 */
#ifndef ES_RESP_PARSER_H
#define ES_RESP_PARSER_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_resp_parser_s es_resp_parser_t;

/* The events. Each returns 0 to go on or -1 to stop with an error; headers returns 1 when no body follows (a
 * response to HEAD); complete returns 1 to pause right after the response. */
typedef struct {
    int (*begin)(void *user);
    int (*status)(void *user, const char *at, size_t len);
    int (*field)(void *user, const char *at, size_t len);
    int (*value)(void *user, const char *at, size_t len);
    int (*headers)(void *user);
    int (*body)(void *user, const char *at, size_t len);
    int (*complete)(void *user);
} es_resp_parser_events_t;

enum {
    ES_RESP_OK = 0,     /* every byte consumed */
    ES_RESP_PAUSED = 1, /* stopped right after a complete response (the complete event asked so) */
    ES_RESP_ERROR = -1, /* malformed, or a callback refused: es_resp_parser_error says why */
};

/* NULL when out of memory. */
es_resp_parser_t *es_resp_parser_new(const es_resp_parser_events_t *ev);
void es_resp_parser_free(es_resp_parser_t *p);
/* A new exchange for `user` (the events' argument): the next bytes are a response. */
void es_resp_parser_reset(es_resp_parser_t *p, void *user);
/* Parses data[0..len). *consumed: the bytes parsed (all of them unless paused or failed). */
int es_resp_parser_execute(es_resp_parser_t *p, const char *data, size_t len, size_t *consumed);
/* The connection ended: a body delimited by the close ends here (ES_RESP_OK), or it was cut (ES_RESP_ERROR). */
int es_resp_parser_finish(es_resp_parser_t *p);
const char *es_resp_parser_error(const es_resp_parser_t *p);

/* The current response head, from the headers event on. */
int es_resp_parser_status(const es_resp_parser_t *p);
/* The declared Content-Length, or -1 (chunked, delimited by the close, or none). */
int64_t es_resp_parser_content_length(const es_resp_parser_t *p);
int es_resp_parser_chunked(const es_resp_parser_t *p);
/* In the complete event: whether the connection may carry another exchange. */
int es_resp_parser_keep_alive(const es_resp_parser_t *p);

#endif

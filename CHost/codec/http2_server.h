/*
 * The HTTP/2 server codec: many streams on one connection, each an es_stream_t with its own filter chain,
 * framed by es_h2_session (libnghttp2). Flow control is the watermark: a stream's receive window reopens
 * (es_h2_session_consume) only as its request body leaves the proxy, so a slow upstream or a held filter
 * bounds memory per stream exactly as on HTTP/1.1.
 */
#ifndef ES_HTTP2_SERVER_H
#define ES_HTTP2_SERVER_H

#include <stddef.h>

#include "codec/codec.h"

typedef struct es_conn_s es_conn_t;

extern const es_codec_ops_t es_http2_server_ops;

/* The client connection preface (RFC 9113 3.4), which a prior-knowledge client sends first. */
#define ES_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define ES_H2_PREFACE_LEN 24

/* The codec of connection `c`, whose first bytes are (or will be) the client preface; NULL when out of memory. */
void *es_http2_server_new(es_conn_t *c);

#endif

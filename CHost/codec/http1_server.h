/*
 * The HTTP/1.1 server codec: request bytes to one stream at a time, its response framed back. Pipelined
 * requests wait in the connection's read buffer with the parser paused, so responses go out in order and a
 * client that pipelines is read no faster than it is answered.
 */
#ifndef ES_HTTP1_SERVER_H
#define ES_HTTP1_SERVER_H

#include "codec/codec.h"

typedef struct es_conn_s es_conn_t;

extern const es_codec_ops_t es_http1_server_ops;

/* The codec of connection `c`, which is ready for requests; NULL when out of memory. */
void *es_http1_server_new(es_conn_t *c);

#endif

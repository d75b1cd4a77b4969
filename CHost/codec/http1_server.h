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

/* The memory one HTTP/1.1 codec takes: a connection allocates it with itself (an idle keep-alive connection costs
 * one block). */
extern const size_t es_http1_server_size;
/* The codec of connection `c`, which is ready for requests, in `mem` (es_http1_server_size bytes, zeroed, owned by
 * the connection: the codec's free does not free it). */
void *es_http1_server_init(void *mem, es_conn_t *c);

#endif

/*
 * The filter chain of one stream: request events run through the filters in order, response
 * events in reverse order, as in Envoy. A filter that stops holds the headers; the body is
 * buffered at it (STOP_AND_BUFFER, _WATERMARK) or handed to it chunk by chunk (STOP_NO_BUFFER)
 * until it continues. What leaves the end of the chain is forwarded by stream.c.
 */
#ifndef ES_FILTER_CHAIN_H
#define ES_FILTER_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "envoy_swift_abi.h"
#include "filter_lib.h"
#include "msg.h"

typedef struct es_stream_s es_stream_t;

#define ES_DIR_REQUEST 0
#define ES_DIR_RESPONSE 1
/* Most body bytes a filter may hold buffered before the stream fails (413 / 500). */
#define ES_FILTER_BUFFER_LIMIT (8u * 1024 * 1024)

typedef struct {
    int holder;               /* position holding the headers, -1 once they left the chain */
    int sbuf_at;              /* position buffering a streamed body, -1 when none */
    envoy_swift_status_t mode;/* the holder's status */
    es_buf_t held;            /* body held at the holder */
    es_buf_t sbuf;            /* body buffered at sbuf_at */
    es_buf_t scratch;         /* a copy of a chunk a filter changed */
    es_buf_t moving;          /* a released buffer on its way down the chain */
    /* The body the current hook sees: a buffer it may change in place, or a view copied on write. */
    es_buf_t *cur_buf;
    const char *cur_ptr;
    size_t cur_len;
    bool cur_valid;
    bool headers_pending;     /* headers passed the chain with the whole body: forward with it */
    bool ended;               /* the final body event went through */
    bool headers_sent;        /* forwarded: the header map can no longer change */
    bool trailers_sent;
} es_fdir_t;

typedef struct es_filters_s {
    const es_filter_chain_t *chain;
    void **inst;               /* per filter; NULL once destroyed */
    envoy_swift_stream_t handle;
    uint32_t slot;
    es_stream_t *stream;
    es_fdir_t dir[2];
    int in_hook;               /* host callbacks are valid only inside a hook */
    /* A local reply a filter asked for during its hook. */
    int reply_status;
    es_msg_t reply_headers;
    es_buf_t reply_body;
    bool has_reply;
} es_filters_t;

/* Outcome of running events through the chain. */
typedef enum {
    ES_CHAIN_OK = 0,     /* everything went on (or waits at a holder) */
    ES_CHAIN_HALT = 1,   /* the stream was answered or aborted: stop processing it */
} es_chain_result_t;

/* Creates the instances for a stream. Returns NULL when out of memory or a filter refused. */
es_filters_t *es_filters_new(const es_filter_chain_t *chain, es_stream_t *s);
/* Runs on_stream_complete and destroy for every instance, exactly once, and frees the state. */
void es_filters_free(es_filters_t *f);

es_chain_result_t es_filters_headers(es_filters_t *f, int dir, bool end_of_stream);
es_chain_result_t es_filters_body(es_filters_t *f, int dir, const char *at, size_t len, bool end_of_stream);
/* Trailers (if any) and the end of the message, after the final body event. */
es_chain_result_t es_filters_end(es_filters_t *f, int dir, bool has_trailers);

/* filter_host.c: stream handles. */
int es_handles_register(es_filters_t *f);
void es_handles_unregister(es_filters_t *f);
/* Per-thread handle table of the current worker; called once in each worker thread. */
void es_handles_thread_init(void);
void es_handles_thread_dispose(void);

#endif

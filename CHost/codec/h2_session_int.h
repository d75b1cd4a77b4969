/* What h2_session.c and h2_output.c share; nothing outside CHost/codec/h2_* includes it. */
#ifndef ES_H2_SESSION_INT_H
#define ES_H2_SESSION_INT_H

#include <errno.h>
#include <nghttp2/nghttp2.h>

#include "codec/h2_session.h"

/* One open request stream: nghttp2's stream user data, from on_begin_headers to on_stream_close. */
typedef struct {
    es_link_t link;     /* in s->streams */
    es_link_t low_link; /* in s->low while it owes on_output_low */
    void *user;         /* what on_stream_open returned */
    int32_t id;
    uint64_t hdr_bytes;  /* of the header (or trailer) section being decoded, RFC 7541 counting */
    size_t unconsumed;   /* delivered by on_data, not yet consumed: given back at close */
    es_buf_t out;        /* response body bytes not yet framed, from out_off */
    size_t out_off;
    es_buf_t trailers;   /* packed fields (see h2_output.c), sent after the body */
    uint32_t ntrailers;
    unsigned no_input : 1;   /* request events are dropped (too large, reset, response already complete) */
    unsigned dead : 1;       /* reset: no output either; only on_stream_close is left */
    unsigned too_large : 1;  /* the header section passed max_header_list_size */
    unsigned req_ended : 1;  /* END_STREAM received */
    unsigned responded : 1;  /* final response head submitted */
    unsigned body_ended : 1; /* no more body bytes will be appended */
    unsigned deferred : 1;   /* the data provider returned NGHTTP2_ERR_DEFERRED: resume on new bytes */
    unsigned above_high : 1; /* buffered reached out_high; on_output_low owed when it falls to out_low */
} es_h2__stream_t;

/* The open, not reset stream `id`, or NULL. */
es_h2__stream_t *es_h2__stream(const es_h2_session_t *s, int32_t id);
/* Resets the stream with `code` and stops its events (on_stream_close still comes). */
void es_h2__kill(es_h2_session_t *s, es_h2__stream_t *st, uint32_t code);
/* Queues a GOAWAY that ends the session once written (nghttp2_session_terminate_session). */
void es_h2__terminate(es_h2_session_t *s, uint32_t code);
/* nghttp2's data provider read callback for response bodies. */
ssize_t es_h2__read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user);
/* Counts the frames of data[0..len) that floods are made of; -EPROTO (counted) when one is over its limit. */
int es_h2__scan(es_h2_session_t *s, const uint8_t *data, size_t len);

static inline int es_h2__err(int ngerr)
{
    if (ngerr == 0)
        return 0;
    return ngerr == NGHTTP2_ERR_NOMEM ? -ENOMEM : ngerr == NGHTTP2_ERR_INVALID_ARGUMENT ? -EINVAL : -EPROTO;
}

#endif

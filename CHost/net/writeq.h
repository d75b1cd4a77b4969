/*
 * A write queue for one libuv stream: bytes are appended to `pending` and written with at most one
 * uv_write in flight (double buffering), so small pieces coalesce into one syscall and no
 * per-write allocation is made. The queue reports crossing its watermarks, which is how the other
 * side of a proxied exchange gets paused (above `high`) and resumed (below `low`).
 */
#ifndef ES_WRITEQ_H
#define ES_WRITEQ_H

#include <uv.h>

#include "core/buf.h"
#include "net/tls.h"

typedef struct es_writeq_s es_writeq_t;

typedef enum {
    ES_WRITEQ_LOW = 1,     /* outstanding bytes fell below `low` after having been above `high` */
    ES_WRITEQ_DRAINED = 2, /* everything queued has been written */
} es_writeq_event_t;

/* `status` is an es_writeq_event_t, or a negative libuv error when a write failed. */
typedef void (*es_writeq_cb)(es_writeq_t *q, int status);

struct es_writeq_s {
    uv_stream_t *stream; /* NULL while corked: bytes accumulate until es_writeq_attach */
    es_buf_t pending;    /* plaintext appended */
    es_buf_t wire;       /* with TLS: ciphertext (or raw bytes) waiting for the socket */
    es_buf_t inflight;
    es_tls_t *tls;       /* NULL: pending goes to the socket as it is */
    uv_write_t *req;     /* while a write is in flight (a small buffer: idle queues hold none) */
    uint32_t high;
    uint32_t low;
    unsigned writing : 1;
    unsigned above_high : 1;
    unsigned failed : 1;
    es_writeq_cb cb;
    void *data;
};

void es_writeq_init(es_writeq_t *q, size_t high, size_t low, es_writeq_cb cb, void *data);
/* Frees the buffers. The stream must be closed (its close callback run) or the queue idle. */
void es_writeq_dispose(es_writeq_t *q);
/* Uncorks the queue onto a connected stream. */
void es_writeq_attach(es_writeq_t *q, uv_stream_t *stream);
/* From now on pending bytes are encrypted by `tls` on their way out (its handshake output too). */
void es_writeq_set_tls(es_writeq_t *q, es_tls_t *tls);
/* Bytes that go to the socket as they are, ahead of anything not yet encrypted (a plaintext
 * answer to plain HTTP on a TLS port). */
int es_writeq_append_raw(es_writeq_t *q, const void *p, size_t n);
/* Appends bytes; they go out at the next es_writeq_flush. Returns 0 or UV_ENOMEM. */
int es_writeq_append(es_writeq_t *q, const void *p, size_t n);
int es_writeq_appendf(es_writeq_t *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The hot path's formatting, without printf: "name: value\r\n", a decimal, "name: N\r\n". */
int es_writeq_append_field(es_writeq_t *q, const char *name, size_t nlen, const char *value, size_t vlen);
int es_writeq_append_u64(es_writeq_t *q, uint64_t v);
int es_writeq_append_num_field(es_writeq_t *q, const char *name, size_t nlen, uint64_t v);
/* With TLS: encrypts everything queued so far, now, even while a write is in flight (a close_notify must
 * follow the last response byte, not overtake it). Returns 0, or -1 when the queue failed (the callback was
 * told). */
int es_writeq_encode(es_writeq_t *q);
/* Starts writing what is pending (a uv_try_write first, so small responses cost one syscall). */
void es_writeq_flush(es_writeq_t *q);
/* Drops anything queued and not yet handed to the kernel. */
void es_writeq_clear(es_writeq_t *q);
/* An idle queue gives its buffers back (a keep-alive connection between requests). */
void es_writeq_release(es_writeq_t *q);

static inline size_t es_writeq_size(const es_writeq_t *q)
{
    return q->pending.len + q->wire.len + q->inflight.len;
}

static inline int es_writeq_idle(const es_writeq_t *q)
{
    return !q->writing && q->pending.len == 0 && q->wire.len == 0;
}

#endif

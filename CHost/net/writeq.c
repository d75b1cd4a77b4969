#include "net/writeq.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void on_write(uv_write_t *req, int status);

void es_writeq_init(es_writeq_t *q, size_t high, size_t low, es_writeq_cb cb, void *data)
{
    q->stream = NULL;
    q->tls = NULL;
    q->req = NULL;
    es_buf_init(&q->pending);
    es_buf_init(&q->wire);
    es_buf_init(&q->inflight);
    q->high = high;
    q->low = low;
    q->writing = 0;
    q->above_high = 0;
    q->failed = 0;
    q->cb = cb;
    q->data = data;
}

void es_writeq_dispose(es_writeq_t *q)
{
    es_buf_dispose(&q->pending);
    es_buf_dispose(&q->wire);
    es_buf_dispose(&q->inflight);
    q->stream = NULL;
}

void es_writeq_attach(es_writeq_t *q, uv_stream_t *stream)
{
    q->stream = stream;
}

void es_writeq_set_tls(es_writeq_t *q, es_tls_t *tls)
{
    q->tls = tls;
}

int es_writeq_append_raw(es_writeq_t *q, const void *p, size_t n)
{
    return es_buf_append(&q->wire, p, n) != 0 ? UV_ENOMEM : 0;
}

/* With TLS: encrypts what is pending (once the handshake allows) and collects the ciphertext. */
static int encode(es_writeq_t *q)
{
    if (q->pending.len > 0) {
        ssize_t n = es_tls_write(q->tls, q->pending.base, q->pending.len);
        if (n == ES_TLS_ERROR) {
            q->failed = 1;
            q->cb(q, UV_EPROTO);
            return -1;
        }
        if (n > 0)
            es_buf_consume(&q->pending, (size_t)n);
    }
    if (es_tls_take_output(q->tls, &q->wire) != 0) {
        q->failed = 1;
        q->cb(q, UV_ENOMEM);
        return -1;
    }
    return 0;
}

int es_writeq_encode(es_writeq_t *q)
{
    if (q->tls == NULL || q->failed)
        return q->failed ? -1 : 0;
    return encode(q);
}

static void check_high(es_writeq_t *q)
{
    if (!q->above_high && es_writeq_size(q) > q->high)
        q->above_high = 1;
}

int es_writeq_append(es_writeq_t *q, const void *p, size_t n)
{
    if (es_buf_append(&q->pending, p, n) != 0)
        return UV_ENOMEM;
    check_high(q);
    return 0;
}

int es_writeq_appendf(es_writeq_t *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return UV_EINVAL;
    char *dst = es_buf_reserve(&q->pending, (size_t)n + 1);
    if (dst == NULL)
        return UV_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    q->pending.len += (size_t)n;
    check_high(q);
    return 0;
}

int es_writeq_append_field(es_writeq_t *q, const char *name, size_t nlen, const char *value, size_t vlen)
{
    char *d = es_buf_reserve(&q->pending, nlen + vlen + 4);
    if (d == NULL)
        return UV_ENOMEM;
    memcpy(d, name, nlen);
    d[nlen] = ':';
    d[nlen + 1] = ' ';
    memcpy(d + nlen + 2, value, vlen);
    d[nlen + 2 + vlen] = '\r';
    d[nlen + 3 + vlen] = '\n';
    q->pending.len += nlen + vlen + 4;
    check_high(q);
    return 0;
}

int es_writeq_append_u64(es_writeq_t *q, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return es_writeq_append(q, tmp + sizeof tmp - n, n);
}

int es_writeq_append_num_field(es_writeq_t *q, const char *name, size_t nlen, uint64_t v)
{
    int err = es_writeq_append(q, name, nlen);
    if (!err)
        err = es_writeq_append(q, ": ", 2);
    if (!err)
        err = es_writeq_append_u64(q, v);
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err;
}

void es_writeq_clear(es_writeq_t *q)
{
    q->pending.len = 0;
}

void es_writeq_release(es_writeq_t *q)
{
    if (!es_writeq_idle(q))
        return;
    es_buf_dispose(&q->pending);
    es_buf_dispose(&q->wire);
    es_buf_dispose(&q->inflight);
}

void es_writeq_flush(es_writeq_t *q)
{
    if (q->stream == NULL || q->writing || q->failed)
        return;
    if (q->tls != NULL && encode(q) != 0)
        return;
    es_buf_t *src = q->tls != NULL ? &q->wire : &q->pending;
    if (src->len == 0)
        return;
    int n = uv_try_write(q->stream, &(uv_buf_t){.base = src->base, .len = src->len}, 1);
    if (n > 0)
        es_buf_consume(src, (size_t)n);
    else if (n != UV_EAGAIN && n != UV_ENOSYS)
        n = 0; /* a real error: let uv_write report it through the callback */
    if (src->len == 0) {
        if (q->above_high) {
            q->above_high = 0;
            q->cb(q, ES_WRITEQ_LOW);
        }
        /* The callback may have queued more; report drained only if it did not. */
        if (es_writeq_idle(q))
            q->cb(q, ES_WRITEQ_DRAINED);
        return;
    }
    es_buf_t t = q->inflight;
    q->inflight = *src;
    *src = t;
    src->len = 0;
    _Static_assert(sizeof(uv_write_t) <= ES_BUF_SMALL, "a write request fits a small buffer");
    if ((q->req = es_small_get()) == NULL) {
        q->failed = 1;
        q->cb(q, UV_ENOMEM);
        return;
    }
    q->writing = 1;
    q->req->data = q;
    uv_buf_t b = {.base = q->inflight.base, .len = q->inflight.len};
    int err = uv_write(q->req, q->stream, &b, 1, on_write);
    if (err) {
        es_small_put(q->req);
        q->req = NULL;
        q->writing = 0;
        q->failed = 1;
        q->cb(q, err);
    }
}

static void on_write(uv_write_t *req, int status)
{
    es_writeq_t *q = req->data;
    es_small_put(req);
    q->req = NULL;
    q->writing = 0;
    q->inflight.len = 0;
    if (status < 0) {
        q->failed = 1;
        q->cb(q, status);
        return;
    }
    if (q->above_high && es_writeq_size(q) < q->low) {
        q->above_high = 0;
        q->cb(q, ES_WRITEQ_LOW);
        if (q->writing || q->failed)
            return;
    }
    if (q->pending.len > 0 || q->wire.len > 0)
        es_writeq_flush(q);
    else
        q->cb(q, ES_WRITEQ_DRAINED);
}

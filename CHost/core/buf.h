/* A growable byte buffer {base, len, cap}. The owner calls es_buf_dispose. */
#ifndef ES_BUF_H
#define ES_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
    char *base;
    size_t len;
    size_t cap;
} es_buf_t;

static inline void es_buf_init(es_buf_t *b)
{
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
}

/* es_buf_dispose's work for a buffer that has memory. */
void es_buf_release(es_buf_t *b);

/* Frees the memory (a small buffer goes back to this thread's cache). Inline: a stream disposes of a
 * dozen buffers that were never used. */
static inline void es_buf_dispose(es_buf_t *b)
{
    if (b->base != NULL)
        es_buf_release(b);
    else
        es_buf_init(b);
}

/*
 * Small buffers (ES_BUF_SMALL bytes) are what most buffers start and stay at: a request head, a
 * response head, a header table. Each thread keeps a bounded cache of them, so a keep-alive
 * connection can give its buffers back between requests without a malloc per request.
 */
#define ES_BUF_SMALL 256
void *es_small_get(void);
void es_small_put(void *p);
/* Frees this thread's cache (at thread exit, so nothing is left for the leak checker). */
void es_small_drain(void);
/* es_buf_reserve's slow path: takes a small buffer or grows by doubling. */
char *es_buf_grow(es_buf_t *b, size_t n);

/* Makes room for `n` more bytes; returns a pointer to them, or NULL when out of memory. Inline, with
 * es_buf_append: a request's head is parsed and written in some 40 small appends, and the calls were
 * most of their cost. */
static inline char *es_buf_reserve(es_buf_t *b, size_t n)
{
    if (__builtin_expect(b->cap - b->len >= n, 1))
        return b->base + b->len;
    return es_buf_grow(b, n);
}

static inline int es_buf_append(es_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    char *dst = es_buf_reserve(b, n);
    if (dst == NULL)
        return -1;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}
int es_buf_appendf(es_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first `n` bytes. */
void es_buf_consume(es_buf_t *b, size_t n);

#endif

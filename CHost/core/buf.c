#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_CACHE_MAX 4096 /* per thread: at most 1 MiB held */

static __thread void *small_cache;
static __thread unsigned small_count;

void *es_small_get(void)
{
    void *p = small_cache;
    if (p == NULL)
        return malloc(ES_BUF_SMALL);
    memcpy(&small_cache, p, sizeof(void *));
    small_count--;
    return p;
}

void es_small_put(void *p)
{
    if (p == NULL)
        return;
    if (small_count >= SMALL_CACHE_MAX) {
        free(p);
        return;
    }
    memcpy(p, &small_cache, sizeof(void *));
    small_cache = p;
    small_count++;
}

void es_small_drain(void)
{
    while (small_cache != NULL)
        free(es_small_get());
}

void es_buf_release(es_buf_t *b)
{
    if (b->cap == ES_BUF_SMALL)
        es_small_put(b->base);
    else
        free(b->base);
    es_buf_init(b);
}

char *es_buf_grow(es_buf_t *b, size_t n)
{
    if (b->cap == 0 && n <= ES_BUF_SMALL) {
        if ((b->base = es_small_get()) == NULL)
            return NULL;
        b->cap = ES_BUF_SMALL;
        return b->base;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->base, cap);
    if (p == NULL)
        return NULL;
    b->base = p;
    b->cap = cap;
    return b->base + b->len;
}

int es_buf_appendf(es_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    char *dst = es_buf_reserve(b, (size_t)n + 1);
    if (dst == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void es_buf_consume(es_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_buf_dispose(es_buf_t *b)
{
    free(b->base);
    es_buf_init(b);
}

char *es_buf_reserve(es_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->base + b->len;
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

int es_buf_append(es_buf_t *b, const void *p, size_t n)
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

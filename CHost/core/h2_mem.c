#include "core/h2_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define ES_H2_MEM_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ES_H2_MEM_CACHE 0
#endif
#endif
#ifndef ES_H2_MEM_CACHE
#define ES_H2_MEM_CACHE 1
#endif

/* Size classes 32, 64, ..., 4096 bytes; a block carries a 16-byte header saying its class (keeps alignment). */
#define NCLASSES 8
#define MAX_CACHED 256       /* blocks kept per class and thread */
#define HEADER 16
#define BIG 0xff

typedef struct block_s {
    struct block_s *next;    /* while cached */
} block_t;

static __thread block_t *cache[NCLASSES];
static __thread unsigned cached[NCLASSES];

static inline unsigned class_of(size_t n)
{
    unsigned c = 0;
    for (size_t sz = 32; sz < n && c < NCLASSES; sz <<= 1)
        c++;
    return c;
}

static inline size_t class_size(unsigned c)
{
    return (size_t)32 << c;
}

static void *h2_malloc(size_t n, void *user)
{
    (void)user;
    if (!ES_H2_MEM_CACHE)
        return malloc(n);
    unsigned c = class_of(n);
    uint8_t *p;
    if (c < NCLASSES && cache[c] != NULL) {
        block_t *b = cache[c];
        cache[c] = b->next;
        cached[c]--;
        p = (uint8_t *)b - HEADER;
    } else {
        size_t sz = c < NCLASSES ? class_size(c) : n;
        p = malloc(HEADER + sz);
        if (p == NULL)
            return NULL;
    }
    p[0] = c < NCLASSES ? (uint8_t)c : BIG;
    if (c >= NCLASSES)
        memcpy(p + 8, &n, sizeof(n) <= 8 ? sizeof(n) : 8);
    return p + HEADER;
}

static void h2_free(void *ptr, void *user)
{
    (void)user;
    if (!ES_H2_MEM_CACHE || ptr == NULL) {
        free(ptr);
        return;
    }
    uint8_t *p = (uint8_t *)ptr - HEADER;
    unsigned c = p[0];
    if (c < NCLASSES && cached[c] < MAX_CACHED) {
        block_t *b = ptr;
        b->next = cache[c];
        cache[c] = b;
        cached[c]++;
        return;
    }
    free(p);
}

static void *h2_calloc(size_t n, size_t size, void *user)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = h2_malloc(n * size, user);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

static void *h2_realloc(void *ptr, size_t n, void *user)
{
    if (!ES_H2_MEM_CACHE)
        return realloc(ptr, n);
    if (ptr == NULL)
        return h2_malloc(n, user);
    if (n == 0) {
        h2_free(ptr, user);
        return NULL;
    }
    uint8_t *p = (uint8_t *)ptr - HEADER;
    size_t have;
    if (p[0] < NCLASSES) {
        have = class_size(p[0]);
    } else {
        have = 0;
        memcpy(&have, p + 8, sizeof(have) <= 8 ? sizeof(have) : 8);
    }
    if (n <= have)
        return ptr;
    void *q = h2_malloc(n, user);
    if (q == NULL)
        return NULL;
    memcpy(q, ptr, have);
    h2_free(ptr, user);
    return q;
}

static nghttp2_mem mem = {
    .mem_user_data = NULL,
    .malloc = h2_malloc,
    .free = h2_free,
    .calloc = h2_calloc,
    .realloc = h2_realloc,
};

nghttp2_mem *es_h2_mem(void)
{
    return &mem;
}

void es_h2_mem_drain(void)
{
    for (unsigned c = 0; c < NCLASSES; c++) {
        while (cache[c] != NULL) {
            block_t *b = cache[c];
            cache[c] = b->next;
            free((uint8_t *)b - HEADER);
        }
        cached[c] = 0;
    }
}

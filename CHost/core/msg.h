/*
 * One HTTP message head as the parser delivered it: the URL (requests) or reason phrase
 * (responses), then headers and trailers, all stored in one buffer and addressed by offsets,
 * so fragments split across reads join without per-header allocation.
 */
#ifndef ES_MSG_H
#define ES_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "core/buf.h"

typedef struct {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
} es_header_t;

typedef struct {
    es_buf_t data;
    es_header_t *headers;
    uint32_t nheaders;
    uint32_t cap;
    uint32_t ntrailers_from; /* headers at or past this index are trailers */
    uint32_t first_off, first_len; /* URL or reason phrase */
    uint8_t last;                  /* 0 none, 1 field, 2 value: where the next fragment goes */
} es_msg_t;

void es_msg_init(es_msg_t *m);
void es_msg_dispose(es_msg_t *m);
/* Forgets the content but keeps the memory, for the next message on the connection. */
void es_msg_reset(es_msg_t *m);
int es_msg_on_first(es_msg_t *m, const char *at, size_t len);
int es_msg_on_field(es_msg_t *m, const char *at, size_t len);
int es_msg_on_value(es_msg_t *m, const char *at, size_t len);
/* Marks the end of the header section: fields after this are trailers. */
void es_msg_headers_done(es_msg_t *m);

static inline const char *es_msg_name(const es_msg_t *m, uint32_t i, size_t *len)
{
    *len = m->headers[i].name_len;
    return m->data.base + m->headers[i].name_off;
}

static inline const char *es_msg_value(const es_msg_t *m, uint32_t i, size_t *len)
{
    *len = m->headers[i].value_len;
    return m->data.base + m->headers[i].value_off;
}

static inline const char *es_msg_first(const es_msg_t *m, size_t *len)
{
    *len = m->first_len;
    return m->data.base + m->first_off;
}

/* Index of the first header named `name` (case-insensitive) at or after `from`, or -1. */
int es_msg_find(const es_msg_t *m, const char *name, size_t namelen, uint32_t from);

/* Whether two header names (or tokens) are equal ignoring ASCII case. Inline, because the proxy makes a dozen
 * comparisons per request and nearly all end at the length or the first byte: `| 0x20` maps bytes that are
 * equal ignoring case to the same value, so bytes that differ after it differ. */
static inline int es_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    if (alen == 0)
        return 1;
    if (((unsigned char)a[0] | 0x20) != ((unsigned char)b[0] | 0x20))
        return 0;
    return strncasecmp(a, b, alen) == 0;
}

/* The value of the first Content-Length header as a number, or -1 when there is none or it is not one. */
int64_t es_msg_content_length(const es_msg_t *m);

/* Whether a comma-separated header value contains `token` (case-insensitive). */
int es_value_has_token(const char *v, size_t vlen, const char *token, size_t tlen);

/* Mutation, for filters. `trailers` picks the section. Indices shift after a removal. */
void es_msg_remove_at(es_msg_t *m, uint32_t i);
int es_msg_add(es_msg_t *m, int trailers, const char *name, size_t nlen, const char *value, size_t vlen);
/* The index range [*from, *to) of the header or trailer section. */
void es_msg_section(const es_msg_t *m, int trailers, uint32_t *from, uint32_t *to);
/* Exchanges the contents of two messages (no copy). */
void es_msg_swap(es_msg_t *a, es_msg_t *b);
#endif

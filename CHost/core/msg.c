#include "core/msg.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void es_msg_init(es_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    es_buf_init(&m->data);
    m->ntrailers_from = UINT32_MAX;
}

void es_msg_dispose(es_msg_t *m)
{
    es_buf_dispose(&m->data);
    if (m->cap == ES_BUF_SMALL / sizeof(es_header_t))
        es_small_put(m->headers);
    else
        free(m->headers);
    es_msg_init(m);
}

void es_msg_reset(es_msg_t *m)
{
    m->data.len = 0;
    m->nheaders = 0;
    m->ntrailers_from = UINT32_MAX;
    m->first_off = m->first_len = 0;
    m->last = 0;
}

int es_msg_on_first(es_msg_t *m, const char *at, size_t len)
{
    if (m->first_len == 0)
        m->first_off = (uint32_t)m->data.len;
    if (es_buf_append(&m->data, at, len) != 0)
        return -1;
    m->first_len += (uint32_t)len;
    return 0;
}

int es_msg_on_field(es_msg_t *m, const char *at, size_t len)
{
    if (m->last != 1) {
        if (m->nheaders == m->cap) {
            uint32_t cap = m->cap ? m->cap * 2 : ES_BUF_SMALL / sizeof(es_header_t);
            es_header_t *h = m->cap ? realloc(m->headers, cap * sizeof(*h)) : es_small_get();
            if (h == NULL)
                return -1;
            m->headers = h;
            m->cap = cap;
        }
        es_header_t *h = &m->headers[m->nheaders++];
        h->name_off = (uint32_t)m->data.len;
        h->name_len = 0;
        h->value_off = (uint32_t)m->data.len;
        h->value_len = 0;
        m->last = 1;
    }
    if (es_buf_append(&m->data, at, len) != 0)
        return -1;
    m->headers[m->nheaders - 1].name_len += (uint32_t)len;
    return 0;
}

int es_msg_on_value(es_msg_t *m, const char *at, size_t len)
{
    if (m->nheaders == 0)
        return -1;
    es_header_t *h = &m->headers[m->nheaders - 1];
    if (m->last != 2) {
        h->value_off = (uint32_t)m->data.len;
        h->value_len = 0;
        m->last = 2;
    }
    if (es_buf_append(&m->data, at, len) != 0)
        return -1;
    h->value_len += (uint32_t)len;
    return 0;
}

void es_msg_headers_done(es_msg_t *m)
{
    m->ntrailers_from = m->nheaders;
    m->last = 0;
}


int es_msg_find(const es_msg_t *m, const char *name, size_t namelen, uint32_t from)
{
    uint32_t end = m->nheaders < m->ntrailers_from ? m->nheaders : m->ntrailers_from;
    for (uint32_t i = from; i < end; i++) {
        if (es_name_eq(m->data.base + m->headers[i].name_off, m->headers[i].name_len, name, namelen))
            return (int)i;
    }
    return -1;
}

int es_value_has_token(const char *v, size_t vlen, const char *token, size_t tlen)
{
    size_t i = 0;
    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < vlen && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

void es_msg_section(const es_msg_t *m, int trailers, uint32_t *from, uint32_t *to)
{
    uint32_t split = m->ntrailers_from < m->nheaders ? m->ntrailers_from : m->nheaders;
    *from = trailers ? split : 0;
    *to = trailers ? m->nheaders : split;
}

void es_msg_remove_at(es_msg_t *m, uint32_t i)
{
    if (i >= m->nheaders)
        return;
    memmove(&m->headers[i], &m->headers[i + 1], (m->nheaders - i - 1) * sizeof(*m->headers));
    m->nheaders--;
    if (m->ntrailers_from != UINT32_MAX && i < m->ntrailers_from)
        m->ntrailers_from--;
}

int es_msg_add(es_msg_t *m, int trailers, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (m->nheaders == m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : ES_BUF_SMALL / sizeof(es_header_t);
        es_header_t *h = m->cap ? realloc(m->headers, cap * sizeof(*h)) : es_small_get();
        if (h == NULL)
            return -1;
        m->headers = h;
        m->cap = cap;
    }
    char *dst = es_buf_reserve(&m->data, nlen + vlen);
    if (dst == NULL)
        return -1;
    memcpy(dst, name, nlen);
    memcpy(dst + nlen, value, vlen);
    es_header_t h = {.name_off = (uint32_t)m->data.len,
                     .name_len = (uint32_t)nlen,
                     .value_off = (uint32_t)(m->data.len + nlen),
                     .value_len = (uint32_t)vlen};
    m->data.len += nlen + vlen;
    uint32_t at = m->nheaders;
    if (!trailers && m->ntrailers_from <= m->nheaders) {
        /* Headers go before the trailers that follow them. */
        at = m->ntrailers_from;
        memmove(&m->headers[at + 1], &m->headers[at], (m->nheaders - at) * sizeof(*m->headers));
        m->ntrailers_from++;
    } else if (trailers && m->ntrailers_from == UINT32_MAX) {
        m->ntrailers_from = m->nheaders;
    }
    m->headers[at] = h;
    m->nheaders++;
    m->last = 0;
    return 0;
}

void es_msg_swap(es_msg_t *a, es_msg_t *b)
{
    es_msg_t t = *a;
    *a = *b;
    *b = t;
}

int64_t es_msg_content_length(const es_msg_t *m)
{
    int i = es_msg_find(m, "content-length", 14, 0);
    if (i < 0)
        return -1;
    size_t vlen;
    const char *v = es_msg_value(m, (uint32_t)i, &vlen);
    /* The value may carry whitespace around it (RFC 9110 5.5), which the parsers accept too. */
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vlen--;
    }
    int64_t n = 0;
    for (size_t k = 0; k < vlen; k++) {
        if (v[k] < '0' || v[k] > '9' || n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (v[k] - '0');
    }
    return vlen > 0 ? n : -1;
}

#include "core/router.h"

#include <string.h>
#include <strings.h>

/* The host part of a Host header: "[::1]:80" -> "[::1]", "a.com:8080" -> "a.com". */
static size_t host_len(const char *h, size_t len)
{
    if (len > 0 && h[0] == '[') {
        const char *end = memchr(h, ']', len);
        return end ? (size_t)(end - h) + 1 : len;
    }
    const char *colon = memchr(h, ':', len);
    return colon ? (size_t)(colon - h) : len;
}

static int host_matches(const char *pattern, const char *h, size_t len)
{
    size_t plen = strlen(pattern);
    if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
        /* "*.example.com" matches any subdomain, not the bare domain. */
        size_t slen = plen - 1;
        return len > slen && strncasecmp(h + len - slen, pattern + 1, slen) == 0;
    }
    return plen == len && strncasecmp(h, pattern, len) == 0;
}

static int headers_match(const es_route_config_t *r, const es_msg_t *req)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        const es_header_match_t *m = &r->headers[i];
        size_t nlen = strlen(m->name), vlen = strlen(m->value), len;
        int found = 0;
        for (int h = es_msg_find(req, m->name, nlen, 0); h >= 0 && !found; h = es_msg_find(req, m->name, nlen, (uint32_t)h + 1)) {
            const char *v = es_msg_value(req, (uint32_t)h, &len);
            found = len == vlen && memcmp(v, m->value, vlen) == 0;
        }
        if (!found)
            return 0;
    }
    return 1;
}

static size_t conditions(const es_route_config_t *r)
{
    return (r->host != NULL) + r->nheaders;
}

const es_route_config_t *es_route_match(const es_listener_config_t *l, const es_msg_t *req, const char *path,
                                        size_t pathlen)
{
    const char *host = NULL;
    size_t hostlen = 0;
    int h = es_msg_find(req, "host", 4, 0);
    if (h >= 0)
        host = es_msg_value(req, (uint32_t)h, &hostlen);
    size_t hlen = host ? host_len(host, hostlen) : 0;
    const es_route_config_t *best = NULL;
    for (size_t i = 0; i < l->nroutes; i++) {
        const es_route_config_t *r = &l->routes[i];
        if (r->prefix_len > pathlen || memcmp(r->prefix, path, r->prefix_len) != 0)
            continue;
        if (r->host != NULL && (host == NULL || !host_matches(r->host, host, hlen)))
            continue;
        if (r->nheaders > 0 && !headers_match(r, req))
            continue;
        if (best == NULL || r->prefix_len > best->prefix_len ||
            (r->prefix_len == best->prefix_len && conditions(r) > conditions(best)))
            best = r;
    }
    return best;
}

#include "router.h"

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

const es_route_config_t *es_route_match(const es_listener_config_t *l, const char *host, size_t hostlen,
                                        const char *path, size_t pathlen)
{
    size_t hlen = host ? host_len(host, hostlen) : 0;
    const es_route_config_t *best = NULL;
    for (size_t i = 0; i < l->nroutes; i++) {
        const es_route_config_t *r = &l->routes[i];
        if (r->prefix_len > pathlen || memcmp(r->prefix, path, r->prefix_len) != 0)
            continue;
        if (r->host != NULL && (host == NULL || !host_matches(r->host, host, hlen)))
            continue;
        if (best == NULL || r->prefix_len > best->prefix_len ||
            (r->prefix_len == best->prefix_len && r->host != NULL && best->host == NULL))
            best = r;
    }
    return best;
}

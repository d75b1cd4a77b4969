/*
 * Route matching: the longest prefix wins; among equal prefixes, the route with more conditions
 * (host, headers) wins; then the first in the file.
 */
#ifndef ES_ROUTER_H
#define ES_ROUTER_H

#include <stddef.h>

#include "core/config.h"
#include "core/msg.h"

/* `req` holds the request headers (Host and any `match.headers`); `path` excludes the query. */
const es_route_config_t *es_route_match(const es_listener_config_t *l, const es_msg_t *req, const char *path,
                                        size_t pathlen);

#endif

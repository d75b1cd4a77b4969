/* Route matching: the longest prefix wins; a route with a matching `host` beats one without. */
#ifndef ES_ROUTER_H
#define ES_ROUTER_H

#include <stddef.h>

#include "config.h"

/* `host` is the Host header as sent (a port is ignored); NULL when absent. */
const es_route_config_t *es_route_match(const es_listener_config_t *l, const char *host, size_t hostlen,
                                        const char *path, size_t pathlen);

#endif

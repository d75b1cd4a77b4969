/* Listening sockets: one per listener and worker, bound with SO_REUSEPORT before any worker starts. */
#ifndef ES_LISTENER_H
#define ES_LISTENER_H

#include <stddef.h>

#include "core/config.h"

/*
 * Binds `n` sockets for `l` into fds[]. A port already in use by anyone is an error, even though
 * SO_REUSEPORT would let a second process join the group silently. With port 0 the first socket
 * picks the port and the others share it; the bound port is written to *port.
 * Returns 0, or a negative errno with a message in err.
 */
int es_listener_bind(const es_listener_config_t *l, int *fds, size_t n, unsigned *port, char *err, size_t errlen);
/* Binds `n` more sockets into the SO_REUSEPORT group of `l` already bound at `port` (a reload that raised
 * `workers`). Returns 0, or a negative errno with a message in err. */
int es_listener_bind_more(const es_listener_config_t *l, unsigned port, int *fds, size_t n, char *err, size_t errlen);

#endif

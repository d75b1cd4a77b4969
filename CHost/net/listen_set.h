/*
 * The supervisor's listening sockets: per listener (known by name, address and configured port, so that a
 * reload keeps an ephemeral port), one SO_REUSEPORT socket per worker index. They outlive generations: a
 * socket's accept queue must not close while the proxy runs.
 */
#ifndef ES_LISTEN_SET_H
#define ES_LISTEN_SET_H

#include <stddef.h>

#include "core/config.h"

typedef struct es_lsock_s {
    struct es_lsock_s *next;
    char *name, *address;
    unsigned cfg_port;              /* as configured (0: ephemeral) */
    unsigned port;                  /* as bound */
    int *fds;                       /* one per worker index */
    unsigned nfds;
} es_lsock_t;

/* The sockets of listener `index` of cfg, from *list or newly bound (and linked into *list), with at least
 * cfg->workers of them. Returns NULL with a one-line "FILE:LINE: listeners[i].port: ..." in err. */
es_lsock_t *es_lsock_acquire(es_lsock_t **list, const es_config_t *cfg, size_t index, char *err, size_t errlen);
/* Closes the sockets past the first `n`; with n == 0 unlinks and frees `l` too. */
void es_lsock_keep(es_lsock_t **list, es_lsock_t *l, unsigned n);
/* Closes and frees every entry. */
void es_lsock_free_all(es_lsock_t **list);

#endif

#include "net/listen_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/listener.h"

static void lsock_free(es_lsock_t *l)
{
    while (l->nfds > 0)
        close(l->fds[--l->nfds]);
    free(l->name);
    free(l->address);
    free(l->fds);
    free(l);
}

es_lsock_t *es_lsock_acquire(es_lsock_t **list, const es_config_t *cfg, size_t index, char *err, size_t errlen)
{
    const es_listener_config_t *lc = &cfg->listeners[index];
    unsigned n = cfg->workers;
    char why[300];
    es_lsock_t *l = *list;
    while (l != NULL && !(strcmp(l->name, lc->name) == 0 && strcmp(l->address, lc->address) == 0 &&
                          l->cfg_port == lc->port))
        l = l->next;
    if (l == NULL) {
        l = calloc(1, sizeof(*l));
        if (l == NULL || (l->fds = calloc(n, sizeof(int))) == NULL || (l->name = strdup(lc->name)) == NULL ||
            (l->address = strdup(lc->address)) == NULL) {
            if (l != NULL)
                lsock_free(l);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        if (es_listener_bind(lc, l->fds, n, &l->port, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: listeners[%zu].port: %s", cfg->path, lc->port_line, index, why);
            lsock_free(l);
            return NULL;
        }
        l->nfds = n;
        l->cfg_port = lc->port;
        l->next = *list;
        *list = l;
    } else if (l->nfds < n) {
        int *fds = realloc(l->fds, n * sizeof(int));
        if (fds == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        l->fds = fds;
        if (es_listener_bind_more(lc, l->port, fds + l->nfds, n - l->nfds, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: listeners[%zu].port: %s", cfg->path, lc->port_line, index, why);
            return NULL;
        }
        l->nfds = n;
    }
    return l;
}

void es_lsock_keep(es_lsock_t **list, es_lsock_t *l, unsigned n)
{
    while (l->nfds > n)
        close(l->fds[--l->nfds]);
    if (n > 0)
        return;
    for (es_lsock_t **pl = list; *pl != NULL; pl = &(*pl)->next)
        if (*pl == l) {
            *pl = l->next;
            break;
        }
    lsock_free(l);
}

void es_lsock_free_all(es_lsock_t **list)
{
    while (*list != NULL) {
        es_lsock_t *l = *list;
        *list = l->next;
        lsock_free(l);
    }
}

#include "net/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_socket(const struct sockaddr_storage *addr, socklen_t len, int reuseport)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (bind(fd, (const struct sockaddr *)addr, len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void set_port(struct sockaddr_storage *a, unsigned port)
{
    if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)a)->sin_port = htons((uint16_t)port);
}

int es_listener_bind(const es_listener_config_t *l, int *fds, size_t n, unsigned *port, char *err, size_t errlen)
{
    struct sockaddr_storage addr = l->addr;
    size_t i = 0;
    int fd;
    if (l->port != 0) {
        /* A probe without SO_REUSEPORT conflicts with any socket already bound there. */
        fd = open_socket(&addr, l->addrlen, 0);
        if (fd < 0)
            goto fail;
        close(fd);
    }
    for (i = 0; i < n; i++) {
        fd = open_socket(&addr, l->addrlen, 1);
        if (fd < 0)
            goto fail;
        fds[i] = fd;
        if (i == 0) {
            struct sockaddr_storage bound;
            socklen_t blen = sizeof(bound);
            getsockname(fd, (struct sockaddr *)&bound, &blen);
            *port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                                 : ntohs(((struct sockaddr_in *)&bound)->sin_port);
            set_port(&addr, *port);
        }
    }
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on %s:%u: %s", l->address, (unsigned)l->port, strerror(-fd));
    while (i > 0)
        close(fds[--i]);
    return fd;
}

int es_listener_bind_more(const es_listener_config_t *l, unsigned port, int *fds, size_t n, char *err, size_t errlen)
{
    struct sockaddr_storage addr = l->addr;
    set_port(&addr, port);
    for (size_t i = 0; i < n; i++) {
        int fd = open_socket(&addr, l->addrlen, 1);
        if (fd < 0) {
            snprintf(err, errlen, "cannot listen on %s:%u: %s", l->address, port, strerror(-fd));
            while (i > 0)
                close(fds[--i]);
            return fd;
        }
        fds[i] = fd;
    }
    return 0;
}

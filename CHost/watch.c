#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/log.h"

void es_watch_init(es_watch_t *w)
{
    w->fd = -1;
    w->n = 0;
}

void es_watch_close(es_watch_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    es_watch_init(w);
}

int es_watch_reset(es_watch_t *w)
{
    /* The descriptor is kept: an event already queued on it (a file changed while a reload was finishing)
     * is still read, and matched against the new names. Folders watched before stay watched; only the
     * names decide what counts. */
    w->n = 0;
    if (w->fd >= 0)
        return 0;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int e = -errno;
        es_warn("--watch: %s", strerror(errno));
        return e;
    }
    return 0;
}

int es_watch_add(es_watch_t *w, const char *path)
{
    char real[PATH_MAX], dir[PATH_MAX];
    if (realpath(path, real) == NULL)
        snprintf(real, sizeof(real), "%s", path);
    const char *slash = strrchr(real, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
        slash = real - 1;
    } else {
        snprintf(dir, sizeof(dir), "%.*s", slash > real ? (int)(slash - real) : 1, real);
    }
    if (w->n < ES_WATCH_MAX)
        snprintf(w->names[w->n++], NAME_MAX + 1, "%s", slash + 1);
    if (w->fd >= 0 && inotify_add_watch(w->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        int e = -errno;
        es_warn("--watch: cannot watch %s: %s", dir, strerror(errno));
        return e;
    }
    return 0;
}

int es_watch_read(es_watch_t *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int changed = 0;
    ssize_t n;
    while (w->fd >= 0 && (n = read(w->fd, buf, sizeof(buf))) > 0) {
        for (char *at = buf; at < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)at;
            for (size_t i = 0; ev->len > 0 && i < w->n; i++)
                changed |= strcmp(ev->name, w->names[i]) == 0;
            at += sizeof(*ev) + ev->len;
        }
    }
    return changed;
}

#include "relay.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static void put_line(const es_relay_t *r, const char *s, size_t len)
{
    char out[sizeof(r->line) + 256];
    int n = es_log_prefix(out, sizeof(out), ES_LOG_INFO, r->tag);
    if (len > sizeof(out) - (size_t)n - 1)
        len = sizeof(out) - (size_t)n - 1;
    memcpy(out + n, s, len);
    out[(size_t)n + len] = '\n';
    ssize_t w = write(STDERR_FILENO, out, (size_t)n + len + 1); /* one write: lines never interleave */
    (void)w;
}

void es_relay_read(es_relay_t *r)
{
    while (r->fd >= 0) {
        ssize_t n = read(r->fd, r->line + r->len, sizeof(r->line) - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            if (r->len > 0)
                put_line(r, r->line, r->len);
            r->len = 0;
            close(r->fd);
            r->fd = -1;
            return;
        }
        r->len += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < r->len; i++)
            if (r->line[i] == '\n') {
                put_line(r, r->line + start, i - start);
                start = i + 1;
            }
        if (start == 0 && r->len == sizeof(r->line)) {
            put_line(r, r->line, r->len);
            start = r->len;
        }
        memmove(r->line, r->line + start, r->len - start);
        r->len -= start;
    }
}

/*
 * Access-log sinks: a sink per distinct file (two listeners naming one file share it), each with two buffers.
 * Lines are rendered into `cur`; a write hands `cur` over (it becomes `out`) to uv_fs_write on libuv's thread
 * pool, and lines go on into the other buffer. A write starts when `cur` passes FLUSH_AT, or on the 100 ms
 * timer; one write at a time per sink, so the file keeps the lines' order. While a write is slow, `cur` grows up
 * to CAP, and past it lines are dropped and counted (access_log.dropped): the loop never waits for a disk.
 */
#include "obs/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/stats.h"

#define FLUSH_AT (64 * 1024)       /* a buffer this full is written at once */
#define CAP (16u << 20)            /* most a sink holds while its write is in flight */
#define FLUSH_EVERY_MS 100
#define KEEP_CAP (256 * 1024)      /* a written buffer larger than this is freed (after a burst) */

typedef struct sink_s sink_t;

struct sink_s {
    es_access_logs_t *logs;
    char *path;                    /* NULL: the standard output */
    int fd;
    size_t chunk;                  /* most bytes per write(): PIPE_BUF for a pipe, so workers' lines never mix */
    es_buf_t cur;                  /* lines being appended */
    es_buf_t out;                  /* lines being written, from out_off */
    size_t out_off;
    size_t req_len;                /* bytes of the write in flight */
    uv_fs_t req;
    bool writing;                  /* req is in flight */
    bool reopen;                   /* reopen once the write in flight is done */
    size_t reopen_mark;            /* ... and the first reopen_mark bytes of cur, lines made before the signal */
    bool done;                     /* closed: everything written, fd closed */
    int last_err;                  /* the last write error reported, so a full disk warns once */
};

typedef struct {
    const es_access_format_t *format;
    sink_t *sink;
} entry_t;

typedef struct {
    entry_t *entries;
    size_t n;
} listener_logs_t;

struct es_access_logs_s {
    uv_loop_t *loop;
    int stdout_fd;
    sink_t **sinks;
    size_t nsinks;
    listener_logs_t *listeners;
    size_t nlisteners;
    uv_timer_t timer;
    bool timer_open;
    bool closing;
};

/* ---- writing -------------------------------------------------------------------------------- */

static size_t count_lines(const char *s, size_t len)
{
    size_t n = 0;
    for (const char *p = s, *end = s + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        n++;
    return n;
}

/* How much of `len` bytes at s one write takes: all, or for a pipe at most PIPE_BUF bytes ending with a line
 * (a longer line goes whole). */
static size_t chunk_of(const sink_t *k, const char *s, size_t len)
{
    if (len <= k->chunk)
        return len;
    const char *nl = memrchr(s, '\n', k->chunk);
    if (nl != NULL)
        return (size_t)(nl - s) + 1;
    nl = memchr(s + k->chunk, '\n', len - k->chunk);
    return nl != NULL ? (size_t)(nl - s) + 1 : len;
}

static void write_failed(sink_t *k, int err, const char *s, size_t len)
{
    es_stats_add(ES_STAT_ACCESS_LOG_DROPPED, count_lines(s, len));
    if (err != k->last_err)
        es_warn("access log %s: cannot write: %s (lines are dropped until it can)", k->path ? k->path : "-",
                uv_strerror(err));
    k->last_err = err;
}

/* Writes what k holds with blocking write()s: at exit, and after a reopen when nothing is in flight. */
static void write_sync(sink_t *k, es_buf_t *b, size_t off)
{
    while (off < b->len) {
        size_t len = chunk_of(k, b->base + off, b->len - off);
        ssize_t w = write(k->fd, b->base + off, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = k->fd, .events = POLLOUT};
            if (poll(&pfd, 1, 1000) > 0)
                continue;
        }
        if (w <= 0) {
            write_failed(k, w < 0 ? -errno : UV_EIO, b->base + off, b->len - off);
            break;
        }
        off += (size_t)w;
    }
    b->len = 0;
}

static void on_write(uv_fs_t *req);
static void finish(sink_t *k);
static void reopen_now(sink_t *k);

/* Sends the next piece of `out` to the thread pool. */
static void submit(sink_t *k)
{
    size_t len = chunk_of(k, k->out.base + k->out_off, k->out.len - k->out_off);
    uv_buf_t buf = uv_buf_init(k->out.base + k->out_off, (unsigned)len);
    k->req.data = k;
    k->req_len = len;
    int err = uv_fs_write(k->logs->loop, &k->req, k->fd, &buf, 1, -1, on_write);
    if (err) {
        /* Not queued (it only fails for bad arguments): written here rather than lost. */
        write_sync(k, &k->out, k->out_off);
        k->out_off = 0;
        return;
    }
    k->writing = true;
}

/* Hands `cur` over to be written, when nothing is in flight (or sends the rest of a write that met EAGAIN). */
static void start_write(sink_t *k)
{
    if (k->writing)
        return;
    if (k->out.len > k->out_off) {
        submit(k);
        return;
    }
    if (k->cur.len == 0)
        return;
    es_buf_t t = k->out;
    k->out = k->cur;
    k->cur = t;
    k->cur.len = 0;
    k->out_off = 0;
    submit(k);
}

static void on_write(uv_fs_t *req)
{
    sink_t *k = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    k->writing = false;
    if (r > 0) {
        k->last_err = 0;
        k->out_off += (size_t)r;
    } else if (r < 0 && r != UV_EINTR && r != UV_EAGAIN) {
        write_failed(k, (int)r, k->out.base + k->out_off, k->out.len - k->out_off);
        k->out_off = k->out.len;
    }
    if (k->out_off < k->out.len) {
        if (k->logs->closing) {
            finish(k); /* the rest, with blocking writes */
            return;
        }
        /* A short write or EINTR: the rest now. EAGAIN (a full non-blocking pipe): the next tick. */
        if (r > 0 || r == UV_EINTR)
            submit(k);
        return;
    }
    k->out.len = k->out_off = 0;
    if (k->out.cap > KEEP_CAP)
        es_buf_dispose(&k->out);
    if (k->reopen && k->reopen_mark > 0 && !k->logs->closing) {
        /* The lines made before the signal go to the old file first; those after it wait for the new one. */
        es_buf_t tail = k->out;
        size_t mark = k->reopen_mark;
        k->reopen_mark = 0;
        if (es_buf_append(&tail, k->cur.base + mark, k->cur.len - mark) == 0) {
            k->cur.len = mark;
            k->out = k->cur;
            k->cur = tail;
            k->out_off = 0;
            submit(k);
            if (k->writing)
                return;
        } else {
            k->out = tail; /* out of memory: everything goes to the new file */
        }
    }
    if (k->reopen)
        reopen_now(k);
    if (k->logs->closing) {
        finish(k);
        return;
    }
    if (k->cur.len >= FLUSH_AT)
        start_write(k);
}

static void on_tick(uv_timer_t *t)
{
    es_access_logs_t *logs = t->data;
    for (size_t i = 0; i < logs->nsinks; i++) {
        start_write(logs->sinks[i]);
    }
}

/* ---- opening and reopening ------------------------------------------------------------------- */

static int open_file(const char *path)
{
    int fd;
    do
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    return fd;
}

static size_t chunk_for(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) ? PIPE_BUF : SIZE_MAX;
}

/*
 * The file is opened again by its path (after a rotation, a new file) and the old descriptor closed. open(2) runs
 * here, on the loop, rather than on the thread pool: it touches only metadata, as the accept() and socket() calls
 * the loop makes anyway, and doing it synchronously keeps the order simple (nothing can be written between the
 * old file's last line and the new file's first). A file that cannot be opened keeps the old descriptor.
 */
static void reopen_now(sink_t *k)
{
    k->reopen = false;
    k->reopen_mark = 0;
    if (k->path == NULL)
        return;
    int fd = open_file(k->path);
    if (fd < 0) {
        es_warn("access log %s: cannot reopen: %s (writing on to the old file)", k->path, strerror(errno));
        return;
    }
    close(k->fd);
    k->fd = fd;
    k->chunk = chunk_for(fd);
}

void es_access_logs_reopen(es_access_logs_t *logs)
{
    if (logs == NULL || logs->closing)
        return;
    for (size_t i = 0; i < logs->nsinks; i++) {
        sink_t *k = logs->sinks[i];
        if (k->path == NULL)
            continue;
        /* What is buffered belongs to the old file: written there first, then the file is reopened. */
        start_write(k);
        if (k->writing) {
            k->reopen = true;
            k->reopen_mark = k->cur.len;
        } else {
            reopen_now(k);
        }
    }
}

static sink_t *sink_new(es_access_logs_t *logs, const char *path, int fd)
{
    sink_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->logs = logs;
    k->fd = fd;
    k->chunk = chunk_for(fd);
    if ((path != NULL && (k->path = strdup(path)) == NULL) || es_buf_reserve(&k->cur, 2 * FLUSH_AT) == NULL) {
        free(k->path);
        free(k);
        return NULL;
    }
    return k;
}

/* The sink of `path` ("-": standard output), made on first use. Files are told apart by device and inode, so
 * two spellings of one file share a sink. */
static sink_t *sink_for(es_access_logs_t *logs, const char *path, char *err, size_t errlen)
{
    bool std = strcmp(path, "-") == 0;
    struct stat st, other;
    int fd = logs->stdout_fd;
    if (!std) {
        for (size_t i = 0; i < logs->nsinks; i++)
            if (logs->sinks[i]->path != NULL && strcmp(logs->sinks[i]->path, path) == 0)
                return logs->sinks[i];
        if ((fd = open_file(path)) < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            return NULL;
        }
        if (fstat(fd, &st) == 0)
            for (size_t i = 0; i < logs->nsinks; i++)
                if (logs->sinks[i]->path != NULL && fstat(logs->sinks[i]->fd, &other) == 0 &&
                    other.st_dev == st.st_dev && other.st_ino == st.st_ino) {
                    close(fd);
                    return logs->sinks[i];
                }
    } else {
        for (size_t i = 0; i < logs->nsinks; i++)
            if (logs->sinks[i]->path == NULL)
                return logs->sinks[i];
    }
    sink_t **grown = realloc(logs->sinks, (logs->nsinks + 1) * sizeof(*grown));
    sink_t *k = grown != NULL ? sink_new(logs, std ? NULL : path, fd) : NULL;
    if (grown != NULL)
        logs->sinks = grown;
    if (k == NULL) {
        if (!std)
            close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    logs->sinks[logs->nsinks++] = k;
    return k;
}

static void sink_free(sink_t *k)
{
    es_buf_dispose(&k->cur);
    es_buf_dispose(&k->out);
    free(k->path);
    free(k);
}

static void free_logs(es_access_logs_t *logs)
{
    for (size_t i = 0; i < logs->nsinks; i++)
        sink_free(logs->sinks[i]);
    for (size_t i = 0; i < logs->nlisteners; i++)
        free(logs->listeners[i].entries);
    free(logs->sinks);
    free(logs->listeners);
    free(logs);
}

/* Opened, failed: nothing was started on the loop yet but the descriptors. */
static void discard(es_access_logs_t *logs)
{
    for (size_t i = 0; i < logs->nsinks; i++)
        if (logs->sinks[i]->path != NULL)
            close(logs->sinks[i]->fd);
    free_logs(logs);
}

es_access_logs_t *es_access_logs_open(uv_loop_t *loop, const es_config_t *cfg, int stdout_fd, char *err,
                                      size_t errlen)
{
    es_access_logs_t *logs = calloc(1, sizeof(*logs));
    if (logs == NULL || (cfg->nlisteners > 0 &&
                         (logs->listeners = calloc(cfg->nlisteners, sizeof(*logs->listeners))) == NULL)) {
        free(logs);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    logs->loop = loop;
    logs->stdout_fd = stdout_fd;
    logs->nlisteners = cfg->nlisteners;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const es_listener_config_t *lc = &cfg->listeners[l];
        if (lc->naccess_logs == 0)
            continue;
        listener_logs_t *ll = &logs->listeners[l];
        if ((ll->entries = calloc(lc->naccess_logs, sizeof(*ll->entries))) == NULL) {
            snprintf(err, errlen, "out of memory");
            discard(logs);
            return NULL;
        }
        for (size_t a = 0; a < lc->naccess_logs; a++) {
            const es_access_log_config_t *ac = &lc->access_logs[a];
            char why[600];
            sink_t *k = sink_for(logs, ac->path, why, sizeof(why));
            if (k == NULL) {
                snprintf(err, errlen, "%s:%d: listeners[%zu].access_log[%zu].path: %s", cfg->path, ac->line, l, a, why);
                discard(logs);
                return NULL;
            }
            ll->entries[ll->n++] = (entry_t){ac->format, k};
        }
    }
    uv_timer_init(loop, &logs->timer);
    logs->timer.data = logs;
    logs->timer_open = true;
    if (logs->nsinks > 0)
        uv_timer_start(&logs->timer, on_tick, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    uv_unref((uv_handle_t *)&logs->timer);
    return logs;
}

int es_access_logs_enabled(const es_access_logs_t *logs, size_t listener)
{
    return logs != NULL && listener < logs->nlisteners && logs->listeners[listener].n > 0;
}

void es_access_logs_write(es_access_logs_t *logs, size_t listener, const es_access_record_t *r)
{
    if (logs == NULL || listener >= logs->nlisteners || logs->closing)
        return;
    const listener_logs_t *ll = &logs->listeners[listener];
    for (size_t i = 0; i < ll->n; i++) {
        sink_t *k = ll->entries[i].sink;
        if (k->cur.len >= CAP || es_access_format_render(ll->entries[i].format, r, &k->cur) != 0) {
            es_stats_inc(ES_STAT_ACCESS_LOG_DROPPED);
            continue;
        }
        if (k->cur.len >= FLUSH_AT)
            start_write(k);
    }
}

/* ---- closing -------------------------------------------------------------------------------- */

static void maybe_free(es_access_logs_t *logs)
{
    if (logs->timer_open)
        return;
    for (size_t i = 0; i < logs->nsinks; i++)
        if (!logs->sinks[i]->done)
            return;
    free_logs(logs);
}

/* Everything still held goes out with blocking writes; the file is closed. */
static void finish(sink_t *k)
{
    write_sync(k, &k->out, k->out_off);
    k->out_off = 0;
    write_sync(k, &k->cur, 0);
    if (k->path != NULL)
        close(k->fd);
    k->done = true;
    maybe_free(k->logs);
}

static void on_timer_closed(uv_handle_t *h)
{
    es_access_logs_t *logs = h->data;
    logs->timer_open = false;
    maybe_free(logs);
}

void es_access_logs_close(es_access_logs_t *logs)
{
    if (logs == NULL || logs->closing)
        return;
    logs->closing = true;
    uv_close((uv_handle_t *)&logs->timer, on_timer_closed);
    /* A sink whose write is in flight finishes when it completes (on_write), keeping the lines' order. */
    for (size_t i = 0; i < logs->nsinks; i++)
        if (!logs->sinks[i]->writing)
            finish(logs->sinks[i]);
}

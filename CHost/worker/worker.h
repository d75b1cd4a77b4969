/*
 * A worker: one libuv loop, its own listening sockets (SO_REUSEPORT) and its own upstream pools. A
 * connection and everything it touches live on one worker for their whole life. A worker is a process of
 * its own (worker_proc.h) that runs the loop on its main thread (es_worker_run).
 */
#ifndef ES_WORKER_H
#define ES_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/env.h"
#include "core/list.h"

typedef struct es_worker_s es_worker_t;
typedef struct es_pool_s es_pool_t;

typedef struct {
    uv_tcp_t tcp;
    es_worker_t *worker;
    const es_listener_config_t *cfg;
} es_listener_t;

struct es_worker_s {
    es_env_t env;             /* what the layers below see: id, cfg, pools, conns, blocks, draining */
    char tag[16];
    uv_loop_t loop;
    uv_async_t wake;          /* filter libraries' work and posted results (es_worker_wake) */
    uv_check_t kick;          /* the same, posted from this worker's own thread: runs after this poll */
    uv_idle_t kick_next;      /* ... or, posted too late for that, before the next poll (which it keeps from blocking) */
    uv_prepare_t tick;        /* counts loop iterations, for deferring upstream reuse */
    es_listener_t *listeners; /* cfg->nlisteners */
    uv_timer_t drain_timer;   /* drain_timeout: what is left is closed */
    void (*on_exit)(es_worker_t *w); /* optional: called on the loop when the worker stops (drained or stopped) */
};

/* Sets up the loop and pools; listeners are added with es_worker_listen before es_worker_run. */
int es_worker_init(es_worker_t *w, unsigned id, const es_config_t *cfg);
/* Takes ownership of a bound socket `fd` for listener `index`. Returns 0 or a libuv error. */
int es_worker_listen(es_worker_t *w, size_t index, int fd);
/* Runs the worker's loop on the calling thread until it stops (drained, or stopped); then frees its memory. */
void es_worker_run(es_worker_t *w);
/* Drains, on the worker's own thread: stops accepting at once, answers every request still to come with
 * Connection: close, closes idle connections after a grace, and stops when it holds no connection, or
 * after timeout_ms, closing what is left. */
void es_worker_drain(es_worker_t *w, uint64_t timeout_ms);
/* Stops at once, on the worker's own thread: closes the listeners, every connection and the pools. */
void es_worker_stop_now(es_worker_t *w);

/* Wakes worker `id` to run filter work; any thread, any time (a stopped worker ignores it). From the worker's own
 * thread it costs no system call: the work runs once the loop's current I/O callbacks are done. */
void es_worker_wake(unsigned id);

#endif

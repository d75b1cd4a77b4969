#include "worker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/h2_mem.h"
#include "core/log.h"
#include "core/stats.h"
#include "obs/metrics.h"
#include "core/wake.h"
#include "filters/filter_chain.h"
#include "filters/handles.h"
#include "net/conn.h"
#include "obs/access_log.h"
#include "upstream/upstream.h"

/* Workers by id, for wake-ups from filter libraries' threads. The lock keeps a wake from racing
 * the handle's close when the worker stops. */
#define MAX_WORKERS 256
static es_worker_t *registry[MAX_WORKERS];
static uv_mutex_t registry_lock;
static uv_once_t registry_once = UV_ONCE_INIT;

static void registry_init(void)
{
    uv_mutex_init(&registry_lock);
}

static void registry_set(unsigned id, es_worker_t *w)
{
    uv_once(&registry_once, registry_init);
    uv_mutex_lock(&registry_lock);
    if (id < MAX_WORKERS)
        registry[id] = w;
    uv_mutex_unlock(&registry_lock);
}

/* The worker whose loop runs on this thread, if any. */
static __thread es_worker_t *self;

static void conn_closed(es_env_t *env);

static void kick_run(es_worker_t *w)
{
    uv_check_stop(&w->kick);
    uv_idle_stop(&w->kick_next);
    es_handles_run();
}

static void on_kick(uv_check_t *h)
{
    kick_run(h->data);
}

static void on_kick_next(uv_idle_t *h)
{
    kick_run(h->data);
}

void es_worker_wake(unsigned id)
{
    /* An async filter's own thread posts most of its work (a task resuming on the worker's executor, a result
     * from a task that ran there). uv_async_send would write to an eventfd and the loop read it back, two system
     * calls per post, and the work would wait for the next poll. A check handle runs it right after this
     * iteration's I/O callbacks; a post made after the check phase (or in it) is picked up by the idle handle,
     * which runs first in the next iteration and keeps its poll from blocking meanwhile. */
    if (self != NULL && self->env.id == id) {
        if (!self->env.stopping) {
            uv_check_start(&self->kick, on_kick);
            uv_idle_start(&self->kick_next, on_kick_next);
        }
        return;
    }
    uv_once(&registry_once, registry_init);
    uv_mutex_lock(&registry_lock);
    if (id < MAX_WORKERS && registry[id] != NULL)
        uv_async_send(&registry[id]->wake);
    uv_mutex_unlock(&registry_lock);
}

static void on_wake(uv_async_t *a)
{
    (void)a;
    es_handles_run();
}

static void on_connection(uv_stream_t *server, int status)
{
    es_listener_t *l = server->data;
    if (status < 0) {
        es_warn("listener \"%s\": accept failed: %s", l->cfg->name, uv_strerror(status));
        return;
    }
    es_conn_accept(&l->worker->env, l->cfg, server);
}

static void on_tick(uv_prepare_t *h)
{
    es_worker_t *w = h->data;
    w->env.iteration++;
}

static void on_closed_quiet(uv_handle_t *h)
{
}

static void close_listeners(es_worker_t *w)
{
    for (size_t i = 0; i < w->env.cfg->nlisteners; i++) {
        if (w->listeners[i].worker != NULL) {
            uv_close((uv_handle_t *)&w->listeners[i].tcp, on_closed_quiet);
            w->listeners[i].worker = NULL;
        }
    }
}

void es_worker_stop_now(es_worker_t *w)
{
    if (w->env.stopping)
        return;
    w->env.stopping = 1;
    registry_set(w->env.id, NULL);
    close_listeners(w);
    while (!es_list_empty(&w->env.conns))
        es_conn_abort(es_container_of(w->env.conns.next, es_conn_t, link));
    for (size_t i = 0; i < w->env.cfg->nclusters; i++)
        es_pool_close(&w->env.pools[i]);
    uv_close((uv_handle_t *)&w->tick, on_closed_quiet);
    uv_close((uv_handle_t *)&w->wake, on_closed_quiet);
    uv_close((uv_handle_t *)&w->kick, on_closed_quiet);
    uv_close((uv_handle_t *)&w->kick_next, on_closed_quiet);
    uv_close((uv_handle_t *)&w->drain_timer, on_closed_quiet);
    if (w->on_exit != NULL)
        w->on_exit(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    es_worker_t *w = t->data;
    size_t left = 0;
    for (es_link_t *l = w->env.conns.next; l != &w->env.conns; l = l->next)
        left++;
    es_stats_inc(ES_STAT_DRAIN_TIMEOUTS);
    es_warn("drain_timeout: closing the %zu connection%s still open", left, left == 1 ? "" : "s");
    es_worker_stop_now(w);
}

void es_worker_drain(es_worker_t *w, uint64_t timeout_ms)
{
    if (w->env.draining || w->env.stopping)
        return;
    w->env.draining = 1;
    close_listeners(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, timeout_ms, 0);
    es_link_t *next;
    for (es_link_t *l = w->env.conns.next; l != &w->env.conns; l = next) {
        next = l->next;
        es_conn_drain(es_container_of(l, es_conn_t, link));
    }
    conn_closed(&w->env);
}

static void conn_closed(es_env_t *env)
{
    es_worker_t *w = (es_worker_t *)env;
    if (w->env.draining && !w->env.stopping && es_list_empty(&w->env.conns)) {
        es_debug("drained: no connection left");
        es_worker_stop_now(w);
    }
}

int es_worker_init(es_worker_t *w, unsigned id, const es_config_t *cfg)
{
    memset(w, 0, sizeof(*w));
    w->env.id = id;
    w->env.cfg = cfg;
    w->env.loop = &w->loop;
    w->env.conn_closed = conn_closed;
    snprintf(w->tag, sizeof(w->tag), "w%u", id);
    es_list_init(&w->env.conns);
    int err = uv_loop_init(&w->loop);
    if (err)
        return err;
    w->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*w->listeners));
    w->env.pools = calloc(cfg->nclusters ? cfg->nclusters : 1, sizeof(*w->env.pools));
    if (w->listeners == NULL || w->env.pools == NULL) {
        free(w->listeners);
        free(w->env.pools);
        uv_loop_close(&w->loop);
        return UV_ENOMEM;
    }
    for (size_t i = 0; i < cfg->nclusters; i++)
        es_pool_init(&w->env.pools[i], &w->env, &cfg->clusters[i]);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_check_init(&w->loop, &w->kick);
    w->kick.data = w;
    uv_idle_init(&w->loop, &w->kick_next);
    w->kick_next.data = w;
    registry_set(id, w);
    es_wake_install(es_worker_wake);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_prepare_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_prepare_start(&w->tick, on_tick);
    uv_unref((uv_handle_t *)&w->tick);
    return 0;
}

int es_worker_listen(es_worker_t *w, size_t index, int fd)
{
    es_listener_t *l = &w->listeners[index];
    l->cfg = &w->env.cfg->listeners[index];
    int err = uv_tcp_init(&w->loop, &l->tcp);
    if (err)
        return err;
    l->worker = w;
    l->tcp.data = l;
    err = uv_tcp_open(&l->tcp, fd);
    if (!err)
        err = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    return err;
}

static void run(es_worker_t *w)
{
    es_log_set_tag(w->tag);
    es_handles_thread_init(w->env.id);
    es_stats_thread_init();
    es_metrics_thread_init();
    self = w;
    es_debug("worker started");
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->env.access_logs != NULL) {
        /* Drained or stopped: every line still buffered is written before the worker goes. */
        es_access_logs_close(w->env.access_logs);
        w->env.access_logs = NULL;
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    es_debug("worker stopped");
    self = NULL;
    es_handles_thread_dispose();
    es_filters_cache_drain();
    es_h2_mem_drain();
    es_small_drain();
}

static void release(es_worker_t *w)
{
    for (unsigned i = 0; i < w->env.nblocks; i++)
        free(w->env.blocks[i]);
    w->env.nblocks = 0;
    free(w->listeners);
    free(w->env.pools);
    w->listeners = NULL;
    w->env.pools = NULL;
}

void es_worker_run(es_worker_t *w)
{
    run(w);
    int err = uv_loop_close(&w->loop);
    if (err)
        es_warn("worker %u: loop still has handles at exit: %s", w->env.id, uv_strerror(err));
    release(w);
}

/*
 * What a worker process gives the layers below it (connections, codecs, streams, upstreams, filters): its loop,
 * configuration, pools, read blocks and whether it drains. The worker owns it; nothing below calls the worker.
 */
#ifndef ES_ENV_H
#define ES_ENV_H

#include <stdint.h>
#include <stdlib.h>
#include <uv.h>

#include "core/config.h"
#include "core/list.h"

#define ES_BLOCK_SIZE (64 * 1024)   /* one socket read */
#define ES_BLOCK_CACHE 64           /* free blocks a worker keeps for reuse */

/* Body bytes queued towards one peer before the other peer is no longer read. */
#define ES_WRITE_HIGH (256 * 1024)
#define ES_WRITE_LOW (64 * 1024)
/* libuv's loop clock counts whole milliseconds and may be the coarse clock, up to 1 ms behind: a
 * deadline armed with this much slack never fires before its time. */
#define ES_CLOCK_SLACK_MS 2

typedef struct es_pool_s es_pool_t;
typedef struct es_env_s es_env_t;

struct es_env_s {
    uv_loop_t *loop;
    const es_config_t *cfg;
    es_pool_t *pools;         /* cfg->nclusters, by cluster index */
    unsigned id;              /* the worker's index */
    uint64_t iteration;       /* loop iterations, for deferring upstream reuse */
    es_link_t conns;          /* live downstream connections */
    /* A connection was freed: a draining worker may be done. */
    void (*conn_closed)(es_env_t *env);
    struct es_access_logs_s *access_logs; /* this worker's access-log sinks (obs/access_log.h), or NULL */
    void *blocks[ES_BLOCK_CACHE];
    unsigned nblocks;
    unsigned draining : 1;    /* accepts nothing more; each response closes its connection */
    unsigned stopping : 1;
};

/* Read buffers: a small cache, so idle connections hold none and busy ones never malloc. */
static inline void *es_env_block_get(es_env_t *e)
{
    return e->nblocks > 0 ? e->blocks[--e->nblocks] : malloc(ES_BLOCK_SIZE);
}

static inline void es_env_block_put(es_env_t *e, void *block)
{
    if (e->nblocks < ES_BLOCK_CACHE)
        e->blocks[e->nblocks++] = block;
    else
        free(block);
}

#endif

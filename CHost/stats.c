#include "stats.h"

#include <stdatomic.h>
#include <stdio.h>

/*
 * Each worker thread counts in a block of its own, on its own cache lines: a filter chain counts a
 * skipped hook several times per request, and one shared counter would bounce its line between the
 * workers' cores on every request. A block has one writer, so an increment is a plain load and store
 * (relaxed atomics, so a reader sees whole values); readers sum the blocks. Block 0 is shared, with
 * atomic adds, by every thread that has no block of its own (the main thread, tests, a thread past the
 * last block). Blocks are never given back: their counts stay part of the process's totals.
 */
#define STAT_BLOCKS 64

typedef struct {
    _Alignas(64) _Atomic uint64_t v[ES_STAT_COUNT];
} stat_block_t;

static stat_block_t blocks[STAT_BLOCKS];
static _Atomic unsigned blocks_used = 1;
static __thread stat_block_t *own;

static const char *const names[ES_STAT_COUNT] = {
    [ES_STAT_FILTER_RUNNING] = "filter.running",
    [ES_STAT_FILTER_RESUMED] = "filter.resumed",
    [ES_STAT_FILTER_TIMEOUTS] = "filter.timeouts",
    [ES_STAT_FILTER_ERRORS] = "filter.errors",
    [ES_STAT_FILTER_CANCELLED] = "filter.cancelled",
    [ES_STAT_FILTER_SKIPPED] = "filter.hooks_skipped",
    [ES_STAT_CALLOUTS] = "callout.started",
    [ES_STAT_CALLOUT_FAILURES] = "callout.failures",
    [ES_STAT_HEADER_TIMEOUTS] = "downstream.header_timeouts",
    [ES_STAT_IDLE_TIMEOUTS] = "downstream.idle_timeouts",
    [ES_STAT_REQUEST_TIMEOUTS] = "downstream.request_timeouts",
    [ES_STAT_DELAYED_CLOSE_TIMEOUTS] = "downstream.delayed_close_timeouts",
    [ES_STAT_BAD_REQUESTS] = "downstream.rq_400",
    [ES_STAT_HEADERS_TOO_LARGE] = "downstream.rq_431",
    [ES_STAT_BODY_TOO_LARGE] = "downstream.rq_413",
    [ES_STAT_UPSTREAM_RETRIES] = "upstream.retries",
    [ES_STAT_UPSTREAM_IDLE_CLOSED] = "upstream.idle_closed",
    [ES_STAT_TLS_HANDSHAKES] = "tls.handshakes",
    [ES_STAT_TLS_HANDSHAKE_FAILURES] = "tls.handshake_failures",
    [ES_STAT_TLS_HANDSHAKE_TIMEOUTS] = "tls.handshake_timeouts",
    [ES_STAT_TLS_PLAIN_HTTP] = "tls.plain_http",
    [ES_STAT_UPSTREAM_TLS_FAILURES] = "upstream.tls_failures",
};

void es_stats_thread_init(void)
{
    if (own != NULL)
        return;
    unsigned i = atomic_fetch_add_explicit(&blocks_used, 1, memory_order_relaxed);
    if (i < STAT_BLOCKS)
        own = &blocks[i];
}

void es_stats_add(es_stat_t which, uint64_t n)
{
    if (own != NULL) {
        _Atomic uint64_t *c = &own->v[which];
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&blocks[0].v[which], n, memory_order_relaxed);
    }
}

void es_stats_inc(es_stat_t which)
{
    es_stats_add(which, 1);
}

uint64_t es_stats_get(es_stat_t which)
{
    /* Every block, used or not (unused ones hold 0): a reader need not agree with blocks_used. */
    uint64_t sum = 0;
    for (unsigned i = 0; i < STAT_BLOCKS; i++)
        sum += atomic_load_explicit(&blocks[i].v[which], memory_order_relaxed);
    return sum;
}

size_t es_stats_format(char *buf, size_t len)
{
    size_t n = 0;
    for (int i = 0; i < ES_STAT_COUNT && n + 1 < len; i++) {
        int w = snprintf(buf + n, len - n, "%s %llu\n", names[i], (unsigned long long)es_stats_get((es_stat_t)i));
        if (w < 0)
            break;
        n += (size_t)w < len - n ? (size_t)w : len - n - 1;
    }
    return n;
}

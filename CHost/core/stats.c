#include "core/stats.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/*
 * Each worker counts in a block of its own, on its own cache lines: a filter chain counts a skipped
 * hook several times per request, and one shared counter would bounce its line between the workers'
 * cores on every request. A block has one writer, so an increment is a plain load and store (relaxed
 * atomics, so a reader sees whole values); readers sum the blocks. Block 0 is shared, with atomic adds,
 * by every thread that has no block of its own (the main thread, tests, a thread past the last block,
 * the supervisor). In one process blocks are never given back: their counts stay part of the totals.
 * Under the supervisor a dead worker's block is folded into block 0 (es_stats_retire).
 */
static es_stat_block_t local_blocks[ES_STAT_BLOCKS];
static es_stat_block_t *blocks = local_blocks;
static unsigned nblocks = ES_STAT_BLOCKS;
static es_stats_shared_t *shared;          /* NULL: in-process blocks */
static _Atomic unsigned blocks_used = 1;
static __thread es_stat_block_t *own;

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
    [ES_STAT_RELOADS] = "server.reloads",
    [ES_STAT_RELOAD_FAILURES] = "server.reload_failures",
    [ES_STAT_WORKER_CRASHES] = "server.worker_crashes",
    [ES_STAT_DRAIN_TIMEOUTS] = "server.drain_timeouts",
    [ES_STAT_H2_CONNECTIONS] = "h2.connections",
    [ES_STAT_H2_STREAMS] = "h2.streams",
    [ES_STAT_H2_STREAMS_REFUSED] = "h2.streams_refused",
    [ES_STAT_H2_STREAMS_RESET] = "h2.streams_reset_by_client",
    [ES_STAT_H2_HEADERS_TOO_LARGE] = "h2.headers_too_large",
    [ES_STAT_H2_RAPID_RESET] = "h2.rapid_reset",
    [ES_STAT_H2_FLOODS] = "h2.floods",
    [ES_STAT_H2_PROTOCOL_ERRORS] = "h2.protocol_errors",
    [ES_STAT_H2_STREAM_IDLE_TIMEOUTS] = "h2.stream_idle_timeouts",
    [ES_STAT_TUNNELS] = "downstream.tunnels",
    [ES_STAT_UPGRADES_REFUSED] = "downstream.upgrades_refused",
    [ES_STAT_CONNECT_REFUSED] = "downstream.connect_refused",
    [ES_STAT_TUNNEL_IDLE_TIMEOUTS] = "downstream.tunnel_idle_timeouts",
    [ES_STAT_ACCESS_LOG_DROPPED] = "access_log.dropped",
    [ES_STAT_GENERATION] = "server.generation",
    [ES_STAT_WORKERS] = "server.workers",
    [ES_STAT_CONNECTIONS] = "downstream.connections_active",
};

size_t es_stats_shared_size(unsigned n)
{
    return sizeof(es_stats_shared_t) + (size_t)n * sizeof(es_stat_block_t);
}

void es_stats_attach(es_stats_shared_t *sh, unsigned n)
{
    shared = sh;
    blocks = sh->blocks;
    nblocks = n;
    own = NULL;
}

void es_stats_own_block(unsigned index)
{
    own = index < nblocks ? &blocks[index] : NULL;
}

void es_stats_thread_init(void)
{
    if (own != NULL || shared != NULL)
        return; /* shared blocks are handed out by the supervisor, one per process */
    unsigned i = atomic_fetch_add_explicit(&blocks_used, 1, memory_order_relaxed);
    if (i < nblocks)
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

void es_stats_sub(es_stat_t which, uint64_t n)
{
    es_stats_add(which, (uint64_t)0 - n); /* wraps: the sum over blocks comes out right */
}

void es_stats_set(es_stat_t which, uint64_t value)
{
    atomic_store_explicit(&blocks[0].v[which], value, memory_order_relaxed);
}

void es_stats_retire(unsigned index)
{
    if (shared == NULL || index == 0 || index >= nblocks)
        return;
    es_stat_block_t *b = &blocks[index];
    /* Odd while folding: a reader that overlaps retries. */
    atomic_fetch_add_explicit(&shared->seq, 1, memory_order_acq_rel);
    for (int i = 0; i < ES_STAT_COUNT; i++) {
        uint64_t v = atomic_exchange_explicit(&b->v[i], 0, memory_order_relaxed);
        if (i < ES_STAT_GAUGES)
            atomic_fetch_add_explicit(&blocks[0].v[i], v, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&shared->seq, 1, memory_order_acq_rel);
}

static uint64_t sum(es_stat_t which)
{
    /* Every block, used or not (unused ones hold 0): a reader need not agree with blocks_used. */
    uint64_t total = 0;
    for (unsigned i = 0; i < nblocks; i++)
        total += atomic_load_explicit(&blocks[i].v[which], memory_order_relaxed);
    return total;
}

uint64_t es_stats_get(es_stat_t which)
{
    if (shared == NULL)
        return sum(which);
    for (;;) {
        uint64_t s0 = atomic_load_explicit(&shared->seq, memory_order_acquire);
        if (s0 & 1)
            continue;
        uint64_t v = sum(which);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&shared->seq, memory_order_relaxed) == s0)
            return v;
    }
}

es_stat_filter_t *es_stats_filter(const char *name)
{
    if (shared == NULL)
        return NULL;
    /* Only the supervisor adds entries, so a plain scan is enough. */
    for (unsigned i = 0; i < ES_STAT_FILTER_NAMES; i++) {
        es_stat_filter_t *f = &shared->filters[i];
        if (f->name[0] == '\0') {
            snprintf(f->name, sizeof(f->name), "%s", name);
            return f;
        }
        if (strncmp(f->name, name, sizeof(f->name) - 1) == 0)
            return f;
    }
    return NULL;
}

static int append(char *buf, size_t len, size_t *n, const char *fmt, const char *name, uint64_t v)
{
    int w = snprintf(buf + *n, len - *n, fmt, name, (unsigned long long)v);
    if (w < 0)
        return -1;
    *n += (size_t)w < len - *n ? (size_t)w : len - *n - 1;
    return 0;
}

size_t es_stats_format(char *buf, size_t len)
{
    size_t n = 0;
    if (len == 0)
        return 0;
    buf[0] = '\0';
    for (int i = 0; i < ES_STAT_COUNT && n + 1 < len; i++)
        if (append(buf, len, &n, "%s %llu\n", names[i], es_stats_get((es_stat_t)i)) != 0)
            break;
    for (unsigned i = 0; shared != NULL && i < ES_STAT_FILTER_NAMES && n + 1 < len; i++) {
        const es_stat_filter_t *f = &shared->filters[i];
        if (f->name[0] == '\0')
            break;
        append(buf, len, &n, "filter.%s.crashes %llu\n", f->name, atomic_load(&f->crashes));
        append(buf, len, &n, "filter.%s.quarantined %llu\n", f->name, atomic_load(&f->quarantined));
    }
    return n;
}

int es_stats_format_buf(es_buf_t *out)
{
    int r = 0;
    for (int i = 0; i < ES_STAT_COUNT; i++)
        r |= es_buf_appendf(out, "%s %llu\n", names[i], (unsigned long long)es_stats_get((es_stat_t)i));
    const es_stat_filter_t *f;
    for (unsigned i = 0; (f = es_stats_filter_at(i)) != NULL; i++) {
        r |= es_buf_appendf(out, "filter.%s.crashes %llu\n", f->name, (unsigned long long)atomic_load(&f->crashes));
        r |= es_buf_appendf(out, "filter.%s.quarantined %llu\n", f->name,
                            (unsigned long long)atomic_load(&f->quarantined));
    }
    return r ? -1 : 0;
}

const char *es_stats_name(es_stat_t which)
{
    return (unsigned)which < ES_STAT_COUNT ? names[which] : "";
}

const es_stat_filter_t *es_stats_filter_at(unsigned i)
{
    if (shared == NULL || i >= ES_STAT_FILTER_NAMES || shared->filters[i].name[0] == '\0')
        return NULL;
    return &shared->filters[i];
}

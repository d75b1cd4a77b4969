#include "stats.h"

#include <stdatomic.h>
#include <stdio.h>

static _Atomic uint64_t counters[ES_STAT_COUNT];

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

void es_stats_inc(es_stat_t which)
{
    atomic_fetch_add_explicit(&counters[which], 1, memory_order_relaxed);
}

uint64_t es_stats_get(es_stat_t which)
{
    return atomic_load_explicit(&counters[which], memory_order_relaxed);
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

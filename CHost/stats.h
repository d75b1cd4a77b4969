/*
 * Process-wide counters: what operators ask "how often?" about. Each worker counts in its own block,
 * without a lock or a shared cache line; a read sums the blocks. Read with es_stats_format (the `stats`
 * route and the exit log).
 */
#ifndef ES_STATS_H
#define ES_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ES_STAT_FILTER_RUNNING = 0,   /* hooks that returned RUNNING (went async) */
    ES_STAT_FILTER_RESUMED,       /* of those, resumed by the library */
    ES_STAT_FILTER_TIMEOUTS,      /* hooks cancelled at their timeout */
    ES_STAT_FILTER_ERRORS,        /* hooks that failed (a thrown error, a bad status) */
    ES_STAT_FILTER_CANCELLED,     /* RUNNING hooks whose stream ended first (client went away) */
    ES_STAT_FILTER_SKIPPED,       /* hook calls skipped: the filter does not implement the hook */
    ES_STAT_CALLOUTS,             /* call-outs started */
    ES_STAT_CALLOUT_FAILURES,     /* call-outs that ended in an error or a timeout */
    ES_STAT_HEADER_TIMEOUTS,      /* connections closed at request_headers_timeout */
    ES_STAT_IDLE_TIMEOUTS,        /* keep-alive connections closed at idle_timeout */
    ES_STAT_REQUEST_TIMEOUTS,     /* requests ended at request_timeout (408 / 504) */
    ES_STAT_DELAYED_CLOSE_TIMEOUTS, /* drains cut short at delayed_close_timeout */
    ES_STAT_BAD_REQUESTS,         /* requests refused as malformed or smuggling-shaped (400) */
    ES_STAT_HEADERS_TOO_LARGE,    /* request heads over max_request_headers_kb (431) */
    ES_STAT_BODY_TOO_LARGE,       /* request bodies over buffer_limits.max_body (413) */
    ES_STAT_UPSTREAM_RETRIES,     /* requests sent again after a reused connection died under them */
    ES_STAT_UPSTREAM_IDLE_CLOSED, /* pooled connections closed at the cluster's idle_timeout */
    ES_STAT_TLS_HANDSHAKES,       /* client TLS handshakes completed */
    ES_STAT_TLS_HANDSHAKE_FAILURES, /* client TLS handshakes that failed (bad hello, no shared cipher, ...) */
    ES_STAT_TLS_HANDSHAKE_TIMEOUTS, /* client TLS handshakes not done within handshake_timeout */
    ES_STAT_TLS_PLAIN_HTTP,       /* plain HTTP sent to a TLS listener */
    ES_STAT_UPSTREAM_TLS_FAILURES, /* upstream TLS handshakes that failed (certificate, host name, ...) */
    ES_STAT_COUNT
} es_stat_t;

/* Gives the calling thread counters of its own (worker threads, at start): no cache line shared with
 * another worker's. A thread that does not call it counts in a shared block, with atomic adds. */
void es_stats_thread_init(void);
void es_stats_inc(es_stat_t which);
void es_stats_add(es_stat_t which, uint64_t n);
uint64_t es_stats_get(es_stat_t which);
/* "name value\n" per counter into buf; returns the length written (truncated to len - 1). */
size_t es_stats_format(char *buf, size_t len);

#endif

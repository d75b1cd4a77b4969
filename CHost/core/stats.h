/*
 * Counters and gauges: what operators ask "how often?" and "how many now?" about. Each worker counts in
 * its own block, without a lock or a shared cache line; a read sums the blocks. Read with
 * es_stats_format (the `stats` route and the exit log).
 *
 * In one process the blocks are a static array, a block per worker thread. Under the supervisor they
 * live in memory shared by every process (es_stats_attach): a block per worker process, and block 0
 * for the supervisor's own counts and for the counts of workers that have exited (es_stats_retire
 * folds a dead worker's block into it), so totals only grow across reloads and crashes.
 */
#ifndef ES_STATS_H
#define ES_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

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
    ES_STAT_RELOADS,              /* generations that took over after a reload */
    ES_STAT_RELOAD_FAILURES,      /* reloads refused (bad config, a worker that failed or crashed starting) */
    ES_STAT_WORKER_CRASHES,       /* worker processes that died (signal, exit != 0) */
    ES_STAT_DRAIN_TIMEOUTS,       /* draining workers that still held connections at drain_timeout */
    ES_STAT_H2_CONNECTIONS,       /* downstream connections that spoke HTTP/2 (ALPN h2 or prior knowledge) */
    ES_STAT_H2_STREAMS,           /* HTTP/2 request streams opened */
    ES_STAT_H2_STREAMS_REFUSED,   /* streams refused (REFUSED_STREAM: over max_concurrent_streams) */
    ES_STAT_H2_STREAMS_RESET,     /* streams the client reset (RST_STREAM) or abandoned (closed its connection) before their end */
    ES_STAT_H2_HEADERS_TOO_LARGE, /* header or trailer lists over max_request_headers_kb (431, or reset) */
    ES_STAT_H2_RAPID_RESET,       /* connections cut for resetting streams too fast (CVE-2023-44487) */
    ES_STAT_H2_FLOODS,            /* connections cut for floods: CONTINUATION, empty DATA, PING, SETTINGS, ACKs */
    ES_STAT_H2_PROTOCOL_ERRORS,   /* connections cut for an HTTP/2 protocol error */
    ES_STAT_H2_STREAM_IDLE_TIMEOUTS, /* streams ended at stream_idle_timeout (no byte either way) */
    ES_STAT_TUNNELS,              /* tunnels opened: a 101 to a WebSocket upgrade, or a 200 to a CONNECT */
    ES_STAT_UPGRADES_REFUSED,     /* WebSocket upgrades forwarded without Upgrade: the route says upgrades: [] */
    ES_STAT_CONNECT_REFUSED,      /* CONNECT requests refused (403): the route has no connect: {} */
    ES_STAT_TUNNEL_IDLE_TIMEOUTS, /* tunnels closed at tunnel_idle_timeout */
    ES_STAT_ACCESS_LOG_DROPPED,   /* access-log lines dropped: the sink's buffer was full while a write was slow, or the write failed */
    /* Gauges from here on: per live worker, never folded into the totals when a worker exits. */
    ES_STAT_GAUGES,
    ES_STAT_GENERATION = ES_STAT_GAUGES, /* the serving generation (set by the supervisor) */
    ES_STAT_WORKERS,              /* worker processes serving (each ready worker holds 1) */
    ES_STAT_CONNECTIONS,          /* downstream connections open */
    ES_STAT_COUNT
} es_stat_t;

#define ES_STAT_BLOCKS 64           /* in-process blocks, and the shared blocks' default */

typedef struct {
    _Alignas(64) _Atomic uint64_t v[ES_STAT_COUNT];
} es_stat_block_t;

/* Counts the supervisor keeps per filter name, across generations: shown as filter.NAME.crashes and
 * filter.NAME.quarantined. */
#define ES_STAT_FILTER_NAMES 64
typedef struct {
    char name[64];                /* "" = free entry */
    _Atomic uint64_t crashes;
    _Atomic uint64_t quarantined; /* 1 while a serving generation has the filter quarantined */
} es_stat_filter_t;

/* The shared part: a seqlock that readers retry on while the supervisor folds a block, the per-filter
 * table, and the blocks themselves (block 0 first). */
typedef struct {
    _Atomic uint64_t seq;
    es_stat_filter_t filters[ES_STAT_FILTER_NAMES];
    es_stat_block_t blocks[];
} es_stats_shared_t;

/* Size of the shared part for `nblocks` blocks (block 0 included). */
size_t es_stats_shared_size(unsigned nblocks);
/* Counts in `shared` (already zeroed memory of es_stats_shared_size(nblocks) bytes) from now on, in this
 * process and in every process it forks. */
void es_stats_attach(es_stats_shared_t *shared, unsigned nblocks);
/* This process (a worker) counts in block `index` (1..nblocks-1) from now on, without atomics. */
void es_stats_own_block(unsigned index);
/* Supervisor: the worker that counted in block `index` has exited: its counters join block 0 and the
 * block is zeroed for the next worker; its gauges are dropped. Readers never see a count twice or
 * missing (they retry around the fold). */
void es_stats_retire(unsigned index);
/* Sets a gauge held in block 0 (the supervisor's: the generation). */
void es_stats_set(es_stat_t which, uint64_t value);
/* The entry for filter `name`, made on first use; NULL when the table is full or not attached. */
es_stat_filter_t *es_stats_filter(const char *name);

/* Gives the calling thread counters of its own (worker threads, at start): no cache line shared with
 * another worker's. A thread that does not call it counts in a shared block, with atomic adds. */
void es_stats_thread_init(void);
void es_stats_inc(es_stat_t which);
void es_stats_add(es_stat_t which, uint64_t n);
/* Gauges go down too. */
void es_stats_sub(es_stat_t which, uint64_t n);
uint64_t es_stats_get(es_stat_t which);
/* "name value\n" per counter into buf; returns the length written (truncated to len - 1). */
size_t es_stats_format(char *buf, size_t len);
/* The same, appended to a buffer that grows (no truncation). Returns 0 or -1 (out of memory). */
int es_stats_format_buf(es_buf_t *out);
/* The flat name of a counter or gauge ("downstream.rq_400"). */
const char *es_stats_name(es_stat_t which);
/* Entry `i` of the per-filter table, or NULL past the last one (or when not attached). */
const es_stat_filter_t *es_stats_filter_at(unsigned i);

#endif

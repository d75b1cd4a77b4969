/*
 * Labelled metrics: counters, gauges and fixed-bucket histograms, each a family (a name, a kind, label names,
 * bucket bounds) with series (one per set of label values). They serve the Prometheus text format and the flat
 * `stats` list, next to the plain counters of core/stats.h.
 *
 * Storage follows core/stats.h: each worker records into a block of its own, without a lock or an allocation
 * (one writer per block; relaxed atomics so a reader sees whole values). A block is self-describing: each
 * series slot holds its family's name, kind, bounds and its rendered labels, so a scrape in any worker merges
 * every block's series by (family, labels) without knowing what the other workers defined. Under the supervisor
 * the blocks live in shared memory (es_metrics_attach, before the fork); a dead worker's block is folded into
 * block 0 (es_metrics_retire): its counters and histograms join the totals, its gauges are dropped. In one
 * process (tests, `-t`) the blocks are static, one per thread that calls es_metrics_thread_init.
 */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef enum { ES_METRIC_COUNTER = 0, ES_METRIC_GAUGE = 1, ES_METRIC_HISTOGRAM = 2 } es_metric_kind_t;

#define ES_METRIC_MAX_LABELS 4    /* label names per family */
#define ES_METRIC_MAX_BUCKETS 16  /* upper bounds per histogram (+Inf is implicit) */
#define ES_METRIC_SERIES 1024     /* series per block; past it, records are dropped and counted */
#define ES_METRIC_FAMILIES 256    /* families per process */
#define ES_METRIC_BLOCKS 64       /* in-process blocks, and the shared blocks' default */

/* Default bounds for durations, in seconds: 0.5 ms to 10 s. */
extern const double es_metric_duration_buckets[];
extern const unsigned es_metric_duration_nbuckets;

typedef struct {
    const char *name;             /* the Prometheus name, "envoy_swift_" prefixed by the caller; sanitised here */
    const char *flat;             /* the name in the flat `stats` list ("filter.auth.denied"); NULL: as `name` */
    const char *help;             /* one line, or NULL */
    es_metric_kind_t kind;
    const char *const *labels;    /* label names (sanitised here) */
    unsigned nlabels;
    const double *buckets;        /* histogram upper bounds, ascending; NULL: es_metric_duration_buckets */
    unsigned nbuckets;
} es_metric_def_t;

/* Defines a family in this process (at startup, before serving). Returns its id (>= 0), or -1 with one line in
 * err: too many families, labels or buckets, bounds not ascending, a name that sanitises to nothing, or the
 * same name already defined with another kind or other labels. Defining the same family twice returns the
 * first id. */
int es_metric_define(const es_metric_def_t *def, char *err, size_t errlen);
/* Forgets every family of this process (teardown; a reload's new workers define theirs again). */
void es_metric_reset_families(void);

/* The series of family `family` with these label values (nvalues == the family's label count), found or made
 * in the calling thread's block. Returns a series id >= 0, or -1 (the block is full: counted as
 * envoy_swift_metrics_series_dropped). No allocation. Built-in series are looked up once at worker start and
 * kept; a filter's are looked up per record. */
int32_t es_metric_series(int family, const char *const *values, const size_t *lens, unsigned nvalues);

/* Records into a series of the calling thread's block (-1 is ignored). */
void es_metric_add(int32_t series, double v);      /* counter (v >= 0) or gauge */
void es_metric_set(int32_t series, double v);      /* gauge */
void es_metric_observe(int32_t series, double v);  /* histogram */

/* ---- blocks, as core/stats.h's ---- */
size_t es_metrics_shared_size(unsigned nblocks);
/* Records in `mem` (zeroed, es_metrics_shared_size(nblocks) bytes) from now on, here and in forked children. */
void es_metrics_attach(void *mem, unsigned nblocks);
/* This process (a worker) records in block `index` (1..nblocks-1). */
void es_metrics_own_block(unsigned index);
/* The worker of block `index` exited: its counters and histograms fold into block 0, its gauges go. */
void es_metrics_retire(unsigned index);
/* In one process: the calling thread gets a block of its own. */
void es_metrics_thread_init(void);

/* ---- reading ---- */
/* Appends every series, merged over the blocks, in the Prometheus text format 0.0.4 (# HELP, # TYPE, then the
 * samples; histograms as _bucket{le=...}, _sum, _count). Returns 0 or -1 (out of memory). */
int es_metrics_prometheus(es_buf_t *out);
/* Appends every series to the flat list: "flat{labels} value\n"; a histogram as flat.count and flat.sum lines. */
int es_metrics_flat(es_buf_t *out);

/* Appends `s` sanitised as a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, anything else '_'). */
int es_metrics_sanitise(es_buf_t *out, const char *s, size_t len);
/* Appends `s` escaped as a label value of the text format (\\, \" and \n). */
int es_metrics_label_value(es_buf_t *out, const char *s, size_t len);
/* Appends `v` as the text format spells it: integers without a fraction, "+Inf", "-Inf", "NaN", else the
 * shortest decimal that reads back as the same double. */
int es_metrics_number(es_buf_t *out, double v);

#endif

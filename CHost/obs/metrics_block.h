/*
 * The layout of a metrics block, shared by metrics.c (define, record, retire) and metrics_text.c (reading).
 * Not part of the interface: only those two files include it.
 *
 * A block is self-describing. Its family table (es_metric__desc_t) holds, for every family the block has
 * series of, what a reader needs to render it: the Prometheus name, the flat name, the help line, the kind
 * and the bounds. Family entries and series slots are appended by the block's writer and published by a
 * release store of the count (ndesc, nseries): a reader that loads the count with acquire sees whole entries
 * below it. Values are relaxed atomics; doubles are kept as their bits in a uint64_t.
 */
#ifndef ES_METRICS_BLOCK_H
#define ES_METRICS_BLOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include "obs/metrics.h"

#define ES_METRIC_NAME_MAX 96     /* a sanitised name, NUL included */
#define ES_METRIC_HELP_MAX 128    /* help text kept in a block (longer is cut) */
#define ES_METRIC_LABELS_MAX 192  /* rendered labels `k="v",...`, NUL included */
#define ES_METRIC_INDEX (2 * ES_METRIC_SERIES) /* open-addressing slots of a block's series index */

typedef struct {
    char name[ES_METRIC_NAME_MAX];
    char flat[ES_METRIC_NAME_MAX];
    char help[ES_METRIC_HELP_MAX];
    uint32_t kind;
    uint32_t nbuckets;
    double bounds[ES_METRIC_MAX_BUCKETS];
} es_metric__desc_t;

typedef struct {
    uint32_t desc;                /* its family in the block's table */
    uint32_t hash;                /* of (desc, labels): the index's key */
    char labels[ES_METRIC_LABELS_MAX];
    _Atomic uint64_t value;       /* counter, gauge: the value; histogram: the sum (double bits) */
    _Atomic uint64_t count;       /* histogram: observations */
    _Atomic uint64_t buckets[ES_METRIC_MAX_BUCKETS + 1]; /* histogram, not cumulative; the last is +Inf */
} es_metric__slot_t;

typedef struct {
    _Alignas(64) _Atomic uint32_t ndesc;
    _Atomic uint32_t nseries;
    _Atomic uint32_t lock;        /* taken to add entries to a block with several writers (block 0) */
    _Atomic uint64_t dropped;     /* series that did not fit */
    uint16_t index[ES_METRIC_INDEX]; /* slot + 1; 0 = empty */
    es_metric__desc_t desc[ES_METRIC_FAMILIES];
    es_metric__slot_t slots[ES_METRIC_SERIES];
} es_metric__block_t;

/* Where the blocks are (block 0 first), how many, and the seqlock a retire holds odd (NULL in one process). */
typedef struct {
    es_metric__block_t *blocks;
    unsigned nblocks;
    _Atomic uint64_t *seq;
} es_metric__blocks_t;

void es_metric__blocks(es_metric__blocks_t *out);

static inline double es_metric__d(uint64_t bits)
{
    double d;
    __builtin_memcpy(&d, &bits, sizeof d);
    return d;
}

static inline uint64_t es_metric__bits(double d)
{
    uint64_t u;
    __builtin_memcpy(&u, &d, sizeof u);
    return u;
}

#endif

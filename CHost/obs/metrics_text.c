#include "obs/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/metrics_block.h"

/*
 * Reading: every block's series are copied out (inside the seqlock, so a retire is seen whole or not at all),
 * sorted by (name, labels), and equal neighbours merged. Allocation is fine here: a scrape is not on the
 * request path.
 */

typedef struct {
    const es_metric__desc_t *desc;  /* into `descs` of the snapshot */
    char labels[ES_METRIC_LABELS_MAX];
    double value;
    uint64_t count;
    uint64_t buckets[ES_METRIC_MAX_BUCKETS + 1];
} entry_t;

typedef struct {
    es_metric__desc_t *descs;
    size_t ndescs, descs_cap;
    entry_t *entries;
    size_t n, cap;
    uint64_t dropped;
} snapshot_t;

static void snapshot_free(snapshot_t *s)
{
    free(s->descs);
    free(s->entries);
    memset(s, 0, sizeof(*s));
}

static int copy_block(snapshot_t *s, const es_metric__block_t *b)
{
    s->dropped += atomic_load_explicit(&b->dropped, memory_order_relaxed);
    uint32_t ns = atomic_load_explicit(&b->nseries, memory_order_acquire);
    uint32_t nd = atomic_load_explicit(&b->ndesc, memory_order_acquire);
    if (ns == 0)
        return 0;
    if (ns > ES_METRIC_SERIES || nd > ES_METRIC_FAMILIES)
        return 0; /* torn by a retire: the seqlock makes the caller retry */
    if (s->ndescs + nd > s->descs_cap) {
        size_t cap = (s->descs_cap ? s->descs_cap * 2 : 64) + nd;
        void *p = realloc(s->descs, cap * sizeof(*s->descs));
        if (p == NULL)
            return -1;
        s->descs = p;
        s->descs_cap = cap;
    }
    size_t base = s->ndescs;
    memcpy(s->descs + base, b->desc, nd * sizeof(*s->descs));
    for (uint32_t i = 0; i < nd; i++) { /* whatever the memory held, these stay strings */
        es_metric__desc_t *d = &s->descs[base + i];
        d->name[sizeof(d->name) - 1] = d->flat[sizeof(d->flat) - 1] = d->help[sizeof(d->help) - 1] = '\0';
        if (d->nbuckets > ES_METRIC_MAX_BUCKETS)
            d->nbuckets = ES_METRIC_MAX_BUCKETS;
    }
    s->ndescs += nd;
    if (s->n + ns > s->cap) {
        size_t cap = (s->cap ? s->cap * 2 : 256) + ns;
        void *p = realloc(s->entries, cap * sizeof(*s->entries));
        if (p == NULL)
            return -1;
        s->entries = p;
        s->cap = cap;
    }
    for (uint32_t i = 0; i < ns; i++) {
        const es_metric__slot_t *sl = &b->slots[i];
        if (sl->desc >= nd)
            continue;
        entry_t *e = &s->entries[s->n++];
        /* The snapshot's descs move when they grow: keep an offset until the copy is done. */
        e->desc = (const es_metric__desc_t *)(uintptr_t)(base + sl->desc);
        memcpy(e->labels, sl->labels, sizeof(e->labels));
        e->labels[sizeof(e->labels) - 1] = '\0';
        e->value = es_metric__d(atomic_load_explicit(&sl->value, memory_order_relaxed));
        e->count = atomic_load_explicit(&sl->count, memory_order_relaxed);
        for (unsigned k = 0; k <= ES_METRIC_MAX_BUCKETS; k++)
            e->buckets[k] = atomic_load_explicit(&sl->buckets[k], memory_order_relaxed);
    }
    return 0;
}

static int by_key(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    int c = strcmp(a->desc->name, b->desc->name);
    return c != 0 ? c : strcmp(a->labels, b->labels);
}

/* Every series of every block, merged by (name, labels) and sorted. */
static int snapshot(snapshot_t *s)
{
    es_metric__blocks_t bl;
    es_metric__blocks(&bl);
    for (;;) {
        memset(s, 0, sizeof(*s));
        uint64_t s0 = bl.seq != NULL ? atomic_load_explicit(bl.seq, memory_order_acquire) : 0;
        if (s0 & 1)
            continue;
        for (unsigned i = 0; i < bl.nblocks; i++)
            if (copy_block(s, &bl.blocks[i]) != 0) {
                snapshot_free(s);
                return -1;
            }
        atomic_thread_fence(memory_order_acquire);
        if (bl.seq == NULL || atomic_load_explicit(bl.seq, memory_order_relaxed) == s0)
            break;
        snapshot_free(s);
    }
    for (size_t i = 0; i < s->n; i++)
        s->entries[i].desc = &s->descs[(uintptr_t)s->entries[i].desc];
    qsort(s->entries, s->n, sizeof(*s->entries), by_key);
    /* Merge equal keys; a series whose family disagrees (kind, bounds) with the first of its name goes. */
    size_t out = 0;
    for (size_t i = 0; i < s->n; i++) {
        entry_t *e = &s->entries[i];
        if (out > 0) {
            entry_t *prev = &s->entries[out - 1];
            const es_metric__desc_t *a = prev->desc, *b = e->desc;
            if (strcmp(a->name, b->name) == 0) {
                if (a->kind != b->kind || a->nbuckets != b->nbuckets ||
                    memcmp(a->bounds, b->bounds, a->nbuckets * sizeof(double)) != 0)
                    continue;
                if (strcmp(prev->labels, e->labels) == 0) {
                    prev->value += e->value; /* a gauge too: each worker holds its part */
                    prev->count += e->count;
                    for (unsigned k = 0; k <= ES_METRIC_MAX_BUCKETS; k++)
                        prev->buckets[k] += e->buckets[k];
                    continue;
                }
            }
        }
        if (out != i)
            s->entries[out] = *e;
        out++;
    }
    s->n = out;
    return 0;
}

/* ---- text ---- */

int es_metrics_number(es_buf_t *out, double v)
{
    if (isnan(v))
        return es_buf_append(out, "NaN", 3);
    if (isinf(v))
        return v > 0 ? es_buf_append(out, "+Inf", 4) : es_buf_append(out, "-Inf", 4);
    if (v == floor(v) && fabs(v) < 1e15)
        return es_buf_appendf(out, "%.0f", v == 0 ? 0.0 : v);
    /* The shortest form that reads back as the same double. */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    return es_buf_append(out, tmp, strlen(tmp));
}

int es_metrics_label_value(es_buf_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const char *rep = s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\"" : s[i] == '\n' ? "\\n" : NULL;
        if (rep != NULL ? es_buf_append(out, rep, 2) : es_buf_append(out, &s[i], 1))
            return -1;
    }
    return 0;
}

static int help_text(es_buf_t *out, const char *s)
{
    for (; *s; s++) {
        const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : NULL;
        if (rep != NULL ? es_buf_append(out, rep, 2) : es_buf_append(out, s, 1))
            return -1;
    }
    return 0;
}

/* name{labels} (or name{labels,extra}) value\n */
static int sample(es_buf_t *out, const char *name, const char *suffix, const char *labels, const char *extra,
                  double v)
{
    int r = es_buf_appendf(out, "%s%s", name, suffix);
    if (labels[0] != '\0' || extra != NULL)
        r |= es_buf_appendf(out, "{%s%s%s}", labels, labels[0] != '\0' && extra != NULL ? "," : "",
                            extra != NULL ? extra : "");
    r |= es_buf_append(out, " ", 1);
    r |= es_metrics_number(out, v);
    r |= es_buf_append(out, "\n", 1);
    return r ? -1 : 0;
}

static int histogram(es_buf_t *out, const entry_t *e)
{
    const es_metric__desc_t *d = e->desc;
    uint64_t cum = 0;
    int r = 0;
    es_buf_t le;
    es_buf_init(&le);
    for (unsigned k = 0; k <= d->nbuckets && r == 0; k++) {
        cum += e->buckets[k];
        le.len = 0;
        r |= es_buf_append(&le, "le=\"", 4);
        r |= k < d->nbuckets ? es_metrics_number(&le, d->bounds[k]) : es_buf_append(&le, "+Inf", 4);
        r |= es_buf_append(&le, "\"", 2); /* with the NUL */
        if (r == 0)
            r |= sample(out, d->name, "_bucket", e->labels, le.base, (double)cum);
    }
    es_buf_dispose(&le);
    r |= sample(out, d->name, "_sum", e->labels, NULL, e->value);
    r |= sample(out, d->name, "_count", e->labels, NULL, (double)e->count);
    return r ? -1 : 0;
}

int es_metrics_prometheus(es_buf_t *out)
{
    snapshot_t s;
    if (snapshot(&s) != 0)
        return -1;
    int r = 0;
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < s.n && r == 0; i++) {
        const entry_t *e = &s.entries[i];
        const es_metric__desc_t *d = e->desc;
        if (i == 0 || strcmp(s.entries[i - 1].desc->name, d->name) != 0) {
            if (d->help[0] != '\0') {
                r |= es_buf_appendf(out, "# HELP %s ", d->name);
                r |= help_text(out, d->help);
                r |= es_buf_append(out, "\n", 1);
            }
            r |= es_buf_appendf(out, "# TYPE %s %s\n", d->name, types[d->kind <= 2 ? d->kind : 0]);
        }
        r |= d->kind == ES_METRIC_HISTOGRAM ? histogram(out, e) : sample(out, d->name, "", e->labels, NULL, e->value);
    }
    r |= es_buf_appendf(out,
                        "# HELP envoy_swift_metrics_series_dropped_total Series not made: a worker's metrics "
                        "table was full.\n# TYPE envoy_swift_metrics_series_dropped_total counter\n"
                        "envoy_swift_metrics_series_dropped_total %llu\n",
                        (unsigned long long)s.dropped);
    snapshot_free(&s);
    return r ? -1 : 0;
}

int es_metrics_flat(es_buf_t *out)
{
    snapshot_t s;
    if (snapshot(&s) != 0)
        return -1;
    int r = 0;
    for (size_t i = 0; i < s.n && r == 0; i++) {
        const entry_t *e = &s.entries[i];
        if (e->desc->kind == ES_METRIC_HISTOGRAM) {
            r |= sample(out, e->desc->flat, ".count", e->labels, NULL, (double)e->count);
            r |= sample(out, e->desc->flat, ".sum", e->labels, NULL, e->value);
        } else {
            r |= sample(out, e->desc->flat, "", e->labels, NULL, e->value);
        }
    }
    r |= es_buf_appendf(out, "metrics.series_dropped %llu\n", (unsigned long long)s.dropped);
    snapshot_free(&s);
    return r ? -1 : 0;
}

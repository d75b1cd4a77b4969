#include "obs/metrics.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "obs/metrics_block.h"

/*
 * Families are this process's (defined at startup); series live in blocks (metrics_block.h). A block has one
 * writer, the thread that owns it: an add is a load and a store of relaxed atomics. Threads without a block
 * record in block 0 with compare-and-swap loops, and add series to it under the block's lock; so does the
 * supervisor when it folds a dead worker's block into block 0.
 */

const double es_metric_duration_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const unsigned es_metric_duration_nbuckets = sizeof(es_metric_duration_buckets) / sizeof(double);

#define LABEL_NAME_MAX 48

typedef struct {
    char name[ES_METRIC_NAME_MAX];
    char flat[ES_METRIC_NAME_MAX];
    char help[ES_METRIC_HELP_MAX];
    es_metric_kind_t kind;
    unsigned nlabels;
    char labels[ES_METRIC_MAX_LABELS][LABEL_NAME_MAX];
    unsigned nbuckets;
    double bounds[ES_METRIC_MAX_BUCKETS];
} family_t;

static family_t families[ES_METRIC_FAMILIES];
static unsigned nfamilies;
static _Atomic unsigned epoch = 1; /* bumped by es_metric_reset_families: thread caches start over */

typedef struct {
    _Alignas(64) _Atomic uint64_t seq;
} shared_head_t;

static es_metric__block_t local_blocks[ES_METRIC_BLOCKS];
static es_metric__block_t *blocks = local_blocks;
static unsigned nblocks = ES_METRIC_BLOCKS;
static shared_head_t *shared;             /* NULL: in-process blocks */
static _Atomic unsigned blocks_used = 1;
static __thread es_metric__block_t *own;

/* Per thread: the block entry of each family of this process, in the block the thread records in. */
static __thread struct {
    es_metric__block_t *block;
    unsigned epoch;
    uint16_t desc[ES_METRIC_FAMILIES];    /* entry + 1; 0 = not looked up yet */
} cache;

static inline es_metric__block_t *current(void)
{
    return own != NULL ? own : &blocks[0];
}

/* ---- defining families ---- */

static size_t sanitise(char *dst, size_t cap, const char *s, size_t len, int colon)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
                 (i > 0 && c >= '0' && c <= '9');
        dst[n++] = ok ? c : '_';
    }
    dst[n] = '\0';
    return n;
}

int es_metrics_sanitise(es_buf_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        char o = ok ? c : '_';
        if (es_buf_append(out, &o, 1) != 0)
            return -1;
    }
    return 0;
}

static const char *kind_name(es_metric_kind_t k)
{
    return k == ES_METRIC_COUNTER ? "counter" : k == ES_METRIC_GAUGE ? "gauge" : "histogram";
}

static int same_family(const family_t *a, const family_t *b)
{
    if (a->kind != b->kind || a->nlabels != b->nlabels || a->nbuckets != b->nbuckets)
        return 0;
    for (unsigned i = 0; i < a->nlabels; i++)
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return 0;
    for (unsigned i = 0; i < a->nbuckets; i++)
        if (a->bounds[i] != b->bounds[i])
            return 0;
    return 1;
}

/* The length of the family's name without a counter's "_total". */
static size_t base_len(const family_t *f)
{
    size_t n = strlen(f->name);
    return f->kind == ES_METRIC_COUNTER ? n - 6 : n;
}

static void describe(const family_t *f, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "a %s with labels (", kind_name(f->kind));
    for (unsigned i = 0; i < f->nlabels && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", f->labels[i]);
    if (n < len)
        n += (size_t)snprintf(out + n, len - n, ")");
    if (f->kind == ES_METRIC_HISTOGRAM && n < len)
        snprintf(out + n, len - n, " and %u buckets", f->nbuckets);
}

int es_metric_define(const es_metric_def_t *def, char *err, size_t errlen)
{
    family_t f;
    memset(&f, 0, sizeof(f));
    const char *name = def->name != NULL ? def->name : "";
    size_t nlen = strlen(name);
    if (nlen == 0) {
        snprintf(err, errlen, "a metric needs a name");
        return -1;
    }
    if (nlen + sizeof("_total") > ES_METRIC_NAME_MAX) {
        snprintf(err, errlen, "metric \"%s\": the name is longer than %d characters", name,
                 ES_METRIC_NAME_MAX - (int)sizeof("_total"));
        return -1;
    }
    if (def->kind != ES_METRIC_COUNTER && def->kind != ES_METRIC_GAUGE && def->kind != ES_METRIC_HISTOGRAM) {
        snprintf(err, errlen, "metric \"%s\": unknown kind %d", name, (int)def->kind);
        return -1;
    }
    f.kind = def->kind;
    size_t n = sanitise(f.name, sizeof(f.name), name, nlen, 1);
    snprintf(f.flat, sizeof(f.flat), "%s", def->flat != NULL && def->flat[0] != '\0' ? def->flat : f.name);
    /* Counters end in _total (the text format's convention: client libraries add it too). */
    if (f.kind == ES_METRIC_COUNTER && (n < 6 || strcmp(f.name + n - 6, "_total") != 0))
        memcpy(f.name + n, "_total", sizeof("_total"));
    if (def->help != NULL) {
        /* One line: a newline ends it. */
        snprintf(f.help, sizeof(f.help), "%.*s", (int)strcspn(def->help, "\n"), def->help);
    }
    if (def->nlabels > ES_METRIC_MAX_LABELS) {
        snprintf(err, errlen, "metric \"%s\": %u labels, at most %d", f.name, def->nlabels, ES_METRIC_MAX_LABELS);
        return -1;
    }
    f.nlabels = def->nlabels;
    for (unsigned i = 0; i < f.nlabels; i++) {
        const char *l = def->labels != NULL && def->labels[i] != NULL ? def->labels[i] : "";
        size_t ll = strlen(l);
        if (ll == 0 || ll >= LABEL_NAME_MAX) {
            snprintf(err, errlen, "metric \"%s\": label %u: a name of 1 to %d characters is needed", f.name, i,
                     LABEL_NAME_MAX - 1);
            return -1;
        }
        sanitise(f.labels[i], LABEL_NAME_MAX, l, ll, 0);
        if (f.kind == ES_METRIC_HISTOGRAM && strcmp(f.labels[i], "le") == 0) {
            snprintf(err, errlen, "metric \"%s\": a histogram cannot have a label \"le\"", f.name);
            return -1;
        }
        for (unsigned j = 0; j < i; j++)
            if (strcmp(f.labels[j], f.labels[i]) == 0) {
                snprintf(err, errlen, "metric \"%s\": label \"%s\" twice", f.name, f.labels[i]);
                return -1;
            }
    }
    if (f.kind == ES_METRIC_HISTOGRAM) {
        const double *b = def->buckets != NULL ? def->buckets : es_metric_duration_buckets;
        unsigned nb = def->buckets != NULL ? def->nbuckets : es_metric_duration_nbuckets;
        if (nb == 0 || nb > ES_METRIC_MAX_BUCKETS) {
            snprintf(err, errlen, "metric \"%s\": %u buckets, 1 to %d are allowed", f.name, nb,
                     ES_METRIC_MAX_BUCKETS);
            return -1;
        }
        for (unsigned i = 0; i < nb; i++) {
            if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1]))) {
                snprintf(err, errlen, "metric \"%s\": bucket bounds must be finite and ascending", f.name);
                return -1;
            }
            f.bounds[i] = b[i];
        }
        f.nbuckets = nb;
    }
    for (unsigned i = 0; i < nfamilies; i++) {
        /* The same name, or the same family to a parser (which reads counter "x_total" as family "x"). */
        if (strcmp(families[i].name, f.name) != 0 && base_len(&families[i]) != base_len(&f))
            continue;
        if (strcmp(families[i].name, f.name) != 0 && strncmp(families[i].name, f.name, base_len(&f)) != 0)
            continue;
        if (same_family(&families[i], &f))
            return (int)i;
        char was[256];
        describe(&families[i], was, sizeof(was));
        snprintf(err, errlen, "metric \"%s\" is already defined as %s", f.name, was);
        return -1;
    }
    if (nfamilies >= ES_METRIC_FAMILIES) {
        snprintf(err, errlen, "metric \"%s\": too many metric families (at most %d)", f.name, ES_METRIC_FAMILIES);
        return -1;
    }
    families[nfamilies] = f;
    return (int)nfamilies++;
}

static void zero_block(es_metric__block_t *b)
{
    uint32_t nd = atomic_load_explicit(&b->ndesc, memory_order_relaxed);
    uint32_t ns = atomic_load_explicit(&b->nseries, memory_order_relaxed);
    atomic_store_explicit(&b->ndesc, 0, memory_order_relaxed);
    atomic_store_explicit(&b->nseries, 0, memory_order_relaxed);
    atomic_store_explicit(&b->dropped, 0, memory_order_relaxed);
    memset(b->index, 0, sizeof(b->index));
    memset(b->desc, 0, (nd < ES_METRIC_FAMILIES ? nd : ES_METRIC_FAMILIES) * sizeof(b->desc[0]));
    memset(b->slots, 0, (ns < ES_METRIC_SERIES ? ns : ES_METRIC_SERIES) * sizeof(b->slots[0]));
}

void es_metric_reset_families(void)
{
    nfamilies = 0;
    atomic_fetch_add_explicit(&epoch, 1, memory_order_relaxed);
    /* In one process nothing else reads the blocks: they start over with the families (tests). Shared blocks
     * are left to the supervisor's retire. */
    if (shared == NULL)
        for (unsigned i = 0; i < nblocks; i++)
            zero_block(&blocks[i]);
}

/* ---- finding and making series ---- */

static void lock(es_metric__block_t *b)
{
    while (atomic_exchange_explicit(&b->lock, 1, memory_order_acquire) != 0)
        sched_yield();
}

static void unlock(es_metric__block_t *b)
{
    atomic_store_explicit(&b->lock, 0, memory_order_release);
}

static uint32_t hash_key(uint32_t desc, const char *labels, size_t len)
{
    uint32_t h = 2166136261u ^ desc;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)labels[i]) * 16777619u;
    return h;
}

/* The entry of family `d` in block `b` (by name), made when missing; -1 when the table is full or the block
 * has that name as another family. The caller is the block's writer (or holds its lock). */
static int block_desc(es_metric__block_t *b, const es_metric__desc_t *d)
{
    uint32_t n = atomic_load_explicit(&b->ndesc, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        const es_metric__desc_t *e = &b->desc[i];
        if (strcmp(e->name, d->name) != 0)
            continue;
        if (e->kind != d->kind || e->nbuckets != d->nbuckets ||
            memcmp(e->bounds, d->bounds, d->nbuckets * sizeof(double)) != 0)
            return -1;
        return (int)i;
    }
    if (n >= ES_METRIC_FAMILIES)
        return -1;
    b->desc[n] = *d;
    atomic_store_explicit(&b->ndesc, n + 1, memory_order_release);
    return (int)n;
}

/* The slot of (desc, labels) in `b`, made when missing; -1 when the table is full. Writer or lock held. */
static int32_t block_series(es_metric__block_t *b, uint32_t desc, const char *labels, size_t len)
{
    uint32_t h = hash_key(desc, labels, len);
    uint32_t i = h & (ES_METRIC_INDEX - 1);
    for (;; i = (i + 1) & (ES_METRIC_INDEX - 1)) {
        uint16_t e = b->index[i];
        if (e == 0)
            break;
        const es_metric__slot_t *s = &b->slots[e - 1];
        if (s->hash == h && s->desc == desc && strncmp(s->labels, labels, len) == 0 && s->labels[len] == '\0')
            return e - 1;
    }
    uint32_t n = atomic_load_explicit(&b->nseries, memory_order_relaxed);
    if (n >= ES_METRIC_SERIES)
        return -1;
    es_metric__slot_t *s = &b->slots[n];
    s->desc = desc;
    s->hash = h;
    memcpy(s->labels, labels, len);
    s->labels[len] = '\0';
    b->index[i] = (uint16_t)(n + 1);
    atomic_store_explicit(&b->nseries, n + 1, memory_order_release);
    return (int32_t)n;
}

static void to_desc(const family_t *f, es_metric__desc_t *d)
{
    memset(d, 0, sizeof(*d));
    memcpy(d->name, f->name, sizeof(d->name));
    memcpy(d->flat, f->flat, sizeof(d->flat));
    memcpy(d->help, f->help, sizeof(d->help));
    d->kind = f->kind;
    d->nbuckets = f->nbuckets;
    memcpy(d->bounds, f->bounds, sizeof(d->bounds));
}

/* `k="v",...` with the values escaped (\\, \", \n); the length, or -1 when it does not fit. */
static int render_labels(char *out, size_t cap, const family_t *f, const char *const *values, const size_t *lens)
{
    size_t n = 0;
    for (unsigned i = 0; i < f->nlabels; i++) {
        size_t ln = strlen(f->labels[i]);
        if (n + ln + 4 >= cap)
            return -1;
        if (i > 0)
            out[n++] = ',';
        memcpy(out + n, f->labels[i], ln);
        n += ln;
        out[n++] = '=';
        out[n++] = '"';
        const char *v = values[i] != NULL ? values[i] : "";
        size_t vl = lens != NULL ? lens[i] : strlen(v);
        for (size_t j = 0; j < vl && v[j] != '\0'; j++) { /* a NUL ends a value: they are text */
            char c = v[j];
            if (n + 3 >= cap)
                return -1;
            if (c == '\\' || c == '"') {
                out[n++] = '\\';
                out[n++] = c;
            } else if (c == '\n') {
                out[n++] = '\\';
                out[n++] = 'n';
            } else {
                out[n++] = c;
            }
        }
        if (n + 2 >= cap)
            return -1;
        out[n++] = '"';
    }
    out[n] = '\0';
    return (int)n;
}

/*
 * A filter looks its series up on every record, mostly with the label values of a recent one: each thread keeps
 * the last series of each (family, values) hash slot with the raw values, so a hit is a hash and a memcmp instead
 * of rendering, escaping and hashing the label text.
 */
#define HIT_SLOTS 256
#define HIT_KEY 56
typedef struct {
    es_metric__block_t *block;
    unsigned epoch;
    int32_t family;
    int32_t series;
    uint32_t len;
    char key[HIT_KEY];     /* the values, each followed by '\0' */
} hit_t;
static __thread hit_t hits[HIT_SLOTS];

static int32_t series_slow(int family, const char *const *values, const size_t *lens, unsigned nvalues);

int32_t es_metric_series(int family, const char *const *values, const size_t *lens, unsigned nvalues)
{
    if (family < 0 || (unsigned)family >= nfamilies || families[family].nlabels != nvalues)
        return -1;
    char key[HIT_KEY];
    size_t n = 0;
    uint32_t h = 2166136261u ^ (uint32_t)family;
    for (unsigned i = 0; i < nvalues; i++) {
        const char *v = values != NULL && values[i] != NULL ? values[i] : "";
        size_t vl = lens != NULL ? lens[i] : strlen(v);
        if (n + vl + 1 > HIT_KEY)
            return series_slow(family, values, lens, nvalues);
        for (size_t k = 0; k < vl; k++)
            h = (h ^ (unsigned char)v[k]) * 16777619u;
        memcpy(key + n, v, vl);
        n += vl;
        key[n++] = '\0';
        h = h * 16777619u;
    }
    hit_t *e = &hits[(h ^ (h >> 16)) & (HIT_SLOTS - 1)];
    es_metric__block_t *b = current();
    unsigned ep = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (e->block == b && e->epoch == ep && e->family == family && e->len == n && memcmp(e->key, key, n) == 0)
        return e->series;
    int32_t s = series_slow(family, values, lens, nvalues);
    if (s >= 0) {
        e->block = b;
        e->epoch = ep;
        e->family = family;
        e->series = s;
        e->len = (uint32_t)n;
        memcpy(e->key, key, n);
    }
    return s;
}

static int32_t series_slow(int family, const char *const *values, const size_t *lens, unsigned nvalues)
{
    const family_t *f = &families[family];
    es_metric__block_t *b = current();
    char labels[ES_METRIC_LABELS_MAX];
    int len = render_labels(labels, sizeof(labels), f, values, lens);
    if (len < 0) {
        atomic_fetch_add_explicit(&b->dropped, 1, memory_order_relaxed);
        return -1;
    }
    unsigned ep = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (cache.block != b || cache.epoch != ep) {
        memset(cache.desc, 0, sizeof(cache.desc));
        cache.block = b;
        cache.epoch = ep;
    }
    int shared_writers = own == NULL;
    if (shared_writers)
        lock(b);
    int d = cache.desc[family] - 1;
    if (d < 0) {
        es_metric__desc_t desc;
        to_desc(f, &desc);
        d = block_desc(b, &desc);
        if (d >= 0)
            cache.desc[family] = (uint16_t)(d + 1);
    }
    int32_t s = d < 0 ? -1 : block_series(b, (uint32_t)d, labels, (size_t)len);
    if (shared_writers)
        unlock(b);
    if (s < 0)
        atomic_fetch_add_explicit(&b->dropped, 1, memory_order_relaxed);
    return s;
}

/* ---- recording ---- */

static inline es_metric__slot_t *slot_of(es_metric__block_t *b, int32_t series)
{
    if ((uint32_t)series >= atomic_load_explicit(&b->nseries, memory_order_relaxed))
        return NULL;
    return &b->slots[series];
}

static inline void add_bits(_Atomic uint64_t *p, double v, int single_writer)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    if (single_writer) {
        atomic_store_explicit(p, es_metric__bits(es_metric__d(old) + v), memory_order_relaxed);
        return;
    }
    while (!atomic_compare_exchange_weak_explicit(p, &old, es_metric__bits(es_metric__d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static inline void add_u64(_Atomic uint64_t *p, uint64_t v, int single_writer)
{
    if (single_writer)
        atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(p, v, memory_order_relaxed);
}

void es_metric_add(int32_t series, double v)
{
    es_metric__block_t *b = current();
    es_metric__slot_t *s = slot_of(b, series);
    if (s != NULL)
        add_bits(&s->value, v, own != NULL);
}

void es_metric_set(int32_t series, double v)
{
    es_metric__slot_t *s = slot_of(current(), series);
    if (s != NULL)
        atomic_store_explicit(&s->value, es_metric__bits(v), memory_order_relaxed);
}

void es_metric_observe(int32_t series, double v)
{
    es_metric__block_t *b = current();
    es_metric__slot_t *s = slot_of(b, series);
    if (s == NULL || v != v) /* NaN: in no bucket */
        return;
    const es_metric__desc_t *d = &b->desc[s->desc];
    unsigned i = 0, n = d->nbuckets;
    while (i < n && v > d->bounds[i]) /* `le`: a value equal to a bound is in that bound's bucket */
        i++;
    int single = own != NULL;
    add_u64(&s->buckets[i], 1, single);
    add_u64(&s->count, 1, single);
    add_bits(&s->value, v, single);
}

/* ---- blocks ---- */

size_t es_metrics_shared_size(unsigned n)
{
    return sizeof(shared_head_t) + (size_t)n * sizeof(es_metric__block_t);
}

void es_metrics_attach(void *mem, unsigned n)
{
    shared = mem;
    blocks = (es_metric__block_t *)((char *)mem + sizeof(shared_head_t));
    nblocks = n;
    own = NULL;
}

void es_metrics_own_block(unsigned index)
{
    own = index > 0 && index < nblocks ? &blocks[index] : NULL;
}

void es_metrics_thread_init(void)
{
    if (own != NULL || shared != NULL)
        return; /* shared blocks are handed out by the supervisor, one per process */
    unsigned i = atomic_fetch_add_explicit(&blocks_used, 1, memory_order_relaxed);
    if (i < nblocks)
        own = &blocks[i];
}

void es_metrics_retire(unsigned index)
{
    if (shared == NULL || index == 0 || index >= nblocks)
        return;
    es_metric__block_t *b = &blocks[index], *total = &blocks[0];
    atomic_fetch_add_explicit(&shared->seq, 1, memory_order_acq_rel); /* odd: readers retry */
    lock(total);
    uint32_t ns = atomic_load_explicit(&b->nseries, memory_order_acquire);
    for (uint32_t i = 0; i < ns && i < ES_METRIC_SERIES; i++) {
        const es_metric__slot_t *s = &b->slots[i];
        const es_metric__desc_t *d = &b->desc[s->desc];
        if (d->kind == ES_METRIC_GAUGE)
            continue; /* a dead worker's "now" is over */
        int td = block_desc(total, d);
        int32_t ts = td < 0 ? -1 : block_series(total, (uint32_t)td, s->labels, strlen(s->labels));
        if (ts < 0) {
            atomic_fetch_add_explicit(&total->dropped, 1, memory_order_relaxed);
            continue;
        }
        es_metric__slot_t *t = &total->slots[ts];
        add_bits(&t->value, es_metric__d(atomic_load_explicit(&s->value, memory_order_relaxed)), 0);
        add_u64(&t->count, atomic_load_explicit(&s->count, memory_order_relaxed), 0);
        for (unsigned k = 0; k <= d->nbuckets; k++)
            add_u64(&t->buckets[k], atomic_load_explicit(&s->buckets[k], memory_order_relaxed), 0);
    }
    add_u64(&total->dropped, atomic_load_explicit(&b->dropped, memory_order_relaxed), 0);
    unlock(total);
    zero_block(b);
    atomic_fetch_add_explicit(&shared->seq, 1, memory_order_acq_rel);
}

void es_metric__blocks(es_metric__blocks_t *out)
{
    out->blocks = blocks;
    out->nblocks = nblocks;
    out->seq = shared != NULL ? &shared->seq : NULL;
}

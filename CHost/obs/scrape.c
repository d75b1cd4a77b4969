#include "obs/scrape.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/stats.h"
#include "obs/metrics.h"

/* envoy_swift_ + the flat name with '.' (anything a metric name cannot hold) as '_', + _total for a counter. */
static void stat_name(char *out, size_t len, es_stat_t which)
{
    snprintf(out, len, "envoy_swift_%s%s", es_stats_name(which), which < ES_STAT_GAUGES ? "_total" : "");
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            *p = '_';
}

static int filter_table(es_buf_t *out, const char *name, const char *type, int crashes)
{
    int r = es_buf_appendf(out, "# TYPE %s %s\n", name, type);
    const es_stat_filter_t *f;
    for (unsigned i = 0; (f = es_stats_filter_at(i)) != NULL; i++) {
        r |= es_buf_appendf(out, "%s{filter=\"", name);
        r |= es_metrics_label_value(out, f->name, strnlen(f->name, sizeof(f->name)));
        r |= es_buf_appendf(out, "\"} %llu\n",
                            (unsigned long long)atomic_load(crashes ? &f->crashes : &f->quarantined));
    }
    return r ? -1 : 0;
}

int es_scrape_prometheus(es_buf_t *out)
{
    int r = 0;
    for (int i = 0; i < ES_STAT_COUNT; i++) {
        char name[128];
        stat_name(name, sizeof(name), (es_stat_t)i);
        uint64_t v = es_stats_get((es_stat_t)i);
        if (i < ES_STAT_GAUGES)
            r |= es_buf_appendf(out, "# TYPE %s counter\n%s %llu\n", name, name, (unsigned long long)v);
        else /* a gauge counts down with wrapping adds: read as signed */
            r |= es_buf_appendf(out, "# TYPE %s gauge\n%s %lld\n", name, name, (long long)(int64_t)v);
    }
    if (es_stats_filter_at(0) != NULL) {
        r |= filter_table(out, "envoy_swift_filter_crashes_total", "counter", 1);
        r |= filter_table(out, "envoy_swift_filter_quarantined", "gauge", 0);
    }
    if (r)
        return -1;
    return es_metrics_prometheus(out);
}

int es_scrape_flat(es_buf_t *out)
{
    if (es_stats_format_buf(out) != 0)
        return -1;
    return es_metrics_flat(out);
}

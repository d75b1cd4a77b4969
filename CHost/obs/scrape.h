/*
 * What a `stats: {}` route answers: every plain counter and gauge of core/stats.h and every labelled metric of
 * obs/metrics.h, summed over the workers, in one of two formats.
 */
#ifndef ES_SCRAPE_H
#define ES_SCRAPE_H

#include "core/buf.h"

/* The Prometheus text format 0.0.4 (Content-Type: text/plain; version=0.0.4): the plain counters as
 * envoy_swift_<name, '.' -> '_'>_total, the gauges as envoy_swift_<name>, the per-filter table as
 * envoy_swift_filter_crashes_total{filter="x"} and envoy_swift_filter_quarantined{filter="x"}, then the labelled
 * metrics. Appends to out; returns 0 or -1 (out of memory). */
int es_scrape_prometheus(es_buf_t *out);
/* The flat list: "name value" lines of core/stats.h (es_stats_format_buf), then the labelled metrics'
 * "flat{labels} value" lines. Returns 0 or -1. */
int es_scrape_flat(es_buf_t *out);

#endif

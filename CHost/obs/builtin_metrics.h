/*
 * The host's own labelled metrics, recorded by the stream and upstream code:
 *   envoy_swift_downstream_rq_total{listener,route,code_class}        counter
 *   envoy_swift_downstream_rq_duration_seconds{listener,route}        histogram
 *   envoy_swift_upstream_rq_total{cluster,code_class}                 counter
 *   envoy_swift_upstream_rq_first_byte_seconds{cluster}               histogram
 *   envoy_swift_filter_hook_duration_seconds{filter}                  histogram
 * Every series is made at init in the calling thread's block (so each starts at 0 in a scrape) and kept by id:
 * a record is an index into an array and an add, with no lookup, lock or allocation. The record functions do
 * nothing in a thread that did not call es_builtin_metrics_init.
 */
#ifndef ES_BUILTIN_METRICS_H
#define ES_BUILTIN_METRICS_H

#include <stddef.h>

#include "core/config.h"

/* Defines the families and makes every series for `cfg` in this thread's block: call it in a worker after
 * es_metrics_own_block (or after es_metrics_thread_init in one process). Returns 0, or -1 with one line in
 * err. A series that did not fit in the block is not recorded (and counted as dropped). */
int es_builtin_metrics_init(const es_config_t *cfg, char *err, size_t errlen);
/* Frees what init allocated (the series stay in the block). */
void es_builtin_metrics_free(void);

/* A downstream request ended: `status` the response's (outside 100..599: no code_class, only the duration),
 * `route` NULL when none matched (route=""). The route label is the route's name, else "route<index>". */
void es_builtin_request_done(size_t listener, const es_route_config_t *route, int status, double seconds);
/* The first byte of an upstream response arrived, `seconds` after the request was sent. */
void es_builtin_upstream_first_byte(const es_cluster_config_t *c, double seconds);
/* An upstream response's status. */
void es_builtin_upstream_rq(const es_cluster_config_t *c, int status);
/* A request spent `seconds` in the hooks of filter `filter_id` (es_filter_entry_t.id). */
void es_builtin_filter_time(unsigned filter_id, double seconds);

#endif

/*
 * The proxy's own labelled metrics (obs/metrics.h): requests and their duration per listener and route, the
 * upstream's time to first byte and responses per cluster, and the time each filter's hooks take per request.
 * Every series is looked up once when the worker starts; recording is an index and a few adds.
 */
#ifndef ES_BUILTIN_METRICS_H
#define ES_BUILTIN_METRICS_H

#include <stddef.h>

#include "core/config.h"

/* Defines the families and resolves every series in this worker's block. Returns 0, or -1 with one line in err. */
int es_builtin_metrics_init(const es_config_t *cfg, char *err, size_t errlen);
void es_builtin_metrics_free(void);

/* A request ended: envoy_swift_downstream_rq_total{listener,route,code_class} and
 * envoy_swift_downstream_rq_duration_seconds{listener,route}. `route` may be NULL. */
void es_builtin_request_done(size_t listener, const es_route_config_t *route, int status, double seconds);
/* envoy_swift_upstream_rq_first_byte_seconds{cluster} */
void es_builtin_upstream_first_byte(const es_cluster_config_t *c, double seconds);
/* envoy_swift_upstream_rq_total{cluster,code_class} */
void es_builtin_upstream_rq(const es_cluster_config_t *c, int status);
/* envoy_swift_filter_hook_duration_seconds{filter}: the time one request spent in the filter's hooks. */
void es_builtin_filter_time(unsigned filter_id, double seconds);

#endif

/*
 * The host callbacks of ABI 4 (filter_host.c puts them in the table): what a filter reads of its exchange (stream
 * info, the route and upstream attributes), the request state its library keeps per stream, values it names for
 * the access log, and its own metrics.
 */
#ifndef ES_HOST_OBSERVE_H
#define ES_HOST_OBSERVE_H

#include "envoy_swift_abi.h"
#include "filters/filter_chain.h"

/* The attributes of ABI 4 (route name, cluster, upstream host, response flags), for attribute_get. */
int es_host_attribute_obs(es_filters_t *f, envoy_swift_attribute_t attr, envoy_swift_bytes_t *out);
/* The stream behind a handle where it may be read: in a hook, while one is RUNNING, in on_stream_complete. */
es_filters_t *es_host_lookup_read(envoy_swift_stream_t h);

int es_host_stream_info(envoy_swift_stream_t s, envoy_swift_stream_info_t *out);
int es_host_state_get(envoy_swift_stream_t s, void **out);
int es_host_state_set(envoy_swift_stream_t s, void *state);
int es_host_state_log(envoy_swift_stream_t s, envoy_swift_bytes_t name, envoy_swift_bytes_t value);
int es_host_metric_define(envoy_swift_bytes_t filter, envoy_swift_metric_kind_t kind, envoy_swift_bytes_t name,
                          const envoy_swift_bytes_t *label_names, size_t nlabels, const double *buckets,
                          size_t nbuckets, uint32_t *id);
int es_host_metric_record(uint32_t id, const envoy_swift_bytes_t *values, size_t nvalues, double value);
int es_host_metric_set(uint32_t id, const envoy_swift_bytes_t *values, size_t nvalues, double value);

#endif

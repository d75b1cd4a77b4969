#include "filters/host_observe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/config.h"
#include "filters/filter_lib.h"
#include "filters/handles.h"
#include "obs/metrics.h"
#include "obs/stream_info.h"

es_filters_t *es_host_lookup_read(envoy_swift_stream_t h)
{
    es_filters_t *f = es_handles_lookup(h);
    return f != NULL && (f->in_hook || f->run.active || f->completing) ? f : NULL;
}

static int bytes_out(envoy_swift_bytes_t *out, const char *s)
{
    *out = (envoy_swift_bytes_t){s, strlen(s)};
    return ENVOY_SWIFT_OK;
}

int es_host_attribute_obs(es_filters_t *f, envoy_swift_attribute_t attr, envoy_swift_bytes_t *out)
{
    const es_filters_owner_t *o = f->owner;
    const es_route_config_t *r = o->route;
    switch (attr) {
    case ENVOY_SWIFT_ATTR_ROUTE_NAME:
        if (r == NULL)
            return ENVOY_SWIFT_ERR_NOT_FOUND;
        return bytes_out(out, r->name != NULL ? r->name : "");
    case ENVOY_SWIFT_ATTR_CLUSTER:
        if (r == NULL || r->cluster == NULL)
            return ENVOY_SWIFT_ERR_NOT_FOUND;
        return bytes_out(out, r->cluster->name);
    case ENVOY_SWIFT_ATTR_UPSTREAM_HOST: {
        const es_endpoint_config_t *ep = o->info.endpoint;
        if (ep == NULL)
            return ENVOY_SWIFT_ERR_NOT_FOUND;
        return bytes_out(out, ep->hostport);
    }
    case ENVOY_SWIFT_ATTR_RESPONSE_FLAGS:
        *out = (envoy_swift_bytes_t){f->attr_scratch, es_response_flags_format(o->info.flags, f->attr_scratch,
                                                                              sizeof(f->attr_scratch))};
        return ENVOY_SWIFT_OK;
    default:
        return ENVOY_SWIFT_ERR_NOT_FOUND;
    }
}

int es_host_stream_info(envoy_swift_stream_t h, envoy_swift_stream_info_t *out)
{
    es_filters_t *f = es_host_lookup_read(h);
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    if (out == NULL)
        return ENVOY_SWIFT_ERR_INVALID;
    const es_stream_info_t *in = &f->owner->info;
    uint64_t end = in->end_ns != 0 ? in->end_ns : uv_hrtime();
    uint64_t start_us = in->start_unix_us;
    if (start_us == 0) {
        /* Not computed yet (still running, or no access log asked for it): now less the time it has run. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        start_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u - (end - in->start_ns) / 1000u;
    }
    *out = (envoy_swift_stream_info_t){
        .start_unix_us = start_us,
        .duration_us = (end - in->start_ns) / 1000u,
        .upstream_first_byte_us = in->upstream_first_ns != 0 ? (in->upstream_first_ns - in->start_ns) / 1000u : UINT64_MAX,
        .request_body_bytes = in->bytes_received,
        .response_body_bytes = in->bytes_sent,
        .response_flags = in->flags,
        .response_code = in->response_code,
    };
    return ENVOY_SWIFT_OK;
}

/* ---- request state: one pointer per stream and library ------------------------------------ */

int es_host_state_get(envoy_swift_stream_t h, void **out)
{
    es_filters_t *f = es_host_lookup_read(h);
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    const es_filter_lib_t *lib = es_filters_current_lib(f);
    *out = NULL;
    for (int k = 0; k < ES_STATE_LIBS && f->state[k].lib != NULL; k++)
        if (f->state[k].lib == lib) {
            *out = f->state[k].ptr;
            break;
        }
    return ENVOY_SWIFT_OK;
}

int es_host_state_set(envoy_swift_stream_t h, void *state)
{
    es_filters_t *f = es_host_lookup_read(h);
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    const es_filter_lib_t *lib = es_filters_current_lib(f);
    for (int k = 0; k < ES_STATE_LIBS; k++) {
        if (f->state[k].lib == lib || f->state[k].lib == NULL) {
            if (f->state[k].lib == lib && f->state[k].ptr != NULL && f->state[k].ptr != state)
                lib->stream_state_free(f->state[k].ptr); /* replaced: the old one is the library's to free */
            f->state[k].lib = lib;
            f->state[k].ptr = state;
            return ENVOY_SWIFT_OK;
        }
    }
    return ENVOY_SWIFT_ERR_NOMEM;
}

int es_host_state_log(envoy_swift_stream_t h, envoy_swift_bytes_t name, envoy_swift_bytes_t value)
{
    es_filters_t *f = es_host_lookup_read(h);
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    if (name.length == 0 || name.length > 64 || name.ptr == NULL || value.length > 1024 ||
        (value.length > 0 && value.ptr == NULL))
        return ENVOY_SWIFT_ERR_INVALID;
    es_filters_owner_t *o = f->owner;
    if (o->log_state == NULL) {
        if ((o->log_state = malloc(sizeof(*o->log_state))) == NULL)
            return ENVOY_SWIFT_ERR_NOMEM;
        es_msg_init(o->log_state);
        es_msg_headers_done(o->log_state);
    }
    int i = es_msg_find(o->log_state, name.ptr, name.length, 0);
    if (i >= 0)
        es_msg_remove_at(o->log_state, (uint32_t)i);
    if (es_msg_add(o->log_state, 0, name.ptr, name.length, value.ptr != NULL ? value.ptr : "", value.length) != 0)
        return ENVOY_SWIFT_ERR_NOMEM;
    return ENVOY_SWIFT_OK;
}

/* ---- a filter's metrics ------------------------------------------------------------------- */

/* What the host checks a record against, per family a filter defined. */
static struct {
    uint8_t kind;
    uint8_t nlabels;
    uint8_t filter;   /* defined by a filter (1), not one of the host's own families (0) */
} families[ES_METRIC_FAMILIES];

static int name_ok(envoy_swift_bytes_t n)
{
    if (n.length == 0 || n.length > 64 || n.ptr == NULL)
        return 0;
    for (size_t i = 0; i < n.length; i++) {
        char c = n.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

int es_host_metric_define(envoy_swift_bytes_t filter, envoy_swift_metric_kind_t kind, envoy_swift_bytes_t name,
                          const envoy_swift_bytes_t *label_names, size_t nlabels, const double *buckets,
                          size_t nbuckets, uint32_t *id)
{
    if (!es_filters_in_setup() || id == NULL || (unsigned)kind > ENVOY_SWIFT_METRIC_HISTOGRAM || !name_ok(name) ||
        filter.length == 0 || filter.length > 64 || filter.ptr == NULL || nlabels > ES_METRIC_MAX_LABELS ||
        (nlabels > 0 && label_names == NULL) || nbuckets > ES_METRIC_MAX_BUCKETS || (nbuckets > 0 && buckets == NULL))
        return ENVOY_SWIFT_ERR_INVALID;
    char labels[ES_METRIC_MAX_LABELS][72];
    const char *lp[ES_METRIC_MAX_LABELS];
    for (size_t i = 0; i < nlabels; i++) {
        if (!name_ok(label_names[i]))
            return ENVOY_SWIFT_ERR_INVALID;
        memcpy(labels[i], label_names[i].ptr, label_names[i].length);
        labels[i][label_names[i].length] = '\0';
        lp[i] = labels[i];
    }
    for (size_t i = 0; i < nbuckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
            return ENVOY_SWIFT_ERR_INVALID;
    char prom[200], flat[200], err[200];
    snprintf(prom, sizeof(prom), "envoy_swift_filter_%.*s_%.*s", (int)filter.length, filter.ptr, (int)name.length,
             name.ptr);
    snprintf(flat, sizeof(flat), "filter.%.*s.%.*s", (int)filter.length, filter.ptr, (int)name.length, name.ptr);
    es_metric_def_t def = {
        .name = prom,
        .flat = flat,
        .help = NULL,
        .kind = kind == ENVOY_SWIFT_METRIC_COUNTER ? ES_METRIC_COUNTER
                : kind == ENVOY_SWIFT_METRIC_GAUGE ? ES_METRIC_GAUGE
                                                   : ES_METRIC_HISTOGRAM,
        .labels = lp,
        .nlabels = (unsigned)nlabels,
        .buckets = nbuckets > 0 ? buckets : NULL,
        .nbuckets = (unsigned)nbuckets,
    };
    int fam = es_metric_define(&def, err, sizeof(err));
    if (fam < 0 || fam >= ES_METRIC_FAMILIES)
        return ENVOY_SWIFT_ERR_INVALID;
    families[fam].kind = (uint8_t)kind;
    families[fam].nlabels = (uint8_t)nlabels;
    families[fam].filter = 1;
    *id = (uint32_t)fam;
    return ENVOY_SWIFT_OK;
}

/* The series a record goes to, in this worker's block: -1 with *err set when it cannot. */
static int32_t series_of(uint32_t id, const envoy_swift_bytes_t *values, size_t nvalues, int *err)
{
    if (id >= ES_METRIC_FAMILIES || !families[id].filter || nvalues != families[id].nlabels ||
        (nvalues > 0 && values == NULL)) {
        *err = ENVOY_SWIFT_ERR_INVALID;
        return -1;
    }
    const char *v[ES_METRIC_MAX_LABELS];
    size_t len[ES_METRIC_MAX_LABELS];
    for (size_t i = 0; i < nvalues; i++) {
        if (values[i].length > 0 && values[i].ptr == NULL) {
            *err = ENVOY_SWIFT_ERR_INVALID;
            return -1;
        }
        v[i] = values[i].ptr != NULL ? values[i].ptr : "";
        len[i] = values[i].length;
    }
    int32_t s = es_metric_series((int)id, v, len, (unsigned)nvalues);
    *err = s < 0 ? ENVOY_SWIFT_ERR_NOMEM : ENVOY_SWIFT_OK;
    return s;
}

int es_host_metric_record(uint32_t id, const envoy_swift_bytes_t *values, size_t nvalues, double value)
{
    int err;
    if (!isfinite(value) || (id < ES_METRIC_FAMILIES && families[id].kind == ENVOY_SWIFT_METRIC_COUNTER && value < 0))
        return ENVOY_SWIFT_ERR_INVALID;
    int32_t s = series_of(id, values, nvalues, &err);
    if (s < 0)
        return err;
    if (families[id].kind == ENVOY_SWIFT_METRIC_HISTOGRAM)
        es_metric_observe(s, value);
    else
        es_metric_add(s, value);
    return ENVOY_SWIFT_OK;
}

int es_host_metric_set(uint32_t id, const envoy_swift_bytes_t *values, size_t nvalues, double value)
{
    int err;
    if (!isfinite(value) || id >= ES_METRIC_FAMILIES || families[id].kind != ENVOY_SWIFT_METRIC_GAUGE)
        return ENVOY_SWIFT_ERR_INVALID;
    int32_t s = series_of(id, values, nvalues, &err);
    if (s < 0)
        return err;
    es_metric_set(s, value);
    return ENVOY_SWIFT_OK;
}

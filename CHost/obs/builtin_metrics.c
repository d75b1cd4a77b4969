#include "obs/builtin_metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/metrics.h"

#define CLASSES 5 /* 1xx .. 5xx */

/* The series of this thread, by position. */
typedef struct {
    const es_config_t *cfg;
    size_t *route_base;      /* per listener: its first row in rq / duration (nroutes + 1 rows: the last is "no route") */
    int32_t *rq;             /* row * CLASSES + class */
    int32_t *duration;       /* row */
    int32_t *up_rq;          /* cluster * CLASSES + class */
    int32_t *up_first_byte;  /* cluster */
    int32_t *filter;         /* filter id */
    unsigned nfilters;
} builtin_t;

static __thread builtin_t *bt;

static const char *const class_names[CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static int32_t series(int family, const char *const *v, unsigned n)
{
    return es_metric_series(family, v, NULL, n);
}

int es_builtin_metrics_init(const es_config_t *cfg, char *err, size_t errlen)
{
    static const char *const l_rq[] = {"listener", "route", "code_class"};
    static const char *const l_dur[] = {"listener", "route"};
    static const char *const l_up_rq[] = {"cluster", "code_class"};
    static const char *const l_cluster[] = {"cluster"};
    static const char *const l_filter[] = {"filter"};
    const es_metric_def_t defs[] = {
        {.name = "envoy_swift_downstream_rq_total", .flat = "downstream.rq",
         .help = "Downstream requests that ended, by listener, route and status class.", .kind = ES_METRIC_COUNTER,
         .labels = l_rq, .nlabels = 3},
        {.name = "envoy_swift_downstream_rq_duration_seconds", .flat = "downstream.rq_duration_seconds",
         .help = "Downstream request duration, first byte in to last byte out.", .kind = ES_METRIC_HISTOGRAM,
         .labels = l_dur, .nlabels = 2},
        {.name = "envoy_swift_upstream_rq_total", .flat = "upstream.rq",
         .help = "Upstream responses, by cluster and status class.", .kind = ES_METRIC_COUNTER,
         .labels = l_up_rq, .nlabels = 2},
        {.name = "envoy_swift_upstream_rq_first_byte_seconds", .flat = "upstream.rq_first_byte_seconds",
         .help = "Time from sending an upstream request to its response's first byte.",
         .kind = ES_METRIC_HISTOGRAM, .labels = l_cluster, .nlabels = 1},
        {.name = "envoy_swift_filter_hook_duration_seconds", .flat = "filter.hook_duration_seconds",
         .help = "Time one request spent in a filter's hooks.", .kind = ES_METRIC_HISTOGRAM,
         .labels = l_filter, .nlabels = 1},
    };
    int fam[5];
    for (int i = 0; i < 5; i++)
        if ((fam[i] = es_metric_define(&defs[i], err, errlen)) < 0)
            return -1;

    es_builtin_metrics_free();
    size_t rows = 0, nfilters = 0;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        rows += cfg->listeners[l].nroutes + 1;
        nfilters += cfg->listeners[l].nfilters;
    }
    builtin_t *b = calloc(1, sizeof(*b));
    if (b != NULL) {
        b->route_base = calloc(cfg->nlisteners + 1, sizeof(size_t));
        b->rq = calloc(rows * CLASSES + 1, sizeof(int32_t));
        b->duration = calloc(rows + 1, sizeof(int32_t));
        b->up_rq = calloc(cfg->nclusters * CLASSES + 1, sizeof(int32_t));
        b->up_first_byte = calloc(cfg->nclusters + 1, sizeof(int32_t));
        b->filter = calloc(nfilters + 1, sizeof(int32_t));
    }
    if (b == NULL || !b->route_base || !b->rq || !b->duration || !b->up_rq || !b->up_first_byte || !b->filter) {
        bt = b;
        es_builtin_metrics_free();
        snprintf(err, errlen, "out of memory for the metrics");
        return -1;
    }
    b->cfg = cfg;
    b->nfilters = (unsigned)nfilters;

    size_t row = 0, fid = 0;
    for (size_t l = 0; l < cfg->nlisteners; l++) {
        const es_listener_config_t *L = &cfg->listeners[l];
        char lname[32], rname[32];
        const char *listener = L->name;
        if (listener == NULL) {
            snprintf(lname, sizeof(lname), "listener%zu", l);
            listener = lname;
        }
        b->route_base[l] = row;
        for (size_t r = 0; r <= L->nroutes; r++, row++) {
            const char *route = "";
            if (r < L->nroutes) {
                route = L->routes[r].name;
                if (route == NULL) {
                    snprintf(rname, sizeof(rname), "route%zu", r);
                    route = rname;
                }
            }
            const char *v[3] = {listener, route, NULL};
            b->duration[row] = series(fam[1], v, 2);
            for (int c = 0; c < CLASSES; c++) {
                v[2] = class_names[c];
                b->rq[row * CLASSES + c] = series(fam[0], v, 3);
            }
        }
        for (size_t f = 0; f < L->nfilters; f++, fid++) {
            const char *v[1] = {L->filters[f].name != NULL ? L->filters[f].name : ""};
            b->filter[fid] = series(fam[4], v, 1);
        }
    }
    b->route_base[cfg->nlisteners] = row;
    for (size_t c = 0; c < cfg->nclusters; c++) {
        const char *v[2] = {cfg->clusters[c].name != NULL ? cfg->clusters[c].name : "", NULL};
        b->up_first_byte[c] = series(fam[3], v, 1);
        for (int k = 0; k < CLASSES; k++) {
            v[1] = class_names[k];
            b->up_rq[c * CLASSES + k] = series(fam[2], v, 2);
        }
    }
    bt = b;
    return 0;
}

void es_builtin_metrics_free(void)
{
    builtin_t *b = bt;
    if (b == NULL)
        return;
    free(b->route_base);
    free(b->rq);
    free(b->duration);
    free(b->up_rq);
    free(b->up_first_byte);
    free(b->filter);
    free(b);
    bt = NULL;
}

static inline int code_class(int status)
{
    return status >= 100 && status <= 599 ? status / 100 - 1 : -1;
}

void es_builtin_request_done(size_t listener, const es_route_config_t *route, int status, double seconds)
{
    const builtin_t *b = bt;
    if (b == NULL || listener >= b->cfg->nlisteners)
        return;
    const es_listener_config_t *L = &b->cfg->listeners[listener];
    size_t r = route != NULL && route->index < L->nroutes ? route->index : L->nroutes; /* the last row: no route */
    size_t row = b->route_base[listener] + r;
    int c = code_class(status);
    if (c >= 0)
        es_metric_add(b->rq[row * CLASSES + (size_t)c], 1);
    es_metric_observe(b->duration[row], seconds);
}

void es_builtin_upstream_first_byte(const es_cluster_config_t *c, double seconds)
{
    const builtin_t *b = bt;
    if (b != NULL && c != NULL && c->index < b->cfg->nclusters)
        es_metric_observe(b->up_first_byte[c->index], seconds);
}

void es_builtin_upstream_rq(const es_cluster_config_t *c, int status)
{
    const builtin_t *b = bt;
    int k = code_class(status);
    if (b != NULL && c != NULL && c->index < b->cfg->nclusters && k >= 0)
        es_metric_add(b->up_rq[c->index * CLASSES + (size_t)k], 1);
}

void es_builtin_filter_time(unsigned filter_id, double seconds)
{
    const builtin_t *b = bt;
    if (b != NULL && filter_id < b->nfilters)
        es_metric_observe(b->filter[filter_id], seconds);
}

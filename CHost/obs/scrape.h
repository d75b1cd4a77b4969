/*
 * What the `stats: {}` route answers: every counter, gauge and histogram, in the Prometheus text format
 * (<prefix>/prometheus) or as the flat "name value" list.
 */
#ifndef ES_SCRAPE_H
#define ES_SCRAPE_H

#include "core/buf.h"

/* Appends the Prometheus text format 0.0.4. Returns 0 or -1 (out of memory). */
int es_scrape_prometheus(es_buf_t *out);
/* Appends the flat list. Returns 0 or -1. */
int es_scrape_flat(es_buf_t *out);

#endif

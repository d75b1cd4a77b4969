/*
 * Stream handles: what crosses the ABI instead of pointers, so a stale call from a filter library is harmless.
 * Handles live in a per-thread table (each worker has its own) with a generation per slot and the thread's tag
 * in the top bits. The table also queues the results libraries posted, until the worker applies them.
 */
#ifndef ES_HANDLES_H
#define ES_HANDLES_H

#include "envoy_swift_abi.h"
#include "filters/filter_chain.h"

/* Once per worker thread, before any stream. */
void es_handles_thread_init(unsigned worker);
void es_handles_thread_dispose(void);
/* The worker whose thread this is. */
unsigned es_handles_worker(void);
int es_handles_register(es_filters_t *f);
void es_handles_unregister(es_filters_t *f);
/* The stream behind a handle, if it is alive and on this thread; NULL otherwise. */
es_filters_t *es_handles_lookup(envoy_swift_stream_t h);
/* Queues a posted result of `f` (resume_status set), oldest first. */
void es_handles_post(es_filters_t *f);
/* The oldest posted result, taken off the queue; NULL when none. */
es_filters_t *es_handles_next_posted(void);

#endif

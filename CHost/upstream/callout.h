/*
 * HTTP call-outs: a request a filter sends to a configured cluster (an auth service, say) on the
 * stream's own worker and through the worker's pool, answered to the library with
 * envoy_swift_callout_done. A call-out belongs to its stream: it is cancelled when the stream
 * ends or its filter times out, and the library is always answered exactly once.
 */
#ifndef ES_CALLOUT_H
#define ES_CALLOUT_H

#include "envoy_swift_abi.h"
#include "core/list.h"
#include "filters/filter_lib.h"

typedef struct es_env_s es_env_t;

/* Most response body bytes a call-out keeps; more is ENVOY_SWIFT_ERR_UPSTREAM. */
#define ES_CALLOUT_MAX_BODY (4u * 1024 * 1024)
#define ES_CALLOUT_DEFAULT_TIMEOUT_MS 5000

/* Starts a call-out for filter library `lib` of a stream whose call-outs are listed in `callouts`. Returns
 * ENVOY_SWIFT_OK or an error; after OK the library hears back exactly once, never inside this call. */
int es_callout_start(es_link_t *callouts, const es_filter_lib_t *lib, es_env_t *env,
                     const envoy_swift_callout_request_t *req, uint64_t token);
/* Ends every call-out in `callouts` with ENVOY_SWIFT_ERR_CANCELLED. */
void es_callouts_cancel(es_link_t *callouts);

#endif

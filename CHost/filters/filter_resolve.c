/*
 * A filter library's hooks, found by name in a dlopen()ed image. Alone in its file so that
 * bench/crossing.c can load a library exactly as the host does without linking the rest of it.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "filters/filter_lib.h"

#define RESOLVE(field, symbol)                                                                              \
    do {                                                                                                    \
        *(void **)&l->field = dlsym(dl, symbol);                                                            \
        if (l->field == NULL) {                                                                             \
            snprintf(err, errlen, "%s: missing symbol %s (not an envoy-swift filter library?)", path, symbol); \
            return -1;                                                                                      \
        }                                                                                                   \
    } while (0)

int es_filter_lib_resolve(es_filter_lib_t *l, void *dl, const char *path, char *err, size_t errlen)
{
    RESOLVE(abi_version, "envoy_swift_abi_version");
    uint32_t v = l->abi_version();
    if (v != ENVOY_SWIFT_ABI_VERSION) {
        snprintf(err, errlen, "%s: built for ABI version %u, this host speaks version %u", path, v,
                 ENVOY_SWIFT_ABI_VERSION);
        return -1;
    }
    RESOLVE(program_init, "envoy_swift_program_init");
    RESOLVE(config_new, "envoy_swift_filter_config_new");
    RESOLVE(config_destroy, "envoy_swift_filter_config_destroy");
    RESOLVE(filter_new, "envoy_swift_filter_new");
    RESOLVE(on_request_headers, "envoy_swift_filter_on_request_headers");
    RESOLVE(on_request_body, "envoy_swift_filter_on_request_body");
    RESOLVE(on_request_trailers, "envoy_swift_filter_on_request_trailers");
    RESOLVE(on_response_headers, "envoy_swift_filter_on_response_headers");
    RESOLVE(on_response_body, "envoy_swift_filter_on_response_body");
    RESOLVE(on_response_trailers, "envoy_swift_filter_on_response_trailers");
    RESOLVE(on_stream_complete, "envoy_swift_filter_on_stream_complete");
    RESOLVE(destroy, "envoy_swift_filter_destroy");
    RESOLVE(cancel, "envoy_swift_filter_cancel");
    RESOLVE(worker_run, "envoy_swift_worker_run");
    RESOLVE(callout_done, "envoy_swift_callout_done");
    RESOLVE(stream_state_free, "envoy_swift_stream_state_free");
    return 0;
}

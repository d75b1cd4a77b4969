/*
 * Filter libraries and chains, set up once at startup: each so_path is dlopen()ed once (never
 * closed: a Swift runtime cannot be unloaded), its ABI version checked, every hook resolved, and
 * each configured filter's config created by the library. Read-only afterwards; workers share it.
 */
#ifndef ES_FILTER_LIB_H
#define ES_FILTER_LIB_H

#include <stddef.h>

#include "core/config.h"
#include "envoy_swift_abi.h"

typedef struct {
    char *path;
    void *dl;
    uint32_t (*abi_version)(void);
    int (*program_init)(const envoy_swift_host_t *host);
    void *(*config_new)(envoy_swift_bytes_t name, envoy_swift_bytes_t plugin, envoy_swift_bytes_t json, char *err,
                        size_t errlen);
    void (*config_destroy)(void *config);
    void *(*filter_new)(void *config, envoy_swift_stream_t stream, uint32_t worker);
    envoy_swift_status_t (*on_request_headers)(void *filter, bool end_of_stream);
    envoy_swift_status_t (*on_request_body)(void *filter, bool end_of_stream);
    envoy_swift_status_t (*on_request_trailers)(void *filter);
    envoy_swift_status_t (*on_response_headers)(void *filter, bool end_of_stream);
    envoy_swift_status_t (*on_response_body)(void *filter, bool end_of_stream);
    envoy_swift_status_t (*on_response_trailers)(void *filter);
    void (*on_stream_complete)(void *filter);
    void (*destroy)(void *filter);
    void (*cancel)(void *filter);
    void (*worker_run)(uint32_t worker);
    void (*callout_done)(uint64_t token, const envoy_swift_callout_response_t *response);
    void (*stream_state_free)(void *state);
} es_filter_lib_t;

/* Resolves every hook of `l` from `dl` (abi_version first, and checked against this host's). Returns 0, or -1
 * with a one-line reason naming `path` in `err`. (filter_resolve.c) */
int es_filter_lib_resolve(es_filter_lib_t *l, void *dl, const char *path, char *err, size_t errlen);

typedef struct {
    const es_filter_lib_t *lib;
    void *config;               /* the library's, from config_new */
    const char *name;           /* the instance name from YAML */
    unsigned id;                /* its place among every listener's filters: crash records and quarantine */
    uint64_t timeout_ms;        /* longest a RUNNING hook may take */
    int timeout_status;
    /* Hooks (bit dir * 3 + hook) the library said it does not implement (CONTINUE_SKIP): not called
     * again. Set from any worker; a stale read only costs one more call. */
    _Atomic unsigned skip;
} es_filter_entry_t;

typedef struct {
    es_filter_entry_t *filters;
    size_t n;
    /* Per route of the listener (filter_config): NULL when the route changes nothing, else `n` configs, one per
     * filter: the listener's, the route's own, or NULL where the filter is disabled. */
    void ***route_configs;
    size_t nroutes;
} es_filter_chain_t;

/* The config filter `i` of `chain` runs with on route `route` (its index among the listener's routes, or -1 for
 * none): NULL when the route disables it. */
static inline void *es_filter_chain_config(const es_filter_chain_t *chain, size_t i, long route)
{
    if (route >= 0 && (size_t)route < chain->nroutes && chain->route_configs[route] != NULL)
        return chain->route_configs[route][i];
    return chain->filters[i].config;
}

/* Loads every library and creates every filter config. Returns 0, or -1 with one line in err. */
int es_filters_setup(const es_config_t *cfg, char *err, size_t errlen);
/* Whether es_filters_setup is creating configs now (a library may define its metrics only then). */
int es_filters_in_setup(void);
/* Destroys the configs (libraries stay loaded). */
void es_filters_teardown(void);
/* The chain of listener `index` (n == 0 when it has none). */
const es_filter_chain_t *es_filters_chain(size_t index);

/* Runs every library's queued work for `worker` (the answer to the host's wake callback). */
void es_filters_worker_run(unsigned worker);

/* filter_host.c: the callbacks handed to every library (worker_count is set at setup). */
extern envoy_swift_host_t es_filter_host;

#endif

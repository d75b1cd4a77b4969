#include "filters/filter_lib.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/proc_slot.h"

static es_filter_lib_t **libs; /* each allocated alone: chains keep pointers to them */
static size_t nlibs;
static es_filter_chain_t *chains;
static int in_setup;

int es_filters_in_setup(void)
{
    return in_setup;
}
static size_t nchains;

static const es_filter_lib_t *load(const char *so_path, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (realpath(so_path, real) == NULL) {
        snprintf(err, errlen, "cannot load %s: %m", so_path);
        return NULL;
    }
    for (size_t i = 0; i < nlibs; i++)
        if (strcmp(libs[i]->path, real) == 0)
            return libs[i];
    void *dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(err, errlen, "cannot load %s: %s", so_path, dlerror());
        return NULL;
    }
    es_filter_lib_t l = {0};
    if (es_filter_lib_resolve(&l, dl, so_path, err, errlen) != 0)
        return NULL; /* not closed: closing a half-initialised Swift image is not safe either */
    if (l.program_init(&es_filter_host) != 0) {
        snprintf(err, errlen, "%s: the library's initialisation failed", so_path);
        return NULL;
    }
    es_filter_lib_t **grown = realloc(libs, (nlibs + 1) * sizeof(*libs));
    if (grown != NULL)
        libs = grown;
    es_filter_lib_t *copy = grown ? malloc(sizeof(*copy)) : NULL;
    if (copy == NULL || (l.path = strdup(real)) == NULL) {
        free(copy);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l.dl = dl;
    *copy = l;
    libs[nlibs++] = copy;
    es_debug("loaded filter library %s", real);
    return copy;
}

static envoy_swift_bytes_t bytes(const char *s)
{
    return (envoy_swift_bytes_t){.ptr = s, .length = strlen(s)};
}

/* The configs of listener `li`'s routes that have filter_config: each override is created (and so checked) by
 * the library now, like the listener's own. */
static int setup_routes(const es_config_t *cfg, size_t li, char *err, size_t errlen)
{
    const es_listener_config_t *l = &cfg->listeners[li];
    es_filter_chain_t *chain = &chains[li];
    if (chain->n == 0)
        return 0;
    chain->route_configs = calloc(l->nroutes ? l->nroutes : 1, sizeof(*chain->route_configs));
    if (chain->route_configs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    chain->nroutes = l->nroutes;
    char why[512];
    for (size_t ri = 0; ri < l->nroutes; ri++) {
        const es_route_config_t *r = &l->routes[ri];
        if (r->nfilter_configs == 0)
            continue;
        void **cfgs = calloc(chain->n, sizeof(*cfgs));
        if (cfgs == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t fi = 0; fi < chain->n; fi++)
            cfgs[fi] = chain->filters[fi].config;
        chain->route_configs[ri] = cfgs;
        for (size_t k = 0; k < r->nfilter_configs; k++) {
            const es_route_filter_config_t *rf = &r->filter_configs[k];
            const es_filter_entry_t *e = &chain->filters[rf->index];
            const es_filter_config_t *f = &l->filters[rf->index];
            if (rf->disabled) {
                cfgs[rf->index] = NULL;
                continue;
            }
            if (es_proc_slot != NULL) {
                atomic_store_explicit(&es_proc_slot->hook, ES_SLOT_HOOK_CONFIG, memory_order_relaxed);
                atomic_store_explicit(&es_proc_slot->filter, (int32_t)e->id, memory_order_relaxed);
            }
            why[0] = '\0';
            void *c = e->lib->config_new(bytes(f->name), bytes(f->plugin_name), bytes(rf->plugin_config_json), why,
                                         sizeof(why));
            if (c == NULL) {
                why[sizeof(why) - 1] = '\0';
                snprintf(err, errlen, "%s:%d: listeners[%zu].routes[%zu].filter_config.%s (\"%s\", plugin \"%s\"): %s",
                         cfg->path, rf->line, li, ri, f->name, f->name, f->plugin_name,
                         why[0] ? why : "rejected by the library");
                return -1;
            }
            cfgs[rf->index] = c;
        }
    }
    return 0;
}

static int setup(const es_config_t *cfg, char *err, size_t errlen);

int es_filters_setup(const es_config_t *cfg, char *err, size_t errlen)
{
    in_setup = 1;
    int rc = setup(cfg, err, errlen);
    in_setup = 0;
    return rc;
}

static int setup(const es_config_t *cfg, char *err, size_t errlen)
{
    char why[512];
    es_filter_host.worker_count = cfg->workers;
    chains = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*chains));
    if (chains == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    nchains = cfg->nlisteners;
    unsigned id = 0;
    for (size_t li = 0; li < cfg->nlisteners; li++) {
        const es_listener_config_t *l = &cfg->listeners[li];
        if (l->nfilters == 0)
            continue;
        chains[li].filters = calloc(l->nfilters, sizeof(*chains[li].filters));
        if (chains[li].filters == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t fi = 0; fi < l->nfilters; fi++, id++) {
            const es_filter_config_t *f = &l->filters[fi];
            if (id >= ES_MAX_FILTERS) {
                snprintf(err, errlen, "%s:%d: listeners[%zu].http_filters[%zu]: more than %d filters in all", cfg->path,
                         f->line, li, fi, ES_MAX_FILTERS);
                return -1;
            }
            /* A library that traps loading or checking its config is blamed on this filter (a worker's start). */
            if (es_proc_slot != NULL) {
                atomic_store_explicit(&es_proc_slot->hook, ES_SLOT_HOOK_CONFIG, memory_order_relaxed);
                atomic_store_explicit(&es_proc_slot->filter, (int32_t)id, memory_order_relaxed);
            }
            const es_filter_lib_t *lib = load(f->so_path, why, sizeof(why));
            if (lib == NULL) {
                snprintf(err, errlen, "%s:%d: listeners[%zu].http_filters[%zu].so_path: %s", cfg->path, f->line, li, fi,
                         why);
                return -1;
            }
            why[0] = '\0';
            void *c = lib->config_new(bytes(f->name), bytes(f->plugin_name), bytes(f->plugin_config_json), why,
                                      sizeof(why));
            if (c == NULL) {
                why[sizeof(why) - 1] = '\0';
                snprintf(err, errlen, "%s:%d: listeners[%zu].http_filters[%zu] (\"%s\", plugin \"%s\"): %s", cfg->path,
                         f->line, li, fi, f->name, f->plugin_name, why[0] ? why : "rejected by the library");
                return -1;
            }
            chains[li].filters[fi] = (es_filter_entry_t){.lib = lib, .config = c, .name = f->name, .id = id,
                                                         .timeout_ms = f->timeout_ms, .timeout_status = f->timeout_status};
            chains[li].n = fi + 1;
        }
    }
    for (size_t li = 0; li < cfg->nlisteners; li++)
        if (setup_routes(cfg, li, err, errlen) != 0)
            return -1;
    if (es_proc_slot != NULL)
        atomic_store_explicit(&es_proc_slot->filter, ES_SLOT_NO_FILTER, memory_order_relaxed);
    return 0;
}

void es_filters_teardown(void)
{
    for (size_t li = 0; li < nchains; li++) {
        for (size_t ri = 0; ri < chains[li].nroutes; ri++) {
            void **cfgs = chains[li].route_configs[ri];
            for (size_t fi = 0; cfgs != NULL && fi < chains[li].n; fi++)
                if (cfgs[fi] != NULL && cfgs[fi] != chains[li].filters[fi].config)
                    chains[li].filters[fi].lib->config_destroy(cfgs[fi]);
            free(cfgs);
        }
        free(chains[li].route_configs);
        for (size_t fi = 0; fi < chains[li].n; fi++)
            chains[li].filters[fi].lib->config_destroy(chains[li].filters[fi].config);
        free(chains[li].filters);
    }
    free(chains);
    chains = NULL;
    nchains = 0;
    for (size_t i = 0; i < nlibs; i++) {
        free(libs[i]->path);
        free(libs[i]);
    }
    free(libs);
    libs = NULL;
    nlibs = 0;
}

void es_filters_worker_run(unsigned worker)
{
    for (size_t i = 0; i < nlibs; i++)
        libs[i]->worker_run(worker);
}

const es_filter_chain_t *es_filters_chain(size_t index)
{
    static const es_filter_chain_t empty = {0};
    return index < nchains ? &chains[index] : &empty;
}

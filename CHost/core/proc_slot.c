#include "core/proc_slot.h"

#include <stdio.h>

es_proc_slot_t *es_proc_slot;

const char *es_proc_slot_hook_name(int hook, char *buf, size_t len)
{
    static const char *const names[] = {
        "request headers", "request body", "request trailers", "response headers", "response body",
        "response trailers", "filter creation", "stream completion", "async work",
        "configuration",
    };
    int base = hook & ~ES_SLOT_AFTER_AWAIT;
    const char *name = base >= 0 && base < (int)(sizeof(names) / sizeof(names[0])) ? names[base] : "unknown hook";
    snprintf(buf, len, "%s%s", name, (hook & ES_SLOT_AFTER_AWAIT) && base < ES_SLOT_HOOK_NEW ? " (after an await)" : "");
    return buf;
}

int es_proc_slot_blame(const es_proc_slot_t *ps, const es_filter_config_t *const *filters, unsigned n, char *buf,
                       size_t len)
{
    int f = atomic_load(&ps->filter), hook = atomic_load(&ps->hook);
    char hn[64];
    buf[0] = '\0';
    if (f >= 0 && (unsigned)f < n) {
        const es_filter_config_t *fc = filters[f];
        char req[sizeof(ps->request) + 16] = "";
        if (atomic_load(&ps->stream) != 0) /* the worker's fatal-signal handler noted the request */
            snprintf(req, sizeof(req), ", request \"%.*s\"", (int)sizeof(ps->request) - 1, ps->request);
        snprintf(buf, len, " in filter \"%s\" (plugin %s), hook %s%s", fc->name, fc->plugin_name,
                 es_proc_slot_hook_name(hook, hn, sizeof(hn)), req);
        return f;
    }
    if (hook == ES_SLOT_HOOK_ASYNC)
        snprintf(buf, len, " in a filter library's async work (no stream named)");
    return -1;
}

#include "proc_slot.h"

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

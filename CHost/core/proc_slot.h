/*
 * What a worker process shares with its supervisor besides counters: which filter's code it is running
 * (read by the supervisor after the worker dies, to name the filter, hook and request in the crash line)
 * and which filters the supervisor has quarantined (read by the worker for every stream).
 *
 * The slots are one MAP_SHARED mapping made by the supervisor before it forks; each worker process is
 * handed one. A worker writes its slot with plain relaxed stores: the supervisor reads it only once the
 * worker is dead, and a dead process's stores are all visible.
 */
#ifndef ES_PROC_SLOT_H
#define ES_PROC_SLOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define ES_MAX_FILTERS 128          /* filters one config may have (every listener's chain together) */
#define ES_SLOT_NO_FILTER (-1)

/* Where in a filter the worker is: a hook (dir * 3 + hook, as the chain numbers them), or one of these. */
enum {
    ES_SLOT_HOOK_NEW = 6,           /* creating the stream's instance */
    ES_SLOT_HOOK_COMPLETE = 7,      /* on_stream_complete / destroy */
    ES_SLOT_HOOK_ASYNC = 8,         /* async work with no stream named: the library's executor */
    ES_SLOT_HOOK_CONFIG = 9,        /* loading the library and creating the filter's config, at the start */
    ES_SLOT_AFTER_AWAIT = 16,       /* or-ed in: a job of the hook's task, after an await */
};

typedef enum {
    ES_QUARANTINE_NONE = 0,
    ES_QUARANTINE_REJECT = 1,       /* answer 503 on chains that hold the filter */
    ES_QUARANTINE_BYPASS = 2,       /* skip the filter */
} es_quarantine_t;

typedef struct {
    _Atomic int32_t filter;         /* es_filter_entry_t.id whose code runs, or ES_SLOT_NO_FILTER */
    _Atomic int32_t hook;
    _Atomic uint64_t stream;        /* the stream handle `request` was copied from (0: none) */
    char request[240];              /* "GET /path" of that stream, NUL-terminated, cut to fit: written by the
                                     * worker's fatal-signal handler, not on every hook */
    _Atomic uint8_t quarantine[ES_MAX_FILTERS]; /* es_quarantine_t by filter id */
} es_proc_slot_t;

/* This worker process's slot; NULL outside a supervised worker (tests, -t). */
extern es_proc_slot_t *es_proc_slot;

/* "request headers", "response body (after an await)", ...: what the crash line says for `hook`. */
const char *es_proc_slot_hook_name(int hook, char *buf, size_t len);
/* Supervisor, after the worker died: what its slot says it was running, as " in filter \"NAME\" (plugin P),
 * hook H, request \"GET /x\"" (or "" when no filter). `filters` are its generation's, by id. Returns the
 * filter id, or -1. */
int es_proc_slot_blame(const es_proc_slot_t *ps, const es_filter_config_t *const *filters, unsigned n, char *buf,
                       size_t len);

#endif

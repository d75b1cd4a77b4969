#include "filters/filter_chain.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/log.h"
#include "core/proc_slot.h"
#include "core/stats.h"
#include "filters/handles.h"
#include "obs/builtin_metrics.h"
#include "upstream/callout.h"

enum { HOOK_HEADERS = 0, HOOK_BODY = 1, HOOK_TRAILERS = 2 };
static const char *const hook_names[2][3] = {
    {"request headers", "request body", "request trailers"},
    {"response headers", "response body", "response trailers"},
};

/* Where a body chunk meets a filter: the filter holding the headers (buffering or not), the
 * filter buffering a streamed body, or any other filter. */
enum { AT_HOLDER_BUF, AT_HOLDER_NOBUF, AT_SBUF, AT_PLAIN };
/*
 * Chain states are reused through a small per-thread cache: a stream through a filter chain then
 * costs no malloc in the host, only the instances the library makes.
 */
#define STATE_CACHE_MAX 256

static __thread es_filters_t *state_cache;
static __thread unsigned state_count;

static size_t index_of(const es_filters_t *f, int dir, int pos);

/* ---- crash attribution: which filter, hook and request this worker is in (proc_slot.h) ---------- */

/* The stream whose filter code runs, for es_filters_crash_note; NULL outside filter code. */
static __thread const es_filters_t *current;

/* A few plain stores per hook: the request line is copied only when the worker dies (es_filters_crash_note). */
static inline void slot_enter(const es_filters_t *f, size_t i, int hook)
{
    es_proc_slot_t *slot = es_proc_slot;
    if (slot == NULL)
        return;
    current = f;
    atomic_store_explicit(&slot->hook, hook, memory_order_relaxed);
    atomic_store_explicit(&slot->filter, (int32_t)f->chain->filters[i].id, memory_order_relaxed);
}

static inline void slot_leave(void)
{
    if (es_proc_slot != NULL) {
        atomic_store_explicit(&es_proc_slot->filter, ES_SLOT_NO_FILTER, memory_order_relaxed);
        current = NULL;
    }
}

void es_filters_crash_note(void)
{
    es_proc_slot_t *slot = es_proc_slot;
    const es_filters_t *f = current;
    if (slot == NULL || f == NULL || atomic_load_explicit(&slot->filter, memory_order_relaxed) < 0 ||
        f->owner == NULL || f->owner->req == NULL)
        return;
    const es_msg_t *req = f->owner->req;
    size_t ulen = req->first_len, room = sizeof(slot->request) - 1;
    const char *url = req->data.base != NULL ? req->data.base + req->first_off : "";
    const char *method = f->owner->method != NULL ? f->owner->method : "";
    size_t mlen = f->owner->method != NULL ? f->owner->method_len : 0;
    if (mlen + 1 > room)
        mlen = room - 1;
    memcpy(slot->request, method, mlen);
    slot->request[mlen] = ' ';
    if (req->data.base == NULL || ulen > room - mlen - 1)
        ulen = req->data.base == NULL ? 0 : room - mlen - 1;
    memcpy(slot->request + mlen + 1, url, ulen);
    slot->request[mlen + 1 + ulen] = '\0';
    atomic_store_explicit(&slot->stream, f->handle, memory_order_relaxed);
}

void es_filters_async_work(int begins)
{
    if (begins && es_proc_slot != NULL)
        atomic_store_explicit(&es_proc_slot->hook, ES_SLOT_HOOK_ASYNC, memory_order_relaxed);
    slot_leave();
}

void es_filters_job_stream(es_filters_t *f)
{
    if (f == NULL || !f->run.active || f->dead) {
        slot_leave();
        return;
    }
    size_t i = index_of(f, f->run.dir, f->run.pos);
    slot_enter(f, i, (f->run.dir * 3 + f->run.hook) | ES_SLOT_AFTER_AWAIT);
}

static es_filters_t *state_get(size_t n)
{
    es_filters_t *f = state_cache;
    void **inst = NULL;
    size_t cap = 0;
    if (f != NULL) {
        state_cache = (es_filters_t *)f->owner; /* the cache links through this field */
        state_count--;
        inst = f->inst;
        cap = f->inst_cap;
    } else if ((f = malloc(sizeof(*f))) == NULL) {
        return NULL;
    }
    memset(f, 0, sizeof(*f));
    if (cap < n) {
        /* One allocation: the instances, then each filter's time in hooks. */
        void **grown = realloc(inst, n * (sizeof(*inst) + sizeof(uint64_t)));
        if (grown == NULL) {
            free(inst);
            free(f);
            return NULL;
        }
        inst = grown;
        cap = n;
    }
    memset(inst, 0, n * sizeof(*inst));
    f->inst = inst;
    f->inst_cap = cap;
    f->hook_ns = (uint64_t *)(inst + cap);
    memset(f->hook_ns, 0, n * sizeof(uint64_t));
    return f;
}

static void state_put(es_filters_t *f)
{
    if (state_count >= STATE_CACHE_MAX) {
        free(f->inst);
        free(f);
        return;
    }
    f->owner = (es_filters_owner_t *)state_cache;
    state_cache = f;
    state_count++;
}

void es_filters_cache_drain(void)
{
    while (state_cache != NULL) {
        es_filters_t *f = state_cache;
        state_cache = (es_filters_t *)f->owner;
        free(f->inst);
        free(f);
    }
    state_count = 0;
}

/* What the body loop does after a filter's body hook. */
enum { STEP_NEXT, STEP_WAIT, STEP_HALT };

/* A filter's instance for the stream, with the config of the stream's route: its filter_config, or none where
 * the route disables the filter. NULL when the library could not make one. */
static void *make_instance(es_filters_t *f, size_t i)
{
    const es_filter_entry_t *e = &f->chain->filters[i];
    es_proc_slot_t *slot = es_proc_slot;
    void *config = es_filter_chain_config(f->chain, i, f->route);
    if (config == NULL ||
        (slot != NULL && atomic_load_explicit(&slot->quarantine[e->id], memory_order_relaxed) == ES_QUARANTINE_BYPASS)) {
        f->inst[i] = ES_INST_NONE; /* disabled on the route, or quarantined with bypass: no hook runs */
        return ES_INST_NONE;
    }
    slot_enter(f, i, ES_SLOT_HOOK_NEW);
    void *inst = e->lib->filter_new(config, f->handle, f->owner->env->id);
    slot_leave();
    if (inst == NULL) {
        es_warn("filter %s: could not create an instance for a stream", e->name);
        return NULL;
    }
    f->inst[i] = inst;
    return inst;
}

es_filters_t *es_filters_new(const es_filter_chain_t *chain, es_filters_owner_t *owner, long route, size_t high,
                             size_t low, size_t max_body, const es_filter_entry_t **quarantined)
{
    *quarantined = NULL;
    es_proc_slot_t *slot = es_proc_slot;
    if (slot != NULL) {
        /* A filter the supervisor quarantined (it kept crashing workers): refuse the stream, or go without it. */
        for (size_t i = 0; i < chain->n; i++)
            if (atomic_load_explicit(&slot->quarantine[chain->filters[i].id], memory_order_relaxed) ==
                ES_QUARANTINE_REJECT) {
                *quarantined = &chain->filters[i];
                return NULL;
            }
    }
    es_filters_t *f = state_get(chain->n);
    if (f == NULL)
        return NULL;
    if (es_handles_register(f) != 0) {
        state_put(f);
        return NULL;
    }
    f->chain = chain;
    f->owner = owner;
    f->high = high;
    f->low = low;
    f->max_body = max_body;
    es_msg_init(&f->reply_headers);
    es_list_init(&f->resume_link);
    es_list_init(&f->callouts);
    for (int d = 0; d < 2; d++) {
        f->dir[d].holder = 0;
        f->dir[d].sbuf_at = -1;
    }
    f->route = route;
    for (size_t i = 0; i < chain->n; i++)
        if (make_instance(f, i) == NULL) {
            es_filters_free(f);
            return NULL;
        }
    return f;
}

/* A filter before position `after` (request order) changed what routes match on, and the route is now `route`:
 * the filters after it, which have not run yet, are made again where the new route gives them another config.
 * Such an instance saw no hook, so it is destroyed without on_stream_complete. Returns -1 when one cannot be
 * made. */
int es_filters_set_route(es_filters_t *f, long route, int after)
{
    long old = f->route;
    f->route = route;
    f->route_dirty = false;
    if (old == route)
        return 0;
    for (size_t i = (size_t)(after + 1); i < f->chain->n; i++) {
        if (es_filter_chain_config(f->chain, i, old) == es_filter_chain_config(f->chain, i, route))
            continue;
        void *inst = f->inst[i];
        if (inst != NULL && inst != ES_INST_NONE) {
            slot_enter(f, i, ES_SLOT_HOOK_NEW);
            f->chain->filters[i].lib->destroy(inst);
            slot_leave();
        }
        f->inst[i] = NULL;
        if (make_instance(f, i) == NULL)
            return -1;
    }
    return 0;
}

static void drop_inboxes(es_filters_t *f)
{
    for (int d = 0; d < 2; d++) {
        es_finbox_t *in = &f->in[d];
        bool was_high = in->high;
        es_buf_dispose(&in->body);
        memset(in, 0, sizeof(*in));
        if (was_high)
            f->owner->ops->blocked(f->owner, d, 0);
    }
}

static void release_memory(es_filters_t *f)
{
    for (int d = 0; d < 2; d++) {
        es_buf_dispose(&f->dir[d].held);
        es_buf_dispose(&f->dir[d].sbuf);
        es_buf_dispose(&f->dir[d].scratch);
        es_buf_dispose(&f->dir[d].moving);
        es_buf_dispose(&f->dir[d].parked);
        es_buf_dispose(&f->dir[d].feed);
        es_buf_dispose(&f->in[d].body);
    }
    es_msg_dispose(&f->reply_headers);
    es_buf_dispose(&f->reply_body);
    state_put(f);
}

/* Every chain entry point brackets its work so a stream that finishes inside it (and frees its
 * filters) leaves the memory in place until the stack unwinds. */
static void enter(es_filters_t *f)
{
    f->depth++;
}

static es_chain_result_t leave(es_filters_t *f, es_chain_result_t r)
{
    if (--f->depth == 0 && f->dead) {
        release_memory(f);
        return ES_CHAIN_HALT;
    }
    return r;
}

void es_filters_free(es_filters_t *f)
{
    if (f == NULL || f->dead)
        return;
    f->dead = true;
    f->halted = true;
    es_list_remove(&f->resume_link);
    if (f->run.active)
        f->owner->ops->waiting(f->owner, 0, 0);
    f->run.active = false; /* a late resume() answers ERR_GONE, a change to the stream ERR_GONE too */
    es_callouts_cancel(&f->callouts);
    /* In on_stream_complete the stream can still be read (stream info, attributes, request state): the handle
     * dies after it. */
    f->completing = true;
    for (size_t i = 0; i < f->chain->n; i++) {
        void *inst = f->inst[i];
        if (inst == NULL || inst == ES_INST_NONE)
            continue;
        const es_filter_entry_t *e = &f->chain->filters[i];
        /* A RUNNING hook's task learns of the end here: the library cancels it and drops its result. */
        f->hook_index = i;
        slot_enter(f, i, ES_SLOT_HOOK_COMPLETE);
        e->lib->on_stream_complete(inst);
        e->lib->destroy(inst);
        slot_leave();
        f->inst[i] = NULL;
        es_builtin_filter_time(e->id, (double)f->hook_ns[i] * 1e-9);
    }
    f->completing = false;
    for (int k = 0; k < ES_STATE_LIBS && f->state[k].lib != NULL; k++) {
        f->state[k].lib->stream_state_free(f->state[k].ptr);
        f->state[k].lib = NULL;
    }
    es_handles_unregister(f);
    drop_inboxes(f);
    if (f->depth == 0)
        release_memory(f);
}

static size_t index_of(const es_filters_t *f, int dir, int pos)
{
    return dir == ES_DIR_REQUEST ? (size_t)pos : f->chain->n - 1 - (size_t)pos;
}

/* A status from a hook (or a resume) that the host can act on; anything else is the filter's error. */
static envoy_swift_status_t checked(es_filters_t *f, int dir, int pos, int hook, envoy_swift_status_t st, bool async)
{
    const char *name = f->chain->filters[index_of(f, dir, pos)].name;
    if ((unsigned)st > ENVOY_SWIFT_STATUS_RUNNING || (async && st == ENVOY_SWIFT_STATUS_RUNNING)) {
        es_warn("filter %s: %s %s an unknown status %d", name, hook_names[dir][hook], async ? "resumed with" : "returned",
                (int)st);
        return ENVOY_SWIFT_STATUS_ERROR;
    }
    if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY && !f->has_reply) {
        es_warn("filter %s: %s asked for a local reply without sending one", name, hook_names[dir][hook]);
        return ENVOY_SWIFT_STATUS_ERROR;
    }
    return st;
}

static envoy_swift_status_t call(es_filters_t *f, int dir, int pos, int hook, bool eos)
{
    size_t i = index_of(f, dir, pos);
    es_filter_entry_t *e = &f->chain->filters[i];
    unsigned bit = 1u << (dir * 3 + hook);
    if (atomic_load_explicit(&e->skip, memory_order_relaxed) & bit) {
        es_stats_inc(ES_STAT_FILTER_SKIPPED);
        return ENVOY_SWIFT_STATUS_CONTINUE; /* the filter left this hook out */
    }
    const es_filter_lib_t *lib = e->lib;
    void *inst = f->inst[i];
    if (inst == ES_INST_NONE)
        return ENVOY_SWIFT_STATUS_CONTINUE; /* disabled on this route, or quarantined with bypass */
    envoy_swift_status_t st;
    uint64_t t0 = uv_hrtime();
    f->in_hook = 1;
    f->hook_index = i;
    f->has_reply = false;
    slot_enter(f, i, dir * 3 + hook);
    if (dir == ES_DIR_REQUEST)
        st = hook == HOOK_HEADERS ? lib->on_request_headers(inst, eos)
             : hook == HOOK_BODY  ? lib->on_request_body(inst, eos)
                                  : lib->on_request_trailers(inst);
    else
        st = hook == HOOK_HEADERS ? lib->on_response_headers(inst, eos)
             : hook == HOOK_BODY  ? lib->on_response_body(inst, eos)
                                  : lib->on_response_trailers(inst);
    slot_leave();
    f->in_hook = 0;
    f->hook_ns[i] += uv_hrtime() - t0;
    /* The filter changed what routes match on: the route is matched again now, so the filters after it run with
     * the new route's filter_config. */
    if (__builtin_expect(f->route_dirty, 0) && f->owner->ops->rematch(f->owner, (int)i) != 0)
        return ENVOY_SWIFT_STATUS_ERROR;
    if (st == ENVOY_SWIFT_STATUS_CONTINUE_SKIP) {
        atomic_fetch_or_explicit(&e->skip, bit, memory_order_relaxed);
        return ENVOY_SWIFT_STATUS_CONTINUE;
    }
    return checked(f, dir, pos, hook, st, false);
}

/* Whether every filter of the chain left this hook out (answered CONTINUE_SKIP to it once). */
static bool all_skip(const es_filters_t *f, int dir, int hook)
{
    unsigned bit = 1u << (dir * 3 + hook);
    for (size_t i = 0; i < f->chain->n; i++)
        if (!(atomic_load_explicit(&f->chain->filters[i].skip, memory_order_relaxed) & bit))
            return false;
    return true;
}

const es_filter_lib_t *es_filters_current_lib(const es_filters_t *f)
{
    size_t i = f->in_hook || f->completing ? f->hook_index : index_of(f, f->run.dir, f->run.pos);
    return f->chain->filters[i].lib;
}

/* The hook at `pos` returned RUNNING: the chain waits for its result (the output gate holds). */
static es_chain_result_t suspend(es_filters_t *f, int dir, int pos, int hook, int kind, bool eos, bool whole)
{
    f->run = (es_frun_t){.active = true, .dir = dir, .pos = pos, .hook = hook, .kind = kind, .eos = eos, .whole = whole};
    const es_filter_entry_t *e = &f->chain->filters[index_of(f, dir, pos)];
    f->owner->ops->waiting(f->owner, 1, e->timeout_ms);
    return ES_CHAIN_OK;
}

void es_filters_halt(es_filters_t *f)
{
    if (f->halted)
        return;
    f->halted = true;
    es_list_remove(&f->resume_link);
    f->resume_queued = false;
    if (f->run.active) {
        f->run.active = false;
        f->owner->ops->waiting(f->owner, 0, 0);
        size_t i = index_of(f, f->run.dir, f->run.pos);
        f->chain->filters[i].lib->cancel(f->inst[i]);
    }
    es_callouts_cancel(&f->callouts);
    drop_inboxes(f);
}

static es_chain_result_t terminal(es_filters_t *f, int dir, int pos, int hook, envoy_swift_status_t st)
{
    const char *name = f->chain->filters[index_of(f, dir, pos)].name;
    if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY) {
        es_debug("filter %s: local reply %d from %s", name, f->reply_status, hook_names[dir][hook]);
        f->owner->ops->reply(f->owner, f->reply_status, &f->reply_headers, f->reply_body.base, f->reply_body.len);
    } else {
        es_stats_inc(ES_STAT_FILTER_ERRORS);
        es_warn("filter %s: failed in %s; answering 500", name, hook_names[dir][hook]);
        f->owner->ops->failed(f->owner, 500, "filter error");
    }
    return ES_CHAIN_HALT;
}

void es_filters_timeout(es_filters_t *f)
{
    if (!f->run.active)
        return;
    const es_filter_entry_t *e = &f->chain->filters[index_of(f, f->run.dir, f->run.pos)];
    es_stats_inc(ES_STAT_FILTER_TIMEOUTS);
    es_warn("filter %s: %s did not finish within %llu ms; answering %d", e->name, hook_names[f->run.dir][f->run.hook],
            (unsigned long long)e->timeout_ms, e->timeout_status);
    enter(f);
    es_filters_halt(f); /* cancels the task: its late result is dropped */
    f->owner->ops->failed(f->owner, e->timeout_status, "filter timeout");
    leave(f, ES_CHAIN_HALT);
}

/* A filter stopped at the end of the stream: nothing more will come to continue it. */
static es_chain_result_t stalled(es_filters_t *f, int dir, int pos, int hook)
{
    es_warn("filter %s: stopped at the end of the stream in %s; answering 500",
            f->chain->filters[index_of(f, dir, pos)].name, hook_names[dir][hook]);
    f->owner->ops->failed(f->owner, 500, "filter error");
    return ES_CHAIN_HALT;
}

static es_chain_result_t too_large(es_filters_t *f, int dir)
{
    if (dir == ES_DIR_REQUEST) {
        /* The client's doing: counted, logged at debug (a warning per request would let clients flood the log). */
        es_debug("a filter buffered more than %zu bytes of the request body (buffer_limits.max_body); 413",
                 f->max_body);
        es_stats_inc(ES_STAT_BODY_TOO_LARGE);
        f->owner->ops->failed(f->owner, 413, "request body too large");
    } else {
        es_warn("a filter buffered more than %zu bytes of the response body (buffer_limits.max_body)", f->max_body);
        f->owner->ops->failed(f->owner, 500, "response body too large for a filter");
    }
    return ES_CHAIN_HALT;
}

/* Runs the headers through positions from..n-1 (`first`: the status the hook at `from` already
 * gave, when resuming); forwards them when they leave the chain. */
static es_chain_result_t run_headers(es_filters_t *f, int dir, int from, bool eos, bool whole_body,
                                     const envoy_swift_status_t *first)
{
    es_fdir_t *d = &f->dir[dir];
    d->headers_in = true;
    for (int p = from; p < (int)f->chain->n; p++) {
        envoy_swift_status_t st = p == from && first != NULL ? *first : call(f, dir, p, HOOK_HEADERS, eos);
        if (st == ENVOY_SWIFT_STATUS_RUNNING)
            return suspend(f, dir, p, HOOK_HEADERS, 0, eos, whole_body);
        if (st == ENVOY_SWIFT_STATUS_CONTINUE)
            continue;
        if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
            return terminal(f, dir, p, HOOK_HEADERS, st);
        if (eos)
            continue; /* no body will come to wait for: a stop here cannot hold anything */
        d->holder = p;
        d->mode = st;
        return ES_CHAIN_OK;
    }
    d->holder = -1;
    if (whole_body) {
        /* The whole body is on its way down: forward the headers with it, length known. */
        d->headers_pending = true;
        return ES_CHAIN_OK;
    }
    d->headers_sent = true;
    return f->owner->ops->forward_headers(f->owner, dir, eos, -1) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT;
}

/* Sets up the body a hook sees: a buffer it may change in place, or a view copied on write. */
static void body_begin(es_fdir_t *d, es_buf_t *buf, const char *data, size_t len)
{
    d->cur_buf = buf;
    d->cur_ptr = data;
    d->cur_len = len;
    d->cur_valid = true;
}

/* The body as the hook left it. */
static void body_end(es_fdir_t *d, const char **data, size_t *len)
{
    if (d->cur_buf != NULL) {
        *data = d->cur_buf->base;
        *len = d->cur_buf->len;
    } else {
        *data = d->cur_ptr;
        *len = d->cur_len;
    }
    d->cur_buf = NULL;
    d->cur_valid = false;
}

/* A RUNNING body hook keeps its body past the read callback: a view is copied into `parked`. */
static int park(es_fdir_t *d)
{
    if (d->cur_buf != NULL)
        return 0;
    const char *p = d->cur_ptr;
    size_t n = d->cur_len;
    es_buf_t *b = &d->parked;
    if (b->base != NULL && p >= b->base && p <= b->base + b->len) {
        memmove(b->base, p, n); /* the view is already inside parked (a resumed body went on) */
        b->len = n;
    } else {
        b->len = 0;
        if (es_buf_append(b, p, n) != 0)
            return -1;
    }
    d->cur_buf = b;
    return 0;
}

/* A buffer released by a filter travels on as `moving`, so a later holder can buffer it. */
static void release_buffer(es_fdir_t *d, es_buf_t *b, const char **data, size_t *len)
{
    es_buf_t t = d->moving;
    d->moving = *b;
    *b = t;
    b->len = 0;
    *data = d->moving.base;
    *len = d->moving.len;
}

static int kind_at(const es_fdir_t *d, int p)
{
    if (d->holder == p)
        return d->mode == ENVOY_SWIFT_STATUS_STOP_NO_BUFFER ? AT_HOLDER_NOBUF : AT_HOLDER_BUF;
    return d->sbuf_at == p ? AT_SBUF : AT_PLAIN;
}

/* Headers released from inside a body event: if a later filter's headers hook is RUNNING, the
 * body (kept in `moving`) goes on from `next` once it resumes. */
static int release_headers(es_filters_t *f, int dir, int next, const char **data, size_t *len, bool eos, bool whole)
{
    es_fdir_t *d = &f->dir[dir];
    if (run_headers(f, dir, next, false, whole, NULL) == ES_CHAIN_HALT)
        return STEP_HALT;
    if (!f->run.active)
        return STEP_NEXT;
    if (*data != d->moving.base) {
        d->moving.len = 0;
        if (es_buf_append(&d->moving, *data, *len) != 0)
            return too_large(f, dir), STEP_HALT;
    }
    f->run.body_after = true;
    f->run.body_from = next;
    f->run.body_eos = eos;
    return STEP_WAIT;
}

/* What the body loop does after the hook at `p` (of the given kind) returned `st`. */
static int body_after(es_filters_t *f, int dir, int p, int kind, envoy_swift_status_t st, const char **data,
                      size_t *len, bool eos)
{
    es_fdir_t *d = &f->dir[dir];
    if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
        return terminal(f, dir, p, HOOK_BODY, st), STEP_HALT;
    switch (kind) {
    case AT_HOLDER_BUF:
        if (st != ENVOY_SWIFT_STATUS_CONTINUE)
            return eos ? (stalled(f, dir, p, HOOK_BODY), STEP_HALT) : STEP_WAIT;
        release_buffer(d, &d->held, data, len);
        return release_headers(f, dir, p + 1, data, len, eos, eos);
    case AT_HOLDER_NOBUF:
        /* STOP_NO_BUFFER: the filter sees each chunk; what it does not pass on is dropped. */
        if (st != ENVOY_SWIFT_STATUS_CONTINUE)
            return eos ? (stalled(f, dir, p, HOOK_BODY), STEP_HALT) : STEP_WAIT;
        return release_headers(f, dir, p + 1, data, len, eos, false);
    case AT_SBUF:
        if (st == ENVOY_SWIFT_STATUS_STOP_NO_BUFFER)
            d->sbuf.len = 0;
        if (st != ENVOY_SWIFT_STATUS_CONTINUE)
            return eos ? (stalled(f, dir, p, HOOK_BODY), STEP_HALT) : STEP_WAIT;
        d->sbuf_at = -1;
        release_buffer(d, &d->sbuf, data, len);
        return STEP_NEXT;
    default:
        if (st == ENVOY_SWIFT_STATUS_STOP_NO_BUFFER && !eos)
            return STEP_WAIT;
        if (st != ENVOY_SWIFT_STATUS_CONTINUE) {
            if (eos)
                return stalled(f, dir, p, HOOK_BODY), STEP_HALT;
            d->sbuf_at = p;
            d->sbuf.len = 0;
            if (es_buf_append(&d->sbuf, *data, *len) != 0)
                return too_large(f, dir), STEP_HALT;
            return STEP_WAIT;
        }
        return STEP_NEXT;
    }
}

/* Runs a body chunk through positions from..n-1, then forwards what leaves the chain. When
 * resuming, `first` is the status the hook at `from` gave and the body is the one it saw. */
static es_chain_result_t run_body(es_filters_t *f, int dir, int from, const char *data, size_t len, bool eos,
                                  const envoy_swift_status_t *first)
{
    es_fdir_t *d = &f->dir[dir];
    for (int p = from; p < (int)f->chain->n; p++) {
        int kind = kind_at(d, p);
        envoy_swift_status_t st;
        if (p == from && first != NULL) {
            st = *first;
            body_end(d, &data, &len);
        } else {
            if (kind == AT_HOLDER_BUF || kind == AT_SBUF) {
                es_buf_t *b = kind == AT_SBUF ? &d->sbuf : &d->held;
                if (es_buf_append(b, data, len) != 0 || b->len > f->max_body)
                    return too_large(f, dir);
                if (kind == AT_HOLDER_BUF && d->mode == ENVOY_SWIFT_STATUS_STOP_AND_BUFFER && !eos)
                    return ES_CHAIN_OK;
                body_begin(d, b, b->base, b->len);
            } else {
                body_begin(d, NULL, data, len);
            }
            st = call(f, dir, p, HOOK_BODY, eos);
            if (st == ENVOY_SWIFT_STATUS_RUNNING) {
                if (park(d) != 0)
                    return body_end(d, &data, &len), too_large(f, dir);
                return suspend(f, dir, p, HOOK_BODY, kind, eos, false);
            }
            body_end(d, &data, &len);
        }
        int step = body_after(f, dir, p, kind, st, &data, &len, eos);
        if (step == STEP_HALT)
            return ES_CHAIN_HALT;
        if (step == STEP_WAIT)
            return ES_CHAIN_OK;
    }
    return f->owner->ops->forward_body(f->owner, dir, data, len, eos) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT;
}

static es_chain_result_t run_trailers(es_filters_t *f, int dir, int from, bool has_trailers,
                                      const envoy_swift_status_t *first)
{
    for (int p = from; has_trailers && p < (int)f->chain->n; p++) {
        envoy_swift_status_t st = p == from && first != NULL ? *first : call(f, dir, p, HOOK_TRAILERS, true);
        if (st == ENVOY_SWIFT_STATUS_RUNNING)
            return suspend(f, dir, p, HOOK_TRAILERS, 0, true, false);
        if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
            return terminal(f, dir, p, HOOK_TRAILERS, st);
    }
    f->dir[dir].trailers_sent = true;
    return f->owner->ops->forward_end(f->owner, dir) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT;
}

/* Events queue behind a RUNNING hook, and behind events already queued. */
static bool waits(const es_filters_t *f, int dir)
{
    const es_finbox_t *in = &f->in[dir];
    return f->run.active || in->headers || in->body_pending || in->end;
}

bool es_filters_blocked(const es_filters_t *f, int dir)
{
    return f->in[dir].high;
}

es_chain_result_t es_filters_headers(es_filters_t *f, int dir, bool end_of_stream)
{
    if (f->halted)
        return ES_CHAIN_HALT;
    if (end_of_stream)
        f->dir[dir].ended = true;
    if (waits(f, dir)) {
        f->in[dir].headers = true;
        f->in[dir].headers_eos = end_of_stream;
        return ES_CHAIN_OK;
    }
    enter(f);
    return leave(f, run_headers(f, dir, 0, end_of_stream, false, NULL));
}

es_chain_result_t es_filters_body(es_filters_t *f, int dir, const char *data, size_t len, bool eos)
{
    if (f->halted)
        return ES_CHAIN_HALT;
    es_fdir_t *d = &f->dir[dir];
    if (eos)
        d->ended = true;
    if (waits(f, dir)) {
        es_finbox_t *in = &f->in[dir];
        if (es_buf_append(&in->body, data, len) != 0)
            return too_large(f, dir);
        in->body_pending = true;
        in->eos |= eos;
        if (!in->high && in->body.len >= f->high) {
            in->high = true; /* stop reading the peer until the chain catches up */
            f->owner->ops->blocked(f->owner, dir, 1);
        }
        return ES_CHAIN_OK;
    }
    enter(f);
    if (d->holder < 0 && d->sbuf_at < 0 && all_skip(f, dir, HOOK_BODY)) {
        /* What run_body comes to when every filter left its body hook out and none holds anything: the
         * chunk goes on as it is. A chain of header filters takes this path for every chunk. */
        es_stats_add(ES_STAT_FILTER_SKIPPED, f->chain->n);
        return leave(f, f->owner->ops->forward_body(f->owner, dir, data, len, eos) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT);
    }
    return leave(f, run_body(f, dir, 0, data, len, eos, NULL));
}

es_chain_result_t es_filters_end(es_filters_t *f, int dir, bool has_trailers)
{
    if (f->halted)
        return ES_CHAIN_HALT;
    if (waits(f, dir)) {
        f->in[dir].end = true;
        f->in[dir].trailers = has_trailers;
        return ES_CHAIN_OK;
    }
    enter(f);
    return leave(f, run_trailers(f, dir, 0, has_trailers, NULL));
}

/* Runs the events that waited, in order, until they run out or a hook is RUNNING again. */
static es_chain_result_t drain(es_filters_t *f)
{
    while (!f->halted && !f->run.active) {
        int dir = -1;
        for (int d = 0; d < 2 && dir < 0; d++)
            if (f->in[d].headers || f->in[d].body_pending || f->in[d].end)
                dir = d;
        if (dir < 0)
            return ES_CHAIN_OK;
        es_finbox_t *in = &f->in[dir];
        es_chain_result_t r;
        if (in->headers) {
            in->headers = false;
            r = run_headers(f, dir, 0, in->headers_eos, false, NULL);
        } else if (in->body_pending) {
            /* Swap the inbox out: what arrives while it runs queues behind it. */
            es_fdir_t *d = &f->dir[dir];
            es_buf_t t = d->feed;
            d->feed = in->body;
            in->body = t;
            in->body.len = 0;
            bool eos = in->eos;
            in->body_pending = false;
            in->eos = false;
            if (in->high) {
                in->high = false;
                f->owner->ops->blocked(f->owner, dir, 0);
            }
            r = run_body(f, dir, 0, d->feed.base, d->feed.len, eos, NULL);
        } else {
            in->end = false;
            r = run_trailers(f, dir, 0, in->trailers, NULL);
        }
        if (r == ES_CHAIN_HALT)
            return r;
    }
    return f->halted ? ES_CHAIN_HALT : ES_CHAIN_OK;
}

void es_filters_resume(es_filters_t *f, envoy_swift_status_t status)
{
    if (!f->run.active || f->halted)
        return;
    enter(f);
    es_frun_t r = f->run;
    f->run.active = false;
    f->owner->ops->waiting(f->owner, 0, 0);
    envoy_swift_status_t st = checked(f, r.dir, r.pos, r.hook, status, true);
    if (f->route_dirty && f->owner->ops->rematch(f->owner, (int)index_of(f, r.dir, r.pos)) != 0)
        st = ENVOY_SWIFT_STATUS_ERROR; /* changed while it ran: as after a hook that returned (call) */
    es_chain_result_t res;
    if (r.hook == HOOK_HEADERS) {
        res = run_headers(f, r.dir, r.pos, r.eos, r.whole, &st);
        if (res == ES_CHAIN_OK && r.body_after && !f->run.active) {
            /* The body that released these headers goes on behind them. */
            es_fdir_t *d = &f->dir[r.dir];
            res = run_body(f, r.dir, r.body_from, d->moving.base, d->moving.len, r.body_eos, NULL);
        } else if (res == ES_CHAIN_OK && r.body_after) {
            f->run.body_after = true; /* still waiting at a later filter: the body waits with it */
            f->run.body_from = r.body_from;
            f->run.body_eos = r.body_eos;
        }
    } else if (r.hook == HOOK_BODY) {
        res = run_body(f, r.dir, r.pos, NULL, 0, r.eos, &st);
    } else {
        res = run_trailers(f, r.dir, r.pos, r.eos, &st);
    }
    if (res == ES_CHAIN_OK)
        res = drain(f);
    leave(f, res);
}

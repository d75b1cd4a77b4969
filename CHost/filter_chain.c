#include "filter_chain.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"

enum { HOOK_HEADERS = 0, HOOK_BODY = 1, HOOK_TRAILERS = 2 };
static const char *const hook_names[2][3] = {
    {"request headers", "request body", "request trailers"},
    {"response headers", "response body", "response trailers"},
};

es_filters_t *es_filters_new(const es_filter_chain_t *chain, es_stream_t *s)
{
    es_filters_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->inst = calloc(chain->n, sizeof(*f->inst));
    if (f->inst == NULL || es_handles_register(f) != 0) {
        free(f->inst);
        free(f);
        return NULL;
    }
    f->chain = chain;
    f->stream = s;
    es_msg_init(&f->reply_headers);
    for (int d = 0; d < 2; d++) {
        f->dir[d].holder = 0;
        f->dir[d].sbuf_at = -1;
    }
    for (size_t i = 0; i < chain->n; i++) {
        const es_filter_entry_t *e = &chain->filters[i];
        f->inst[i] = e->lib->filter_new(e->config, f->handle);
        if (f->inst[i] == NULL) {
            es_warn("filter %s: could not create an instance for a stream", e->name);
            es_filters_free(f);
            return NULL;
        }
    }
    return f;
}

void es_filters_free(es_filters_t *f)
{
    if (f == NULL)
        return;
    /* The handle dies first: a late call from the library answers ERR_GONE. */
    es_handles_unregister(f);
    for (size_t i = 0; i < f->chain->n; i++) {
        if (f->inst[i] == NULL)
            continue;
        const es_filter_lib_t *lib = f->chain->filters[i].lib;
        lib->on_stream_complete(f->inst[i]);
        lib->destroy(f->inst[i]);
        f->inst[i] = NULL;
    }
    for (int d = 0; d < 2; d++) {
        es_buf_dispose(&f->dir[d].held);
        es_buf_dispose(&f->dir[d].sbuf);
        es_buf_dispose(&f->dir[d].scratch);
        es_buf_dispose(&f->dir[d].moving);
    }
    es_msg_dispose(&f->reply_headers);
    es_buf_dispose(&f->reply_body);
    free(f->inst);
    free(f);
}

static size_t index_of(const es_filters_t *f, int dir, int pos)
{
    return dir == ES_DIR_REQUEST ? (size_t)pos : f->chain->n - 1 - (size_t)pos;
}

static envoy_swift_status_t call(es_filters_t *f, int dir, int pos, int hook, bool eos)
{
    size_t i = index_of(f, dir, pos);
    const es_filter_lib_t *lib = f->chain->filters[i].lib;
    void *inst = f->inst[i];
    envoy_swift_status_t st;
    f->in_hook = 1;
    f->has_reply = false;
    if (dir == ES_DIR_REQUEST)
        st = hook == HOOK_HEADERS ? lib->on_request_headers(inst, eos)
             : hook == HOOK_BODY  ? lib->on_request_body(inst, eos)
                                  : lib->on_request_trailers(inst);
    else
        st = hook == HOOK_HEADERS ? lib->on_response_headers(inst, eos)
             : hook == HOOK_BODY  ? lib->on_response_body(inst, eos)
                                  : lib->on_response_trailers(inst);
    f->in_hook = 0;
    if ((unsigned)st > ENVOY_SWIFT_STATUS_ERROR) {
        es_warn("filter %s: %s returned an unknown status %d", f->chain->filters[i].name, hook_names[dir][hook], (int)st);
        st = ENVOY_SWIFT_STATUS_ERROR;
    } else if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY && !f->has_reply) {
        es_warn("filter %s: %s asked for a local reply without sending one", f->chain->filters[i].name,
                hook_names[dir][hook]);
        st = ENVOY_SWIFT_STATUS_ERROR;
    }
    return st;
}

static es_chain_result_t terminal(es_filters_t *f, int dir, int pos, int hook, envoy_swift_status_t st)
{
    const char *name = f->chain->filters[index_of(f, dir, pos)].name;
    if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY) {
        es_debug("filter %s: local reply %d from %s", name, f->reply_status, hook_names[dir][hook]);
        es_stream__filter_reply(f->stream, f->reply_status, &f->reply_headers, f->reply_body.base, f->reply_body.len);
    } else {
        es_warn("filter %s: failed in %s; answering 500", name, hook_names[dir][hook]);
        es_stream__filter_failed(f->stream, 500, "filter error");
    }
    return ES_CHAIN_HALT;
}

/* A filter stopped at the end of the stream: nothing more will come to continue it. */
static es_chain_result_t stalled(es_filters_t *f, int dir, int pos, int hook)
{
    es_warn("filter %s: stopped at the end of the stream in %s; answering 500",
            f->chain->filters[index_of(f, dir, pos)].name, hook_names[dir][hook]);
    es_stream__filter_failed(f->stream, 500, "filter error");
    return ES_CHAIN_HALT;
}

static es_chain_result_t too_large(es_filters_t *f, int dir)
{
    es_warn("a filter buffered more than %u bytes of the %s body", ES_FILTER_BUFFER_LIMIT,
            dir == ES_DIR_REQUEST ? "request" : "response");
    if (dir == ES_DIR_REQUEST)
        es_stream__filter_failed(f->stream, 413, "request body too large");
    else
        es_stream__filter_failed(f->stream, 500, "response body too large for a filter");
    return ES_CHAIN_HALT;
}

/* Runs the headers through positions from..n-1; forwards them when they leave the chain. */
static es_chain_result_t run_headers(es_filters_t *f, int dir, int from, bool eos, bool whole_body)
{
    es_fdir_t *d = &f->dir[dir];
    for (int p = from; p < (int)f->chain->n; p++) {
        envoy_swift_status_t st = call(f, dir, p, HOOK_HEADERS, eos);
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
    return es_stream__forward_headers(f->stream, dir, eos, -1) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT;
}

es_chain_result_t es_filters_headers(es_filters_t *f, int dir, bool end_of_stream)
{
    if (end_of_stream)
        f->dir[dir].ended = true;
    return run_headers(f, dir, 0, end_of_stream, false);
}

/* Calls a body hook on a view (copied if the filter writes) or on a buffer it may change in place. */
static envoy_swift_status_t call_body(es_filters_t *f, int dir, int pos, es_buf_t *buf, const char **data,
                                      size_t *len, bool eos)
{
    es_fdir_t *d = &f->dir[dir];
    d->cur_buf = buf;
    d->cur_ptr = *data;
    d->cur_len = *len;
    d->cur_valid = true;
    envoy_swift_status_t st = call(f, dir, pos, HOOK_BODY, eos);
    d->cur_valid = false;
    if (d->cur_buf != NULL) {
        *data = d->cur_buf->base;
        *len = d->cur_buf->len;
    } else {
        *data = d->cur_ptr;
        *len = d->cur_len;
    }
    d->cur_buf = NULL;
    return st;
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

es_chain_result_t es_filters_body(es_filters_t *f, int dir, const char *data, size_t len, bool eos)
{
    es_fdir_t *d = &f->dir[dir];
    if (eos)
        d->ended = true;
    for (int p = 0; p < (int)f->chain->n; p++) {
        envoy_swift_status_t st;
        if (d->holder == p && d->mode != ENVOY_SWIFT_STATUS_STOP_NO_BUFFER) {
            if (es_buf_append(&d->held, data, len) != 0 || d->held.len > ES_FILTER_BUFFER_LIMIT)
                return too_large(f, dir);
            if (d->mode == ENVOY_SWIFT_STATUS_STOP_AND_BUFFER && !eos)
                return ES_CHAIN_OK;
            const char *b = d->held.base;
            size_t blen = d->held.len;
            st = call_body(f, dir, p, &d->held, &b, &blen, eos);
            if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
                return terminal(f, dir, p, HOOK_BODY, st);
            if (st != ENVOY_SWIFT_STATUS_CONTINUE)
                return eos ? stalled(f, dir, p, HOOK_BODY) : ES_CHAIN_OK;
            release_buffer(d, &d->held, &data, &len);
            if (run_headers(f, dir, p + 1, false, eos) == ES_CHAIN_HALT)
                return ES_CHAIN_HALT;
        } else if (d->holder == p) {
            /* STOP_NO_BUFFER: the filter sees each chunk; what it does not pass on is dropped. */
            st = call_body(f, dir, p, NULL, &data, &len, eos);
            if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
                return terminal(f, dir, p, HOOK_BODY, st);
            if (st != ENVOY_SWIFT_STATUS_CONTINUE)
                return eos ? stalled(f, dir, p, HOOK_BODY) : ES_CHAIN_OK;
            if (run_headers(f, dir, p + 1, false, false) == ES_CHAIN_HALT)
                return ES_CHAIN_HALT;
        } else if (d->sbuf_at == p) {
            if (es_buf_append(&d->sbuf, data, len) != 0 || d->sbuf.len > ES_FILTER_BUFFER_LIMIT)
                return too_large(f, dir);
            const char *b = d->sbuf.base;
            size_t blen = d->sbuf.len;
            st = call_body(f, dir, p, &d->sbuf, &b, &blen, eos);
            if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
                return terminal(f, dir, p, HOOK_BODY, st);
            if (st == ENVOY_SWIFT_STATUS_STOP_NO_BUFFER)
                d->sbuf.len = 0;
            if (st != ENVOY_SWIFT_STATUS_CONTINUE)
                return eos ? stalled(f, dir, p, HOOK_BODY) : ES_CHAIN_OK;
            d->sbuf_at = -1;
            release_buffer(d, &d->sbuf, &data, &len);
        } else {
            st = call_body(f, dir, p, NULL, &data, &len, eos);
            if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
                return terminal(f, dir, p, HOOK_BODY, st);
            if (st == ENVOY_SWIFT_STATUS_STOP_NO_BUFFER && !eos)
                return ES_CHAIN_OK;
            if (st != ENVOY_SWIFT_STATUS_CONTINUE) {
                if (eos)
                    return stalled(f, dir, p, HOOK_BODY);
                d->sbuf_at = p;
                d->sbuf.len = 0;
                if (es_buf_append(&d->sbuf, data, len) != 0)
                    return too_large(f, dir);
                return ES_CHAIN_OK;
            }
        }
    }
    return es_stream__forward_body(f->stream, dir, data, len, eos) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT;
}

es_chain_result_t es_filters_end(es_filters_t *f, int dir, bool has_trailers)
{
    if (has_trailers) {
        for (int p = 0; p < (int)f->chain->n; p++) {
            envoy_swift_status_t st = call(f, dir, p, HOOK_TRAILERS, true);
            if (st == ENVOY_SWIFT_STATUS_LOCAL_REPLY || st == ENVOY_SWIFT_STATUS_ERROR)
                return terminal(f, dir, p, HOOK_TRAILERS, st);
        }
    }
    f->dir[dir].trailers_sent = true;
    return es_stream__forward_end(f->stream, dir) == 0 ? ES_CHAIN_OK : ES_CHAIN_HALT;
}

/*
 * The host side of the ABI: the callbacks a filter library calls, and the stream handles that
 * make a stale call harmless. Handles live in a per-thread table (each worker thread has its
 * own), with a generation per slot and the thread's tag in the top bits.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/wake.h"
#include "filters/field_check.h"
#include "filters/filter_chain.h"
#include "filters/handles.h"
#include "filters/host_observe.h"
#include "upstream/callout.h"

/* Inside es_handles_run: results are applied before it returns. */
static __thread int running;

void es_handles_run(void)
{
    running = 1;
    /* Async work of no stream, until a library names the stream of each job it runs (job_stream); and
     * whatever it named last is no longer running once the run returns. */
    es_filters_async_work(1);
    es_filters_worker_run(es_handles_worker());
    es_filters_async_work(0);
    /* Each result continues its stream here, on the stream's thread, outside any hook. */
    es_filters_t *f;
    while ((f = es_handles_next_posted()) != NULL) {
        f->resume_queued = false;
        es_filters_owner_t *o = f->owner;
        es_filters_resume(f, f->resume_status);
        o->ops->resumed(o);
    }
    running = 0;
}

/* The stream behind a handle, inside one of its hooks, or while one of its hooks is RUNNING. */
static es_filters_t *lookup(envoy_swift_stream_t h)
{
    es_filters_t *f = es_handles_lookup(h);
    return f != NULL && (f->in_hook || f->run.active) ? f : NULL;
}

/* ---- headers ---------------------------------------------------------------------------- */

static es_msg_t *map_of(es_filters_t *f, envoy_swift_header_map_t map, int *trailers, bool writing, int *err)
{
    es_filters_owner_t *o = f->owner;
    int dir = map >= ENVOY_SWIFT_RESPONSE_HEADERS ? ES_DIR_RESPONSE : ES_DIR_REQUEST;
    *trailers = map == ENVOY_SWIFT_REQUEST_TRAILERS || map == ENVOY_SWIFT_RESPONSE_TRAILERS;
    *err = ENVOY_SWIFT_OK;
    if ((unsigned)map > ENVOY_SWIFT_RESPONSE_TRAILERS) {
        *err = ENVOY_SWIFT_ERR_INVALID;
        return NULL;
    }
    if (dir == ES_DIR_RESPONSE && (o->resp == NULL || !f->dir[ES_DIR_RESPONSE].headers_in)) {
        *err = ENVOY_SWIFT_ERR_STATE; /* no response yet */
        return NULL;
    }
    if (writing && (*trailers ? f->dir[dir].trailers_sent : f->dir[dir].headers_sent)) {
        *err = ENVOY_SWIFT_ERR_STATE;
        return NULL;
    }
    return dir == ES_DIR_RESPONSE ? o->resp : o->req;
}

/* The live stream's map and its section, or an error in *err. */
static es_msg_t *lookup_map(envoy_swift_stream_t h, envoy_swift_header_map_t map, bool writing, uint32_t *from,
                            uint32_t *to, int *err)
{
    es_filters_t *f = lookup(h);
    int t;
    if (f == NULL) {
        *err = ENVOY_SWIFT_ERR_GONE;
        return NULL;
    }
    es_msg_t *m = map_of(f, map, &t, writing, err);
    if (m != NULL)
        es_msg_section(m, t, from, to);
    return m;
}

static int valid_name(envoy_swift_bytes_t n)
{
    return es_field_name_ok(n.ptr, n.length);
}

static int valid_value(envoy_swift_bytes_t v)
{
    return es_field_value_ok(v.ptr, v.length);
}

static int header_count(envoy_swift_stream_t h, envoy_swift_header_map_t map, size_t *count)
{
    uint32_t from, to;
    int err;
    es_msg_t *m = lookup_map(h, map, false, &from, &to, &err);
    if (m == NULL)
        return err;
    *count = to - from;
    return ENVOY_SWIFT_OK;
}

static int header_at(envoy_swift_stream_t h, envoy_swift_header_map_t map, size_t index, envoy_swift_bytes_t *name,
                     envoy_swift_bytes_t *value)
{
    uint32_t from, to;
    int err;
    es_msg_t *m = lookup_map(h, map, false, &from, &to, &err);
    if (m == NULL)
        return err;
    if (index >= to - from)
        return ENVOY_SWIFT_ERR_NOT_FOUND;
    name->ptr = es_msg_name(m, from + (uint32_t)index, &name->length);
    value->ptr = es_msg_value(m, from + (uint32_t)index, &value->length);
    return ENVOY_SWIFT_OK;
}

static int header_get(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name, size_t nth,
                      envoy_swift_bytes_t *value)
{
    uint32_t from, to;
    int err;
    es_msg_t *m = lookup_map(h, map, false, &from, &to, &err);
    if (m == NULL)
        return err;
    for (uint32_t i = from; i < to; i++) {
        size_t nlen;
        const char *n = es_msg_name(m, i, &nlen);
        if (es_name_eq(n, nlen, name.ptr, name.length) && nth-- == 0) {
            value->ptr = es_msg_value(m, i, &value->length);
            return ENVOY_SWIFT_OK;
        }
    }
    return ENVOY_SWIFT_ERR_NOT_FOUND;
}

static void remove_all(es_msg_t *m, int t, envoy_swift_bytes_t name)
{
    uint32_t from, to;
    es_msg_section(m, t, &from, &to);
    for (uint32_t i = from; i < to;) {
        size_t nlen;
        const char *n = es_msg_name(m, i, &nlen);
        if (es_name_eq(n, nlen, name.ptr, name.length)) {
            es_msg_remove_at(m, i);
            to--;
        } else {
            i++;
        }
    }
}

static int header_change(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                         const envoy_swift_bytes_t *value, bool replace)
{
    es_filters_t *f = lookup(h);
    int t, err;
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    if (!valid_name(name) || (value != NULL && !valid_value(*value)))
        return ENVOY_SWIFT_ERR_INVALID; /* never let CR, LF or NUL reach the wire */
    es_msg_t *m = map_of(f, map, &t, true, &err);
    if (m == NULL)
        return err;
    if (map == ENVOY_SWIFT_REQUEST_HEADERS)
        f->route_dirty = true; /* it may change the route: matched again after the hook */
    if (replace)
        remove_all(m, t, name);
    if (value != NULL && es_msg_add(m, t, name.ptr, name.length, value->ptr, value->length) != 0)
        return ENVOY_SWIFT_ERR_NOMEM;
    return ENVOY_SWIFT_OK;
}

static int header_set(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                      envoy_swift_bytes_t value)
{
    return header_change(h, map, name, &value, true);
}

static int header_add(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                      envoy_swift_bytes_t value)
{
    return header_change(h, map, name, &value, false);
}

static int header_remove(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name)
{
    return header_change(h, map, name, NULL, true);
}

/* ---- body ------------------------------------------------------------------------------- */

static es_fdir_t *body_of(envoy_swift_stream_t h, envoy_swift_body_t which, int *err)
{
    es_filters_t *f = lookup(h);
    *err = ENVOY_SWIFT_ERR_GONE;
    if (f == NULL)
        return NULL;
    *err = ENVOY_SWIFT_ERR_INVALID;
    if ((unsigned)which > ENVOY_SWIFT_RESPONSE_BODY)
        return NULL;
    es_fdir_t *d = &f->dir[which == ENVOY_SWIFT_RESPONSE_BODY ? ES_DIR_RESPONSE : ES_DIR_REQUEST];
    *err = ENVOY_SWIFT_ERR_STATE;
    return d->cur_valid ? d : NULL; /* only inside a body hook of that direction */
}

/* The body as a buffer the filter may change: a view is copied on the first write. */
static es_buf_t *writable(es_fdir_t *d)
{
    if (d->cur_buf != NULL)
        return d->cur_buf;
    if (!(d->cur_ptr == d->scratch.base && d->cur_len == d->scratch.len)) {
        d->scratch.len = 0;
        if (es_buf_append(&d->scratch, d->cur_ptr, d->cur_len) != 0)
            return NULL;
    }
    d->cur_buf = &d->scratch;
    return d->cur_buf;
}

static int body_get(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t *out)
{
    int err;
    es_fdir_t *d = body_of(h, which, &err);
    if (d == NULL)
        return err;
    out->ptr = d->cur_buf ? d->cur_buf->base : d->cur_ptr;
    out->length = d->cur_buf ? d->cur_buf->len : d->cur_len;
    if (out->ptr == NULL)
        out->ptr = "";
    return ENVOY_SWIFT_OK;
}

static int body_edit(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t data, int op)
{
    int err;
    es_fdir_t *d = body_of(h, which, &err);
    if (d == NULL)
        return err;
    if (data.length > 0 && data.ptr == NULL)
        return ENVOY_SWIFT_ERR_INVALID;
    es_buf_t *b = writable(d);
    if (b == NULL)
        return ENVOY_SWIFT_ERR_NOMEM;
    if (op == 0) { /* append */
        if (es_buf_append(b, data.ptr, data.length) != 0)
            return ENVOY_SWIFT_ERR_NOMEM;
    } else if (op == 1) { /* prepend */
        if (es_buf_reserve(b, data.length) == NULL)
            return ENVOY_SWIFT_ERR_NOMEM;
        memmove(b->base + data.length, b->base, b->len);
        memcpy(b->base, data.ptr, data.length);
        b->len += data.length;
    } else { /* replace */
        b->len = 0;
        if (es_buf_append(b, data.ptr, data.length) != 0)
            return ENVOY_SWIFT_ERR_NOMEM;
    }
    return ENVOY_SWIFT_OK;
}

static int body_append(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t data)
{
    return body_edit(h, which, data, 0);
}

static int body_prepend(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t data)
{
    return body_edit(h, which, data, 1);
}

static int body_replace(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t data)
{
    return body_edit(h, which, data, 2);
}

static int body_drain(envoy_swift_stream_t h, envoy_swift_body_t which, size_t length)
{
    int err;
    es_fdir_t *d = body_of(h, which, &err);
    if (d == NULL)
        return err;
    if (d->cur_buf == NULL) {
        /* A view shrinks without a copy. */
        size_t n = length < d->cur_len ? length : d->cur_len;
        d->cur_ptr += n;
        d->cur_len -= n;
        return ENVOY_SWIFT_OK;
    }
    es_buf_consume(d->cur_buf, length);
    return ENVOY_SWIFT_OK;
}

/* ---- facts, replies, logs --------------------------------------------------------------- */

static int attribute_get(envoy_swift_stream_t h, envoy_swift_attribute_t attr, envoy_swift_bytes_t *out)
{
    es_filters_t *f = es_host_lookup_read(h);
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    if (attr >= ENVOY_SWIFT_ATTR_ROUTE_NAME)
        return es_host_attribute_obs(f, attr, out);
    es_filters_owner_t *o = f->owner;
    size_t urllen;
    const char *url = es_msg_first(o->req, &urllen);
    const char *q = memchr(url, '?', urllen);
    switch (attr) {
    case ENVOY_SWIFT_ATTR_METHOD:
        *out = (envoy_swift_bytes_t){o->method, o->method_len};
        return ENVOY_SWIFT_OK;
    case ENVOY_SWIFT_ATTR_PATH:
        out->ptr = url;
        out->length = q ? (size_t)(q - url) : urllen;
        return ENVOY_SWIFT_OK;
    case ENVOY_SWIFT_ATTR_QUERY:
        out->ptr = q ? q + 1 : "";
        out->length = q ? urllen - (size_t)(q - url) - 1 : 0;
        return ENVOY_SWIFT_OK;
    case ENVOY_SWIFT_ATTR_AUTHORITY: {
        int i = es_msg_find(o->req, "host", 4, 0);
        if (i < 0) {
            *out = (envoy_swift_bytes_t){"", 0};
            return ENVOY_SWIFT_OK;
        }
        out->ptr = es_msg_value(o->req, (uint32_t)i, &out->length);
        return ENVOY_SWIFT_OK;
    }
    case ENVOY_SWIFT_ATTR_SCHEME:
        *out = o->tls ? (envoy_swift_bytes_t){"https", 5} : (envoy_swift_bytes_t){"http", 4};
        return ENVOY_SWIFT_OK;
    case ENVOY_SWIFT_ATTR_PROTOCOL:
        *out = o->protocol == ES_PROTO_HTTP2   ? (envoy_swift_bytes_t){"HTTP/2", 6}
               : o->protocol == ES_PROTO_HTTP10 ? (envoy_swift_bytes_t){"HTTP/1.0", 8}
                                                : (envoy_swift_bytes_t){"HTTP/1.1", 8};
        return ENVOY_SWIFT_OK;
    case ENVOY_SWIFT_ATTR_CLIENT_ADDRESS:
        snprintf(f->attr_scratch, sizeof(f->attr_scratch), strchr(o->peer_ip, ':') ? "[%s]:%u" : "%s:%u",
                 o->peer_ip, o->peer_port);
        *out = (envoy_swift_bytes_t){f->attr_scratch, strlen(f->attr_scratch)};
        return ENVOY_SWIFT_OK;
    case ENVOY_SWIFT_ATTR_RESPONSE_STATUS:
        if (o->resp_status == 0)
            return ENVOY_SWIFT_ERR_NOT_FOUND;
        snprintf(f->attr_scratch, sizeof(f->attr_scratch), "%d", o->resp_status);
        *out = (envoy_swift_bytes_t){f->attr_scratch, strlen(f->attr_scratch)};
        return ENVOY_SWIFT_OK;
    default:
        return ENVOY_SWIFT_ERR_NOT_FOUND;
    }
}

static int send_local_reply(envoy_swift_stream_t h, int status, const envoy_swift_bytes_t *names,
                            const envoy_swift_bytes_t *values, size_t count, envoy_swift_bytes_t body)
{
    es_filters_t *f = lookup(h);
    if (f == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    if (status < 200 || status > 599 || (count > 0 && (names == NULL || values == NULL)) ||
        (body.length > 0 && body.ptr == NULL))
        return ENVOY_SWIFT_ERR_INVALID;
    for (size_t i = 0; i < count; i++)
        if (!valid_name(names[i]) || !valid_value(values[i]))
            return ENVOY_SWIFT_ERR_INVALID;
    es_msg_reset(&f->reply_headers);
    es_msg_headers_done(&f->reply_headers);
    f->reply_body.len = 0;
    for (size_t i = 0; i < count; i++)
        if (es_msg_add(&f->reply_headers, 0, names[i].ptr, names[i].length, values[i].ptr, values[i].length) != 0)
            return ENVOY_SWIFT_ERR_NOMEM;
    if (es_buf_append(&f->reply_body, body.ptr, body.length) != 0)
        return ENVOY_SWIFT_ERR_NOMEM;
    f->reply_status = status;
    f->has_reply = true;
    return ENVOY_SWIFT_OK;
}

static void host_log(envoy_swift_log_level_t level, envoy_swift_bytes_t filter, envoy_swift_bytes_t message)
{
    if ((int)level < (int)es_log_level || (unsigned)level > ENVOY_SWIFT_LOG_ERROR)
        return;
    if (filter.length > 0)
        es_log((es_log_level_t)level, "filter %.*s: %.*s", (int)filter.length, filter.ptr, (int)message.length,
               message.ptr);
    else
        es_log((es_log_level_t)level, "%.*s", (int)message.length, message.ptr);
}

static envoy_swift_log_level_t host_log_level(void)
{
    return (envoy_swift_log_level_t)es_log_level;
}

/* ---- async -------------------------------------------------------------------------------- */

static int resume(envoy_swift_stream_t h, envoy_swift_status_t status)
{
    es_filters_t *f = es_handles_lookup(h);
    if (f == NULL || f->halted)
        return ENVOY_SWIFT_ERR_GONE; /* ended, or the host stopped waiting (timeout) */
    if (!f->run.active || f->resume_queued)
        return ENVOY_SWIFT_ERR_STATE;
    f->resume_status = status;
    f->resume_queued = true;
    es_handles_post(f);
    if (!running)
        es_wake(es_handles_worker()); /* called outside a worker run: apply it on the next wake-up */
    return ENVOY_SWIFT_OK;
}

static void wake(uint32_t worker)
{
    es_wake(worker);
}

static int callout(envoy_swift_stream_t h, const envoy_swift_callout_request_t *req, uint64_t token)
{
    es_filters_t *f = lookup(h);
    if (f == NULL || f->halted)
        return ENVOY_SWIFT_ERR_GONE;
    return es_callout_start(&f->callouts, es_filters_current_lib(f), f->owner->env, req, token);
}

static void job_stream(envoy_swift_stream_t h)
{
    es_filters_job_stream(h != 0 ? es_handles_lookup(h) : NULL);
}

envoy_swift_host_t es_filter_host = {
    .abi_version = ENVOY_SWIFT_ABI_VERSION,
    .size = sizeof(envoy_swift_host_t),
    .header_count = header_count,
    .header_at = header_at,
    .header_get = header_get,
    .header_set = header_set,
    .header_add = header_add,
    .header_remove = header_remove,
    .body_get = body_get,
    .body_append = body_append,
    .body_prepend = body_prepend,
    .body_replace = body_replace,
    .body_drain = body_drain,
    .attribute_get = attribute_get,
    .send_local_reply = send_local_reply,
    .log = host_log,
    .log_level = host_log_level,
    .worker_count = 1,
    .wake = wake,
    .resume = resume,
    .callout = callout,
    .job_stream = job_stream,
    .stream_info = es_host_stream_info,
    .state_get = es_host_state_get,
    .state_set = es_host_state_set,
    .state_log = es_host_state_log,
    .metric_define = es_host_metric_define,
    .metric_record = es_host_metric_record,
    .metric_set = es_host_metric_set,
};

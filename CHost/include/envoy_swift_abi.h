/*
 * envoy_swift_abi.h: the C ABI between the envoy-swift host and an HTTP filter library
 * (libswiftfilter.so, or any shared object that implements the hooks below).
 *
 * Contract
 * - Standard C headers only. The host dlopen()s a library, reads envoy_swift_abi_version(), and
 *   refuses a library with another version or a missing hook.
 * - Three prefixes: envoy_swift_*_t are types; envoy_swift_filter_* / envoy_swift_program_* are
 *   hooks the library implements; envoy_swift_host_t holds the callbacks the host implements.
 * - Threads: every hook is called on the worker thread that owns the stream, and the host calls
 *   a filter instance again only after its previous hook returned (or, for a hook that returned
 *   RUNNING, after it resumed). Host callbacks may be called only on that thread, only during a
 *   hook of the same stream or while one of its hooks is RUNNING (log, log_level and wake are the
 *   exceptions: any thread, any time).
 * - Async: a hook may return ENVOY_SWIFT_STATUS_RUNNING and go on in the library's own task. The
 *   host then holds the stream (nothing goes upstream or downstream, body bytes are buffered up
 *   to the listener's watermark) until the library calls resume() with the final status. To run
 *   code on a worker thread the library calls wake(worker) from any thread; the host answers by
 *   calling envoy_swift_worker_run(worker) on that worker's thread, soon.
 * - Handles, not pointers, name streams. A callback with the handle of a stream that has ended
 *   returns ENVOY_SWIFT_ERR_GONE and touches nothing.
 * - Trust: the library runs in the host's process; the ABI protects against mistakes (stale
 *   handles, header injection), not against malice.
 *
 * Versioning: ENVOY_SWIFT_ABI_VERSION changes whenever a hook, a callback, or an enum value changes
 * meaning or shape. Callbacks are only ever appended to envoy_swift_host_t; `size` tells how many
 * a host provides.
 */
#ifndef ENVOY_SWIFT_ABI_H
#define ENVOY_SWIFT_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENVOY_SWIFT_ABI_VERSION 4

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                      */

/* A stream (one request/response exchange). 0 is never a valid handle. */
typedef uint64_t envoy_swift_stream_t;

/*
 * Bytes passed across the ABI.
 * OWNERSHIP: borrowed. Bytes the host returns stay valid until the hook that received them
 * returns, or until the next callback that changes the same header map or body, whichever is
 * first. Bytes the library passes are copied by the host before the callback returns.
 */
typedef struct {
    const char *ptr;
    size_t length;
} envoy_swift_bytes_t;

/* What a hook tells the host to do next. The meanings are Envoy's. */
typedef enum {
    /* Pass the headers/data on to the next filter. */
    ENVOY_SWIFT_STATUS_CONTINUE = 0,
    /* Headers: hold them, and buffer the body until the end of the stream, then call the body hook
     * once with the whole body (end_of_stream true). Body: keep this data in the buffer and call
     * again with everything buffered when more arrives. Over the buffer limit: 413 (request) or
     * 500 (response). */
    ENVOY_SWIFT_STATUS_STOP_AND_BUFFER = 1,
    /* As STOP_AND_BUFFER, but over the buffer's high watermark the host stops reading instead of
     * failing; the filter is called again as data arrives. */
    ENVOY_SWIFT_STATUS_STOP_AND_BUFFER_WATERMARK = 2,
    /* Hold the headers; do not buffer: each body chunk is handed to this filter and then dropped
     * unless the filter moved it elsewhere (for example appended it to the body later). */
    ENVOY_SWIFT_STATUS_STOP_NO_BUFFER = 3,
    /* The filter called send_local_reply during this hook: end the stream with that reply. */
    ENVOY_SWIFT_STATUS_LOCAL_REPLY = 4,
    /* The filter failed (a Swift error was thrown): the host answers 500 and logs it. */
    ENVOY_SWIFT_STATUS_ERROR = 5,
    /* The hook goes on asynchronously: the host holds the stream until resume() gives one of the
     * statuses above. Past the filter's timeout the host calls envoy_swift_filter_cancel and
     * answers 504 (or the configured status); a later resume() gets ENVOY_SWIFT_ERR_GONE. */
    ENVOY_SWIFT_STATUS_RUNNING = 6,
    /* As CONTINUE, and the filter does not implement this hook at all (the SDK's default ran): the
     * host need never call this hook again for this filter config, on any stream or worker. Saves
     * a crossing per stream for every callback a filter leaves out. Never a resume() status. */
    ENVOY_SWIFT_STATUS_CONTINUE_SKIP = 7,
} envoy_swift_status_t;

/* Result of a host callback: 0 or a negative error. */
typedef enum {
    ENVOY_SWIFT_OK = 0,
    ENVOY_SWIFT_ERR_GONE = -1,      /* the stream has ended, or the call is on the wrong thread */
    ENVOY_SWIFT_ERR_NOT_FOUND = -2, /* no such header / attribute / index */
    ENVOY_SWIFT_ERR_INVALID = -3,   /* a header name or value with CR, LF or NUL, a bad status... */
    ENVOY_SWIFT_ERR_STATE = -4,     /* not now: e.g. request headers after they went upstream */
    ENVOY_SWIFT_ERR_NOMEM = -5,
    ENVOY_SWIFT_ERR_TIMEOUT = -6,   /* a call-out took longer than its timeout */
    ENVOY_SWIFT_ERR_UPSTREAM = -7,  /* a call-out's upstream failed: refused, reset, malformed, too large */
    ENVOY_SWIFT_ERR_CANCELLED = -8, /* a call-out's stream ended (or its filter timed out) first */
} envoy_swift_result_t;

typedef enum {
    ENVOY_SWIFT_REQUEST_HEADERS = 0,
    ENVOY_SWIFT_REQUEST_TRAILERS = 1,
    ENVOY_SWIFT_RESPONSE_HEADERS = 2,
    ENVOY_SWIFT_RESPONSE_TRAILERS = 3,
} envoy_swift_header_map_t;

typedef enum {
    ENVOY_SWIFT_REQUEST_BODY = 0,
    ENVOY_SWIFT_RESPONSE_BODY = 1,
} envoy_swift_body_t;

typedef enum {
    ENVOY_SWIFT_ATTR_METHOD = 0,         /* "GET" */
    ENVOY_SWIFT_ATTR_PATH = 1,           /* "/a/b" without the query */
    ENVOY_SWIFT_ATTR_QUERY = 2,          /* "x=1&y=2" without '?', "" when none */
    ENVOY_SWIFT_ATTR_AUTHORITY = 3,      /* the Host header, "" when none */
    ENVOY_SWIFT_ATTR_SCHEME = 4,         /* "http" or "https" */
    ENVOY_SWIFT_ATTR_PROTOCOL = 5,       /* "HTTP/1.1" or "HTTP/1.0" */
    ENVOY_SWIFT_ATTR_CLIENT_ADDRESS = 6, /* "127.0.0.1:51234" ("[::1]:51234" for IPv6) */
    ENVOY_SWIFT_ATTR_RESPONSE_STATUS = 7,/* "200", once response headers exist */
    /* ABI 4: the stream's route and upstream. NOT_FOUND while there is none. */
    ENVOY_SWIFT_ATTR_ROUTE_NAME = 8,     /* the matched route's `name` ("" when it has none) */
    ENVOY_SWIFT_ATTR_CLUSTER = 9,        /* the matched route's cluster */
    ENVOY_SWIFT_ATTR_UPSTREAM_HOST = 10, /* "127.0.0.1:8080": the upstream endpoint the request went to */
    ENVOY_SWIFT_ATTR_RESPONSE_FLAGS = 11,/* "UF,UT" (Envoy's letters, see ENVOY_SWIFT_RF_*), "" when none */
} envoy_swift_attribute_t;

/* Response flags (ABI 4): why an exchange ended as it did, Envoy's letters. */
enum {
    ENVOY_SWIFT_RF_UF = 1u << 0,  /* upstream connection failure */
    ENVOY_SWIFT_RF_UT = 1u << 1,  /* upstream request timeout (504) */
    ENVOY_SWIFT_RF_UC = 1u << 2,  /* upstream connection termination */
    ENVOY_SWIFT_RF_DC = 1u << 3,  /* downstream connection termination: the client went away */
    ENVOY_SWIFT_RF_LR = 1u << 4,  /* local reply: the proxy answered, not the upstream */
    ENVOY_SWIFT_RF_NR = 1u << 5,  /* no route */
    ENVOY_SWIFT_RF_UO = 1u << 6,  /* upstream overflow: the upstream refused the stream */
    ENVOY_SWIFT_RF_DPE = 1u << 7, /* downstream protocol error (400, 431, 501) */
    ENVOY_SWIFT_RF_UPE = 1u << 8, /* upstream protocol error (502) */
    ENVOY_SWIFT_RF_SI = 1u << 9,  /* stream idle timeout */
    ENVOY_SWIFT_RF_DT = 1u << 10, /* downstream request timeout (408) */
    ENVOY_SWIFT_RF_FT = 1u << 11, /* a filter hook ran past its timeout */
    ENVOY_SWIFT_RF_FE = 1u << 12, /* a filter failed or was quarantined */
};

/* What the exchange was (ABI 4): complete in on_stream_complete, partial before. */
typedef struct {
    uint64_t start_unix_us;        /* when the request began, microseconds since 1970 (UTC) */
    uint64_t duration_us;          /* from the start to the end (to now while the stream runs) */
    uint64_t upstream_first_byte_us; /* from the start to the upstream's response head; UINT64_MAX: none came */
    uint64_t request_body_bytes;   /* read from the client */
    uint64_t response_body_bytes;  /* sent to the client */
    uint32_t response_flags;       /* ENVOY_SWIFT_RF_* */
    int32_t response_code;         /* the status sent to the client; 0 while none was */
} envoy_swift_stream_info_t;

/* Kinds of a filter's metrics (ABI 4). */
typedef enum {
    ENVOY_SWIFT_METRIC_COUNTER = 0,
    ENVOY_SWIFT_METRIC_GAUGE = 1,
    ENVOY_SWIFT_METRIC_HISTOGRAM = 2,
} envoy_swift_metric_kind_t;

typedef enum {
    ENVOY_SWIFT_LOG_DEBUG = 0,
    ENVOY_SWIFT_LOG_INFO = 1,
    ENVOY_SWIFT_LOG_WARN = 2,
    ENVOY_SWIFT_LOG_ERROR = 3,
} envoy_swift_log_level_t;

/*
 * An HTTP call-out: a request a filter sends to a configured cluster, through the host's pool.
 * OWNERSHIP: borrowed for the duration of the callout() call; the host copies what it keeps.
 */
typedef struct {
    envoy_swift_bytes_t cluster;       /* a cluster name from the YAML */
    envoy_swift_bytes_t method;        /* "GET", "POST"... */
    envoy_swift_bytes_t path;          /* "/check?x=1" */
    const envoy_swift_bytes_t *header_names; /* header_count of each; Host defaults to the endpoint */
    const envoy_swift_bytes_t *header_values;
    size_t header_count;
    envoy_swift_bytes_t body;          /* sent with Content-Length when not empty */
    uint64_t timeout_ms;               /* 0: the host's default (5 s) */
} envoy_swift_callout_request_t;

/*
 * The answer to a call-out. OWNERSHIP: borrowed; valid only during envoy_swift_callout_done.
 */
typedef struct {
    int result;                        /* ENVOY_SWIFT_OK, or _ERR_TIMEOUT / _ERR_UPSTREAM / _ERR_CANCELLED */
    int status;                        /* the HTTP status when result is OK */
    const envoy_swift_bytes_t *header_names;
    const envoy_swift_bytes_t *header_values;
    size_t header_count;
    envoy_swift_bytes_t body;          /* at most 4 MiB; a larger body is ERR_UPSTREAM */
    envoy_swift_bytes_t reason;        /* one line saying what went wrong when result is not OK */
} envoy_swift_callout_response_t;

/* ------------------------------------------------------------------------------------------ */
/* Callbacks the host implements, handed to the library once by envoy_swift_program_init.     */

typedef struct envoy_swift_host_s {
    uint32_t abi_version; /* ENVOY_SWIFT_ABI_VERSION of the host */
    size_t size;          /* sizeof(envoy_swift_host_t) of the host */

    /* Headers. Names compare case-insensitively. */
    int (*header_count)(envoy_swift_stream_t s, envoy_swift_header_map_t map, size_t *count);
    /* The index-th header in wire order. */
    int (*header_at)(envoy_swift_stream_t s, envoy_swift_header_map_t map, size_t index, envoy_swift_bytes_t *name,
                     envoy_swift_bytes_t *value);
    /* The nth (0-based) value of `name`; ENVOY_SWIFT_ERR_NOT_FOUND past the last. */
    int (*header_get)(envoy_swift_stream_t s, envoy_swift_header_map_t map, envoy_swift_bytes_t name, size_t nth,
                      envoy_swift_bytes_t *value);
    /* Replaces every value of `name` with one value (adds it when absent). */
    int (*header_set)(envoy_swift_stream_t s, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                      envoy_swift_bytes_t value);
    /* Adds one more value. */
    int (*header_add)(envoy_swift_stream_t s, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                      envoy_swift_bytes_t value);
    /* Removes every value of `name`; OK when there was none. */
    int (*header_remove)(envoy_swift_stream_t s, envoy_swift_header_map_t map, envoy_swift_bytes_t name);

    /* The body the current hook sees: the chunk just received, or everything buffered.
     * OWNERSHIP: the view is borrowed, see envoy_swift_bytes_t. */
    int (*body_get)(envoy_swift_stream_t s, envoy_swift_body_t which, envoy_swift_bytes_t *out);
    int (*body_append)(envoy_swift_stream_t s, envoy_swift_body_t which, envoy_swift_bytes_t data);
    int (*body_prepend)(envoy_swift_stream_t s, envoy_swift_body_t which, envoy_swift_bytes_t data);
    int (*body_replace)(envoy_swift_stream_t s, envoy_swift_body_t which, envoy_swift_bytes_t data);
    /* Drops the first `length` bytes (all of them when length exceeds the body). */
    int (*body_drain)(envoy_swift_stream_t s, envoy_swift_body_t which, size_t length);

    int (*attribute_get)(envoy_swift_stream_t s, envoy_swift_attribute_t attr, envoy_swift_bytes_t *out);

    /* Ends the stream with this response instead of the upstream's; the hook then returns
     * ENVOY_SWIFT_STATUS_LOCAL_REPLY. names/values: `count` pairs. */
    int (*send_local_reply)(envoy_swift_stream_t s, int status, const envoy_swift_bytes_t *names,
                            const envoy_swift_bytes_t *values, size_t count, envoy_swift_bytes_t body);

    /* The host's log; `filter` names the filter instance ("" when none). Any thread. */
    void (*log)(envoy_swift_log_level_t level, envoy_swift_bytes_t filter, envoy_swift_bytes_t message);
    /* The host's current level, so a library can skip formatting what would be dropped. */
    envoy_swift_log_level_t (*log_level)(void);

    /* ---- async (ABI 2) ---- */
    /* How many workers the host runs; worker indexes are 0..worker_count-1. */
    uint32_t worker_count;
    /* Asks the host to call envoy_swift_worker_run(worker) on that worker's thread. Any thread,
     * any time; wakes are coalesced (several wakes may give one run). */
    void (*wake)(uint32_t worker);
    /* Ends the RUNNING hook of stream `s` with `status` (not RUNNING). The stream's thread only.
     * The host continues the chain after the current hook or worker run returns, never inside
     * this call. ERR_GONE when the stream ended or stopped waiting (timeout), ERR_STATE when no
     * hook of the stream is RUNNING. For LOCAL_REPLY, call send_local_reply first. */
    int (*resume)(envoy_swift_stream_t s, envoy_swift_status_t status);
    /* Starts an HTTP call-out for stream `s` (inside a hook or while one is RUNNING). Returns OK,
     * and then envoy_swift_callout_done(token, ...) is called exactly once on this thread, later,
     * never inside this call. ERR_NOT_FOUND for an unknown cluster, ERR_INVALID for a bad method,
     * path or header. */
    int (*callout)(envoy_swift_stream_t s, const envoy_swift_callout_request_t *request, uint64_t token);

    /* ---- crash attribution (appended in ABI 3; check `size` before calling) ---- */
    /* Says which stream the work the library is about to run on this worker thread belongs to (a job
     * of an async hook's task, inside envoy_swift_worker_run); 0 when it belongs to none. The host only
     * records it, so that a trap in that work is blamed on the stream's RUNNING filter and request. The
     * worker's thread only; cheap enough to call before every job. */
    void (*job_stream)(envoy_swift_stream_t s);

    /* ---- ABI 4: stream info, request state, metrics ---- */
    /* What the exchange was so far. Valid in hooks, while one is RUNNING, and in on_stream_complete
     * (where it is complete); attribute_get is valid there too. */
    int (*stream_info)(envoy_swift_stream_t s, envoy_swift_stream_info_t *out);
    /* The library's state of stream `s`: one pointer the host keeps for the stream, shared by every
     * filter of its chain; NULL until set. When the stream ends, after every instance's destroy,
     * the host calls envoy_swift_stream_state_free(state) once. Valid in hooks, while one is
     * RUNNING, and in on_stream_complete. */
    int (*state_get)(envoy_swift_stream_t s, void **out);
    int (*state_set)(envoy_swift_stream_t s, void *state);
    /* Names a value for the access log (%FILTER_STATE(name)%), replacing an earlier one of that name.
     * The host copies both. ERR_INVALID for an empty name or one over 64 bytes, a value over 1 KiB. */
    int (*state_log)(envoy_swift_stream_t s, envoy_swift_bytes_t name, envoy_swift_bytes_t value);
    /* Defines a metric of the filter named `filter` (its YAML name), with fixed label names and, for a
     * histogram, ascending bucket upper bounds (nbuckets 0: the host's duration buckets, in seconds).
     * Only inside envoy_swift_filter_config_new. It shows as envoy_swift_filter_<filter>_<name> in the
     * Prometheus format and filter.<filter>.<name> in the flat stats. Defining it again (a route's
     * config of the same filter) gives the same id. ERR_INVALID: a bad name, more than 4 labels or 16
     * buckets, bounds not ascending, the name defined with another kind or labels. */
    int (*metric_define)(envoy_swift_bytes_t filter, envoy_swift_metric_kind_t kind, envoy_swift_bytes_t name,
                         const envoy_swift_bytes_t *label_names, size_t nlabels, const double *buckets,
                         size_t nbuckets, uint32_t *id);
    /* Records into metric `id` with these label values (as many as its label names): a counter adds
     * `value` (>= 0), a gauge adds it (negative to go down), a histogram observes it. The worker's
     * thread (hooks, on_stream_complete, an async task's jobs); no allocation. ERR_INVALID for an
     * unknown id, a wrong label count or a negative counter increment; ERR_NOMEM when the worker's
     * series table is full (counted). */
    int (*metric_record)(uint32_t id, const envoy_swift_bytes_t *label_values, size_t nvalues, double value);
    /* Sets a gauge. */
    int (*metric_set)(uint32_t id, const envoy_swift_bytes_t *label_values, size_t nvalues, double value);
} envoy_swift_host_t;

/* ------------------------------------------------------------------------------------------ */
/* Hooks the library implements (exported C symbols).                                          */

/* Returns ENVOY_SWIFT_ABI_VERSION as the library was built. Called first. */
uint32_t envoy_swift_abi_version(void);

/* Called once per library after the version check. OWNERSHIP: `host` stays valid for the life of
 * the process. Returns 0 or a negative value (the host then refuses the library). */
int envoy_swift_program_init(const envoy_swift_host_t *host);

/*
 * Creates the configuration of one filter in a chain, at startup.
 * name: the instance name from YAML; plugin_name: which registered filter; config_json: the
 * plugin_config as JSON text ("null" when absent).
 * Returns an opaque config, or NULL with a one-line reason in err (unknown plugin, config rejected).
 * OWNERSHIP: the library owns the returned config until envoy_swift_filter_config_destroy.
 */
void *envoy_swift_filter_config_new(envoy_swift_bytes_t name, envoy_swift_bytes_t plugin_name,
                                    envoy_swift_bytes_t config_json, char *err, size_t errlen);
void envoy_swift_filter_config_destroy(void *config);

/* A filter instance for one stream, on worker `worker` (0..worker_count-1). Returns NULL on
 * failure (the host answers 500).
 * OWNERSHIP: the library owns the instance until envoy_swift_filter_destroy. */
void *envoy_swift_filter_new(void *config, envoy_swift_stream_t stream, uint32_t worker);

envoy_swift_status_t envoy_swift_filter_on_request_headers(void *filter, bool end_of_stream);
envoy_swift_status_t envoy_swift_filter_on_request_body(void *filter, bool end_of_stream);
envoy_swift_status_t envoy_swift_filter_on_request_trailers(void *filter);
envoy_swift_status_t envoy_swift_filter_on_response_headers(void *filter, bool end_of_stream);
envoy_swift_status_t envoy_swift_filter_on_response_body(void *filter, bool end_of_stream);
envoy_swift_status_t envoy_swift_filter_on_response_trailers(void *filter);

/* The host stopped waiting for this instance's RUNNING hook (its timeout passed): cancel the
 * task. A later resume() gets ERR_GONE. on_stream_complete and destroy still follow. */
void envoy_swift_filter_cancel(void *filter);

/* The stream has ended (completed, reset, or failed); the filter's last chance to log (stream_info,
 * attribute_get and state_get still answer here). Called exactly once per instance, then the
 * instance is destroyed; the one exception is an instance that saw no hook because a filter before
 * it changed the stream's route and the new route's filter_config replaced it: that one is only
 * destroyed. Either may come while a hook
 * is RUNNING (the client went away): the library cancels its task and drops its result. */
void envoy_swift_filter_on_stream_complete(void *filter);
void envoy_swift_filter_destroy(void *filter);

/* ABI 4: frees what state_set stored for a stream, once, when the stream has ended. */
void envoy_swift_stream_state_free(void *state);

/* Runs the library's work queued for `worker`, on that worker's thread; the answer to wake(). */
void envoy_swift_worker_run(uint32_t worker);

/* The answer to a callout() that returned OK: exactly once, on the stream's worker thread, from
 * the host's loop (never inside a hook). */
void envoy_swift_callout_done(uint64_t token, const envoy_swift_callout_response_t *response);

#ifdef __cplusplus
}
#endif

#endif /* ENVOY_SWIFT_ABI_H */

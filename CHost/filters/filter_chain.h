/*
 * The filter chain of one stream: request events run through the filters in order, response
 * events in reverse order, as in Envoy. A filter that stops holds the headers; the body is
 * buffered at it (STOP_AND_BUFFER, _WATERMARK) or handed to it chunk by chunk (STOP_NO_BUFFER)
 * until it continues. What leaves the end of the chain is forwarded by stream.c.
 */
#ifndef ES_FILTER_CHAIN_H
#define ES_FILTER_CHAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "envoy_swift_abi.h"
#include "filters/filter_lib.h"
#include "core/list.h"
#include "core/msg.h"
#include "obs/stream_info.h"

#define ES_DIR_REQUEST 0
#define ES_DIR_RESPONSE 1

typedef struct es_env_s es_env_t;
typedef struct es_filters_owner_s es_filters_owner_t;

/* What the chain asks of the exchange it runs in (stream.c), and what leaves the end of the chain. */
typedef struct {
    /* Forwarding, per direction (ES_DIR_REQUEST / ES_DIR_RESPONSE). `known_len` is the whole body's length
     * when the body came with the headers, else -1. Return 0, or -1 when the stream was answered or aborted. */
    int (*forward_headers)(es_filters_owner_t *o, int dir, int eos, int64_t known_len);
    int (*forward_body)(es_filters_owner_t *o, int dir, const char *at, size_t len, int eos);
    int (*forward_end)(es_filters_owner_t *o, int dir);
    /* A filter hook is RUNNING (on: arm its timeout) or no longer is. */
    void (*waiting)(es_filters_owner_t *o, int on, uint64_t timeout_ms);
    /* The body waiting for a RUNNING filter crossed the high watermark (on) or drained (off). */
    void (*blocked)(es_filters_owner_t *o, int dir, int on);
    /* A filter's local reply, or its failure, ends the stream. */
    void (*reply)(es_filters_owner_t *o, int status, const es_msg_t *headers, const char *body, size_t len);
    void (*failed)(es_filters_owner_t *o, int status, const char *reason);
    /* A posted result was applied: write what it queued and let the client go on. */
    void (*resumed)(es_filters_owner_t *o);
    /* The filter at `index` changed the request headers: match the route again (es_filters_set_route). Returns 0,
     * or -1 when the filters after it could not be made for the new route. */
    int (*rematch)(es_filters_owner_t *o, int index);
} es_filters_owner_ops_t;

/* es_filters_owner_t.protocol. */
enum { ES_PROTO_HTTP11 = 0, ES_PROTO_HTTP10 = 1, ES_PROTO_HTTP2 = 2 };

/* The exchange as filters see it: kept up to date by its stream, read by the host callbacks. */
struct es_filters_owner_s {
    const es_filters_owner_ops_t *ops;
    es_env_t *env;
    es_msg_t *req;
    es_msg_t *resp;           /* the response head, while there is one */
    const char *method;       /* the request method's name, static or in req */
    uint32_t method_len;
    int resp_status;          /* 0 until the response head arrived */
    const char *peer_ip;
    uint16_t peer_port;
    uint8_t tls;              /* the client connected over TLS */
    uint8_t protocol;         /* ES_PROTO_*: what the client speaks */
    const void *route;        /* const es_route_config_t *, matched when the request head arrived (and again when a
                               * filter changed what routes match on); NULL while none matches */
    es_msg_t *log_state;      /* values filters named for the access log (made on first use; the stream's) */
    es_stream_info_t info;    /* what the exchange was so far: times, bytes, status, flags, upstream endpoint */
};

typedef struct {
    int holder;               /* position holding the headers, -1 once they left the chain */
    int sbuf_at;              /* position buffering a streamed body, -1 when none */
    envoy_swift_status_t mode;/* the holder's status */
    es_buf_t held;            /* body held at the holder */
    es_buf_t sbuf;            /* body buffered at sbuf_at */
    es_buf_t scratch;         /* a copy of a chunk a filter changed */
    es_buf_t moving;          /* a released buffer on its way down the chain */
    /* The body the current hook sees: a buffer it may change in place, or a view copied on write. */
    es_buf_t *cur_buf;
    const char *cur_ptr;
    size_t cur_len;
    bool cur_valid;
    es_buf_t parked;          /* a chunk a RUNNING body hook sees, copied out of the read buffer */
    es_buf_t feed;            /* inbox bytes being run through the chain */
    bool headers_pending;     /* headers passed the chain with the whole body: forward with it */
    bool headers_in;          /* the headers entered the chain (response: filters may read them) */
    bool ended;               /* the final body event went through */
    bool headers_sent;        /* forwarded: the header map can no longer change */
    bool trailers_sent;
} es_fdir_t;

/* Events of one direction that arrived while the chain waited for a RUNNING hook, in order. */
typedef struct {
    es_buf_t body;            /* body bytes, bounded by the listener's high watermark */
    bool headers, headers_eos;
    bool body_pending, eos;   /* a body event waits (it may be empty and carry only the end) */
    bool end, trailers;       /* the message ended, with or without trailers */
    bool high;                /* above the high watermark: the peer is not read */
} es_finbox_t;

/* The hook that returned RUNNING, and what the event it belongs to still has to do. */
typedef struct {
    bool active;
    int dir, pos, hook, kind;
    bool eos;                 /* headers/body: end of stream; trailers: has trailers */
    bool whole;               /* headers: the whole body follows in `moving` */
    bool body_after;          /* a released body in `moving` goes on from body_from after the headers */
    int body_from;
    bool body_eos;
} es_frun_t;

/* An instance that is not there: the filter is disabled on the stream's route, or quarantined with bypass. */
#define ES_INST_NONE ((void *)1)
/* Filter libraries whose request state one stream can hold (one per library: a library's state is its own). */
#define ES_STATE_LIBS 4

typedef struct es_filters_s {
    const es_filter_chain_t *chain;
    void **inst;               /* per filter; NULL once destroyed, ES_INST_NONE when it has none */
    uint64_t *hook_ns;         /* per filter: time spent in its hooks (after inst, in the same allocation) */
    size_t inst_cap;           /* entries allocated in inst (kept when the state is reused) */
    long route;                /* the route the instances were made for: its index in the listener, -1: none */
    struct {
        const es_filter_lib_t *lib;
        void *ptr;
    } state[ES_STATE_LIBS];    /* request state (state_set), freed by its library when the stream ends */
    bool route_dirty;          /* a filter changed the request headers: match the route again after its hook */
    bool completing;           /* on_stream_complete runs: the stream can be read, not changed */
    envoy_swift_stream_t handle;
    uint32_t slot;
    es_filters_owner_t *owner;
    es_fdir_t dir[2];
    int in_hook;               /* host callbacks are valid only inside a hook */
    size_t hook_index;         /* the filter whose hook is running */
    /* A local reply a filter asked for during its hook. */
    int reply_status;
    es_msg_t reply_headers;
    es_buf_t reply_body;
    bool has_reply;
    /* Async: the RUNNING hook, the events waiting behind it, and its posted result. */
    es_frun_t run;
    es_finbox_t in[2];
    bool halted;               /* the stream was answered or failed: no more hooks */
    bool resume_queued;
    envoy_swift_status_t resume_status;
    es_link_t resume_link;     /* on the worker's list of posted results */
    es_link_t callouts;        /* es_callout_t in flight for this stream */
    size_t high, low;          /* the listener's buffer_limits */
    size_t max_body;           /* buffer_limits.max_body: more buffered fails the stream (413 / 500) */
    char attr_scratch[64];     /* attribute text handed to a filter */
    int depth;                 /* calls into the chain on the stack: the memory outlives them */
    bool dead;                 /* es_filters_free ran inside the chain: free on the way out */
} es_filters_t;

/* Outcome of running events through the chain. */
typedef enum {
    ES_CHAIN_OK = 0,     /* everything went on (or waits at a holder) */
    ES_CHAIN_HALT = 1,   /* the stream was answered or aborted: stop processing it */
} es_chain_result_t;

/* Frees this thread's cache of chain states (at worker exit). */
void es_filters_cache_drain(void);
/* Creates the instances for a stream (a filter quarantined with `bypass` gets none). Returns NULL when out
 * of memory or a filter refused, or, with *quarantined set, when a filter is quarantined with `reject`. */
es_filters_t *es_filters_new(const es_filter_chain_t *chain, es_filters_owner_t *owner, long route, size_t high,
                             size_t low, size_t max_body, const es_filter_entry_t **quarantined);
/* The route changed after the hook of the filter at `after` (request order); see filter_chain.c. */
int es_filters_set_route(es_filters_t *f, long route, int after);
/* The library is about to run a job of stream `f`'s task (NULL: of no stream): blame a crash on its RUNNING
 * filter (the host's job_stream callback). */
void es_filters_job_stream(es_filters_t *f);
/* A filter library's queued work begins (1: blamed on no stream until it names one) or has ended (0). */
void es_filters_async_work(int begins);
/* The worker is dying of a signal inside filter code: copy the request line ("GET /path") of the stream whose
 * filter runs into the worker's slot, for the supervisor's crash line. Only plain memory reads: called from
 * the fatal-signal handler. */
void es_filters_crash_note(void);
/* Runs on_stream_complete and destroy for every instance, exactly once, and frees the state
 * (once the chain calls on the stack have returned, if it is called from inside one). */
void es_filters_free(es_filters_t *f);

es_chain_result_t es_filters_headers(es_filters_t *f, int dir, bool end_of_stream);
es_chain_result_t es_filters_body(es_filters_t *f, int dir, const char *at, size_t len, bool end_of_stream);
/* Trailers (if any) and the end of the message, after the final body event. */
es_chain_result_t es_filters_end(es_filters_t *f, int dir, bool has_trailers);

/* The library of the filter inside a hook, or RUNNING (call-outs answer it). */
const es_filter_lib_t *es_filters_current_lib(const es_filters_t *f);
/* A RUNNING hook finished with `status` (called from the worker's list of posted results). */
void es_filters_resume(es_filters_t *f, envoy_swift_status_t status);
/* The stream was answered or failed: the chain runs no more hooks and drops what waits. */
void es_filters_halt(es_filters_t *f);
/* The RUNNING hook's timeout passed: cancel it and answer with the filter's timeout status. */
void es_filters_timeout(es_filters_t *f);
/* The waiting request body is above the listener's high watermark (the client is not read). */
bool es_filters_blocked(const es_filters_t *f, int dir);

/* filter_host.c: the worker was woken: run the libraries' queued work, then apply the results they posted. */
void es_handles_run(void);

#endif

/*
 * bench/crossing.c: what one call from the C host into a Swift filter and back costs, measured in
 * process, without sockets, parsers or an event loop (issue 7: under 100 ns for a callback that
 * reads one header and sets another).
 *
 *   build/bench-crossing [LIB] [--no-callgrind]     (LIB defaults to build/libswiftfilter.so;
 *                                                     `make bench-crossing` builds and runs it)
 *
 * The program loads the library the way CHost/filter_lib.c does (dlopen, ABI version first, every
 * hook resolved, program_init with a host table) and plays the host with a tiny in-memory one: one
 * stream at a time, its header maps as small arrays, the callbacks checking the handle, the hook
 * state and header validity like CHost/filter_host.c does. It drives `noop`, `header_touch` and
 * `async_noop` through the calls the host makes for one request: config_new once, then per stream
 * filter_new, on_request_headers, on_response_headers, on_stream_complete, destroy.
 *
 * Each figure is the median of RUNS timed runs (clock_gettime around a loop of >= RUN_MS of work,
 * after a warm-up), in ns per operation. With valgrind installed, the two single-hook figures are
 * also counted in instructions (callgrind, the hook loop alone): a figure that does not move with
 * the machine's clock or load.
 *
 * Numbers are reported, never asserted; the exit status is non-zero only when the library cannot
 * be driven (a hook returned an unexpected status, a header was not set).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envoy_swift_abi.h"
#include "filters/field_check.h"
#include "filters/filter_lib.h"
#include "core/msg.h" /* es_name_eq, the host's own name compare */

#if defined(__has_include) && __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h> /* client requests: a few no-op instructions outside valgrind */
#define HAVE_CALLGRIND 1
#else
#define HAVE_CALLGRIND 0
#endif

#define RUNS 7
#define RUN_MS 20
#define TARGET_NS 100.0
#define CALLGRIND_ITERS 20000

static es_filter_lib_t lib; /* resolved by the host's own code (CHost/filter_resolve.c) */

/* ---- the in-memory host ------------------------------------------------------------------ */

#define MAX_FIELDS 32
#define NAME_MAX_LEN 64
#define VALUE_MAX_LEN 256

typedef struct {
    char name[NAME_MAX_LEN];
    char value[VALUE_MAX_LEN];
    size_t nlen, vlen;
} field_t;

typedef struct {
    field_t f[MAX_FIELDS];
    size_t n;
} hmap_t;

/* The one live stream: its handle, its four header maps, and where its hooks stand. */
typedef struct {
    envoy_swift_stream_t handle; /* 0 between streams */
    bool in_hook;                /* inside one of its hooks */
    bool running;                /* a hook returned RUNNING and has not resumed */
    bool resumed;                /* resume() came */
    envoy_swift_status_t resume_status;
    hmap_t maps[4];              /* by envoy_swift_header_map_t */
    size_t pristine[4];          /* field counts as the request/response arrived */
} stream_t;

static stream_t st;
static uint64_t next_handle = 0x0100000100000001ull; /* tag, generation, slot: like the host's */
static uint64_t wakes, runnings; /* wake() calls; hooks that returned RUNNING */

static stream_t *lookup(envoy_swift_stream_t h)
{
    return h != 0 && h == st.handle && (st.in_hook || st.running) ? &st : NULL;
}

static hmap_t *map_of(envoy_swift_stream_t h, envoy_swift_header_map_t map, int *err)
{
    stream_t *s = lookup(h);
    if (s == NULL) {
        *err = ENVOY_SWIFT_ERR_GONE;
        return NULL;
    }
    if ((unsigned)map > ENVOY_SWIFT_RESPONSE_TRAILERS) {
        *err = ENVOY_SWIFT_ERR_INVALID;
        return NULL;
    }
    return &s->maps[map];
}

/* The host's own checks (CHost/field_check.h), so the set costs what it costs in the proxy. */
static bool valid_name(envoy_swift_bytes_t n)
{
    return n.length < NAME_MAX_LEN && es_field_name_ok(n.ptr, n.length);
}

static bool valid_value(envoy_swift_bytes_t v)
{
    return v.length < VALUE_MAX_LEN && es_field_value_ok(v.ptr, v.length);
}

static void map_add(hmap_t *m, const char *name, size_t nlen, const char *value, size_t vlen)
{
    field_t *f = &m->f[m->n++];
    memcpy(f->name, name, nlen);
    memcpy(f->value, value, vlen);
    f->nlen = nlen;
    f->vlen = vlen;
}

static int host_header_count(envoy_swift_stream_t h, envoy_swift_header_map_t map, size_t *count)
{
    int err;
    hmap_t *m = map_of(h, map, &err);
    if (m == NULL)
        return err;
    *count = m->n;
    return ENVOY_SWIFT_OK;
}

static int host_header_at(envoy_swift_stream_t h, envoy_swift_header_map_t map, size_t index,
                          envoy_swift_bytes_t *name, envoy_swift_bytes_t *value)
{
    int err;
    hmap_t *m = map_of(h, map, &err);
    if (m == NULL)
        return err;
    if (index >= m->n)
        return ENVOY_SWIFT_ERR_NOT_FOUND;
    *name = (envoy_swift_bytes_t){m->f[index].name, m->f[index].nlen};
    *value = (envoy_swift_bytes_t){m->f[index].value, m->f[index].vlen};
    return ENVOY_SWIFT_OK;
}

static int host_header_get(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name, size_t nth,
                           envoy_swift_bytes_t *value)
{
    int err;
    hmap_t *m = map_of(h, map, &err);
    if (m == NULL)
        return err;
    for (size_t i = 0; i < m->n; i++) {
        field_t *f = &m->f[i];
        if (es_name_eq(f->name, f->nlen, name.ptr, name.length) && nth-- == 0) {
            *value = (envoy_swift_bytes_t){f->value, f->vlen};
            return ENVOY_SWIFT_OK;
        }
    }
    return ENVOY_SWIFT_ERR_NOT_FOUND;
}

static int header_change(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                         const envoy_swift_bytes_t *value, bool replace)
{
    int err;
    hmap_t *m = map_of(h, map, &err);
    if (m == NULL)
        return err;
    if (!valid_name(name) || (value != NULL && !valid_value(*value)))
        return ENVOY_SWIFT_ERR_INVALID;
    if (replace) {
        size_t j = 0;
        for (size_t i = 0; i < m->n; i++)
            if (!es_name_eq(m->f[i].name, m->f[i].nlen, name.ptr, name.length)) {
                if (i != j)
                    m->f[j] = m->f[i];
                j++;
            }
        m->n = j;
    }
    if (value != NULL) {
        if (m->n == MAX_FIELDS)
            return ENVOY_SWIFT_ERR_NOMEM;
        map_add(m, name.ptr, name.length, value->ptr, value->length);
    }
    return ENVOY_SWIFT_OK;
}

static int host_header_set(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                           envoy_swift_bytes_t value)
{
    return header_change(h, map, name, &value, true);
}

static int host_header_add(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name,
                           envoy_swift_bytes_t value)
{
    return header_change(h, map, name, &value, false);
}

static int host_header_remove(envoy_swift_stream_t h, envoy_swift_header_map_t map, envoy_swift_bytes_t name)
{
    return header_change(h, map, name, NULL, true);
}

/* No body hook runs here: the body callbacks answer as the host does outside one. */
static int host_body_get(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t *out)
{
    return lookup(h) ? ENVOY_SWIFT_ERR_STATE : ENVOY_SWIFT_ERR_GONE;
}

static int host_body_edit(envoy_swift_stream_t h, envoy_swift_body_t which, envoy_swift_bytes_t data)
{
    return lookup(h) ? ENVOY_SWIFT_ERR_STATE : ENVOY_SWIFT_ERR_GONE;
}

static int host_body_drain(envoy_swift_stream_t h, envoy_swift_body_t which, size_t length)
{
    return lookup(h) ? ENVOY_SWIFT_ERR_STATE : ENVOY_SWIFT_ERR_GONE;
}

static int host_attribute_get(envoy_swift_stream_t h, envoy_swift_attribute_t attr, envoy_swift_bytes_t *out)
{
    static const char *const values[] = {"GET", "/", "", "localhost:10000", "http", "HTTP/1.1", "127.0.0.1:51234",
                                         "200"};
    if (lookup(h) == NULL)
        return ENVOY_SWIFT_ERR_GONE;
    if ((unsigned)attr >= sizeof(values) / sizeof(values[0]))
        return ENVOY_SWIFT_ERR_NOT_FOUND;
    *out = (envoy_swift_bytes_t){values[attr], strlen(values[attr])};
    return ENVOY_SWIFT_OK;
}

static int host_send_local_reply(envoy_swift_stream_t h, int status, const envoy_swift_bytes_t *names,
                                 const envoy_swift_bytes_t *values, size_t count, envoy_swift_bytes_t body)
{
    return lookup(h) ? ENVOY_SWIFT_OK : ENVOY_SWIFT_ERR_GONE;
}

static void host_log(envoy_swift_log_level_t level, envoy_swift_bytes_t filter, envoy_swift_bytes_t message)
{
    if (level >= ENVOY_SWIFT_LOG_WARN)
        fprintf(stderr, "bench-crossing: library says: %.*s%s%.*s\n", (int)filter.length, filter.ptr,
                filter.length ? ": " : "", (int)message.length, message.ptr);
}

static envoy_swift_log_level_t host_log_level(void)
{
    return ENVOY_SWIFT_LOG_WARN;
}

/* No event loop: the benchmark calls envoy_swift_worker_run itself right after a hook that
 * returned RUNNING, so a wake has nothing to do but be counted. */
static void host_wake(uint32_t worker)
{
    wakes++;
}

static int host_resume(envoy_swift_stream_t h, envoy_swift_status_t status)
{
    if (h == 0 || h != st.handle)
        return ENVOY_SWIFT_ERR_GONE;
    if (!st.running || st.resumed)
        return ENVOY_SWIFT_ERR_STATE;
    st.resumed = true;
    st.resume_status = status;
    return ENVOY_SWIFT_OK;
}

static int host_callout(envoy_swift_stream_t h, const envoy_swift_callout_request_t *request, uint64_t token)
{
    return lookup(h) ? ENVOY_SWIFT_ERR_NOT_FOUND : ENVOY_SWIFT_ERR_GONE;
}

static envoy_swift_host_t host_table = {
    .abi_version = ENVOY_SWIFT_ABI_VERSION,
    .size = sizeof(envoy_swift_host_t),
    .header_count = host_header_count,
    .header_at = host_header_at,
    .header_get = host_header_get,
    .header_set = host_header_set,
    .header_add = host_header_add,
    .header_remove = host_header_remove,
    .body_get = host_body_get,
    .body_append = host_body_edit,
    .body_prepend = host_body_edit,
    .body_replace = host_body_edit,
    .body_drain = host_body_drain,
    .attribute_get = host_attribute_get,
    .send_local_reply = host_send_local_reply,
    .log = host_log,
    .log_level = host_log_level,
    .worker_count = 1,
    .wake = host_wake,
    .resume = host_resume,
    .callout = host_callout,
};

/* What a C filter sees: the table through a pointer the compiler cannot see through, as the
 * Swift side holds it. */
static envoy_swift_host_t *volatile host_ptr = &host_table;

/* A request as curl or a browser sends it, and an upstream's response. */
#define UA_SHORT "curl/8.5.0"
#define UA_LONG                                                                                    \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

static void fill(hmap_t *m, const char *const *pairs)
{
    m->n = 0;
    for (size_t i = 0; pairs[i] != NULL; i += 2)
        map_add(m, pairs[i], strlen(pairs[i]), pairs[i + 1], strlen(pairs[i + 1]));
}

/* Makes the stream's maps those of a fresh request (user agent `ua`) and response. */
static void stream_setup(const char *ua)
{
    const char *const req[] = {"host", "localhost:10000", "user-agent", ua, "accept", "*/*", "accept-encoding",
                               "gzip, deflate, br", "accept-language", "en-US,en;q=0.9", NULL};
    const char *const resp[] = {"content-type", "text/plain", "content-length", "13", "date",
                                "Mon, 24 Nov 2025 20:00:00 GMT", "server", "es-upstream", NULL};
    memset(&st, 0, sizeof(st));
    fill(&st.maps[ENVOY_SWIFT_REQUEST_HEADERS], req);
    fill(&st.maps[ENVOY_SWIFT_RESPONSE_HEADERS], resp);
    for (int i = 0; i < 4; i++)
        st.pristine[i] = st.maps[i].n;
}

/* A new stream on the same maps: what arrived, without what filters set on the previous one. */
static inline void stream_begin(void)
{
    st.handle = next_handle++;
    for (int i = 0; i < 4; i++)
        st.maps[i].n = st.pristine[i];
}

static inline void stream_end(void)
{
    st.handle = 0;
}

static const field_t *find(envoy_swift_header_map_t map, const char *name)
{
    const hmap_t *m = &st.maps[map];
    for (size_t i = 0; i < m->n; i++)
        if (es_name_eq(m->f[i].name, m->f[i].nlen, name, strlen(name)))
            return &m->f[i];
    return NULL;
}

/* ---- what is timed ----------------------------------------------------------------------- */

static volatile uint64_t sink; /* every status lands here, so no loop is optimised away */

/* A hook as the host calls it: inside, the stream's callbacks are valid. */
static inline envoy_swift_status_t hook(envoy_swift_status_t (*fn)(void *, bool), void *f)
{
    st.in_hook = true;
    envoy_swift_status_t s = fn(f, true);
    st.in_hook = false;
    return s;
}

/* A hook that may go on asynchronously: on RUNNING, run the worker until the task resumes. */
static inline envoy_swift_status_t hook_async(envoy_swift_status_t (*fn)(void *, bool), void *f)
{
    envoy_swift_status_t s = hook(fn, f);
    if (s != ENVOY_SWIFT_STATUS_RUNNING)
        return s;
    runnings++;
    st.running = true;
    st.resumed = false;
    for (int round = 0; !st.resumed && round < 1000; round++)
        lib.worker_run(0);
    st.running = false;
    return st.resumed ? st.resume_status : ENVOY_SWIFT_STATUS_ERROR; /* never resumed: check_stream fails */
}

typedef struct bench_case bench_case_t;
struct bench_case {
    const char *group; /* a heading printed before this row, or NULL */
    const char *label;
    uint64_t (*loop)(bench_case_t *c, uint64_t n); /* n operations; returns the ns they took */
    const char *plugin, *json, *ua;
    void *config;
    void *instance; /* for the single-hook loops: one instance on the live stream */
    unsigned skip;  /* hooks of this config that answered CONTINUE_SKIP (bit 0 request, 1 response) */
    double ns;
    double instr;   /* instructions per operation (callgrind), 0 when not counted */
    bool is_target; /* the "reads one header and sets another" */
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

__attribute__((noinline)) static envoy_swift_status_t c_noop(void *f, bool end_of_stream)
{
    __asm__ volatile("" ::: "memory");
    return ENVOY_SWIFT_STATUS_CONTINUE;
}

/* header_touch's request hook written in C against the same host table: the host's share. */
__attribute__((noinline)) static envoy_swift_status_t c_header_touch(void *f, bool end_of_stream)
{
    const envoy_swift_host_t *h = host_ptr;
    envoy_swift_bytes_t v;
    static const envoy_swift_bytes_t read = {"user-agent", 10}, name = {"x-touched", 9};
    if (h->header_get(st.handle, ENVOY_SWIFT_REQUEST_HEADERS, read, 0, &v) != ENVOY_SWIFT_OK)
        v = (envoy_swift_bytes_t){"-", 1};
    /* The value must be copied before the set changes its map (the ABI's borrowing rule). */
    char copy[VALUE_MAX_LEN];
    memcpy(copy, v.ptr, v.length);
    v.ptr = copy;
    return h->header_set(st.handle, ENVOY_SWIFT_REQUEST_HEADERS, name, v) == ENVOY_SWIFT_OK
               ? ENVOY_SWIFT_STATUS_CONTINUE
               : ENVOY_SWIFT_STATUS_ERROR;
}

static envoy_swift_status_t (*volatile c_noop_ptr)(void *, bool) = c_noop;
static envoy_swift_status_t (*volatile c_touch_ptr)(void *, bool) = c_header_touch;

/* The loops are noinline and named so callgrind can count one of them alone (--toggle-collect). */
__attribute__((noinline)) uint64_t loop_c_call(bench_case_t *c, uint64_t n)
{
    envoy_swift_status_t (*fn)(void *, bool) = c_noop_ptr;
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < n; i++)
        acc += hook(fn, c->instance);
    uint64_t t = now_ns() - t0;
    sink += acc;
    return t;
}

__attribute__((noinline)) uint64_t loop_c_touch(bench_case_t *c, uint64_t n)
{
    envoy_swift_status_t (*fn)(void *, bool) = c_touch_ptr;
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < n; i++)
        acc += hook(fn, c->instance);
    uint64_t t = now_ns() - t0;
    sink += acc;
    return t;
}

__attribute__((noinline)) uint64_t loop_request_headers(bench_case_t *c, uint64_t n)
{
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < n; i++)
        acc += hook(lib.on_request_headers, c->instance);
    uint64_t t = now_ns() - t0;
    sink += acc;
    return t;
}

/* A hook of a stream, as CHost/filter_chain.c calls it: not at all once the filter config
 * answered CONTINUE_SKIP for it (the filter leaves it out), and CONTINUE_SKIP counts as CONTINUE. */
static inline envoy_swift_status_t stream_hook(bench_case_t *c, unsigned bit,
                                               envoy_swift_status_t (*fn)(void *, bool), void *f)
{
    if (c->skip & bit)
        return ENVOY_SWIFT_STATUS_CONTINUE;
    envoy_swift_status_t s = hook_async(fn, f);
    if (s == ENVOY_SWIFT_STATUS_CONTINUE_SKIP) {
        c->skip |= bit;
        s = ENVOY_SWIFT_STATUS_CONTINUE;
    }
    return s;
}

/* One request's filter work, as the host does it for a one-filter chain. */
__attribute__((noinline)) uint64_t loop_stream(bench_case_t *c, uint64_t n)
{
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < n; i++) {
        stream_begin();
        void *f = lib.filter_new(c->config, st.handle, 0);
        acc += stream_hook(c, 1, lib.on_request_headers, f);
        acc += stream_hook(c, 2, lib.on_response_headers, f);
        st.in_hook = true; /* the callbacks stay valid during these two as well */
        lib.on_stream_complete(f);
        lib.destroy(f);
        st.in_hook = false;
        stream_end();
    }
    uint64_t t = now_ns() - t0;
    sink += acc;
    return t;
}

/* ---- checks before timing ---------------------------------------------------------------- */

static int fail(const char *label, const char *what)
{
    fprintf(stderr, "bench-crossing: %s: %s\n", label, what);
    return -1;
}

/* One stream of the case, checked: every hook answers CONTINUE (or CONTINUE_SKIP), header_touch's
 * headers are set, and only async_noop {yield:true} suspends. It also learns the skipped hooks. */
static int check_stream(bench_case_t *c)
{
    uint64_t ran = runnings, woke = wakes;
    stream_begin();
    void *f = lib.filter_new(c->config, st.handle, 0);
    if (f == NULL)
        return fail(c->label, "filter_new returned NULL");
    envoy_swift_status_t rq = stream_hook(c, 1, lib.on_request_headers, f);
    envoy_swift_status_t rs = stream_hook(c, 2, lib.on_response_headers, f);
    st.in_hook = true;
    lib.on_stream_complete(f);
    lib.destroy(f);
    st.in_hook = false;
    if (rq != ENVOY_SWIFT_STATUS_CONTINUE || rs != ENVOY_SWIFT_STATUS_CONTINUE)
        return fail(c->label, "a hook did not answer CONTINUE");
    bool suspends = strstr(c->json, "\"yield\":true") != NULL;
    if (suspends != (runnings > ran) || suspends != (wakes > woke))
        return fail(c->label, suspends ? "the hook did not suspend (no RUNNING, no wake)" : "a hook suspended");
    if (strcmp(c->plugin, "header_touch") == 0) {
        const field_t *q = find(ENVOY_SWIFT_REQUEST_HEADERS, "x-touched");
        const field_t *p = find(ENVOY_SWIFT_RESPONSE_HEADERS, "x-touched");
        if (q == NULL || q->vlen != strlen(c->ua) || memcmp(q->value, c->ua, q->vlen) != 0 || p == NULL ||
            p->vlen != 1 || p->value[0] != '1')
            return fail(c->label, "x-touched was not set as expected");
    }
    stream_end();
    return 0;
}

/* ---- running --------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Warms up, sizes a run to RUN_MS, and returns the median ns per operation of RUNS runs. */
static double measure(bench_case_t *c)
{
    uint64_t n = 1000, t;
    while ((t = c->loop(c, n)) < 5000000u)
        n *= 2;
    n = (uint64_t)((double)n * RUN_MS * 1e6 / (double)t) + 1;
    double per[RUNS];
    for (int r = 0; r < RUNS; r++)
        per[r] = (double)c->loop(c, n) / (double)n;
    qsort(per, RUNS, sizeof(per[0]), cmp_double);
    return per[RUNS / 2];
}

static void *config_new(const char *label, const char *plugin, const char *json)
{
    char err[512] = "";
    envoy_swift_bytes_t name = {label, strlen(label)}, p = {plugin, strlen(plugin)}, j = {json, strlen(json)};
    void *c = lib.config_new(name, p, j, err, sizeof(err));
    if (c == NULL)
        fprintf(stderr, "bench-crossing: config_new(%s, %s): %s\n", plugin, json, err[0] ? err : "NULL");
    return c;
}

/* The cases, in the order printed. `instance` cases run their hook on one live instance. */
#define TOUCH_JSON "{\"read\":\"user-agent\",\"name\":\"x-touched\"}"
static bench_case_t cases[] = {
    {.group = "One hook on a live instance (request headers already in the host)",
     .label = "C baseline: an indirect call through a function pointer", .loop = loop_c_call, .ua = UA_SHORT},
    {.label = "C baseline: header_touch's get + set written in C, curl UA", .loop = loop_c_touch, .ua = UA_SHORT},
    {.label = "C baseline: header_touch's get + set written in C, browser UA", .loop = loop_c_touch, .ua = UA_LONG},
    {.label = "noop: on_request_headers (the crossing alone; CONTINUE_SKIP)", .loop = loop_request_headers, .plugin = "noop",
     .json = "{}", .ua = UA_SHORT},
    {.label = "header_touch: on_request_headers, curl UA (10 bytes)", .loop = loop_request_headers,
     .plugin = "header_touch", .json = TOUCH_JSON, .ua = UA_SHORT, .is_target = true},
    {.label = "header_touch: on_request_headers, browser UA (101 bytes)", .loop = loop_request_headers,
     .plugin = "header_touch", .json = TOUCH_JSON, .ua = UA_LONG, .is_target = true},
    {.group = "One whole stream: filter_new, request + response headers hooks (those not skipped), complete, destroy",
     .label = "noop", .loop = loop_stream, .plugin = "noop", .json = "{}", .ua = UA_SHORT},
    {.label = "header_touch, curl UA", .loop = loop_stream, .plugin = "header_touch", .json = TOUCH_JSON,
     .ua = UA_SHORT},
    {.label = "header_touch, browser UA", .loop = loop_stream, .plugin = "header_touch", .json = TOUCH_JSON,
     .ua = UA_LONG},
    {.label = "async_noop {yield:false}: request hook ends without suspending", .loop = loop_stream,
     .plugin = "async_noop", .json = "{\"yield\":false}", .ua = UA_SHORT},
    {.label = "async_noop {yield:true}: + RUNNING, worker_run, resume", .loop = loop_stream, .plugin = "async_noop",
     .json = "{\"yield\":true}", .ua = UA_SHORT},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Prepares case i: its config, one checked stream, and for a single-hook case an instance on a
 * live stream (the same instance then sees its request headers hook over and over). */
static int prepare(size_t i)
{
    bench_case_t *c = &cases[i];
    stream_setup(c->ua);
    if (c->plugin != NULL && c->config == NULL && (c->config = config_new(c->label, c->plugin, c->json)) == NULL)
        return -1;
    if (c->plugin != NULL && check_stream(c) != 0)
        return -1;
    stream_begin();
    if (c->loop != loop_stream && c->plugin != NULL && (c->instance = lib.filter_new(c->config, st.handle, 0)) == NULL)
        return fail(c->label, "filter_new returned NULL");
    return 0;
}

static void unprepare(size_t i)
{
    bench_case_t *c = &cases[i];
    if (c->instance != NULL) {
        st.in_hook = true;
        lib.on_stream_complete(c->instance);
        lib.destroy(c->instance);
        st.in_hook = false;
        c->instance = NULL;
    }
    stream_end();
}

/* Under callgrind (the child the parent starts): each case's loop alone, CALLGRIND_ITERS
 * operations after a warm-up, dumped as "case-<index>". */
static int callgrind_child(void)
{
#if HAVE_CALLGRIND
    for (size_t i = 0; i < NCASES; i++) {
        char what[32];
        if (prepare(i) != 0)
            return 1;
        cases[i].loop(&cases[i], 1000);
        CALLGRIND_ZERO_STATS;
        CALLGRIND_TOGGLE_COLLECT;
        cases[i].loop(&cases[i], CALLGRIND_ITERS);
        CALLGRIND_TOGGLE_COLLECT;
        snprintf(what, sizeof(what), "case-%zu", i);
        CALLGRIND_DUMP_STATS_AT(what);
        unprepare(i);
    }
#endif
    return 0;
}

/* Runs this program under callgrind and fills each case's instructions per operation. Returns
 * whether any was counted. */
static bool callgrind(const char *libpath)
{
    char self[PATH_MAX], out[64], cmd[PATH_MAX * 2 + 512];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (!HAVE_CALLGRIND || len <= 0 || system("command -v valgrind >/dev/null 2>&1") != 0)
        return false;
    self[len] = '\0';
    snprintf(out, sizeof(out), "/tmp/bench-crossing.%d.callgrind", (int)getpid());
    snprintf(cmd, sizeof(cmd),
             "valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=%s '%s' '%s' --callgrind-child "
             ">/dev/null 2>&1",
             out, self, libpath);
    int rc = system(cmd);
    bool any = false;
    for (size_t k = 0; k <= NCASES + 1; k++) {
        char name[96], line[256];
        snprintf(name, sizeof(name), k ? "%s.%zu" : "%s", out, k);
        FILE *fp = fopen(name, "r");
        if (fp == NULL)
            continue;
        long which = -1;
        double total = 0;
        while (fgets(line, sizeof(line), fp)) {
            char *c = strstr(line, "case-");
            if (strncmp(line, "desc:", 5) == 0 && c != NULL)
                which = strtol(c + 5, NULL, 10);
            else if (strncmp(line, "totals:", 7) == 0 || strncmp(line, "summary:", 8) == 0)
                total = strtod(strchr(line, ':') + 1, NULL);
        }
        fclose(fp);
        unlink(name);
        if (rc == 0 && which >= 0 && (size_t)which < NCASES && total > 0) {
            cases[which].instr = total / CALLGRIND_ITERS;
            any = true;
        }
    }
    return any;
}

static void pin_to_current_cpu(void)
{
    int cpu = sched_getcpu();
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0) {
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof(set), &set); /* fewer migrations; a failure only adds noise */
    }
}

int main(int argc, char **argv)
{
    const char *path = "build/libswiftfilter.so";
    bool want_callgrind = true;
    bool child = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-callgrind") == 0) {
            want_callgrind = false;
        } else if (strcmp(argv[i], "--callgrind-child") == 0) { /* internal: what callgrind() runs */
            child = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [LIB] [--no-callgrind]\n", argv[0]);
            return 2;
        } else {
            path = argv[i];
        }
    }

    char real[PATH_MAX];
    if (realpath(path, real) == NULL) {
        fprintf(stderr, "bench-crossing: cannot load %s: %m (run make build)\n", path);
        return 2;
    }
    void *dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "bench-crossing: cannot load %s: %s\n", path, dlerror());
        return 2;
    }
    char err[512];
    if (es_filter_lib_resolve(&lib, dl, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench-crossing: %s\n", err);
        return 2;
    }
    if (lib.program_init(&host_table) != 0) {
        fprintf(stderr, "bench-crossing: %s: the library's initialisation failed\n", path);
        return 2;
    }

    if (child)
        return callgrind_child();

    pin_to_current_cpu();
    for (size_t i = 0; i < NCASES; i++) {
        if (prepare(i) != 0)
            return 1;
        cases[i].ns = measure(&cases[i]);
        unprepare(i);
    }
    bool counted = want_callgrind && callgrind(real);

    printf("Crossing from the C host into Swift and back (bench/crossing.c; %s, ABI %u)\n", path,
           ENVOY_SWIFT_ABI_VERSION);
    printf("In process, one filter, an in-memory host; median of %d runs of >= %d ms each, after a warm-up.\n", RUNS,
           RUN_MS);
    printf("As the host does, a hook that answered CONTINUE_SKIP (the filter leaves it out) is not called again.\n");
    printf("instr/op: instructions per operation counted by callgrind (independent of clock and load).\n\n");
    printf("%-66s %9s%s\n", "", "ns/op", counted ? "   instr/op" : "");
    for (size_t i = 0; i < NCASES; i++) {
        if (cases[i].group != NULL)
            printf("%s%s\n", i ? "\n" : "", cases[i].group);
        printf("  %-64s %9.1f", cases[i].label, cases[i].ns);
        if (counted && cases[i].instr > 0)
            printf("   %8.0f", cases[i].instr);
        printf("\n");
    }
    printf("\nTarget (issue 7): a callback that reads one header and sets another in under %.0f ns.\n", TARGET_NS);
    for (size_t i = 0; i < NCASES; i++) {
        if (!cases[i].is_target)
            continue;
        bench_case_t *c = NULL; /* the same work in C, on the same request */
        for (size_t j = 0; j < NCASES; j++)
            if (cases[j].loop == loop_c_touch && strcmp(cases[j].ua, cases[i].ua) == 0)
                c = &cases[j];
        printf("  %-58s %6.1f ns: %-7s", cases[i].label, cases[i].ns, cases[i].ns < TARGET_NS ? "met" : "NOT met");
        if (c != NULL)
            printf("  (host's get + set %.1f ns, Swift's share %.1f ns)", c->ns, cases[i].ns - c->ns);
        printf("\n");
    }
    if (!counted)
        printf("(instructions per operation: install valgrind to count them with callgrind)\n");
    return 0;
}

/*
 * Fuzzing the request path end to end: random byte mutations of valid requests, each hiding a complete
 * request in its body as real smuggling attacks do, go through the proxy many at once. Whatever the
 * bytes, the proxy must not crash (ASan), must not hang (it keeps serving, and stops clean), must answer
 * only with well-formed responses whose status it could give, and must never get more requests out of an
 * input than the input holds: every request the upstream receives must be one that a reference parser
 * (llhttp, strict, as both ends use it) finds as a complete request in the bytes the client sent. For nearly
 * every input that is the one request with the input's id: its id reaches the upstream at most once, and
 * the request in its body never.
 *
 *   ES_FUZZ_SEED   the PRNG seed (default: from the clock; printed, so a failure can be replayed)
 *   ES_FUZZ_ITERS  how many inputs (default DEFAULT_ITERS)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"

/*
 * The listener's request_headers_timeout / idle_timeout / request_timeout. Until the proxy knows these keys
 * (it rejects unknown ones), inputs that leave it waiting for bytes are closed by the client at
 * OPEN_DEADLINE_MS; with them, the proxy must close every input itself before HANG_DEADLINE_MS.
 */
#ifndef LISTENER_TIMEOUTS
#define LISTENER_TIMEOUTS 1
#endif

/* About 15 s under ASan on a loaded 2-core machine; without the listener timeouts the deadlines, not the
 * CPU, bound the rate. */
#define DEFAULT_ITERS    (LISTENER_TIMEOUTS ? 8000 : 5000)
#define OPEN_DEADLINE_MS 3000
#define HANG_DEADLINE_MS 5000
#define MAX_BYTES        4096
#define MAX_REF          8        /* requests the reference parser looks for in one input */
#define READ_CAP         65536    /* more response bytes than any honest answer here */
#define MAX_PRINTED      8        /* failures printed in full, of each kind; the rest only counted */

#if LISTENER_TIMEOUTS
#define CONCURRENCY 32
#else
#define CONCURRENCY 96            /* many inputs sit out the client's deadline: more at once */
#endif

/* ---- a seeded PRNG (splitmix64): each input from (seed, index) alone, so one can be replayed ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static size_t below(uint64_t *s, size_t n) {
    return n ? (size_t)(splitmix(s) % n) : 0;
}

/* ---- inputs ---- */

typedef struct {
    unsigned char b[MAX_BYTES];
    size_t len;
} bytes_t;

static void bytes_printf(bytes_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bytes_printf(bytes_t *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)x->b + x->len, MAX_BYTES - x->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && x->len + (size_t)n < MAX_BYTES);
    x->len += (size_t)n;
}

static int bytes_insert(bytes_t *x, size_t at, const void *data, size_t n) {
    if (x->len + n > MAX_BYTES) return -1;
    memmove(x->b + at + n, x->b + at, x->len - at);
    memcpy(x->b + at, data, n);
    x->len += n;
    return 0;
}

static void bytes_delete(bytes_t *x, size_t at, size_t n) {
    memmove(x->b + at, x->b + at + n, x->len - at - n);
    x->len -= n;
}

/* The end of the head ("\r\n\r\n" included), or len when there is none. */
static size_t head_end(const bytes_t *x) {
    for (size_t i = 0; i + 4 <= x->len; i++) {
        if (memcmp(x->b + i, "\r\n\r\n", 4) == 0) return i + 4;
    }
    return x->len;
}

enum { SEED_GET, SEED_POST_LENGTH, SEED_POST_CHUNKED, SEED_HEAD, SEED_HTTP10, NSEEDS };
static const char *const seed_names[NSEEDS] = { "GET", "POST Content-Length", "POST chunked", "HEAD",
                                                "GET HTTP/1.0" };

/*
 * A valid request for input `id`. Connection: close comes first, so that most mutations leave it intact
 * and the proxy ends the connection at once; a body holds a whole second request.
 */
static unsigned make_seed(bytes_t *x, unsigned id, uint64_t *rng) {
    char smuggled[128];
    snprintf(smuggled, sizeof smuggled, "%sGET /smuggled/%u/%u HTTP/1.1\r\nHost: t\r\n\r\n",
             below(rng, 2) ? "0\r\n\r\n" : "", id, id);    /* "0\r\n\r\n" first: the CL.TE shape */
    unsigned kind = (unsigned)below(rng, NSEEDS);
    x->len = 0;
    switch (kind) {
    case SEED_GET:
        bytes_printf(x, "GET /fz/%u/%u?q=1 HTTP/1.1\r\nConnection: close\r\nHost: t\r\nUser-Agent: fuzz\r\n"
                        "Accept: */*\r\n\r\n", id, id);
        break;
    case SEED_POST_LENGTH:
        bytes_printf(x, "POST /fz/%u/%u HTTP/1.1\r\nConnection: close\r\nHost: t\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %zu\r\n\r\n%s", id, id, strlen(smuggled), smuggled);
        break;
    case SEED_POST_CHUNKED:
        bytes_printf(x, "POST /fz/%u/%u HTTP/1.1\r\nConnection: close\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                        "\r\n%zx;name=value\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n", id, id, strlen(smuggled),
                     smuggled);
        break;
    case SEED_HEAD:
        bytes_printf(x, "HEAD /fz/%u/%u HTTP/1.1\r\nConnection: close\r\nHost: t\r\nAccept: */*\r\n\r\n", id, id);
        break;
    default:
        bytes_printf(x, "GET /fz/%u/%u HTTP/1.0\r\nConnection: close\r\nHost: t\r\n\r\n", id, id);
        break;
    }
    return kind;
}

/* Framing headers a mutation adds next to the seed's own: the request-smuggling shapes. */
static const char *const framing_lines[] = {
    "Content-Length: 0\r\n", "Content-Length: 1\r\n", "Content-Length: 100000\r\n", "Content-Length: -1\r\n",
    "Content-Length: +5\r\n", "Content-Length: 5, 5\r\n", "Content-Length : 5\r\n", "content-length:0\r\n",
    "Content-Length: 0x10\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: identity\r\n",
    "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: chunked, gzip\r\n", "Transfer-Encoding: xchunked\r\n",
    "Transfer-Encoding : chunked\r\n", "Transfer-Encoding:\tchunked\r\n", "transfer-encoding: CHUNKED\r\n",
    " Transfer-Encoding: chunked\r\n", "Transfer-Encoding: chunked\n", "Transfer-Encoding:\r\n chunked\r\n",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
};

/* Bytes that mean something to a parser; the string's own NUL is one of them. */
static const char interesting[] = "\r\n \t:;,0123456789abcdef";

/* Positions right after a "\r\n" inside the head: where a header line can go. */
static size_t pick_line_start(const bytes_t *x, uint64_t *rng) {
    size_t end = head_end(x), starts[64], n = 0;
    for (size_t i = 0; i + 2 <= end && n < 64; i++) {
        if (x->b[i] == '\r' && x->b[i + 1] == '\n') starts[n++] = i + 2;
    }
    return n ? starts[below(rng, n)] : below(rng, x->len + 1);
}

/* Where "\r\n" starts (what == 0) or right after a ':' (what == 1), one of them at random; -1 if none. */
static long pick_spot(const bytes_t *x, int what, uint64_t *rng) {
    size_t spots[64], n = 0;
    for (size_t i = 0; i + 2 <= x->len && n < 64; i++) {
        if (x->b[i] == '\r' && x->b[i + 1] == '\n' && what == 0) spots[n++] = i;
        if (x->b[i] == ':' && what == 1) spots[n++] = i + 1;
    }
    return n ? (long)spots[below(rng, n)] : -1;
}

static void mutate_once(bytes_t *x, uint64_t *rng) {
    if (x->len == 0) return;
    size_t at = below(rng, x->len);
    size_t slice = 1 + below(rng, x->len - at < 32 ? x->len - at : 32);
    long spot;
    switch (below(rng, 9)) {
    case 0:                       /* flip a bit */
        x->b[at] ^= (unsigned char)(1u << below(rng, 8));
        break;
    case 1:                       /* set a byte */
        x->b[at] = (unsigned char)below(rng, 256);
        break;
    case 2: {                     /* insert a byte that means something to a parser */
        char c = interesting[below(rng, sizeof interesting)];
        bytes_insert(x, below(rng, x->len + 1), &c, 1);
        break;
    }
    case 3:                       /* delete a byte */
        bytes_delete(x, at, 1);
        break;
    case 4: {                     /* duplicate a slice, next to itself or anywhere */
        unsigned char copy[32];
        memcpy(copy, x->b + at, slice);
        bytes_insert(x, below(rng, 2) ? at + slice : below(rng, x->len + 1), copy, slice);
        break;
    }
    case 5:                       /* delete a slice */
        bytes_delete(x, at, slice);
        break;
    case 6:                       /* a bare LF for a CRLF */
        if ((spot = pick_spot(x, 0, rng)) >= 0) bytes_delete(x, (size_t)spot, 1);
        break;
    case 7:                       /* optional whitespace around a value: legal, and easy to get wrong */
        spot = pick_spot(x, (int)below(rng, 2), rng);
        if (spot >= 0) bytes_insert(x, (size_t)spot, below(rng, 2) ? " " : "\t", 1);
        break;
    default: {                    /* one more framing header */
        char line[64];
        size_t n = sizeof framing_lines / sizeof framing_lines[0];
        if (below(rng, n + 1) == n) {   /* a Content-Length that fits the body exactly */
            snprintf(line, sizeof line, "Content-Length: %zu\r\n", x->len - head_end(x));
        } else {
            snprintf(line, sizeof line, "%s", framing_lines[below(rng, n)]);
        }
        bytes_insert(x, pick_line_start(x, rng), line, strlen(line));
        break;
    }
    }
}

/* ---- the reference parser: the complete requests in an input, in order ---- */

typedef struct {
    unsigned char *data;          /* the bytes sent */
    size_t len;
    unsigned seed_kind;
    unsigned nheads;              /* requests whose head was complete */
    unsigned ncomplete;           /* requests that were complete */
    int methods[MAX_REF];         /* of each complete head */
    char *keys[MAX_REF];          /* "METHOD URL" of each complete request */
} input_t;

typedef struct {
    input_t *in;
    char url[MAX_BYTES + 1];
    size_t url_len;
    int keepalive;
} ref_t;

static int ref_on_begin(llhttp_t *p) {
    ((ref_t *)p->data)->url_len = 0;
    return 0;
}

static int ref_on_url(llhttp_t *p, const char *at, size_t len) {
    ref_t *r = p->data;
    if (r->url_len + len > MAX_BYTES) len = MAX_BYTES - r->url_len;
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    return 0;
}

static int ref_on_headers_complete(llhttp_t *p) {
    ref_t *r = p->data;
    if (r->in->nheads < MAX_REF) r->in->methods[r->in->nheads] = p->method;
    r->in->nheads++;
    r->keepalive = llhttp_should_keep_alive(p);
    return 0;
}

static int ref_on_complete(llhttp_t *p) {
    ref_t *r = p->data;
    input_t *in = r->in;
    const char *m = llhttp_method_name((llhttp_method_t)p->method);
    char *key = malloc(strlen(m) + 1 + r->url_len + 1);
    assert_non_null(key);
    sprintf(key, "%s %.*s", m, (int)r->url_len, r->url);
    in->keys[in->ncomplete++] = key;
    /* A server reads no further after a request that ends the connection, nor after an upgrade (llhttp
     * would stop there by itself with HPE_PAUSED_UPGRADE). */
    if (!r->keepalive || p->upgrade || in->ncomplete == MAX_REF) return HPE_PAUSED;
    return 0;
}

static const llhttp_settings_t ref_settings = {
    .on_message_begin = ref_on_begin,
    .on_url = ref_on_url,
    .on_headers_complete = ref_on_headers_complete,
    .on_message_complete = ref_on_complete,
};

static void reference_parse(input_t *in) {
    ref_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->in = in;
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &ref_settings);    /* strict: no lenient flags */
    p.data = r;
    llhttp_execute(&p, (const char *)in->data, in->len);
    free(r);
}

/* ---- what the upstream received (on_request runs on its connection threads) ---- */

typedef struct {
    char **keys;
    size_t n, cap;
} keys_t;

typedef struct {
    pthread_mutex_t mu;
    keys_t ok;                    /* "METHOD URL" of each request it answered */
    keys_t bad;                   /* "ERROR URL" of each request it could not parse */
} seen_t;

/* Static: a request that arrives while a failed test is torn down still finds it. */
static seen_t seen = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void seen_add(seen_t *s, keys_t *k, const char *a, const char *url, size_t url_len) {
    char *key = malloc(strlen(a) + 1 + url_len + 1);
    if (key == NULL) abort();
    sprintf(key, "%s %.*s", a, (int)url_len, url);
    pthread_mutex_lock(&s->mu);
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 1024;
        k->keys = realloc(k->keys, k->cap * sizeof *k->keys);
        if (k->keys == NULL) abort();
    }
    k->keys[k->n++] = key;
    pthread_mutex_unlock(&s->mu);
}

static void on_upstream_request(void *ctx, const char *method, const char *url, size_t url_len) {
    seen_t *s = ctx;
    seen_add(s, &s->ok, method, url, url_len);
}

static void on_upstream_bad_request(void *ctx, const char *url, size_t url_len, const char *error) {
    seen_t *s = ctx;
    seen_add(s, &s->bad, error, url, url_len);
}

static void keys_free(keys_t *k) {
    for (size_t i = 0; i < k->n; i++) free(k->keys[i]);
    free(k->keys);
    memset(k, 0, sizeof *k);
}

/* ---- reporting ---- */

enum { FAIL_RESPONSE, FAIL_HANG, FAIL_EXTRA_REQUEST, FAIL_UNPARSEABLE, NFAILS };

typedef struct {
    uint64_t seed;
    unsigned failures;
    unsigned printed[NFAILS];
} run_t;

/* The bytes as a C string literal (octal escapes: nothing after them can extend them). */
static void print_escaped(const unsigned char *b, size_t len, size_t max) {
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = b[i];
        if (c == '\r') fputs("\\r", stderr);
        else if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c == '"' || c == '\\') fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f) fprintf(stderr, "\\%03o", c);
        else fputc(c, stderr);
    }
    fputc('"', stderr);
    if (len > max) fprintf(stderr, " ... (%zu bytes)", len);
    fputc('\n', stderr);
}

static void report(run_t *run, int kind, const input_t *in, unsigned idx, const unsigned char *resp,
                   size_t resp_len, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void report(run_t *run, int kind, const input_t *in, unsigned idx, const unsigned char *resp,
                   size_t resp_len, const char *fmt, ...) {
    run->failures++;
    if (run->printed[kind]++ == MAX_PRINTED) fprintf(stderr, "FUZZ FAILURE: (more of this kind not printed)\n");
    if (run->printed[kind] > MAX_PRINTED) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FUZZ FAILURE: input %u (ES_FUZZ_SEED=%" PRIu64 ", seed request %s): ", idx, run->seed,
            in ? seed_names[in->seed_kind] : "?");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (in) {
        fprintf(stderr, "  input:    ");
        print_escaped(in->data, in->len, MAX_BYTES);
        fprintf(stderr, "  reference parser: %u complete request(s)", in->ncomplete);
        for (unsigned k = 0; k < in->ncomplete; k++) fprintf(stderr, "%s \"%s\"", k ? "," : ":", in->keys[k]);
        fputc('\n', stderr);
    }
    if (resp) {
        fprintf(stderr, "  response: ");
        print_escaped(resp, resp_len, 600);
    }
}

/* ---- checking the responses an input got ---- */

#define MAX_RESPONSES (MAX_REF + 1)

typedef struct {
    int skip_body;
    int done;
    int framed;
} resp_parse_t;

static int resp_on_headers_complete(llhttp_t *p) {
    resp_parse_t *r = p->data;
    r->framed = (p->flags & (F_CONTENT_LENGTH | F_CHUNKED)) != 0;
    return r->skip_body;          /* 1: no body (the answer to a HEAD) */
}

static int resp_on_complete(llhttp_t *p) {
    ((resp_parse_t *)p->data)->done = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_headers_complete = resp_on_headers_complete,
    .on_message_complete = resp_on_complete,
};

/* One complete response at the start of b: its length and status, or -1. */
static int parse_response(const unsigned char *b, size_t len, int skip_body, size_t *used, int *status) {
    resp_parse_t r = { .skip_body = skip_body };
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &resp_settings);
    p.data = &r;
    if (llhttp_execute(&p, (const char *)b, len) != HPE_PAUSED || !r.done || !r.framed || p.http_major != 1) return -1;
    *used = (size_t)(llhttp_get_error_pos(&p) - (const char *)b);
    *status = p.status_code;
    return 0;
}

/*
 * The whole of b as back-to-back complete responses; k-th answers the input's k-th request, so it may
 * lack its body if that was a HEAD (the proxy's own 400 carries one even then: both are tried).
 */
static int parse_responses(const input_t *in, const unsigned char *b, size_t len, unsigned k, int *statuses,
                           unsigned *n) {
    if (len == 0) {
        *n = k;
        return 0;
    }
    if (k == MAX_RESPONSES) return -1;
    int head = k < in->nheads && k < MAX_REF && in->methods[k] == HTTP_HEAD;
    for (int attempt = 0; attempt < 1 + head; attempt++) {
        size_t used;
        if (parse_response(b, len, head && attempt == 0, &used, &statuses[k]) != 0) continue;
        if (parse_responses(in, b + used, len - used, k + 1, statuses, n) == 0) return 0;
    }
    return -1;
}

/* What the proxy may say to a mangled request: 2xx comes from the upstream, the rest from the proxy. */
static int status_allowed(int s) {
    switch (s) {
    case 400: case 404: case 405: case 408: case 411: case 413: case 414: case 417: case 431:
    case 501: case 502: case 503: case 504: case 505:
        return 1;
    default:
        return s >= 200 && s < 300;
    }
}

typedef struct {
    unsigned by_status[600];
    unsigned responses;
    unsigned no_response;         /* closed by the proxy without a byte of response */
    unsigned resets;              /* the connection ended with a reset */
    unsigned left_open;           /* still open at the client's deadline */
    unsigned multi;               /* inputs holding more than one complete request */
} stats_t;

static void check_input(run_t *run, stats_t *st, const input_t *in, unsigned idx, const unsigned char *resp,
                        size_t len, int reset, int left_open) {
    if (reset) st->resets++;
    if (left_open) {
        st->left_open++;
#if LISTENER_TIMEOUTS
        report(run, FAIL_HANG, in, idx, resp, len, "the connection was still open after %d ms: the proxy hangs",
               HANG_DEADLINE_MS);
#endif
    }
    if (len == 0) {
        st->no_response += !left_open;
        return;
    }
    int statuses[MAX_RESPONSES];
    unsigned n = 0;
    if (parse_responses(in, resp, len, 0, statuses, &n) != 0) {
        /* A reset may cut a response short; anything else must be whole, even at our deadline. */
        if (!reset) report(run, FAIL_RESPONSE, in, idx, resp, len, "not a sequence of complete, framed responses");
        return;
    }
    st->responses += n;
    if (n > in->ncomplete + 1) {
        report(run, FAIL_RESPONSE, in, idx, resp, len, "%u responses to %u complete request(s)", n, in->ncomplete);
    }
    for (unsigned k = 0; k < n; k++) {
        if (statuses[k] >= 0 && statuses[k] < 600) st->by_status[statuses[k]]++;
        if (!status_allowed(statuses[k])) report(run, FAIL_RESPONSE, in, idx, resp, len, "status %d", statuses[k]);
    }
}

/* ---- running inputs, many at once ---- */

typedef struct {
    int fd;                       /* -1: free */
    unsigned idx;                 /* the input */
    size_t sent;
    unsigned char *buf;           /* what came back */
    size_t len;
    uint64_t deadline;
    int reset;
} slot_t;

typedef struct {
    es_proxy_t *px;
    run_t run;
    stats_t st;
    input_t *inputs;
    unsigned ninputs;
    uint64_t elapsed_ms;
} fuzz_t;

static void fail_with_log(fuzz_t *fz, const char *what, unsigned idx, int err) {
    es_proxy_print_log(fz->px);
    fail_msg("%s for input %u: %s", what, idx, strerror(err));
}

static int open_slot(slot_t *s, uint16_t port, unsigned idx, uint64_t now) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    *s = (slot_t){ .fd = fd, .idx = idx, .buf = s->buf,
                   .deadline = now + (LISTENER_TIMEOUTS ? HANG_DEADLINE_MS : OPEN_DEADLINE_MS) };
    return 0;
}

/* Sends what the socket takes of what is left of the input. */
static void slot_send(slot_t *s, const input_t *in) {
    while (s->sent < in->len) {
        ssize_t n = send(s->fd, in->data + s->sent, in->len - s->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) return;
            /* The proxy answered and closed before reading it all: its answer may still be readable. */
            s->sent = in->len;
            return;
        }
        s->sent += (size_t)n;
    }
}

/* Reads what arrived; 1 when the connection is over. */
static int slot_recv(slot_t *s) {
    for (;;) {
        unsigned char tmp[16384];
        ssize_t n = recv(s->fd, tmp, sizeof tmp, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            s->reset = 1;
            return 1;
        }
        if (n == 0) return 1;
        size_t keep = s->len + (size_t)n > READ_CAP ? READ_CAP - s->len : (size_t)n;
        memcpy(s->buf + s->len, tmp, keep);
        s->len += keep;
        if (s->len == READ_CAP) return 1;
    }
}

static void expect_still_serving(fuzz_t *fz, unsigned n) {
    char path[64], want[96];
    snprintf(path, sizeof path, "/alive/%u", n);
    snprintf(want, sizeof want, "upstream ok GET %s\n", path);
    es_response_t r;
    es_get(fz->px->port, path, &r);
    if (r.status != 200 || strcmp(r.body, want) != 0) {
        es_proxy_print_log(fz->px);
        fail_msg("a plain GET after fuzz input %u: got %d \"%s\"", n, r.status, r.body);
    }
    es_response_dispose(&r);
}

/*
 * Each input on its own connection, CONCURRENCY at once: connect, send it all (never a half-close), read
 * until the proxy ends the connection or the deadline. A plain GET goes through at each quarter.
 */
static void run_inputs(fuzz_t *fz) {
    slot_t slots[CONCURRENCY];
    struct pollfd pfds[CONCURRENCY];
    for (int k = 0; k < CONCURRENCY; k++) {
        slots[k].fd = -1;
        slots[k].buf = malloc(READ_CAP);
        assert_non_null(slots[k].buf);
    }
    uint64_t t0 = es_now_ms();
    unsigned next = 0, done = 0, alive_checks = 0;
    while (done < fz->ninputs) {
        uint64_t now = es_now_ms();
        if (alive_checks < 3 && next * 4 >= (alive_checks + 1) * fz->ninputs) {
            alive_checks++;
            expect_still_serving(fz, next);
        }
        int timeout = 100;
        for (int k = 0; k < CONCURRENCY; k++) {
            slot_t *s = &slots[k];
            if (s->fd < 0 && next < fz->ninputs) {
                int err = open_slot(s, fz->px->port, next, now);
                if (err) fail_with_log(fz, "connecting", next, -err);
                next++;
            }
            pfds[k] = (struct pollfd){ .fd = s->fd };
            if (s->fd < 0) continue;
            pfds[k].events = POLLIN | (s->sent < fz->inputs[s->idx].len ? POLLOUT : 0);
            int left = s->deadline > now ? (int)(s->deadline - now) : 0;
            if (left < timeout) timeout = left;
        }
        if (poll(pfds, CONCURRENCY, timeout) < 0 && errno != EINTR) fail_with_log(fz, "poll", next, errno);
        now = es_now_ms();
        for (int k = 0; k < CONCURRENCY; k++) {
            slot_t *s = &slots[k];
            if (s->fd < 0) continue;
            const input_t *in = &fz->inputs[s->idx];
            int over = 0;
            if (pfds[k].revents & POLLOUT) slot_send(s, in);
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) over = slot_recv(s);
            int left_open = !over && now >= s->deadline;
            if (!over && !left_open) continue;
            check_input(&fz->run, &fz->st, in, s->idx, s->buf, s->len, s->reset, left_open);
            close(s->fd);
            s->fd = -1;
            done++;
        }
    }
    fz->elapsed_ms = es_now_ms() - t0;
    for (int k = 0; k < CONCURRENCY; k++) free(slots[k].buf);
}

/* ---- what reached the upstream ---- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The input a key ("WORD TARGET") comes from: the id its target carries ("/fz/N/N" or "/smuggled/N/N"),
 * else the first input holding the target (a mutation hit the id), or -1.
 */
static long input_of(const char *key, const input_t *inputs, unsigned ninputs) {
    const char *p = strstr(key, "/fz/");
    p = p ? p + 4 : strstr(key, "/smuggled/") ? strstr(key, "/smuggled/") + 10 : NULL;
    unsigned a, b;
    if (p != NULL && sscanf(p, "%u/%u", &a, &b) == 2 && a == b && a < ninputs) return a;
    const char *target = strchr(key, ' ');
    if (target == NULL || target[1] == '\0') return -1;
    for (unsigned i = 0; i < ninputs; i++) {
        if (memmem(inputs[i].data, inputs[i].len, target + 1, strlen(target + 1))) return i;
    }
    return -1;
}

/*
 * Every request the upstream received must be a complete request the reference parser found in an
 * input, at most as many times as it found it: ids are unique, so for nearly every input this means
 * its own request at most once and the one in its body never.
 */
static void check_upstream(run_t *run, input_t *inputs, unsigned ninputs, unsigned *forwarded, unsigned *hidden) {
    size_t nref = 0;
    for (unsigned i = 0; i < ninputs; i++) nref += inputs[i].ncomplete;
    char **ref = malloc((nref + 1) * sizeof *ref);
    assert_non_null(ref);
    nref = 0;
    for (unsigned i = 0; i < ninputs; i++) {
        for (unsigned k = 0; k < inputs[i].ncomplete; k++) ref[nref++] = inputs[i].keys[k];
    }
    qsort(ref, nref, sizeof *ref, cmp_str);
    qsort(seen.ok.keys, seen.ok.n, sizeof *seen.ok.keys, cmp_str);

    *forwarded = *hidden = 0;
    size_t j = 0;
    for (size_t i = 0; i < seen.ok.n;) {
        const char *key = seen.ok.keys[i];
        size_t got = 0;
        while (i < seen.ok.n && strcmp(seen.ok.keys[i], key) == 0) i++, got++;
        if (strncmp(key, "GET /alive/", 11) == 0) continue;
        *forwarded += (unsigned)got;
        while (j < nref && strcmp(ref[j], key) < 0) j++;
        size_t have = 0;
        while (j + have < nref && strcmp(ref[j + have], key) == 0) have++;
        if (strstr(key, "smuggled")) *hidden += (unsigned)(got < have ? got : have);
        if (got <= have) continue;
        long id = input_of(key, inputs, ninputs);
        report(run, FAIL_EXTRA_REQUEST, id >= 0 ? &inputs[id] : NULL, id >= 0 ? (unsigned)id : 0, NULL, 0,
               "the upstream received \"%s\" %zu time(s), the inputs hold it %zu time(s)%s", key, got, have,
               strstr(key, "smuggled") ? ": the request hidden in a body got through" : "");
    }
    free(ref);

    /* What the proxy sent in a shape the upstream cannot parse: framing the two ends may disagree on. */
    for (size_t i = 0; i < seen.bad.n; i++) {
        const char *key = seen.bad.keys[i], *target = strchr(key, ' ');
        long id = input_of(key, inputs, ninputs);
        report(run, FAIL_UNPARSEABLE, id >= 0 ? &inputs[id] : NULL, id >= 0 ? (unsigned)id : 0, NULL, 0,
               "the upstream could not parse what the proxy forwarded (%.*s; the last target it read on that"
               " connection: \"%s\")", (int)(target - key), key, target + 1);
    }
}


static unsigned env_unsigned(const char *name, unsigned dflt) {
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 0) : dflt;
}

static void make_inputs(fuzz_t *fz) {
    fz->inputs = calloc(fz->ninputs ? fz->ninputs : 1, sizeof *fz->inputs);
    assert_non_null(fz->inputs);
    for (unsigned i = 0; i < fz->ninputs; i++) {
        input_t *in = &fz->inputs[i];
        uint64_t rng = fz->run.seed ^ (UINT64_C(0xa0761d6478bd642f) * (i + 1));
        bytes_t x;
        in->seed_kind = make_seed(&x, i, &rng);
        for (size_t ops = 1 + below(&rng, 4); ops > 0; ops--) mutate_once(&x, &rng);
        in->data = malloc(x.len ? x.len : 1);
        assert_non_null(in->data);
        memcpy(in->data, x.b, x.len);
        in->len = x.len;
        reference_parse(in);
        fz->st.multi += in->ncomplete > 1;
    }
}

static void free_inputs(fuzz_t *fz) {
    for (unsigned i = 0; i < fz->ninputs; i++) {
        for (unsigned k = 0; k < fz->inputs[i].ncomplete; k++) free(fz->inputs[i].keys[k]);
        free(fz->inputs[i].data);
    }
    free(fz->inputs);
}

static void test_mutated_requests(void **state) {
    es_fixture_t *f = *state;
    /* The fixture's upstream again, now telling us about every request it gets. */
    es_upstream_stop(&f->up);
    f->up.on_request = on_upstream_request;
    f->up.on_bad_request = on_upstream_bad_request;
    f->up.on_request_ctx = &seen;
    assert_int_equal(es_upstream_start(&f->up), 0);

    fuzz_t fz = { .px = &f->px };
    const char *seed = getenv("ES_FUZZ_SEED");
    fz.run.seed = seed && *seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    fz.ninputs = env_unsigned("ES_FUZZ_ITERS", DEFAULT_ITERS);
    fprintf(stderr, "fuzz: ES_FUZZ_SEED=%" PRIu64 " ES_FUZZ_ITERS=%u, %d at once, listener timeouts %s\n", fz.run.seed,
            fz.ninputs, CONCURRENCY, LISTENER_TIMEOUTS ? "on" : "off");
    make_inputs(&fz);

    f->px.log_level = "info";
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
#if LISTENER_TIMEOUTS
                   "    request_headers_timeout: 500ms\n"
                   "    idle_timeout: 500ms\n"
                   "    request_timeout: 1s\n"
#endif
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "    connect_timeout: 1s\n",
                   f->up.port);
    run_inputs(&fz);
    expect_still_serving(&fz, fz.ninputs);

    /* Once both ends have stopped nothing more can reach the upstream: then count. */
    es_proxy_stop(&f->px);
    es_upstream_stop(&f->up);
    unsigned forwarded, hidden;
    check_upstream(&fz.run, fz.inputs, fz.ninputs, &forwarded, &hidden);

    stats_t *st = &fz.st;
    fprintf(stderr, "fuzz: %u inputs in %.1f s; forwarded %u (%u of them a body's request that the mutation made a"
                    " request of its own: %u inputs hold more than one); upstream could not parse %zu; answered",
            fz.ninputs, (double)fz.elapsed_ms / 1000, forwarded, hidden, st->multi, seen.bad.n);
    for (int s = 0; s < 600; s++) {
        if (st->by_status[s]) fprintf(stderr, " %d=%u", s, st->by_status[s]);
    }
    fprintf(stderr, "; closed without a response %u (reset %u); left open until our deadline %u\n", st->no_response,
            st->resets, st->left_open);

    keys_free(&seen.ok);
    keys_free(&seen.bad);
    free_inputs(&fz);
    if (fz.run.failures) {
        fail_msg("%u fuzz failure(s), up to %d of each kind printed above; replay with ES_FUZZ_SEED=%" PRIu64
                 " ES_FUZZ_ITERS=%u",
                 fz.run.failures, MAX_PRINTED, fz.run.seed, fz.ninputs);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mutated_requests, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests_name("proxy_fuzz", tests, NULL, NULL);
}

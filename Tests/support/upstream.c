/*
 * The test upstream (see upstream.h for what it answers). Blocking sockets and one thread per
 * connection: simple, and robust enough for tests and `make run`.
 *
 * With TLS (tls_cert set) each connection thread does a blocking SSL_accept first, then every read and
 * write of that connection goes through conn_recv / send_all, the two I/O choke points, over SSL_read /
 * SSL_write. The plain path is the recv / send it always was.
 */
#include "upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define READ_SIZE   65536
#define STREAM_SIZE 65536        /* a multiple of 256, so one pattern buffer serves every offset */

/* A growable string. */
typedef struct {
    char *base;
    size_t len, cap;
} sbuf_t;

static void sbuf_add(sbuf_t *b, const char *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) cap *= 2;
        char *p = realloc(b->base, cap);
        if (p == NULL) abort();
        b->base = p;
        b->cap = cap;
    }
    memcpy(b->base + b->len, data, len);
    b->len += len;
    b->base[b->len] = '\0';
}

static void sbuf_printf(sbuf_t *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sbuf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) abort();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sbuf_add(b, big, (size_t)n);
    free(big);
}

static void sbuf_reset(sbuf_t *b) {
    b->len = 0;
    if (b->base) b->base[0] = '\0';
}

static void sbuf_free(sbuf_t *b) {
    free(b->base);
    memset(b, 0, sizeof *b);
}

struct es_upstream_conn_s {
    es_upstream_t *u;
    es_upstream_conn_t *next;
    pthread_t thread;
    int fd;                      /* closed (and set to -1) under u->mu */
    SSL *ssl;                    /* TLS: created, used and freed on the connection's thread; else NULL */
    int tls_broken;              /* a fatal TLS error happened: no close_notify (OpenSSL forbids it) */
    int tls_no_notify;           /* /hangup?notify=0: close without close_notify */
    atomic_int done;
    unsigned long ordinal;
    unsigned long nreq;
    uint64_t rng;                /* xorshift state for the racy idle close */

    llhttp_t parser;
    sbuf_t url;
    sbuf_t head;                 /* "name: value\n" per request header */
    sbuf_t trailers;             /* "trailer name: value\n" per trailer */
    sbuf_t field, value;         /* the header being read */
    int in_value;
    int headers_done;
    int keep_alive;
    int drop_next;               /* /drop-next was served: reset at the next request */
    int http_major, http_minor;
    int method;
    int chunked;
    uint64_t body_len;
    uint64_t body_fnv;
};

static unsigned char pattern[STREAM_SIZE];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void pattern_init(void) {
    es_pattern_fill(pattern, 0, sizeof pattern);
}

/* ---- I/O: send_all and conn_recv, plain or TLS ---- */

/* One SSL_write: bytes written (all of len, OpenSSL writes whole buffers), or -1 with errno. */
static ssize_t tls_send(es_upstream_conn_t *c, const void *data, size_t len) {
    int want = len > (1u << 30) ? (1 << 30) : (int)len;
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(c->ssl, data, want);
    if (n > 0) return n;
    int err = SSL_get_error(c->ssl, n);
    if ((err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) && errno == EINTR) return -1;
    c->tls_broken = 1;
    if (errno == 0 || errno == EINTR) errno = EPIPE;
    return -1;
}

static int send_all(es_upstream_conn_t *c, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = c->ssl ? tls_send(c, p, len) : send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        atomic_fetch_add(&c->u->bytes_out, (unsigned long long)n);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One read: bytes read, 0 at the end of the stream (EOF, close_notify, or any TLS error), -1 with errno. */
static ssize_t conn_recv(es_upstream_conn_t *c, void *buf, size_t len) {
    if (c->ssl == NULL) return recv(c->fd, buf, len, 0);
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) return n;
    int err = SSL_get_error(c->ssl, n);
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && errno == EINTR) return -1;
    if (err != SSL_ERROR_ZERO_RETURN) c->tls_broken = 1;
    return 0;
}

/*
 * TLS: sends close_notify before the connection closes (a graceful close), unless the connection is
 * broken or /hangup?notify=0 asked for a bare FIN. Never blocks: a peer that reads nothing gets none.
 */
static void tls_notify(es_upstream_conn_t *c) {
    if (c->ssl == NULL || c->tls_broken || c->tls_no_notify || c->fd < 0) return;
    int fl = fcntl(c->fd, F_GETFL);
    if (fl >= 0) fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    c->tls_no_notify = 1;        /* once */
}

static void copy_str(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap) len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default:  return "Status";
    }
}

enum { LEN_CHUNKED = -1, LEN_NONE = -2 };

/* Appends the status line and the headers every response has. */
static void build_head(es_upstream_conn_t *c, sbuf_t *out, int status, int64_t content_length) {
    sbuf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    sbuf_printf(out, "x-upstream-conn: %lu\r\nx-upstream-req: %lu\r\n", c->ordinal, c->nreq);
    if (content_length == LEN_CHUNKED) {
        sbuf_printf(out, "transfer-encoding: chunked\r\n");
    } else if (content_length >= 0) {
        sbuf_printf(out, "content-length: %" PRId64 "\r\n", content_length);
    }
    if (!c->keep_alive) {
        sbuf_printf(out, "connection: close\r\n");
    } else if (c->http_major == 1 && c->http_minor == 0) {
        sbuf_printf(out, "connection: keep-alive\r\n");
    }
}

/* A whole response with a small body held in memory. */
/* Whether the request had header `name` (any case) with exactly `value`. */
static int head_has(const es_upstream_conn_t *c, const char *name, const char *value) {
    size_t nlen = strlen(name), vlen = strlen(value);
    const char *p = c->head.base, *end = c->head.base + c->head.len;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (len == nlen + 2 + vlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':' &&
            memcmp(p + nlen + 2, value, vlen) == 0)
            return 1;
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

static int send_simple(es_upstream_conn_t *c, int status, const char *body, size_t body_len) {
    sbuf_t out = {0};
    int no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    build_head(c, &out, status, no_body ? LEN_NONE : (int64_t)body_len);
    sbuf_add(&out, "\r\n", 2);
    if (!no_body && c->method != HTTP_HEAD) sbuf_add(&out, body, body_len);
    int rc = send_all(c, out.base, out.len);
    sbuf_free(&out);
    return rc;
}

/*
 * /bytes. eof: no Content-Length, the body ends with the connection (the caller closes). cut: stop after
 * that many body bytes (the caller closes), a response that dies in the middle.
 */
static int send_bytes(es_upstream_conn_t *c, uint64_t n, int chunked, int trailer, int eof, uint64_t cut) {
    pthread_once(&pattern_once, pattern_init);
    if (c->http_major == 1 && c->http_minor == 0) chunked = 0;   /* no chunked for HTTP/1.0 */
    if (eof) {
        chunked = 0;
        c->keep_alive = 0;
    }
    sbuf_t out = {0};
    build_head(c, &out, 200, chunked ? LEN_CHUNKED : eof ? LEN_NONE : (int64_t)n);
    if (chunked && trailer) sbuf_printf(&out, "trailer: x-checksum\r\n");
    sbuf_add(&out, "\r\n", 2);
    int rc = send_all(c, out.base, out.len);
    sbuf_free(&out);
    if (rc != 0 || c->method == HTTP_HEAD) return rc;

    uint64_t fnv = ES_FNV_INIT;
    uint64_t stop = cut < n ? cut : n;
    for (uint64_t off = 0; off < stop;) {
        size_t len = stop - off < STREAM_SIZE ? (size_t)(stop - off) : STREAM_SIZE;
        if (chunked) {
            char line[32];
            int k = snprintf(line, sizeof line, "%zx\r\n", len);
            if (send_all(c, line, (size_t)k) != 0) return -1;
        }
        if (send_all(c, pattern, len) != 0) return -1;
        if (chunked && send_all(c, "\r\n", 2) != 0) return -1;
        if (trailer) fnv = es_fnv1a(fnv, pattern, len);
        off += len;
    }
    if (stop < n) return -1;      /* cut short: the caller closes the connection */
    if (chunked) {
        char end[64];
        int k = trailer ? snprintf(end, sizeof end, "0\r\nx-checksum: %016" PRIx64 "\r\n\r\n", fnv)
                        : snprintf(end, sizeof end, "0\r\n\r\n");
        if (send_all(c, end, (size_t)k) != 0) return -1;
    }
    return 0;
}

/* ---- parsing ---- */

static void flush_header(es_upstream_conn_t *c) {
    if (c->field.len == 0 && !c->in_value) return;
    sbuf_t *dst = c->headers_done ? &c->trailers : &c->head;
    if (c->headers_done) sbuf_add(dst, "trailer ", 8);
    sbuf_add(dst, c->field.base ? c->field.base : "", c->field.len);
    sbuf_add(dst, ": ", 2);
    sbuf_add(dst, c->value.base ? c->value.base : "", c->value.len);
    sbuf_add(dst, "\n", 1);
    sbuf_reset(&c->field);
    sbuf_reset(&c->value);
    c->in_value = 0;
}

static int on_message_begin(llhttp_t *p) {
    es_upstream_conn_t *c = p->data;
    sbuf_reset(&c->url);
    sbuf_reset(&c->head);
    sbuf_reset(&c->trailers);
    sbuf_reset(&c->field);
    sbuf_reset(&c->value);
    c->in_value = 0;
    c->headers_done = 0;
    c->chunked = 0;
    c->body_len = 0;
    c->body_fnv = ES_FNV_INIT;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    es_upstream_conn_t *c = p->data;
    sbuf_add(&c->url, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    es_upstream_conn_t *c = p->data;
    if (c->in_value) flush_header(c);
    sbuf_add(&c->field, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    es_upstream_conn_t *c = p->data;
    c->in_value = 1;
    sbuf_add(&c->value, at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    es_upstream_conn_t *c = p->data;
    flush_header(c);
    c->headers_done = 1;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->http_major = p->http_major;
    c->http_minor = p->http_minor;
    c->method = p->method;
    c->chunked = (p->flags & F_CHUNKED) != 0;
    if (c->url.base && strncmp(c->url.base, "/sink?", 6) == 0 && strstr(c->url.base, "hold=1")) {
        /* A slow upstream: read nothing more until the test says so. */
        es_upstream_t *u = c->u;
        atomic_fetch_add(&u->holding, 1);
        while (!atomic_load(&u->released) && !atomic_load(&u->stopping)) {
            struct timespec ts = { 0, 5 * 1000000L };
            nanosleep(&ts, NULL);
        }
        atomic_fetch_sub(&u->holding, 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    es_upstream_conn_t *c = p->data;
    c->body_len += len;
    c->body_fnv = es_fnv1a(c->body_fnv, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    es_upstream_conn_t *c = p->data;
    flush_header(c);
    return HPE_PAUSED;           /* answer this request before parsing the next one */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/*
 * The path and query of a request-target (origin-form, or absolute-form: its authority is skipped); the fragment
 * is dropped. llhttp does not split targets. A target without a path (authority-form, "*") is all path.
 */
static void split_target(const char *url, size_t len, const char **path, size_t *plen, const char **query,
                         size_t *qlen) {
    const char *p = url, *end = url + len;
    const char *scheme = len > 3 ? memchr(url, ':', len) : NULL;
    if (len > 0 && url[0] != '/' && scheme != NULL && end - scheme >= 3 && memcmp(scheme, "://", 3) == 0) {
        const char *slash = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        p = slash != NULL ? slash : end;
    }
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash != NULL) end = hash;
    const char *q = memchr(p, '?', (size_t)(end - p));
    *path = p;
    *plen = (size_t)((q != NULL ? q : end) - p);
    *query = q != NULL ? q + 1 : "";
    *qlen = q != NULL ? (size_t)(end - q - 1) : 0;
    if (*plen == 0 && p == url) {
        *path = url;
        *plen = len;
    }
}

/* The value of `name` in a query string, or NULL. Writes into buf. */
static const char *query_param(const char *query, size_t qlen, const char *name, char *buf, size_t buflen) {
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < qlen) {
        size_t end = i;
        while (end < qlen && query[end] != '&') end++;
        if (end - i > nlen && memcmp(query + i, name, nlen) == 0 && query[i + nlen] == '=') {
            size_t vlen = end - i - nlen - 1;
            if (vlen >= buflen) vlen = buflen - 1;
            memcpy(buf, query + i + nlen + 1, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        i = end + 1;
    }
    return NULL;
}

static uint64_t query_u64(const char *query, size_t qlen, const char *name, uint64_t dflt) {
    char buf[32];
    const char *v = query_param(query, qlen, name, buf, sizeof buf);
    return v ? strtoull(v, NULL, 10) : dflt;
}

static void sleep_ms(es_upstream_t *u, uint64_t ms) {
    while (ms > 0 && !atomic_load(&u->stopping)) {
        uint64_t step = ms < 10 ? ms : 10;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void close_fd(es_upstream_conn_t *c) {
    pthread_mutex_lock(&c->u->mu);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    pthread_mutex_unlock(&c->u->mu);
}

enum { KEEP_GOING = 0, CLOSE = 1, GONE = 2 };

/* Answers the request just parsed. Returns KEEP_GOING, CLOSE (close gracefully) or GONE (fd closed). */
static int respond(es_upstream_conn_t *c) {
    es_upstream_t *u = c->u;
    c->nreq++;
    atomic_fetch_add(&u->requests, 1);

    const char *url = c->url.base ? c->url.base : "";
    const char *path, *query;
    size_t plen, qlen;
    split_target(url, c->url.len, &path, &plen, &query, &qlen);
    const char *method = llhttp_method_name((llhttp_method_t)c->method);
    if (u->verbose) {
        fprintf(stderr, "es-upstream: conn %lu req %lu: %s %s\n", c->ordinal, c->nreq, method, url);
    }
    if (u->on_request) u->on_request(u->on_request_ctx, method, url, c->url.len);

#define IS(lit) (plen == sizeof(lit) - 1 && memcmp(path, lit, sizeof(lit) - 1) == 0)
    int rc;
    if (c->drop_next) {
        /* The request after /drop-next: reset without a response byte, as a server that timed out the
         * idle connection just as the request arrived. */
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close_fd(c);
        return GONE;
    }
    if (IS("/drop-next")) {
        c->drop_next = 1;
        char body[64];
        int n = snprintf(body, sizeof body, "upstream ok %s /drop-next\n", method);
        rc = send_simple(c, 200, body, (size_t)n);
    } else if (IS("/auth")) {
        /* An auth service: "authorization: Bearer good" is alice (200, x-auth-user), anything else 401. */
        int ok = head_has(c, "authorization", "Bearer good");
        sbuf_t out = {0};
        const char *body = ok ? "ok\n" : "who are you?\n";
        build_head(c, &out, ok ? 200 : 401, (int64_t)strlen(body));
        if (ok) sbuf_printf(&out, "x-auth-user: alice\r\n");
        sbuf_add(&out, "\r\n", 2);
        sbuf_add(&out, body, strlen(body));
        rc = send_all(c, out.base, out.len);
        sbuf_free(&out);
    } else if (IS("/headers")) {
        sbuf_t body = {0};
        sbuf_printf(&body, "%s %s HTTP/%d.%d\n", method, url, c->http_major, c->http_minor);
        if (c->head.len) sbuf_add(&body, c->head.base, c->head.len);
        rc = send_simple(c, 200, body.base, body.len);
        sbuf_free(&body);
    } else if (IS("/sink")) {
        sbuf_t body = {0};
        sbuf_printf(&body, "len=%" PRIu64 " fnv=%016" PRIx64 "\n", c->body_len, c->body_fnv);
        if (c->trailers.len) sbuf_add(&body, c->trailers.base, c->trailers.len);
        rc = send_simple(c, 200, body.base, body.len);
        sbuf_free(&body);
    } else if (IS("/bytes")) {
        rc = send_bytes(c, query_u64(query, qlen, "n", 0), query_u64(query, qlen, "chunked", 0) != 0,
                        query_u64(query, qlen, "trailer", 0) != 0, query_u64(query, qlen, "eof", 0) != 0,
                        query_u64(query, qlen, "cut", UINT64_MAX));
    } else if (IS("/text")) {
        /* A text/plain body (for body-rewriting filters), Content-Length or, with chunked=1, two chunks. */
        char body[256 + 16];
        int n = snprintf(body, sizeof body, "upstream ok %s %.*s\n", method, plen > 256 ? 256 : (int)plen, path);
        sbuf_t out = {0};
        int chunked = query_u64(query, qlen, "chunked", 0) != 0 && !(c->http_major == 1 && c->http_minor == 0);
        build_head(c, &out, 200, chunked ? LEN_CHUNKED : (int64_t)n);
        sbuf_printf(&out, "content-type: text/plain; charset=utf-8\r\n\r\n");
        if (c->method != HTTP_HEAD) {
            if (chunked)
                sbuf_printf(&out, "%x\r\n%.*s\r\n%x\r\n%s\r\n0\r\n\r\n", n - 5, n - 5, body, 5, body + n - 5);
            else
                sbuf_add(&out, body, (size_t)n);
        }
        rc = send_all(c, out.base, out.len);
        sbuf_free(&out);
    } else if (IS("/status")) {
        int code = (int)query_u64(query, qlen, "code", 200);
        if (code < 200 || code > 599) code = 200;
        char body[32];
        int n = snprintf(body, sizeof body, "status %d\n", code);
        rc = send_simple(c, code, body, (size_t)n);
    } else if (IS("/close")) {
        c->keep_alive = 0;
        char body[256];
        int n = snprintf(body, sizeof body, "upstream ok %s %.*s\n", method, (int)plen, path);
        send_simple(c, 200, body, (size_t)n);
        return CLOSE;
    } else if (IS("/close-silently")) {
        /* Keep-alive as far as the headers say, then the connection closes (an upstream's idle timeout). */
        char body[256];
        int n = snprintf(body, sizeof body, "upstream ok %s %.*s\n", method, (int)plen, path);
        send_simple(c, 200, body, (size_t)n);
        return CLOSE;
    } else if (IS("/malformed")) {
        /* A response no parser should accept, on a connection that stays open: the proxy must answer
         * 502 and not reuse the connection. kind=status: a bad status code; kind=framing: both
         * Content-Length and Transfer-Encoding (response smuggling). */
        static const char bad_status[] = "HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\nok";
        static const char bad_framing[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n"
                                          "2\r\nok\r\n0\r\n\r\n";
        int framing = qlen >= 12 && memmem(query, qlen, "kind=framing", 12) != NULL;
        rc = framing ? send_all(c, bad_framing, sizeof bad_framing - 1) : send_all(c, bad_status, sizeof bad_status - 1);
    } else if (IS("/hangup")) {
        /* A FIN instead of a response; over TLS after a close_notify, unless notify=0 (a truncation). */
        if (query_u64(query, qlen, "notify", 1) == 0) c->tls_no_notify = 1;
        return CLOSE;
    } else if (IS("/reset")) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close_fd(c);
        return GONE;
    } else {
        if (IS("/delay")) sleep_ms(u, query_u64(query, qlen, "ms", 0));
        char body[256 + 16];
        int n = snprintf(body, sizeof body, "upstream ok %s %.*s\n", method, plen > 256 ? 256 : (int)plen,
                         path);
        rc = send_simple(c, 200, body, (size_t)n);
    }
#undef IS
    if (rc != 0) return CLOSE;
    return c->keep_alive ? KEEP_GOING : CLOSE;
}

static unsigned next_rand(es_upstream_conn_t *c) {
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (unsigned)(c->rng >> 32);
}

/*
 * Racy idle close, after a keep-alive answer with nothing of the next request read: waits 1..max ms for
 * one. None: closes, but only after the lag, without reading, so that a request sent in the meantime
 * meets a close (RST, for its unread bytes) instead of an answer. Returns 1 when it closed.
 */
static int idle_close(es_upstream_conn_t *c) {
    es_upstream_t *u = c->u;
    int wait = (int)(1 + next_rand(c) % u->idle_close_max_ms);
    if (c->ssl && SSL_has_pending(c->ssl)) return 0;     /* bytes already read from the socket */
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    int r;
    do {
        r = poll(&pfd, 1, wait);
    } while (r < 0 && errno == EINTR);
    if (r != 0) return 0;        /* bytes, EOF or es_upstream_stop(): the read loop sees which */
    atomic_fetch_add(&u->idle_closes, 1);
    sleep_ms(u, u->close_lag_ms ? u->close_lag_ms : 2);
    tls_notify(c);
    close_fd(c);
    return 1;
}

/* Why the last TLS call failed, for last_tls_error: OpenSSL's queue, else the socket's story. */
static void tls_describe(SSL *ssl, int ret, char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        ERR_error_string_n(e, buf, len);
    } else if (SSL_get_error(ssl, ret) == SSL_ERROR_SYSCALL) {
        snprintf(buf, len, "%s", errno ? strerror(errno) : "the peer closed the connection (EOF)");
    } else {
        snprintf(buf, len, "SSL_get_error %d", SSL_get_error(ssl, ret));
    }
}

/* TLS: the blocking server handshake. 0, or -1 (counted; the caller closes without close_notify). */
static int tls_accept(es_upstream_conn_t *c) {
    es_upstream_t *u = c->u;
    c->ssl = SSL_new(u->tls_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) abort();
    SSL_set_app_data(c->ssl, c);
    int r;
    do {
        ERR_clear_error();
        errno = 0;
        r = SSL_accept(c->ssl);
    } while (r <= 0 && errno == EINTR && (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ ||
                                           SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE));
    if (r != 1) {
        char why[256];
        tls_describe(c->ssl, r, why, sizeof why);
        ERR_clear_error();
        c->tls_broken = 1;
        atomic_fetch_add(&u->tls_handshake_failures, 1);
        pthread_mutex_lock(&u->mu);
        copy_str(u->last_tls_error, sizeof u->last_tls_error, why, strlen(why));
        pthread_mutex_unlock(&u->mu);
        if (u->verbose) fprintf(stderr, "es-upstream: conn %lu: TLS handshake failed: %s\n", c->ordinal, why);
        return -1;
    }
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    pthread_mutex_lock(&u->mu);
    copy_str(u->last_alpn, sizeof u->last_alpn, alpn ? (const char *)alpn : "", alpn ? alpn_len : 0);
    pthread_mutex_unlock(&u->mu);
    atomic_fetch_add(&u->tls_handshakes, 1);
    if (SSL_session_reused(c->ssl)) atomic_fetch_add(&u->tls_resumed, 1);
    return 0;
}

static void serve(es_upstream_conn_t *c) {
    es_upstream_t *u = c->u;
    char *buf = malloc(READ_SIZE);
    if (buf == NULL) abort();
    if (u->tls_ctx && tls_accept(c) != 0) goto out;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    c->rng = (c->ordinal * UINT64_C(0x9e3779b97f4a7c15)) ^ (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
    if (c->rng == 0) c->rng = 1;

    int idle = 0;                /* the last answer ended the bytes read, and the connection stays open */
    for (;;) {
        if (idle && u->idle_close_max_ms > 0 && idle_close(c)) goto out;
        idle = 0;
        ssize_t n = conn_recv(c, buf, READ_SIZE);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || atomic_load(&u->stopping)) break;
        if (u->silent) continue;
        size_t off = 0;
        while (off < (size_t)n) {
            llhttp_errno_t err = llhttp_execute(&c->parser, buf + off, (size_t)n - off);
            /* Paused (or failed): llhttp says where it stopped; otherwise it took every byte. */
            size_t k = err == HPE_OK ? (size_t)n - off : (size_t)(llhttp_get_error_pos(&c->parser) - (buf + off));
            off += k;
            if (err == HPE_PAUSED) {
                llhttp_resume(&c->parser);
                int r = respond(c);
                if (r == GONE) goto out;
                if (r == CLOSE) goto close;
                idle = off == (size_t)n;
                continue;
            }
            if (err != HPE_OK) {
                atomic_fetch_add(&u->bad_requests, 1);
                if (u->on_bad_request) {
                    u->on_bad_request(u->on_request_ctx, c->url.base ? c->url.base : "", c->url.len,
                                      llhttp_errno_name(err));
                }
                if (u->verbose) fprintf(stderr, "es-upstream: conn %lu: bad request: %s\n", c->ordinal,
                                        llhttp_get_error_reason(&c->parser));
                const char *bad = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                send_all(c, bad, strlen(bad));
                goto close;
            }
            if (k == 0) break;
        }
    }
close:
    tls_notify(c);
    pthread_mutex_lock(&u->mu);
    if (c->fd >= 0) shutdown(c->fd, SHUT_WR);
    pthread_mutex_unlock(&u->mu);
out:
    close_fd(c);
    free(buf);
}

static void *conn_main(void *arg) {
    es_upstream_conn_t *c = arg;
    if (c->u->tls_ctx) {
        /* SSL_write and SSL_shutdown write() without MSG_NOSIGNAL: a peer that is gone must give EPIPE, not
         * kill the test. SIGPIPE is thread-directed, so blocking it here is enough. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    serve(c);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    sbuf_free(&c->url);
    sbuf_free(&c->head);
    sbuf_free(&c->trailers);
    sbuf_free(&c->field);
    sbuf_free(&c->value);
    atomic_store(&c->done, 1);
    return NULL;
}

/* Joins and frees connections whose thread has finished (the standalone server runs for long). */
static void reap(es_upstream_t *u) {
    pthread_mutex_lock(&u->mu);
    es_upstream_conn_t **pp = &u->conns;
    while (*pp) {
        es_upstream_conn_t *c = *pp;
        if (atomic_load(&c->done)) {
            *pp = c->next;
            pthread_join(c->thread, NULL);
            free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&u->mu);
}

static void *accept_main(void *arg) {
    es_upstream_t *u = arg;
    for (;;) {
        int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (atomic_load(&u->stopping)) {
            if (fd >= 0) close(fd);
            break;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct timespec ts = { 0, 10 * 1000000L };
                nanosleep(&ts, NULL);
                continue;
            }
            break;
        }
        reap(u);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        es_upstream_conn_t *c = calloc(1, sizeof *c);
        if (c == NULL) abort();
        c->u = u;
        c->fd = fd;
        c->ordinal = atomic_fetch_add(&u->connections, 1) + 1;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_mutex_lock(&u->mu);
        c->next = u->conns;
        u->conns = c;
        pthread_mutex_unlock(&u->mu);
    }
    return NULL;
}

/* Records the SNI of every ClientHello (none: ""), before the certificate is even chosen. */
static int on_servername(SSL *ssl, int *alert, void *arg) {
    es_upstream_t *u = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    pthread_mutex_lock(&u->mu);
    copy_str(u->last_sni, sizeof u->last_sni, name ? name : "", name ? strlen(name) : 0);
    pthread_mutex_unlock(&u->mu);
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: http/1.1 when the client offers it; otherwise no ALPN at all (not an error). */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The server SSL_CTX for tls_cert / tls_key. NULL (OpenSSL's reasons on stderr) when they do not load. */
static SSL_CTX *tls_ctx_new(es_upstream_t *u) {
    const char *key = u->tls_key ? u->tls_key : u->tls_cert;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, u->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "es-upstream: cannot use TLS certificate %s with key %s:\n", u->tls_cert, key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, u);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, u);
    return ctx;
}

int es_upstream_start(es_upstream_t *u) {
    atomic_store(&u->connections, 0);
    atomic_store(&u->requests, 0);
    atomic_store(&u->bytes_out, 0);
    atomic_store(&u->holding, 0);
    atomic_store(&u->idle_closes, 0);
    atomic_store(&u->bad_requests, 0);
    atomic_store(&u->released, 0);
    atomic_store(&u->stopping, 0);
    atomic_store(&u->tls_handshakes, 0);
    atomic_store(&u->tls_handshake_failures, 0);
    atomic_store(&u->tls_resumed, 0);
    u->last_sni[0] = u->last_alpn[0] = u->last_tls_error[0] = '\0';
    u->conns = NULL;
    u->tls_ctx = NULL;
    if (u->tls_cert) {
        u->tls_ctx = tls_ctx_new(u);
        if (u->tls_ctx == NULL) return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = -errno;
        SSL_CTX_free(u->tls_ctx);
        u->tls_ctx = NULL;
        return err;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(u->want_port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 512) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
        int err = -errno;
        close(fd);
        SSL_CTX_free(u->tls_ctx);
        u->tls_ctx = NULL;
        return err;
    }
    u->port = ntohs(sa.sin_port);
    u->listen_fd = fd;
    pthread_mutex_init(&u->mu, NULL);
    int err = pthread_create(&u->accept_thread, NULL, accept_main, u);
    if (err != 0) {
        pthread_mutex_destroy(&u->mu);
        close(fd);
        SSL_CTX_free(u->tls_ctx);
        u->tls_ctx = NULL;
        return -err;
    }
    u->started = 1;
    return 0;
}

void es_upstream_stop(es_upstream_t *u) {
    if (!u->started) return;
    u->started = 0;
    atomic_store(&u->stopping, 1);
    shutdown(u->listen_fd, SHUT_RDWR);      /* wakes accept() */
    pthread_join(u->accept_thread, NULL);
    close(u->listen_fd);
    u->listen_fd = -1;

    pthread_mutex_lock(&u->mu);
    for (es_upstream_conn_t *c = u->conns; c; c = c->next) {
        if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);   /* wakes recv() and send() */
    }
    es_upstream_conn_t *list = u->conns;
    u->conns = NULL;
    pthread_mutex_unlock(&u->mu);

    while (list) {
        es_upstream_conn_t *next = list->next;
        pthread_join(list->thread, NULL);
        free(list);
        list = next;
    }
    pthread_mutex_destroy(&u->mu);
    SSL_CTX_free(u->tls_ctx);      /* after every SSL of it was freed on its thread */
    u->tls_ctx = NULL;
}

void es_upstream_release(es_upstream_t *u) {
    atomic_store(&u->released, 1);
}

unsigned long es_upstream_connections(es_upstream_t *u) {
    return atomic_load(&u->connections);
}

unsigned long es_upstream_requests(es_upstream_t *u) {
    return atomic_load(&u->requests);
}

/* Copies one of the strings kept under u->mu. */
static void copy_locked(es_upstream_t *u, const char *src, char *buf, size_t len) {
    if (len == 0) return;
    if (u->started) pthread_mutex_lock(&u->mu);
    copy_str(buf, len, src, strlen(src));
    if (u->started) pthread_mutex_unlock(&u->mu);
}

void es_upstream_last_sni(es_upstream_t *u, char *buf, size_t len) {
    copy_locked(u, u->last_sni, buf, len);
}

void es_upstream_last_alpn(es_upstream_t *u, char *buf, size_t len) {
    copy_locked(u, u->last_alpn, buf, len);
}

void es_upstream_last_tls_error(es_upstream_t *u, char *buf, size_t len) {
    copy_locked(u, u->last_tls_error, buf, len);
}

/* ---- the black hole ---- */

int es_blackhole_start(es_blackhole_t *b) {
    memset(b, 0, sizeof *b);
    for (int i = 0; i < (int)(sizeof b->fds / sizeof b->fds[0]); i++) b->fds[i] = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 0) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    b->listen_fd = fd;
    b->port = ntohs(sa.sin_port);
    /* Connect until one connect does not complete: from then on the kernel drops SYNs to this port. */
    while (b->nfds < (int)(sizeof b->fds / sizeof b->fds[0])) {
        int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (cfd < 0) break;
        b->fds[b->nfds++] = cfd;
        if (connect(cfd, (struct sockaddr *)&sa, sizeof sa) == 0) continue;
        if (errno != EINPROGRESS) break;
        struct pollfd pfd = { .fd = cfd, .events = POLLOUT };
        if (poll(&pfd, 1, 200) == 0) return 0;     /* this one hangs: the queue is full */
    }
    es_blackhole_stop(b);
    return -ETIMEDOUT;
}

void es_blackhole_stop(es_blackhole_t *b) {
    for (int i = 0; i < b->nfds; i++) {
        if (b->fds[i] >= 0) close(b->fds[i]);
        b->fds[i] = -1;
    }
    b->nfds = 0;
    if (b->listen_fd > 0) close(b->listen_fd);
    b->listen_fd = -1;
}

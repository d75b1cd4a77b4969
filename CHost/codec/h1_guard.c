#include "codec/h1_guard.h"

#include <string.h>

enum {
    PH_HEAD,      /* a request head */
    PH_HEAD_DONE, /* waiting for es_h1_guard_body */
    PH_PLAIN,     /* a body the parser counts, or none: every byte passes */
    PH_SIZE,      /* a chunk-size line */
    PH_DATA,      /* chunk data, skipped by count */
    PH_DATA_CRLF, /* the CRLF after chunk data; state 0 wants CR, 1 wants LF */
    PH_TRAILER,   /* the trailer section */
    PH_BODY_DONE, /* waiting for es_h1_guard_next */
    PH_FAILED,
};

/* Where in a head or trailer section. Lines end at LF; llhttp itself refuses a CR that is not before an LF, except
 * where it would read one as a line end (the final empty line, a leading empty line): there the guard looks. */
enum {
    S_LEAD,    /* before the request line: an empty line or the request line's first byte */
    S_LEAD_CR, /* after the CR of a leading empty line */
    S_REQ,     /* in the request line */
    S_LINE,    /* at the start of a field line or of the final empty line */
    S_NAME,    /* in a field name */
    S_VALUE,   /* after the colon */
    S_END_CR,  /* after the CR of the final empty line */
};

/* Where in a chunk-size line: chunk-size [ chunk-ext ] CRLF. llhttp checks the extensions' grammar. */
enum {
    K_SIZE0, /* the first hex digit */
    K_SIZE,  /* more hex digits */
    K_EXT,   /* anything up to the CR */
    K_CR,    /* after the line's CR */
};

/* The bytes that end a field name's fast loop: the colon, whitespace (llhttp takes "a b:" and "a :"), LF. */
static const uint8_t name_stop[256] = { [':'] = 1, [' '] = 1, ['\t'] = 1, ['\n'] = 1 };

static void *fail(es_h1_guard_t *g, int status, const char *why)
{
    g->phase = PH_FAILED;
    g->status = status;
    g->why = why;
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void begin_size_line(es_h1_guard_t *g)
{
    g->phase = PH_SIZE;
    g->state = K_SIZE0;
    g->digits = 0;
    g->size = 0;
    g->count = 0;
}

void es_h1_guard_init(es_h1_guard_t *g, uint32_t max_head)
{
    g->max_head = max_head;
    g->status = 0;
    g->why = NULL;
    g->phase = PH_HEAD; /* anything else would reject a first request the caller forgot to announce */
    g->state = S_LEAD;
    g->digits = 0;
    g->count = 0;
    g->size = 0;
}

void es_h1_guard_next(es_h1_guard_t *g)
{
    if (g->phase == PH_FAILED)
        return;
    g->phase = PH_HEAD;
    g->state = S_LEAD;
    g->count = 0;
}

void es_h1_guard_body(es_h1_guard_t *g, int chunked)
{
    if (g->phase == PH_FAILED)
        return;
    if (chunked)
        begin_size_line(g);
    else
        g->phase = PH_PLAIN;
}

int es_h1_guard_waiting(const es_h1_guard_t *g)
{
    return g->phase == PH_HEAD_DONE || g->phase == PH_BODY_DONE;
}

/*
 * A request head or a trailer section, line by line, up to its final LF. Inside the request line and values only
 * the LF is looked for (memchr); llhttp refuses controls, NUL, bare CR and bad tokens there.
 */
static const uint8_t *scan_section(es_h1_guard_t *g, const uint8_t *p, const uint8_t *end)
{
    int trailer = g->phase == PH_TRAILER;
    const char *bare_cr = trailer ? "bare CR in the trailer section" : "bare CR in the request head";
    const uint8_t *start = p;
    /* Bytes past max_head are never looked at: a section that has not ended by then is too large. */
    uint32_t room = g->max_head - g->count;
    const uint8_t *stop = (size_t)(end - p) > room ? p + room : end;
    unsigned st = g->state;
    int c;

    while (p < stop) {
        switch (st) {
        case S_LEAD:
            c = *p++;
            if (c == '\n')
                break;
            if (c == '\r') {
                st = S_LEAD_CR;
                break;
            }
            st = S_REQ;
            __attribute__((fallthrough)); /* into the same line's fast loop */
        case S_REQ:
        case S_VALUE: {
            const uint8_t *lf = memchr(p, '\n', (size_t)(stop - p));
            if (lf == NULL) {
                p = stop;
                goto out;
            }
            p = lf + 1;
            st = S_LINE;
            break;
        }
        case S_LEAD_CR:
        case S_END_CR:
            /* llhttp reads "\r" and any byte as an empty line: "\r\rX" or "\rGET" would end a head early. */
            if (*p++ != '\n')
                return fail(g, 400, bare_cr);
            if (st == S_END_CR)
                goto done;
            st = S_LEAD;
            break;
        case S_LINE:
            c = *p++;
            if (c == '\r') {
                st = S_END_CR;
                break;
            }
            if (c == '\n')
                goto done;
            if (c == ' ' || c == '\t')
                return fail(g, 400, "obsolete line folding");
            if (c == ':')
                return fail(g, 400, "an empty field name");
            st = S_NAME;
            __attribute__((fallthrough)); /* into the same name's fast loop */
        case S_NAME:
            while (p < stop && !name_stop[*p])
                p++;
            if (p == stop)
                goto out;
            c = *p++;
            if (c == ':')
                st = S_VALUE;
            else if (c == '\n')
                st = S_LINE; /* a line without a colon: llhttp refuses it */
            else
                return fail(g, 400, "whitespace before the colon");
            break;
        }
    }
out:
    g->count += (uint32_t)(p - start);
    g->state = (uint8_t)st;
    if (p < end)
        return fail(g, 431, trailer ? "trailer section too large" : "request header section too large");
    return p;
done:
    g->count += (uint32_t)(p - start);
    g->state = 0;
    g->phase = trailer ? PH_BODY_DONE : PH_HEAD_DONE;
    return p;
}

/*
 * One chunk-size line: 1*16HEXDIG, anything up to a CR (llhttp checks the chunk size's and the extensions'
 * characters), an LF. The guard reads the size to find the chunk's end, and checks what llhttp lets through.
 */
static const uint8_t *scan_size_line(es_h1_guard_t *g, const uint8_t *p, const uint8_t *end)
{
    const uint8_t *start = p;
    uint32_t room = ES_H1_GUARD_MAX_CHUNK_LINE - g->count;
    const uint8_t *stop = (size_t)(end - p) > room ? p + room : end;
    unsigned st = g->state;

    while (p < stop) {
        int c = *p++;
        switch (st) {
        case K_SIZE0:
        case K_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                /* At most 16 digits (llhttp takes any number of leading zeros) and a value that fits int64
                 * (llhttp takes up to 2^64-1). */
                if (g->digits == 16 || g->size > (uint64_t)INT64_MAX >> 4)
                    return fail(g, 400, "bad chunk size");
                g->size = g->size << 4 | (uint64_t)v;
                g->digits++;
                st = K_SIZE;
            } else {
                st = c == '\r' ? K_CR : K_EXT;
            }
            break;
        }
        case K_EXT: {
            const uint8_t *cr = memchr(p - 1, '\r', (size_t)(stop - (p - 1)));
            if (cr == NULL) {
                p = stop;
                break;
            }
            p = cr + 1;
            st = K_CR;
            break;
        }
        case K_CR:
            /* llhttp takes a CR and any byte as the line's end. */
            if (c != '\n')
                return fail(g, 400, "bad chunk line ending");
            /* Whole or in pieces, the state after a line is the same: the split tests compare it. */
            g->phase = g->size == 0 ? PH_TRAILER : PH_DATA;
            g->state = S_LINE; /* used by the trailer section only */
            g->count = 0;
            return p;
        }
    }
    g->count += (uint32_t)(p - start);
    g->state = (uint8_t)st;
    if (p < end)
        return fail(g, 400, "chunk extension too long");
    return p;
}

ssize_t es_h1_guard_scan(es_h1_guard_t *g, const char *data, size_t len)
{
    if (g->phase == PH_FAILED)
        return -1;
    if (len == 0)
        return 0;
    const uint8_t *p = (const uint8_t *)data, *end = p + len;
    while (p < end) {
        switch (g->phase) {
        case PH_HEAD:
        case PH_TRAILER:
            p = scan_section(g, p, end);
            break;
        case PH_SIZE:
            p = scan_size_line(g, p, end);
            break;
        case PH_DATA: {
            /* The hot path: no look at the bytes, only their number. */
            uint64_t n = (uint64_t)(end - p);
            if (n > g->size)
                n = g->size;
            p += n;
            g->size -= n;
            if (g->size == 0) {
                g->phase = PH_DATA_CRLF;
                g->state = 0;
            }
            break;
        }
        case PH_DATA_CRLF:
            if (*p != (g->state ? '\n' : '\r')) {
                p = fail(g, 400, "chunk data not followed by CRLF");
                break;
            }
            p++;
            if (g->state)
                begin_size_line(g);
            else
                g->state = 1;
            break;
        case PH_PLAIN:
            return (ssize_t)len;
        default: /* waiting */
            return p - (const uint8_t *)data;
        }
        if (p == NULL)
            return -1;
    }
    return (ssize_t)len;
}

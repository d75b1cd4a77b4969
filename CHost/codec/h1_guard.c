#include "codec/h1_guard.h"

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

/* Where in a head or trailer section. */
enum {
    S_LEAD,    /* before the request line: an empty line or the request line's first byte */
    S_LEAD_CR, /* after the CR of a leading empty line */
    S_REQ,     /* in the request line */
    S_LINE_CR, /* after the CR ending the request line or a field line */
    S_LINE,    /* at the start of a field line or of the final empty line */
    S_NAME,    /* in a field name */
    S_VALUE,   /* after the colon */
    S_END_CR,  /* after the CR of the final empty line */
};

/* Where in a chunk-size line: chunk-size [ chunk-ext ] CRLF. */
enum {
    K_SIZE0,     /* the first hex digit */
    K_SIZE,      /* more hex digits */
    K_PRE_SEMI,  /* BWS that must lead to ';' */
    K_NAME0,     /* BWS after ';', before ext-name */
    K_NAME,      /* in ext-name */
    K_POST_NAME, /* BWS after ext-name: '=' or ';' follows */
    K_VAL0,      /* BWS after '=', before ext-val */
    K_TOKEN,     /* in a token ext-val */
    K_QS,        /* in a quoted-string ext-val */
    K_QP,        /* after a backslash in it */
    K_QS_END,    /* after its closing quote */
    K_CR,        /* after the line's CR */
};

#define F_REQ 1   /* request line: SP, VCHAR, obs-text */
#define F_VAL 2   /* field value: HT, SP, VCHAR, obs-text */
#define F_TCHAR 4 /* RFC 9110 5.6.2 */
#define F_QD 8    /* qdtext: HT, SP, VCHAR but '"' and '\', obs-text */

#define T (F_REQ | F_VAL | F_TCHAR | F_QD)
#define V (F_REQ | F_VAL | F_QD)

/* Ranges never overlap (-Woverride-init); bytes not listed (CTLs but HT, and DEL) are 0. */
static const uint8_t cls[256] = {
    ['\t'] = F_VAL | F_QD,
    [' '] = F_REQ | F_VAL | F_QD,
    ['!'] = T,
    ['"'] = F_REQ | F_VAL,
    ['#' ... '\''] = T,
    ['(' ... ')'] = V,
    ['*' ... '+'] = T,
    [','] = V,
    ['-' ... '.'] = T,
    ['/'] = V,
    ['0' ... '9'] = T,
    [':' ... '@'] = V,
    ['A' ... 'Z'] = T,
    ['['] = V,
    ['\\'] = F_REQ | F_VAL,
    [']'] = V,
    ['^' ... '`'] = T,
    ['a' ... 'z'] = T,
    ['{'] = V,
    ['|'] = T,
    ['}'] = V,
    ['~'] = T,
    [0x80 ... 0xff] = V,
};

#undef T
#undef V

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
 * A request head or a trailer section, byte by byte, up to its final LF. The common bytes (inside the request
 * line, a name, a value) are skipped by one table lookup each; only delimiters reach the switch.
 */
static const uint8_t *scan_section(es_h1_guard_t *g, const uint8_t *p, const uint8_t *end)
{
    int trailer = g->phase == PH_TRAILER;
    const char *nul = trailer ? "NUL in the trailer section" : "NUL in the request head";
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
            if (!(cls[c] & F_REQ))
                return fail(g, 400, c ? "invalid character in the request line" : nul);
            st = S_REQ;
            __attribute__((fallthrough)); /* into the same bytes' fast loop */
        case S_REQ:
            while (p < stop && (cls[*p] & F_REQ))
                p++;
            if (p == stop)
                goto out;
            c = *p++;
            if (c == '\r')
                st = S_LINE_CR;
            else if (c == '\n')
                st = S_LINE;
            else
                return fail(g, 400, c ? "invalid character in the request line" : nul);
            break;
        case S_LEAD_CR:
        case S_LINE_CR:
        case S_END_CR:
            if (*p++ != '\n')
                return fail(g, 400, bare_cr);
            if (st == S_END_CR)
                goto done;
            st = st == S_LEAD_CR ? S_LEAD : S_LINE;
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
            if (!(cls[c] & F_TCHAR))
                return fail(g, 400, c ? "invalid character in a field name" : nul);
            st = S_NAME;
            __attribute__((fallthrough)); /* into the same bytes' fast loop */
        case S_NAME:
            while (p < stop && (cls[*p] & F_TCHAR))
                p++;
            if (p == stop)
                goto out;
            c = *p++;
            if (c == ':') {
                st = S_VALUE;
                break;
            }
            if (c == ' ' || c == '\t')
                return fail(g, 400, "whitespace before the colon");
            if (c == '\r' || c == '\n')
                return fail(g, 400, "a field line without a colon");
            return fail(g, 400, c ? "invalid character in a field name" : nul);
        case S_VALUE:
            while (p < stop && (cls[*p] & F_VAL))
                p++;
            if (p == stop)
                goto out;
            c = *p++;
            if (c == '\r')
                st = S_LINE_CR;
            else if (c == '\n')
                st = S_LINE;
            else
                return fail(g, 400, c ? "control character in a field value" : nul);
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

/* One chunk-size line: 1*16HEXDIG, then *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), then CRLF. */
static const uint8_t *scan_size_line(es_h1_guard_t *g, const uint8_t *p, const uint8_t *end)
{
    static const char bad_ext[] = "bad chunk extension", bad_end[] = "bad chunk line ending";
    const uint8_t *start = p;
    uint32_t room = ES_H1_GUARD_MAX_CHUNK_LINE - g->count;
    const uint8_t *stop = (size_t)(end - p) > room ? p + room : end;
    unsigned st = g->state;

    while (p < stop) {
        int c = *p++;
        int ws = c == ' ' || c == '\t';
        switch (st) {
        case K_SIZE0:
        case K_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                /* At most 16 digits (leading zeros count) and a value that fits int64. */
                if (g->digits == 16 || g->size > (uint64_t)INT64_MAX >> 4)
                    return fail(g, 400, "bad chunk size");
                g->size = g->size << 4 | (uint64_t)v;
                g->digits++;
                st = K_SIZE;
            } else if (st == K_SIZE0) {
                return fail(g, 400, "bad chunk size");
            } else if (c == ';') {
                st = K_NAME0;
            } else if (ws) {
                st = K_PRE_SEMI;
            } else if (c == '\r') {
                st = K_CR;
            } else {
                return fail(g, 400, c == '\n' ? bad_end : "bad chunk size");
            }
            break;
        }
        case K_PRE_SEMI:
            /* "5 \r\n": whitespace is allowed only on the way to a ';'. */
            if (c == ';')
                st = K_NAME0;
            else if (!ws)
                return fail(g, 400, bad_ext);
            break;
        case K_NAME0:
            if (cls[c] & F_TCHAR)
                st = K_NAME;
            else if (!ws)
                return fail(g, 400, bad_ext);
            break;
        case K_POST_NAME:
            if (c == '=')
                st = K_VAL0;
            else if (c == ';')
                st = K_NAME0;
            else if (!ws)
                return fail(g, 400, bad_ext);
            break;
        case K_VAL0:
            if (cls[c] & F_TCHAR)
                st = K_TOKEN;
            else if (c == '"')
                st = K_QS;
            else if (!ws)
                return fail(g, 400, bad_ext);
            break;
        case K_QS:
            if (c == '"')
                st = K_QS_END;
            else if (c == '\\')
                st = K_QP;
            else if (!(cls[c] & F_QD))
                return fail(g, 400, bad_ext);
            break;
        case K_QP:
            /* HT, SP, VCHAR, obs-text: exactly the field-value bytes. */
            if (!(cls[c] & F_VAL))
                return fail(g, 400, bad_ext);
            st = K_QS;
            break;
        case K_NAME:
        case K_TOKEN:
        case K_QS_END:
            /* Where the line may end. A bare LF here is a line end the lenient parser would not see. */
            if ((cls[c] & F_TCHAR) && st != K_QS_END)
                break;
            if (c == '=' && st == K_NAME)
                st = K_VAL0;
            else if (ws)
                st = st == K_NAME ? K_POST_NAME : K_PRE_SEMI;
            else if (c == ';')
                st = K_NAME0;
            else if (c == '\r')
                st = K_CR;
            else
                return fail(g, 400, c == '\n' ? bad_end : bad_ext);
            break;
        case K_CR:
            if (c != '\n')
                return fail(g, 400, bad_end);
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

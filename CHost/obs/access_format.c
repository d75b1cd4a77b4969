/*
 * Access-log formats: compiled once into pieces (literal text, or an operator with its arguments), rendered per
 * request into the sink's buffer. Every operator yields a view {ptr, len}: headers, names and filter state are
 * borrowed from the record, numbers, times and addresses are written into a small scratch array. The text
 * format copies the views as they are; the JSON format escapes them. No printf, and no allocation but the
 * output buffer's growth.
 */
#include "obs/access_format.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    OP_LITERAL = 0,
    OP_START_TIME,
    OP_REQ,
    OP_RESP,
    OP_RESPONSE_CODE,
    OP_RESPONSE_FLAGS,
    OP_BYTES_RECEIVED,
    OP_BYTES_SENT,
    OP_DURATION,
    OP_RESPONSE_DURATION,
    OP_UPSTREAM_HOST,
    OP_UPSTREAM_CLUSTER,
    OP_ROUTE_NAME,
    OP_DOWNSTREAM_REMOTE_ADDRESS,
    OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT,
    OP_PROTOCOL,
    OP_FILTER_STATE,
} op_t;

enum { ARG_NONE = 0, ARG_HEADER = 1, ARG_NAME = 2 };

static const struct {
    const char *name;
    op_t op;
    uint8_t arg;     /* what goes in parentheses */
    uint8_t number;  /* alone in a JSON value: a number */
} ops[] = {
    {"START_TIME", OP_START_TIME, ARG_NONE, 0},
    {"REQ", OP_REQ, ARG_HEADER, 0},
    {"RESP", OP_RESP, ARG_HEADER, 0},
    {"RESPONSE_CODE", OP_RESPONSE_CODE, ARG_NONE, 1},
    {"RESPONSE_FLAGS", OP_RESPONSE_FLAGS, ARG_NONE, 0},
    {"BYTES_RECEIVED", OP_BYTES_RECEIVED, ARG_NONE, 1},
    {"BYTES_SENT", OP_BYTES_SENT, ARG_NONE, 1},
    {"DURATION", OP_DURATION, ARG_NONE, 1},
    {"RESPONSE_DURATION", OP_RESPONSE_DURATION, ARG_NONE, 1},
    {"UPSTREAM_HOST", OP_UPSTREAM_HOST, ARG_NONE, 0},
    {"UPSTREAM_CLUSTER", OP_UPSTREAM_CLUSTER, ARG_NONE, 0},
    {"ROUTE_NAME", OP_ROUTE_NAME, ARG_NONE, 0},
    {"DOWNSTREAM_REMOTE_ADDRESS", OP_DOWNSTREAM_REMOTE_ADDRESS, ARG_NONE, 0},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, ARG_NONE, 0},
    {"PROTOCOL", OP_PROTOCOL, ARG_NONE, 0},
    {"FILTER_STATE", OP_FILTER_STATE, ARG_NAME, 0},
};

/* A header operand: a pseudo-header, or a header name (lower-cased, in the format's pool). */
enum { PS_NONE = 0, PS_METHOD, PS_PATH, PS_AUTHORITY, PS_SCHEME, PS_STATUS };

typedef struct {
    uint32_t off, len;       /* the name in the pool */
    uint8_t pseudo;
} hdr_t;

typedef struct {
    uint8_t op;
    uint8_t number;          /* renders a number when it has a value */
    uint32_t off, len;       /* OP_LITERAL: the text; OP_FILTER_STATE: the name; in the pool */
    hdr_t h, alt;            /* OP_REQ / OP_RESP: the header, and the ?alternative (alt.len == 0 && !alt.pseudo: none) */
    uint32_t max;            /* :N, UINT32_MAX when none */
} piece_t;

/* A JSON value: its pieces [from, to), after the literal `,"key":` (or `{"key":`) at key_off. */
typedef struct {
    uint32_t key_off, key_len;
    uint32_t from, to;
} jvalue_t;

struct es_access_format_s {
    piece_t *pieces;
    size_t npieces, cappieces;
    jvalue_t *values;        /* JSON formats only */
    size_t nvalues;
    es_buf_t pool;
    bool json;
    bool reads_response;
};

#define NO_MAX UINT32_MAX

/* ---- compiling ------------------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *a, size_t alen, const char *b)
{
    if (err == NULL || errlen == 0)
        return;
    snprintf(err, errlen, "%.*s%s", (int)alen, a, b);
}

static int pool_add(es_access_format_t *f, const char *s, size_t len, uint32_t *off)
{
    *off = (uint32_t)f->pool.len;
    return es_buf_append(&f->pool, s, len);
}

static piece_t *new_piece(es_access_format_t *f)
{
    if (f->npieces == f->cappieces) {
        size_t cap = f->cappieces ? f->cappieces * 2 : 8;
        piece_t *p = realloc(f->pieces, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        f->pieces = p;
        f->cappieces = cap;
    }
    piece_t *p = &f->pieces[f->npieces++];
    memset(p, 0, sizeof(*p));
    p->max = NO_MAX;
    return p;
}

static int add_literal(es_access_format_t *f, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    /* Joined to the literal before it when that one ends where this would begin in the pool. */
    if (f->npieces > 0) {
        piece_t *last = &f->pieces[f->npieces - 1];
        if (last->op == OP_LITERAL && last->off + last->len == f->pool.len) {
            if (es_buf_append(&f->pool, s, len))
                return -1;
            last->len += (uint32_t)len;
            return 0;
        }
    }
    piece_t *p = new_piece(f);
    if (p == NULL)
        return -1;
    p->op = OP_LITERAL;
    p->len = (uint32_t)len;
    return pool_add(f, s, len, &p->off);
}

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$&'*+-.^_`|~", c) != NULL);
}

/* One header operand of %REQ(...)% / %RESP(...)%; `tok` is the whole operator, for messages. */
static int parse_header(es_access_format_t *f, op_t op, const char *s, size_t len, hdr_t *h, const char *tok,
                        size_t toklen, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    if (len == 0) {
        set_err(err, errlen, tok, toklen, ": empty header name");
        return -1;
    }
    if (s[0] == ':') {
        static const struct {
            const char *name;
            uint8_t pseudo;
            op_t op;
        } pseudos[] = {
            {":METHOD", PS_METHOD, OP_REQ}, {":PATH", PS_PATH, OP_REQ},     {":AUTHORITY", PS_AUTHORITY, OP_REQ},
            {":SCHEME", PS_SCHEME, OP_REQ}, {":STATUS", PS_STATUS, OP_RESP},
        };
        for (size_t i = 0; i < sizeof(pseudos) / sizeof(pseudos[0]); i++)
            if (pseudos[i].op == op && es_name_eq(s, len, pseudos[i].name, strlen(pseudos[i].name))) {
                h->pseudo = pseudos[i].pseudo;
                return 0;
            }
        set_err(err, errlen, tok, toklen,
                op == OP_REQ ? ": unknown pseudo-header (expected :METHOD, :PATH, :AUTHORITY or :SCHEME)"
                             : ": unknown pseudo-header (expected :STATUS)");
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i])) {
            set_err(err, errlen, tok, toklen, ": not a header name");
            return -1;
        }
    char *dst = es_buf_reserve(&f->pool, len);
    if (dst == NULL)
        return -1;
    h->off = (uint32_t)f->pool.len;
    h->len = (uint32_t)len;
    for (size_t i = 0; i < len; i++)
        dst[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
    f->pool.len += len;
    return 0;
}

/* The operator at s[0] == '%' (not "%%"); *used: its length with both '%'. */
static int parse_op(es_access_format_t *f, const char *s, size_t n, size_t *used, char *err, size_t errlen)
{
    size_t i = 1;
    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        i++;
    size_t name_len = i - 1;
    if (name_len == 0) {
        set_err(err, errlen, "", 0, "a lone % (write %% for a percent sign)");
        return -1;
    }
    const char *arg = NULL;
    size_t arg_len = 0;
    if (i < n && s[i] == '(') {
        arg = s + i + 1;
        const char *close = memchr(arg, ')', n - (i + 1));
        if (close == NULL) {
            snprintf(err, errlen, "unterminated %.*s", (int)(i + 1 < 60 ? i + 1 : 60), s);
            return -1;
        }
        arg_len = (size_t)(close - arg);
        i = (size_t)(close - s) + 1;
    }
    uint32_t max = NO_MAX;
    size_t max_at = 0;
    if (i < n && s[i] == ':') {
        max_at = i;
        size_t j = i + 1;
        uint64_t v = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9' && v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(s[j++] - '0');
        if (j == i + 1 || v > UINT32_MAX - 1) {
            snprintf(err, errlen, "%.*s: expected a length after ':'", (int)(j < n && s[j] == '%' ? j + 1 : j), s);
            return -1;
        }
        max = (uint32_t)v;
        i = j;
    }
    if (i >= n || s[i] != '%') {
        snprintf(err, errlen, "unterminated %.*s", (int)(i < 60 ? i : 60), s);
        return -1;
    }
    size_t toklen = i + 1;
    *used = toklen;

    size_t k = 0, nops = sizeof(ops) / sizeof(ops[0]);
    while (k < nops && !(strlen(ops[k].name) == name_len && memcmp(ops[k].name, s + 1, name_len) == 0))
        k++;
    if (k == nops) {
        snprintf(err, errlen, "unknown operator %.*s", (int)(toklen < 80 ? toklen : 80), s);
        return -1;
    }
    if (ops[k].arg == ARG_NONE && arg != NULL) {
        snprintf(err, errlen, "%.*s: %%%s%% takes no argument", (int)toklen, s, ops[k].name);
        return -1;
    }
    if (ops[k].arg != ARG_NONE && arg == NULL) {
        snprintf(err, errlen, "%.*s: expected %%%s(%s)%%", (int)toklen, s, ops[k].name,
                 ops[k].arg == ARG_HEADER ? "header" : "name");
        return -1;
    }
    if (max_at && ops[k].arg == ARG_NONE) {
        snprintf(err, errlen, "%.*s: a length limit (:N) applies to REQ, RESP and FILTER_STATE only", (int)toklen, s);
        return -1;
    }
    piece_t *p = new_piece(f);
    if (p == NULL)
        return -2;
    p->op = (uint8_t)ops[k].op;
    p->number = ops[k].number;
    p->max = max;
    if (ops[k].arg == ARG_HEADER) {
        const char *q = memchr(arg, '?', arg_len);
        size_t first = q ? (size_t)(q - arg) : arg_len;
        if (parse_header(f, ops[k].op, arg, first, &p->h, s, toklen, err, errlen) ||
            (q && parse_header(f, ops[k].op, q + 1, arg_len - first - 1, &p->alt, s, toklen, err, errlen)))
            return -1;
        if (ops[k].op == OP_RESP)
            f->reads_response = true;
    } else if (ops[k].arg == ARG_NAME) {
        if (arg_len == 0) {
            snprintf(err, errlen, "%.*s: empty name", (int)toklen, s);
            return -1;
        }
        p->len = (uint32_t)arg_len;
        if (pool_add(f, arg, arg_len, &p->off))
            return -2;
    }
    return 0;
}

/* Compiles `s` into f's pieces. */
static int compile(es_access_format_t *f, const char *s, size_t n, char *err, size_t errlen)
{
    size_t lit = 0, i = 0;
    while (i < n) {
        if (s[i] != '%') {
            i++;
            continue;
        }
        if (add_literal(f, s + lit, i - lit))
            goto oom;
        if (i + 1 < n && s[i + 1] == '%') {
            if (add_literal(f, "%", 1))
                goto oom;
            i += 2;
            lit = i;
            continue;
        }
        size_t used = 0;
        int rc = parse_op(f, s + i, n - i, &used, err, errlen);
        if (rc == -2)
            goto oom;
        if (rc)
            return -1;
        i += used;
        lit = i;
    }
    if (add_literal(f, s + lit, n - lit))
        goto oom;
    return 0;
oom:
    set_err(err, errlen, "", 0, "out of memory");
    return -1;
}

es_access_format_t *es_access_format_text(const char *format, char *err, size_t errlen)
{
    es_access_format_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        set_err(err, errlen, "", 0, "out of memory");
        return NULL;
    }
    size_t n = strlen(format);
    if (compile(f, format, n, err, errlen)) {
        es_access_format_free(f);
        return NULL;
    }
    if ((n == 0 || format[n - 1] != '\n') && add_literal(f, "\n", 1)) {
        set_err(err, errlen, "", 0, "out of memory");
        es_access_format_free(f);
        return NULL;
    }
    return f;
}

/* Appends s as a JSON string's content (without quotes) to the pool: for the keys, at compile time. */
static int json_escape(es_buf_t *out, const char *s, size_t len);

es_access_format_t *es_access_format_json(const char *const *keys, const char *const *formats, size_t n, char *err,
                                          size_t errlen)
{
    es_access_format_t *f = calloc(1, sizeof(*f));
    if (f == NULL || (n > 0 && (f->values = calloc(n, sizeof(*f->values))) == NULL)) {
        free(f);
        set_err(err, errlen, "", 0, "out of memory");
        return NULL;
    }
    f->json = true;
    f->nvalues = n;
    for (size_t i = 0; i < n; i++) {
        jvalue_t *v = &f->values[i];
        v->key_off = (uint32_t)f->pool.len;
        if (es_buf_append(&f->pool, i ? ",\"" : "{\"", 2) || json_escape(&f->pool, keys[i], strlen(keys[i])) ||
            es_buf_append(&f->pool, "\":", 2)) {
            set_err(err, errlen, "", 0, "out of memory");
            goto fail;
        }
        v->key_len = (uint32_t)(f->pool.len - v->key_off);
        v->from = (uint32_t)f->npieces;
        if (compile(f, formats[i], strlen(formats[i]), err, errlen))
            goto fail;
        v->to = (uint32_t)f->npieces;
    }
    return f;
fail:
    es_access_format_free(f);
    return NULL;
}

void es_access_format_free(es_access_format_t *f)
{
    if (f == NULL)
        return;
    free(f->pieces);
    free(f->values);
    es_buf_dispose(&f->pool);
    free(f);
}

int es_access_format_reads_response(const es_access_format_t *f)
{
    return f->reads_response;
}

/* Copies header `h` of resp into *keep (made on first use) unless it is there already. */
static int keep_header(const es_access_format_t *f, const hdr_t *h, const es_msg_t *resp, es_msg_t **keep)
{
    if (h->pseudo || h->len == 0)
        return 0;
    const char *name = f->pool.base + h->off;
    int i = es_msg_find(resp, name, h->len, 0);
    if (i < 0 || (*keep != NULL && es_msg_find(*keep, name, h->len, 0) >= 0))
        return 0;
    if (*keep == NULL) {
        if ((*keep = malloc(sizeof(**keep))) == NULL)
            return -1;
        es_msg_init(*keep);
        es_msg_headers_done(*keep);
    }
    size_t vlen;
    const char *v = es_msg_value(resp, (uint32_t)i, &vlen);
    return es_msg_add(*keep, 0, name, h->len, v, vlen);
}

int es_access_format_keep_response(const es_access_format_t *f, const es_msg_t *resp, es_msg_t **keep)
{
    if (!f->reads_response)
        return 0;
    for (size_t i = 0; i < f->npieces; i++) {
        const piece_t *p = &f->pieces[i];
        if (p->op == OP_RESP && (keep_header(f, &p->h, resp, keep) || keep_header(f, &p->alt, resp, keep)))
            return -1;
    }
    return 0;
}

/* ---- rendering ------------------------------------------------------------------------------ */

#define SCRATCH 96

/* Writes v in decimal at the end of buf[0..SCRATCH) and returns where it starts. */
static char *put_u64(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "2026-12-03T21:49:29." for a second since 1970: days to a civil date (Howard Hinnant's days_from_civil,
 * inverted). Cached per thread: lines of one second share it. */
static __thread uint64_t cached_sec = UINT64_MAX;
static __thread char cached_date[20];

static void format_date(uint64_t sec, char out[20])
{
    int64_t z = (int64_t)(sec / 86400) + 719468;
    unsigned sod = (unsigned)(sec % 86400);
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    if (y > 9999)
        y = 9999;
    put2(out, (unsigned)(y / 100));
    put2(out + 2, (unsigned)(y % 100));
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, sod / 3600);
    out[13] = ':';
    put2(out + 14, sod / 60 % 60);
    out[16] = ':';
    put2(out + 17, sod % 60);
    out[19] = '.';
}

static size_t start_time(uint64_t unix_us, char *out)
{
    uint64_t sec = unix_us / 1000000;
    if (sec != cached_sec) {
        format_date(sec, cached_date);
        cached_sec = sec;
    }
    memcpy(out, cached_date, 20);
    unsigned ms = (unsigned)(unix_us / 1000 % 1000);
    out[20] = (char)('0' + ms / 100);
    put2(out + 21, ms % 100);
    out[23] = 'Z';
    return 24;
}

static bool header_value(const es_access_format_t *f, const hdr_t *h, const piece_t *p, const es_access_record_t *r,
                         char *scratch, const char **v, size_t *len)
{
    const char *name = "host";
    size_t nlen = 4;
    if (!h->pseudo) {
        name = f->pool.base + h->off;
        nlen = h->len;
    } else {
        switch (h->pseudo) {
        case PS_METHOD:
            *v = r->method;
            *len = r->method_len;
            return r->method != NULL && r->method_len > 0;
        case PS_PATH:
            if (r->req == NULL)
                return false;
            *v = es_msg_first(r->req, len);
            return *len > 0;
        case PS_AUTHORITY:
            break;
        case PS_SCHEME:
            *v = r->scheme;
            *len = r->scheme ? strlen(r->scheme) : 0;
            return *len > 0;
        case PS_STATUS:
            if (r->info == NULL || r->info->response_code == 0)
                return false;
            *v = put_u64(scratch + SCRATCH, r->info->response_code);
            *len = (size_t)(scratch + SCRATCH - *v);
            return true;
        }
    }
    const es_msg_t *m = p->op == OP_REQ ? r->req : r->resp;
    if (m == NULL)
        return false;
    int i = es_msg_find(m, name, nlen, 0);
    if (i < 0)
        return false;
    *v = es_msg_value(m, (uint32_t)i, len);
    return true;
}

/* The value of operator piece p: a view into the record, or into scratch. false: none ("-"). */
static bool value_of(const es_access_format_t *f, const piece_t *p, const es_access_record_t *r, char *scratch,
                     const char **v, size_t *len)
{
    const es_stream_info_t *in = r->info;
    char *end = scratch + SCRATCH;
    const char *s = NULL;
    switch ((op_t)p->op) {
    case OP_LITERAL:
        *v = f->pool.base + p->off;
        *len = p->len;
        return true;
    case OP_START_TIME:
        if (in == NULL || in->start_unix_us == 0)
            return false;
        *len = start_time(in->start_unix_us, scratch);
        *v = scratch;
        return true;
    case OP_REQ:
    case OP_RESP:
        if (!header_value(f, &p->h, p, r, scratch, v, len) &&
            !((p->alt.len || p->alt.pseudo) && header_value(f, &p->alt, p, r, scratch, v, len)))
            return false;
        if (*len > p->max)
            *len = p->max;
        return true;
    case OP_RESPONSE_CODE:
        if (in == NULL)
            return false;
        *v = put_u64(end, in->response_code);
        break;
    case OP_RESPONSE_FLAGS:
        if (in == NULL || in->flags == 0)
            return false;
        *v = scratch;
        *len = es_response_flags_format(in->flags, scratch, SCRATCH);
        return true;
    case OP_BYTES_RECEIVED:
        if (in == NULL)
            return false;
        *v = put_u64(end, in->bytes_received);
        break;
    case OP_BYTES_SENT:
        if (in == NULL)
            return false;
        *v = put_u64(end, in->bytes_sent);
        break;
    case OP_DURATION:
        if (in == NULL || in->end_ns == 0 || in->end_ns < in->start_ns)
            return false;
        *v = put_u64(end, (in->end_ns - in->start_ns) / 1000000);
        break;
    case OP_RESPONSE_DURATION:
        if (in == NULL || in->upstream_first_ns == 0 || in->upstream_first_ns < in->start_ns)
            return false;
        *v = put_u64(end, (in->upstream_first_ns - in->start_ns) / 1000000);
        break;
    case OP_UPSTREAM_HOST:
        s = r->upstream_host;
        goto string;
    case OP_UPSTREAM_CLUSTER:
        s = r->cluster_name;
        goto string;
    case OP_ROUTE_NAME:
        s = r->route_name;
        goto string;
    case OP_PROTOCOL:
        s = r->protocol;
        goto string;
    case OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT:
        s = r->peer_ip;
        goto string;
    case OP_DOWNSTREAM_REMOTE_ADDRESS: {
        if (r->peer_ip == NULL || r->peer_ip[0] == 0)
            return false;
        size_t n = strlen(r->peer_ip);
        if (n > SCRATCH - 10)
            return false;
        bool v6 = memchr(r->peer_ip, ':', n) != NULL;
        char *o = scratch;
        if (v6)
            *o++ = '[';
        memcpy(o, r->peer_ip, n);
        o += n;
        if (v6)
            *o++ = ']';
        *o++ = ':';
        char num[8];
        char *d = put_u64(num + sizeof(num), r->peer_port);
        memcpy(o, d, (size_t)(num + sizeof(num) - d));
        o += num + sizeof(num) - d;
        *v = scratch;
        *len = (size_t)(o - scratch);
        return true;
    }
    case OP_FILTER_STATE: {
        if (r->filter_state == NULL)
            return false;
        int i = es_msg_find(r->filter_state, f->pool.base + p->off, p->len, 0);
        if (i < 0)
            return false;
        *v = es_msg_value(r->filter_state, (uint32_t)i, len);
        if (*len > p->max)
            *len = p->max;
        return true;
    }
    }
    *len = (size_t)(end - *v);
    return true;
string:
    if (s == NULL || s[0] == 0)
        return false;
    *v = s;
    *len = strlen(s);
    return true;
}

/* Filter state is whatever a filter said: in the text format its control bytes are written as \xHH, so that a
 * line stays one line. (Header values cannot hold CR, LF or NUL: the codecs refuse them.) */
static int append_text_state(es_buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f)
            continue;
        if (es_buf_append(out, s + run, i - run))
            return -1;
        char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        if (es_buf_append(out, e, 4))
            return -1;
        run = i + 1;
    }
    return es_buf_append(out, s + run, len - run);
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0 (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

/* JSON string content: quotes, backslashes and control characters escaped; bytes that are not UTF-8 written as
 * \u00XX (the byte as a Latin-1 character), so the line is always valid JSON. */
static int json_escape(es_buf_t *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t u = utf8_len(s + i, len - i);
            if (u) {
                i += u;
                continue;
            }
        }
        if (es_buf_append(out, str + run, i - run))
            return -1;
        char e[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            n = 6;
        }
        if (es_buf_append(out, e, n))
            return -1;
        run = ++i;
    }
    return es_buf_append(out, str + run, len - run);
}

/* Copies a value into the line: most are a few bytes (a literal's separators, a method, a status), for which a call
 * to memcpy costs more than the copy. */
static inline void put_bytes(char *dst, const char *src, size_t n)
{
    if (n > 16) {
        memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static int render_text(const es_access_format_t *f, const es_access_record_t *r, es_buf_t *out)
{
    char scratch[SCRATCH];
    /* Written in place, into room reserved ahead (more when a value needs it), not appended piece by piece. */
    size_t room = 0;
    char *w = NULL;
    for (size_t i = 0; i < f->npieces; i++) {
        const piece_t *p = &f->pieces[i];
        const char *v;
        size_t len;
        if (p->op == OP_LITERAL) {
            v = f->pool.base + p->off;
            len = p->len;
        } else if (!value_of(f, p, r, scratch, &v, &len)) {
            v = "-";
            len = 1;
        } else if (p->op == OP_FILTER_STATE) {
            if (w != NULL)
                out->len = (size_t)(w - out->base);
            if (append_text_state(out, v, len))
                return -1;
            room = 0;
            w = NULL;
            continue;
        }
        if (len > room) {
            if (w != NULL)
                out->len = (size_t)(w - out->base);
            size_t want = len + 512;
            if ((w = es_buf_reserve(out, want)) == NULL)
                return -1;
            room = want;
        }
        put_bytes(w, v, len);
        w += len;
        room -= len;
    }
    if (w != NULL)
        out->len = (size_t)(w - out->base);
    return 0;
}

static int render_json(const es_access_format_t *f, const es_access_record_t *r, es_buf_t *out)
{
    char scratch[SCRATCH];
    if (f->nvalues == 0)
        return es_buf_append(out, "{}\n", 3);
    for (size_t k = 0; k < f->nvalues; k++) {
        const jvalue_t *jv = &f->values[k];
        if (es_buf_append(out, f->pool.base + jv->key_off, jv->key_len))
            return -1;
        const char *v;
        size_t len;
        /* An operator alone: null when it has no value, a number when it is one. */
        if (jv->to == jv->from + 1 && f->pieces[jv->from].op != OP_LITERAL) {
            const piece_t *p = &f->pieces[jv->from];
            if (!value_of(f, p, r, scratch, &v, &len)) {
                if (es_buf_append(out, "null", 4))
                    return -1;
                continue;
            }
            if (p->number) {
                if (es_buf_append(out, v, len))
                    return -1;
                continue;
            }
            if (es_buf_append(out, "\"", 1) || json_escape(out, v, len) || es_buf_append(out, "\"", 1))
                return -1;
            continue;
        }
        if (es_buf_append(out, "\"", 1))
            return -1;
        for (uint32_t i = jv->from; i < jv->to; i++) {
            if (!value_of(f, &f->pieces[i], r, scratch, &v, &len)) {
                v = "-";
                len = 1;
            }
            if (json_escape(out, v, len))
                return -1;
        }
        if (es_buf_append(out, "\"", 1))
            return -1;
    }
    return es_buf_append(out, "}\n", 2);
}

int es_access_format_render(const es_access_format_t *f, const es_access_record_t *r, es_buf_t *out)
{
    size_t had = out->len;
    int rc = f->json ? render_json(f, r, out) : render_text(f, r, out);
    if (rc)
        out->len = had;
    return rc;
}

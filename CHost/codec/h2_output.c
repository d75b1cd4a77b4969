/*
 * es_h2_session: responses. A head is submitted at once; its body waits in the stream's buffer and leaves
 * through a deferred data provider as the client's windows allow; trailers are kept until the body is out.
 *
 * Fields are packed into a buffer as {uint32 name_len, uint32 value_len, name, value}, names lower-cased,
 * then an nghttp2_nv array pointing into it is built in s->scratch just before nghttp2 copies them.
 */
#include "codec/h2_session_int.h"

#include <string.h>
#include <strings.h>

/* RFC 9113 8.2.2: these must not appear in HTTP/2 (te only as "trailers", meaningless in a response). */
static int connection_specific(const char *n, size_t len)
{
    static const struct {
        const char *name;
        size_t len;
    } drop[] = {
        {"connection", 10}, {"keep-alive", 10}, {"proxy-connection", 16},
        {"transfer-encoding", 17}, {"upgrade", 7}, {"te", 2},
    };
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        if (len == drop[i].len && strncasecmp(n, drop[i].name, len) == 0)
            return 1;
    return 0;
}

/* A field name's byte lower-cased, or 0 for a byte no HTTP/2 field name may hold: the token characters of
 * RFC 9110 5.6.2, upper case mapped to lower case. Lower-casing and then nghttp2_check_header_name accept
 * exactly these (checked for all 256 bytes against libnghttp2 1.52), in one pass instead of two. */
static const uint8_t name_lower[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x21, 0x00, 0x23, 0x24, 0x25, 0x26, 0x27, 0x00, 0x00, 0x2a, 0x2b, 0x00, 0x2d, 0x2e, 0x00,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x00, 0x00, 0x00, 0x5e, 0x5f,
    0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x00, 0x7c, 0x00, 0x7e, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* Appends the fields a client may see to `b`. Returns how many, or -EINVAL / -ENOMEM. */
static int pack_fields(es_buf_t *b, const es_h2_field_t *f, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nlen = f[i].name_len, vlen = f[i].value_len;
        if (nlen == 0 || f[i].name[0] == ':' || nlen > UINT32_MAX || vlen > UINT32_MAX)
            return -EINVAL;
        if (connection_specific(f[i].name, nlen))
            continue;
        uint32_t lens[2] = {(uint32_t)nlen, (uint32_t)vlen};
        char *p = es_buf_reserve(b, sizeof(lens) + nlen + vlen);
        if (p == NULL)
            return -ENOMEM;
        memcpy(p, lens, sizeof(lens));
        uint8_t *name = (uint8_t *)p + sizeof(lens);
        uint8_t bad = 0;
        for (size_t j = 0; j < nlen; j++) {
            uint8_t c = name_lower[(unsigned char)f[i].name[j]];
            name[j] = c;
            bad |= c == 0;
        }
        memcpy(name + nlen, f[i].value, vlen);
        /* nghttp2 sends what it is given; the client would reset the stream over a bad field. */
        if (bad || !nghttp2_check_header_value(name + nlen, vlen))
            return -EINVAL;
        b->len += sizeof(lens) + nlen + vlen;
        count++;
    }
    return count;
}

/* The nghttp2_nv array for `count` packed fields, after a :status when `status` is not NULL. */
static nghttp2_nv *build_nva(es_h2_session_t *s, const char *status, const es_buf_t *packed, size_t count,
                             size_t *nvlen)
{
    size_t total = count + (status != NULL);
    s->scratch.len = 0;
    nghttp2_nv *nva = (nghttp2_nv *)es_buf_reserve(&s->scratch, total * sizeof(nghttp2_nv) + 1);
    if (nva == NULL)
        return NULL;
    size_t k = 0;
    if (status != NULL)
        nva[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    const char *p = packed->base;
    for (size_t i = 0; i < count; i++) {
        uint32_t lens[2];
        memcpy(lens, p, sizeof(lens));
        p += sizeof(lens);
        nva[k++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + lens[0], lens[0], lens[1], NGHTTP2_NV_FLAG_NONE};
        p += lens[0] + lens[1];
    }
    *nvlen = k;
    return nva;
}

/* A head's array, in s->scratch: :status then the caller's fields. */
static int head_nva(es_h2_session_t *s, int status, const es_h2_field_t *f, size_t n, char code[4],
                    nghttp2_nv **nva, size_t *nvlen)
{
    s->pack.len = 0;
    int count = pack_fields(&s->pack, f, n);
    if (count < 0)
        return count;
    /* 100..999 (the callers check): three digits, as "%03d" writes them, without printf's cost. */
    code[0] = (char)('0' + status / 100);
    code[1] = (char)('0' + status / 10 % 10);
    code[2] = (char)('0' + status % 10);
    code[3] = '\0';
    *nva = build_nva(s, code, &s->pack, (size_t)count, nvlen);
    return *nva != NULL ? 0 : -ENOMEM;
}

int es_h2_session_interim(es_h2_session_t *s, int32_t stream_id, int status, const es_h2_field_t *fields,
                          size_t n)
{
    es_h2__stream_t *st = es_h2__stream(s, stream_id);
    if (st == NULL)
        return -ENOENT;
    if (status < 100 || status > 199 || status == 101 || st->responded)
        return -EINVAL;
    char code[4];
    nghttp2_nv *nva;
    size_t nvlen;
    int err = head_nva(s, status, fields, n, code, &nva, &nvlen);
    if (err != 0)
        return err;
    return es_h2__err(nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, stream_id, NULL, nva, nvlen, NULL));
}

int es_h2_session_respond(es_h2_session_t *s, int32_t stream_id, int status, const es_h2_field_t *fields,
                          size_t n, int flags)
{
    es_h2__stream_t *st = es_h2__stream(s, stream_id);
    if (st == NULL)
        return -ENOENT;
    if (status < 200 || status > 999 || st->responded)
        return -EINVAL;
    char code[4];
    nghttp2_nv *nva;
    size_t nvlen;
    int err = head_nva(s, status, fields, n, code, &nva, &nvlen);
    if (err != 0)
        return err;
    nghttp2_data_provider body = {.source.ptr = st, .read_callback = es_h2__read_body};
    int end = (flags & ES_H2_END_STREAM) != 0;
    err = es_h2__err(nghttp2_submit_response(s->ng, stream_id, nva, nvlen, end ? NULL : &body));
    if (err == 0) {
        st->responded = 1;
        st->body_ended = (unsigned)end;
    }
    return err;
}

/* The body may go on: wake the data provider if it had nothing to give. */
static int resume(es_h2_session_t *s, es_h2__stream_t *st)
{
    if (!st->deferred)
        return 0;
    st->deferred = 0;
    return es_h2__err(nghttp2_session_resume_data(s->ng, st->id));
}

int es_h2_session_send_body(es_h2_session_t *s, int32_t stream_id, const void *data, size_t len)
{
    es_h2__stream_t *st = es_h2__stream(s, stream_id);
    if (st == NULL)
        return -ENOENT;
    if (!st->responded || st->body_ended)
        return -EINVAL;
    if (len == 0)
        return 0;
    size_t pending = st->out.len - st->out_off;
    if (st->out_off > 0 && st->out.cap - st->out.len < len) { /* reuse the framed front before growing */
        memmove(st->out.base, st->out.base + st->out_off, pending);
        st->out.len = pending;
        st->out_off = 0;
    }
    if (es_buf_append(&st->out, data, len) != 0)
        return -ENOMEM;
    if (pending + len >= s->cfg.out_high)
        st->above_high = 1;
    return resume(s, st);
}

int es_h2_session_end_body(es_h2_session_t *s, int32_t stream_id, const es_h2_field_t *trailers, size_t n)
{
    es_h2__stream_t *st = es_h2__stream(s, stream_id);
    if (st == NULL)
        return -ENOENT;
    if (!st->responded || st->body_ended)
        return -EINVAL;
    int count = pack_fields(&st->trailers, trailers, n);
    if (count < 0) {
        st->trailers.len = 0;
        return count;
    }
    st->ntrailers = (uint32_t)count;
    st->body_ended = 1;
    return resume(s, st);
}

size_t es_h2_session_buffered(const es_h2_session_t *s, int32_t stream_id)
{
    es_h2__stream_t *st = es_h2__stream(s, stream_id);
    return st != NULL ? st->out.len - st->out_off : 0;
}

ssize_t es_h2__read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    es_h2_session_t *s = user;
    es_h2__stream_t *st = src->ptr;
    size_t pending = st->out.len - st->out_off;
    if (pending == 0 && !st->body_ended) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = pending < length ? pending : length;
    if (n > 0)
        memcpy(buf, st->out.base + st->out_off, n);
    st->out_off += n;
    pending -= n;
    if (pending == 0) {
        st->out.len = st->out_off = 0;
        if (st->out.cap > 64 * 1024)
            es_buf_dispose(&st->out); /* a burst's memory is not kept for an idle stream */
    }
    if (st->above_high && pending <= s->cfg.out_low) {
        st->above_high = 0;
        es_list_push_back(&s->low, &st->low_link); /* reported after mem_send returns */
    }
    if (pending > 0 || !st->body_ended)
        return (ssize_t)n;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->ntrailers > 0) {
        size_t nvlen;
        nghttp2_nv *nva = build_nva(s, NULL, &st->trailers, st->ntrailers, &nvlen);
        if (nva == NULL || nghttp2_submit_trailer(ng, id, nva, nvlen) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* nghttp2 resets the stream */
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        es_buf_dispose(&st->trailers);
        st->ntrailers = 0;
    }
    return (ssize_t)n;
}

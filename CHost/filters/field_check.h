/*
 * What a header field set by a filter must be before the host stores it: a name that is an HTTP token
 * (RFC 9110 5.6.2) and a value without CR, LF or NUL, the bytes that would end or cut a line on the wire.
 * Header-only, so the crossing benchmark (bench/crossing.c) checks fields with the host's own code.
 *
 * Every header a filter sets passes here, so the value check reads sixteen bytes per step: a typical value (a
 * user agent, a token) is 10 to 200 bytes, and a byte-at-a-time loop was a third of a header set's cost.
 */
#ifndef ES_FIELD_CHECK_H
#define ES_FIELD_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT /
 * ALPHA. Ranges never overlap (-Woverride-init); every other byte is 0. */
static const uint8_t es_field_tchar[256] = {
    ['!'] = 1, ['#' ... '\''] = 1, ['*' ... '+'] = 1, ['-' ... '.'] = 1, ['0' ... '9'] = 1,
    ['A' ... 'Z'] = 1, ['^' ... '`'] = 1, ['a' ... 'z'] = 1, ['|'] = 1, ['~'] = 1,
};

/* Whether name[0..len) is a non-empty token. No early exit: a name is nearly always valid, and a loop
 * without a branch per byte takes half the instructions. */
static inline int es_field_name_ok(const char *name, size_t len)
{
    if (len == 0 || name == NULL)
        return 0;
    uint8_t ok = 1;
    for (size_t i = 0; i < len; i++)
        ok &= es_field_tchar[(unsigned char)name[i]];
    return ok;
}

/* Whether any of the 8 bytes at p is below 0x20: a borrow can only mark a byte above one that is, so the
 * yes/no is exact. */
static inline int es_field_ctl8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8); /* one unaligned load */
    return ((w - 0x2020202020202020ull) & ~w & 0x8080808080808080ull) != 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* Whether any of the 16 bytes at p is below 0x20 (min(b, 0x1f) == b exactly then). */
static inline int es_field_ctl16(const char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v)) != 0;
}
#else
static inline int es_field_ctl16(const char *p)
{
    return es_field_ctl8(p) || es_field_ctl8(p + 8);
}
#endif

/* Whether value[0..len) has no CR, LF or NUL (an empty value is fine; a NULL pointer only when empty). */
static inline int es_field_value_ok(const char *value, size_t len)
{
    if (len > 0 && value == NULL)
        return 0;
    /* First ask, 16 bytes per step, whether any byte is below 0x20: values rarely hold one (HTAB is the only
     * legal one), so only then are the bytes looked at one by one. The last step overlaps the one before it
     * rather than leaving a tail; 8 to 15 bytes take two overlapping words. */
    if (len >= 16) {
        size_t i = 0;
        for (; i + 16 <= len; i += 16)
            if (es_field_ctl16(value + i))
                goto bytes;
        if (i == len || !es_field_ctl16(value + len - 16))
            return 1;
    } else if (len >= 8) {
        if (!es_field_ctl8(value) && !es_field_ctl8(value + len - 8))
            return 1;
    }
bytes:
    for (size_t i = 0; i < len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return 0;
    return 1;
}

#endif

/*
 * What a header field set by a filter must be before the host stores it: a name that is an HTTP token
 * (RFC 9110 5.6.2) and a value without CR, LF or NUL, the bytes that would end or cut a line on the wire.
 * Header-only, so the crossing benchmark (bench/crossing.c) checks fields with the host's own code.
 *
 * Every header a filter sets passes here, so the value check reads eight bytes per step: a typical value (a
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

/* Whether name[0..len) is a non-empty token. */
static inline int es_field_name_ok(const char *name, size_t len)
{
    if (len == 0 || name == NULL)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!es_field_tchar[(unsigned char)name[i]])
            return 0;
    return 1;
}

#define ES_FIELD_ONES 0x0101010101010101ull
#define ES_FIELD_HIGHS 0x8080808080808080ull

/* Whether value[0..len) has no CR, LF or NUL (an empty value is fine; a NULL pointer only when empty). */
static inline int es_field_value_ok(const char *value, size_t len)
{
    if (len > 0 && value == NULL)
        return 0;
    size_t i = 0, j;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, value + i, 8); /* one unaligned load */
        /* Whether some byte is below 0x20 (exact as a yes/no: a borrow can only mark a byte above one that is).
         * Values rarely hold one (HTAB is the only legal one), so the bytes are looked at only then. */
        if (((w - ES_FIELD_ONES * 0x20) & ~w & ES_FIELD_HIGHS) == 0)
            continue;
        for (j = i; j < i + 8; j++)
            if (value[j] == '\r' || value[j] == '\n' || value[j] == '\0')
                return 0;
    }
    for (; i < len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return 0;
    return 1;
}

#undef ES_FIELD_ONES
#undef ES_FIELD_HIGHS

#endif

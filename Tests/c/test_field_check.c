/*
 * es_field_name_ok / es_field_value_ok: what a filter may set as a header. The value check reads 16 bytes (or two
 * words of 8) per step, so each bad byte is tried at every position of values of 1 to 40 bytes, and a
 * differential run compares both checks with the plain byte-by-byte definition on random fields. Each field sits
 * at the very end of its own heap block, so AddressSanitizer reports any read past it. es_name_eq (msg.h), which
 * compares names with a first-byte shortcut, is held to a byte-by-byte ASCII case-insensitive compare the same
 * way (for names without NUL, which no header name has: strncasecmp, behind the shortcut, stops at one).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/field_check.h"
#include "core/msg.h"

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The definitions, byte by byte. */
static int ref_name_ok(const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(p[i]))
            return 0;
    return 1;
}

static int ref_value_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return 0;
    return 1;
}

/* A copy of `n` bytes ending exactly at the end of a heap block. */
static char *at_end(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    assert_non_null(c);
    memcpy(c, p, n);
    return c;
}

static int name_ok(const void *p, size_t n)
{
    char *c = at_end(p, n);
    int r = es_field_name_ok(c, n);
    free(c);
    return r;
}

static int value_ok(const void *p, size_t n)
{
    char *c = at_end(p, n);
    int r = es_field_value_ok(c, n);
    free(c);
    return r;
}

static void test_names(void **state)
{
    (void)state;
    assert_true(name_ok("x-touched", 9));
    assert_true(name_ok("!#$%&'*+-.^_`|~09azAZ", 21));
    assert_false(name_ok("", 0));
    assert_false(es_field_name_ok(NULL, 0));
    assert_false(es_field_name_ok(NULL, 3));
    /* Every byte value, alone and inside a valid name. */
    for (int c = 0; c < 256; c++) {
        unsigned char one = (unsigned char)c, mid[] = {'a', (unsigned char)c, 'b'};
        assert_int_equal(name_ok(&one, 1), is_tchar(one));
        assert_int_equal(name_ok(mid, 3), is_tchar(one));
    }
}

static void test_value_bytes(void **state)
{
    (void)state;
    assert_true(value_ok("", 0));
    assert_true(es_field_value_ok(NULL, 0));
    assert_false(es_field_value_ok(NULL, 1));
    /* Every byte value, at every position of values from 1 to 40 bytes: only CR, LF and NUL are refused. HTAB,
     * the other controls, DEL and obs-text pass, as the SDK's own check has it. */
    unsigned char v[40];
    for (size_t len = 1; len <= sizeof v; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (int c = 0; c < 256; c++) {
                memset(v, 'a', len);
                v[pos] = (unsigned char)c;
                int want = c != '\r' && c != '\n' && c != '\0';
                if (value_ok(v, len) != want)
                    fail_msg("byte 0x%02x at %zu of %zu: got %d", c, pos, len, !want);
            }
        }
    }
}

static void test_value_neighbours(void **state)
{
    (void)state;
    /* Bytes just below and around 0x20 in every other lane of a word, which a borrow in the word check could
     * confuse with a bad byte beside them. */
    static const unsigned char near[] = {0x01, 0x09, 0x0b, 0x0c, 0x0e, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x8d, 0xff};
    unsigned char v[24];
    for (size_t i = 0; i < sizeof near; i++) {
        for (size_t pos = 0; pos < sizeof v; pos++) {
            memset(v, near[i], sizeof v);
            assert_true(value_ok(v, sizeof v));
            v[pos] = '\r';
            assert_false(value_ok(v, sizeof v));
            v[pos] = '\0';
            assert_false(value_ok(v, sizeof v));
        }
    }
    /* A bad byte just past the end is not part of the value. */
    char buf[17] = "0123456789abcdef";
    buf[16] = '\n';
    assert_true(es_field_value_ok(buf, 16));
    assert_false(es_field_value_ok(buf, 17));
}

/* Random fields against the definitions; a fixed seed, so a failure reproduces. */
static void test_differential(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    unsigned char v[300];
    for (int round = 0; round < 200000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = (size_t)(x % sizeof v);
        /* Mostly printable bytes, with a rare control or obs-text byte: the cases that decide. */
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned r = (unsigned)(x >> 32);
            v[i] = (r % 64 == 0) ? (unsigned char)(r >> 8) : (unsigned char)(0x21 + (r >> 8) % 94);
        }
        if (value_ok(v, len) != ref_value_ok(v, len))
            fail_msg("value of %zu bytes (round %d): got %d", len, round, !ref_value_ok(v, len));
        if (name_ok(v, len) != ref_name_ok(v, len))
            fail_msg("name of %zu bytes (round %d): got %d", len, round, !ref_name_ok(v, len));
    }
}

static void test_name_eq(void **state)
{
    (void)state;
    assert_true(es_name_eq("Content-Length", 14, "content-length", 14));
    assert_true(es_name_eq("", 0, "", 0));
    assert_false(es_name_eq("content-length", 14, "content-lengths", 15));
    assert_false(es_name_eq("host", 4, "hosu", 4));
    /* Every pair of bytes, first and last: equal exactly when strncasecmp says so. */
    for (int a = 0; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            char x[3] = {(char)a, 'q', (char)a}, y[3] = {(char)b, 'Q', (char)b};
            int want = strncasecmp(x, y, 1) == 0;
            if (es_name_eq(x, 1, y, 1) != want || es_name_eq(x, 3, y, 3) != want)
                fail_msg("bytes 0x%02x and 0x%02x: want %d", a, b, want);
        }
    }
}

/* The definition: every byte equal after C-locale tolower. */
static int ref_name_eq(const unsigned char *a, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int x = a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i];
        int y = b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i];
        if (x != y)
            return 0;
    }
    return 1;
}

static int name_eq(const void *a, const void *b, size_t n)
{
    char *x = at_end(a, n), *y = at_end(b, n);
    int r = es_name_eq(x, n, y, n);
    free(x);
    free(y);
    return r;
}

static void test_name_eq_lengths(void **state)
{
    (void)state;
    /* Names of 0 to 40 bytes, so every word step and overlap is taken. At every position, every byte value
     * against the name's own byte (case changes included): equal exactly when the definition says so. */
    unsigned char a[40], b[40];
    for (size_t len = 0; len <= sizeof a; len++) {
        for (size_t i = 0; i < len; i++)
            a[i] = (unsigned char)("x-Forwarded_FOR.09^~"[i % 20]);
        assert_true(name_eq(a, a, len));
        for (size_t pos = 0; pos < len; pos++) {
            for (int c = 0; c < 256; c++) {
                memcpy(b, a, len);
                b[pos] = (unsigned char)c;
                int want = ref_name_eq(a, b, len);
                if (name_eq(a, b, len) != want || name_eq(b, a, len) != want)
                    fail_msg("byte 0x%02x at %zu of %zu: want %d", c, pos, len, want);
            }
        }
    }
    /* Bytes 'A'..'Z' and their neighbours in every lane, case swapped in one name: a carry between lanes would
     * show here. */
    for (int c = '@'; c <= '['; c++) {
        for (size_t len = 8; len <= 24; len++) {
            memset(a, c, len);
            memset(b, c >= 'A' && c <= 'Z' ? c + 32 : c, len);
            assert_int_equal(name_eq(a, b, len), ref_name_eq(a, b, len));
        }
    }
    /* Random pairs: the same name with random case, or a random near-miss. */
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int round = 0; round < 100000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = (size_t)(x % (sizeof a + 1));
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            a[i] = (unsigned char)(x >> 24) ? (unsigned char)(x >> 24) : 'n';
            b[i] = (x & 1) && ((a[i] | 0x20) >= 'a' && (a[i] | 0x20) <= 'z') ? a[i] ^ 0x20 : a[i];
        }
        if (len > 0 && (x & 6) == 0)
            b[(x >> 40) % len] ^= (unsigned char)(1u << ((x >> 8) % 8)); /* a NUL here still differs from a's byte */
        if (name_eq(a, b, len) != ref_name_eq(a, b, len))
            fail_msg("round %d, %zu bytes: want %d", round, len, ref_name_eq(a, b, len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_value_bytes),
        cmocka_unit_test(test_value_neighbours),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_name_eq),
        cmocka_unit_test(test_name_eq_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

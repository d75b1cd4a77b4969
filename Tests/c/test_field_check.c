/*
 * es_field_name_ok / es_field_value_ok: what a filter may set as a header. The value check reads eight bytes per
 * step, so each bad byte is tried at every position of values of every length around the word size, and a
 * differential run compares both checks with the plain byte-by-byte definition on random fields. Each field sits
 * at the very end of its own heap block, so AddressSanitizer reports any read past it. es_name_eq (msg.h), which
 * compares names with a first-byte shortcut, is held to strncasecmp the same way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "field_check.h"
#include "msg.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_value_bytes),
        cmocka_unit_test(test_value_neighbours),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_name_eq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * es_h1_guard: which request bytes pass to llhttp. Every rejection asserts its exact status and message; every
 * pass asserts the exact count. The split test feeds each input at every boundary and byte by byte, and the
 * pipelined tests drive the guard the way the connection does, one of them with llhttp. Which shapes llhttp
 * refuses itself (and so the guard passes) is Tests/c/test_h1_shapes.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <llhttp.h>
#include <string.h>

#include "codec/h1_guard.h"

#define LIT(s) s, sizeof(s) - 1
#define MAX_HEAD 8192

#define GET "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
#define CHUNKED_HEAD "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

static ssize_t scan(es_h1_guard_t *g, const char *s, size_t len)
{
    return es_h1_guard_scan(g, s, len);
}

static void assert_failed(es_h1_guard_t *g, int status, const char *why)
{
    assert_int_equal(g->status, status);
    assert_non_null(g->why);
    assert_string_equal(g->why, why);
    /* It stays failed, whatever the caller does next. */
    assert_int_equal(scan(g, LIT(GET)), -1);
    es_h1_guard_next(g);
    es_h1_guard_body(g, 0);
    assert_int_equal(scan(g, LIT(GET)), -1);
    assert_int_equal(scan(g, "", 0), -1);
    assert_false(es_h1_guard_waiting(g));
}

/* A head that must be rejected, whole. */
static void bad_head(const char *head, size_t len, int status, const char *why)
{
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, head, len), -1);
    assert_failed(&g, status, why);
}

/* A chunked body (after a valid head) that must be rejected with 400 `why`. */
static void bad_body(const char *body, size_t len, const char *why)
{
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(CHUNKED_HEAD)), sizeof(CHUNKED_HEAD) - 1);
    es_h1_guard_body(&g, 1);
    assert_int_equal(scan(&g, body, len), -1);
    assert_failed(&g, 400, why);
}

/* A chunked body that passes whole; `waiting`: the body ended with its last byte. */
#define WHOLE_BODY(str, waiting) good_body(LIT(str), sizeof(str) - 1, waiting)

/* A chunked body whose first `expect` bytes pass whole; `waiting`: the body ended there. */
static void good_body(const char *body, size_t len, size_t expect, int waiting)
{
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(CHUNKED_HEAD)), sizeof(CHUNKED_HEAD) - 1);
    es_h1_guard_body(&g, 1);
    assert_int_equal(scan(&g, body, len), (ssize_t)expect);
    assert_int_equal(es_h1_guard_waiting(&g), waiting);
    assert_int_equal(g.status, 0);
}

static void test_get_head(void **state)
{
    static const char buf[] = GET "XYZ";
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_false(es_h1_guard_waiting(&g));
    assert_int_equal(scan(&g, buf, sizeof buf - 1), sizeof(GET) - 1);
    assert_true(es_h1_guard_waiting(&g));
    /* Nothing more until the caller says what the body is. */
    assert_int_equal(scan(&g, buf + sizeof(GET) - 1, 3), 0);
    assert_int_equal(scan(&g, "", 0), 0);
    es_h1_guard_body(&g, 0);
    assert_false(es_h1_guard_waiting(&g));
    assert_int_equal(scan(&g, buf + sizeof(GET) - 1, 3), 3);
    assert_int_equal(g.status, 0);
    assert_null(g.why);
}

static void test_head_in_pieces_waits_for_the_end(void **state)
{
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT("GET / HTTP/1.1\r\nHo")), 18);
    assert_false(es_h1_guard_waiting(&g));
    assert_int_equal(scan(&g, LIT("st: a\r\n\r")), 8);
    assert_false(es_h1_guard_waiting(&g));
    assert_int_equal(scan(&g, LIT("\nGET")), 1);
    assert_true(es_h1_guard_waiting(&g));
}

static void test_leading_empty_lines(void **state)
{
    static const char head[] = "\r\n\n\r\n" GET;
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(head)), sizeof head - 1);
    assert_true(es_h1_guard_waiting(&g));
    /* A CR in them must still be a CRLF. */
    bad_head(LIT("\r\r\n" GET), 400, "bare CR in the request head");
}

static void test_bare_lf_line_ends(void **state)
{
#define HEAD "GET / HTTP/1.1\nHost: a\r\nX: y\n\n"
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(HEAD "rest")), sizeof(HEAD) - 1);
#undef HEAD
    assert_true(es_h1_guard_waiting(&g));
}

static void test_valid_field_bytes(void **state)
{
    /* Values may hold HT, SP, any VCHAR (':' too), obs-text; names any tchar; the request line obs-text. */
    static const char head[] = "GET /caf\xc3\xa9?a=b HTTP/1.1\r\n"
                               "!#$%&'*+-.^_`|~09AZaz:\t v:a\"(),/;<=>?@[\\]{}\x80\xff \t\r\n"
                               "Empty:\r\n"
                               "\r\n";
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(head)), sizeof head - 1);
    assert_true(es_h1_guard_waiting(&g));
}

static void test_bare_cr(void **state)
{
    /* Where llhttp reads a CR and any byte as an empty line: the head's end, a leading empty line. */
    bad_head(LIT("GET / HTTP/1.1\r\nA: b\r\n\r\r\n"), 400, "bare CR in the request head");
    bad_head(LIT("GET / HTTP/1.1\r\nA: b\r\n\rX"), 400, "bare CR in the request head");
    bad_head(LIT("GET / HTTP/1.1\r\n\rGET"), 400, "bare CR in the request head");
    bad_head(LIT("\rGET / HTTP/1.1\r\n\r\n"), 400, "bare CR in the request head");
}

/* Shapes llhttp refuses itself pass the guard whole (test_h1_shapes.c shows llhttp refusing each). */
static void good_head(const char *head, size_t len)
{
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, head, len), (ssize_t)len);
    assert_true(es_h1_guard_waiting(&g));
    assert_int_equal(g.status, 0);
}

static void test_left_to_llhttp(void **state)
{
    /* A bare CR inside a line. */
    good_head(LIT("GET /\r HTTP/1.1\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\rHost: a\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nA: b\rX: y\r\n\r\n"));
    /* NUL and controls anywhere in a line. */
    good_head(LIT("GET /\0 HTTP/1.1\r\n\r\n"));
    good_head(LIT("\0GET / HTTP/1.1\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nA\0: b\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\n\0A: b\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nA: \x1b[0m\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nA: \x7f\r\n\r\n"));
    /* The request line's bytes. */
    good_head(LIT("GET\t/ HTTP/1.1\r\n\r\n"));
    good_head(LIT("GET /\x01 HTTP/1.1\r\n\r\n"));
    good_head(LIT("\tGET / HTTP/1.1\r\n\r\n"));
    /* Field-name bytes but whitespace; a line without a colon. */
    good_head(LIT("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nH\xc3\xa9: a\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\n\"A\": a\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nHost\r\n\r\n"));
    good_head(LIT("GET / HTTP/1.1\r\nHost\n\n"));
}

static void test_obs_fold(void **state)
{
    bad_head(LIT("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), 400, "obsolete line folding");
    bad_head(LIT("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n"), 400, "obsolete line folding");
    /* Whitespace before the first field line is the same shape (RFC 9112 2.2). */
    bad_head(LIT("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400, "obsolete line folding");
}

static void test_whitespace_before_colon(void **state)
{
    bad_head(LIT("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400, "whitespace before the colon");
    bad_head(LIT("GET / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n"), 400, "whitespace before the colon");
    /* Whitespace inside a name is the same check (llhttp takes "X Y: b"). */
    bad_head(LIT("GET / HTTP/1.1\r\nX Y: b\r\n\r\n"), 400, "whitespace before the colon");
}

static void test_empty_field_name(void **state)
{
    bad_head(LIT("GET / HTTP/1.1\r\n: a\r\n\r\n"), 400, "an empty field name");
    bad_head(LIT("GET / HTTP/1.1\r\nA: b\r\n: a\r\n\r\n"), 400, "an empty field name");
}

static void test_head_size_limit(void **state)
{
    static const char head[] = "\r\n" GET, more[] = "\r\n" GET "GET";
    const uint32_t n = sizeof head - 1;
    es_h1_guard_t g;

    /* Exactly max_head passes, leading empty line included. */
    es_h1_guard_init(&g, n);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(more)), n);
    assert_true(es_h1_guard_waiting(&g));

    /* One byte less: 431, even though every byte is valid. */
    es_h1_guard_init(&g, n - 1);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(head)), -1);
    assert_failed(&g, 431, "request header section too large");

    /* The same when the head arrives in pieces: the limit is per head, not per call. */
    es_h1_guard_init(&g, n - 1);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, head, 10), 10);
    assert_int_equal(scan(&g, head + 10, n - 11), (ssize_t)(n - 11));
    assert_int_equal(scan(&g, head + n - 1, 1), -1);
    assert_failed(&g, 431, "request header section too large");

    /* A grammar error inside the limit is still a 400. */
    es_h1_guard_init(&g, 20);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT("GET / HTTP/1.1\r\n Host: a\r\n\r\n")), -1);
    assert_failed(&g, 400, "obsolete line folding");

    /* The count starts again with each request. */
    es_h1_guard_init(&g, n);
    for (int i = 0; i < 3; i++) {
        es_h1_guard_next(&g);
        assert_int_equal(scan(&g, LIT(head)), n);
        es_h1_guard_body(&g, 0);
    }
}

static void test_chunked_body(void **state)
{
#define BODY                                                                                                        \
    "5;a=b;c\r\nhello\r\n"                                                                                          \
    "3 ; q = \"x \\\" y\\\t\xe9\" ;r\t=\ts\r\nabc\r\n"                                                              \
    "a\r\n0123456789\r\n"                                                                                           \
    "000000000000000B\r\n01234567890\r\n"                                                                           \
    "0;last=\"\"\r\n"                                                                                               \
    "Checksum: abc\r\n"                                                                                             \
    "X-Empty:\r\n"                                                                                                  \
    "\r\n"
    static const char all[] = CHUNKED_HEAD BODY "GET /next HTTP/1.1\r\n\r\n";
    const size_t head = sizeof(CHUNKED_HEAD) - 1, body = sizeof(BODY) - 1, rest = sizeof all - 1 - head - body;
#undef BODY
    es_h1_guard_t g;

    /* The whole exchange in one buffer: the head, the body up to its final LF, then the next head. */
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(all)), head);
    es_h1_guard_body(&g, 1);
    assert_false(es_h1_guard_waiting(&g));
    assert_int_equal(scan(&g, all + head, sizeof all - 1 - head), body);
    assert_true(es_h1_guard_waiting(&g));
    assert_int_equal(scan(&g, all + head + body, rest), 0);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, all + head + body, rest), rest);
    assert_true(es_h1_guard_waiting(&g));

    /* The smallest bodies; the trailer section's empty line may be a bare LF like the head's. */
    good_body(LIT("0\r\n\r\nGET"), 5, 1);
    good_body(LIT("0\r\n\nGET"), 4, 1);
    good_body(LIT("0\r\nA: b\nC: d\r\n\nGET"), 15, 1);
    good_body(LIT("1\r\nx\r\n0;a;b=c\r\n\r\n"), 17, 1);
}

static void test_chunk_sizes(void **state)
{
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(CHUNKED_HEAD)), sizeof(CHUNKED_HEAD) - 1);
    es_h1_guard_body(&g, 1);
    /* The largest size that fits int64, 16 digits: the data that follows passes by count. */
    assert_int_equal(scan(&g, LIT("7fffffffffffffff\r\n")), 18);
    assert_int_equal(g.size, INT64_MAX);
    assert_int_equal(scan(&g, LIT("\r\n0\r\n\r\n\0\r")), 9);
    assert_int_equal(g.size, INT64_MAX - 9);
    assert_false(es_h1_guard_waiting(&g));

    good_body(LIT("Ff\r\n"), 4, 0);
    good_body(LIT("0000000000000000\r\n\r\n"), 20, 1);
}

static void test_bad_chunk_size(void **state)
{
    /* Bytes that are no size ("g", "5x", "-5", " 5", "5 ") are llhttp's to refuse; the guard counts digits. */
    good_body(LIT("g\r\nhello"), 3 + 5, 0);
    good_body(LIT("5x\r\nhello"), 4 + 5, 0);
    /* 17 digits, even when the value is small. */
    bad_body(LIT("00000000000000005\r\nhello"), "bad chunk size");
    /* Over int64. */
    bad_body(LIT("8000000000000000\r\n"), "bad chunk size");
    bad_body(LIT("ffffffffffffffff\r\n"), "bad chunk size");
    bad_body(LIT("10000000000000000\r\n"), "bad chunk size");
}

/* Extensions are llhttp's to check (test_h1_shapes.c): the guard reads to the CR and lets them pass. */
static void test_chunk_extensions_pass(void **state)
{
    WHOLE_BODY("5 \r\nhello\r\n0\r\n\r\n", 1);
    WHOLE_BODY("5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", 1);
    WHOLE_BODY("5;=b\r\nhello\r\n0\r\n\r\n", 1);
    WHOLE_BODY("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 1);
}

static void test_bad_chunk_line_ending(void **state)
{
    /* A CR must be followed by LF: llhttp takes "5\r" and any byte as the line's end. */
    bad_body(LIT("5\rhello\r\n0\r\n\r\n"), "bad chunk line ending");
    bad_body(LIT("5\r\rhello"), "bad chunk line ending");
    bad_body(LIT("5;a\rXhello"), "bad chunk line ending");
    bad_body(LIT("5;a=\"b\"\rXhello"), "bad chunk line ending");
    /* A bare LF is llhttp's to refuse: for the guard it is part of the line, which ends at the next CRLF. */
    WHOLE_BODY("5\nhello\r\n", 0);
    WHOLE_BODY("0\n\r\n\r\n", 1);
}

static void test_chunk_line_too_long(void **state)
{
    /* "1;a=" + token + CRLF, exactly ES_H1_GUARD_MAX_CHUNK_LINE bytes, then one byte of data. */
    static char body[ES_H1_GUARD_MAX_CHUNK_LINE + 32];
    size_t line = ES_H1_GUARD_MAX_CHUNK_LINE;
    memcpy(body, "1;a=", 4);
    memset(body + 4, 'v', line - 6);
    memcpy(body + line - 2, "\r\nx\r\n0\r\n\r\n", 10);
    good_body(body, line + 8, line + 8, 1);

    /* One more byte in the token. */
    memset(body + 4, 'v', line - 5);
    memcpy(body + line - 1, "\r\nx\r\n0\r\n\r\n", 10);
    bad_body(body, line + 9, "chunk extension too long");
}

static void test_chunk_data_crlf(void **state)
{
    bad_body(LIT("5\r\nhelloXY0\r\n\r\n"), "chunk data not followed by CRLF");
    bad_body(LIT("5\r\nhello\rX0\r\n\r\n"), "chunk data not followed by CRLF");
    bad_body(LIT("5\r\nhello\n0\r\n\r\n"), "chunk data not followed by CRLF");
    bad_body(LIT("5\r\nhello0\r\n\r\n"), "chunk data not followed by CRLF");
    /* One byte too many or too few: the count decides, not where a CRLF happens to be. */
    bad_body(LIT("5\r\nhell\r\n0\r\n\r\n"), "chunk data not followed by CRLF");
    bad_body(LIT("4\r\nhello\r\n0\r\n\r\n"), "chunk data not followed by CRLF");
}

static void test_bad_trailers(void **state)
{
    bad_body(LIT("0\r\nA: b\r\n c\r\n\r\n"), "obsolete line folding");
    bad_body(LIT("0\r\n\tA: b\r\n\r\n"), "obsolete line folding");
    bad_body(LIT("0\r\nA: b\r\n\r\r\n"), "bare CR in the trailer section");
    bad_body(LIT("0\r\nA: b\r\n\rX"), "bare CR in the trailer section");
    bad_body(LIT("0\r\nA : b\r\n\r\n"), "whitespace before the colon");
    bad_body(LIT("0\r\n: b\r\n\r\n"), "an empty field name");
    /* llhttp's to refuse: a bare CR inside a line, NUL, controls, name bytes, no colon. */
    WHOLE_BODY("0\r\nA: b\rc\r\nA: \0\x01\r\nA[: b\r\nA\r\n\r\n", 1);
}

static void test_trailer_size_limit(void **state)
{
    /* A trailer section (field lines + final empty line) larger than the head, so only it meets the limit. */
    static char body[512];
    const uint32_t tsize = 300;
    memcpy(body, "0\r\nX: ", 6);
    memset(body + 6, 'v', tsize - 7);
    memcpy(body + tsize - 1, "\r\n\r\nGET", 7);
    const size_t len = tsize + 3 + 3;
    assert_true(tsize > sizeof(CHUNKED_HEAD) - 1);
    es_h1_guard_t g;

    es_h1_guard_init(&g, tsize);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(CHUNKED_HEAD)), sizeof(CHUNKED_HEAD) - 1);
    es_h1_guard_body(&g, 1);
    assert_int_equal(scan(&g, body, len), tsize + 3);
    assert_true(es_h1_guard_waiting(&g));

    es_h1_guard_init(&g, tsize - 1);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(CHUNKED_HEAD)), sizeof(CHUNKED_HEAD) - 1);
    es_h1_guard_body(&g, 1);
    assert_int_equal(scan(&g, body, len), -1);
    assert_failed(&g, 431, "trailer section too large");
}

static void test_plain_body_passes_everything(void **state)
{
    static const char junk[] = "\0\r\r\n \t5 \r\nhelloXY\x7f\xff";
    es_h1_guard_t g;
    es_h1_guard_init(&g, 64);
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT(GET)), sizeof(GET) - 1);
    es_h1_guard_body(&g, 0);
    for (int i = 0; i < 100; i++) /* more than max_head in total: a body is not a head */
        assert_int_equal(scan(&g, LIT(junk)), sizeof junk - 1);
    assert_false(es_h1_guard_waiting(&g));
    assert_int_equal(g.status, 0);
    /* The next head is checked again. */
    es_h1_guard_next(&g);
    assert_int_equal(scan(&g, LIT("GET / HTTP/1.1\r\nA : b\r\n\r\n")), -1);
    assert_failed(&g, 400, "whitespace before the colon");
}

static void test_pipelined(void **state)
{
    static const char buf[] = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
                              "hello"
                              "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
                              "GET /c HTTP/1.1\r\n\r\n";
    const size_t head1 = 39, head2 = 28, head3 = 19, len = sizeof buf - 1;
    assert_int_equal(head1 + 5 + head2 + head3, len);
    es_h1_guard_t g;
    es_h1_guard_init(&g, MAX_HEAD);
    es_h1_guard_next(&g);

    assert_int_equal(scan(&g, buf, len), head1);
    es_h1_guard_body(&g, 0); /* the parser saw Content-Length: 5 */
    assert_int_equal(scan(&g, buf + head1, len - head1), len - head1);
    /* The parser stops after 5 body bytes; the rest is scanned again, as the next head. */
    es_h1_guard_next(&g);
    size_t off = head1 + 5;
    assert_int_equal(scan(&g, buf + off, len - off), head2);
    es_h1_guard_body(&g, 0); /* no body */
    es_h1_guard_next(&g);
    off += head2;
    assert_int_equal(scan(&g, buf + off, len - off), head3);
    assert_true(es_h1_guard_waiting(&g));
}

/* --- The same input, cut anywhere: the verdict, the count and the final state do not change. --- */

typedef struct {
    const char *s;
    size_t len;
    int chunked;       /* every request in s has a chunked body, or none has a body */
    uint32_t max_head;
} input_t;

typedef struct {
    es_h1_guard_t g;
    int in_body;
    int messages; /* heads passed */
    int failed;
    size_t passed;
} run_t;

static void run_init(run_t *r, const input_t *in)
{
    memset(r, 0, sizeof *r);
    es_h1_guard_init(&r->g, in->max_head);
    es_h1_guard_next(&r->g);
}

/* Feeds one piece the way the connection will: body() after a head, next() after a body. */
static void run_feed(run_t *r, const input_t *in, const char *p, size_t len)
{
    while (len > 0 && !r->failed) {
        ssize_t n = es_h1_guard_scan(&r->g, p, len);
        if (n < 0) {
            r->failed = 1;
            return;
        }
        assert_true((size_t)n <= len);
        r->passed += (size_t)n;
        p += n;
        len -= (size_t)n;
        if (!es_h1_guard_waiting(&r->g)) {
            assert_int_equal(len, 0); /* fewer bytes only when a head or body ended */
            continue;
        }
        if (r->in_body) {
            r->in_body = 0;
            es_h1_guard_next(&r->g);
        } else {
            r->messages++;
            es_h1_guard_body(&r->g, in->chunked);
            if (in->chunked)
                r->in_body = 1;
            else
                es_h1_guard_next(&r->g);
        }
    }
}

static void assert_same_run(const run_t *a, const run_t *b)
{
    assert_int_equal(a->failed, b->failed);
    assert_int_equal(a->g.status, b->g.status);
    if (a->failed) {
        assert_string_equal(a->g.why, b->g.why);
        return;
    }
    assert_int_equal(a->passed, b->passed);
    assert_int_equal(a->messages, b->messages);
    assert_int_equal(a->in_body, b->in_body);
    assert_int_equal(a->g.phase, b->g.phase);
    assert_int_equal(a->g.state, b->g.state);
    assert_int_equal(a->g.digits, b->g.digits);
    assert_int_equal(a->g.count, b->g.count);
    assert_int_equal(a->g.size, b->g.size);
}

static void check_splits(const input_t *in, int expect_failed, const char *expect_why)
{
    run_t whole, r;
    run_init(&whole, in);
    run_feed(&whole, in, in->s, in->len);
    assert_int_equal(whole.failed, expect_failed);
    if (expect_failed)
        assert_string_equal(whole.g.why, expect_why);
    else
        assert_int_equal(whole.passed, in->len);

    for (size_t cut = 0; cut <= in->len; cut++) {
        run_init(&r, in);
        run_feed(&r, in, in->s, cut);
        run_feed(&r, in, in->s + cut, in->len - cut);
        assert_same_run(&whole, &r);
    }
    run_init(&r, in);
    for (size_t i = 0; i < in->len; i++)
        run_feed(&r, in, in->s + i, 1);
    assert_same_run(&whole, &r);
}

#define IN(str, chunked, max) { str, sizeof(str) - 1, chunked, max }
#define V50 "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"

static void test_split_anywhere(void **state)
{
    static const input_t good[] = {
        IN(GET, 0, MAX_HEAD),
        IN("\r\n\n" GET GET "GET /x HTTP/1.1\nA:b\n\n", 0, MAX_HEAD),
        IN("GET / HTTP/1.1\r\nA: b\r\n\r\n", 0, 24), /* exactly max_head */
        IN(CHUNKED_HEAD "5;a=b;c\r\nhello\r\n3 ; q = \"x \\\" y\" ;r\t=\ts\r\nabc\r\n"
                        "0;last\r\nChecksum: abc\r\n\r\n" CHUNKED_HEAD "0\r\n\n",
           1, MAX_HEAD),
        IN(CHUNKED_HEAD "1a\r\n0123456789abcdef0123456789\r\n", 1, MAX_HEAD), /* stops inside the body */
        IN(CHUNKED_HEAD "10\r\n0123456789ab", 1, MAX_HEAD),                   /* stops inside chunk data */
        /* Shapes left to llhttp pass whole, whatever the cuts. */
        IN("GET /\0 HTTP/1.1\rA\x01: b\x7f\rc\r\nHost\r\n\r\n", 0, MAX_HEAD),
        IN(CHUNKED_HEAD "5 ;a=\"x\ny\"\r\nhello\r\ng\r\nA: \0\r\n\r\n", 1, MAX_HEAD),
    };
    static const struct {
        input_t in;
        const char *why;
    } bad[] = {
        {IN("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 0, MAX_HEAD), "obsolete line folding"},
        {IN("GET / HTTP/1.1\r\nA: b\r\n\rX: c\r\n\r\n", 0, MAX_HEAD), "bare CR in the request head"},
        {IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, MAX_HEAD), "whitespace before the colon"},
        {IN("GET / HTTP/1.1\r\nA: b\r\n\r\n", 0, 23), "request header section too large"},
        {IN(GET "GET / HTTP/1.1\r\nA b: c\r\n\r\n", 0, MAX_HEAD), "whitespace before the colon"},
        {IN(GET "GET / HTTP/1.1\r\n: c\r\n\r\n", 0, MAX_HEAD), "an empty field name"},
        {IN(CHUNKED_HEAD "5;a=b\rXhello\r\n0\r\n\r\n", 1, MAX_HEAD), "bad chunk line ending"},
        {IN(CHUNKED_HEAD "00000000000000005\r\nhello\r\n0\r\n\r\n", 1, MAX_HEAD), "bad chunk size"},
        {IN(CHUNKED_HEAD "5\r\nhelloXY0\r\n\r\n", 1, MAX_HEAD), "chunk data not followed by CRLF"},
        {IN(CHUNKED_HEAD "0\r\nA: b\r\n c\r\n\r\n", 1, MAX_HEAD), "obsolete line folding"},
        {IN(CHUNKED_HEAD "0\r\nA: b\r\n\rc\r\n\r\n", 1, MAX_HEAD), "bare CR in the trailer section"},
        /* max_head 58 = the head; the first trailer section is 58 bytes too, the second 59. */
        {IN(CHUNKED_HEAD "0\r\nX: " V50 "v\r\n\r\n" CHUNKED_HEAD "0\r\nX: " V50 "vv\r\n\r\n", 1, 58),
         "trailer section too large"},
    };
    assert_int_equal(sizeof(CHUNKED_HEAD) - 1, 58);
    assert_int_equal(sizeof(V50) - 1, 50);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        check_splits(&good[i], 0, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_splits(&bad[i].in, 1, bad[i].why);
}

static void test_chunk_line_limit_split(void **state)
{
    /* The 4096-byte chunk line limit is per line, however the line arrives. */
    static char s[sizeof(CHUNKED_HEAD) + ES_H1_GUARD_MAX_CHUNK_LINE + 32];
    const size_t h = sizeof(CHUNKED_HEAD) - 1, line = ES_H1_GUARD_MAX_CHUNK_LINE;
    memcpy(s, CHUNKED_HEAD, h);
    memcpy(s + h, "1;a=", 4);
    memset(s + h + 4, 't', line - 6);
    memcpy(s + h + line - 2, "\r\nx\r\n0\r\n\r\n", 10);
    input_t in = {s, h + line + 8, 1, MAX_HEAD};
    check_splits(&in, 0, NULL);
    memset(s + h + 4, 't', line - 5);
    memcpy(s + h + line - 1, "\r\nx\r\n0\r\n\r\n", 10);
    in.len++;
    check_splits(&in, 1, "chunk extension too long");
}

/* --- The guard in front of llhttp (strict), driven as the connection drives them. --- */

typedef struct {
    llhttp_t parser;
    es_h1_guard_t guard;
    int messages;
    int next_called;
    char urls[4][16];
    char body[64];
    size_t body_len;
} conn_t;

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    strncat(c->urls[c->messages], at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    es_h1_guard_body(&c->guard, (p->flags & F_CHUNKED) != 0);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    assert_true(c->body_len + len < sizeof c->body);
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    es_h1_guard_next(&c->guard);
    c->next_called = 1;
    c->messages++;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Returns 0, -1 when the guard rejected the bytes, -2 when llhttp did. Each byte is scanned once, except bytes
 * past a body the parser counted: the guard passed them in the "not chunked" phase, and they are scanned again as
 * a head. */
static int conn_process(conn_t *c, const char *buf, size_t len)
{
    size_t off = 0, approved = 0;
    while (off < len) {
        if (approved == 0) {
            ssize_t n = es_h1_guard_scan(&c->guard, buf + off, len - off);
            if (n < 0)
                return -1;
            assert_true(n > 0);
            approved = (size_t)n;
        }
        c->next_called = 0;
        llhttp_errno_t e = llhttp_execute(&c->parser, buf + off, approved);
        size_t used = approved;
        if (e == HPE_PAUSED) {
            used = (size_t)(llhttp_get_error_pos(&c->parser) - (buf + off));
            llhttp_resume(&c->parser);
        } else if (e != HPE_OK) {
            return -2;
        }
        off += used;
        approved -= used;
        if (c->next_called)
            approved = 0;
    }
    return 0;
}

static void conn_init(conn_t *c)
{
    memset(c, 0, sizeof *c);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    es_h1_guard_init(&c->guard, MAX_HEAD);
    es_h1_guard_next(&c->guard);
}

static void test_with_llhttp(void **state)
{
    static const char buf[] = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                              "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5;x=\"y\"\r\nworld\r\n0\r\nT: v\r\n\r\n"
                              "\r\nGET /c HTTP/1.1\r\n\r\n";
    conn_t c;
    conn_init(&c);
    assert_int_equal(conn_process(&c, LIT(buf)), 0);
    assert_int_equal(c.messages, 3);
    assert_string_equal(c.urls[0], "/a");
    assert_string_equal(c.urls[1], "/b");
    assert_string_equal(c.urls[2], "/c");
    assert_int_equal(c.body_len, 10);
    assert_memory_equal(c.body, "helloworld", 10);
    assert_true(es_h1_guard_waiting(&c.guard) == 0);

    /* A head smuggled behind a Content-Length body is still checked as a head. */
    static const char smuggled[] = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                                   "GET /b HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n";
    conn_init(&c);
    assert_int_equal(conn_process(&c, LIT(smuggled)), -1);
    assert_int_equal(c.messages, 1);
    assert_int_equal(c.guard.status, 400);
    assert_string_equal(c.guard.why, "whitespace before the colon");

    /* A chunk whose data is not followed by CRLF never reaches llhttp, which would skip the two bytes. */
    static const char bad_crlf[] = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "5\r\nhelloXY0\r\n\r\n";
    conn_init(&c);
    assert_int_equal(conn_process(&c, LIT(bad_crlf)), -1);
    assert_int_equal(c.messages, 0);
    assert_string_equal(c.guard.why, "chunk data not followed by CRLF");

    /* A shape the guard leaves to llhttp: llhttp refuses it, after the message before it. */
    static const char ctl[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nX: a\x01\r\n\r\n";
    conn_init(&c);
    assert_int_equal(conn_process(&c, LIT(ctl)), -2);
    assert_int_equal(c.messages, 1);
    assert_int_equal(c.guard.status, 0);
}

static void test_state_is_small(void **state)
{
    assert_true(sizeof(es_h1_guard_t) <= 48);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_head),
        cmocka_unit_test(test_head_in_pieces_waits_for_the_end),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_bare_lf_line_ends),
        cmocka_unit_test(test_valid_field_bytes),
        cmocka_unit_test(test_bare_cr),
        cmocka_unit_test(test_left_to_llhttp),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_whitespace_before_colon),
        cmocka_unit_test(test_empty_field_name),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_chunk_sizes),
        cmocka_unit_test(test_bad_chunk_size),
        cmocka_unit_test(test_chunk_extensions_pass),
        cmocka_unit_test(test_bad_chunk_line_ending),
        cmocka_unit_test(test_chunk_line_too_long),
        cmocka_unit_test(test_chunk_data_crlf),
        cmocka_unit_test(test_bad_trailers),
        cmocka_unit_test(test_trailer_size_limit),
        cmocka_unit_test(test_plain_body_passes_everything),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_chunk_line_limit_split),
        cmocka_unit_test(test_with_llhttp),
        cmocka_unit_test(test_state_is_small),
    };
    return cmocka_run_group_tests_name("h1_guard", tests, NULL, NULL);
}

/*
 * Access-log formats (obs/access_format.h): compiled and rendered against hand-built records. Every operator,
 * the ?alternative and :N truncation, "-" for what is unknown, the response flags, START_TIME against known
 * instants, JSON checked by value and by Python's json module, escaping, and the compile errors' exact text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "obs/access_format.h"

#define LIT(s) s, sizeof(s) - 1

typedef struct {
    es_stream_info_t info;
    es_msg_t req, resp, state;
    es_access_record_t rec;
} fixture_t;

static void add(es_msg_t *m, const char *name, const char *value)
{
    assert_int_equal(es_msg_add(m, 0, name, strlen(name), value, strlen(value)), 0);
}

/* GET /search?q=1 from 10.1.2.3:51234 over HTTP/1.1, answered 200 by cluster "backend" in 12 ms. */
static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    es_msg_init(&f->req);
    es_msg_init(&f->resp);
    es_msg_init(&f->state);
    assert_int_equal(es_msg_on_first(&f->req, LIT("/search?q=1")), 0);
    add(&f->req, "Host", "example.com");
    add(&f->req, "User-Agent", "curl/8.0");
    add(&f->req, "X-Request-Id", "abc-123");
    es_msg_headers_done(&f->req);
    add(&f->resp, "Content-Type", "text/plain");
    add(&f->resp, "X-Envoy-Upstream-Service-Time", "7");
    es_msg_headers_done(&f->resp);
    add(&f->state, "auth.user", "alice");
    f->info = (es_stream_info_t){
        .start_ns = 1000000000ull,
        .start_unix_us = 1796334569123456ull, /* 2026-12-03T21:49:29.123456Z */
        .upstream_first_ns = 1000000000ull + 7500000ull,
        .end_ns = 1000000000ull + 12900000ull,
        .bytes_received = 42,
        .bytes_sent = 1234,
        .flags = 0,
        .response_code = 200,
    };
    f->rec = (es_access_record_t){
        .info = &f->info,
        .req = &f->req,
        .resp = &f->resp,
        .method = "GET",
        .method_len = 3,
        .scheme = "http",
        .route_name = "search",
        .cluster_name = "backend",
        .upstream_host = "127.0.0.1:8080",
        .peer_ip = "10.1.2.3",
        .peer_port = 51234,
        .protocol = "HTTP/1.1",
        .filter_state = &f->state,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    es_msg_dispose(&f->req);
    es_msg_dispose(&f->resp);
    es_msg_dispose(&f->state);
    free(f);
    es_small_drain();
    return 0;
}

/* Compiles `fmt` as a text format and renders r: the line (static buffer, the '\n' kept). */
static const char *text(const char *fmt, const es_access_record_t *r)
{
    static char line[4096];
    char err[256] = "";
    es_access_format_t *f = es_access_format_text(fmt, err, sizeof(err));
    if (f == NULL)
        fail_msg("%s: %s", fmt, err);
    es_buf_t out;
    es_buf_init(&out);
    assert_int_equal(es_access_format_render(f, r, &out), 0);
    assert_true(out.len < sizeof(line));
    memcpy(line, out.base, out.len);
    line[out.len] = 0;
    es_buf_dispose(&out);
    es_access_format_free(f);
    return line;
}

static void expect_text(const char *fmt, const es_access_record_t *r, const char *want)
{
    char w[4096];
    snprintf(w, sizeof(w), "%s\n", want);
    assert_string_equal(text(fmt, r), w);
}

static void expect_compile_error(const char *fmt, const char *want)
{
    char err[256] = "";
    es_access_format_t *f = es_access_format_text(fmt, err, sizeof(err));
    assert_null(f);
    assert_string_equal(err, want);
}

static void test_every_operator(void **state)
{
    fixture_t *f = *state;
    const es_access_record_t *r = &f->rec;
    expect_text("%START_TIME%", r, "2026-12-03T21:49:29.123Z");
    expect_text("%REQ(:METHOD)%", r, "GET");
    expect_text("%REQ(:PATH)%", r, "/search?q=1");
    expect_text("%REQ(:AUTHORITY)%", r, "example.com");
    expect_text("%REQ(:SCHEME)%", r, "http");
    expect_text("%REQ(USER-AGENT)% %REQ(user-agent)% %REQ(User-Agent)%", r, "curl/8.0 curl/8.0 curl/8.0");
    expect_text("%RESP(CONTENT-TYPE)%", r, "text/plain");
    expect_text("%RESP(:STATUS)%", r, "200");
    expect_text("%RESPONSE_CODE%", r, "200");
    expect_text("%RESPONSE_FLAGS%", r, "-");
    expect_text("%BYTES_RECEIVED%", r, "42");
    expect_text("%BYTES_SENT%", r, "1234");
    expect_text("%DURATION%", r, "12");
    expect_text("%RESPONSE_DURATION%", r, "7");
    expect_text("%UPSTREAM_HOST%", r, "127.0.0.1:8080");
    expect_text("%UPSTREAM_CLUSTER%", r, "backend");
    expect_text("%ROUTE_NAME%", r, "search");
    expect_text("%DOWNSTREAM_REMOTE_ADDRESS%", r, "10.1.2.3:51234");
    expect_text("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", r, "10.1.2.3");
    expect_text("%PROTOCOL%", r, "HTTP/1.1");
    expect_text("%FILTER_STATE(auth.user)%", r, "alice");
    expect_text("100%% done", r, "100% done");
    expect_text("%%%RESPONSE_CODE%%%", r, "%200%");
    expect_text("plain text", r, "plain text");
    /* A format that ends with its own newline gets no second one. */
    assert_string_equal(text("%RESPONSE_CODE%\n", r), "200\n");
    assert_string_equal(text("", r), "\n");
}

static void test_envoy_default_format(void **state)
{
    fixture_t *f = *state;
    expect_text("[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
                "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
                "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" "
                "\"%UPSTREAM_HOST%\"",
                &f->rec,
                "[2026-12-03T21:49:29.123Z] \"GET /search?q=1 HTTP/1.1\" 200 - 42 1234 12 7 \"-\" \"curl/8.0\" "
                "\"abc-123\" \"example.com\" \"127.0.0.1:8080\"");
}

static void test_unknown_values_are_dashes(void **state)
{
    fixture_t *f = *state;
    es_stream_info_t info = {.start_ns = 5, .response_code = 0};
    es_access_record_t r = {.info = &info, .req = &f->req};
    expect_text("%REQ(X-MISSING)% %RESP(CONTENT-TYPE)% %RESP(:STATUS)% %REQ(:METHOD)% %REQ(:SCHEME)%", &r,
                "- - - - -");
    expect_text("%START_TIME% %DURATION% %RESPONSE_DURATION% %RESPONSE_FLAGS%", &r, "- - - -");
    expect_text("%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME% %PROTOCOL% %FILTER_STATE(x)%", &r, "- - - - -");
    expect_text("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", &r, "- -");
    /* Envoy's convention: a response code of 0 means none was sent. */
    expect_text("%RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT%", &r, "0 0 0");
    /* A state name that is absent while others are set. */
    expect_text("%FILTER_STATE(auth)%", &f->rec, "-");
    es_access_record_t none = {0};
    expect_text("%REQ(:PATH)% %REQ(HOST)% %RESPONSE_CODE% %BYTES_SENT%", &none, "- - - -");
}

static void test_alternative_and_truncation(void **state)
{
    fixture_t *f = *state;
    const es_access_record_t *r = &f->rec;
    expect_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", r, "/search?q=1");
    expect_text("%REQ(X-MISSING?USER-AGENT)%", r, "curl/8.0");
    expect_text("%REQ(X-MISSING?X-OTHER)%", r, "-");
    expect_text("%REQ(:PATH):7%", r, "/search");
    expect_text("%REQ(:PATH):0%", r, "");
    expect_text("%REQ(:PATH):100%", r, "/search?q=1");
    expect_text("%REQ(X-MISSING?USER-AGENT):4%", r, "curl");
    expect_text("%RESP(X-MISSING?CONTENT-TYPE):4%", r, "text");
    expect_text("%FILTER_STATE(auth.user):3%", r, "ali");
    add(&f->req, "X-Envoy-Original-Path", "/original");
    expect_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", r, "/original");
}

static void test_response_flags(void **state)
{
    fixture_t *f = *state;
    f->info.flags = ES_RF_UF;
    expect_text("%RESPONSE_FLAGS%", &f->rec, "UF");
    f->info.flags = ES_RF_UT | ES_RF_LR;
    expect_text("%RESPONSE_FLAGS%", &f->rec, "UT,LR");
    f->info.flags = (1u << ES_RF_COUNT) - 1;
    expect_text("%RESPONSE_FLAGS%", &f->rec, "UF,UT,UC,DC,LR,NR,UO,DPE,UPE,SI,DT,FT,FE");
    static const char *const names[] = {"UF", "UT", "UC", "DC", "LR", "NR", "UO", "DPE", "UPE", "SI", "DT", "FT", "FE"};
    for (unsigned b = 0; b < ES_RF_COUNT; b++) {
        f->info.flags = 1u << b;
        expect_text("%RESPONSE_FLAGS%", &f->rec, names[b]);
        assert_string_equal(es_response_flag_names[b], names[b]);
    }
}

static void test_start_time(void **state)
{
    fixture_t *f = *state;
    static const struct {
        uint64_t us;
        const char *want;
    } cases[] = {
        {1796334569123456ull, "2026-12-03T21:49:29.123Z"},
        {1796334569000999ull, "2026-12-03T21:49:29.000Z"},
        {1796334569999999ull, "2026-12-03T21:49:29.999Z"},
        {1796334570000000ull, "2026-12-03T21:49:30.000Z"},
        {1709251199500000ull, "2024-02-29T23:59:59.500Z"},
        {1709251200000000ull, "2024-03-01T00:00:00.000Z"},
        {951868800001000ull, "2000-03-01T00:00:00.001Z"},
        {946684799999000ull, "1999-12-31T23:59:59.999Z"},
        {4107499200000000ull, "2100-02-28T12:00:00.000Z"},
        {1000ull, "1970-01-01T00:00:00.001Z"},
        /* the cached second is not reused for another second */
        {1796334569050000ull, "2026-12-03T21:49:29.050Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f->info.start_unix_us = cases[i].us;
        expect_text("%START_TIME%", &f->rec, cases[i].want);
    }
}

static void test_ipv6_peer(void **state)
{
    fixture_t *f = *state;
    f->rec.peer_ip = "2001:db8::1";
    f->rec.peer_port = 443;
    expect_text("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", &f->rec,
                "[2001:db8::1]:443 2001:db8::1");
    f->rec.peer_ip = "::1";
    f->rec.peer_port = 0;
    expect_text("%DOWNSTREAM_REMOTE_ADDRESS%", &f->rec, "[::1]:0");
}

static void test_text_is_not_escaped_but_state_control_bytes_are(void **state)
{
    fixture_t *f = *state;
    add(&f->req, "X-Quote", "say \"hi\" \\ \xc3\xa9");
    expect_text("%REQ(X-QUOTE)%", &f->rec, "say \"hi\" \\ \xc3\xa9");
    add(&f->state, "odd", "a\nb\x7f");
    expect_text("%FILTER_STATE(odd)%", &f->rec, "a\\x0ab\\x7f");
}

static void test_reads_response(void **state)
{
    char err[128];
    es_access_format_t *a = es_access_format_text("%REQ(HOST)% %RESPONSE_CODE%", err, sizeof(err));
    es_access_format_t *b = es_access_format_text("%RESP(CONTENT-TYPE)%", err, sizeof(err));
    const char *k[] = {"ct"}, *v[] = {"%RESP(X?Y)%"};
    es_access_format_t *c = es_access_format_json(k, v, 1, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_false(es_access_format_reads_response(a));
    assert_true(es_access_format_reads_response(b));
    assert_true(es_access_format_reads_response(c));
    es_access_format_free(a);
    es_access_format_free(b);
    es_access_format_free(c);
}

static void test_compile_errors(void **state)
{
    expect_compile_error("%FOO%", "unknown operator %FOO%");
    expect_compile_error("x %REQ(A)% %NOPE(b):3% y", "unknown operator %NOPE(b):3%");
    expect_compile_error("%REQ(USER-AGENT", "unterminated %REQ(");
    expect_compile_error("%REQ()%", "%REQ()%: empty header name");
    expect_compile_error("%REQ(A?)%", "%REQ(A?)%: empty header name");
    expect_compile_error("%RESP(?B)%", "%RESP(?B)%: empty header name");
    expect_compile_error("%REQ(a b)%", "%REQ(a b)%: not a header name");
    expect_compile_error("%REQ(:FOO)%", "%REQ(:FOO)%: unknown pseudo-header (expected :METHOD, :PATH, :AUTHORITY or :SCHEME)");
    expect_compile_error("%RESP(:PATH)%", "%RESP(:PATH)%: unknown pseudo-header (expected :STATUS)");
    expect_compile_error("%REQ%", "%REQ%: expected %REQ(header)%");
    expect_compile_error("%FILTER_STATE%", "%FILTER_STATE%: expected %FILTER_STATE(name)%");
    expect_compile_error("%FILTER_STATE()%", "%FILTER_STATE()%: empty name");
    expect_compile_error("%DURATION(x)%", "%DURATION(x)%: %DURATION% takes no argument");
    expect_compile_error("%DURATION:3%", "%DURATION:3%: a length limit (:N) applies to REQ, RESP and FILTER_STATE only");
    expect_compile_error("%REQ(A):x%", "%REQ(A):: expected a length after ':'");
    expect_compile_error("%START_TIME", "unterminated %START_TIME");
    expect_compile_error("%REQ(A) x", "unterminated %REQ(A)");
    expect_compile_error("100% done", "a lone % (write %% for a percent sign)");
    expect_compile_error("end %", "a lone % (write %% for a percent sign)");
    expect_compile_error("%start_time%", "a lone % (write %% for a percent sign)");

    char err[256] = "";
    const char *k[] = {"a", "b"}, *v[] = {"%RESPONSE_CODE%", "%BAD%"};
    assert_null(es_access_format_json(k, v, 2, err, sizeof(err)));
    assert_string_equal(err, "unknown operator %BAD%");
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static es_access_format_t *json(const char *const *keys, const char *const *formats, size_t n)
{
    char err[256] = "";
    es_access_format_t *f = es_access_format_json(keys, formats, n, err, sizeof(err));
    if (f == NULL)
        fail_msg("%s", err);
    return f;
}

static char *render(const es_access_format_t *fmt, const es_access_record_t *r)
{
    es_buf_t out;
    es_buf_init(&out);
    assert_int_equal(es_access_format_render(fmt, r, &out), 0);
    char *s = malloc(out.len + 1);
    memcpy(s, out.base, out.len);
    s[out.len] = 0;
    es_buf_dispose(&out);
    return s;
}

/* Python's json module reads the file's lines; `check` is a Python expression on `o` (each line's object) that
 * must hold. Returns the tool's output (to free). */
static void python_check(const char *lines, const char *check)
{
    char path[] = "/tmp/es-access-json.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, lines, strlen(lines)), (ssize_t)strlen(lines));
    close(fd);
    char *out = NULL;
    int rc = es_run_tool(&out,
                         "python3 -c 'import json,sys\n"
                         "n=0\n"
                         "for line in open(sys.argv[1], \"rb\").read().split(b\"\\n\")[:-1]:\n"
                         "    o=json.loads(line.decode(\"utf-8\"))\n"
                         "    assert %s, (o, line)\n"
                         "    n+=1\n"
                         "print(\"lines=%%d\" %% n)' %s",
                         check, path);
    unlink(path);
    if (rc != 0)
        fail_msg("python rejected the JSON (%d): %s\n%s", rc, out, lines);
    free(out);
}

static void test_json_by_value_and_by_parser(void **state)
{
    fixture_t *f = *state;
    const char *keys[] = {"start", "method", "path", "code", "flags", "received", "sent", "duration", "upstream_ms",
                          "missing", "mixed", "host", "peer", "state", "proto", "cluster", "route", "pct"};
    const char *fmts[] = {"%START_TIME%", "%REQ(:METHOD)%", "%REQ(:PATH)%", "%RESPONSE_CODE%", "%RESPONSE_FLAGS%",
                          "%BYTES_RECEIVED%", "%BYTES_SENT%", "%DURATION%", "%RESPONSE_DURATION%", "%REQ(X-NONE)%",
                          "%REQ(:METHOD)% %REQ(X-NONE)% %RESPONSE_CODE%", "%UPSTREAM_HOST%",
                          "%DOWNSTREAM_REMOTE_ADDRESS%", "%FILTER_STATE(auth.user)%", "%PROTOCOL%",
                          "%UPSTREAM_CLUSTER%", "%ROUTE_NAME%", "100%%"};
    size_t n = sizeof(keys) / sizeof(keys[0]);
    es_access_format_t *fmt = json(keys, fmts, n);
    char *line = render(fmt, &f->rec);
    assert_string_equal(line, "{\"start\":\"2026-12-03T21:49:29.123Z\",\"method\":\"GET\",\"path\":\"/search?q=1\","
                              "\"code\":200,\"flags\":null,\"received\":42,\"sent\":1234,\"duration\":12,"
                              "\"upstream_ms\":7,\"missing\":null,\"mixed\":\"GET - 200\",\"host\":\"127.0.0.1:8080\","
                              "\"peer\":\"10.1.2.3:51234\",\"state\":\"alice\",\"proto\":\"HTTP/1.1\","
                              "\"cluster\":\"backend\",\"route\":\"search\",\"pct\":\"100%\"}\n");
    /* With flags and no upstream answer: the numbers that are unknown are null. */
    f->info.flags = ES_RF_UF | ES_RF_LR;
    f->info.upstream_first_ns = 0;
    f->info.response_code = 503;
    char *line2 = render(fmt, &f->rec);
    assert_non_null(strstr(line2, "\"code\":503,\"flags\":\"UF,LR\","));
    assert_non_null(strstr(line2, "\"upstream_ms\":null,"));
    size_t both = strlen(line) + strlen(line2) + 1;
    char *lines = malloc(both);
    snprintf(lines, both, "%s%s", line, line2);
    python_check(lines, "o[\"method\"]==\"GET\" and o[\"code\"] in (200,503) and o[\"received\"]==42 and "
                        "o[\"missing\"] is None and o[\"pct\"]==\"100%\" and list(o)[0]==\"start\" and "
                        "list(o)[-1]==\"pct\" and len(o)==18");
    free(lines);
    free(line);
    free(line2);
    es_access_format_free(fmt);
}

static void test_json_escaping(void **state)
{
    fixture_t *f = *state;
    add(&f->req, "X-Quote", "say \"hi\" \\ / done");
    add(&f->req, "X-Utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    add(&f->req, "X-Bad", "a\xff" "b\xc3(\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80" "z");
    add(&f->state, "ctl", "t\tn\nr\r\x01\x1f\x7f");
    const char *keys[] = {"q", "utf8", "bad", "ctl", "key \"with\" quote"};
    const char *fmts[] = {"%REQ(X-QUOTE)%", "%REQ(X-UTF8)%", "%REQ(X-BAD)%", "%FILTER_STATE(ctl)%", "x"};
    es_access_format_t *fmt = json(keys, fmts, 5);
    char *line = render(fmt, &f->rec);
    assert_string_equal(line, "{\"q\":\"say \\\"hi\\\" \\\\ / done\","
                              "\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
                              "\"bad\":\"a\\u00ffb\\u00c3(\\u00ed\\u00a0\\u0080\\u00c0\\u00af\\u00f4\\u0090\\u0080\\u0080z\","
                              "\"ctl\":\"t\\tn\\nr\\r\\u0001\\u001f\x7f\","
                              "\"key \\\"with\\\" quote\":\"x\"}\n");
    python_check(line, "o[\"q\"]==\"say \\\"hi\\\" \\\\ / done\" and o[\"utf8\"]==\"caf\\u00e9 \\u20ac \\U0001f600\" and "
                       "o[\"bad\"].startswith(\"a\\u00ffb\") and o[\"ctl\"]==\"t\\tn\\nr\\r\\x01\\x1f\\x7f\" and "
                       "o[\"key \\\"with\\\" quote\"]==\"x\"");
    free(line);
    es_access_format_free(fmt);
}

/* Each line made from random bytes in every header is one valid JSON object. */
static void test_json_random_bytes(void **state)
{
    fixture_t *f = *state;
    const char *keys[] = {"a", "b"};
    const char *fmts[] = {"%REQ(X-RANDOM)%", "<%REQ(X-RANDOM)%>"};
    es_access_format_t *fmt = json(keys, fmts, 2);
    es_buf_t all;
    es_buf_init(&all);
    srand(7);
    for (int i = 0; i < 300; i++) {
        char v[40];
        size_t n = (size_t)(rand() % (int)sizeof(v));
        for (size_t j = 0; j < n; j++)
            v[j] = (char)(rand() % 255 + 1);
        es_msg_t m;
        es_msg_init(&m);
        assert_int_equal(es_msg_add(&m, 0, LIT("X-Random"), v, n), 0);
        es_access_record_t r = f->rec;
        r.req = &m;
        assert_int_equal(es_access_format_render(fmt, &r, &all), 0);
        es_msg_dispose(&m);
    }
    assert_int_equal(es_buf_append(&all, "", 1), 0);
    python_check(all.base, "len(o)==2 and (o[\"a\"] is None or o[\"b\"]==\"<\"+o[\"a\"]+\">\")");
    es_buf_dispose(&all);
    es_access_format_free(fmt);
}

static void test_render_appends(void **state)
{
    fixture_t *f = *state;
    char err[64];
    es_access_format_t *fmt = es_access_format_text("%RESPONSE_CODE%", err, sizeof(err));
    es_buf_t out;
    es_buf_init(&out);
    assert_int_equal(es_buf_append(&out, "x", 1), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(es_access_format_render(fmt, &f->rec, &out), 0);
    assert_int_equal(out.len, 13);
    assert_memory_equal(out.base, "x200\n200\n200\n", 13);
    es_buf_dispose(&out);
    es_access_format_free(fmt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_operator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envoy_default_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_values_are_dashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alternative_and_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_is_not_escaped_but_state_control_bytes_are, setup, teardown),
        cmocka_unit_test(test_reads_response),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test_setup_teardown(test_json_by_value_and_by_parser, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_appends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * HTTP/1 request-head parsing alone, measured (never asserted): http-parser 2.9.4 (Debian) against llhttp 8.1
 * (Debian node-llhttp, strict), on the same 260-byte head, each with the callbacks a proxy sets (URL, field, value,
 * headers complete, message complete; they only count). Rounds alternate the two parsers; the best round counts.
 *
 *   make bench-parse                 ITER=N ROUNDS=N in the environment change the work
 *
 * llhttp.h and http_parser.h define the same enumerators, so llhttp's loop lives in bench/parse_llhttp.c: each
 * loop is in its parser's file, and one call runs a whole round.
 */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "parse.h"

static const char head[] =
    "GET /api/v1/users/12345/orders?limit=20&offset=40 HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) curl/7.88.1\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip, br\r\n"
    "Cookie: session=abcdef0123456789\r\n"
    "X-Request-Id: 4f1c2a9e-00001\r\n"
    "\r\n";

static unsigned long events;

static int on_data(http_parser *p, const char *at, size_t len)
{
    (void)p;
    (void)at;
    events += len;
    return 0;
}

static int on_event(http_parser *p)
{
    (void)p;
    events++;
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_data,
    .on_header_field = on_data,
    .on_header_value = on_data,
    .on_headers_complete = on_event,
    .on_message_complete = on_event,
};

static unsigned long bench_http_parser(const char *h, size_t len, long iter)
{
    events = 0;
    for (long i = 0; i < iter; i++) {
        http_parser p;
        http_parser_init(&p, HTTP_REQUEST);
        if (http_parser_execute(&p, &settings, h, len) != len) {
            fprintf(stderr, "http-parser: %s\n", http_errno_name(HTTP_PARSER_ERRNO(&p)));
            exit(1);
        }
    }
    return events;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    const size_t len = sizeof head - 1;
    long iter = getenv("ITER") ? atol(getenv("ITER")) : 1000000;
    int rounds = getenv("ROUNDS") ? atoi(getenv("ROUNDS")) : 7;
    if (iter < 1 || rounds < 1)
        return 2;

    /* Both see the same thing: the same callback bytes and events per head. */
    unsigned long a = bench_http_parser(head, len, 1), b = bench_llhttp(head, len, 1);
    if (a != b) {
        fprintf(stderr, "the parsers disagree: %lu vs %lu callback bytes + events\n", a, b);
        return 1;
    }
    bench_http_parser(head, len, iter / 10 + 1); /* warm up */
    bench_llhttp(head, len, iter / 10 + 1);

    double best_hp = 1e30, best_ll = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        bench_http_parser(head, len, iter);
        double t1 = now_ns();
        bench_llhttp(head, len, iter);
        double t2 = now_ns();
        if ((t1 - t0) / iter < best_hp)
            best_hp = (t1 - t0) / iter;
        if ((t2 - t1) / iter < best_ll)
            best_ll = (t2 - t1) / iter;
    }
    printf("request head: %zu bytes, %ld parses a round, best of %d rounds\n", len, iter, rounds);
    printf("http-parser 2.9.4  %7.1f ns/head  %5.2f GB/s\n", best_hp, (double)len / best_hp);
    printf("llhttp 8.1         %7.1f ns/head  %5.2f GB/s\n", best_ll, (double)len / best_ll);
    printf("llhttp / http-parser: %.2f of the time (%.2fx as fast)\n", best_ll / best_hp, best_hp / best_ll);
    return 0;
}

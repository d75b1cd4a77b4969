/* bench/parse.c: one function per parser; each parses `head` `iter` times and returns its callbacks' count. */
#ifndef ES_BENCH_PARSE_H
#define ES_BENCH_PARSE_H
#include <stddef.h>
unsigned long bench_llhttp(const char *head, size_t len, long iter);
#endif

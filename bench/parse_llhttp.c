/* bench/parse.c's llhttp half: llhttp.h and http_parser.h define the same enumerators, so a file each. */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>

#include "parse.h"

static unsigned long events;

static int on_data(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    (void)at;
    events += len;
    return 0;
}

static int on_event(llhttp_t *p)
{
    (void)p;
    events++;
    return 0;
}

unsigned long bench_llhttp(const char *head, size_t len, long iter)
{
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_url = on_data;
    s.on_header_field = on_data;
    s.on_header_value = on_data;
    s.on_headers_complete = on_event;
    s.on_message_complete = on_event;
    events = 0;
    for (long i = 0; i < iter; i++) {
        llhttp_t p;
        llhttp_init(&p, HTTP_REQUEST, &s);
        llhttp_errno_t e = llhttp_execute(&p, head, len);
        if (e != HPE_OK) {
            fprintf(stderr, "llhttp: %s\n", llhttp_errno_name(e));
            exit(1);
        }
    }
    return events;
}

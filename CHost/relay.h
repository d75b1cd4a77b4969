/*
 * A worker's stdout and stderr, relayed by the supervisor into the log: each line gets the log's prefix
 * and the worker's tag, so what the Swift runtime or a sanitizer prints is found beside the worker's own
 * lines.
 */
#ifndef ES_RELAY_H
#define ES_RELAY_H

#include <stddef.h>

typedef struct {
    int fd;                    /* the pipe's read end (non-blocking); -1 once at end of file */
    char tag[32];              /* "w0.g1" */
    size_t len;                /* bytes of a line not yet ended */
    char line[2048];
} es_relay_t;

/* Reads what the pipe holds and writes every complete line to stderr; at end of file the rest too, and
 * the pipe is closed. A line longer than the buffer goes out in pieces. */
void es_relay_read(es_relay_t *r);

#endif

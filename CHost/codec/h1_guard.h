/*
 * The checks llhttp 8.1 lacks, run over request bytes before llhttp (strict, no lenient flags) sees them. llhttp
 * itself refuses CL with TE, two Content-Lengths, a non-final chunked, bad chunk sizes and extensions, controls
 * and NUL in the request line and in fields, bad field-name bytes, a line without a colon, bare LF after a field
 * value and most bare CRs. What it accepts, and the guard refuses (Tests/c/test_h1_shapes.c proves each side):
 *   - obsolete line folding, in the head and in trailers;
 *   - whitespace in a field name or before its colon ("Host : a", "X Y: b");
 *   - an empty field name (": b");
 *   - a CR not followed by LF where llhttp reads a line end: a leading or the final empty line of a head or a
 *     trailer section ("\rX" ends llhttp's head), and the end of a chunk-size line ("5\rX");
 *   - chunk data not followed by CRLF (llhttp skips any two bytes);
 *   - a chunk size over 16 hex digits or INT64_MAX, a chunk-size line over ES_H1_GUARD_MAX_CHUNK_LINE;
 *   - a head (or trailer section) over max_head: 431 (llhttp has no size limit).
 * It builds nothing: llhttp parses; the guard follows lines and chunked framing only as far as these need.
 *
 * The caller's loop, per connection:
 *   - Every byte is scanned once, in order: keep a count of the unparsed bytes already approved and scan only
 *     past them; feed the parser no more than the approved bytes.
 *   - on_headers_complete: es_h1_guard_body(g, parser->flags & F_CHUNKED).
 *   - on_message_complete: pause the parser (return HPE_PAUSED; llhttp took llhttp_get_error_pos(p) - data bytes;
 *     llhttp_resume before the next llhttp_execute), call es_h1_guard_next and forget the approved count: in the "not
 *     chunked" phase the guard passed bytes past the message end unchecked, and they must be scanned again as
 *     the next head. (After a head or a chunked body the guard stops exactly at the message end, so nothing is
 *     scanned twice.)
 *   - Upgrade / CONNECT: the bytes after the head are not HTTP; stop calling the guard.
 *   - A shape llhttp refuses passes the guard: llhttp must see every approved byte, in order, and its error ends the
 *     connection (400). Correct only with llhttp as the parser: http-parser 2.9.4 takes some of those shapes.
 */
#ifndef ES_H1_GUARD_H
#define ES_H1_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The most bytes of a chunk-size line, extensions and CRLF included. */
#define ES_H1_GUARD_MAX_CHUNK_LINE 4096

typedef struct {
    uint8_t phase;     /* head, waiting, plain body, chunk line/data/CRLF, trailers, failed */
    uint8_t state;     /* where in the current line */
    uint8_t digits;    /* chunk-size digits so far */
    uint32_t count;    /* bytes of the current head, trailer section or chunk-size line */
    uint64_t size;     /* the chunk size being read, then the chunk-data bytes still to skip */
    uint32_t max_head; /* most bytes of a head (and, separately, of a trailer section) */
    int status;        /* after a -1 from scan: 400, or 431 when a head/trailer section is over max_head */
    const char *why;   /* after a -1: a short static message, e.g. "obsolete line folding" */
} es_h1_guard_t;

/* Once per connection. */
void es_h1_guard_init(es_h1_guard_t *g, uint32_t max_head);
/* A new request begins: the next bytes are a request head (leading empty lines allowed). No effect once failed. */
void es_h1_guard_next(es_h1_guard_t *g);
/* The head the guard just passed has been parsed: its body is chunked (1), or not (0: a Content-Length body the
 * parser counts, or none). No effect once failed. */
void es_h1_guard_body(es_h1_guard_t *g, int chunked);
/*
 * Checks data[0..len). Returns how many leading bytes may be fed to the parser: all of them, or fewer when the
 * head (or the chunked body's trailer section) ended inside `data` -- then the count up to and including that
 * final LF, and 0 on later calls until es_h1_guard_body (after a head) or es_h1_guard_next (after a chunked body)
 * moves it on. In the "not chunked" body phase every byte passes. Returns -1 when the bytes break the grammar
 * (g->status, g->why set); the guard stays failed until es_h1_guard_init.
 */
ssize_t es_h1_guard_scan(es_h1_guard_t *g, const char *data, size_t len);
/* Whether the guard waits for es_h1_guard_body / es_h1_guard_next (it passed a complete head / body). */
int es_h1_guard_waiting(const es_h1_guard_t *g);

#endif

/*
 * The allocator the proxy gives libnghttp2: blocks up to 4 KiB come from per-thread free lists by size class,
 * so a stream's frames, header copies and stream objects cost no malloc once a worker is warm. Under
 * AddressSanitizer it passes everything to malloc, so the sanitizer still sees every block's life.
 */
#ifndef ES_H2_MEM_H
#define ES_H2_MEM_H

#include <nghttp2/nghttp2.h>

/* The allocator (static; any thread, each with its own lists). */
nghttp2_mem *es_h2_mem(void);
/* Frees this thread's cached blocks (a worker that exits). */
void es_h2_mem_drain(void);

#endif

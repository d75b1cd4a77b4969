#include "filters/handles.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    es_filters_t **slots;
    uint32_t *gens;
    uint32_t cap;
    uint32_t *free;   /* stack of free slots */
    uint32_t nfree;
    uint64_t tag;
    unsigned worker;
    es_link_t resumed;/* streams whose RUNNING hook posted its result, oldest first */
} handle_table_t;

static __thread handle_table_t table;
static atomic_uint next_tag = 1;

void es_handles_thread_init(unsigned worker)
{
    memset(&table, 0, sizeof(table));
    table.tag = (uint64_t)(atomic_fetch_add(&next_tag, 1) & 0xff) << 56;
    table.worker = worker;
    es_list_init(&table.resumed);
}

void es_handles_thread_dispose(void)
{
    free(table.slots);
    free(table.gens);
    free(table.free);
    memset(&table, 0, sizeof(table));
}

unsigned es_handles_worker(void)
{
    return table.worker;
}

int es_handles_register(es_filters_t *f)
{
    if (table.nfree == 0) {
        uint32_t cap = table.cap ? table.cap * 2 : 64;
        es_filters_t **slots = realloc(table.slots, cap * sizeof(*slots));
        if (slots == NULL)
            return -1;
        table.slots = slots;
        uint32_t *gens = realloc(table.gens, cap * sizeof(*gens));
        if (gens == NULL)
            return -1;
        table.gens = gens;
        uint32_t *fr = realloc(table.free, cap * sizeof(*fr));
        if (fr == NULL)
            return -1;
        table.free = fr;
        for (uint32_t i = cap; i > table.cap; i--) {
            table.slots[i - 1] = NULL;
            table.gens[i - 1] = 0;
            table.free[table.nfree++] = i - 1;
        }
        table.cap = cap;
    }
    uint32_t slot = table.free[--table.nfree];
    table.gens[slot] = (table.gens[slot] + 1) & 0xffffff;
    table.slots[slot] = f;
    f->slot = slot;
    f->handle = table.tag | ((uint64_t)table.gens[slot] << 32) | (uint64_t)(slot + 1);
    return 0;
}

void es_handles_unregister(es_filters_t *f)
{
    if (f->handle == 0 || table.slots == NULL)
        return;
    table.slots[f->slot] = NULL;
    table.free[table.nfree++] = f->slot;
    f->handle = 0;
}

es_filters_t *es_handles_lookup(envoy_swift_stream_t h)
{
    if ((h & 0xff00000000000000ull) != table.tag || table.slots == NULL)
        return NULL;
    uint32_t slot = (uint32_t)(h & 0xffffffffu) - 1;
    uint32_t gen = (uint32_t)((h >> 32) & 0xffffff);
    if (slot >= table.cap || table.gens[slot] != gen)
        return NULL;
    return table.slots[slot];
}

void es_handles_post(es_filters_t *f)
{
    es_list_push_back(&table.resumed, &f->resume_link);
}

es_filters_t *es_handles_next_posted(void)
{
    if (table.resumed.next == NULL || es_list_empty(&table.resumed))
        return NULL;
    es_filters_t *f = es_container_of(table.resumed.next, es_filters_t, resume_link);
    es_list_remove(&f->resume_link);
    return f;
}

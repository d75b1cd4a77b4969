/* An intrusive circular doubly-linked list (like libuv's queue): the owner embeds es_link_t. */
#ifndef ES_LIST_H
#define ES_LIST_H

#include <stddef.h>

typedef struct es_link_s {
    struct es_link_s *prev, *next;
} es_link_t;

#define es_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void es_list_init(es_link_t *head)
{
    head->prev = head->next = head;
}

static inline int es_list_empty(const es_link_t *head)
{
    return head->next == head;
}

static inline int es_link_linked(const es_link_t *l)
{
    return l->next != NULL && l->next != l;
}

static inline void es_list_push_front(es_link_t *head, es_link_t *l)
{
    l->next = head->next;
    l->prev = head;
    head->next->prev = l;
    head->next = l;
}

static inline void es_list_push_back(es_link_t *head, es_link_t *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static inline void es_list_remove(es_link_t *l)
{
    if (!es_link_linked(l))
        return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#endif

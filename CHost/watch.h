/*
 * Watching files (`--watch`): inotify on the folders of the files, not on the files, so that a file
 * renamed over a watched path (a rebuilt library, an editor's save) is seen as a change.
 */
#ifndef ES_WATCH_H
#define ES_WATCH_H

#include <limits.h>
#include <stddef.h>

#define ES_WATCH_MAX 129             /* the config file and every filter's library */

typedef struct {
    int fd;                          /* the inotify descriptor (non-blocking); -1 when not watching */
    char names[ES_WATCH_MAX][NAME_MAX + 1]; /* base names a change is reported for */
    size_t n;
} es_watch_t;

void es_watch_init(es_watch_t *w);
/* Forgets the names watched so far (opening the inotify descriptor the first time). Returns 0 or a negative
 * errno. */
int es_watch_reset(es_watch_t *w);
/* Watches `path` (through its folder). Returns 0 or a negative errno (logged). */
int es_watch_add(es_watch_t *w, const char *path);
/* Reads the pending events; returns 1 when one names a watched file, else 0. */
int es_watch_read(es_watch_t *w);
void es_watch_close(es_watch_t *w);

#endif

/*
 * Waking this process's worker from any thread (a filter library's task finished): the worker installs how; the
 * layers below it only ask, so none of them calls up into the worker.
 */
#ifndef ES_WAKE_H
#define ES_WAKE_H

/* Installed by the worker (NULL: waking does nothing, as in `-t` or a test without a worker). */
void es_wake_install(void (*wake)(unsigned worker));
/* Wakes worker `worker` to run filter work; any thread, any time. */
void es_wake(unsigned worker);

#endif

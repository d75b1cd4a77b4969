/*
 * A worker process: what a child of the supervisor runs after the fork. It loads the filter libraries
 * itself (the supervisor never starts a Swift runtime, so it can always fork), serves the listening
 * sockets of its index, which it inherited, and talks to the supervisor over one socket:
 *
 *   worker -> supervisor   "R"            ready: every filter loaded and validated, accepting
 *                          "E<line>\n"    startup failed; the line says why (FILE:LINE: ...)
 *   supervisor -> worker   "D"            drain (es_worker_drain), then exit 0
 *                          "Q"            stop at once
 *   end of file            the supervisor is gone: stop at once (PR_SET_PDEATHSIG backs this up)
 */
#ifndef ES_WORKER_PROC_H
#define ES_WORKER_PROC_H

#include <sys/types.h>

#include "core/config.h"
#include "core/proc_slot.h"

typedef struct {
    const es_config_t *cfg;
    unsigned index;            /* worker index: which listening sockets, which executor */
    unsigned generation;
    pid_t supervisor;
    int ctl;                   /* this worker's end of the socket pair */
    int relay;                 /* write end of the pipe the supervisor relays as the worker's stdout/stderr */
    const int *listen_fds;     /* per listener of cfg: the socket of this index (every other inherited
                                * descriptor but ctl and relay is closed) */
    unsigned stats_block;      /* this worker's counters in the shared stats */
    es_proc_slot_t *slot;
} es_worker_proc_t;

/* Runs a worker process to its end; never returns. */
void es_worker_proc_main(const es_worker_proc_t *p) __attribute__((noreturn));

#endif

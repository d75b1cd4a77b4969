/*
 * The supervisor: the process `envoy-swift -c FILE` runs. It reads the config, opens every listening
 * socket (one SO_REUSEPORT socket per listener per worker index) and keeps them for its whole life, makes
 * the shared stats and slots, and forks the worker processes of a generation (worker_proc.h). It never
 * loads a filter library, so forking stays safe.
 *
 * It answers signals: SIGHUP reloads (a new generation; when all its workers are ready the old one drains;
 * if one fails the old one goes on), SIGTERM, SIGINT and SIGQUIT drain every worker and exit (a second
 * SIGTERM or SIGINT stops at once). A worker that dies is respawned in its slot, with a back-off when it
 * keeps dying, and the crash is blamed on the filter, hook and request its slot names; a filter that keeps
 * crashing workers is quarantined (crash_policy). With `watch`, a change to the config file or to a filter
 * library reloads.
 *
 * It is one thread around poll(2): signals come through a signalfd, a worker's messages and its
 * stdout/stderr through pipes, timers are poll's timeout. No libuv here: a child inherits nothing of a
 * loop it would have to undo.
 */
#ifndef ES_SUPERVISOR_H
#define ES_SUPERVISOR_H

typedef struct {
    const char *config_path;
    int watch;                 /* reload when the config file or a so_path changes */
} es_supervisor_opts_t;

/* Runs the proxy until it is stopped; returns the process's exit status (1: it could not start). */
int es_supervisor_run(const es_supervisor_opts_t *opts);

#endif

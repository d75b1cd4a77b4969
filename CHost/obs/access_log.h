/*
 * Access-log sinks of one worker: each configured log (a file, or "-" for the process's standard output) has a
 * buffer that lines are appended to on the request path; the buffer is written when it is full or every
 * 100 ms, by libuv's thread pool, so a slow disk never blocks the loop. Files are opened O_APPEND, so the
 * workers' whole-buffer writes never interleave inside a line. SIGUSR1 (relayed by the supervisor) makes every
 * worker write what it holds and reopen its files, for log rotation. A worker writes everything before it
 * exits.
 */
#ifndef ES_ACCESS_LOG_H
#define ES_ACCESS_LOG_H

#include <uv.h>

#include "core/config.h"
#include "obs/access_format.h"

typedef struct es_access_logs_s es_access_logs_t;

/* Opens the sinks of every listener's access_log on `loop` (stdout_fd: the process's real standard output, for
 * "-"). Returns NULL with one line in err when a file cannot be opened. */
es_access_logs_t *es_access_logs_open(uv_loop_t *loop, const es_config_t *cfg, int stdout_fd, char *err,
                                      size_t errlen);
/* Whether listener `listener` has any access log (the stream then records its line at the end). */
int es_access_logs_enabled(const es_access_logs_t *logs, size_t listener);
/* Renders the record with each of the listener's formats into its sink's buffer. */
void es_access_logs_write(es_access_logs_t *logs, size_t listener, const es_access_record_t *r);
/* Writes what is buffered and reopens every file (SIGUSR1). */
void es_access_logs_reopen(es_access_logs_t *logs);
/* Writes everything buffered, synchronously (the worker is exiting), and frees the sinks. Their handles are
 * closed on `loop`: run it once more to finish. */
void es_access_logs_close(es_access_logs_t *logs);

#endif

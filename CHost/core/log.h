/* Logging to stderr: one line per event, with a level and a tag ([main], [w0.g1] for worker 0 of generation 1, ...). */
#ifndef ES_LOG_H
#define ES_LOG_H

#include <stddef.h>

typedef enum {
    ES_LOG_DEBUG = 0,
    ES_LOG_INFO = 1,
    ES_LOG_WARN = 2,
    ES_LOG_ERROR = 3,
} es_log_level_t;

extern es_log_level_t es_log_level;
/* Where lines go: stderr, or (in a worker process, whose stderr the supervisor relays) the log itself. */
extern int es_log_fd;

/* Parses "debug", "info", "warn" or "error". Returns 0 or -1. */
int es_log_parse_level(const char *s, es_log_level_t *out);
/* Names the calling thread in its log lines, e.g. "w0". */
void es_log_set_tag(const char *tag);
/* Writes a line's "TIME LEVEL [tag] " prefix into line; returns its length (for lines relayed from workers). */
int es_log_prefix(char *line, size_t len, es_log_level_t level, const char *tag);
void es_log(es_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define es_debug(...) do { if (es_log_level <= ES_LOG_DEBUG) es_log(ES_LOG_DEBUG, __VA_ARGS__); } while (0)
#define es_info(...)  do { if (es_log_level <= ES_LOG_INFO) es_log(ES_LOG_INFO, __VA_ARGS__); } while (0)
#define es_warn(...)  es_log(ES_LOG_WARN, __VA_ARGS__)
#define es_error(...) es_log(ES_LOG_ERROR, __VA_ARGS__)

#endif

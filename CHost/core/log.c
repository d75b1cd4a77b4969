#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

es_log_level_t es_log_level = ES_LOG_INFO;
int es_log_fd = STDERR_FILENO;

static __thread char tag[16] = "main";
static const char *const names[] = {"debug", "info", "warn", "error"};

int es_log_parse_level(const char *s, es_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (es_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void es_log_set_tag(const char *t)
{
    snprintf(tag, sizeof(tag), "%s", t);
}

int es_log_prefix(char *line, size_t len, es_log_level_t level, const char *t)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    return snprintf(line, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s [%s] ", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), names[level], t);
}

void es_log(es_log_level_t level, const char *fmt, ...)
{
    if (level < es_log_level)
        return;
    char line[1024];
    int n = es_log_prefix(line, sizeof(line), level, tag);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line so lines from several workers never interleave. */
    ssize_t r = write(es_log_fd, line, len);
    (void)r;
}

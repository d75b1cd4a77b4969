/*
 * Access-log sinks (obs/access_log.h) on a real libuv loop and real files: the 100 ms flush, a burst of lines
 * all written in order, a reopen after a rename (rotation) losing nothing, "-" going to the descriptor given,
 * two listeners sharing one file, and close writing everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/config.h"
#include "core/stats.h"
#include "obs/access_log.h"

static char tmpdir[PATH_MAX];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/es-access-log-test.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    es_small_drain();
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A config of `nl` listeners, each with the given (path, format) logs; freed by free_cfg. */
typedef struct {
    es_config_t cfg;
    es_listener_config_t l[2];
    es_access_log_config_t a[2][2];
} cfg_t;

static void add_log(cfg_t *c, size_t listener, const char *path, const char *format)
{
    char err[128];
    es_listener_config_t *l = &c->l[listener];
    es_access_log_config_t *a = &c->a[listener][l->naccess_logs];
    a->path = strdup(path);
    a->format = es_access_format_text(format, err, sizeof(err));
    assert_non_null(a->format);
    a->line = 7;
    l->access_logs = c->a[listener];
    l->naccess_logs++;
    if (c->cfg.nlisteners <= listener)
        c->cfg.nlisteners = listener + 1;
    c->cfg.listeners = c->l;
    c->cfg.path = "conf.yaml";
}

static void free_cfg(cfg_t *c)
{
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < c->l[l].naccess_logs; i++) {
            free(c->a[l][i].path);
            es_access_format_free(c->a[l][i].format);
        }
}

static const char *path_of(const char *name)
{
    static char p[4][PATH_MAX + 64];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
    return p[i];
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *len = 0;
        return strdup("");
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return s;
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* A record whose %BYTES_SENT% is the line's number. */
static void write_n(es_access_logs_t *logs, size_t listener, uint64_t n)
{
    es_stream_info_t info = {.bytes_sent = n, .response_code = 200};
    es_access_record_t r = {.info = &info, .method = "GET", .method_len = 3};
    es_access_logs_write(logs, listener, &r);
}

/* Runs the loop for about `ms` milliseconds (a timer keeps it alive meanwhile). */
static void on_stop(uv_timer_t *t)
{
}
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_stop, ms, 0);
    while (uv_run(loop, UV_RUN_ONCE) != 0 && uv_is_active((uv_handle_t *)&t))
        ;
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Closes the logs and runs the loop to the end: nothing is left on it. */
static void close_all(uv_loop_t *loop, es_access_logs_t *logs)
{
    es_access_logs_close(logs);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Checks that `s` holds exactly the lines "GET <from>" .. "GET <to-1>", in order. */
static void expect_lines(const char *s, size_t len, uint64_t from, uint64_t to)
{
    const char *p = s, *end = s + len;
    for (uint64_t i = from; i < to; i++) {
        char want[32];
        int n = snprintf(want, sizeof(want), "GET %llu\n", (unsigned long long)i);
        if ((size_t)(end - p) < (size_t)n || memcmp(p, want, (size_t)n) != 0)
            fail_msg("line %llu: expected \"GET %llu\", got \"%.20s\"", (unsigned long long)(i - from),
                     (unsigned long long)i, p);
        p += n;
    }
    assert_true(p == end);
}

static void test_flush_on_timer(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cfg_t c = {0};
    const char *path = path_of("timer.log");
    add_log(&c, 0, path, "%REQ(:METHOD)% %BYTES_SENT%");
    char err[256];
    es_access_logs_t *logs = es_access_logs_open(&loop, &c.cfg, 1, err, sizeof(err));
    assert_non_null(logs);
    assert_true(es_access_logs_enabled(logs, 0));
    assert_false(es_access_logs_enabled(logs, 1));
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* created at open */
    assert_int_equal(st.st_mode & 0777, 0644);
    for (int i = 0; i < 10; i++)
        write_n(logs, 0, (uint64_t)i);
    /* Appended to the buffer only: the request path makes no write. */
    assert_int_equal(file_size(path), 0);
    /* The unref'd timer does not keep the loop alive. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    run_for(&loop, 60);
    assert_int_equal(file_size(path), 0);
    run_for(&loop, 250);
    size_t len;
    char *s = slurp(path, &len);
    expect_lines(s, len, 0, 10);
    free(s);
    close_all(&loop, logs);
    free_cfg(&c);
}

static void test_burst_in_order(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cfg_t c = {0};
    const char *path = path_of("burst.log");
    add_log(&c, 0, path, "%REQ(:METHOD)% %BYTES_SENT%");
    char err[256];
    es_access_logs_t *logs = es_access_logs_open(&loop, &c.cfg, 1, err, sizeof(err));
    assert_non_null(logs);
    uint64_t dropped = es_stats_get(ES_STAT_ACCESS_LOG_DROPPED);
    const uint64_t n = 200000;
    for (uint64_t i = 0; i < n; i++) {
        write_n(logs, 0, i);
        if (i % 5000 == 0)
            uv_run(&loop, UV_RUN_NOWAIT); /* the loop turns now and then, as it would between requests */
    }
    /* Full buffers were handed over before any timer: some of the burst is in the file already or on its way. */
    run_for(&loop, 20);
    assert_true(file_size(path) > 0);
    run_for(&loop, 300);
    size_t len;
    char *s = slurp(path, &len);
    expect_lines(s, len, 0, n);
    free(s);
    assert_int_equal(es_stats_get(ES_STAT_ACCESS_LOG_DROPPED), dropped);
    close_all(&loop, logs);
    free_cfg(&c);
}

static void test_reopen_after_rename(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cfg_t c = {0};
    const char *path = path_of("rotate.log"), *old = path_of("rotate.log.1");
    add_log(&c, 0, path, "%REQ(:METHOD)% %BYTES_SENT%");
    char err[256];
    es_access_logs_t *logs = es_access_logs_open(&loop, &c.cfg, 1, err, sizeof(err));
    assert_non_null(logs);
    /* Under load: lines before and after the rename and the reopen, some writes in flight when it comes. */
    uint64_t i = 0;
    for (; i < 50000; i++)
        write_n(logs, 0, i);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(rename(path, old), 0);
    for (; i < 60000; i++)
        write_n(logs, 0, i); /* still the old file's: written before the signal */
    es_access_logs_reopen(logs);
    uint64_t split = i;
    for (; i < 120000; i++) {
        write_n(logs, 0, i);
        if (i % 7000 == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    run_for(&loop, 250);
    size_t alen, blen;
    char *a = slurp(old, &alen), *b = slurp(path, &blen);
    expect_lines(a, alen, 0, split);
    expect_lines(b, blen, split, i);
    free(a);
    free(b);
    /* A second reopen with nothing buffered, then close. */
    es_access_logs_reopen(logs);
    write_n(logs, 0, i);
    close_all(&loop, logs);
    b = slurp(path, &blen);
    expect_lines(b, blen, split, i + 1);
    free(b);
    free_cfg(&c);
}

static void test_stdout_sink_writes_to_the_given_fd(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    cfg_t c = {0};
    add_log(&c, 0, "-", "%REQ(:METHOD)% %BYTES_SENT%");
    add_log(&c, 1, "-", "%REQ(:METHOD)% %BYTES_SENT%");
    char err[256];
    es_access_logs_t *logs = es_access_logs_open(&loop, &c.cfg, fds[1], err, sizeof(err));
    assert_non_null(logs);
    write_n(logs, 0, 1);
    write_n(logs, 1, 2);
    write_n(logs, 0, 3);
    run_for(&loop, 250);
    char buf[256];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = 0;
    assert_string_equal(buf, "GET 1\nGET 2\nGET 3\n");
    /* Reopen leaves "-" alone. */
    es_access_logs_reopen(logs);
    write_n(logs, 1, 4);
    close_all(&loop, logs);
    n = read(fds[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = 0;
    assert_string_equal(buf, "GET 4\n");
    /* The descriptor is the caller's: still open. */
    assert_true(fcntl(fds[1], F_GETFD) >= 0);
    close(fds[0]);
    close(fds[1]);
    free_cfg(&c);
}

static void test_shared_file_and_close_flushes(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cfg_t c = {0};
    const char *path = path_of("shared.log");
    char other[PATH_MAX + 80];
    snprintf(other, sizeof(other), "%s/./shared.log", tmpdir); /* the same file, spelt otherwise */
    add_log(&c, 0, path, "a %BYTES_SENT%");
    add_log(&c, 1, other, "b %BYTES_SENT%");
    add_log(&c, 1, path, "c %BYTES_SENT%");
    char err[256];
    es_access_logs_t *logs = es_access_logs_open(&loop, &c.cfg, 1, err, sizeof(err));
    assert_non_null(logs);
    for (uint64_t i = 0; i < 3; i++) {
        write_n(logs, 0, i);
        write_n(logs, 1, i);
    }
    /* No loop turn at all: close writes everything, in order, to the one file. */
    close_all(&loop, logs);
    size_t len;
    char *s = slurp(path, &len);
    assert_string_equal(s, "a 0\nb 0\nc 0\na 1\nb 1\nc 1\na 2\nb 2\nc 2\n");
    free(s);
    free_cfg(&c);
}

/* close with a write in flight: the rest follows it, nothing lost or reordered. */
static void test_close_during_write(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cfg_t c = {0};
    const char *path = path_of("inflight.log");
    add_log(&c, 0, path, "%REQ(:METHOD)% %BYTES_SENT%");
    char err[256];
    es_access_logs_t *logs = es_access_logs_open(&loop, &c.cfg, 1, err, sizeof(err));
    assert_non_null(logs);
    uint64_t i = 0;
    for (; i < 30000; i++)
        write_n(logs, 0, i); /* past 64 KiB: a write is handed to the pool */
    for (; i < 31000; i++)
        write_n(logs, 0, i);
    close_all(&loop, logs);
    size_t len;
    char *s = slurp(path, &len);
    expect_lines(s, len, 0, i);
    free(s);
    free_cfg(&c);
}

static void test_open_error(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cfg_t c = {0};
    add_log(&c, 0, path_of("ok.log"), "x");
    add_log(&c, 1, path_of("no/such/dir.log"), "x");
    char err[512], want[PATH_MAX + 200];
    assert_null(es_access_logs_open(&loop, &c.cfg, 1, err, sizeof(err)));
    snprintf(want, sizeof(want), "conf.yaml:7: listeners[1].access_log[0].path: cannot open %s: No such file or directory",
             path_of("no/such/dir.log"));
    assert_string_equal(err, want);
    assert_int_equal(uv_loop_close(&loop), 0);
    free_cfg(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flush_on_timer),
        cmocka_unit_test(test_burst_in_order),
        cmocka_unit_test(test_reopen_after_rename),
        cmocka_unit_test(test_stdout_sink_writes_to_the_given_fd),
        cmocka_unit_test(test_shared_file_and_close_flushes),
        cmocka_unit_test(test_close_during_write),
        cmocka_unit_test(test_open_error),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

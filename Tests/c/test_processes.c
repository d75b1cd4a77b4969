/*
 * The process model, driven as an operator would: the supervisor and its worker processes, `-t`, reloads
 * (SIGHUP and --watch) under keep-alive load, failed reloads, a rebuilt filter library, graceful drain and
 * stop, a crashing filter that costs one worker (sync hook, after an await, SIGSEGV), quarantine, respawn
 * back-off, counters across reloads and crashes, and no orphan when the supervisor is killed.
 * Real processes, real signals, real sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* SIGSEGV sent to a worker should kill it by the signal, as in a release build, not be turned into
 * AddressSanitizer's report and exit(1). */
static const char *const no_segv_handler[] = {"ASAN_OPTIONS=handle_segv=0", NULL};

/* The usual shape: `main` (filters, then every path to the upstream or a direct answer) and `admin` (stats). */
static void write_or_start(es_fixture_t *f, int start, const char *top, unsigned workers, const char *filters,
                           const char *route)
{
    const char *fmt = "%sworkers: %u\n"
                      "listeners:\n"
                      "  - name: main\n"
                      "    address: 127.0.0.1\n"
                      "    port: 0\n"
                      "    http_filters:\n%s"
                      "    routes:\n"
                      "      - match: { prefix: / }\n"
                      "        %s\n"
                      "  - name: admin\n"
                      "    address: 127.0.0.1\n"
                      "    port: 0\n"
                      "    routes:\n"
                      "      - match: { prefix: /stats }\n"
                      "        stats: {}\n"
                      "clusters:\n"
                      "  - name: backend\n"
                      "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n";
    char cluster[64];
    snprintf(cluster, sizeof cluster, "cluster: backend");
    if (start)
        es_proxy_start(&f->px, 2, fmt, top ? top : "", workers, filters ? filters : "", route ? route : cluster,
                       f->up.port);
    else
        es_proxy_write_config(&f->px, fmt, top ? top : "", workers, filters ? filters : "", route ? route : cluster,
                              f->up.port);
}

static uint64_t stat_of(es_fixture_t *f, const char *name)
{
    return es_stat(es_proxy_port(&f->px, "admin"), "/stats", name);
}

/* GET path on a new connection; the value of header `name` (malloc'd, "" when absent) and the status. */
static char *get_header(uint16_t port, const char *path, const char *name, int *status)
{
    es_response_t r;
    es_get(port, path, &r);
    const char *v = es_response_header(&r, name);
    char *out = strdup(v ? v : "");
    if (status)
        *status = r.status;
    es_response_dispose(&r);
    return out;
}

/* Sends one request that makes a worker die: the connection must end without an answer. */
static void crash_request(uint16_t port, const char *path, const char *value)
{
    es_client_t c;
    es_client_connect(&c, port);
    es_client_sendf(&c, "GET %s HTTP/1.1\r\nHost: t\r\nx-crash: %s\r\n\r\n", path, value);
    es_response_t r;
    if (es_try_client_read(&c, &r, NULL) == 0)
        fail_msg("a crashing request was answered %d", r.status);
    es_response_dispose(&r);
    es_client_close(&c);
}

/* ---- load: clients that keep sending while the test reloads or crashes workers ------------------ */

typedef struct {
    uint16_t port;
    int keepalive;                 /* one connection for many requests, or a new connection per request */
    const char *path;
    atomic_int *stop;
    unsigned long ok, failed, closes;
    unsigned long lost;            /* keep-alive connections that died under a request after serving some:
                                    * the connections of a worker that crashed */
    char why[300];                 /* the first failure */
} load_t;

static void load_fail(load_t *l, const char *what, const char *detail)
{
    if (l->failed++ == 0)
        snprintf(l->why, sizeof l->why, "%s: %s", what, detail);
}

static void *load_run(void *arg)
{
    load_t *l = arg;
    es_client_t c;
    int connected = 0;
    unsigned long served = 0; /* on this connection */
    while (!atomic_load(l->stop)) {
        if (!connected) {
            if (es_try_client_connect(&c, l->port) != 0) {
                load_fail(l, "connect", c.error);
                usleep(1000);
                continue;
            }
            connected = 1;
            served = 0;
        }
        es_response_t r;
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", l->path);
        memset(&r, 0, sizeof r);
        if (es_try_client_send(&c, req, (size_t)n) != 0 || es_try_client_read(&c, &r, NULL) != 0) {
            es_response_dispose(&r);
            if (l->keepalive && served > 0)
                l->lost++; /* its worker died: counted, and a new connection must then be served */
            else
                load_fail(l, "request", c.error);
            es_client_close(&c);
            connected = 0;
            continue;
        }
        served++;
        if (r.status != 200) {
            char st[32];
            snprintf(st, sizeof st, "status %d", r.status);
            load_fail(l, "response", st);
        } else {
            l->ok++;
        }
        int again = l->keepalive && r.keep_alive;
        l->closes += !r.keep_alive;
        es_response_dispose(&r);
        if (!again) {
            es_client_close(&c);
            connected = 0;
        }
    }
    if (connected)
        es_client_close(&c);
    return NULL;
}

typedef struct {
    pthread_t t[8];
    load_t l[8];
    size_t n;
    atomic_int stop;
} loadgen_t;

/* The load running now, if any: a test that fails leaves through longjmp, and the teardown must stop its
 * clients before the fixture goes (they use its ports, and the generator lives in the test's frame). */
static loadgen_t *running_load;

static void load_join(loadgen_t *g)
{
    atomic_store(&g->stop, 1);
    for (size_t i = 0; i < g->n; i++)
        pthread_join(g->t[i], NULL);
    running_load = NULL;
}

static int teardown(void **state)
{
    if (running_load != NULL)
        load_join(running_load);
    return es_fixture_teardown(state);
}

static void load_start(loadgen_t *g, size_t n, uint16_t port, int keepalive, const char *path)
{
    memset(g, 0, sizeof *g);
    running_load = g;
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        g->l[i] = (load_t){.port = port, .keepalive = keepalive, .path = path, .stop = &g->stop};
        assert_int_equal(pthread_create(&g->t[i], NULL, load_run, &g->l[i]), 0);
    }
}

/* Stops the clients; asserts none failed; returns the requests answered. `lost` (may be NULL: then none may
 * be lost) gets the keep-alive connections that died under a request. */
static unsigned long load_stop_lost(loadgen_t *g, es_fixture_t *f, unsigned long *closes, unsigned long *lost)
{
    load_join(g);
    unsigned long ok = 0, failed = 0, cl = 0, lo = 0;
    const char *why = "";
    for (size_t i = 0; i < g->n; i++) {
        ok += g->l[i].ok;
        cl += g->l[i].closes;
        lo += g->l[i].lost;
        if (g->l[i].failed && !failed)
            why = g->l[i].why;
        failed += g->l[i].failed;
    }
    if (failed) {
        es_proxy_print_log(&f->px);
        fail_msg("%lu of %lu requests failed; the first: %s", failed, ok + failed, why);
    }
    if (lo > 0 && lost == NULL) {
        es_proxy_print_log(&f->px);
        fail_msg("%lu keep-alive connections died under a request", lo);
    }
    if (closes)
        *closes = cl;
    if (lost)
        *lost = lo;
    return ok;
}

static unsigned long load_stop(loadgen_t *g, es_fixture_t *f, unsigned long *closes)
{
    return load_stop_lost(g, f, closes, NULL);
}

/* ---- -t ------------------------------------------------------------------------------------- */

static void test_check_flag(void **state)
{
    (void)state;
    char *good = es_swift_filter_yaml("rw", "header_rewrite", "{ response: { set: { x-a: b } } }", NULL);
    es_run_t r;
    es_run_check(&r,
                 "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 1\n    http_filters:\n%s"
                 "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
                 good);
    free(good);
    assert_true(r.exited);
    assert_int_equal(r.exit_code, 0);
    char want[700];
    snprintf(want, sizeof want, "%s: ok\n", r.config_path);
    assert_string_equal(r.out, want); /* port 1 was not bound: -t serves nothing */
    es_run_dispose(&r);

    /* A filter that refuses its config, an unknown plugin, a missing library: one line, exit 1. */
    const char *bad[][3] = {
        {"async_sleep", "{ ms: -1 }", "ms must not be negative"},
        {"nosuch", "{}", "unknown plugin \"nosuch\""},
    };
    for (size_t i = 0; i < 3; i++) {
        char *flt = i < 2 ? es_swift_filter_yaml("f1", bad[i][0], bad[i][1], NULL)
                          : strdup("      - name: f1\n        so_path: /nonexistent/libnone.so\n"
                                   "        plugin_name: noop\n");
        es_run_check(&r,
                     "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s"
                     "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
                     flt);
        free(flt);
        assert_true(r.exited);
        assert_int_equal(r.exit_code, 1);
        const char *needle = i < 2 ? bad[i][2] : "cannot load /nonexistent/libnone.so";
        if (strstr(r.err, needle) == NULL || strstr(r.err, "config.yaml:6: listeners[0].http_filters[0]") == NULL)
            fail_msg("expected \"%s\" in: %s", needle, r.err);
        char *nl = strchr(r.err, '\n');
        assert_true(nl != NULL && nl[1] == '\0');
        assert_string_equal(r.out, "");
        es_run_dispose(&r);
    }
}

/* ---- reloads ------------------------------------------------------------------------------------ */

static void rewrite_config(es_fixture_t *f, int start, unsigned version)
{
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{ response: { set: { x-version: \"%u\" } } }", version);
    char *flt = es_swift_filter_yaml("rw", "header_rewrite", cfg, NULL);
    write_or_start(f, start, NULL, 2, flt, NULL);
    free(flt);
}

/* 10 reloads that change a filter's config, under keep-alive load: no request fails, each change is seen. */
static void test_reload_under_keepalive_load(void **state)
{
    es_fixture_t *f = *state;
    rewrite_config(f, 1, 0);
    static loadgen_t g;
    load_start(&g, 6, f->px.port, 1, "/load");
    usleep(200 * 1000);
    for (unsigned v = 1; v <= 10; v++) {
        rewrite_config(f, 0, v);
        assert_int_equal(es_proxy_reload(&f->px), 1);
        /* The old generation may accept a connection or two more until it has read its drain order (a few
         * ms after the "serving" line): the change is there within a second. */
        char want[16];
        snprintf(want, sizeof want, "%u", v);
        uint64_t deadline = es_now_ms() + 1000;
        char *seen = NULL;
        do {
            free(seen);
            seen = get_header(f->px.port, "/check", "x-version", NULL);
        } while (strcmp(seen, want) != 0 && es_now_ms() < deadline && usleep(5 * 1000) == 0);
        assert_string_equal(seen, want);
        free(seen);
        usleep(150 * 1000);
    }
    unsigned long closes;
    unsigned long ok = load_stop(&g, f, &closes);
    if (ok < 300)
        fail_msg("only %lu requests in the load", ok);
    /* The drains answered some requests with Connection: close and the clients came back. */
    assert_true(closes >= 1);
    assert_int_equal(stat_of(f, "server.reloads"), 10);
    assert_int_equal(stat_of(f, "server.generation"), 11);
    assert_int_equal(stat_of(f, "server.reload_failures"), 0);
    assert_int_equal(stat_of(f, "server.workers"), 2);
    pid_t pids[8];
    size_t n = es_proxy_workers(&f->px, pids, 8);
    assert_true(n >= 2); /* old generations may still be finishing their drain */
    es_proxy_stop(&f->px);
}

/* The only worker of the first generation dies while it starts: the supervisor says why in one line and exits 1,
 * cleanly (it once freed the generation twice on this path). */
static void test_startup_crash_exits_cleanly(void **state)
{
    (void)state;
    es_run_t run;
    es_run_config(&run,
                  "workers: 1\n"
                  "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n"
                  "      - name: rw\n        so_path: %s\n        plugin_name: crash\n"
                  "        plugin_config: { trap_at_config: true }\n"
                  "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
                  es_swift_filter_lib());
    assert_true(run.exited);
    if (run.exit_code != 1 || strstr(run.err, "AddressSanitizer") != NULL ||
        strstr(run.err, "while starting in filter \"rw\" (plugin crash), hook configuration") == NULL)
        fail_msg("exit %d, stderr:\n%s", run.exit_code, run.err);
    es_run_dispose(&run);
}

/* Reloads that cannot work leave the serving generation alone, and each is counted. */
static void test_failed_reloads_keep_serving(void **state)
{
    es_fixture_t *f = *state;
    rewrite_config(f, 1, 1);
    const char *bad[] = {
        "      - name: rw\n        so_path: %s\n        plugin_name: nosuch\n",
        "      - name: rw\n        so_path: %s\n        plugin_name: async_sleep\n        plugin_config: { ms: -5 }\n",
        "      - name: rw\n        so_path: /nonexistent/libgone.so%s\n        plugin_name: noop\n",
        /* A library that traps while a new worker starts: the new generation dies, the old one serves on. */
        "      - name: rw\n        so_path: %s\n        plugin_name: crash\n        plugin_config: { trap_at_config: true }\n",
    };
    const char *why[] = {"unknown plugin \"nosuch\"", "ms must not be negative", "cannot load /nonexistent/libgone.so",
                         "while starting in filter \"rw\" (plugin crash), hook configuration; generation 1 serves on"};
    for (size_t i = 0; i < 4; i++) {
        char flt[600];
        snprintf(flt, sizeof flt, bad[i], i == 2 ? "" : es_swift_filter_lib());
        write_or_start(f, 0, NULL, 2, flt, NULL);
        assert_int_equal(es_proxy_reload(&f->px), 0);
        if (es_proxy_log_count(&f->px, why[i]) < 1) {
            es_proxy_print_log(&f->px);
            fail_msg("no \"%s\" in the log", why[i]);
        }
        char *seen = get_header(f->px.port, "/", "x-version", NULL);
        assert_string_equal(seen, "1");
        free(seen);
    }
    /* Not even YAML. */
    es_proxy_write_config(&f->px, "listeners: [\n");
    assert_int_equal(es_proxy_reload(&f->px), 0);
    assert_int_equal(stat_of(f, "server.reload_failures"), 5);
    assert_int_equal(stat_of(f, "server.generation"), 1);
    assert_int_equal(stat_of(f, "server.workers"), 2);
    /* The failed generations' workers are gone; a good config still reloads. */
    pid_t pids[8];
    assert_int_equal(es_proxy_workers(&f->px, pids, 8), 2);
    rewrite_config(f, 0, 2);
    assert_int_equal(es_proxy_reload(&f->px), 1);
    char *seen = get_header(f->px.port, "/", "x-version", NULL);
    assert_string_equal(seen, "2");
    free(seen);
    es_proxy_stop(&f->px);
}

static void copy_file(const char *from, const char *to)
{
    /* A new file renamed over the old path, as a build must do: a library mapped by a running worker is
     * never rewritten in place. */
    char tmp[700], cmd[2000];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, tmp);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rename(tmp, to), 0);
}

static void answer_config(es_fixture_t *f, int start, const char *lib)
{
    char flt[800];
    snprintf(flt, sizeof flt, "      - name: answer\n        so_path: %s\n        plugin_name: answer\n", lib);
    write_or_start(f, start, NULL, 2, flt, NULL);
}

static char *answer_body(uint16_t port)
{
    es_response_t r;
    es_get(port, "/", &r);
    assert_int_equal(r.status, 200);
    char *b = strdup(r.body);
    es_response_dispose(&r);
    return b;
}

/* Two builds of one C filter library (Tests/fixtures/answer_filter_lib.c: "build a", "build b"), and the
 * path in a temp folder where the proxy loads it from: build a first. */
typedef struct {
    char a[600], b[600], dir[64], lib[700];
} answer_lib_t;

static void answer_lib_begin(answer_lib_t *al)
{
    const char *build = getenv("ES_BUILD") ? getenv("ES_BUILD") : "build";
    snprintf(al->a, sizeof al->a, "%s/fixtures/libanswer_a.so", build);
    snprintf(al->b, sizeof al->b, "%s/fixtures/libanswer_b.so", build);
    snprintf(al->dir, sizeof al->dir, "/tmp/es-lib-XXXXXX");
    assert_non_null(mkdtemp(al->dir));
    snprintf(al->lib, sizeof al->lib, "%s/libanswer.so", al->dir);
    copy_file(al->a, al->lib);
}

static void answer_lib_end(answer_lib_t *al)
{
    unlink(al->lib);
    rmdir(al->dir);
}

/* A library rebuilt at the same path is what the next generation runs. */
static void test_rebuilt_library_is_served_after_reload(void **state)
{
    es_fixture_t *f = *state;
    answer_lib_t al;
    answer_lib_begin(&al);
    answer_config(f, 1, al.lib);
    char *body = answer_body(f->px.port);
    assert_string_equal(body, "build a\n");
    free(body);
    copy_file(al.b, al.lib);
    assert_int_equal(es_proxy_reload(&f->px), 1);
    body = answer_body(f->px.port);
    assert_string_equal(body, "build b\n");
    free(body);
    es_proxy_stop(&f->px);
    answer_lib_end(&al);
}

/* --watch: renaming a rebuilt library over its path reloads by itself, without a dropped request. */
static void test_watch_reloads_when_the_library_changes(void **state)
{
    es_fixture_t *f = *state;
    answer_lib_t al;
    answer_lib_begin(&al);
    static const char *const args[] = {"--watch", NULL};
    f->px.extra_args = args;
    answer_config(f, 1, al.lib);
    static loadgen_t g;
    load_start(&g, 4, f->px.port, 1, "/");
    usleep(200 * 1000);
    copy_file(al.b, al.lib);
    uint64_t deadline = es_now_ms() + 10000;
    char *body = NULL;
    for (;;) {
        free(body);
        body = answer_body(f->px.port);
        if (strcmp(body, "build b\n") == 0 || es_now_ms() > deadline)
            break;
        usleep(20 * 1000);
    }
    assert_string_equal(body, "build b\n");
    free(body);
    assert_true(es_proxy_log_count(&f->px, "a watched file changed: reloading") == 1);
    /* And an edit of the config file itself. */
    answer_config(f, 0, al.lib);
    assert_int_equal(es_proxy_wait_log(&f->px, "generation 3 serving", 1, 10000), 1);
    load_stop(&g, f, NULL);
    es_proxy_stop(&f->px);
    answer_lib_end(&al);
}

/* A SIGHUP while a new generation is still starting is not lost: that reload runs once it is ready. */
static void test_a_reload_during_a_reload_runs_after_it(void **state)
{
    es_fixture_t *f = *state;
    char *slow = es_swift_filter_yaml("slow", "crash", "{ config_delay_ms: 600 }", NULL);
    write_or_start(f, 1, NULL, 1, slow, NULL);
    kill(f->px.pid, SIGHUP);
    assert_int_equal(es_proxy_wait_log(&f->px, "SIGHUP: reloading", 1, 5000), 1);
    kill(f->px.pid, SIGHUP); /* generation 2 takes 600 ms to start */
    assert_int_equal(es_proxy_wait_log(&f->px, "generation 3 serving", 1, 15000), 1);
    assert_int_equal(es_proxy_log_count(&f->px, "another reload was asked for meanwhile: reloading"), 1);
    assert_int_equal(es_proxy_log_count(&f->px, "generation 2 serving"), 1);
    assert_int_equal(stat_of(f, "server.reloads"), 2);
    assert_int_equal(stat_of(f, "server.generation"), 3);
    free(slow);
    es_proxy_stop(&f->px);
}

/* workers and listeners change with a reload: sockets are added, and closed once nothing serves them. */
static void test_reload_changes_workers_and_listeners(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, NULL, 2, NULL, NULL);
    uint16_t port = f->px.port;
    es_proxy_write_config(&f->px,
                          "workers: 3\n"
                          "listeners:\n"
                          "  - { name: main, address: 127.0.0.1, port: 0, routes: [ { match: { prefix: / }, cluster: backend } ] }\n"
                          "  - { name: admin, address: 127.0.0.1, port: 0, routes: [ { match: { prefix: /stats }, stats: {} } ] }\n"
                          "  - { name: extra, address: 127.0.0.1, port: 0, routes: [ { match: { prefix: / }, direct_response: { status: 200, body: \"extra\\n\" } } ] }\n"
                          "clusters:\n"
                          "  - { name: backend, endpoints: [ { address: 127.0.0.1, port: %u } ] }\n",
                          f->up.port);
    assert_int_equal(es_proxy_reload(&f->px), 1);
    assert_int_equal(es_proxy_wait_log(&f->px, "listener \"extra\" listening on", 1, 1000), 1);
    char *log = es_proxy_log(&f->px);
    const char *at = strstr(log, "listener \"extra\" listening on 127.0.0.1:");
    assert_non_null(at);
    uint16_t extra = (uint16_t)atoi(at + strlen("listener \"extra\" listening on 127.0.0.1:"));
    free(log);
    es_response_t r;
    es_get(extra, "/", &r);
    assert_string_equal(r.body, "extra\n");
    es_response_dispose(&r);
    es_get(port, "/x", &r); /* the same port as before */
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    pid_t pids[8];
    uint64_t deadline = es_now_ms() + 5000;
    while (es_proxy_workers(&f->px, pids, 8) != 3 && es_now_ms() < deadline)
        usleep(10 * 1000);
    assert_int_equal(es_proxy_workers(&f->px, pids, 8), 3);
    assert_int_equal(stat_of(f, "server.workers"), 3);

    /* Back to one worker, without `extra`: its port closes. */
    write_or_start(f, 0, NULL, 1, NULL, NULL);
    assert_int_equal(es_proxy_reload(&f->px), 1);
    deadline = es_now_ms() + 5000;
    while (es_proxy_workers(&f->px, pids, 8) != 1 && es_now_ms() < deadline)
        usleep(10 * 1000);
    assert_int_equal(es_proxy_workers(&f->px, pids, 8), 1);
    es_client_t c;
    assert_int_not_equal(es_try_client_connect(&c, extra), 0);
    es_get(port, "/y", &r);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

/* ---- drain and stop ---------------------------------------------------------------------------- */

/* An idle keep-alive connection is not closed the instant a drain begins: a request sent on it within the
 * grace is answered (with Connection: close); one that stays idle is closed after the grace. */
static void test_drain_closes_idle_connections_after_a_grace(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, NULL, 1, NULL, NULL);
    es_client_t a, b;
    es_response_t r;
    es_client_connect(&a, f->px.port);
    es_client_connect(&b, f->px.port);
    es_client_sendf(&a, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&a, &r, NULL);
    assert_true(r.keep_alive);
    es_response_dispose(&r);
    es_client_sendf(&b, "GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&b, &r, NULL);
    es_response_dispose(&r);

    write_or_start(f, 0, NULL, 1, NULL, NULL);
    assert_int_equal(es_proxy_reload(&f->px), 1);
    uint64_t t0 = es_now_ms();
    usleep(300 * 1000);
    assert_int_equal(es_client_wait_closed(&a, 0), 0);
    es_client_sendf(&a, "GET /a2 HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&a, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_false(r.keep_alive); /* Connection: close from the draining worker */
    es_response_dispose(&r);
    assert_int_equal(es_client_wait_closed(&a, 1000), 1);
    es_client_close(&a);

    assert_int_equal(es_client_wait_closed(&b, 400), 0); /* still inside the grace (~700 ms after the drain) */
    assert_int_equal(es_client_wait_closed(&b, 3000), 1);
    uint64_t took = es_now_ms() - t0;
    if (took < 950 || took > 2500)
        fail_msg("the idle connection closed %llu ms after the reload (grace 1 s)", (unsigned long long)took);
    es_client_close(&b);
    es_proxy_stop(&f->px);
}

typedef struct {
    uint16_t port;
    const char *path;
    const char *ca;                /* TLS when set */
    int status;
    int keep_alive;
    char error[256];
} inflight_t;

static void *inflight_run(void *arg)
{
    inflight_t *q = arg;
    es_client_t c;
    int err = q->ca ? es_try_client_connect_tls(&c, q->port, q->ca, "localhost") : es_try_client_connect(&c, q->port);
    if (err) {
        snprintf(q->error, sizeof q->error, "connect: %.200s", c.error);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", q->path);
    es_response_t r;
    memset(&r, 0, sizeof r);
    if (es_try_client_send(&c, req, (size_t)n) != 0 || es_try_client_read(&c, &r, NULL) != 0) {
        snprintf(q->error, sizeof q->error, "%s", c.error);
        es_response_dispose(&r);
    } else {
        q->status = r.status;
        q->keep_alive = r.keep_alive;
        es_response_dispose(&r);
    }
    es_client_close(&c);
    return NULL;
}

/* A stop signal (SIGTERM, SIGINT, SIGQUIT) with requests in flight: every one completes (with Connection:
 * close), the port closes at once, and the proxy exits 0 when they are done. */
static void stop_completes_in_flight(es_fixture_t *f, int sig, const char *path, const char *ca, int start_ms)
{
    enum { N = 5 };
    pthread_t t[N];
    inflight_t q[N];
    uint16_t port = f->px.port;
    for (int i = 0; i < N; i++) {
        q[i] = (inflight_t){.port = port, .path = path, .ca = ca};
        assert_int_equal(pthread_create(&t[i], NULL, inflight_run, &q[i]), 0);
    }
    usleep((useconds_t)start_ms * 1000);
    kill(f->px.pid, sig);
    usleep(150 * 1000);
    es_client_t c;
    assert_int_not_equal(es_try_client_connect(&c, port), 0); /* the listening socket is closed */
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (q[i].error[0] != '\0') {
            es_proxy_print_log(&f->px);
            fail_msg("request %d in flight failed: %s", i, q[i].error);
        }
        assert_int_equal(q[i].status, 200);
        assert_false(q[i].keep_alive);
    }
    es_proxy_wait_exit(&f->px, 10000);
}

static void test_sigterm_completes_requests_in_flight(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, NULL, 2, NULL, NULL);
    stop_completes_in_flight(f, SIGTERM, "/delay?ms=1000", NULL, 300);
}

static void test_sigint_and_sigquit_drain_too(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, NULL, 1, NULL, NULL);
    stop_completes_in_flight(f, SIGINT, "/delay?ms=600", NULL, 200);
    assert_int_equal(es_proxy_log_count(&f->px, "received SIGINT: draining"), 1);
    write_or_start(f, 1, NULL, 1, NULL, NULL);
    stop_completes_in_flight(f, SIGQUIT, "/delay?ms=600", NULL, 200);
    assert_int_equal(es_proxy_log_count(&f->px, "received SIGQUIT: draining"), 1);
}

static void test_sigterm_completes_tls_requests_in_flight(void **state)
{
    es_fixture_t *f = *state;
    es_tls_certs_t certs;
    es_tls_make_certs(NULL, &certs);
    es_proxy_start(&f->px, 1,
                   "workers: 2\n"
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    tls: { cert: %s, key: %s }\n"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   certs.server_cert, certs.server_key, f->up.port);
    stop_completes_in_flight(f, SIGTERM, "/delay?ms=1000", certs.ca_cert, 400);
}

static void test_sigterm_waits_for_async_filters(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("sleep", "async_sleep", "{ ms: 1000 }", NULL);
    write_or_start(f, 1, NULL, 2, flt, NULL);
    free(flt);
    stop_completes_in_flight(f, SIGTERM, "/held", NULL, 300);
    assert_true(es_proxy_log_count(&f->px, "drain_timeout") == 0);
}

/* A second SIGTERM does not wait for anything. */
static void test_second_sigterm_stops_at_once(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, NULL, 2, NULL, NULL);
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /delay?ms=8000 HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(200 * 1000);
    kill(f->px.pid, SIGTERM);
    usleep(200 * 1000);
    kill(f->px.pid, SIGTERM);
    uint64_t took = es_proxy_wait_exit(&f->px, 5000);
    if (took > 1500)
        fail_msg("the second SIGTERM took %llu ms", (unsigned long long)took);
    assert_int_equal(es_client_wait_closed(&c, 1000), 1);
    es_client_close(&c);
}

/* drain_timeout bounds a drain: what is still open then is closed, and the exit is still 0. */
static void test_drain_timeout_closes_what_is_left(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, "drain_timeout: 1s\n", 1, NULL, NULL);
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /delay?ms=8000 HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(200 * 1000);
    kill(f->px.pid, SIGTERM);
    uint64_t took = es_proxy_wait_exit(&f->px, 5000);
    if (took < 950 || took > 3000)
        fail_msg("stopped %llu ms after SIGTERM with drain_timeout: 1s", (unsigned long long)took);
    assert_int_equal(es_client_wait_closed(&c, 1000), 1);
    es_client_close(&c);
    assert_true(es_proxy_log_count(&f->px, "drain_timeout: closing the 1 connection still open") == 1);
}

/* The supervisor killed outright: its workers notice and go; nothing keeps the port. */
static void test_supervisor_killed_leaves_no_orphans(void **state)
{
    es_fixture_t *f = *state;
    write_or_start(f, 1, NULL, 2, NULL, NULL);
    pid_t pids[8];
    size_t n = es_proxy_workers(&f->px, pids, 8);
    assert_int_equal(n, 2);
    uint16_t port = f->px.port;
    kill(f->px.pid, SIGKILL);
    int st;
    waitpid(f->px.pid, &st, 0);
    f->px.pid = 0;
    uint64_t deadline = es_now_ms() + 3000;
    for (size_t i = 0; i < n; i++) {
        while (kill(pids[i], 0) == 0 && es_now_ms() < deadline) {
            char path[64], buf[256];
            snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
            FILE *fp = fopen(path, "r");
            size_t len = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
            if (fp)
                fclose(fp);
            buf[len] = '\0';
            char *rp = strrchr(buf, ')');
            if (rp == NULL || rp[2] == 'Z')
                break; /* gone, or a zombie waiting for init */
            usleep(10 * 1000);
        }
        assert_true(es_now_ms() < deadline);
    }
    es_client_t c;
    assert_int_not_equal(es_try_client_connect(&c, port), 0);
}

/* ---- crashes ----------------------------------------------------------------------------------- */

static void crash_setup(es_fixture_t *f, const char *plugin, const char *policy, const char *const *env)
{
    char extra[200] = "";
    if (policy)
        snprintf(extra, sizeof extra, "        crash_policy: %s\n", policy);
    char *flt = es_swift_filter_yaml("boom", plugin, "{ reply: \"alive\\n\" }", extra);
    f->px.extra_env = env;
    write_or_start(f, 1, NULL, 2, flt, "direct_response: { status: 200, body: \"route\\n\" }");
    free(flt);
}

static size_t log_count(es_fixture_t *f, const char *s)
{
    return es_proxy_log_count(&f->px, s);
}

/* Waits until `n` respawned workers are back; returns the ms it took from `since`. */
static uint64_t wait_back(es_fixture_t *f, size_t n, uint64_t since)
{
    if (!es_proxy_wait_log(&f->px, "is back (pid", n, 10000)) {
        es_proxy_print_log(&f->px);
        fail_msg("worker not back");
    }
    return es_now_ms() - since;
}

/* A trap in a filter costs its worker, not the proxy: the other worker serves every request meanwhile, the
 * slot is back within 200 ms, and the log says which filter, hook and request. */
static void crash_contained(es_fixture_t *f, const char *plugin, const char *hook)
{
    crash_setup(f, plugin, NULL, NULL);
    /* Keep-alive clients, spread over both workers by the kernel: those on the crashing worker lose their
     * connection (once each); every other request, and every new connection, must be served. */
    static loadgen_t g;
    load_start(&g, 6, f->px.port, 1, "/ok");
    usleep(200 * 1000);
    uint64_t t0 = es_now_ms();
    crash_request(f->px.port, "/boom?x=1", "1");
    uint64_t back = wait_back(f, 1, t0);
    usleep(200 * 1000);
    unsigned long lost;
    unsigned long ok = load_stop_lost(&g, f, NULL, &lost);
    assert_true(ok > 20);
    assert_true(lost <= 6);
    if (back > 200) {
        es_proxy_print_log(&f->px);
        fail_msg("the worker was back %llu ms after the crash", (unsigned long long)back);
    }
    char want[300];
    snprintf(want, sizeof want, "in filter \"boom\" (plugin %s), hook %s, request \"GET /boom?x=1\"; respawning", plugin,
             hook);
    if (log_count(f, want) != 1 || log_count(f, "(pid ") == 0 || log_count(f, "killed by signal") != 1) {
        es_proxy_print_log(&f->px);
        fail_msg("no crash line with: %s", want);
    }
    assert_int_equal(stat_of(f, "server.worker_crashes"), 1);
    assert_int_equal(stat_of(f, "filter.boom.crashes"), 1);
    assert_int_equal(stat_of(f, "server.workers"), 2);
    es_response_t r;
    es_get(f->px.port, "/after", &r);
    assert_string_equal(r.body, "alive\n");
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_trap_in_a_sync_hook_costs_one_worker(void **state)
{
    crash_contained(*state, "crash", "request headers");
}

static void test_trap_after_an_await_costs_one_worker(void **state)
{
    crash_contained(*state, "crash_async", "request headers (after an await)");
}

/* The Swift runtime's own words reach the log, tagged with the worker. */
static void test_fatal_error_line_reaches_the_log(void **state)
{
    es_fixture_t *f = *state;
    crash_setup(f, "crash", NULL, NULL);
    crash_request(f->px.port, "/fatal", "fatal");
    wait_back(f, 1, es_now_ms());
    char *log = es_proxy_log(&f->px);
    const char *at = strstr(log, "Fatal error: the crash filter was asked to crash");
    assert_non_null(at);
    const char *line = at;
    while (line > log && line[-1] != '\n')
        line--;
    /* "TIME info  [w0.g1] ...Fatal error: ..." */
    const char *tag = strstr(line, "[w");
    assert_true(tag != NULL && tag < at && strstr(tag, ".g1] ") != NULL && strstr(tag, ".g1] ") < at);
    free(log);
    es_proxy_stop(&f->px);
}

/* SIGSEGV from outside: the same containment, the signal named. */
static void test_sigsegv_to_a_worker_is_respawned(void **state)
{
    es_fixture_t *f = *state;
    crash_setup(f, "crash", NULL, no_segv_handler);
    pid_t pids[8];
    assert_int_equal(es_proxy_workers(&f->px, pids, 8), 2);
    static loadgen_t g;
    load_start(&g, 6, f->px.port, 1, "/ok");
    usleep(100 * 1000);
    uint64_t t0 = es_now_ms();
    kill(pids[0], SIGSEGV);
    uint64_t back = wait_back(f, 1, t0);
    usleep(200 * 1000);
    unsigned long lost;
    load_stop_lost(&g, f, NULL, &lost);
    assert_true(lost <= 6);
    assert_true(back <= 200);
    /* The signal may land while the worker runs the filter: then the line names it before "; respawning". */
    char want[120];
    snprintf(want, sizeof want, "(pid %d, generation 1) killed by signal 11 (SIGSEGV)", (int)pids[0]);
    char *log = es_proxy_log(&f->px);
    const char *at = strstr(log, want);
    const char *eol = at ? strchr(at, '\n') : NULL;
    const char *resp = at ? strstr(at, "; respawning after 0 ms") : NULL;
    if (at == NULL || resp == NULL || (eol != NULL && resp > eol) || strstr(at + 1, want) != NULL) {
        free(log);
        es_proxy_print_log(&f->px);
        fail_msg("no one line with: %s ... ; respawning after 0 ms", want);
    }
    free(log);
    pid_t now[8];
    assert_int_equal(es_proxy_workers(&f->px, now, 8), 2);
    assert_true(now[0] != pids[0] && now[1] != pids[0]);
    es_proxy_stop(&f->px);
}

/* `n` requests that each cost a worker, each waited for until its worker is back. */
static void crash_workers(es_fixture_t *f, int n)
{
    for (int i = 1; i <= n; i++) {
        crash_request(f->px.port, "/boom", "1");
        wait_back(f, (size_t)i, es_now_ms());
    }
}

/* Requests carrying the crash header, on new connections (whichever worker each lands on), all get this. */
static void expect_crash_requests_answered(es_fixture_t *f, int status, const char *body)
{
    for (int i = 0; i < 4; i++) {
        es_client_t c;
        es_response_t r;
        es_client_connect(&c, f->px.port);
        es_client_sendf(&c, "GET /q%d HTTP/1.1\r\nHost: t\r\nx-crash: 1\r\n\r\n", i);
        es_client_read(&c, &r, NULL);
        assert_int_equal(r.status, status);
        assert_string_equal(r.body, body);
        es_response_dispose(&r);
        es_client_close(&c);
    }
}

/* crash_policy: three crashes within the window quarantine the filter; reject answers 503 naming it, and a
 * successful reload clears it. */
static void test_quarantine_rejects_then_a_reload_clears_it(void **state)
{
    es_fixture_t *f = *state;
    crash_setup(f, "crash", "{ quarantine_after: 3, window: 60s, then: reject }", NULL);
    crash_workers(f, 3);
    assert_int_equal(log_count(f, "filter \"boom\" (plugin crash) quarantined: 3 crashes within 60000 ms"), 1);
    expect_crash_requests_answered(f, 503, "filter \"boom\" is quarantined: it kept crashing workers\n");
    es_response_t r;
    assert_int_equal(stat_of(f, "filter.boom.crashes"), 3);
    assert_int_equal(stat_of(f, "filter.boom.quarantined"), 1);
    assert_int_equal(stat_of(f, "server.worker_crashes"), 3);

    assert_int_equal(es_proxy_reload(&f->px), 1);
    es_get(f->px.port, "/after", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "alive\n");
    es_response_dispose(&r);
    assert_int_equal(stat_of(f, "filter.boom.quarantined"), 0);
    assert_int_equal(stat_of(f, "filter.boom.crashes"), 3);
    es_proxy_stop(&f->px);
}

/* then: bypass skips the filter: its trap and its reply are both gone, the route answers. */
static void test_quarantine_bypasses(void **state)
{
    es_fixture_t *f = *state;
    crash_setup(f, "crash", "{ quarantine_after: 2, then: bypass }", NULL);
    crash_workers(f, 2);
    assert_int_equal(log_count(f, "quarantined: 2 crashes within 60000 ms; it is bypassed"), 1);
    expect_crash_requests_answered(f, 200, "route\n");
    assert_int_equal(stat_of(f, "server.worker_crashes"), 2);
    es_proxy_stop(&f->px);
}

/* A worker that keeps dying right after its start is respawned later and later, not in a spin. */
static void test_a_crash_loop_backs_off(void **state)
{
    es_fixture_t *f = *state;
    f->px.extra_env = no_segv_handler;
    write_or_start(f, 1, NULL, 1, NULL, NULL);
    uint64_t t0 = es_now_ms();
    for (int i = 1; i <= 5; i++) {
        pid_t pid;
        assert_int_equal(es_proxy_workers(&f->px, &pid, 1), 1);
        kill(pid, SIGSEGV);
        wait_back(f, (size_t)i, es_now_ms());
    }
    uint64_t took = es_now_ms() - t0;
    const char *delays[] = {"respawning after 0 ms", "respawning in 100 ms", "respawning in 200 ms",
                            "respawning in 400 ms", "respawning in 800 ms"};
    for (size_t i = 0; i < 5; i++)
        if (log_count(f, delays[i]) != 1) {
            es_proxy_print_log(&f->px);
            fail_msg("no line: %s", delays[i]);
        }
    assert_true(took >= 1500); /* 100 + 200 + 400 + 800 ms of back-off */
    es_proxy_stop(&f->px);
}

/* Counters are summed over the worker processes and survive a reload and a crash; gauges follow the live ones. */
static void test_counters_survive_reloads_and_crashes(void **state)
{
    es_fixture_t *f = *state;
    f->px.extra_env = no_segv_handler;
    write_or_start(f, 1, NULL, 2, NULL, NULL);
    for (int i = 0; i < 6; i++) {
        es_response_t r;
        es_roundtrip(f->px.port, "GET /bad HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                     &r, NULL);
        assert_int_equal(r.status, 400);
        es_response_dispose(&r);
    }
    assert_int_equal(stat_of(f, "downstream.rq_400"), 6);
    assert_int_equal(es_proxy_reload(&f->px), 1);
    assert_int_equal(stat_of(f, "downstream.rq_400"), 6);
    pid_t pids[8];
    uint64_t until = es_now_ms() + 5000;
    while (es_proxy_workers(&f->px, pids, 8) != 2 && es_now_ms() < until)
        usleep(10 * 1000);
    assert_int_equal(es_proxy_workers(&f->px, pids, 8), 2);
    kill(pids[1], SIGSEGV);
    wait_back(f, 1, es_now_ms());
    assert_int_equal(stat_of(f, "downstream.rq_400"), 6);
    assert_int_equal(stat_of(f, "server.worker_crashes"), 1);
    assert_int_equal(stat_of(f, "server.workers"), 2);
    /* The stats request's own connection is the only one open (the previous ones' closes may still be on
     * their way). */
    uint64_t deadline = es_now_ms() + 2000, open;
    while ((open = stat_of(f, "downstream.connections_active")) != 1 && es_now_ms() < deadline)
        usleep(20 * 1000);
    assert_int_equal(open, 1);
    es_proxy_stop(&f->px);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("ES_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("ES_TEST_FILTER")); /* e.g. "test_quarantine*" */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_flag),
        cmocka_unit_test(test_startup_crash_exits_cleanly),
        cmocka_unit_test_setup_teardown(test_reload_under_keepalive_load, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_reloads_keep_serving, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuilt_library_is_served_after_reload, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_watch_reloads_when_the_library_changes, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_changes_workers_and_listeners, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_reload_during_a_reload_runs_after_it, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_closes_idle_connections_after_a_grace, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_completes_requests_in_flight, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_completes_tls_requests_in_flight, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_waits_for_async_filters, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigint_and_sigquit_drain_too, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_sigterm_stops_at_once, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_timeout_closes_what_is_left, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_killed_leaves_no_orphans, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trap_in_a_sync_hook_costs_one_worker, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_trap_after_an_await_costs_one_worker, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fatal_error_line_reaches_the_log, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigsegv_to_a_worker_is_respawned, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_rejects_then_a_reload_clears_it, es_fixture_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_bypasses, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_crash_loop_backs_off, es_fixture_setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_survive_reloads_and_crashes, es_fixture_setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

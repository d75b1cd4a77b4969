/*
 * The access log end to end: one line per request whatever its outcome (upstream answers, local replies, 4xx and
 * 5xx, upstream failures, timeouts, clients that went away), every operator, text and JSON (checked by a real JSON
 * parser), standard output, SIGUSR1 reopening the files under load without losing a line, and the lines a worker
 * holds written before it exits.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TEXT_FORMAT                                                                                                   \
    "\"%%REQ(:METHOD)%% %%REQ(:PATH)%% %%PROTOCOL%%\" code=%%RESPONSE_CODE%% flags=%%RESPONSE_FLAGS%% "             \
    "rx=%%BYTES_RECEIVED%% tx=%%BYTES_SENT%% route=%%ROUTE_NAME%% cluster=%%UPSTREAM_CLUSTER%% "                      \
    "host=%%UPSTREAM_HOST%% auth=%%REQ(:AUTHORITY)%% ua=%%REQ(USER-AGENT)%% up_req=%%RESP(X-UPSTREAM-REQ)%% "         \
    "peer=%%DOWNSTREAM_REMOTE_ADDRESS%% dur=%%DURATION%% start=%%START_TIME%% tenant=%%FILTER_STATE(tenant)%%"

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    size_t got = fread(s, 1, (size_t)n, fp);
    s[got] = '\0';
    fclose(fp);
    return s;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; s != NULL && *s; s++)
        n += *s == '\n';
    return n;
}

typedef struct {
    const char *path;
    size_t want;
} lines_wait_t;

static int has_lines(void *arg)
{
    lines_wait_t *w = arg;
    char *s = read_file(w->path);
    size_t n = count_lines(s);
    free(s);
    return n >= w->want;
}

/* Waits until the file has `n` lines (the workers write every 100 ms); returns its text. */
static char *wait_lines(const char *path, size_t n)
{
    lines_wait_t w = {path, n};
    if (!es_poll_until(has_lines, &w, 5000)) {
        char *s = read_file(path);
        fail_msg("%s: expected %zu lines, got %zu:\n%s", path, n, count_lines(s), s ? s : "(no file)");
    }
    return read_file(path);
}

/* The line that holds `needle`; fails when there is not exactly one. */
static char *line_with(const char *text, const char *needle)
{
    const char *hit = strstr(text, needle);
    if (hit == NULL)
        fail_msg("no line with \"%s\" in:\n%s", needle, text);
    if (strstr(hit + strlen(needle), needle) != NULL)
        fail_msg("more than one line with \"%s\" in:\n%s", needle, text);
    const char *b = hit;
    while (b > text && b[-1] != '\n')
        b--;
    const char *e = strchr(hit, '\n');
    return strndup(b, e != NULL ? (size_t)(e - b) : strlen(b));
}

static void expect_in(const char *line, const char *part)
{
    if (strstr(line, part) == NULL)
        fail_msg("expected \"%s\" in the line: %s", part, line);
}

static void start_logged(es_fixture_t *f, unsigned workers, const char *filters, const char *extra_listener_keys)
{
    es_proxy_start(&f->px, 1,
                   "workers: %u\n"
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                   "    request_timeout: 700ms\n"
                   "%s%s"
                   "    access_log:\n"
                   "      - path: access.log\n"
                   "        format: '" TEXT_FORMAT "'\n"
                   "      - path: access.json\n"
                   "        json_format: { method: '%%REQ(:METHOD)%%', path: '%%REQ(:PATH)%%', code: '%%RESPONSE_CODE%%',"
                   " flags: '%%RESPONSE_FLAGS%%', bytes_sent: '%%BYTES_SENT%%', route: '%%ROUTE_NAME%%',"
                   " ua: '%%REQ(USER-AGENT)%%', upstream: '%%UPSTREAM_HOST%%', protocol: '%%PROTOCOL%%' }\n"
                   "    routes:\n"
                   "      - name: direct\n        match: { prefix: /direct }\n"
                   "        direct_response: { status: 418, body: \"teapot\\n\" }\n"
                   "      - name: dead\n        match: { prefix: /dead }\n        cluster: dead\n"
                   "      - name: app\n        match: { prefix: /text }\n        cluster: backend\n"
                   "      - name: slow\n        match: { prefix: /delay }\n        cluster: backend\n"
                   "      - name: broken\n        match: { prefix: /malformed }\n        cluster: backend\n"
                   "      - name: reset\n        match: { prefix: /reset }\n        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "  - name: dead\n    connect_timeout: 300ms\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   workers, filters ? "    http_filters:\n" : "", filters ? filters : "", f->up.port,
                   es_closed_port());
    (void)extra_listener_keys;
}

static void test_a_line_for_every_outcome(void **state)
{
    es_fixture_t *f = *state;
    start_logged(f, 1, NULL, NULL);
    es_response_t r;
    char path[700];
    /* 200 from the upstream, with a body each way. */
    es_roundtrip(f->px.port,
                 "POST /text?ok HTTP/1.1\r\nHost: example.test\r\nUser-Agent: probe/1\r\nContent-Length: 5\r\n\r\nhello",
                 &r, NULL);
    assert_int_equal(r.status, 200);
    size_t ok_len = r.body_total;
    es_response_dispose(&r);
    es_get(f->px.port, "/nowhere", &r); /* no route: 404 NR */
    assert_int_equal(r.status, 404);
    es_response_dispose(&r);
    es_get(f->px.port, "/direct", &r); /* the route's own answer */
    assert_int_equal(r.status, 418);
    es_response_dispose(&r);
    es_get(f->px.port, "/dead/x", &r); /* nothing listens: 503 UF */
    assert_int_equal(r.status, 503);
    es_response_dispose(&r);
    es_get(f->px.port, "/malformed?kind=status", &r); /* 502 UPE */
    assert_int_equal(r.status, 502);
    es_response_dispose(&r);
    es_get(f->px.port, "/delay?ms=3000", &r); /* request_timeout 700ms: 504 UT */
    assert_int_equal(r.status, 504);
    es_response_dispose(&r);
    es_get(f->px.port, "/reset", &r); /* the upstream resets: 503 UC */
    assert_true(r.status >= 500);
    es_response_dispose(&r);
    es_roundtrip(f->px.port, "GET /text?bad HTTP/1.1\r\nHost: t\r\nHost : x\r\n\r\n", &r, NULL); /* 400 DPE */
    assert_int_equal(r.status, 400);
    es_response_dispose(&r);
    /* A client that goes away while the upstream thinks: DC, no status sent. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /delay?ms=400&gone=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(100 * 1000);
    es_client_close(&c);

    snprintf(path, sizeof path, "%s/access.log", f->px.dir);
    char *text = wait_lines(path, 9);
    char *l = line_with(text, "/text?ok");
    expect_in(l, "\"POST /text?ok HTTP/1.1\" code=200 flags=- rx=5 ");
    char want[200];
    snprintf(want, sizeof want, "tx=%zu route=app cluster=backend host=127.0.0.1:%u auth=example.test ua=probe/1 "
                                "up_req=1 peer=127.0.0.1:", ok_len, f->up.port);
    expect_in(l, want);
    expect_in(l, "tenant=-");
    /* START_TIME is ISO 8601 UTC with milliseconds, DURATION whole milliseconds. */
    const char *st = strstr(l, "start=");
    assert_non_null(st);
    assert_true(strlen(st) >= 6 + 24);
    assert_true(st[6 + 4] == '-' && st[6 + 10] == 'T' && st[6 + 19] == '.' && st[6 + 23] == 'Z');
    free(l);
    l = line_with(text, "/nowhere");
    expect_in(l, "code=404 flags=LR,NR");
    expect_in(l, "route=- cluster=- host=-");
    free(l);
    l = line_with(text, "/direct");
    expect_in(l, "code=418 flags=- rx=0 tx=7 route=direct cluster=-");
    free(l);
    l = line_with(text, "/dead/x");
    expect_in(l, "code=503 flags=UF,LR");
    expect_in(l, "route=dead cluster=dead");
    free(l);
    l = line_with(text, "/malformed");
    expect_in(l, "code=502 flags=LR,UPE");
    free(l);
    l = line_with(text, "/delay?ms=3000");
    expect_in(l, "code=504 flags=UT,LR");
    const char *d = strstr(l, "dur=");
    assert_non_null(d);
    long dur = strtol(d + 4, NULL, 10);
    assert_true(dur >= 700 && dur < 1500);
    free(l);
    l = line_with(text, "/reset");
    expect_in(l, "flags=UC,LR");
    free(l);
    l = line_with(text, "code=400"); /* refused before its head was whole: no method or path to name */
    expect_in(l, "code=400 flags=LR,DPE");
    free(l);
    l = line_with(text, "gone=1");
    expect_in(l, "code=0 flags=DC");
    free(l);
    free(text);

    /* The JSON log: the same requests, each line an object a JSON parser reads, with the values checked. */
    snprintf(path, sizeof path, "%s/access.json", f->px.dir);
    text = wait_lines(path, 9);
    free(text);
    char *out = NULL;
    int rc = es_run_tool(&out,
                         "%s -c 'import json,sys\n"
                         "rows=[json.loads(l) for l in open(sys.argv[1])]\n"
                         "print(\"n=%%d\" %% len(rows))\n"
                         "ok=[r for r in rows if r[\"path\"]==\"/text?ok\"][0]\n"
                         "print(\"ok_code=%%r\" %% (ok[\"code\"],))\n"
                         "print(\"ok_ua=%%s\" %% ok[\"ua\"])\n"
                         "print(\"ok_method=%%s\" %% ok[\"method\"])\n"
                         "print(\"ok_route=%%s\" %% ok[\"route\"])\n"
                         "nr=[r for r in rows if r[\"path\"]==\"/nowhere\"][0]\n"
                         "print(\"nr_route=%%r\" %% (nr[\"route\"],))\n"
                         "print(\"nr_upstream=%%r\" %% (nr[\"upstream\"],))\n"
                         "print(\"nr_flags=%%s\" %% nr[\"flags\"])\n"
                         "dc=[r for r in rows if \"gone=1\" in (r[\"path\"] or \"\")][0]\n"
                         "print(\"dc_code=%%r\" %% (dc[\"code\"],))\n"
                         "print(\"protocol=%%s\" %% ok[\"protocol\"])' %s",
                         es_python(), path);
    if (rc != 0)
        fail_msg("the JSON log does not parse: %s", out);
    es_expect_kv(out, "n", "9");
    es_expect_kv(out, "ok_code", "200");
    es_expect_kv(out, "ok_ua", "probe/1");
    es_expect_kv(out, "ok_method", "POST");
    es_expect_kv(out, "ok_route", "app");
    es_expect_kv(out, "nr_route", "None");
    es_expect_kv(out, "nr_upstream", "None");
    es_expect_kv(out, "nr_flags", "LR,NR");
    es_expect_kv(out, "dc_code", "0");
    es_expect_kv(out, "protocol", "HTTP/1.1");
    free(out);
    es_proxy_stop(&f->px);
}

/* A filter's local reply (LR), and a value a filter named for the log (%FILTER_STATE(tenant)%). */
static void test_filter_reply_and_state(void **state)
{
    es_fixture_t *f = *state;
    char *auth = es_swift_filter_yaml("auth", "bearer_auth", "{ token: good }", NULL);
    char *tenant = es_swift_filter_yaml("tenant", "tenant_quota", "{ tenant_header: x-tenant }", NULL);
    char *both = NULL;
    assert_true(asprintf(&both, "%s%s", tenant, auth) > 0);
    start_logged(f, 1, both, NULL);
    free(auth);
    free(tenant);
    free(both);
    es_response_t r;
    es_roundtrip(f->px.port, "GET /text?denied HTTP/1.1\r\nHost: t\r\nx-tenant: acme\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 401);
    es_response_dispose(&r);
    es_roundtrip(f->px.port,
                 "GET /text?fine HTTP/1.1\r\nHost: t\r\nx-tenant: globex\r\nAuthorization: Bearer good\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    char path[700];
    snprintf(path, sizeof path, "%s/access.log", f->px.dir);
    char *text = wait_lines(path, 2);
    char *l = line_with(text, "/text?denied");
    expect_in(l, "code=401 flags=LR");
    expect_in(l, "tenant=acme");
    free(l);
    l = line_with(text, "/text?fine");
    expect_in(l, "code=200 flags=-");
    expect_in(l, "tenant=globex");
    free(l);
    free(text);
    es_proxy_stop(&f->px);
}

/* SIGUSR1 to the supervisor: every worker writes what it holds and reopens its files; rotating the file under
 * load loses no line. */
static void test_reopen_under_load_loses_nothing(void **state)
{
    es_fixture_t *f = *state;
    start_logged(f, 2, NULL, NULL);
    const unsigned n = 20000;
    char out_path[700], cmd_out[800];
    snprintf(out_path, sizeof out_path, "%s/h2load.out", f->px.dir);
    char *out = NULL;
    int rc = es_run_tool(&out, "h2load --h1 -n %u -c 8 'http://127.0.0.1:%u/text?load' > %s 2>&1 & echo pid=$!", n,
                         f->px.port, out_path);
    assert_int_equal(rc, 0);
    char *pid_s = es_kv(out, "pid");
    assert_non_null(pid_s);
    pid_t load = (pid_t)atoi(pid_s);
    free(pid_s);
    free(out);
    /* Rotate four times while it runs: rename, then SIGUSR1, as logrotate does. */
    char from[700], to[720];
    snprintf(from, sizeof from, "%s/access.log", f->px.dir);
    unsigned rotations = 0;
    for (int i = 0; i < 4 && kill(load, 0) == 0; i++) {
        char *now = wait_lines(from, 1); /* the file in use has lines: rotate it */
        free(now);
        snprintf(to, sizeof to, "%s/access.log.%d", f->px.dir, i);
        assert_int_equal(rename(from, to), 0);
        rotations++;
        assert_int_equal(kill(f->px.pid, SIGUSR1), 0);
        usleep(100 * 1000);
    }
    while (kill(load, 0) == 0)
        usleep(20 * 1000);
    char *h2 = read_file(out_path);
    assert_non_null(h2);
    snprintf(cmd_out, sizeof cmd_out, "%u succeeded", n);
    if (strstr(h2, cmd_out) == NULL)
        fail_msg("h2load did not finish cleanly:\n%s", h2);
    free(h2);
    assert_true(rotations >= 2);
    /* Stopped by hand: es_proxy_stop would take the folder with it. The workers write what they hold first. */
    assert_int_equal(kill(f->px.pid, SIGTERM), 0);
    es_proxy_wait_exit(&f->px, 10000);
    size_t total = 0;
    char *s = read_file(from);
    total += count_lines(s);
    free(s);
    for (unsigned i = 0; i < 4; i++) {
        snprintf(to, sizeof to, "%s/access.log.%u", f->px.dir, i);
        s = read_file(to);
        size_t k = count_lines(s);
        if (i < rotations && k == 0) /* each file got lines: the reopen happened while requests came */
            fail_msg("%s: no lines (rotation %u of %u, %zu lines so far)", to, i, rotations, total);
        total += k;
        free(s);
    }
    assert_int_equal(total, n);
}

/* Lines a worker holds when it is told to stop are written before it exits. */
static void test_stop_writes_everything(void **state)
{
    es_fixture_t *f = *state;
    start_logged(f, 1, NULL, NULL);
    char *out = NULL;
    int rc = es_run_tool(&out, "h2load --h1 -n 500 -c 4 'http://127.0.0.1:%u/text?x'", f->px.port);
    assert_int_equal(rc, 0);
    free(out);
    /* At once: the 100 ms timer has likely not run since the last requests. */
    assert_int_equal(kill(f->px.pid, SIGTERM), 0);
    es_proxy_wait_exit(&f->px, 10000);
    char path[700];
    snprintf(path, sizeof path, "%s/access.log", f->px.dir);
    char *s = read_file(path);
    assert_int_equal(count_lines(s), 500);
    free(s);
}

/* HTTP/2 streams get their lines too: :PATH, :AUTHORITY and the protocol as the client sent them. */
static void test_http2_lines(void **state)
{
    es_fixture_t *f = *state;
    start_logged(f, 1, NULL, NULL);
    char *out = NULL;
    /* Two curls: this curl (7.88) cannot reuse a prior-knowledge connection (nghttpx's neither). */
    int rc = es_run_tool(&out, "curl -sS --http2-prior-knowledge -H 'user-agent: h2probe' 'http://127.0.0.1:%u/text?h2=1' &&"
                               " curl -sS --http2-prior-knowledge 'http://127.0.0.1:%u/nowhere?h2=2'",
                         f->px.port, f->px.port);
    assert_int_equal(rc, 0);
    free(out);
    char path[700];
    snprintf(path, sizeof path, "%s/access.log", f->px.dir);
    char *text = wait_lines(path, 2);
    char *l = line_with(text, "h2=1");
    expect_in(l, "\"GET /text?h2=1 HTTP/2\" code=200 flags=- ");
    char want[64];
    snprintf(want, sizeof want, "auth=127.0.0.1:%u ua=h2probe", f->px.port);
    expect_in(l, want);
    free(l);
    l = line_with(text, "h2=2");
    expect_in(l, "\"GET /nowhere?h2=2 HTTP/2\" code=404 flags=LR,NR");
    free(l);
    free(text);
    es_proxy_stop(&f->px);
}

/* path: "-" writes to the proxy's standard output. */
static void test_stdout(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                   "    access_log: [ { path: \"-\", format: \"STDOUT-LINE %%REQ(:PATH)%% %%RESPONSE_CODE%%\\n\" } ]\n"
                   "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 204 }\n");
    es_response_t r;
    es_get(f->px.port, "/to-stdout", &r);
    assert_int_equal(r.status, 204);
    es_response_dispose(&r);
    assert_int_equal(es_proxy_wait_log(&f->px, "STDOUT-LINE /to-stdout 204\n", 1, 5000), 1);
    es_proxy_stop(&f->px);
}

static void test_bad_formats(void **state)
{
    (void)state;
    es_run_t run;
    es_run_check(&run, "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                       "    access_log: [ { path: a.log, format: \"%%NOPE%%\" } ]\n"
                       "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 204 }\n");
    assert_true(run.exited);
    assert_int_not_equal(run.exit_code, 0);
    if (strstr(run.err, "config.yaml:5: listeners[0].access_log[0].format: unknown operator %NOPE%") == NULL)
        fail_msg("got: %s", run.err);
    char *nl = strchr(run.err, '\n');
    assert_true(nl == NULL || nl[1] == '\0');
    es_run_dispose(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_line_for_every_outcome, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filter_reply_and_state, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_under_load_loses_nothing, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stop_writes_everything, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_http2_lines, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stdout, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test(test_bad_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

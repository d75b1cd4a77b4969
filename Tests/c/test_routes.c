/*
 * Routes before filters: the route is matched when the request head arrives, each filter runs with its route's
 * filter_config (or not at all where the route disables it), a filter that changes what routes match on moves
 * the stream to another route and the filters after it to that route's configs, and `ready: {}` answers for load
 * balancers until the proxy drains. The real host, the real libswiftfilter.so, the test upstream.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* The value of header `name` the upstream received, as its /headers answer shows it; NULL when absent. */
static char *seen(uint16_t port, const char *extra_headers, const char *name)
{
    es_response_t r;
    char req[512];
    snprintf(req, sizeof req, "GET /headers HTTP/1.1\r\nHost: t\r\n%s\r\n", extra_headers);
    es_roundtrip(port, req, &r, NULL);
    assert_int_equal(r.status, 200);
    char *v = es_head_value(r.body, name);
    es_response_dispose(&r);
    return v;
}

static void expect_seen(uint16_t port, const char *extra_headers, const char *name, const char *want)
{
    char *v = seen(port, extra_headers, name);
    if (want == NULL) {
        if (v != NULL)
            fail_msg("%s: expected no %s, got \"%s\"", extra_headers, name, v);
        return;
    }
    if (v == NULL || strcmp(v, want) != 0)
        fail_msg("%s: expected %s: %s, got %s", extra_headers, name, want, v ? v : "(none)");
    free(v);
}

static void test_per_route_config_and_disable(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("rewrite", "header_rewrite", "{ request: { set: { x-tag: listener } } }", NULL);
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s"
                   "    routes:\n"
                   "      - name: special\n        match: { prefix: /, headers: { x-which: special } }\n"
                   "        cluster: backend\n"
                   "        filter_config: { rewrite: { request: { set: { x-tag: special } } } }\n"
                   "      - name: off\n        match: { prefix: /, headers: { x-which: off } }\n"
                   "        cluster: backend\n"
                   "        filter_config: { rewrite: { disabled: true } }\n"
                   "      - name: on\n        match: { prefix: /, headers: { x-which: on } }\n"
                   "        cluster: backend\n"
                   "        filter_config: { rewrite: { disabled: false } }\n"
                   "      - match: { prefix: / }\n        cluster: backend\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   flt, f->up.port);
    free(flt);
    expect_seen(f->px.port, "", "x-tag", "listener");
    expect_seen(f->px.port, "x-which: special\r\n", "x-tag", "special");
    expect_seen(f->px.port, "x-which: off\r\n", "x-tag", NULL);
    expect_seen(f->px.port, "x-which: on\r\n", "x-tag", "listener");
    /* Again, in another order: each stream gets its own route's instance, nothing carries over. */
    expect_seen(f->px.port, "x-which: off\r\n", "x-tag", NULL);
    expect_seen(f->px.port, "x-which: special\r\n", "x-tag", "special");
    expect_seen(f->px.port, "", "x-tag", "listener");
    es_proxy_stop(&f->px);
}

/* A filter picks the route (route_by_query sets x-route); the filter after it runs with that route's config. */
static void test_route_change_picks_new_route_config(void **state)
{
    es_fixture_t *f = *state;
    char *router = es_swift_filter_yaml("router", "route_by_query", "{ param: backend, header: x-route }", NULL);
    char *rewrite = es_swift_filter_yaml("rewrite", "header_rewrite", "{ request: { set: { x-tag: stable } } }", NULL);
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s%s"
                   "    routes:\n"
                   "      - name: canary\n        match: { prefix: /, headers: { x-route: canary } }\n"
                   "        cluster: backend\n"
                   "        filter_config: { rewrite: { request: { set: { x-tag: canary } } } }\n"
                   "      - name: dark\n        match: { prefix: /, headers: { x-route: dark } }\n"
                   "        cluster: backend\n"
                   "        filter_config: { rewrite: { disabled: true } }\n"
                   "      - name: stable\n        match: { prefix: / }\n        cluster: backend\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   router, rewrite, f->up.port);
    free(router);
    free(rewrite);
    es_response_t r;
    es_roundtrip(f->px.port, "GET /headers?backend=canary HTTP/1.1\r\nHost: t\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    char *v = es_head_value(r.body, "x-tag");
    assert_non_null(v);
    assert_string_equal(v, "canary");
    free(v);
    es_response_dispose(&r);
    es_roundtrip(f->px.port, "GET /headers?backend=dark HTTP/1.1\r\nHost: t\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    assert_null(es_head_value(r.body, "x-tag"));
    v = es_head_value(r.body, "x-route");
    assert_non_null(v);
    assert_string_equal(v, "dark");
    free(v);
    es_response_dispose(&r);
    /* No parameter: the stable route and the listener's config. A client's own x-route is removed by the router
     * before routing counts, so the route it matched at first (canary) is left again. */
    expect_seen(f->px.port, "", "x-tag", "stable");
    expect_seen(f->px.port, "x-route: canary\r\n", "x-tag", "stable");
    es_proxy_stop(&f->px);
}

static void expect_check_error(const char *yaml, const char *needle)
{
    es_run_t run;
    es_run_check(&run, "%s", yaml);
    assert_true(run.exited);
    assert_int_not_equal(run.exit_code, 0);
    if (strstr(run.err, needle) == NULL)
        fail_msg("expected \"%s\" in stderr, got: %s", needle, run.err);
    char *nl = strchr(run.err, '\n');
    assert_true(nl == NULL || nl[1] == '\0'); /* one line */
    es_run_dispose(&run);
}

static void test_bad_route_filter_config(void **state)
{
    (void)state;
    char *flt = es_swift_filter_yaml("router", "route_by_query", "{}", NULL);
    char *yaml = NULL;
    /* The library refuses the route's config: the error names the route and the filter. */
    assert_true(asprintf(&yaml,
                         "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s"
                         "    routes:\n"
                         "      - match: { prefix: /a }\n        direct_response: { status: 200 }\n"
                         "      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
                         "        filter_config: { router: { param: \"\" } }\n",
                         flt) > 0);
    expect_check_error(yaml, "config.yaml:15: listeners[0].routes[1].filter_config.router (\"router\", plugin "
                             "\"route_by_query\"): param must not be empty");
    free(yaml);
    /* A filter the listener does not have. */
    assert_true(asprintf(&yaml,
                         "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s"
                         "    routes:\n"
                         "      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
                         "        filter_config: { nope: {} }\n",
                         flt) > 0);
    expect_check_error(yaml, "listeners[0].routes[0].filter_config.nope: no filter named \"nope\" in this "
                             "listener's http_filters");
    free(yaml);
    /* Two routes with one name. */
    assert_true(asprintf(&yaml,
                         "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                         "    routes:\n"
                         "      - name: a\n        match: { prefix: /a }\n        direct_response: { status: 200 }\n"
                         "      - name: a\n        match: { prefix: / }\n        direct_response: { status: 200 }\n") > 0);
    expect_check_error(yaml, "listeners[0].routes[1].name: duplicate route name \"a\" (first at line 6)");
    free(yaml);
    free(flt);
}

static void test_ready_until_drain(void **state)
{
    es_fixture_t *f = *state;
    es_proxy_start(&f->px, 1,
                   "workers: 1\n"
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                   "    routes:\n"
                   "      - name: ready\n        match: { prefix: /ready }\n        ready: {}\n"
                   "      - match: { prefix: / }\n        cluster: backend\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   f->up.port);
    es_response_t r;
    es_get(f->px.port, "/ready", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");
    es_response_dispose(&r);
    /* A keep-alive connection made before the drain asks again once it has begun: 503, and the close. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    assert_int_equal(kill(f->px.pid, SIGTERM), 0);
    assert_int_equal(es_proxy_wait_log(&f->px, "] draining (asked", 1, 5000), 1);
    es_client_sendf(&c, "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "draining\n");
    const char *conn = es_response_header(&r, "connection");
    assert_non_null(conn);
    assert_string_equal(conn, "close");
    es_response_dispose(&r);
    es_client_close(&c);
    es_proxy_wait_exit(&f->px, 10000);
}

/* Filters see the route from the start (stream info), and pass each other a value through the request state: one
 * writes it, an async one reads it after an await and again on the response, and the access log could name it. */
static void test_stream_info_and_state(void **state)
{
    es_fixture_t *f = *state;
    char *tenant = es_swift_filter_yaml("tenant", "tenant_quota", "{}", NULL);
    char *reader = es_swift_filter_yaml("reader", "state_reader", "{}", NULL);
    char *info = es_swift_filter_yaml("info", "info_echo", "{}", NULL);
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s%s%s"
                   "    routes:\n"
                   "      - name: api\n        match: { prefix: /text }\n        cluster: backend\n"
                   "      - match: { prefix: / }\n        cluster: backend\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   tenant, reader, info, f->up.port);
    free(tenant);
    free(reader);
    free(info);
    es_response_t r;
    es_roundtrip(f->px.port, "GET /text HTTP/1.1\r\nHost: t\r\nx-tenant: acme\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    const char *v = es_response_header(&r, "x-tenant-seen");
    assert_non_null(v);
    assert_string_equal(v, "acme,acme"); /* after the await, and on the way back */
    v = es_response_header(&r, "x-route-name");
    assert_non_null(v);
    assert_string_equal(v, "api");
    v = es_response_header(&r, "x-cluster");
    assert_non_null(v);
    assert_string_equal(v, "backend");
    es_response_dispose(&r);
    /* The next stream starts with an empty state; an unnamed route has no name to show. */
    es_roundtrip(f->px.port, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    v = es_response_header(&r, "x-tenant-seen");
    assert_non_null(v);
    assert_string_equal(v, "-,-");
    v = es_response_header(&r, "x-route-name");
    assert_true(v == NULL || strcmp(v, "") == 0);
    es_response_dispose(&r);
    /* info_echo logs what it read in onStreamComplete: the finished exchange. */
    assert_int_equal(es_proxy_wait_log(&f->px, "route=api cluster=backend", 1, 5000), 1);
    assert_int_equal(es_proxy_wait_log(&f->px, "code=200", 2, 5000), 1);
    es_proxy_stop(&f->px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_per_route_config_and_disable, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_route_change_picks_new_route_config, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test(test_bad_route_filter_config),
        cmocka_unit_test_setup_teardown(test_ready_until_drain, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stream_info_and_state, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

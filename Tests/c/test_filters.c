/*
 * Swift filters end to end: the real host loads the real build/libswiftfilter.so and runs the
 * reference filters (Filters/) on traffic to the test upstream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static const char *build_dir(void)
{
    const char *b = getenv("ES_BUILD");
    return b && *b ? b : "build";
}

/* One listener "main" whose route sends everything to the test upstream, with the given filters. */
static void start(es_fixture_t *f, const char *filters_yaml)
{
    es_proxy_start(&f->px, 1,
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    http_filters:\n%s"
                   "    routes:\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   filters_yaml, f->up.port);
}

static void test_header_rewrite_both_ways(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("rewrite", "header_rewrite",
                       "{ request: { set: { x-set: one }, add: { x-add: two }, remove: [x-drop] },"
                       " response: { set: { x-resp: yes }, remove: [x-upstream-req] } }", NULL);
    start(f, flt);
    free(flt);
    es_response_t r;
    es_roundtrip(f->px.port, "GET /headers HTTP/1.1\r\nHost: t\r\nx-drop: 1\r\nx-set: old\r\nx-add: one\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    char *v = es_head_value(r.body, "x-set");
    assert_non_null(v);
    assert_string_equal(v, "one"); /* set replaced the client's value */
    free(v);
    assert_int_equal(es_head_count(r.body, "x-set"), 1);
    assert_int_equal(es_head_count(r.body, "x-add"), 2); /* add kept the client's and added one */
    assert_int_equal(es_head_count(r.body, "x-drop"), 0);
    assert_string_equal(es_response_header(&r, "x-resp"), "yes");
    assert_null(es_response_header(&r, "x-upstream-req"));
    assert_non_null(es_response_header(&r, "x-upstream-conn"));
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_bearer_auth(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("auth", "bearer_auth", "{ token: s3cret, realm: test }", NULL);
    start(f, flt);
    free(flt);
    es_response_t r;
    es_get(f->px.port, "/private", &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(es_response_header(&r, "www-authenticate"), "Bearer realm=\"test\"");
    assert_string_equal(r.body, "unauthorized\n");
    es_response_dispose(&r);
    es_roundtrip(f->px.port, "GET /private HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer wrong\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 401);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up), 0); /* a local reply never goes upstream */
    es_roundtrip(f->px.port, "GET /private HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\n\r\n", &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "upstream ok GET /private\n");
    es_response_dispose(&r);
    /* A local reply keeps the connection usable: two requests on one connection. */
    es_client_t c;
    es_client_connect(&c, f->px.port);
    es_client_sendf(&c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\n\r\n");
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 401);
    es_response_dispose(&r);
    es_client_read(&c, &r, NULL);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    es_client_close(&c);
    es_proxy_stop(&f->px);
}

static void check_replaced(uint16_t port, const char *path, int expect_chunked_upstream)
{
    es_response_t r;
    char raw[256];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    es_roundtrip(port, raw, &r, NULL);
    assert_int_equal(r.status, 200);
    /* "upstream ok GET /text..." with "upstream" replaced: the framing follows the new length. */
    assert_non_null(strstr(r.body, "UPSTREAM-REPLACED ok GET"));
    assert_null(strstr(r.body, "upstream"));
    const char *cl = es_response_header(&r, "content-length");
    assert_non_null(cl);
    assert_int_equal(strtoull(cl, NULL, 10), r.body_total);
    assert_int_equal(r.chunked, 0);
    assert_null(es_response_header(&r, "transfer-encoding"));
    es_response_dispose(&r);
    (void)expect_chunked_upstream;
}

static void test_body_replace_content_length_and_chunked(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("replace", "body_replace", "{ find: upstream, replace: UPSTREAM-REPLACED }", NULL);
    start(f, flt);
    free(flt);
    check_replaced(f->px.port, "/text", 0);             /* Content-Length from upstream */
    check_replaced(f->px.port, "/text?chunked=1", 1);   /* chunked from upstream */
    /* Not text: passes untouched and streamed. */
    es_response_t r;
    es_get(f->px.port, "/bytes?n=100000", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_total, 100000);
    assert_true(r.body_fnv == es_pattern_fnv(100000));
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_route_by_query(void **state)
{
    es_fixture_t *f = *state;
    assert_int_equal(es_upstream_start(&f->up2), 0);
    char *flt = es_swift_filter_yaml("router", "route_by_query", "{ param: backend, header: x-route }", NULL);
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s"
                   "    routes:\n"
                   "      - match: { prefix: / }\n        cluster: stable\n"
                   "      - match: { prefix: /, headers: { x-route: canary } }\n        cluster: canary\n"
                   "clusters:\n"
                   "  - name: stable\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n"
                   "  - name: canary\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   flt, f->up.port, f->up2.port);
    free(flt);
    es_response_t r;
    es_get(f->px.port, "/x?backend=canary", &r);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up2), 1);
    assert_int_equal(es_upstream_requests(&f->up), 0);
    es_get(f->px.port, "/x", &r);
    es_response_dispose(&r);
    /* A client cannot pick the route by sending the header itself: the filter removes it. */
    es_roundtrip(f->px.port, "GET /x HTTP/1.1\r\nHost: t\r\nx-route: canary\r\n\r\n", &r, NULL);
    es_response_dispose(&r);
    assert_int_equal(es_upstream_requests(&f->up), 2);
    assert_int_equal(es_upstream_requests(&f->up2), 1);
    es_proxy_stop(&f->px);
}

static void test_chain_order_both_ways(void **state)
{
    es_fixture_t *f = *state;
    char *a = es_swift_filter_yaml("first", "chain_probe", "{ tag: a }", NULL);
    char *b = es_swift_filter_yaml("second", "chain_probe", "{ tag: b }", NULL);
    char *both = NULL;
    assert_true(asprintf(&both, "%s%s", a, b) > 0);
    start(f, both);
    free(a);
    free(b);
    free(both);
    es_response_t r;
    es_get(f->px.port, "/headers", &r);
    assert_int_equal(r.status, 200);
    /* Requests run first to last: the upstream sees a, then b. */
    const char *first = strstr(r.body, "x-chain: a");
    const char *second = strstr(r.body, "x-chain: b");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    /* Responses run last to first: b, then a. */
    size_t seen = 0;
    const char *order[2] = {0};
    for (size_t i = 0; i < r.nheaders; i++)
        if (strcasecmp(r.headers[i].name, "x-chain") == 0 && seen < 2)
            order[seen++] = r.headers[i].value;
    assert_int_equal(seen, 2);
    assert_string_equal(order[0], "b");
    assert_string_equal(order[1], "a");
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_header_injection_refused(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("bad", "bad_header", "{}", NULL);
    start(f, flt);
    free(flt);
    es_response_t r;
    es_get(f->px.port, "/headers", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(es_head_count(r.body, "x-injection-refused"), 1);
    assert_int_equal(es_head_count(r.body, "x-injected"), 0);
    assert_int_equal(es_head_count(r.body, "x-evil"), 0);
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

static void test_filter_throw_is_500_and_proxy_keeps_serving(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("boom", "throws", "{}", NULL);
    es_proxy_start(&f->px, 1,
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n    http_filters:\n%s"
                   "    routes:\n      - match: { prefix: / }\n        cluster: backend\n"
                   "  - name: plain\n    address: 127.0.0.1\n    port: 0\n"
                   "    routes:\n      - match: { prefix: / }\n        cluster: backend\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   flt, f->up.port);
    free(flt);
    f->px.nlisteners = f->px.nlisteners; /* both listeners were waited for below */
    es_response_t r;
    for (int i = 0; i < 3; i++) {
        es_get(es_proxy_port(&f->px, "main"), "/x", &r);
        assert_int_equal(r.status, 500);
        es_response_dispose(&r);
    }
    assert_int_equal(es_upstream_requests(&f->up), 0);
    es_get(es_proxy_port(&f->px, "plain"), "/x", &r);
    assert_int_equal(r.status, 200);
    es_response_dispose(&r);
    assert_true(es_proxy_log_count(&f->px, "filter boom: failed in request headers") >= 3);
    es_proxy_stop(&f->px);
}

static void expect_startup_error(const char *so_path, const char *plugin, const char *config, const char *needle)
{
    es_run_t run;
    es_run_config(&run,
                  "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                  "    http_filters:\n      - name: f1\n        so_path: %s\n        plugin_name: %s\n"
                  "        plugin_config: %s\n"
                  "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
                  so_path, plugin, config);
    assert_true(run.exited);
    assert_int_not_equal(run.exit_code, 0);
    if (strstr(run.err, needle) == NULL)
        fail_msg("expected \"%s\" in stderr, got: %s", needle, run.err);
    assert_non_null(strstr(run.err, "config.yaml:6: listeners[0].http_filters[0]"));
    /* One line. */
    char *nl = strchr(run.err, '\n');
    assert_true(nl == NULL || nl[1] == '\0');
    es_run_dispose(&run);
}

static void test_startup_errors(void **state)
{
    char path[700];
    expect_startup_error("/nonexistent/libnothing.so", "header_rewrite", "{}", "cannot load /nonexistent/libnothing.so");
    snprintf(path, sizeof path, "%s/fixtures/libwrongabi.so", build_dir());
    expect_startup_error(path, "header_rewrite", "{}", "built for ABI version 999, this host speaks version 4");
    snprintf(path, sizeof path, "%s/fixtures/libmissing.so", build_dir());
    expect_startup_error(path, "header_rewrite", "{}", "missing symbol envoy_swift_program_init");
    expect_startup_error(es_swift_filter_lib(), "no_such_plugin", "{}", "no_such_plugin");
    expect_startup_error(es_swift_filter_lib(), "bearer_auth", "{ token: \"\" }", "token must not be empty");
    expect_startup_error(es_swift_filter_lib(), "header_rewrite", "{ request: 5 }", "(\"f1\", plugin \"header_rewrite\")");
}

/*
 * A hook a filter leaves out runs the SDK's default once; the library then says so
 * (CONTINUE_SKIP) and the host stops calling it for that filter. Hooks a filter implements run on
 * every stream, in every direction.
 */
static void test_left_out_hooks_are_skipped(void **state)
{
    es_fixture_t *f = *state;
    char *a = es_swift_filter_yaml("probe", "chain_probe", "{ tag: p }", NULL);
    char *b = es_swift_filter_yaml("nothing", "noop", "{}", NULL);
    char both[2048];
    snprintf(both, sizeof both, "%s%s", a, b);
    free(a);
    free(b);
    es_proxy_start(&f->px, 1,
                   "workers: 1\n" /* one process learns which hooks each filter left out */
                   "listeners:\n"
                   "  - name: main\n"
                   "    address: 127.0.0.1\n"
                   "    port: 0\n"
                   "    http_filters:\n%s"
                   "    routes:\n"
                   "      - match: { prefix: /stats }\n"
                   "        stats: {}\n"
                   "      - match: { prefix: / }\n"
                   "        cluster: backend\n"
                   "clusters:\n"
                   "  - name: backend\n"
                   "    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   both, f->up.port);
    for (int i = 0; i < 5; i++) {
        es_response_t r;
        es_roundtrip(f->px.port, "POST /headers HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r, NULL);
        assert_int_equal(r.status, 200);
        /* chain_probe's headers hooks ran on this stream too, both ways. */
        char *chain = es_head_value(r.body, "x-chain");
        assert_string_equal(chain, "p");
        free(chain);
        assert_string_equal(es_response_header(&r, "x-chain"), "p");
        es_response_dispose(&r);
    }
    unsigned long skipped = (unsigned long)es_stat(f->px.port, "/stats", "filter.hooks_skipped");
    /* Per stream after the first: noop's request and response headers (2), and both filters' body hooks for
     * each body event, a chunk and the end, both ways (2 x 2 x 2 = 8): at least 10 on each of the last 4
     * streams (more if a body came in more than one read). The body events skip the chain as a whole (every
     * filter left the hook out), and still count each filter's skipped hook. */
    if (skipped < 40) fail_msg("only %lu hook calls skipped over 5 streams", skipped);
    es_proxy_stop(&f->px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_header_rewrite_both_ways, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bearer_auth, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_body_replace_content_length_and_chunked, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_route_by_query, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_chain_order_both_ways, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_header_injection_refused, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filter_throw_is_500_and_proxy_keeps_serving, es_fixture_setup,
                                        es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_left_out_hooks_are_skipped, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test(test_startup_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

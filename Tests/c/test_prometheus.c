/*
 * Metrics end to end: the `stats: {}` route's <prefix>/prometheus answer read by the Prometheus client's own
 * parser (Tests/py/prom_scrape.py), the request, upstream and filter histograms with their labels, a Swift
 * filter's own metrics in both formats, and counts summed over every worker process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Scrapes and parses; fails unless the parser accepted it. Returns the tool's output (free it). */
static char *scrape(uint16_t port)
{
    char *out = NULL;
    int rc = es_run_tool(&out, "%s %s/prom_scrape.py http://127.0.0.1:%u/stats/prometheus", es_python(),
                         es_py_tools(), port);
    if (rc != 0)
        fail_msg("the Prometheus text does not parse:\n%s", out);
    es_expect_kv(out, "ok", "1");
    return out;
}

static void start(es_fixture_t *f, unsigned workers, const char *filters)
{
    es_proxy_start(&f->px, 1,
                   "workers: %u\n"
                   "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 0\n"
                   "%s%s"
                   "    routes:\n"
                   "      - name: stats\n        match: { prefix: /stats }\n        stats: {}\n"
                   "      - name: app\n        match: { prefix: /app }\n        cluster: backend\n"
                   "      - match: { prefix: / }\n        direct_response: { status: 404 }\n"
                   "clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %u } ]\n",
                   workers, filters ? "    http_filters:\n" : "", filters ? filters : "", f->up.port);
}

/* Requests over many connections reach both workers; each worker counts in its own block; a scrape sums them. */
static void test_histograms_summed_across_workers(void **state)
{
    es_fixture_t *f = *state;
    start(f, 2, NULL);
    char *out = NULL;
    int rc = es_run_tool(&out, "h2load --h1 -n 400 -c 40 -m 1 http://127.0.0.1:%u/app/x", f->px.port);
    if (rc != 0 || strstr(out, "400 succeeded") == NULL)
        fail_msg("h2load: %s", out);
    free(out);
    es_response_t r;
    es_get(f->px.port, "/nothing", &r);
    assert_int_equal(r.status, 404);
    es_response_dispose(&r);
    /* Both workers served some of the connections (the log names the worker that accepted each). */
    assert_true(es_proxy_log_count(&f->px, "[w0.g1] accepted connection") > 0);
    assert_true(es_proxy_log_count(&f->px, "[w1.g1] accepted connection") > 0);

    out = scrape(f->px.port);
    es_expect_kv(out, "content_type", "text/plain; version=0.0.4; charset=utf-8");
    es_expect_kv(out, "envoy_swift_downstream_rq_total{code_class=\"2xx\",listener=\"main\",route=\"app\"}", "400");
    es_expect_kv(out, "envoy_swift_downstream_rq_total{code_class=\"4xx\",listener=\"main\",route=\"route2\"}", "1");
    es_expect_kv(out, "type:envoy_swift_downstream_rq_duration_seconds", "histogram");
    es_expect_kv(out, "envoy_swift_downstream_rq_duration_seconds_count{listener=\"main\",route=\"app\"}", "400");
    es_expect_kv(out, "envoy_swift_downstream_rq_duration_seconds_bucket{le=\"+Inf\",listener=\"main\",route=\"app\"}",
                 "400");
    es_expect_kv(out, "envoy_swift_upstream_rq_first_byte_seconds_count{cluster=\"backend\"}", "400");
    es_expect_kv(out, "envoy_swift_upstream_rq_total{cluster=\"backend\",code_class=\"2xx\"}", "400");
    /* The plain counters and gauges are there too, named for Prometheus. */
    es_expect_kv(out, "envoy_swift_server_workers{}", "2");
    es_expect_kv(out, "type:envoy_swift_filter_running", "counter");
    /* A request's duration lands in a bucket below 1 s (the upstream answers at once). */
    char *sum = es_kv(out, "envoy_swift_downstream_rq_duration_seconds_sum{listener=\"main\",route=\"app\"}");
    assert_non_null(sum);
    double s = strtod(sum, NULL);
    assert_true(s > 0 && s < 400.0);
    free(sum);
    free(out);

    /* A second scrape counts the first (route "stats"): scrapes are requests too. */
    out = scrape(f->px.port);
    es_expect_kv(out, "envoy_swift_downstream_rq_total{code_class=\"2xx\",listener=\"main\",route=\"stats\"}", "1");
    free(out);
    es_proxy_stop(&f->px);
}

/* A Swift filter's own counter and histogram, and the time its hooks took, in both formats. */
static void test_filter_metrics(void **state)
{
    es_fixture_t *f = *state;
    char *flt = es_swift_filter_yaml("tenant", "tenant_quota", "{ tenant_header: x-tenant, deny_tenants: [evil] }", NULL);
    start(f, 1, flt);
    free(flt);
    const char *tenants[] = {"acme", "acme", "acme", "globex", "globex", "evil"};
    for (size_t i = 0; i < sizeof tenants / sizeof *tenants; i++) {
        char req[200];
        snprintf(req, sizeof req, "GET /app/t HTTP/1.1\r\nHost: t\r\nx-tenant: %s\r\n\r\n", tenants[i]);
        es_response_t r;
        es_roundtrip(f->px.port, req, &r, NULL);
        assert_int_equal(r.status, strcmp(tenants[i], "evil") == 0 ? 403 : 200);
        es_response_dispose(&r);
    }
    char *out = scrape(f->px.port);
    es_expect_kv(out, "envoy_swift_filter_tenant_requests_total{tenant=\"acme\"}", "3");
    es_expect_kv(out, "envoy_swift_filter_tenant_requests_total{tenant=\"globex\"}", "2");
    es_expect_kv(out, "envoy_swift_filter_tenant_denied_total{reason=\"denied_tenant\"}", "1");
    es_expect_kv(out, "envoy_swift_filter_hook_duration_seconds_count{filter=\"tenant\"}", "6");
    free(out);
    /* The flat list names them under the filter too. */
    es_response_t r;
    es_get(f->px.port, "/stats", &r);
    assert_int_equal(r.status, 200);
    if (strstr(r.body, "filter.tenant.requests{tenant=\"acme\"} 3\n") == NULL)
        fail_msg("flat stats:\n%s", r.body);
    es_response_dispose(&r);
    es_proxy_stop(&f->px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_histograms_summed_across_workers, es_fixture_setup, es_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filter_metrics, es_fixture_setup, es_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

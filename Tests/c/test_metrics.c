/*
 * metrics.c, metrics_text.c, builtin_metrics.c, scrape.c: labelled counters, gauges and histograms, their
 * blocks, and the text they render. The Prometheus text is read back by a real parser (prometheus_client's,
 * from build/venv) as well as compared by value. Worker processes are real forked children recording into
 * shared memory; the supervisor's fold of a dead worker's block is es_metrics_retire.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <uv.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/stats.h"
#include "harness.h"
#include "obs/builtin_metrics.h"
#include "obs/metrics.h"
#include "obs/scrape.h"

/* ---- helpers ---- */

static int define(const char *name, es_metric_kind_t kind, const char *const *labels, unsigned n,
                  const double *bounds, unsigned nb)
{
    char err[256] = "";
    es_metric_def_t d = {.name = name, .help = "Help for a test.", .kind = kind, .labels = labels, .nlabels = n,
                         .buckets = bounds, .nbuckets = nb};
    int id = es_metric_define(&d, err, sizeof(err));
    if (id < 0)
        fail_msg("define %s: %s", name, err);
    return id;
}

static int32_t series1(int family, const char *v)
{
    return es_metric_series(family, &v, NULL, 1);
}

static char *render(int (*fn)(es_buf_t *))
{
    es_buf_t b;
    es_buf_init(&b);
    assert_int_equal(fn(&b), 0);
    char *s = malloc(b.len + 1);
    assert_non_null(s);
    memcpy(s, b.base, b.len);
    s[b.len] = '\0';
    es_buf_dispose(&b);
    return s;
}

static void expect_has(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("missing \"%s\" in:\n%s", needle, text);
}

static const char parse_py[] =
    "import json, sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
    "    print('family %s %s %s' % (f.name, f.type, json.dumps(f.documentation)))\n"
    "    for s in f.samples:\n"
    "        lab = ','.join('%s=%s' % (k, json.dumps(v)) for k, v in sorted(s.labels.items()))\n"
    "        print('sample %s{%s} %r' % (s.name, lab, float(s.value)))\n";

/* Runs the Prometheus parser on `text`; returns its output ("family NAME TYPE HELP" and
 * "sample NAME{k=\"v\",...} VALUE" lines, labels sorted, values as Python floats), failing on a parse error. */
static char *parse(const char *text)
{
    const char *b = getenv("ES_BUILD");
    char dir[600], script[700], in[700];
    snprintf(dir, sizeof(dir), "%s/test-tmp", b ? b : "build");
    mkdir(dir, 0755);
    snprintf(script, sizeof(script), "%s/metrics_parse_%d.py", dir, (int)getpid());
    snprintf(in, sizeof(in), "%s/metrics_%d.txt", dir, (int)getpid());
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(parse_py, f);
    fclose(f);
    f = fopen(in, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    char *out = NULL;
    int rc = es_run_tool(&out, "%s %s %s", es_python(), script, in);
    if (rc != 0)
        fail_msg("the Prometheus parser refused the text (%d):\n%s\n---- text ----\n%s", rc, out, text);
    unlink(script);
    unlink(in);
    return out;
}

/* ---- families ---- */

static void test_define_dedupe_conflicts(void **state)
{
    es_metric_reset_families();
    static const char *const ab[] = {"a", "b"}, *const ba[] = {"b", "a"}, *const le[] = {"le"};
    static const char *const five[] = {"a", "b", "c", "d", "e"}, *const twice[] = {"a", "a"};
    char err[256];
    int c = define("test.requests", ES_METRIC_COUNTER, ab, 2, NULL, 0);
    assert_true(c >= 0);
    assert_int_equal(define("test.requests", ES_METRIC_COUNTER, ab, 2, NULL, 0), c);
    /* Another kind, other labels, other order: one line saying what it was. */
    es_metric_def_t d = {.name = "test.requests", .kind = ES_METRIC_GAUGE, .labels = ab, .nlabels = 2};
    assert_int_equal(es_metric_define(&d, err, sizeof(err)), -1);
    assert_string_equal(err, "metric \"test_requests\" is already defined as a counter with labels (a, b)");
    d.kind = ES_METRIC_COUNTER;
    d.labels = ba;
    assert_int_equal(es_metric_define(&d, err, sizeof(err)), -1);
    assert_null(strchr(err, '\n'));
    d.labels = ab;
    d.nlabels = 1;
    assert_int_equal(es_metric_define(&d, err, sizeof(err)), -1);
    /* A histogram: bounds must ascend; `le` is the format's; bounds differ = another family. */
    static const double up[] = {1, 2, 5}, down[] = {1, 5, 2}, other[] = {1, 2, 10};
    int h = define("test.lat", ES_METRIC_HISTOGRAM, ab, 2, up, 3);
    assert_int_equal(define("test.lat", ES_METRIC_HISTOGRAM, ab, 2, up, 3), h);
    es_metric_def_t hd = {.name = "test.lat", .kind = ES_METRIC_HISTOGRAM, .labels = ab, .nlabels = 2,
                          .buckets = other, .nbuckets = 3};
    assert_int_equal(es_metric_define(&hd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already defined as a histogram"));
    hd.name = "test.lat2";
    hd.buckets = down;
    assert_int_equal(es_metric_define(&hd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ascending"));
    hd.buckets = up;
    hd.labels = le;
    hd.nlabels = 1;
    assert_int_equal(es_metric_define(&hd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"le\""));
    hd.labels = five;
    hd.nlabels = 5;
    assert_int_equal(es_metric_define(&hd, err, sizeof(err)), -1);
    hd.labels = twice;
    hd.nlabels = 2;
    assert_int_equal(es_metric_define(&hd, err, sizeof(err)), -1);
    hd.buckets = NULL; /* the default duration buckets */
    hd.labels = ab;
    assert_true(es_metric_define(&hd, err, sizeof(err)) >= 0);
    es_metric_def_t empty = {.name = "", .kind = ES_METRIC_GAUGE};
    assert_int_equal(es_metric_define(&empty, err, sizeof(err)), -1);
    /* The family table fills up. */
    int last = 0;
    for (int i = 0; i < ES_METRIC_FAMILIES + 1 && last >= 0; i++) {
        char name[32];
        snprintf(name, sizeof(name), "fill_%d", i);
        es_metric_def_t fd = {.name = name, .kind = ES_METRIC_GAUGE};
        last = es_metric_define(&fd, err, sizeof(err));
    }
    assert_int_equal(last, -1);
    assert_non_null(strstr(err, "too many"));
    es_metric_reset_families();
}

static void test_names_sanitised(void **state)
{
    es_metric_reset_families();
    static const char *const l[] = {"my-label"};
    int c = define("9filter.auth-denied/x", ES_METRIC_COUNTER, l, 1, NULL, 0);
    int g = define("already_total", ES_METRIC_COUNTER, NULL, 0, NULL, 0);
    es_metric_add(series1(c, "v"), 1);
    es_metric_add(es_metric_series(g, NULL, NULL, 0), 2);
    char *text = render(es_metrics_prometheus);
    expect_has(text, "# TYPE _filter_auth_denied_x_total counter\n_filter_auth_denied_x_total{my_label=\"v\"} 1\n");
    expect_has(text, "\nalready_total 2\n"); /* no second _total */
    char *flat = render(es_metrics_flat);
    expect_has(flat, "_filter_auth_denied_x{my_label=\"v\"} 1\n"); /* flat: the sanitised name */
    es_buf_t b;
    es_buf_init(&b);
    assert_int_equal(es_metrics_sanitise(&b, "a.b-c:d0", 8), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.base, "a_b_c:d0", 8);
    es_buf_dispose(&b);
    char *parsed = parse(text);
    expect_has(parsed, "sample _filter_auth_denied_x_total{my_label=\"v\"} 1.0\n");
    free(parsed);
    free(text);
    free(flat);
    es_metric_reset_families();
}

/* ---- series and values ---- */

static void test_values_and_buckets(void **state)
{
    es_metric_reset_families();
    es_metrics_thread_init();
    static const char *const k[] = {"k"};
    static const double bounds[] = {0.25, 1, 2.5};
    int c = define("t_counter", ES_METRIC_COUNTER, k, 1, NULL, 0);
    int g = define("t_gauge", ES_METRIC_GAUGE, k, 1, NULL, 0);
    int h = define("t_hist", ES_METRIC_HISTOGRAM, k, 1, bounds, 3);
    int32_t ca = series1(c, "a"), cb = series1(c, "b");
    assert_true(ca >= 0 && cb >= 0 && ca != cb);
    assert_int_equal(series1(c, "a"), ca); /* found again */
    int32_t ga = series1(g, "a"), ha = series1(h, "a");
    es_metric_add(ca, 1);
    es_metric_add(ca, 2.5);
    es_metric_add(cb, 1e6);
    es_metric_set(ga, 7);
    es_metric_add(ga, -9.25);
    /* Prometheus `le`: a value equal to a bound is in that bound's bucket. */
    const double obs[] = {0.125, 0.25, 0.375, 1, 1.5, 2.5, 3, 1000};
    for (unsigned i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        es_metric_observe(ha, obs[i]);
    es_metric_add(-1, 5); /* ignored */
    es_metric_observe(-1, 5);

    char *text = render(es_metrics_prometheus);
    expect_has(text, "# HELP t_counter_total Help for a test.\n# TYPE t_counter_total counter\n"
                     "t_counter_total{k=\"a\"} 3.5\nt_counter_total{k=\"b\"} 1000000\n");
    expect_has(text, "# TYPE t_gauge gauge\nt_gauge{k=\"a\"} -2.25\n");
    expect_has(text, "# TYPE t_hist histogram\n"
                     "t_hist_bucket{k=\"a\",le=\"0.25\"} 2\n"
                     "t_hist_bucket{k=\"a\",le=\"1\"} 4\n"
                     "t_hist_bucket{k=\"a\",le=\"2.5\"} 6\n"
                     "t_hist_bucket{k=\"a\",le=\"+Inf\"} 8\n"
                     "t_hist_sum{k=\"a\"} 1008.75\n"
                     "t_hist_count{k=\"a\"} 8\n");
    expect_has(text, "envoy_swift_metrics_series_dropped_total 0\n");
    char *parsed = parse(text);
    expect_has(parsed, "family t_counter counter \"Help for a test.\"\n");
    expect_has(parsed, "sample t_counter_total{k=\"a\"} 3.5\n");
    expect_has(parsed, "sample t_counter_total{k=\"b\"} 1000000.0\n");
    expect_has(parsed, "sample t_gauge{k=\"a\"} -2.25\n");
    expect_has(parsed, "family t_hist histogram");
    expect_has(parsed, "sample t_hist_bucket{k=\"a\",le=\"0.25\"} 2.0\n");
    expect_has(parsed, "sample t_hist_bucket{k=\"a\",le=\"1\"} 4.0\n");
    expect_has(parsed, "sample t_hist_bucket{k=\"a\",le=\"+Inf\"} 8.0\n");
    expect_has(parsed, "sample t_hist_count{k=\"a\"} 8.0\n");
    expect_has(parsed, "sample t_hist_sum{k=\"a\"} 1008.75\n");
    char *flat = render(es_metrics_flat);
    expect_has(flat, "t_counter{k=\"a\"} 3.5\n");
    expect_has(flat, "t_hist.count{k=\"a\"} 8\nt_hist.sum{k=\"a\"} 1008.75\n");
    free(flat);
    free(parsed);
    free(text);
    es_metric_reset_families();
}

static void test_numbers(void **state)
{
    es_buf_t b;
    es_buf_init(&b);
    const double v[] = {0, -0.0, 3, -4, 0.1, 1e20, 1.0 / 3, INFINITY, -INFINITY, NAN};
    for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        es_metrics_number(&b, v[i]);
        es_buf_append(&b, " ", 1);
    }
    es_buf_append(&b, "", 1);
    assert_string_equal(b.base, "0 0 3 -4 0.1 1e+20 0.3333333333333333 +Inf -Inf NaN ");
    es_buf_dispose(&b);
}

static void test_label_escaping(void **state)
{
    es_metric_reset_families();
    static const char *const k[] = {"path", "n"};
    int c = define("t_esc", ES_METRIC_COUNTER, k, 2, NULL, 0);
    const char *v[] = {"a\\b\"c\nd", "x"};
    const size_t lens[] = {7, 1};
    es_metric_add(es_metric_series(c, v, lens, 2), 1);
    const char *w[] = {"with\0nul", "y"}; /* a NUL ends a value (they are text) */
    const size_t wl[] = {8, 1};
    es_metric_add(es_metric_series(c, w, wl, 2), 2);
    char *text = render(es_metrics_prometheus);
    expect_has(text, "t_esc_total{path=\"a\\\\b\\\"c\\nd\",n=\"x\"} 1\n");
    expect_has(text, "t_esc_total{path=\"with\",n=\"y\"} 2\n");
    char *parsed = parse(text);
    expect_has(parsed, "sample t_esc_total{n=\"x\",path=\"a\\\\b\\\"c\\nd\"} 1.0\n");
    free(parsed);
    free(text);
    /* A value count that is not the family's: no series. */
    assert_int_equal(es_metric_series(c, v, lens, 1), -1);
    es_metric_reset_families();
}

static void test_table_full(void **state)
{
    es_metric_reset_families();
    es_metrics_thread_init();
    static const char *const k[] = {"i"};
    int c = define("t_many", ES_METRIC_COUNTER, k, 1, NULL, 0);
    int32_t s = 0;
    unsigned made = 0;
    for (unsigned i = 0; i < ES_METRIC_SERIES + 2; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%u", i);
        s = series1(c, v);
        if (s < 0)
            break;
        es_metric_add(s, 1);
        made++;
    }
    assert_int_equal(made, ES_METRIC_SERIES);
    assert_int_equal(s, -1);
    char v[16];
    snprintf(v, sizeof(v), "%u", ES_METRIC_SERIES + 5);
    assert_int_equal(series1(c, v), -1);
    assert_int_equal(series1(c, "7"), 7); /* existing ones are still found */
    es_metric_add(-1, 1);
    char *text = render(es_metrics_prometheus);
    expect_has(text, "envoy_swift_metrics_series_dropped_total 2\n");
    expect_has(text, "t_many_total{i=\"1023\"} 1\n");
    char *parsed = parse(text);
    expect_has(parsed, "sample envoy_swift_metrics_series_dropped_total{} 2.0\n");
    free(parsed);
    free(text);
    char *flat = render(es_metrics_flat);
    expect_has(flat, "metrics.series_dropped 2\n");
    free(flat);
    es_metric_reset_families();
}

/* Threads without a block record in block 0; threads with one in theirs; the scrape sums them. */
typedef struct {
    int family;
    int own;
} thread_arg_t;

static void record_thread(void *p)
{
    thread_arg_t *a = p;
    if (a->own)
        es_metrics_thread_init();
    int32_t s = series1(a->family, "x");
    for (int i = 0; i < 10000; i++)
        es_metric_add(s, 1);
}

static void test_threads_summed(void **state)
{
    es_metric_reset_families();
    static const char *const k[] = {"k"};
    int c = define("t_threads", ES_METRIC_COUNTER, k, 1, NULL, 0);
    uv_thread_t t[8];
    thread_arg_t a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (thread_arg_t){.family = c, .own = i % 2};
        assert_int_equal(uv_thread_create(&t[i], record_thread, &a[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        uv_thread_join(&t[i]);
    char *text = render(es_metrics_prometheus);
    expect_has(text, "t_threads_total{k=\"x\"} 80000\n");
    free(text);
    es_metric_reset_families();
}

/* ---- built-in metrics and the scrape ---- */

static void test_builtin_and_scrape(void **state)
{
    es_metric_reset_families();
    es_metrics_thread_init();
    /* A hand-made config: listener "main" (routes "api" and an unnamed one, filters auth and log) and an
     * unnamed listener; clusters "backend" and "b2". */
    es_route_config_t routes[2] = {{.name = "api", .index = 0}, {.name = NULL, .index = 1}};
    es_filter_config_t filters[2] = {{.name = "auth"}, {.name = "log"}};
    es_filter_config_t filters2[1] = {{.name = "auth"}};
    es_listener_config_t listeners[2] = {
        {.name = "main", .routes = routes, .nroutes = 2, .filters = filters, .nfilters = 2},
        {.name = NULL, .filters = filters2, .nfilters = 1},
    };
    es_cluster_config_t clusters[2] = {{.name = "backend", .index = 0}, {.name = "b2", .index = 1}};
    es_config_t cfg = {.listeners = listeners, .nlisteners = 2, .clusters = clusters, .nclusters = 2};
    char err[256];
    assert_int_equal(es_builtin_metrics_init(&cfg, err, sizeof(err)), 0);

    es_builtin_request_done(0, &routes[0], 200, 0.003);
    es_builtin_request_done(0, &routes[0], 204, 0.02);
    es_builtin_request_done(0, &routes[1], 503, 2);
    es_builtin_request_done(0, NULL, 404, 0.0001);
    es_builtin_request_done(1, NULL, 0, 0.5);  /* no status: the duration only */
    es_builtin_request_done(7, NULL, 200, 1);  /* no such listener: nothing */
    es_builtin_upstream_rq(&clusters[1], 502);
    es_builtin_upstream_first_byte(&clusters[1], 0.01);
    es_builtin_filter_time(0, 0.0004);
    es_builtin_filter_time(2, 0.0004); /* listener 1's auth: the same series as listener 0's */
    es_builtin_filter_time(1, 0.2);
    es_builtin_filter_time(3, 1);      /* no such filter */

    es_stats_add(ES_STAT_BAD_REQUESTS, 3);
    es_stats_add(ES_STAT_CONNECTIONS, 2);
    es_stats_sub(ES_STAT_CONNECTIONS, 5);  /* per-worker gauges may dip below 0 in one block */
    es_stats_add(ES_STAT_CONNECTIONS, 4);

    char *text = render(es_scrape_prometheus);
    expect_has(text, "# TYPE envoy_swift_downstream_rq_400_total counter\nenvoy_swift_downstream_rq_400_total 3\n");
    expect_has(text, "# TYPE envoy_swift_downstream_connections_active gauge\n"
                     "envoy_swift_downstream_connections_active 1\n");
    char *parsed = parse(text);
    expect_has(parsed, "sample envoy_swift_downstream_rq_400_total{} 3.0\n");
    expect_has(parsed, "family envoy_swift_server_workers gauge");
    expect_has(parsed, "sample envoy_swift_downstream_connections_active{} 1.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_total{code_class=\"2xx\",listener=\"main\","
                       "route=\"api\"} 2.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_total{code_class=\"5xx\",listener=\"main\","
                       "route=\"route1\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_total{code_class=\"4xx\",listener=\"main\","
                       "route=\"\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_total{code_class=\"1xx\",listener=\"main\","
                       "route=\"api\"} 0.0\n"); /* made at init: a first increment is a rate */
    expect_has(parsed, "sample envoy_swift_downstream_rq_duration_seconds_count{listener=\"main\",route=\"api\"} 2.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_duration_seconds_bucket{le=\"0.005\",listener=\"main\","
                       "route=\"api\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_duration_seconds_count{listener=\"listener1\","
                       "route=\"\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_downstream_rq_duration_seconds_sum{listener=\"listener1\","
                       "route=\"\"} 0.5\n");
    expect_has(parsed, "sample envoy_swift_upstream_rq_total{cluster=\"b2\",code_class=\"5xx\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_upstream_rq_total{cluster=\"backend\",code_class=\"5xx\"} 0.0\n");
    expect_has(parsed, "sample envoy_swift_upstream_rq_first_byte_seconds_count{cluster=\"b2\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_filter_hook_duration_seconds_count{filter=\"auth\"} 2.0\n");
    expect_has(parsed, "sample envoy_swift_filter_hook_duration_seconds_bucket{filter=\"auth\",le=\"0.0005\"} 2.0\n");
    expect_has(parsed, "sample envoy_swift_filter_hook_duration_seconds_count{filter=\"log\"} 1.0\n");
    free(parsed);
    free(text);

    char *flat = render(es_scrape_flat);
    expect_has(flat, "downstream.rq_400 3\n");
    expect_has(flat, "downstream.rq{listener=\"main\",route=\"api\",code_class=\"2xx\"} 2\n");
    expect_has(flat, "filter.hook_duration_seconds.count{filter=\"auth\"} 2\n");
    free(flat);
    es_builtin_metrics_free();
    es_metric_reset_families();
}

/* ---- worker processes over shared memory (last: the process stays attached) ---- */

static int fam_c, fam_g, fam_h;

/* A worker: records in block `block`, exits. */
static void worker(unsigned block, double n)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        es_metrics_own_block(block);
        int32_t c = series1(fam_c, "w"), g = series1(fam_g, "w"), h = series1(fam_h, "w");
        if (c < 0 || g < 0 || h < 0)
            _exit(2);
        es_metric_add(c, n);
        es_metric_set(g, 10);
        for (int i = 0; i < (int)n; i++)
            es_metric_observe(h, 1.5);
        /* A series only this worker has. */
        char mine[16];
        snprintf(mine, sizeof(mine), "only%u", block);
        es_metric_add(series1(fam_c, mine), 1);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_workers_summed_and_retired(void **state)
{
    es_metric_reset_families();
    size_t size = es_metrics_shared_size(4);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    es_metrics_attach(mem, 4);
    static const char *const k[] = {"k"};
    static const double bounds[] = {1, 2};
    fam_c = define("w_requests", ES_METRIC_COUNTER, k, 1, NULL, 0);
    fam_g = define("w_open", ES_METRIC_GAUGE, k, 1, NULL, 0);
    fam_h = define("w_lat", ES_METRIC_HISTOGRAM, k, 1, bounds, 2);
    /* The supervisor records in block 0 too. */
    es_metric_add(series1(fam_c, "w"), 100);

    worker(1, 1);
    worker(2, 2);
    worker(3, 3);
    char *text = render(es_metrics_prometheus);
    char *parsed = parse(text);
    expect_has(parsed, "sample w_requests_total{k=\"w\"} 106.0\n");
    expect_has(parsed, "sample w_requests_total{k=\"only2\"} 1.0\n");
    expect_has(parsed, "sample w_open{k=\"w\"} 30.0\n");
    expect_has(parsed, "sample w_lat_bucket{k=\"w\",le=\"1\"} 0.0\n");
    expect_has(parsed, "sample w_lat_bucket{k=\"w\",le=\"2\"} 6.0\n");
    expect_has(parsed, "sample w_lat_count{k=\"w\"} 6.0\n");
    expect_has(parsed, "sample w_lat_sum{k=\"w\"} 9.0\n");
    /* One # TYPE per family, though three blocks have it. */
    assert_non_null(strstr(text, "# TYPE w_lat histogram\n"));
    assert_null(strstr(strstr(text, "# TYPE w_lat histogram\n") + 1, "# TYPE w_lat histogram\n"));
    free(parsed);
    free(text);

    /* Worker 2 exits: its counts stay, its gauge goes; its block is clean for the next worker. */
    es_metrics_retire(2);
    text = render(es_metrics_prometheus);
    parsed = parse(text);
    expect_has(parsed, "sample w_requests_total{k=\"w\"} 106.0\n");
    expect_has(parsed, "sample w_requests_total{k=\"only2\"} 1.0\n");
    expect_has(parsed, "sample w_open{k=\"w\"} 20.0\n");
    expect_has(parsed, "sample w_lat_count{k=\"w\"} 6.0\n");
    expect_has(parsed, "sample w_lat_bucket{k=\"w\",le=\"2\"} 6.0\n");
    free(parsed);
    free(text);
    worker(2, 4);
    es_metrics_retire(1);
    es_metrics_retire(3);
    text = render(es_metrics_prometheus);
    parsed = parse(text);
    expect_has(parsed, "sample w_requests_total{k=\"w\"} 110.0\n");
    expect_has(parsed, "sample w_requests_total{k=\"only1\"} 1.0\n");
    expect_has(parsed, "sample w_open{k=\"w\"} 10.0\n");
    expect_has(parsed, "sample w_lat_count{k=\"w\"} 10.0\n");
    expect_has(parsed, "sample w_lat_sum{k=\"w\"} 15.0\n");
    free(parsed);
    free(text);
    es_metrics_retire(2);
    text = render(es_metrics_prometheus);
    assert_null(strstr(text, "w_open{")); /* no live worker holds the gauge */
    expect_has(text, "w_requests_total{k=\"w\"} 110\n");
    free(text);

    /* es_scrape_prometheus with the per-filter table of the shared stats. */
    es_stats_shared_t *st = calloc(1, es_stats_shared_size(2));
    assert_non_null(st);
    es_stats_attach(st, 2);
    es_stat_filter_t *f = es_stats_filter("auth\"x");
    atomic_store(&f->crashes, 2);
    atomic_store(&f->quarantined, 1);
    es_stats_inc(ES_STAT_WORKER_CRASHES);
    text = render(es_scrape_prometheus);
    parsed = parse(text);
    expect_has(parsed, "sample envoy_swift_filter_crashes_total{filter=\"auth\\\"x\"} 2.0\n");
    expect_has(parsed, "sample envoy_swift_filter_quarantined{filter=\"auth\\\"x\"} 1.0\n");
    expect_has(parsed, "sample envoy_swift_server_worker_crashes_total{} 1.0\n");
    expect_has(parsed, "sample w_requests_total{k=\"w\"} 110.0\n");
    free(parsed);
    free(text);
    text = render(es_scrape_flat);
    expect_has(text, "server.worker_crashes 1\n");
    expect_has(text, "filter.auth\"x.crashes 2\n");
    expect_has(text, "w_requests{k=\"w\"} 110\n");
    free(text);
    /* The stats stay attached to `st` for the rest of the process: it is not freed. */
    es_metric_reset_families();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_define_dedupe_conflicts),
        cmocka_unit_test(test_names_sanitised),
        cmocka_unit_test(test_values_and_buckets),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_table_full),
        cmocka_unit_test(test_threads_summed),
        cmocka_unit_test(test_builtin_and_scrape),
        cmocka_unit_test(test_workers_summed_and_retired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

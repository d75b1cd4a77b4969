/*
 * es_config_load: the valid shapes, and for every kind of mistake the exact line the operator sees.
 * Each test writes YAML into a private mkdtemp folder that the group teardown removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static char tmpdir[PATH_MAX];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/es-config-test.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes `text` to tmpdir/name; returns the path (static buffer, valid until the next call). */
static const char *write_file(const char *name, const char *text)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static int load(es_config_t *cfg, const char *yaml, char *err, size_t errlen)
{
    return es_config_load(cfg, write_file("conf.yaml", yaml), err, errlen);
}

static void assert_zeroed(const es_config_t *cfg)
{
    static const es_config_t zero;
    assert_memory_equal(cfg, &zero, sizeof zero);
}

/* The load fails and the message is exactly "<tmpdir>/conf.yaml:<expected>". */
static void expect_error(const char *yaml, const char *expected)
{
    es_config_t cfg;
    char err[1024], want[PATH_MAX + 1024];
    assert_int_equal(load(&cfg, yaml, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/conf.yaml:%s", tmpdir, expected);
    assert_string_equal(err, want);
    assert_null(strchr(err, '\n'));
    assert_zeroed(&cfg);
}

/* The load fails and the message starts with "<tmpdir>/conf.yaml:<prefix>". */
static void expect_error_prefix(const char *yaml, const char *prefix)
{
    es_config_t cfg;
    char err[1024], want[PATH_MAX + 1024];
    assert_int_equal(load(&cfg, yaml, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/conf.yaml:%s", tmpdir, prefix);
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("got:  %s\nwant: %s...", err, want);
    assert_null(strchr(err, '\n'));
    assert_zeroed(&cfg);
}

/* A minimal valid listener, for tests about other parts. */
#define LISTENER "listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 10000\n"
#define DIRECT_ROUTE "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
#define MINIMAL LISTENER DIRECT_ROUTE

/* ---- valid configs ------------------------------------------------------------------------ */

static const char full_example[] =
    "workers: 4\n"                                                                  /* 1 */
    "listeners:\n"                                                                  /* 2 */
    "  - name: main\n"                                                              /* 3 */
    "    address: 127.0.0.1\n"                                                      /* 4 */
    "    port: 10000\n"                                                             /* 5 */
    "    http_filters:\n"                                                           /* 6 */
    "      - name: auth\n"                                                          /* 7 */
    "        so_path: filters/libswiftfilter.so\n"                                  /* 8 */
    "        plugin_name: auth\n"                                                   /* 9 */
    "        plugin_config: { token: s3cret, n: 3, list: [1, a], on: true }\n"      /* 10 */
    "      - name: noop\n"                                                          /* 11 */
    "        so_path: /opt/lib/libnoop.so\n"                                        /* 12 */
    "        plugin_name: noop\n"                                                   /* 13 */
    "    routes:\n"                                                                 /* 14 */
    "      - match: { prefix: /api, host: Example.COM }\n"                          /* 15 */
    "        cluster: backend\n"                                                    /* 16 */
    "      - match: { prefix: / }\n"                                                /* 17 */
    "        direct_response: { status: 200, body: \"hello\\n\" }\n"               /* 18 */
    "  - name: v6\n"                                                                /* 19 */
    "    address: \"::1\"\n"                                                        /* 20 */
    "    port: 0\n"                                                                 /* 21 */
    "    routes:\n"                                                                 /* 22 */
    "      - match: { prefix: / }\n"                                                /* 23 */
    "        direct_response: { status: 404 }\n"                                    /* 24 */
    "clusters:\n"                                                                   /* 25 */
    "  - name: backend\n"                                                           /* 26 */
    "    endpoints: [ { address: 127.0.0.1, port: 8080 }, { address: localhost, port: 8081 } ]\n" /* 27 */
    "    connect_timeout: 250ms\n"                                                  /* 28 */
    "  - name: other\n"                                                             /* 29 */
    "    endpoints:\n"                                                              /* 30 */
    "      - address: 10.0.0.1\n"                                                   /* 31 */
    "        port: 9000\n";                                                         /* 32 */

static void assert_ipv4(const struct sockaddr_storage *ss, socklen_t len, const char *ip, uint16_t port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char text[INET_ADDRSTRLEN];
    assert_int_equal(len, sizeof *sin);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), port);
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text));
    assert_string_equal(text, ip);
}

static void test_full_example(void **state)
{
    es_config_t cfg;
    char err[512] = "untouched", want[PATH_MAX + 64];
    const char *path = write_file("conf.yaml", full_example);
    assert_int_equal(es_config_load(&cfg, path, err, sizeof err), 0);
    assert_string_equal(err, "");

    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.dir, tmpdir);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.nlisteners, 2);
    assert_int_equal(cfg.nclusters, 2);

    es_listener_config_t *l = &cfg.listeners[0];
    assert_string_equal(l->name, "main");
    assert_string_equal(l->address, "127.0.0.1");
    assert_int_equal(l->port, 10000);
    assert_ipv4(&l->addr, l->addrlen, "127.0.0.1", 10000);
    assert_int_equal(l->line, 3);
    assert_int_equal(l->port_line, 5);

    assert_int_equal(l->nfilters, 2);
    assert_string_equal(l->filters[0].name, "auth");
    snprintf(want, sizeof want, "%s/filters/libswiftfilter.so", tmpdir);
    assert_string_equal(l->filters[0].so_path, want);
    assert_string_equal(l->filters[0].plugin_name, "auth");
    assert_string_equal(l->filters[0].plugin_config_json, "{\"token\":\"s3cret\",\"n\":3,\"list\":[1,\"a\"],\"on\":true}");
    assert_int_equal(l->filters[0].line, 7);
    assert_string_equal(l->filters[1].name, "noop");
    assert_string_equal(l->filters[1].so_path, "/opt/lib/libnoop.so");   /* absolute stays as is */
    assert_string_equal(l->filters[1].plugin_config_json, "null");
    assert_int_equal(l->filters[1].line, 11);

    assert_int_equal(l->nroutes, 2);
    es_route_config_t *r = &l->routes[0];
    assert_string_equal(r->prefix, "/api");
    assert_int_equal(r->prefix_len, 4);
    assert_string_equal(r->host, "example.com");
    assert_ptr_equal(r->cluster, &cfg.clusters[0]);
    assert_null(r->direct_body);
    assert_int_equal(r->line, 15);
    r = &l->routes[1];
    assert_string_equal(r->prefix, "/");
    assert_int_equal(r->prefix_len, 1);
    assert_null(r->host);
    assert_null(r->cluster);
    assert_int_equal(r->direct_status, 200);
    assert_string_equal(r->direct_body, "hello\n");
    assert_int_equal(r->direct_body_len, 6);
    assert_int_equal(r->line, 17);

    l = &cfg.listeners[1];
    assert_string_equal(l->name, "v6");
    assert_int_equal(l->port, 0);
    assert_int_equal(l->addrlen, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
    assert_int_equal(l->nfilters, 0);
    assert_null(l->filters);
    assert_int_equal(l->routes[0].direct_status, 404);
    assert_string_equal(l->routes[0].direct_body, "");   /* body defaults to "", never NULL */
    assert_int_equal(l->routes[0].direct_body_len, 0);

    es_cluster_config_t *c = &cfg.clusters[0];
    assert_string_equal(c->name, "backend");
    assert_int_equal(c->index, 0);
    assert_int_equal(c->line, 26);
    assert_int_equal(c->connect_timeout_ms, 250);
    assert_int_equal(c->nendpoints, 2);
    assert_string_equal(c->endpoints[0].address, "127.0.0.1");
    assert_int_equal(c->endpoints[0].port, 8080);
    assert_ipv4(&c->endpoints[0].addr, c->endpoints[0].addrlen, "127.0.0.1", 8080);
    assert_string_equal(c->endpoints[1].address, "localhost");
    assert_ipv4(&c->endpoints[1].addr, c->endpoints[1].addrlen, "127.0.0.1", 8081);
    assert_int_equal(c->endpoints[0].line, 27);

    c = &cfg.clusters[1];
    assert_string_equal(c->name, "other");
    assert_int_equal(c->index, 1);
    assert_int_equal(c->connect_timeout_ms, 1000);
    assert_int_equal(c->endpoints[0].line, 31);
    assert_ipv4(&c->endpoints[0].addr, c->endpoints[0].addrlen, "10.0.0.1", 9000);

    es_config_dispose(&cfg);
    assert_zeroed(&cfg);
    es_config_dispose(&cfg);   /* twice is harmless */
}

/* drain_timeout (top level) and each filter's crash_policy: defaults, values, errors. */
static void test_drain_timeout_and_crash_policy(void **state)
{
    es_config_t cfg;
    char err[512];
#define FILTER "    http_filters:\n      - name: f\n        so_path: f.so\n        plugin_name: f\n"
    assert_int_equal(load(&cfg, MINIMAL FILTER, err, sizeof err), 0);
    const es_filter_config_t *f = &cfg.listeners[0].filters[0];
    assert_int_equal(f->quarantine_after, 3);
    assert_int_equal(f->crash_window_ms, 60000);
    assert_int_equal(f->quarantine_bypass, 0);
    es_config_dispose(&cfg);

    assert_int_equal(load(&cfg, "drain_timeout: 2500ms\n" MINIMAL FILTER
                                "        crash_policy: { quarantine_after: 5, window: 10s, then: bypass }\n",
                          err, sizeof err), 0);
    f = &cfg.listeners[0].filters[0];
    assert_int_equal(cfg.drain_timeout_ms, 2500);
    assert_int_equal(f->quarantine_after, 5);
    assert_int_equal(f->crash_window_ms, 10000);
    assert_int_equal(f->quarantine_bypass, 1);
    es_config_dispose(&cfg);

    assert_int_equal(load(&cfg, MINIMAL FILTER "        crash_policy: { then: reject }\n", err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].filters[0].quarantine_bypass, 0);
    assert_int_equal(cfg.listeners[0].filters[0].quarantine_after, 3);
    es_config_dispose(&cfg);

    expect_error("drain_timeout: 0s\n" MINIMAL, "1: drain_timeout: must be greater than 0, got \"0s\"");
    expect_error(MINIMAL FILTER "        crash_policy: { then: ignore }\n",
                 "12: listeners[0].http_filters[0].crash_policy.then: expected reject or bypass, got \"ignore\"");
    expect_error(MINIMAL FILTER "        crash_policy: { quarantine_after: 0 }\n",
                 "12: listeners[0].http_filters[0].crash_policy.quarantine_after: expected an integer 1-1000, got \"0\"");
    expect_error(MINIMAL FILTER "        crash_policy: { after: 2 }\n",
                 "12: listeners[0].http_filters[0].crash_policy.after: unknown key (expected one of: quarantine_after, window, then)");
    expect_error(MINIMAL FILTER "        crash_policy: reject\n",
                 "12: listeners[0].http_filters[0].crash_policy: expected a mapping, got \"reject\"");
#undef FILTER
}

static void test_defaults(void **state)
{
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n",
                          err, sizeof err), 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* workers: one per CPU */
    assert_int_equal(cfg.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.drain_timeout_ms, 30000);
    assert_int_equal(cfg.clusters[0].connect_timeout_ms, 1000);
    assert_int_equal(cfg.listeners[0].nfilters, 0);
    assert_null(cfg.listeners[0].routes[0].host);
    es_config_dispose(&cfg);

    /* clusters may be absent, and explicit nulls read as absent */
    assert_int_equal(load(&cfg, "workers:\n" MINIMAL "    http_filters:\nclusters: ~\n", err, sizeof err), 0);
    assert_int_equal(cfg.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.nclusters, 0);
    assert_null(cfg.clusters);
    es_config_dispose(&cfg);
}

/* HTTP/2: a cluster's http2: true, a listener's http2.max_concurrent_streams (100 when absent). */
static void test_http2_settings(void **state)
{
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, LISTENER "    http2: { max_concurrent_streams: 250 }\n" DIRECT_ROUTE
                                "clusters:\n  - name: c\n    http2: true\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                                "  - name: d\n    endpoints: [{address: 127.0.0.1, port: 2}]\n",
                          err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].h2_max_concurrent_streams, 250);
    assert_int_equal(cfg.clusters[0].http2, 1);
    assert_int_equal(cfg.clusters[1].http2, 0);
    es_config_dispose(&cfg);
    assert_int_equal(load(&cfg, MINIMAL, err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].h2_max_concurrent_streams, 100);
    assert_int_equal(cfg.listeners[0].stream_idle_timeout_ms, 300000);
    es_config_dispose(&cfg);
    assert_int_equal(load(&cfg, LISTENER "    stream_idle_timeout: 0\n" DIRECT_ROUTE, err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].stream_idle_timeout_ms, 0);
    es_config_dispose(&cfg);
    expect_error(MINIMAL "clusters:\n  - name: c\n    http2: yes please\n    endpoints: [{address: 127.0.0.1, port: 1}]\n",
                 "10: clusters[0].http2: expected true or false, got \"yes please\"");
    expect_error_prefix(LISTENER "    http2: { max_concurrent_streams: 0 }\n" DIRECT_ROUTE,
                        "5: listeners[0].http2.max_concurrent_streams:");
    expect_error_prefix(LISTENER "    http2: { streams: 5 }\n" DIRECT_ROUTE, "5: listeners[0].http2.streams: unknown key");
}

/* buffer_limits per listener; timeout and timeout_status per filter; the defaults when absent. */
static void test_async_limits(void **state)
{
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, MINIMAL "    http_filters:\n      - name: f\n        so_path: f.so\n        plugin_name: f\n",
                          err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].buffer_high, 256 * 1024);
    assert_int_equal(cfg.listeners[0].buffer_low, 64 * 1024);
    assert_int_equal(cfg.listeners[0].filters[0].timeout_ms, 30000);
    assert_int_equal(cfg.listeners[0].filters[0].timeout_status, 504);
    es_config_dispose(&cfg);

    assert_int_equal(load(&cfg, MINIMAL "    buffer_limits: { high: 1MiB, low: 100000 }\n"
                                        "    http_filters:\n      - name: f\n        so_path: f.so\n        plugin_name: f\n"
                                        "        timeout: 250ms\n        timeout_status: 503\n",
                          err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].buffer_high, 1024 * 1024);
    assert_int_equal(cfg.listeners[0].buffer_low, 100000);
    assert_int_equal(cfg.listeners[0].filters[0].timeout_ms, 250);
    assert_int_equal(cfg.listeners[0].filters[0].timeout_status, 503);
    es_config_dispose(&cfg);

    /* high alone: low follows at a quarter */
    assert_int_equal(load(&cfg, MINIMAL "    buffer_limits: { high: 64k }\n", err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].buffer_high, 65536);
    assert_int_equal(cfg.listeners[0].buffer_low, 16384);
    es_config_dispose(&cfg);

    expect_error(MINIMAL "    buffer_limits: { high: 64k, low: 64k }\n",
                 "8: listeners[0].buffer_limits.low: low (65536) must be below high (65536)");
    expect_error(MINIMAL "    buffer_limits: { high: lots }\n",
                 "8: listeners[0].buffer_limits.high: expected a size like \"65536\", \"64KiB\" or \"1MiB\", got \"lots\"");
    expect_error(MINIMAL "    buffer_limits: { high: 100 }\n",
                 "8: listeners[0].buffer_limits.high: must be between 4096 and 1073741824 bytes, got \"100\"");
    expect_error(MINIMAL "    buffer_limits: 5\n", "8: listeners[0].buffer_limits: expected a mapping, got \"5\"");
    expect_error(MINIMAL "    http_filters:\n      - name: f\n        so_path: f.so\n        plugin_name: f\n"
                         "        timeout_status: 200\n",
                 "12: listeners[0].http_filters[0].timeout_status: expected an integer 400-599, got \"200\"");
}

/* Connection timeouts and limits per listener, idle timeout and retries per cluster: defaults and errors. */
static void test_connection_limits(void **state)
{
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n",
                          err, sizeof err), 0);
    const es_listener_config_t *l = &cfg.listeners[0];
    assert_int_equal(l->request_headers_timeout_ms, 10000);
    assert_int_equal(l->idle_timeout_ms, 60000);
    assert_int_equal(l->request_timeout_ms, 0);
    assert_int_equal(l->delayed_close_timeout_ms, 1000);
    assert_int_equal(l->max_request_headers, 60 * 1024);
    assert_int_equal(l->max_body, 8 * 1024 * 1024);
    assert_int_equal(cfg.clusters[0].idle_timeout_ms, 4000);
    assert_int_equal(cfg.clusters[0].retries_on_reset, 1);
    es_config_dispose(&cfg);

    assert_int_equal(load(&cfg, MINIMAL "    request_headers_timeout: 1s\n    idle_timeout: 0\n"
                                        "    request_timeout: 2.5s\n    delayed_close_timeout: 300ms\n"
                                        "    max_request_headers_kb: 8\n    buffer_limits: { max_body: 1MiB }\n"
                                        "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                                        "    idle_timeout: 750ms\n    retries: { on_reset: 3 }\n",
                          err, sizeof err), 0);
    l = &cfg.listeners[0];
    assert_int_equal(l->request_headers_timeout_ms, 1000);
    assert_int_equal(l->idle_timeout_ms, 0);
    assert_int_equal(l->request_timeout_ms, 2500);
    assert_int_equal(l->delayed_close_timeout_ms, 300);
    assert_int_equal(l->max_request_headers, 8192);
    assert_int_equal(l->max_body, 1024 * 1024);
    assert_int_equal(cfg.clusters[0].idle_timeout_ms, 750);
    assert_int_equal(cfg.clusters[0].retries_on_reset, 3);
    es_config_dispose(&cfg);

    /* the slow-loris defence and the drain cannot be turned off; max_request_headers_kb stops at 1 MiB */
    expect_error(MINIMAL "    request_headers_timeout: 0\n",
                 "8: listeners[0].request_headers_timeout: must be greater than 0, got \"0\"");
    expect_error(MINIMAL "    delayed_close_timeout: 0s\n",
                 "8: listeners[0].delayed_close_timeout: must be greater than 0, got \"0s\"");
    expect_error(MINIMAL "    idle_timeout: soon\n",
                 "8: listeners[0].idle_timeout: expected a duration like \"1s\" or \"250ms\", got \"soon\"");
    expect_error(MINIMAL "    max_request_headers_kb: 1025\n",
                 "8: listeners[0].max_request_headers_kb: expected an integer 1-1024, got \"1025\"");
    expect_error(MINIMAL "    buffer_limits: { max_body: 10 }\n",
                 "8: listeners[0].buffer_limits.max_body: must be between 1024 and 1073741824 bytes, got \"10\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    retries: { on_reset: 11 }\n",
                 "11: clusters[0].retries.on_reset: expected an integer 0-10, got \"11\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    retries: { on_timeout: 1 }\n",
                 "11: clusters[0].retries.on_timeout: unknown key (expected one of: on_reset)");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    retries: 2\n",
                 "11: clusters[0].retries: expected a mapping, got \"2\"");
}

/* Tunnels: upgrades (default [websocket]), connect: {}, tunnel_idle_timeout (default 300s, 0 = never). */
static void test_tunnels(void **state)
{
#define CLUSTER_C "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
#define ROUTES_C "    routes:\n      - match: { prefix: / }\n        cluster: c\n"
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, LISTENER ROUTES_C CLUSTER_C, err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].tunnel_idle_timeout_ms, 300000);
    assert_int_equal(cfg.listeners[0].routes[0].upgrade_websocket, 1);
    assert_int_equal(cfg.listeners[0].routes[0].connect, 0);
    es_config_dispose(&cfg);

    assert_int_equal(load(&cfg, LISTENER "    tunnel_idle_timeout: 0\n"
                                "    routes:\n"
                                "      - match: { prefix: /ws }\n        cluster: c\n        upgrades: [websocket]\n"
                                "      - match: { prefix: /plain }\n        cluster: c\n        upgrades: []\n"
                                "      - match: { prefix: / }\n        cluster: c\n        connect: {}\n" CLUSTER_C,
                          err, sizeof err), 0);
    const es_listener_config_t *l = &cfg.listeners[0];
    assert_int_equal(l->tunnel_idle_timeout_ms, 0);
    assert_int_equal(l->routes[0].upgrade_websocket, 1);
    assert_int_equal(l->routes[1].upgrade_websocket, 0);
    assert_int_equal(l->routes[2].upgrade_websocket, 1);
    assert_int_equal(l->routes[2].connect, 1);
    es_config_dispose(&cfg);

    assert_int_equal(load(&cfg, LISTENER "    tunnel_idle_timeout: 90s\n" ROUTES_C CLUSTER_C, err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].tunnel_idle_timeout_ms, 90000);
    es_config_dispose(&cfg);

    expect_error(LISTENER ROUTES_C "        upgrades: [h2c]\n" CLUSTER_C,
                 "8: listeners[0].routes[0].upgrades[0]: unknown upgrade \"h2c\" (expected websocket, or an empty list for none)");
    expect_error(LISTENER ROUTES_C "        upgrades: websocket\n" CLUSTER_C,
                 "8: listeners[0].routes[0].upgrades: expected a list, got \"websocket\"");
    expect_error(LISTENER ROUTES_C "        upgrades:\n" CLUSTER_C,
                 "8: listeners[0].routes[0].upgrades: expected a list, got null");
    expect_error(LISTENER ROUTES_C "        upgrades: [[websocket]]\n" CLUSTER_C,
                 "8: listeners[0].routes[0].upgrades[0]: expected a string, got a list");
    expect_error(LISTENER ROUTES_C "        connect: { to: \"example.com:443\" }\n" CLUSTER_C,
                 "8: listeners[0].routes[0].connect: expected {} (it takes no options yet), got a mapping");
    expect_error(LISTENER ROUTES_C "        connect: yes\n" CLUSTER_C,
                 "8: listeners[0].routes[0].connect: expected {} (it takes no options yet), got \"yes\"");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
                          "        connect: {}\n",
                 "8: listeners[0].routes[0].connect: only a route with a \"cluster\" can tunnel (this one has direct_response)");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        stats: {}\n        upgrades: []\n",
                 "8: listeners[0].routes[0].upgrades: only a route with a \"cluster\" can tunnel (this one has stats)");
    expect_error(LISTENER "    tunnel_idle_timeout: forever\n" ROUTES_C CLUSTER_C,
                 "5: listeners[0].tunnel_idle_timeout: expected a duration like \"1s\" or \"250ms\", got \"forever\"");
#undef CLUSTER_C
#undef ROUTES_C
}

/* tls keys: the checks that need no certificate files (test_proxy_tls covers files and handshakes). */
static void test_tls_keys(void **state)
{
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                                        "    tls: { sni: api.internal, verify: false }\n",
                          err, sizeof err), 0);
    assert_non_null(cfg.clusters[0].tls_ctx);
    assert_string_equal(cfg.clusters[0].tls_sni, "api.internal");
    assert_int_equal(cfg.clusters[0].tls_verify, 0);
    assert_null(cfg.listeners[0].tls_ctx);
    es_config_dispose(&cfg);
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    tls: { verify: maybe }\n",
                 "11: clusters[0].tls.verify: expected true or false, got \"maybe\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    tls: { verify: false, ca: ca.pem }\n",
                 "11: clusters[0].tls.ca: a CA file with verify: false would be ignored; remove one of them");
    expect_error(MINIMAL "    tls: { cert: c.pem }\n", "8: listeners[0].tls: missing required key \"key\"");
    expect_error(MINIMAL "    tls: yes\n", "8: listeners[0].tls: expected a mapping, got \"yes\"");
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        { "0", 0 }, { "65536", 65536 }, { "64k", 65536 }, { "64KiB", 65536 }, { "64KB", 65536 }, { "1M", 1048576 },
        { "2MiB", 2097152 }, { "1GiB", 1073741824 }, { "7B", 7 },
    };
    static const char *const bad[] = { "", "k", "1.5M", "-1", "1 MiB", "1kib", "1T", "99999999999999999999", "18014398509481984k" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t n = 1;
        if (es_config_parse_size(good[i].text, &n) != 0) fail_msg("rejected \"%s\"", good[i].text);
        if (n != good[i].bytes) fail_msg("\"%s\" -> %llu", good[i].text, (unsigned long long)n);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t n = 1;
        if (es_config_parse_size(bad[i], &n) != -1) fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(n, 1);
    }
}

static void test_header_matches(void **state)
{
    es_config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, LISTENER "    routes:\n      - match: { prefix: /, headers: { X-Route: canary, x-b: \"\" } }\n"
                                         "        direct_response: { status: 200 }\n", err, sizeof err), 0);
    const es_route_config_t *r = &cfg.listeners[0].routes[0];
    assert_int_equal(r->nheaders, 2);
    assert_string_equal(r->headers[0].name, "x-route");   /* names compare case-insensitively */
    assert_string_equal(r->headers[0].value, "canary");   /* values exactly */
    assert_string_equal(r->headers[1].name, "x-b");
    assert_string_equal(r->headers[1].value, "");
    es_config_dispose(&cfg);
    expect_error(LISTENER "    routes:\n      - match: { prefix: /, headers: [x-route] }\n"
                          "        direct_response: { status: 200 }\n",
                 "6: listeners[0].routes[0].match.headers: expected a mapping, got a list");
    expect_error(LISTENER "    routes:\n      - match:\n          prefix: /\n          headers:\n            x-route: [a]\n"
                          "        direct_response: { status: 200 }\n",
                 "9: listeners[0].routes[0].match.headers.x-route: expected a string, got a list");
}

static void test_clusters_before_listeners_and_aliases(void **state)
{
    es_config_t cfg;
    char err[512];
    const char *yaml =
        "clusters:\n"
        "  - name: b\n"
        "    endpoints: [{address: \"[::1]\", port: 80}]\n"
        "    connect_timeout: 1.5\n"
        "listeners:\n"
        "  - name: one\n"
        "    address: localhost\n"
        "    port: 1\n"
        "    routes: &routes\n"
        "      - match: { prefix: /b }\n"
        "        cluster: b\n"
        "  - name: two\n"
        "    address: 0.0.0.0\n"
        "    port: 2\n"
        "    routes: *routes\n";
    assert_int_equal(load(&cfg, yaml, err, sizeof err), 0);
    assert_int_equal(cfg.clusters[0].connect_timeout_ms, 1500);
    assert_int_equal(cfg.clusters[0].endpoints[0].addr.ss_family, AF_INET6);
    assert_ipv4(&cfg.listeners[0].addr, cfg.listeners[0].addrlen, "127.0.0.1", 1);
    assert_ipv4(&cfg.listeners[1].addr, cfg.listeners[1].addrlen, "0.0.0.0", 2);
    assert_ptr_equal(cfg.listeners[0].routes[0].cluster, &cfg.clusters[0]);
    assert_ptr_equal(cfg.listeners[1].routes[0].cluster, &cfg.clusters[0]);
    assert_string_equal(cfg.listeners[1].routes[0].prefix, "/b");
    es_config_dispose(&cfg);
}

static const char *filter_json(es_config_t *cfg, const char *plugin_config, char *err, size_t errlen)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             MINIMAL "    http_filters:\n      - name: f\n        so_path: f.so\n        plugin_name: f\n"
                     "        plugin_config:%s\n",
             plugin_config);
    if (load(cfg, yaml, err, errlen) != 0) return NULL;
    return cfg->listeners[0].filters[0].plugin_config_json;
}

static void expect_json(const char *plugin_config, const char *json)
{
    es_config_t cfg;
    char err[1024] = "";
    const char *got = filter_json(&cfg, plugin_config, err, sizeof err);
    if (!got) fail_msg("load failed: %s", err);
    assert_string_equal(got, json);
    es_config_dispose(&cfg);
}

static void test_plugin_config_json(void **state)
{
    expect_json(" { token: s3cret, n: 3, list: [1, a], on: true }",
                "{\"token\":\"s3cret\",\"n\":3,\"list\":[1,\"a\"],\"on\":true}");
    expect_json(" []", "[]");
    expect_json(" {}", "{}");
    expect_json(" ~", "null");   /* explicit null reads as absent */
    expect_json(" 42", "42");
    expect_json(" hello world", "\"hello world\"");
    /* quoted scalars stay strings; plain ones become literals only when they look like them */
    expect_json(" [\"3\", '3', 3, \"true\", True, FALSE, null, Null, '', ~, yes, on, 0.5, -0.5]",
                "[\"3\",\"3\",3,\"true\",true,false,null,null,\"\",null,\"yes\",\"on\",0.5,-0.5]");
    /* numbers are rewritten into JSON's stricter grammar */
    expect_json(" [+5, 007, .5, 1., -1.5e3, 2E+10, 0x1F, 0o17, -0]",
                "[5,7,0.5,1.0,-1.5e3,2e+10,31,15,-0]");
    expect_json(" [.inf, .nan, 1_000, 0x, 1e, 12:30, 1.2.3, -]",
                "[\".inf\",\".nan\",\"1_000\",\"0x\",\"1e\",\"12:30\",\"1.2.3\",\"-\"]");
    /* JSON string escaping, including control characters and a NUL */
    expect_json(" \"q\\\" b\\\\ n\\n t\\t r\\r bs\\b ff\\f c\\x01 nul\\0 del\\x7f \\u00e9\"",
                "\"q\\\" b\\\\ n\\n t\\t r\\r bs\\b ff\\f c\\u0001 nul\\u0000 del\x7f \xc3\xa9\"");
    /* keys are always strings, whatever they look like */
    expect_json(" { 1: a, true: b, null: c }", "{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\"}");
    /* block style, nesting, literal blocks, and aliases expanded */
    expect_json("\n          upstream:\n            base: &b { x: 1, y: [a, {z: null}] }\n"
                "            copy: *b\n          text: |\n            line 1\n            line 2\n",
                "{\"upstream\":{\"base\":{\"x\":1,\"y\":[\"a\",{\"z\":null}]},\"copy\":{\"x\":1,\"y\":[\"a\",{\"z\":null}]}},"
                "\"text\":\"line 1\\nline 2\\n\"}");
}

static void test_plugin_config_limits(void **state)
{
    es_config_t cfg;
    char err[2048], want[PATH_MAX + 256];

    /* an alias to its own ancestor: rejected by depth, never looped on */
    assert_null(filter_json(&cfg, " &a [ *a ]", err, sizeof err));
    snprintf(want, sizeof want, "%s/conf.yaml:12: listeners[0].http_filters[0].plugin_config[0][0]", tmpdir);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    assert_non_null(strstr(err, ": nested deeper than 64 levels (an alias cycle?)"));
    assert_zeroed(&cfg);

    /* 65 levels of plain nesting is too deep, 64 is fine */
    char deep[256];
    memset(deep, 0, sizeof deep);
    deep[0] = ' ';
    memset(deep + 1, '[', 64);
    memset(deep + 65, ']', 64);
    assert_non_null(filter_json(&cfg, deep, err, sizeof err));
    es_config_dispose(&cfg);
    memset(deep + 1, '[', 65);
    memset(deep + 66, ']', 65);
    assert_null(filter_json(&cfg, deep, err, sizeof err));
    assert_non_null(strstr(err, "nested deeper than 64 levels"));

    /* "billion laughs": each level doubles; the visit budget stops it quickly */
    char laughs[4096] = "\n          a0: &a0 [x, x]\n";
    for (int i = 1; i < 40; i++) {
        size_t used = strlen(laughs);
        snprintf(laughs + used, sizeof laughs - used, "          a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
    }
    assert_null(filter_json(&cfg, laughs, err, sizeof err));
    assert_non_null(strstr(err, "too many nodes once aliases are expanded (limit 1000000)"));
    assert_zeroed(&cfg);

    /* repeated keys mean different things to different JSON decoders */
    assert_null(filter_json(&cfg, " { b: 1, a: 2, b: 3 }", err, sizeof err));
    snprintf(want, sizeof want, "%s/conf.yaml:12: listeners[0].http_filters[0].plugin_config.b: duplicate key (first at line 12)",
             tmpdir);
    assert_string_equal(err, want);

    assert_null(filter_json(&cfg, " { [a]: 1 }", err, sizeof err));
    assert_non_null(strstr(err, "plugin_config: mapping keys must be strings to become JSON, got a list"));
}

static void test_relative_config_path(void **state)
{
    char cwd[PATH_MAX], err[512];
    es_config_t cfg;
    write_file("rel.yaml", MINIMAL "    http_filters: [{name: f, so_path: lib.so, plugin_name: f}]\n");
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    int rc = es_config_load(&cfg, "rel.yaml", err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.path, "rel.yaml");
    assert_string_equal(cfg.dir, ".");
    assert_string_equal(cfg.listeners[0].filters[0].so_path, "./lib.so");
    es_config_dispose(&cfg);
}

/* ---- errors: unknown keys ----------------------------------------------------------------- */

static void test_unknown_key_top(void **state)
{
    expect_error("workers: 1\nlisten: []\n" MINIMAL,
                 "2: listen: unknown key (expected one of: workers, listeners, clusters, drain_timeout)");
}

static void test_unknown_key_listener(void **state)
{
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n    prot: 10000\n" DIRECT_ROUTE,
                 "4: listeners[0].prot: unknown key (expected one of: name, address, port, http_filters, routes, buffer_limits, "
                 "request_headers_timeout, idle_timeout, request_timeout, delayed_close_timeout, max_request_headers_kb, tls, http2, "
                 "tunnel_idle_timeout, stream_idle_timeout, access_log)");
}

static void test_unknown_key_route(void **state)
{
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
                          "        timeout: 5s\n",
                 "8: listeners[0].routes[0].timeout: unknown key (expected one of: match, cluster, direct_response, stats, upgrades, connect, name, filter_config, ready)");
    expect_error(LISTENER "    routes:\n      - match: { prefix: /, path: /x }\n        direct_response: { status: 200 }\n",
                 "6: listeners[0].routes[0].match.path: unknown key (expected one of: prefix, host, headers)");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200, bdy: x }\n",
                 "7: listeners[0].routes[0].direct_response.bdy: unknown key (expected one of: status, body)");
}

static void test_unknown_key_cluster(void **state)
{
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n    lb: rr\n",
                 "11: clusters[0].lb: unknown key (expected one of: name, endpoints, connect_timeout, idle_timeout, retries, tls, http2)");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints:\n      - address: 127.0.0.1\n        port: 1\n"
                         "        weight: 2\n",
                 "13: clusters[0].endpoints[0].weight: unknown key (expected one of: address, port)");
}

static void test_unknown_key_filter(void **state)
{
    expect_error(MINIMAL "    http_filters:\n      - name: f\n        so_path: f.so\n        plugin: f\n",
                 "11: listeners[0].http_filters[0].plugin: unknown key (expected one of: name, so_path, plugin_name, plugin_config, timeout, timeout_status, crash_policy)");
}

static void test_duplicate_key(void **state)
{
    expect_error(LISTENER "    port: 10001\n" DIRECT_ROUTE, "5: listeners[0].port: duplicate key (first at line 4)");
}

/* ---- errors: types and ranges ------------------------------------------------------------- */

static void test_port_not_integer(void **state)
{
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n\n    port: abc\n" DIRECT_ROUTE,
                 "5: listeners[0].port: expected an integer 0-65535, got \"abc\"");
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 80.5\n" DIRECT_ROUTE,
                 "4: listeners[0].port: expected an integer 0-65535, got \"80.5\"");
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n    port: [80]\n" DIRECT_ROUTE,
                 "4: listeners[0].port: expected an integer 0-65535, got a list");
}

static void test_listeners_not_list(void **state)
{
    expect_error("workers: 1\nlisteners:\n  name: main\n  address: 127.0.0.1\n",
                 "2: listeners: expected a list, got a mapping");
    expect_error("listeners: main\n", "1: listeners: expected a list, got \"main\"");
    expect_error("listeners:\n", "1: listeners: expected a list, got null");
    expect_error("listeners: []\n", "1: listeners: expected a non-empty list");
    expect_error("listeners: [ main ]\n", "1: listeners[0]: expected a mapping, got \"main\"");
}

static void test_match_is_list(void **state)
{
    expect_error(LISTENER "    routes:\n      - match: [ /api ]\n        cluster: c\n",
                 "6: listeners[0].routes[0].match: expected a mapping, got a list");
}

static void test_other_wrong_types(void **state)
{
    expect_error("listeners:\n  - name: [a]\n    address: 127.0.0.1\n    port: 1\n" DIRECT_ROUTE,
                 "2: listeners[0].name: expected a string, got a list");
    expect_error("listeners:\n  - name: \"\"\n    address: 127.0.0.1\n    port: 1\n" DIRECT_ROUTE,
                 "2: listeners[0].name: must not be empty");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200, body: [x] }\n",
                 "7: listeners[0].routes[0].direct_response.body: expected a string, got a list");
    expect_error(LISTENER "    routes: {}\n", "5: listeners[0].routes: expected a list, got a mapping");
    expect_error(LISTENER "    routes: []\n", "5: listeners[0].routes: expected a non-empty list");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: []\n",
                 "10: clusters[0].endpoints: expected a non-empty list");
    expect_error(MINIMAL "clusters: { name: c }\n", "8: clusters: expected a list, got a mapping");
    expect_error("? [a]\n: 1\n", "1: expected a string key, got a list");
}

static void test_out_of_range(void **state)
{
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n    port: 70000\n" DIRECT_ROUTE,
                 "4: listeners[0].port: expected an integer 0-65535, got \"70000\"");
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n    port: -1\n" DIRECT_ROUTE,
                 "4: listeners[0].port: expected an integer 0-65535, got \"-1\"");
    expect_error("workers: 0\n" MINIMAL, "1: workers: expected an integer 1-256, got \"0\"");
    expect_error("workers: 257\n" MINIMAL, "1: workers: expected an integer 1-256, got \"257\"");
    expect_error("workers: 99999999999999999999999\n" MINIMAL,
                 "1: workers: expected an integer 1-256, got \"99999999999999999999999\"");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 99 }\n",
                 "7: listeners[0].routes[0].direct_response.status: expected an integer 100-599, got \"99\"");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 600 }\n",
                 "7: listeners[0].routes[0].direct_response.status: expected an integer 100-599, got \"600\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 0}]\n",
                 "10: clusters[0].endpoints[0].port: expected an integer 1-65535, got \"0\"");
}

/* ---- errors: required keys and cross references ------------------------------------------- */

static void test_missing_required(void **state)
{
    expect_error("workers: 2\n", "1: missing required key \"listeners\"");
    expect_error("listeners:\n  - name: main\n    port: 10000\n" DIRECT_ROUTE,
                 "2: listeners[0]: missing required key \"address\"");
    expect_error("listeners:\n  - address: 127.0.0.1\n    port: 10000\n" DIRECT_ROUTE,
                 "2: listeners[0]: missing required key \"name\"");
    expect_error("listeners:\n  - name: main\n    address: 127.0.0.1\n" DIRECT_ROUTE,
                 "2: listeners[0]: missing required key \"port\"");
    expect_error(LISTENER, "2: listeners[0]: missing required key \"routes\"");
    expect_error(LISTENER "    routes:\n      - cluster: c\n", "6: listeners[0].routes[0]: missing required key \"match\"");
    expect_error(LISTENER "    routes:\n      - match: { host: a }\n        cluster: c\n",
                 "6: listeners[0].routes[0].match: missing required key \"prefix\"");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { body: x }\n",
                 "7: listeners[0].routes[0].direct_response: missing required key \"status\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n", "9: clusters[0]: missing required key \"endpoints\"");
    expect_error(MINIMAL "clusters:\n  - endpoints: [{address: 127.0.0.1, port: 1}]\n",
                 "9: clusters[0]: missing required key \"name\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1}]\n",
                 "10: clusters[0].endpoints[0]: missing required key \"port\"");
    expect_error(MINIMAL "    http_filters:\n      - name: f\n        plugin_name: f\n",
                 "9: listeners[0].http_filters[0]: missing required key \"so_path\"");
    expect_error(MINIMAL "    http_filters:\n      - name: f\n        so_path: f.so\n",
                 "9: listeners[0].http_filters[0]: missing required key \"plugin_name\"");
    expect_error("listeners:\n  - name:\n    address: 127.0.0.1\n    port: 1\n" DIRECT_ROUTE,
                 "2: listeners[0].name: expected a string, got null");
}

static void test_unknown_cluster(void **state)
{
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
                          "      - match: { prefix: /x }\n        cluster: nope\n"
                          "clusters:\n  - name: a\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                          "  - name: b\n    endpoints: [{address: 127.0.0.1, port: 2}]\n",
                 "9: listeners[0].routes[1].cluster: unknown cluster \"nope\" (defined: a, b)");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        cluster: nope\n",
                 "7: listeners[0].routes[0].cluster: unknown cluster \"nope\" (no clusters are defined)");
}

static void test_duplicate_names(void **state)
{
    expect_error(MINIMAL "  - name: main\n    address: 127.0.0.1\n    port: 10001\n" DIRECT_ROUTE,
                 "8: listeners[1].name: duplicate listener name \"main\" (first at line 2)");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "  - name: c\n    endpoints: [{address: 127.0.0.1, port: 2}]\n",
                 "11: clusters[1].name: duplicate cluster name \"c\" (first at line 9)");
    expect_error(MINIMAL "    http_filters:\n      - { name: f, so_path: a.so, plugin_name: a }\n"
                         "      - { name: f, so_path: b.so, plugin_name: b }\n",
                 "10: listeners[0].http_filters[1].name: duplicate filter name \"f\" (first at line 9)");
}

static void test_cluster_and_direct_response(void **state)
{
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        cluster: c\n"
                          "        direct_response: { status: 200 }\n"
                          "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n",
                 "6: listeners[0].routes[0]: exactly one of \"cluster\", \"direct_response\", \"stats\" or \"ready\" is required");
}

static void test_neither_cluster_nor_direct_response(void **state)
{
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n      - match: { prefix: /a }\n",
                 "6: listeners[0].routes[0]: exactly one of \"cluster\", \"direct_response\", \"stats\" or \"ready\" is required");
}

/* Route names, filter_config (a plugin_config, or the disabled switch) and the ready action. */
static void test_route_name_filter_config_ready(void **state)
{
    es_config_t cfg;
    char err[1024];
    const char *yaml = LISTENER
        "    http_filters:\n"
        "      - { name: a, so_path: /x.so, plugin_name: p, plugin_config: { v: 1 } }\n"
        "      - { name: b, so_path: /x.so, plugin_name: p }\n"
        "    routes:\n"
        "      - name: health\n        match: { prefix: /health }\n        ready: {}\n"
        "        filter_config: { b: { v: 2, w: [x] }, a: { disabled: true } }\n"
        "      - match: { prefix: / }\n        direct_response: { status: 200 }\n"
        "        filter_config: { a: { disabled: false } }\n";
    assert_int_equal(load(&cfg, yaml, err, sizeof err), 0);
    const es_route_config_t *r = &cfg.listeners[0].routes[0];
    assert_string_equal(r->name, "health");
    assert_int_equal(r->index, 0);
    assert_int_equal(r->ready, 1);
    assert_int_equal(r->nfilter_configs, 2);
    /* In http_filters order, whatever the YAML's. */
    assert_string_equal(r->filter_configs[0].filter, "a");
    assert_int_equal(r->filter_configs[0].index, 0);
    assert_int_equal(r->filter_configs[0].disabled, 1);
    assert_null(r->filter_configs[0].plugin_config_json);
    assert_string_equal(r->filter_configs[1].filter, "b");
    assert_int_equal(r->filter_configs[1].disabled, 0);
    assert_string_equal(r->filter_configs[1].plugin_config_json, "{\"v\":2,\"w\":[\"x\"]}");
    r = &cfg.listeners[0].routes[1];
    assert_null(r->name);
    assert_int_equal(r->index, 1);
    assert_int_equal(r->ready, 0);
    assert_int_equal(r->filter_configs[0].disabled, 0);
    assert_string_equal(r->filter_configs[0].plugin_config_json, "{\"v\":1}"); /* disabled: false: the listener's */
    es_config_dispose(&cfg);

    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        ready: { x: 1 }\n",
                 "7: listeners[0].routes[0].ready: expected {} (it takes no options yet), got a mapping");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        ready: {}\n        upgrades: []\n",
                 "8: listeners[0].routes[0].upgrades: only a route with a \"cluster\" can tunnel (this one has ready)");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        ready: {}\n"
                          "        filter_config: { zz: {} }\n",
                 "8: listeners[0].routes[0].filter_config.zz: no filter named \"zz\" in this listener's http_filters");
    expect_error(LISTENER "    routes:\n      - match: { prefix: / }\n        ready: {}\n        filter_config: [a]\n",
                 "8: listeners[0].routes[0].filter_config: expected a mapping, got a list");
}

static void test_prefix_without_slash(void **state)
{
    expect_error(LISTENER "    routes:\n      - match:\n          prefix: api\n        direct_response: { status: 200 }\n",
                 "7: listeners[0].routes[0].match.prefix: must start with '/', got \"api\"");
}

static void test_bad_address(void **state)
{
    expect_error("listeners:\n  - name: main\n    address: foo.invalid\n    port: 1\n" DIRECT_ROUTE,
                 "3: listeners[0].address: cannot resolve \"foo.invalid\": a listener address must be an IPv4 or "
                 "IPv6 literal or \"localhost\"");
    expect_error("listeners:\n  - name: main\n    address: 1.2.3.4.5\n    port: 1\n" DIRECT_ROUTE,
                 "3: listeners[0].address: cannot resolve \"1.2.3.4.5\": a listener address must be an IPv4 or "
                 "IPv6 literal or \"localhost\"");
}

/* ---- errors: the file itself -------------------------------------------------------------- */

static void test_unreadable_file(void **state)
{
    es_config_t cfg;
    char err[512], want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s/missing.yaml", tmpdir);
    assert_int_equal(es_config_load(&cfg, want, err, sizeof err), -1);
    strcat(want, ": cannot read: No such file or directory");
    assert_string_equal(err, want);
    assert_zeroed(&cfg);
}

static void test_directory_as_file(void **state)
{
    es_config_t cfg;
    char err[512], want[PATH_MAX + 128];
    assert_int_equal(es_config_load(&cfg, tmpdir, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", tmpdir);
    assert_string_equal(err, want);
    assert_zeroed(&cfg);
}

static void test_yaml_syntax_error(void **state)
{
    expect_error_prefix("listeners:\n  - name: main\n    address: [127.0.0.1\n    port: 1\n",
                        "4: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence that starts at line 3)");
    expect_error_prefix(MINIMAL "  bad indentation: x\n", "8: invalid YAML: did not find expected '-' indicator (while parsing a block collection that starts at line 2)");
    expect_error_prefix("workers: *nope\n", "1: invalid YAML: found undefined alias");
    expect_error_prefix("workers: 1\nlisteners: [\xff]\n", "2: invalid YAML: invalid leading UTF-8 octet");
}

static void test_empty_file(void **state)
{
    expect_error("", "1: expected a mapping at the top level");
    expect_error("# only a comment\n\n", "1: expected a mapping at the top level");
    expect_error("---\n", "2: expected a mapping at the top level, got null");
    expect_error("- a\n- b\n", "1: expected a mapping at the top level, got a list");
    expect_error("hello\n", "1: expected a mapping at the top level, got \"hello\"");
}

static void test_two_documents(void **state)
{
    expect_error(MINIMAL "---\n" MINIMAL, "9: only one YAML document is allowed");
}

static void test_bad_duration(void **state)
{
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    connect_timeout: 5 parsecs\n",
                 "11: clusters[0].connect_timeout: expected a duration like \"1s\" or \"250ms\", got \"5 parsecs\"");
    expect_error(MINIMAL "clusters:\n  - name: c\n    endpoints: [{address: 127.0.0.1, port: 1}]\n"
                         "    connect_timeout: 0ms\n",
                 "11: clusters[0].connect_timeout: must be greater than 0, got \"0ms\"");
}

static void test_alias_misuse_in_schema(void **state)
{
    /* an alias to the enclosing list cannot loop: the schema wants a mapping there */
    expect_error("listeners: &l [ *l ]\n", "1: listeners[0]: expected a mapping, got a list");
}

static void test_small_error_buffer(void **state)
{
    es_config_t cfg;
    char err[16];
    memset(err, 'x', sizeof err);
    assert_int_equal(load(&cfg, "workers: 0\n" MINIMAL, err, sizeof err), -1);
    assert_int_equal(strlen(err), sizeof err - 1);   /* truncated, still terminated */
    assert_int_equal(load(&cfg, "workers: 0\n" MINIMAL, NULL, 0), -1);
    assert_zeroed(&cfg);
}

/* ---- durations ---------------------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        { "1s", 1000 }, { "250ms", 250 }, { "2m", 120000 }, { "1.5s", 1500 }, { "1", 1000 }, { "0.25", 250 },
        { "1h", 3600000 }, { "0", 0 }, { "0.0015s", 1 }, { ".5s", 500 }, { "3.", 3000 }, { "1.9ms", 1 },
        { "007s", 7000 },
    };
    static const char *const bad[] = {
        "", "s", "ms", ".", "-1s", "+1s", "1 s", " 1s", "1s ", "1x", "1sec", "1.5.s", "1e3", "inf",
        "0x10", "1,5s", "99999999999999999999", "5124095576030432h",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = 12345;
        if (es_config_parse_duration(good[i].text, &ms) != 0) fail_msg("rejected \"%s\"", good[i].text);
        if (ms != good[i].ms) fail_msg("\"%s\" -> %llu, want %llu", good[i].text, (unsigned long long)ms,
                                       (unsigned long long)good[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 12345;
        if (es_config_parse_duration(bad[i], &ms) != -1) fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ms, 12345);   /* untouched on error */
    }
    uint64_t ms;
    assert_int_equal(es_config_parse_duration(NULL, &ms), -1);
}

/* ---- access_log -------------------------------------------------------------------------- */

#include "obs/access_format.h"

/* Renders listener 0's access log i against a fixed record: the line (static buffer). */
static const char *access_line(const es_config_t *cfg, size_t i)
{
    static char line[1024];
    es_msg_t req;
    es_msg_init(&req);
    assert_int_equal(es_msg_on_first(&req, "/p?q", 4), 0);
    assert_int_equal(es_msg_add(&req, 0, "host", 4, "h.example", 9), 0);
    es_stream_info_t info = { .start_unix_us = 1796334569123456ull, .start_ns = 1, .end_ns = 3000001,
                              .bytes_received = 5, .bytes_sent = 6, .response_code = 201, .flags = ES_RF_UC };
    es_access_record_t r = { .info = &info, .req = &req, .method = "PUT", .method_len = 3, .protocol = "HTTP/1.1",
                             .upstream_host = "127.0.0.1:9", .peer_ip = "10.0.0.1", .peer_port = 5 };
    es_buf_t out;
    es_buf_init(&out);
    assert_int_equal(es_access_format_render(cfg->listeners[0].access_logs[i].format, &r, &out), 0);
    assert_true(out.len < sizeof line);
    memcpy(line, out.base, out.len);
    line[out.len] = 0;
    es_buf_dispose(&out);
    es_msg_dispose(&req);
    return line;
}

static void test_access_log(void **state)
{
    es_config_t cfg;
    char err[512], want[PATH_MAX + 64];
    assert_int_equal(load(&cfg, MINIMAL
                          "    access_log:\n"
                          "      - path: logs/access.log\n"
                          "      - path: \"-\"\n"
                          "        format: \"%REQ(:METHOD)% %RESPONSE_CODE% %RESPONSE_FLAGS%\"\n"
                          "      - path: /var/log/es.json\n"
                          "        json_format:\n"
                          "          code: \"%RESPONSE_CODE%\"\n"
                          "          method: \"%REQ(:METHOD)%\"\n"
                          "          what: \"%REQ(:METHOD)% %REQ(:PATH)%\"\n"
                          "          none: \"%ROUTE_NAME%\"\n",
                          err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].naccess_logs, 3);
    es_access_log_config_t *a = cfg.listeners[0].access_logs;
    snprintf(want, sizeof want, "%s/logs/access.log", tmpdir);
    assert_string_equal(a[0].path, want);
    assert_int_equal(a[0].line, 9);
    assert_string_equal(a[1].path, "-");
    assert_string_equal(a[2].path, "/var/log/es.json");
    /* The default is Envoy's format. */
    assert_string_equal(access_line(&cfg, 0), "[2026-12-03T21:49:29.123Z] \"PUT /p?q HTTP/1.1\" 201 UC 5 6 3 - \"-\" \"-\" "
                                              "\"-\" \"h.example\" \"127.0.0.1:9\"\n");
    assert_string_equal(access_line(&cfg, 1), "PUT 201 UC\n");
    assert_string_equal(access_line(&cfg, 2), "{\"code\":201,\"method\":\"PUT\",\"what\":\"PUT /p?q\",\"none\":null}\n");
    es_config_dispose(&cfg);

    /* No access_log, or an empty list: none. */
    assert_int_equal(load(&cfg, MINIMAL "    access_log: []\n", err, sizeof err), 0);
    assert_int_equal(cfg.listeners[0].naccess_logs, 0);
    assert_null(cfg.listeners[0].access_logs);
    es_config_dispose(&cfg);
}

static void test_access_log_relative_to_config(void **state)
{
    char cwd[PATH_MAX], err[512];
    es_config_t cfg;
    write_file("rel-log.yaml", MINIMAL "    access_log: [{ path: a.log }]\n");
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    int rc = es_config_load(&cfg, "rel-log.yaml", err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.listeners[0].access_logs[0].path, "./a.log");
    es_config_dispose(&cfg);
}

static void test_access_log_errors(void **state)
{
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        format: \"%FOO% x\"\n",
                 "10: listeners[0].access_log[0].format: unknown operator %FOO%");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n      - path: b.log\n        format: \"%REQ(HOST\"\n",
                 "11: listeners[0].access_log[1].format: unterminated %REQ(");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        format: \"%REQ()%\"\n",
                 "10: listeners[0].access_log[0].format: %REQ()%: empty header name");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        format: \"\"\n",
                 "10: listeners[0].access_log[0].format: must not be empty");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        format: [a]\n",
                 "10: listeners[0].access_log[0].format: expected a string, got a list");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        format: x\n        json_format: { a: b }\n",
                 "11: listeners[0].access_log[0].json_format: give \"format\" or \"json_format\", not both");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        json_format:\n          ok: \"%DURATION%\"\n"
                 "          code: \"%RESPONSE_CODE(x)%\"\n",
                 "12: listeners[0].access_log[0].json_format.code: %RESPONSE_CODE(x)%: %RESPONSE_CODE% takes no argument");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        json_format:\n          nested: { a: b }\n",
                 "11: listeners[0].access_log[0].json_format.nested: expected a format string, got a mapping "
                 "(nested objects are not supported)");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        json_format:\n          n: ~\n",
                 "11: listeners[0].access_log[0].json_format.n: expected a format string, got null");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        json_format:\n          a: x\n          a: y\n",
                 "12: listeners[0].access_log[0].json_format.a: duplicate key (first at line 11)");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        json_format: {}\n",
                 "10: listeners[0].access_log[0].json_format: expected at least one key");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        json_format: \"%START_TIME%\"\n",
                 "10: listeners[0].access_log[0].json_format: expected a mapping of keys to format strings, got \"%START_TIME%\"");
    expect_error(MINIMAL "    access_log:\n      - format: x\n",
                 "9: listeners[0].access_log[0]: missing required key \"path\"");
    expect_error(MINIMAL "    access_log:\n      - path: \"\"\n",
                 "9: listeners[0].access_log[0].path: must not be empty");
    expect_error(MINIMAL "    access_log:\n      - path: a.log\n        fromat: x\n",
                 "10: listeners[0].access_log[0].fromat: unknown key (expected one of: path, format, json_format)");
    expect_error(MINIMAL "    access_log: { path: a.log }\n",
                 "8: listeners[0].access_log: expected a list, got a mapping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_drain_timeout_and_crash_policy),
        cmocka_unit_test(test_header_matches),
        cmocka_unit_test(test_async_limits),
        cmocka_unit_test(test_connection_limits),
        cmocka_unit_test(test_tunnels),
        cmocka_unit_test(test_tls_keys),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_clusters_before_listeners_and_aliases),
        cmocka_unit_test(test_plugin_config_json),
        cmocka_unit_test(test_plugin_config_limits),
        cmocka_unit_test(test_relative_config_path),
        cmocka_unit_test(test_unknown_key_top),
        cmocka_unit_test(test_unknown_key_listener),
        cmocka_unit_test(test_unknown_key_route),
        cmocka_unit_test(test_unknown_key_cluster),
        cmocka_unit_test(test_http2_settings),
        cmocka_unit_test(test_unknown_key_filter),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_port_not_integer),
        cmocka_unit_test(test_listeners_not_list),
        cmocka_unit_test(test_match_is_list),
        cmocka_unit_test(test_other_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_unknown_cluster),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_cluster_and_direct_response),
        cmocka_unit_test(test_neither_cluster_nor_direct_response),
        cmocka_unit_test(test_route_name_filter_config_ready),
        cmocka_unit_test(test_prefix_without_slash),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_directory_as_file),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_two_documents),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_alias_misuse_in_schema),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_access_log),
        cmocka_unit_test(test_access_log_relative_to_config),
        cmocka_unit_test(test_access_log_errors),
    };
    return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}

/*
 * The C integration-test harness: runs the real envoy-swift binary and speaks raw HTTP/1.1 to it.
 *
 *   ES_BIN    the binary under test (default build/asan/envoy-swift)
 *   ES_BUILD  the build folder; configs and logs go to $ES_BUILD/test-tmp/XXXXXX (default build)
 *
 * Functions whose name does not start with es_try_ fail the current cmocka test (with the proxy's log
 * when it helps) instead of returning an error. Include <cmocka.h> prerequisites before this header.
 *
 * TLS (see "TLS" below): es_tls_make_certs() makes a CA and certificates with the `openssl` command at
 * test time (never committed), the test upstream serves TLS with them (tls_cert / tls_key in upstream.h),
 * and es_client_connect_tls() makes a client whose every function below works over TLS unchanged.
 *
 * A test usually runs with the fixture (es_fixture_setup / es_fixture_teardown): an upstream already
 * started in f->up, and a teardown that kills a proxy the test left running (after a failed assertion)
 * and stops the upstreams.
 */
#ifndef ES_TEST_HARNESS_H
#define ES_TEST_HARNESS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "upstream.h"

#define ES_MAX_LISTENERS 8

/* ---- external tools (curl, nghttp, h2load, the Python clients in Tests/py) ---- */

/* Runs `sh -c CMD` (a printf format), stdout and stderr together into *out (malloc'd; free it). Returns its exit
 * status, or -1 when it did not exit normally. */
int es_run_tool(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The value of a `key=value` line in a tool's output (malloc'd; free it), or NULL. */
char *es_kv(const char *out, const char *key);
/* Fails the test, printing the output, unless the tool's output has the line key=want. */
void es_expect_kv(const char *out, const char *key, const char *want);
/* Starts `sh -c 'exec CMD'` (a printf format) in the background, its stdout and stderr into LOG (a file in the test's
 * temp folder), and waits (at most 20 s) for a `port=N` line there: a server of Tests/py. Returns its pid; *port set. */
pid_t es_spawn_server(uint16_t *port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* SIGTERM, then SIGKILL after 3 s; reaps it. */
void es_stop_server(pid_t pid);
/* The Python of build/venv (scripts/py-deps.sh makes it) and the folder of the Python test tools. */
const char *es_python(void);
const char *es_py_tools(void);

/* ---- the proxy process ---- */

typedef struct {
    /* Optional, set before es_proxy_start: extra environment entries "NAME=value", NULL-terminated. */
    const char *const *extra_env;
    /* Optional, set before es_proxy_start: the --log-level (NULL = "debug", "" = no --log-level flag: the
     * default level). The harness needs the `listening on` lines, logged at info. */
    const char *log_level;
    /* Optional, set before es_proxy_start: more command-line arguments (e.g. "--watch"), NULL-terminated. */
    const char *const *extra_args;

    /* Set by es_proxy_start. */
    pid_t pid;                           /* 0 once stopped */
    uint16_t port;                       /* the first listener's port */
    size_t nlisteners;
    char names[ES_MAX_LISTENERS][64];    /* in the order the proxy logged them */
    uint16_t ports[ES_MAX_LISTENERS];
    char dir[512];                       /* the temp folder holding config.yaml and proxy.log */
    char config_path[600];
    char log_path[600];
} es_proxy_t;

/*
 * Writes the YAML (printf format) to a new temp folder, starts $ES_BIN -c FILE --log-level debug (or p->log_level) with
 * stdout and stderr going to proxy.log, and waits (at most 15 s) until it has logged
 * `listener "NAME" listening on ADDR:PORT` for `nlisteners` distinct listeners.
 */
void es_proxy_start(es_proxy_t *p, size_t nlisteners, const char *yaml_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The usual config: `workers` workers, one listener "main" on an ephemeral port whose only route sends
 * every path (prefix /) to cluster "backend" = 127.0.0.1:upstream_port, connect_timeout 1s.
 */
void es_proxy_start_backend(es_proxy_t *p, unsigned workers, uint16_t upstream_port);
/* The port of the listener called `name` (fails the test when there is none). */
uint16_t es_proxy_port(const es_proxy_t *p, const char *name);
/* SIGTERM, wait at most 10 s, and assert a clean exit with status 0 (ASan/LSan exit non-zero). */
void es_proxy_stop(es_proxy_t *p);
/* SIGKILL a proxy that is still running, without asserting anything (teardown after a failure). */
void es_proxy_kill(es_proxy_t *p);
/* The proxy's log so far (malloc'd, NUL-terminated; free it). */
char *es_proxy_log(const es_proxy_t *p);
/* How many times `needle` occurs in the log so far. */
size_t es_proxy_log_count(const es_proxy_t *p, const char *needle);
/* Prints the log to stderr, framed (for failure messages). */
void es_proxy_print_log(const es_proxy_t *p);

/* ---- the supervisor and its workers ---- */

/* Rewrites the proxy's config.yaml (printf format), for a reload. */
void es_proxy_write_config(es_proxy_t *p, const char *yaml_fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends SIGHUP and waits (at most 30 s) for its outcome in the log: returns 1 when a new generation serves
 * ("generation N serving"), 0 when the reload failed ("reload failed"). */
int es_proxy_reload(es_proxy_t *p);
/* Waits at most timeout_ms for the proxy to exit after a signal the test sent itself, and asserts exit status
 * 0; returns how long it waited (ms). */
uint64_t es_proxy_wait_exit(es_proxy_t *p, int timeout_ms);
/* The worker processes (the supervisor's children), at most `max` of them; returns how many there are. */
size_t es_proxy_workers(const es_proxy_t *p, pid_t *pids, size_t max);
/* Waits at most timeout_ms until the log holds `needle` at least `n` times; returns 1, or 0 on timeout. */
int es_proxy_wait_log(const es_proxy_t *p, const char *needle, size_t n, int timeout_ms);

/* Reads a "Key:   N kB" line of /proc/PID/status, in kB; -1 when absent. */
long es_proc_status_kb(pid_t pid, const char *key);
/* How many threads /proc/PID/task lists; -1 on error. */
int es_proc_threads(pid_t pid);

/* ---- running the binary to see it fail (config errors) ---- */

typedef struct {
    int exited;                          /* it exited by itself (not killed, not timed out) */
    int exit_code;                       /* its exit code when exited */
    int timed_out;                       /* still running after the timeout (then killed) */
    char *out;                           /* its stdout (malloc'd) */
    char *err;                           /* its stderr (malloc'd) */
    char dir[512];
    char config_path[600];
} es_run_t;

/* Writes the YAML to a temp folder and runs $ES_BIN -c FILE with a 5 s timeout. */
void es_run_config(es_run_t *r, const char *yaml_fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the YAML to a temp folder and runs $ES_BIN -t -c FILE (check the config, serve nothing). */
void es_run_check(es_run_t *r, const char *yaml_fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs $ES_BIN -c PATH (PATH need not exist) with a 5 s timeout. */
void es_run_path(es_run_t *r, const char *path);
void es_run_dispose(es_run_t *r);

/* ---- a raw HTTP/1.1 client ---- */

typedef struct {
    char *name;
    char *value;
} es_test_header_t;

typedef struct {
    int status;
    int http_major, http_minor;
    es_test_header_t *headers;
    size_t nheaders;
    es_test_header_t *trailers;               /* chunked trailers */
    size_t ntrailers;
    char *body;                          /* the first `keep` bytes of the body, NUL-terminated (never NULL) */
    size_t body_len;                     /* bytes in `body` */
    uint64_t body_total;                 /* bytes of body received in all */
    uint64_t body_fnv;                   /* FNV-1a 64 of the whole body */
    int chunked;                         /* the response was chunked */
    int keep_alive;                      /* http_should_keep_alive() on the response */
    int eof_delimited;                   /* the body ended with the connection */
} es_response_t;

/* Called with every piece of body, `offset` being its position in the body. Non-zero aborts the read. */
typedef int (*es_body_cb)(void *ctx, const char *data, size_t len, uint64_t offset);

typedef struct {
    int head;                            /* the response answers a HEAD request: no body */
    size_t keep;                         /* body bytes kept in memory; 0 = 1 MiB */
    es_body_cb on_body;
    void *ctx;
} es_read_opts_t;

typedef struct {
    int fd;                              /* a TLS client's too: raw recv/send on it bypass TLS */
    char *buf;                           /* bytes received and not yet parsed: buf[off .. len) */
    size_t off, len, cap;
    int eof;                             /* the server closed (or reset) the connection */
    char error[256];                     /* why the last es_try_ call failed */
    /* TLS clients (es_client_connect_tls) only; zero for plain ones. */
    struct ssl_st *ssl;                  /* the OpenSSL connection, freed by es_client_close */
    char alpn[16];                       /* the ALPN protocol the server chose ("" = none) */
    int tls_version;                     /* 0x0303 = TLS 1.2 (TLS1_2_VERSION), 0x0304 = TLS 1.3 */
    int tls_close_notify;                /* the server's close_notify arrived (eof without it: a bare
                                          * TCP close or reset) */
} es_client_t;

/* Connects to 127.0.0.1:port, with 10 s send and receive timeouts. */
void es_client_connect(es_client_t *c, uint16_t port);
int es_try_client_connect(es_client_t *c, uint16_t port);
void es_client_close(es_client_t *c);
void es_client_send(es_client_t *c, const void *data, size_t len);
void es_client_sendf(es_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int es_try_client_send(es_client_t *c, const void *data, size_t len);
/* Sends `len` bytes of the test pattern starting at pattern offset `offset`, in chunks of `chunk`
 * bytes framed as chunked encoding when `chunked` (no final chunk: send "0\r\n\r\n" yourself). */
void es_client_send_pattern(es_client_t *c, uint64_t offset, uint64_t len, int chunked, size_t chunk);
/* Reads the next response on the connection (pipelined responses come in order). */
void es_client_read(es_client_t *c, es_response_t *r, const es_read_opts_t *opts);
int es_try_client_read(es_client_t *c, es_response_t *r, const es_read_opts_t *opts);
/* Waits at most timeout_ms for the server to close the connection. 1 = closed (EOF or reset),
 * 0 = still open, -1 = it sent more bytes instead. */
int es_client_wait_closed(es_client_t *c, int timeout_ms);

void es_response_dispose(es_response_t *r);
/* The first header (or trailer) called `name` (case-insensitive), or NULL. */
const char *es_response_header(const es_response_t *r, const char *name);
const char *es_response_trailer(const es_response_t *r, const char *name);
size_t es_response_header_count(const es_response_t *r, const char *name);

/* One request on a new connection: send `raw`, read the response, close. */
void es_roundtrip(uint16_t port, const char *raw, es_response_t *r, const es_read_opts_t *opts);
/* POSTs `n` bytes of the test pattern to /sink on a new connection (Content-Length, or chunked in
 * pieces of `chunk` bytes) and asserts the upstream got every byte: "len=N fnv=..." from /sink. */
void es_upload_pattern(uint16_t port, uint64_t n, int chunked, size_t chunk);
/* GET path with Host: test, on a new connection. */
void es_get(uint16_t port, const char *path, es_response_t *r);

/* ---- TLS ---- */

/*
 * Connects to 127.0.0.1:port (as es_client_connect), then does a blocking TLS handshake (TLS 1.2 or
 * 1.3, ALPN offering http/1.1) within the same 10 s timeouts. The server's chain must verify against
 * `ca_file` (a PEM; NULL = no verification at all) and its certificate must match `sni`, which is also
 * sent as SNI; an IP literal ("127.0.0.1") is matched against the IP SANs and sends no SNI (RFC 6066);
 * NULL = no SNI and no name check. Sets c->alpn and c->tls_version. On failure c->error says why
 * ("certificate verify failed: ...", OpenSSL's alert, a timeout, EOF) and the client is closed.
 *
 * Afterwards es_client_send / _sendf / _send_pattern / es_client_read / es_try_client_read /
 * es_client_wait_closed / es_client_close work as on a plain client, over SSL_write / SSL_read: EOF is
 * the server's close_notify (c->tls_close_notify = 1) or a bare TCP close or reset; a TLS alert or a
 * corrupt record fails a read ("TLS: ..."); es_client_wait_closed() ignores records that carry no data
 * (TLS 1.3 session tickets). es_client_close() sends close_notify (without blocking or waiting for the
 * server's) and frees the SSL. Raw recv/send/poll on c->fd bypass TLS: don't mix them with a TLS client.
 *
 * SSL_write writes without MSG_NOSIGNAL: the first TLS connect sets SIGPIPE to SIG_IGN when it is
 * SIG_DFL (as es_fixture_setup does anyway).
 */
void es_client_connect_tls(es_client_t *c, uint16_t port, const char *ca_file, const char *sni);
int es_try_client_connect_tls(es_client_t *c, uint16_t port, const char *ca_file, const char *sni);
/* es_roundtrip, es_upload_pattern and es_get over a new TLS connection (ca_file and sni as above). */
void es_roundtrip_tls(uint16_t port, const char *ca_file, const char *sni, const char *raw, es_response_t *r,
                      const es_read_opts_t *opts);
void es_upload_pattern_tls(uint16_t port, const char *ca_file, const char *sni, uint64_t n, int chunked,
                           size_t chunk);
void es_get_tls(uint16_t port, const char *ca_file, const char *sni, const char *path, es_response_t *r);

/* Absolute paths of the files es_tls_make_certs() makes. Every key is EC P-256, every certificate is
 * valid from its making for 10 years. */
typedef struct {
    char dir[512];
    char ca_cert[600];                   /* ca.pem: the test CA's certificate (what clients trust) */
    char ca_key[600];                    /* ca.key */
    char server_cert[600];               /* server.pem: a leaf for DNS:localhost, DNS:upstream.test and
                                          * IP:127.0.0.1 signed by the CA, then the CA: a chain file */
    char server_key[600];                /* server.key */
    char server_leaf[600];               /* server-leaf.pem: the same leaf alone */
    char wrong_cert[600];                /* wrong.pem: a leaf for DNS:wrong.example only, signed by the
                                          * same CA, then the CA: verifies, but for no name a test uses */
    char wrong_key[600];                 /* wrong.key */
    char other_key[600];                 /* other.key: a key that matches no certificate here ("the key
                                          * does not match the certificate") */
    char untrusted_cert[600];            /* untrusted.pem: self-signed, with server.pem's names, from no
                                          * CA a test trusts */
    char untrusted_key[600];             /* untrusted.key */
} es_tls_certs_t;

/*
 * Makes the files above with the `openssl` command (quietly; a failure fails the test with its
 * stderr). dir NULL: once per process, in $ES_BUILD/test-tmp/certs-XXXXXX, removed at exit; later
 * calls return the same paths at once. dir given: makes them there (created if missing) every call,
 * and leaves them. Returns 0.
 */
int es_tls_make_certs(const char *dir, es_tls_certs_t *out);

/*
 * The body of an upstream /headers response: the first line is the request line, then "name: value"
 * lines. These look headers up case-insensitively by name.
 */
size_t es_head_count(const char *head, const char *name);
/* The value of the first header `name` (malloc'd; free it), or NULL. */
char *es_head_value(const char *head, const char *name);
/* The request line (malloc'd; free it). */
char *es_head_request_line(const char *head);

/* ---- odds and ends ---- */

uint64_t es_now_ms(void);
/* FNV-1a of the pattern bytes 0 .. n-1. */
uint64_t es_pattern_fnv(uint64_t n);
/* The absolute path of $ES_BUILD/libswiftfilter.so (static buffer), for http_filters so_path. */
const char *es_swift_filter_lib(void);
/* One http_filters entry of libswiftfilter.so, indented for a listener (malloc'd; free it): name, plugin_name,
 * plugin_config (YAML), then `extra` (more keys, each line indented 8; may be NULL). */
char *es_swift_filter_yaml(const char *name, const char *plugin, const char *config, const char *extra);
/* A TCP port on 127.0.0.1 where nothing listens (bound, then closed). */
uint16_t es_closed_port(void);
/* Polls cond-style: calls fn(arg) every 10 ms until it returns non-zero or timeout_ms passes. */
int es_poll_until(int (*fn)(void *arg), void *arg, int timeout_ms);
/* Waits until *value stops changing for 300 ms (or reaches `limit`, or 15 s pass); returns it. */
unsigned long long es_wait_stalled(atomic_ullong *value, unsigned long long limit);
/* A counter of the proxy's `stats: {}` route, read from body `stats` ("name value" lines); fails
 * the test when it is missing. */
uint64_t es_stat_in(const char *stats, const char *name);
/* The same over a new plain connection: GET `path` (a stats route) on `port`. */
uint64_t es_stat(uint16_t port, const char *path, const char *name);

/* ---- the fixture ---- */

typedef struct {
    es_upstream_t up;                    /* started by es_fixture_setup */
    es_upstream_t up2;                   /* for tests that need a second upstream: start it yourself */
    es_blackhole_t hole;                 /* likewise; stopped by the teardown when hole.nfds > 0 */
    es_proxy_t px;                       /* killed by the teardown if still running */
    es_proxy_t px2;
} es_fixture_t;

int es_fixture_setup(void **state);
int es_fixture_teardown(void **state);

#endif

/*
 * Configuration: envoy-swift.yaml parsed once at startup into plain structs.
 * The config is read-only after es_config_load() returns; workers share it.
 */
#ifndef ES_CONFIG_H
#define ES_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct es_cluster_config_s es_cluster_config_t;

typedef struct {
    char *address;                 /* as written, e.g. "127.0.0.1" or "localhost" */
    char *hostport;                /* "127.0.0.1:8080" ("[::1]:8080"): how logs name it */
    uint16_t port;
    struct sockaddr_storage addr;  /* resolved at load time (numeric or getaddrinfo) */
    socklen_t addrlen;
    int line;
} es_endpoint_config_t;

struct es_cluster_config_s {
    char *name;
    es_endpoint_config_t *endpoints;
    size_t nendpoints;
    uint64_t connect_timeout_ms;   /* default 1000 */
    /* idle_timeout: how long a pooled connection may wait for its next request; default 4s, below the
     * 5 s that Node.js, Apache and many others close idle keep-alive connections at. */
    uint64_t idle_timeout_ms;
    unsigned retries_on_reset;     /* retries.on_reset, default 1 */
    /* tls: { sni, ca, verify }: connect over TLS. tls_ctx is an SSL_CTX made at load (NULL: plain). */
    void *tls_ctx;
    char *tls_sni;                 /* sent as SNI and checked against the certificate; default: the endpoint's address */
    char *tls_ca;                  /* PEM CA file; NULL: the system's trust store */
    int tls_verify;                /* default 1; verify: false logs a warning at startup */
    int http2;                     /* http2: true: HTTP/2 (prior knowledge in clear, ALPN h2 over tls) */
    size_t index;                  /* position in es_config_t.clusters */
    int line;
};

typedef struct {
    char *name;                    /* lower-cased */
    char *value;                   /* exact, case-sensitive */
} es_header_match_t;

/* filter_config on a route: { <filter name>: <plugin_config> | { disabled: true } }. */
typedef struct {
    char *filter;                  /* a name from the listener's http_filters */
    size_t index;                  /* its position in the listener's http_filters */
    char *plugin_config_json;      /* the route's plugin_config as JSON text; NULL when disabled */
    int disabled;                  /* { disabled: true }: the filter does not run on this route */
    int line;
} es_route_filter_config_t;

typedef struct {
    char *name;                    /* name: optional, for logs and metrics (%ROUTE_NAME%, route="...") */
    size_t index;                  /* position in the listener's routes */
    char *prefix;                  /* match.prefix, required, starts with '/' */
    size_t prefix_len;
    char *host;                    /* match.host, NULL = any host; lower-cased */
    es_header_match_t *headers;    /* match.headers: { name: value, ... }, all must match */
    size_t nheaders;
    es_cluster_config_t *cluster;  /* set when the route forwards; NULL for direct_response */
    int direct_status;             /* direct_response.status (100-599) when cluster == NULL */
    char *direct_body;             /* direct_response.body, may be "" (never NULL for direct) */
    size_t direct_body_len;
    int stats;                     /* stats: {}: answer with the counters (es_stats_format) */
    /* upgrades: [websocket] (the default) or []: whether an HTTP/1.1 `Upgrade: websocket` request is forwarded
     * as one, its 101 answer turning the connection into a tunnel (cluster routes only). */
    int upgrade_websocket;
    /* connect: {}: CONNECT requests on this route are tunnelled to the route's cluster (never to the
     * host:port they name); without it a CONNECT is refused with 403. */
    int connect;
    int ready;                     /* ready: {}: 200 while the proxy serves, 503 once it drains */
    es_route_filter_config_t *filter_configs; /* filter_config: per-filter overrides, in http_filters order */
    size_t nfilter_configs;
    int line;
} es_route_config_t;

typedef struct es_access_format_s es_access_format_t;

/* access_log: [ { path, format | json_format } ]: a line per finished exchange. */
typedef struct {
    char *path;                    /* a file (resolved against the config's folder), or "-": standard output */
    es_access_format_t *format;    /* compiled at load (obs/access_format.h) */
    int line;
} es_access_log_config_t;

typedef struct {
    char *name;
    char *so_path;                 /* resolved against the config file's folder when relative */
    char *plugin_name;
    char *plugin_config_json;      /* plugin_config converted to JSON text; "null" when absent */
    uint64_t timeout_ms;           /* timeout: longest an async hook may run; default 30s */
    int timeout_status;            /* timeout_status: the answer when it does; default 504 */
    /* crash_policy: quarantined after `quarantine_after` worker crashes within `window` (3 in 60s):
     * then reject (503) or bypass. */
    unsigned quarantine_after;
    uint64_t crash_window_ms;
    int quarantine_bypass;
    int line;
} es_filter_config_t;

typedef struct {
    char *name;
    char *address;
    uint16_t port;                 /* 0 = ephemeral (tests); the bound port is logged */
    struct sockaddr_storage addr;  /* address:port resolved */
    socklen_t addrlen;
    es_route_config_t *routes;
    size_t nroutes;
    es_filter_config_t *filters;
    size_t nfilters;
    /* buffer_limits: body bytes a stream buffers while a filter is running before the peer is
     * no longer read (high), and read again (low). Defaults 256 KiB / 64 KiB. */
    size_t buffer_high;
    size_t buffer_low;
    size_t max_body;               /* buffer_limits.max_body: most of one body a filter may buffer (8 MiB) */
    /* Connection timeouts (0 = off where allowed). */
    uint64_t request_headers_timeout_ms; /* a request's head must be complete in this; default 10s */
    uint64_t idle_timeout_ms;            /* a keep-alive connection between requests; default 60s, 0 = never */
    uint64_t request_timeout_ms;         /* a whole request, first byte to response end; default 0 = off */
    uint64_t delayed_close_timeout_ms;   /* draining unread input after the last response; default 1s */
    uint32_t max_request_headers;        /* max_request_headers_kb * 1024; default 60 KiB (HTTP/2: the header list) */
    uint32_t h2_max_concurrent_streams;  /* http2.max_concurrent_streams: streams per HTTP/2 connection; default 100 */
    uint64_t stream_idle_timeout_ms;     /* an HTTP/2 stream with no byte either way; 300s, 0 = never */
    uint64_t tunnel_idle_timeout_ms;     /* a WebSocket / CONNECT tunnel with no byte either way; 300s, 0 = never */
    /* tls: { cert, key, handshake_timeout }: serve HTTPS. tls_ctx is an SSL_CTX made at load. */
    void *tls_ctx;                       /* NULL: plain HTTP */
    char *tls_cert;                      /* PEM, the chain served whole */
    char *tls_key;
    uint64_t tls_handshake_timeout_ms;   /* default 10s */
    es_access_log_config_t *access_logs; /* access_log entries */
    size_t naccess_logs;
    int line;
    int port_line;                 /* line of the `port:` key, for "port in use" errors */
} es_listener_config_t;

typedef struct {
    char *path;                    /* the file as given */
    char *dir;                     /* its folder, for relative paths */
    unsigned workers;              /* worker processes; default the number of CPUs, 1..256 */
    uint64_t drain_timeout_ms;     /* how long a draining worker may take before it closes what is left; 30s */
    es_listener_config_t *listeners;
    size_t nlisteners;
    es_cluster_config_t *clusters;
    size_t nclusters;
} es_config_t;

/*
 * Parses the file at `path` into `cfg`. Returns 0, or -1 with a one-line message in `err`:
 *   "FILE:LINE: KEY.PATH: what is wrong"      e.g. "envoy-swift.yaml:7: listeners[0].port: expected an integer 0-65535, got \"abc\""
 *   "FILE: cannot read: No such file or directory"
 * On error `cfg` holds nothing that needs disposing.
 */
int es_config_load(es_config_t *cfg, const char *path, char *err, size_t errlen);
void es_config_dispose(es_config_t *cfg);

/* "65536", "64KiB", "1MiB" (also "k"/"KB", "m"/"MB": all powers of 1024). Returns 0 or -1. */
int es_config_parse_size(const char *s, uint64_t *bytes);

/* "1s", "250ms", "2m", "1.5s", or a bare number of seconds. Returns 0 or -1. */
int es_config_parse_duration(const char *s, uint64_t *ms);

#endif

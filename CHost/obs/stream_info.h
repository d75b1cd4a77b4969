/*
 * What one exchange was, as the access log, the histograms and a filter's onStreamComplete read it: when it
 * began, how long the upstream took to answer, how many body bytes went each way, the status sent and why the
 * exchange ended as it did (the response flags, Envoy's letters). The stream fills it as it goes; it is
 * complete when the stream ends.
 */
#ifndef ES_STREAM_INFO_H
#define ES_STREAM_INFO_H

#include <stddef.h>
#include <stdint.h>

/* Response flags, as Envoy names them (%RESPONSE_FLAGS% joins the set ones with ','; "-" when none). */
enum {
    ES_RF_UF = 1u << 0,  /* upstream connection failure: the connection could not be made */
    ES_RF_UT = 1u << 1,  /* upstream request timeout: request_timeout or a gRPC deadline ran out (504) */
    ES_RF_UC = 1u << 2,  /* upstream connection termination: it closed or reset under the exchange */
    ES_RF_DC = 1u << 3,  /* downstream connection termination: the client went away first */
    ES_RF_LR = 1u << 4,  /* local reply: the proxy answered (an error, a filter's reply), not the upstream */
    ES_RF_NR = 1u << 5,  /* no route matched (404) */
    ES_RF_UO = 1u << 6,  /* upstream overflow: the upstream refused the stream (HTTP/2 REFUSED_STREAM, retried out) */
    ES_RF_DPE = 1u << 7, /* downstream protocol error: a malformed request (400, 431, 501) */
    ES_RF_UPE = 1u << 8, /* upstream protocol error: a malformed response (502) */
    ES_RF_SI = 1u << 9,  /* stream idle timeout (HTTP/2 stream_idle_timeout, tunnel_idle_timeout) */
    ES_RF_DT = 1u << 10, /* downstream request timeout: the client was too slow sending its request (408) */
    ES_RF_FT = 1u << 11, /* filter timeout: an async filter hook ran past its timeout */
    ES_RF_FE = 1u << 12, /* filter error: a filter threw, failed or was quarantined */
    ES_RF_COUNT = 13
};

/* Names of the flags, in bit order ("UF", "UT", ...). */
extern const char *const es_response_flag_names[ES_RF_COUNT];
/* Writes the set flags' names joined by ',' ("UF,LR") into out (no NUL; 48 bytes hold them all); returns the
 * length, 0 when none is set. */
size_t es_response_flags_format(uint32_t flags, char *out, size_t cap);

typedef struct es_stream_info_s {
    uint64_t start_ns;          /* uv_hrtime() when the request began (its first byte was read) */
    uint64_t start_unix_us;     /* the same moment on the wall clock, microseconds since 1970 */
    uint64_t upstream_first_ns; /* uv_hrtime() when the upstream's response head arrived; 0: it did not */
    uint64_t end_ns;            /* uv_hrtime() when the exchange ended; 0 while it runs */
    uint64_t bytes_received;    /* request body bytes read from the client */
    uint64_t bytes_sent;        /* response body bytes sent (queued) to the client */
    const void *endpoint;       /* the upstream endpoint (const es_endpoint_config_t *) used last, or NULL */
    uint32_t flags;             /* ES_RF_* */
    uint16_t response_code;     /* the status sent to the client; 0: none was */
} es_stream_info_t;

#endif

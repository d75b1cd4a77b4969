/* HTTP/1.1 wire helpers shared by the request and response directions. */
#ifndef ES_HTTP1_H
#define ES_HTTP1_H

#include <stddef.h>

#include "core/config.h"
#include "core/msg.h"
#include "net/writeq.h"

/* Headers that describe one connection and are never forwarded (RFC 9110 7.6.1). */
int es_http1_hop_by_hop(const char *name, size_t len);
/* Whether header `i` must be dropped when forwarding `m`: hop-by-hop, or named by Connection.
 * `names_others` (es_http1_connection_names_others, looked up once per message by the caller) says
 * whether Connection names any header, so most messages cost no scan per header. */
int es_http1_drop_header_in(const es_msg_t *m, unsigned i, int names_others);
/* Whether the Connection headers of `m` name anything besides close and keep-alive. */
int es_http1_connection_names_others(const es_msg_t *m);
const char *es_http1_reason(int status);

/* The forwarded fields of m's header section: hop-by-hop ones dropped, and Content-Length (drop_length: the
 * proxy states the framing), X-Forwarded-* (drop_forwarded: the proxy sets them) and Expect (drop_expect). */
int es_http1_write_headers(es_writeq_t *q, const es_msg_t *m, int drop_length, int drop_forwarded, int drop_expect);
/* A request head as it goes upstream: hop-by-hop headers removed, forwarding headers set, the framing stated
 * (`length` >= 0: Content-Length; `chunked`: Transfer-Encoding: chunked). */
typedef struct {
    const char *client_ip;
    int tls;
    int drop_expect;   /* the proxy answered Expect: 100-continue itself */
    int upgrade;       /* a WebSocket upgrade goes on: Upgrade kept, Connection: upgrade (es_http1_write_upgrade) */
} es_forwarded_t;
int es_http1_write_request_head(es_writeq_t *q, const es_msg_t *m, const char *method, size_t method_len,
                                int64_t length, int chunked, const es_forwarded_t *fwd,
                                const es_endpoint_config_t *ep);

/* The hop-by-hop fields of an upgrade that goes on (a request asking for it, or the 101 granting it): every
 * Upgrade field of `m`, then `connection: upgrade` (only that token: the others stay dropped). */
int es_http1_write_upgrade(es_writeq_t *q, const es_msg_t *m);

/* Body framing: chunked bodies are re-framed as the parser hands out the decoded bytes. */
int es_http1_write_chunk(es_writeq_t *q, const char *at, size_t len);
/* The last chunk, the trailers of `m` (those not dropped), and the final CRLF. */
int es_http1_write_last_chunk(es_writeq_t *q, const es_msg_t *m);
/* A complete response with a text body; `keepalive` decides the Connection header. */
int es_http1_write_local_reply(es_writeq_t *q, int status, const char *body, size_t len, int http10,
                               int keepalive, int head);

#endif

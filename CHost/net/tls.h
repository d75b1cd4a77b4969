/*
 * TLS over libuv with OpenSSL memory BIOs: the socket stays libuv's, OpenSSL only transforms bytes.
 * Ciphertext read from the socket is fed in (es_tls_feed), plaintext comes out of es_tls_read;
 * plaintext to send goes in through es_tls_write and its ciphertext is collected with
 * es_tls_take_output for the write queue. Nothing here blocks or touches a file descriptor.
 *
 * Contexts (SSL_CTX) are made once at config load and shared by every worker: creating SSL objects
 * from one context is thread-safe.
 */
#ifndef ES_TLS_H
#define ES_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "core/buf.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

/* A server context: TLS 1.2 and 1.3, the certificate chain file served whole, ALPN h2 and http/1.1.
 * Returns 0, or -1 with a message naming the file in `err`. */
int es_tls_server_ctx(SSL_CTX **out, const char *cert, const char *key, char *err, size_t errlen);
/* A client context: verifying against `ca` (NULL: the system's trust store) unless !verify. */
int es_tls_client_ctx(SSL_CTX **out, const char *ca, int verify, char *err, size_t errlen);
void es_tls_ctx_free(SSL_CTX *ctx);
/* A client context offers ALPN h2 (instead of http/1.1). */
void es_tls_ctx_alpn_h2(SSL_CTX *ctx);

enum {
    ES_TLS_AGAIN = 0,    /* needs more ciphertext */
    ES_TLS_ERROR = -1,   /* a protocol or certificate error: the connection is over */
    ES_TLS_CLOSED = -2,  /* the peer sent close_notify */
};

typedef struct {
    SSL *ssl;
    BIO *rbio;                   /* ciphertext from the network, read by OpenSSL */
    BIO *wbio;                   /* ciphertext from OpenSSL, for the network */
    unsigned handshake_done : 1;
    unsigned server : 1;
} es_tls_t;

/* A server side (`sni` NULL), or a client side sending `sni` and, when the context verifies,
 * checking the certificate against `verify_name` (a DNS name or an IP literal). Returns 0 or -1. */
int es_tls_init(es_tls_t *t, SSL_CTX *ctx, const char *sni, const char *verify_name);
void es_tls_dispose(es_tls_t *t);
/* Ciphertext that arrived. Returns 0 or -1 (out of memory). */
int es_tls_feed(es_tls_t *t, const char *data, size_t len);
/* Moves the handshake on: 1 done, ES_TLS_AGAIN, or ES_TLS_ERROR. */
int es_tls_handshake(es_tls_t *t);
/* Plaintext into buf: > 0 bytes, ES_TLS_AGAIN, ES_TLS_CLOSED or ES_TLS_ERROR. */
ssize_t es_tls_read(es_tls_t *t, char *buf, size_t len);
/* Encrypts plaintext: the bytes taken (all of them), ES_TLS_AGAIN while the handshake is not done,
 * or ES_TLS_ERROR. */
ssize_t es_tls_write(es_tls_t *t, const char *buf, size_t len);
/* Queues a close_notify alert (after a completed handshake). */
void es_tls_close_notify(es_tls_t *t);
/* Appends the ciphertext waiting for the network to `out`. Returns 0 or -1. */
int es_tls_take_output(es_tls_t *t, es_buf_t *out);
/* Ciphertext fed and not yet decrypted. */
size_t es_tls_pending_input(const es_tls_t *t);
/* Why the last call failed, for logs and 503 bodies: a verification failure, an alert, or
 * OpenSSL's reason. */
const char *es_tls_error(const es_tls_t *t, char *buf, size_t len);
/* The negotiated protocol version ("TLSv1.3") and ALPN (may be ""). */
const char *es_tls_version(const es_tls_t *t);

/* Whether the handshake chose HTTP/2 (ALPN "h2"). */
int es_tls_alpn_h2(const es_tls_t *t);

#endif

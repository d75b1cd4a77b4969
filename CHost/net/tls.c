#include "net/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static const unsigned char alpn_http11[] = "\x08http/1.1";
/* What a server offers, in its order of preference: HTTP/2 first. */
static const unsigned char alpn_server[] = "\x02h2\x08http/1.1";

/* OpenSSL's reason for the most recent error on this thread, then the queue is cleared. */
static void last_error(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", reason ? reason : "unknown error");
    ERR_clear_error();
}

/* fopen first, so a missing or unreadable file says so plainly (OpenSSL's wording is obscure). */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s \"%s\": %s", what, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_server, sizeof(alpn_server) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* neither h2 nor http/1.1 on offer: go on without ALPN (HTTP/1.1) */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections give their record buffers back: thousands of keep-alive clients cost less. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

int es_tls_server_ctx(SSL_CTX **out, const char *cert, const char *key, char *err, size_t errlen)
{
    *out = NULL;
    if (readable("certificate", cert, err, errlen) != 0 || readable("key", key, err, errlen) != 0)
        return -1;
    SSL_CTX *ctx = new_ctx(TLS_server_method());
    char why[160];
    if (ctx == NULL) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "cannot make a TLS context: %s", why);
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "cannot load the certificate chain \"%s\": %s", cert, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        last_error(why, sizeof why);
        if (mismatch)
            snprintf(err, errlen, "the key \"%s\" does not match the certificate \"%s\"", key, cert);
        else
            snprintf(err, errlen, "cannot load the key \"%s\": %s", key, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "the key \"%s\" does not match the certificate \"%s\"", key, cert);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

int es_tls_client_ctx(SSL_CTX **out, const char *ca, int verify, char *err, size_t errlen)
{
    *out = NULL;
    if (verify && ca != NULL && readable("CA file", ca, err, errlen) != 0)
        return -1;
    SSL_CTX *ctx = new_ctx(TLS_client_method());
    char why[160];
    if (ctx == NULL) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "cannot make a TLS context: %s", why);
        return -1;
    }
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca != NULL ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            last_error(why, sizeof why);
            snprintf(err, errlen, "cannot load the CA file \"%s\": %s", ca ? ca : "(system)", why);
            SSL_CTX_free(ctx);
            return -1;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1);
    *out = ctx;
    return 0;
}

void es_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

static int is_ip_literal(const char *s)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(s);
    if (ip == NULL)
        return 0;
    ASN1_OCTET_STRING_free(ip);
    return 1;
}

int es_tls_init(es_tls_t *t, SSL_CTX *ctx, const char *sni, const char *verify_name)
{
    memset(t, 0, sizeof(*t));
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        memset(t, 0, sizeof(*t));
        ERR_clear_error();
        return -1;
    }
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (sni == NULL && verify_name == NULL) {
        t->server = 1;
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    /* RFC 6066: no IP literals in SNI; an IP is checked against the certificate's IP names. */
    if (sni != NULL && !is_ip_literal(sni))
        SSL_set_tlsext_host_name(t->ssl, sni);
    if (verify_name != NULL && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
        int ok = is_ip_literal(verify_name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), verify_name)
                                            : SSL_set1_host(t->ssl, verify_name);
        if (ok != 1) {
            es_tls_dispose(t);
            ERR_clear_error();
            return -1;
        }
    }
    SSL_set_connect_state(t->ssl);
    return 0;
}

void es_tls_dispose(es_tls_t *t)
{
    if (t->ssl != NULL)
        SSL_free(t->ssl); /* frees both BIOs */
    memset(t, 0, sizeof(*t));
}

int es_tls_feed(es_tls_t *t, const char *data, size_t len)
{
    return len == 0 || BIO_write(t->rbio, data, (int)len) == (int)len ? 0 : -1;
}

int es_tls_handshake(es_tls_t *t)
{
    if (t->handshake_done)
        return 1;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->handshake_done = 1;
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? ES_TLS_AGAIN : ES_TLS_ERROR;
}

ssize_t es_tls_read(es_tls_t *t, char *buf, size_t len)
{
    ERR_clear_error();
    int n = SSL_read(t->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (n > 0) {
        t->handshake_done = 1;
        return n;
    }
    switch (SSL_get_error(t->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return ES_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return ES_TLS_CLOSED;
    default:
        return ES_TLS_ERROR;
    }
}

ssize_t es_tls_write(es_tls_t *t, const char *buf, size_t len)
{
    if (len == 0)
        return 0;
    ERR_clear_error();
    int n = SSL_write(t->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (n > 0)
        return n;
    int e = SSL_get_error(t->ssl, n);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? ES_TLS_AGAIN : ES_TLS_ERROR;
}

void es_tls_close_notify(es_tls_t *t)
{
    if (t->handshake_done) {
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

int es_tls_take_output(es_tls_t *t, es_buf_t *out)
{
    size_t pending = BIO_ctrl_pending(t->wbio);
    if (pending == 0)
        return 0;
    char *dst = es_buf_reserve(out, pending);
    if (dst == NULL)
        return -1;
    int n = BIO_read(t->wbio, dst, (int)pending);
    if (n > 0)
        out->len += (size_t)n;
    return 0;
}

size_t es_tls_pending_input(const es_tls_t *t)
{
    return t->rbio != NULL ? BIO_ctrl_pending(t->rbio) : 0;
}

const char *es_tls_error(const es_tls_t *t, char *buf, size_t len)
{
    long v = t->ssl != NULL ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return buf;
    }
    last_error(buf, len);
    return buf;
}

const char *es_tls_version(const es_tls_t *t)
{
    return t->ssl != NULL ? SSL_get_version(t->ssl) : "";
}

int es_tls_alpn_h2(const es_tls_t *t)
{
    const unsigned char *p;
    unsigned int len;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    return len == 2 && p[0] == 'h' && p[1] == '2';
}

void es_tls_ctx_alpn_h2(SSL_CTX *ctx)
{
    static const unsigned char h2[] = "\x02h2";
    SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2) - 1);
}

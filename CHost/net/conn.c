#include "net/conn.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec/http1_server.h"
#include "codec/http2_server.h"
#include "core/log.h"
#include "core/stats.h"

/* The HTTP/1.1 codec's memory follows the connection's in one block (es_conn_accept). */
_Static_assert(sizeof(es_conn_t) % 8 == 0, "es_conn_t must keep what follows it aligned (the codec needs 8)");

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static void alloc_block(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void process(es_conn_t *c);
static void close_after_flush(es_conn_t *c);
static void update_reading(es_conn_t *c);

/* ---- the connection's timer: header deadline, keep-alive idle, delayed close ---------------- */

static void on_timer(uv_timer_t *t)
{
    es_conn_t *c = t->data;
    const es_listener_config_t *l = c->listener;
    es_conn_timer_t kind = (es_conn_timer_t)c->timer_kind;
    c->timer_kind = ES_CONN_TIMER_NONE;
    switch (kind) {
    case ES_CONN_TIMER_HEADERS:
        es_stats_inc(ES_STAT_HEADER_TIMEOUTS);
        if (c->codec == NULL || (c->codec_ops->idle(c->codec) && c->rlen == 0)) {
            /* Nothing of a request arrived: there is no one to answer. */
            es_debug("client %s:%u: no request within %llu ms; closing", c->peer_ip, c->peer_port,
                     (unsigned long long)l->request_headers_timeout_ms);
            es_conn_abort(c);
            return;
        }
        es_debug("client %s:%u: request head not complete within %llu ms; 408", c->peer_ip, c->peer_port,
                 (unsigned long long)l->request_headers_timeout_ms);
        c->codec_ops->header_timeout(c->codec);
        break;
    case ES_CONN_TIMER_IDLE:
        es_stats_inc(ES_STAT_IDLE_TIMEOUTS);
        es_debug("client %s:%u: idle for %llu ms; closing", c->peer_ip, c->peer_port,
                 (unsigned long long)l->idle_timeout_ms);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_HANDSHAKE:
        es_stats_inc(ES_STAT_TLS_HANDSHAKE_TIMEOUTS);
        es_debug("client %s:%u: TLS handshake not done within %llu ms; closing", c->peer_ip, c->peer_port,
                 (unsigned long long)l->tls_handshake_timeout_ms);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_DRAIN_IDLE:
        es_debug("client %s:%u: idle while the worker drains; closing", c->peer_ip, c->peer_port);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_DRAIN:
        es_stats_inc(ES_STAT_DELAYED_CLOSE_TIMEOUTS);
        es_debug("client %s:%u: delayed close timeout", c->peer_ip, c->peer_port);
        es_conn_abort(c);
        break;
    case ES_CONN_TIMER_NONE:
        break;
    }
}

static void arm_timer(es_conn_t *c, es_conn_timer_t kind, uint64_t ms)
{
    c->timer_kind = kind;
    if (kind == ES_CONN_TIMER_NONE || ms == 0) {
        c->timer_kind = ES_CONN_TIMER_NONE;
        uv_timer_stop(&c->timer);
        return;
    }
    if (kind == ES_CONN_TIMER_HEADERS)
        uv_update_time(c->tcp.loop); /* the deadline counts from now, not from when the loop woke */
    uv_timer_start(&c->timer, on_timer, ms + ES_CLOCK_SLACK_MS, 0);
}

/* How long a draining worker leaves an idle keep-alive connection open: the grace, or idle_timeout if shorter. */
static uint64_t drain_grace(es_conn_t *c)
{
    uint64_t idle = c->listener->idle_timeout_ms;
    return idle != 0 && idle < ES_DRAIN_IDLE_GRACE_MS ? idle : ES_DRAIN_IDLE_GRACE_MS;
}

static void process_again(es_conn_t *c)
{
    if (!c->processing)
        process(c);
}

static const es_conn_ops_t conn_ops = {
    .arm = arm_timer,
    .abort = es_conn_abort,
    .close_after_flush = close_after_flush,
    .update_reading = update_reading,
    .process = process_again,
    .drain_grace = drain_grace,
};

static void on_out_event(es_writeq_t *q, int status)
{
    es_conn_t *c = q->data;
    if (c->closing)
        return;
    if (status < 0) {
        es_debug("client %s:%u: write failed: %s", c->peer_ip, c->peer_port, uv_strerror(status));
        es_conn_abort(c);
    } else if (status == ES_WRITEQ_DRAINED && c->close_after) {
        close_after_flush(c);
    } else if (c->codec != NULL) {
        c->codec_ops->writable(c->codec, status == ES_WRITEQ_DRAINED);
    }
}

/* The connection's first bytes (or its TLS handshake) tell its protocol: its codec begins. */
static int start_codec(es_conn_t *c, int h2)
{
    c->codec_ops = h2 ? &es_http2_server_ops : &es_http1_server_ops;
    c->codec = h2 ? es_http2_server_new(c) : es_http1_server_init(c + 1, c);
    if (c->codec == NULL) {
        es_error("out of memory starting a connection");
        es_conn_abort(c);
        return -1;
    }
    return 0;
}

/* Cleartext: HTTP/2 with prior knowledge starts with the client preface, anything else is HTTP/1.1. Returns 0
 * when the codec is chosen (or the connection closed), 1 when the bytes so far could still be either. */
static int choose_cleartext_codec(es_conn_t *c)
{
    size_t n = c->rlen < ES_H2_PREFACE_LEN ? c->rlen : ES_H2_PREFACE_LEN;
    if (memcmp(c->rbuf, ES_H2_PREFACE, n) != 0) {
        start_codec(c, 0);
        return 0;
    }
    if (n < ES_H2_PREFACE_LEN)
        return 1;
    start_codec(c, 1);
    return 0;
}

void es_conn_accept(es_env_t *env, const es_listener_config_t *l, uv_stream_t *server)
{
    /* The HTTP/1.1 codec's memory comes with the connection's: an idle keep-alive connection is one block. */
    es_conn_t *c = calloc(1, sizeof(*c) + es_http1_server_size);
    if (c == NULL) {
        es_error("out of memory accepting a connection");
        return;
    }
    es_stats_inc(ES_STAT_CONNECTIONS);
    c->ops = &conn_ops;
    c->env = env;
    c->listener = l;
    uv_tcp_init(env->loop, &c->tcp);
    uv_timer_init(env->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    es_list_push_back(&env->conns, &c->link);
    es_writeq_init(&c->out, ES_WRITE_HIGH, ES_WRITE_LOW, on_out_event, c);

    int err = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (err) {
        es_debug("accept: %s", uv_strerror(err));
        es_conn_abort(c);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->peer_ip, sizeof(c->peer_ip));
            c->peer_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->peer_ip, sizeof(c->peer_ip));
            c->peer_port = ntohs(a->sin_port);
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    es_writeq_attach(&c->out, (uv_stream_t *)&c->tcp);
    if (l->tls_ctx != NULL) {
        c->tls = calloc(1, sizeof(*c->tls));
        if (c->tls == NULL || es_tls_init(c->tls, l->tls_ctx, NULL, NULL) != 0) {
            es_error("out of memory starting TLS on a connection");
            es_conn_abort(c);
            return;
        }
        es_writeq_set_tls(&c->out, c->tls);
        arm_timer(c, ES_CONN_TIMER_HANDSHAKE, l->tls_handshake_timeout_ms);
    } else {
        /* The codec is chosen by the first bytes; the head (or the preface) is due from now. */
        arm_timer(c, ES_CONN_TIMER_HEADERS, l->request_headers_timeout_ms);
    }
    es_debug("accepted connection from %s:%u on listener \"%s\"", c->peer_ip, c->peer_port, l->name);
    update_reading(c);
}

static void closed_one(es_conn_t *c)
{
    if (--c->closes_pending > 0)
        return;
    if (c->codec != NULL)
        c->codec_ops->free(c->codec);
    es_writeq_dispose(&c->out);
    if (c->tls != NULL) {
        es_tls_dispose(c->tls);
        free(c->tls);
    }
    es_env_t *env = c->env;
    if (c->rbuf != NULL)
        es_env_block_put(env, c->rbuf);
    free(c);
    es_stats_sub(ES_STAT_CONNECTIONS, 1);
    if (env->conn_closed != NULL)
        env->conn_closed(env);
}

static void on_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

void es_conn_abort(es_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    es_list_remove(&c->link);
    if (c->codec != NULL)
        c->codec_ops->abort(c->codec);
    c->closes_pending = 2;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    es_conn_t *c = req->data;
    free(req); /* runs before the handle's close callback, even when cancelled */
    if (status < 0 && !c->closing)
        es_conn_abort(c);
}

static void close_after_flush(es_conn_t *c)
{
    if (c->closing || c->draining)
        return;
    c->close_after = 1;
    if (c->tls != NULL && c->tls->handshake_done && !c->tls_notified) {
        /* Say the end in TLS too, so the client knows the response was not cut off: after the response, whose
         * plaintext may still wait to be encrypted (OpenSSL refuses to write after its close_notify). */
        c->tls_notified = 1;
        if (es_writeq_encode(&c->out) != 0 || c->closing)
            return;
        es_tls_close_notify(c->tls);
        es_writeq_flush(&c->out);
        if (c->closing)
            return;
    }
    if (!es_writeq_idle(&c->out))
        return; /* on_out_event calls back when drained */
    /*
     * Closing with unread input makes the kernel send RST, which can destroy the response before
     * the client reads it. If the request was not read completely, half-close and drain first.
     */
    int unread = c->rlen > 0 || (c->codec != NULL && c->codec_ops->unread(c->codec)) || c->force_drain;
    if (!unread) {
        es_conn_abort(c);
        return;
    }
    c->draining = 1;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        es_conn_abort(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        es_conn_abort(c);
        return;
    }
    arm_timer(c, ES_CONN_TIMER_DRAIN, c->listener->delayed_close_timeout_ms);
    if (c->rbuf != NULL) {
        es_env_block_put(c->env, c->rbuf);
        c->rbuf = NULL;
        c->rlen = 0;
    }
    update_reading(c);
}

static void update_reading(es_conn_t *c)
{
    if (c->closing)
        return;
    /* With TLS, ciphertext not yet decrypted counts as unparsed input too. */
    size_t backlog = c->tls != NULL ? es_tls_pending_input(c->tls) : 0;
    int want = c->draining ||
               (!c->close_after && backlog < ES_BLOCK_SIZE &&
                (c->codec == NULL || c->codec_ops->want_input(c->codec, c->rlen)));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_block, on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

void es_conn_drain(es_conn_t *c)
{
    if (c->closing || c->close_after || c->draining)
        return;
    if (c->codec == NULL) {
        /* Still in its TLS handshake: it has asked for nothing yet. */
        arm_timer(c, ES_CONN_TIMER_DRAIN_IDLE, drain_grace(c));
        return;
    }
    c->codec_ops->drain(c->codec);
}

static void alloc_block(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    es_conn_t *c = h->data;
    if (c->tls != NULL && !c->draining) {
        /* Ciphertext goes to OpenSSL at once; plaintext reaches rbuf as the codec makes room. */
        buf->base = es_env_block_get(c->env);
        buf->len = buf->base ? ES_BLOCK_SIZE : 0;
        return;
    }
    if (c->rbuf == NULL) {
        c->rbuf = es_env_block_get(c->env);
        c->rlen = 0;
    }
    if (c->rbuf == NULL || c->draining) {
        /* Draining reuses the block from offset 0: the bytes are dropped anyway. */
        buf->base = c->rbuf;
        buf->len = c->rbuf ? ES_BLOCK_SIZE : 0;
        return;
    }
    buf->base = c->rbuf + c->rlen;
    buf->len = ES_BLOCK_SIZE - c->rlen;
}

/* Plain HTTP on a TLS port: say so in plain HTTP (as nginx does), then close after a drain. */
static void plain_http_on_tls(es_conn_t *c)
{
    static const char reply[] = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 48\r\n"
                                "connection: close\r\n\r\nthis port speaks HTTPS (TLS): use https:// here\n";
    es_stats_inc(ES_STAT_TLS_PLAIN_HTTP);
    es_debug("client %s:%u: plain HTTP on a TLS listener", c->peer_ip, c->peer_port);
    arm_timer(c, ES_CONN_TIMER_NONE, 0);
    if (es_writeq_append_raw(&c->out, reply, sizeof(reply) - 1) != 0) {
        es_conn_abort(c);
        return;
    }
    c->force_drain = 1;
    close_after_flush(c);
    es_writeq_flush(&c->out);
}

/* Ciphertext from the client. Returns 0 to go on parsing, -1 when the connection is done with. */
static int tls_input(es_conn_t *c, const char *data, size_t len)
{
    es_tls_t *t = c->tls;
    if (!c->tls_seen) {
        c->tls_seen = 1;
        /* A TLS connection starts with a handshake record (22); a letter is an HTTP method. */
        if (data[0] >= 'A' && data[0] <= 'Z') {
            plain_http_on_tls(c);
            return -1;
        }
    }
    if (es_tls_feed(t, data, len) != 0) {
        es_conn_abort(c);
        return -1;
    }
    if (t->handshake_done)
        return 0;
    int r = es_tls_handshake(t);
    es_writeq_flush(&c->out); /* the handshake's own messages, or its alert */
    if (c->closing)
        return -1;
    if (r == ES_TLS_ERROR) {
        char why[200];
        es_stats_inc(ES_STAT_TLS_HANDSHAKE_FAILURES);
        es_debug("client %s:%u: TLS handshake failed: %s", c->peer_ip, c->peer_port, es_tls_error(t, why, sizeof why));
        arm_timer(c, ES_CONN_TIMER_NONE, 0);
        close_after_flush(c);
        return -1;
    }
    if (r != 1)
        return -1; /* more of the handshake to come */
    es_stats_inc(ES_STAT_TLS_HANDSHAKES);
    es_debug("client %s:%u: %s", c->peer_ip, c->peer_port, es_tls_version(t));
    arm_timer(c, ES_CONN_TIMER_NONE, 0);
    return start_codec(c, es_tls_alpn_h2(t));
}

/* Decrypts into rbuf as far as it has room. Returns 0, or ES_TLS_CLOSED / ES_TLS_ERROR. */
static int tls_fill(es_conn_t *c)
{
    if (c->tls == NULL || !c->tls->handshake_done || c->tls_eof)
        return 0;
    if (c->rbuf == NULL) {
        c->rbuf = es_env_block_get(c->env);
        c->rlen = 0;
        if (c->rbuf == NULL)
            return 0;
    }
    while (c->rlen < ES_BLOCK_SIZE) {
        ssize_t n = es_tls_read(c->tls, c->rbuf + c->rlen, ES_BLOCK_SIZE - c->rlen);
        if (n > 0) {
            c->rlen += (size_t)n;
            continue;
        }
        if (n == ES_TLS_AGAIN)
            break;
        return (int)n;
    }
    return 0;
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    es_conn_t *c = h->data;
    /* With TLS the block holds ciphertext (unless draining reused rbuf): it goes back after use. */
    char *cipher = c->tls != NULL && buf->base != NULL && buf->base != c->rbuf ? buf->base : NULL;
    if (c->closing) {
        if (cipher != NULL)
            es_env_block_put(c->env, cipher);
        return;
    }
    if (nread < 0) {
        if (c->draining || c->codec == NULL || c->codec_ops->idle(c->codec))
            es_debug("client %s:%u: closed (%s)", c->peer_ip, c->peer_port, uv_err_name((int)nread));
        else
            es_debug("client %s:%u: closed mid-request (%s)", c->peer_ip, c->peer_port, uv_err_name((int)nread));
        if (cipher != NULL)
            es_env_block_put(c->env, cipher);
        es_conn_abort(c);
        return;
    }
    if (c->draining) {
        if (cipher != NULL)
            es_env_block_put(c->env, cipher);
        if (c->rbuf != NULL) {
            es_env_block_put(c->env, c->rbuf);
            c->rbuf = NULL;
        }
        return;
    }
    if (nread == 0) {
        if (cipher != NULL)
            es_env_block_put(c->env, cipher);
        if (c->rlen == 0 && c->rbuf != NULL) {
            es_env_block_put(c->env, c->rbuf);
            c->rbuf = NULL;
        }
        return;
    }
    if (cipher != NULL) {
        int r = tls_input(c, cipher, (size_t)nread);
        es_env_block_put(c->env, cipher);
        if (r < 0 || c->closing)
            return;
    } else {
        c->rlen += (size_t)nread;
    }
    process(c);
}

/* Hands buffered bytes to the codec until they run out or it takes no more for now. */
static void process(es_conn_t *c)
{
    if (c->codec == NULL && (c->tls != NULL || c->rlen == 0 || choose_cleartext_codec(c) != 0 || c->codec == NULL))
        return;
    c->processing = 1;
    int tls = 0;
    while ((tls = tls_fill(c)) == 0 && c->rlen > 0 && !c->closing && !c->close_after && !c->draining) {
        ssize_t n = c->codec_ops->input(c->codec, c->rbuf, c->rlen);
        if (n < 0 || c->closing)
            break;
        if ((size_t)n < c->rlen)
            memmove(c->rbuf, c->rbuf + n, c->rlen - (size_t)n);
        c->rlen -= (size_t)n;
        if (n == 0)
            break; /* the codec waits (a request for its response): it calls process again */
    }
    c->processing = 0;
    if (c->closing)
        return;
    if (tls != 0) {
        /* close_notify or a TLS error: like the end of a plain connection, after what came before it. */
        c->tls_eof = 1;
        es_debug("client %s:%u: %s", c->peer_ip, c->peer_port, tls == ES_TLS_CLOSED ? "TLS close_notify" : "TLS error");
        c->codec_ops->flush(c->codec);
        es_writeq_flush(&c->out);
        if (!c->closing && !c->close_after && !c->draining)
            es_conn_abort(c);
        return;
    }
    if (c->rlen == 0 && c->rbuf != NULL) {
        es_env_block_put(c->env, c->rbuf);
        c->rbuf = NULL;
    }
    c->codec_ops->flush(c->codec);
    if (!c->closing)
        es_writeq_flush(&c->out);
    if (!c->closing)
        update_reading(c);
}

#include "codec/http1.h"

#include <stdio.h>
#include <string.h>

#define LIT(s) s, sizeof(s) - 1

int es_http1_hop_by_hop(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return es_name_eq(n, len, LIT("te"));
    case 7:
        return es_name_eq(n, len, LIT("upgrade"));
    case 10:
        return es_name_eq(n, len, LIT("connection")) || es_name_eq(n, len, LIT("keep-alive"));
    case 16:
        return es_name_eq(n, len, LIT("proxy-connection"));
    case 17:
        return es_name_eq(n, len, LIT("transfer-encoding"));
    default:
        return 0;
    }
}

int es_http1_connection_names_others(const es_msg_t *m)
{
    for (int c = es_msg_find(m, LIT("connection"), 0); c >= 0; c = es_msg_find(m, LIT("connection"), (uint32_t)c + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)c, &vlen);
        for (size_t k = 0; k < vlen;) {
            while (k < vlen && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
                k++;
            size_t start = k;
            while (k < vlen && v[k] != ',')
                k++;
            size_t end = k;
            while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
                end--;
            if (end > start && !es_name_eq(v + start, end - start, LIT("close")) &&
                !es_name_eq(v + start, end - start, LIT("keep-alive")))
                return 1;
        }
    }
    return 0;
}

int es_http1_drop_header_in(const es_msg_t *m, unsigned i, int names_others)
{
    size_t nlen;
    const char *name = es_msg_name(m, i, &nlen);
    if (es_http1_hop_by_hop(name, nlen))
        return 1;
    if (!names_others)
        return 0;
    /* Headers the sender named in Connection are hop-by-hop too. */
    for (int c = es_msg_find(m, LIT("connection"), 0); c >= 0; c = es_msg_find(m, LIT("connection"), (uint32_t)c + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)c, &vlen);
        if (es_value_has_token(v, vlen, name, nlen))
            return 1;
    }
    return 0;
}

const char *es_http1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 200 ? "Informational" : status < 300 ? "OK" : status < 400 ? "Redirect"
                  : status < 500 ? "Client Error" : "Server Error";
    }
}

int es_http1_write_chunk(es_writeq_t *q, const char *at, size_t len)
{
    if (len == 0)
        return 0; /* a zero-length chunk would end the body */
    char head[24];
    size_t n = 0;
    static const char hex[] = "0123456789abcdef";
    for (size_t v = len; v != 0; v >>= 4)
        n++;
    for (size_t i = 0, v = len; i < n; i++, v >>= 4)
        head[n - 1 - i] = hex[v & 15];
    head[n] = '\r';
    head[n + 1] = '\n';
    int err = es_writeq_append(q, head, n + 2);
    if (!err)
        err = es_writeq_append(q, at, len);
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err;
}

int es_http1_write_last_chunk(es_writeq_t *q, const es_msg_t *m)
{
    int err = es_writeq_append(q, "0\r\n", 3);
    int names_others = es_http1_connection_names_others(m);
    for (uint32_t i = m->ntrailers_from; !err && i < m->nheaders; i++) {
        if (es_http1_drop_header_in(m, i, names_others))
            continue;
        size_t nlen, vlen;
        const char *name = es_msg_name(m, i, &nlen);
        const char *value = es_msg_value(m, i, &vlen);
        err = es_writeq_append_field(q, name, nlen, value, vlen);
    }
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err;
}

int es_http1_write_local_reply(es_writeq_t *q, int status, const char *body, size_t len, int http10,
                               int keepalive, int head)
{
    const char *conn = !keepalive ? "connection: close\r\n" : http10 ? "connection: keep-alive\r\n" : "";
    int err = es_writeq_appendf(q, "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n%s\r\n",
                                status, es_http1_reason(status), len, conn);
    if (!err && !head)
        err = es_writeq_append(q, body, len);
    return err;
}

int es_http1_write_headers(es_writeq_t *q, const es_msg_t *m, int drop_length, int drop_forwarded, int drop_expect)
{
    uint32_t from, to;
    es_msg_section(m, 0, &from, &to);
    int names_others = es_http1_connection_names_others(m);
    for (uint32_t i = from; i < to; i++) {
        if (es_http1_drop_header_in(m, i, names_others))
            continue;
        size_t nlen, vlen;
        const char *name = es_msg_name(m, i, &nlen);
        const char *value = es_msg_value(m, i, &vlen);
        if (drop_length && es_name_eq(name, nlen, LIT("content-length")))
            continue;
        if (drop_forwarded && (es_name_eq(name, nlen, LIT("x-forwarded-for")) ||
                               es_name_eq(name, nlen, LIT("x-forwarded-proto")) ||
                               (drop_expect && es_name_eq(name, nlen, LIT("expect")))))
            continue;
        int err = es_writeq_append_field(q, name, nlen, value, vlen);
        if (err)
            return err;
    }
    return 0;
}

int es_http1_write_upgrade(es_writeq_t *q, const es_msg_t *m)
{
    int err = 0;
    for (int i = es_msg_find(m, LIT("upgrade"), 0); !err && i >= 0; i = es_msg_find(m, LIT("upgrade"), (uint32_t)i + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)i, &vlen);
        err = es_writeq_append_field(q, LIT("upgrade"), v, vlen);
    }
    return err ? err : es_writeq_append(q, LIT("connection: upgrade\r\n"));
}

int es_http1_write_request_head(es_writeq_t *q, const es_msg_t *m, const char *method, size_t method_len,
                                int64_t length, int chunked, const es_forwarded_t *fwd,
                                const es_endpoint_config_t *ep)
{
    size_t urllen;
    const char *url = es_msg_first(m, &urllen);
    int err = es_writeq_append(q, method, method_len);
    if (!err)
        err = es_writeq_append(q, " ", 1);
    if (!err)
        err = es_writeq_append(q, url, urllen);
    if (!err)
        err = es_writeq_append(q, LIT(" HTTP/1.1\r\n"));
    if (!err)
        err = es_http1_write_headers(q, m, 1, 1, fwd->drop_expect);
    if (!err && es_msg_find(m, LIT("host"), 0) < 0)
        err = es_writeq_appendf(q, "host: %s:%u\r\n", ep->address, ep->port);
    /* x-forwarded-for: every incoming value in order, then the client's address. */
    if (!err)
        err = es_writeq_append(q, LIT("x-forwarded-for: "));
    for (int i = es_msg_find(m, LIT("x-forwarded-for"), 0); !err && i >= 0;
         i = es_msg_find(m, LIT("x-forwarded-for"), (uint32_t)i + 1)) {
        size_t vlen;
        const char *v = es_msg_value(m, (uint32_t)i, &vlen);
        err = es_writeq_append(q, v, vlen);
        if (!err)
            err = es_writeq_append(q, ", ", 2);
    }
    if (!err)
        err = es_writeq_append(q, fwd->client_ip, strlen(fwd->client_ip));
    if (!err)
        err = fwd->tls ? es_writeq_append(q, LIT("\r\nx-forwarded-proto: https\r\n"))
                       : es_writeq_append(q, LIT("\r\nx-forwarded-proto: http\r\n"));
    if (!err && length >= 0)
        err = es_writeq_append_num_field(q, LIT("content-length"), (uint64_t)length);
    if (!err && chunked)
        err = es_writeq_append(q, LIT("transfer-encoding: chunked\r\n"));
    if (!err && fwd->upgrade)
        err = es_http1_write_upgrade(q, m);
    if (!err)
        err = es_writeq_append(q, "\r\n", 2);
    return err;
}

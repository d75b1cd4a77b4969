/*
 * What an exchange was: its route (matched when the request head arrives, before the filters, and again when a
 * filter changes what routes match on), its info (times, bytes, status, response flags), and, when it ends, its
 * access-log line and metrics. Nothing here is on the path of an exchange's bytes except a few stores.
 */
#include <string.h>
#include <time.h>

#include "core/router.h"
#include "obs/access_log.h"
#include "obs/builtin_metrics.h"
#include "stream/stream.h"

#define LIT(s) s, sizeof(s) - 1

const es_route_config_t *es_stream__match_route(es_stream_t *s)
{
    size_t urllen;
    const char *url = es_msg_first(&s->req, &urllen);
    const char *path = url;
    size_t pathlen = urllen;
    if (urllen > 0 && url[0] != '/') {
        /* absolute-form (a client that talks to us as a forward proxy): route on its path */
        const char *auth = urllen > 3 ? memmem(url, urllen, "://", 3) : NULL;
        const char *p = auth != NULL ? memchr(auth + 3, '/', urllen - (size_t)(auth + 3 - url)) : NULL;
        path = p != NULL ? p : "/";
        pathlen = p != NULL ? urllen - (size_t)(p - url) : 1;
    }
    const char *q = memchr(path, '?', pathlen);
    if (q != NULL)
        pathlen = (size_t)(q - path);
    return es_route_match(s->listener, &s->req, path, pathlen);
}

void es_stream__note_response(es_stream_t *s, int status, const es_msg_t *headers)
{
    s->owner.info.response_code = (uint16_t)status;
    const es_listener_config_t *l = s->listener;
    if (__builtin_expect(l->naccess_logs == 0 || headers == NULL || s->resp_log != NULL, 1))
        return;
    /* The upstream's head goes back to its connection once the response ends: the log keeps the headers it names. */
    for (size_t i = 0; i < l->naccess_logs; i++)
        if (es_access_format_keep_response(l->access_logs[i].format, headers, &s->resp_log) != 0)
            return;
}

void es_stream__info_finish(es_stream_t *s)
{
    es_stream_info_t *in = &s->owner.info;
    in->end_ns = uv_hrtime();
    if (s->listener->naccess_logs > 0) {
        /* The start on the wall clock, for %START_TIME%: now less the exchange's duration. (Filters that ask
         * without an access log get it computed the same way, when they ask.) */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
        in->start_unix_us = now_us - (in->end_ns - in->start_ns) / 1000u;
    }
    in->bytes_sent += s->sent[ES_DIR_RESPONSE];
    /* Cut short with no cause of the proxy's or the upstream's: the client went away. */
    uint32_t causes = ES_RF_UT | ES_RF_DT | ES_RF_SI | ES_RF_UC | ES_RF_UPE | ES_RF_UF | ES_RF_FE | ES_RF_FT | ES_RF_DPE;
    if (s->aborted && !(s->req_done && s->resp_done) && !(in->flags & causes))
        in->flags |= ES_RF_DC;
}

static const char *protocol_name(int p)
{
    return p == ES_PROTO_HTTP2 ? "HTTP/2" : p == ES_PROTO_HTTP10 ? "HTTP/1.0" : "HTTP/1.1";
}

void es_stream__record(es_stream_t *s)
{
    es_env_t *env = s->owner.env;
    const es_route_config_t *r = s->owner.route;
    const es_stream_info_t *in = &s->owner.info;
    size_t li = (size_t)(s->listener - env->cfg->listeners);
    es_builtin_request_done(li, r, in->response_code, (double)(in->end_ns - in->start_ns) * 1e-9);
    if (env->access_logs != NULL && es_access_logs_enabled(env->access_logs, li)) {
        const es_endpoint_config_t *ep = s->owner.info.endpoint;
        es_access_record_t rec = {
            .info = in,
            .req = &s->req,
            .resp = s->resp_log,
            .method = s->owner.method,
            .method_len = s->owner.method_len,
            .scheme = s->owner.tls ? "https" : "http",
            .route_name = r != NULL ? r->name : NULL,
            .cluster_name = r != NULL && r->cluster != NULL ? r->cluster->name : NULL,
            .upstream_host = ep != NULL ? ep->hostport : NULL,
            .peer_ip = s->owner.peer_ip,
            .peer_port = s->owner.peer_port,
            .protocol = protocol_name(s->owner.protocol),
            .filter_state = s->owner.log_state,
        };
        es_access_logs_write(env->access_logs, li, &rec);
    }
    if (s->resp_log != NULL) {
        es_msg_dispose(s->resp_log);
        free(s->resp_log);
        s->resp_log = NULL;
    }
    if (s->owner.log_state != NULL) {
        es_msg_dispose(s->owner.log_state);
        free(s->owner.log_state);
        s->owner.log_state = NULL;
    }
}

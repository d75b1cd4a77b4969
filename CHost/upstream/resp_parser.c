#include "upstream/resp_parser.h"

#include <llhttp.h>
#include <stdlib.h>

struct es_resp_parser_s {
    llhttp_t ll;                       /* first: llhttp's callbacks get &ll */
    const es_resp_parser_events_t *ev;
    void *user;
};

#define PARSER(p) ((es_resp_parser_t *)(p))

static int on_message_begin(llhttp_t *p)
{
    return PARSER(p)->ev->begin(PARSER(p)->user);
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    return PARSER(p)->ev->status(PARSER(p)->user, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return PARSER(p)->ev->field(PARSER(p)->user, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return PARSER(p)->ev->value(PARSER(p)->user, at, len);
}

static int on_headers_complete(llhttp_t *p)
{
    return PARSER(p)->ev->headers(PARSER(p)->user); /* 1: no body, as llhttp reads it too */
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    return PARSER(p)->ev->body(PARSER(p)->user, at, len);
}

static int on_message_complete(llhttp_t *p)
{
    int r = PARSER(p)->ev->complete(PARSER(p)->user);
    return r > 0 ? HPE_PAUSED : r;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

es_resp_parser_t *es_resp_parser_new(const es_resp_parser_events_t *ev)
{
    es_resp_parser_t *p = calloc(1, sizeof(*p));
    if (p != NULL)
        p->ev = ev;
    return p;
}

void es_resp_parser_free(es_resp_parser_t *p)
{
    free(p);
}

void es_resp_parser_reset(es_resp_parser_t *p, void *user)
{
    llhttp_init(&p->ll, HTTP_RESPONSE, &settings);
    p->user = user;
}

int es_resp_parser_execute(es_resp_parser_t *p, const char *data, size_t len, size_t *consumed)
{
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    if (e == HPE_OK) {
        *consumed = len;
        return ES_RESP_OK;
    }
    /* Paused or failed: llhttp says where it stopped (for a pause, right after the response). */
    const char *pos = llhttp_get_error_pos(&p->ll);
    *consumed = pos != NULL && pos >= data && pos <= data + len ? (size_t)(pos - data) : 0;
    return e == HPE_PAUSED ? ES_RESP_PAUSED : ES_RESP_ERROR;
}

int es_resp_parser_finish(es_resp_parser_t *p)
{
    llhttp_errno_t e = llhttp_finish(&p->ll);
    return e == HPE_OK || e == HPE_PAUSED ? ES_RESP_OK : ES_RESP_ERROR;
}

const char *es_resp_parser_error(const es_resp_parser_t *p)
{
    const char *why = llhttp_get_error_reason(&p->ll);
    return why != NULL ? why : llhttp_errno_name(llhttp_get_errno(&p->ll));
}

int es_resp_parser_status(const es_resp_parser_t *p)
{
    return p->ll.status_code;
}

int64_t es_resp_parser_content_length(const es_resp_parser_t *p)
{
    if ((p->ll.flags & F_CHUNKED) || !(p->ll.flags & F_CONTENT_LENGTH) || p->ll.content_length > INT64_MAX)
        return -1;
    return (int64_t)p->ll.content_length;
}

int es_resp_parser_chunked(const es_resp_parser_t *p)
{
    return (p->ll.flags & F_CHUNKED) != 0;
}

int es_resp_parser_keep_alive(const es_resp_parser_t *p)
{
    return llhttp_should_keep_alive(&p->ll);
}

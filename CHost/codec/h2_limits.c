/*
 * Floods nghttp2 1.52 does not cut: empty DATA frames without END_STREAM, PING and SETTINGS frames, each
 * counted per connection in a fixed window of the caller's clock. The count reads frame headers ahead of
 * nghttp2 (a 9-byte header, then a skip), because nghttp2 calls nothing for frames it ignores, such as
 * DATA on a closed stream, and those are the cheapest flood. A flood is answered before nghttp2 sees the
 * bytes: GOAWAY ENHANCE_YOUR_CALM, and feed fails.
 */
#include "codec/h2_session_int.h"

#include <string.h>
#include <time.h>

#define MAGIC_LEN 24 /* NGHTTP2_CLIENT_MAGIC */

enum { FLOOD_EMPTY_DATA, FLOOD_PING, FLOOD_SETTINGS };

static uint64_t now_ms(const es_h2_session_t *s)
{
    if (s->cb->now_ms != NULL)
        return s->cb->now_ms(s->user);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One more frame of kind `i`: whether it is one too many in the current window. */
static int over(es_h2_session_t *s, int i, uint64_t now, uint32_t max)
{
    if (now - s->flood[i].start >= s->cfg.flood_window_ms) {
        s->flood[i].start = now;
        s->flood[i].count = 0;
    }
    return ++s->flood[i].count > max;
}

/* The frame header in s->scan.hd is complete: count it. -1 on a flood. */
static int on_frame_header(es_h2_session_t *s, uint64_t now)
{
    const uint8_t *hd = s->scan.hd;
    uint32_t length = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
    uint8_t type = hd[3], flags = hd[4];
    s->scan.left = length;
    s->scan.have = 0;
    switch (type) {
    case NGHTTP2_DATA:
        if (flags & NGHTTP2_FLAG_END_STREAM)
            return 0;
        if (length == 0) {
            if (over(s, FLOOD_EMPTY_DATA, now, s->cfg.max_empty_data)) {
                s->counters.empty_data_flood++;
                return -1;
            }
        } else if (flags & NGHTTP2_FLAG_PADDED) {
            s->scan.pad = 1; /* all padding is empty too: decided on the next byte */
        }
        return 0;
    case NGHTTP2_PING:
        if (over(s, FLOOD_PING, now, s->cfg.max_ping)) {
            s->counters.ping_flood++;
            return -1;
        }
        return 0;
    case NGHTTP2_SETTINGS:
        if (over(s, FLOOD_SETTINGS, now, s->cfg.max_settings)) {
            s->counters.settings_flood++;
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

int es_h2__scan(es_h2_session_t *s, const uint8_t *p, size_t len)
{
    static const char magic[MAGIC_LEN + 1] = NGHTTP2_CLIENT_MAGIC;
    const uint8_t *end = p + len;
    uint64_t now = 0;
    int have_now = 0;

    while (p < end && !s->scan.off) {
        if (s->scan.magic < MAGIC_LEN) {
            if (*p != (uint8_t)magic[s->scan.magic]) {
                s->scan.off = 1;
                return 0;
            }
            s->scan.magic++;
            p++;
            continue;
        }
        if (s->scan.left > 0) {
            if (s->scan.pad) {
                s->scan.pad = 0;
                if (*p == s->scan.left - 1) { /* the pad length: nothing but padding */
                    if (!have_now++)
                        now = now_ms(s);
                    if (over(s, FLOOD_EMPTY_DATA, now, s->cfg.max_empty_data)) {
                        s->counters.empty_data_flood++;
                        goto flood;
                    }
                }
            }
            size_t skip = (size_t)(end - p) < s->scan.left ? (size_t)(end - p) : s->scan.left;
            p += skip;
            s->scan.left -= (uint32_t)skip;
            continue;
        }
        s->scan.hd[s->scan.have++] = *p++;
        if (s->scan.have < sizeof(s->scan.hd))
            continue;
        if (!have_now++)
            now = now_ms(s);
        if (on_frame_header(s, now) != 0)
            goto flood;
    }
    return 0;

flood:
    s->scan.off = 1;
    es_h2__terminate(s, ES_H2_ENHANCE_YOUR_CALM);
    return -EPROTO;
}

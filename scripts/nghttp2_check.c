/* Build-time check (Makefile): the libnghttp2 here has the rapid-reset (CVE-2023-44487) and CONTINUATION
 * flood (CVE-2024-28182) limits that CHost/codec/h2_session.c sets. Compiles, links and runs, or the build stops. */
#include <nghttp2/nghttp2.h>

int main(void)
{
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        return 1;
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_del(opt);
    return 0;
}

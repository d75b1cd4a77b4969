#include "obs/stream_info.h"

#include <string.h>

const char *const es_response_flag_names[ES_RF_COUNT] = {
    "UF", "UT", "UC", "DC", "LR", "NR", "UO", "DPE", "UPE", "SI", "DT", "FT", "FE",
};

size_t es_response_flags_format(uint32_t flags, char *out, size_t cap)
{
    size_t n = 0;
    for (unsigned b = 0; b < ES_RF_COUNT; b++) {
        if (!(flags & (1u << b)))
            continue;
        size_t len = strlen(es_response_flag_names[b]);
        if (n + len + 1 > cap)
            break;
        if (n > 0)
            out[n++] = ',';
        memcpy(out + n, es_response_flag_names[b], len);
        n += len;
    }
    return n;
}

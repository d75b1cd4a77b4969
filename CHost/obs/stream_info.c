#include "obs/stream_info.h"

const char *const es_response_flag_names[ES_RF_COUNT] = {
    "UF", "UT", "UC", "DC", "LR", "NR", "UO", "DPE", "UPE", "SI", "DT", "FT", "FE",
};

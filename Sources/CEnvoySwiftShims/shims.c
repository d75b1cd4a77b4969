#define _GNU_SOURCE
#include "CEnvoySwiftShims.h"

#include <dlfcn.h>
#include <stddef.h>

/* Defined (with @_cdecl) by the filter library's Swift code; weak so that a library or test
 * binary without it still links, and the SDK can say what is missing. */
extern void envoy_swift_register_filters(void) __attribute__((weak));

envoy_swift_shim_register_fn envoy_swift_shim_registration(void)
{
    return envoy_swift_register_filters;
}

const char *envoy_swift_shim_image_path(void)
{
    Dl_info info;
    if (dladdr((const void *)envoy_swift_shim_image_path, &info) == 0 || info.dli_fname == NULL)
        return "?";
    return info.dli_fname;
}

/* Read twice per hook: the initial-exec model makes that a plain %fs-relative access instead of a
 * __tls_get_addr call (this library is dlopen'd, where the default is the general-dynamic model).
 * glibc keeps static TLS room for such small variables of dlopen'd libraries. */
static __thread uintptr_t default_ran __attribute__((tls_model("initial-exec")));

void envoy_swift_shim_mark_default(uintptr_t type)
{
    default_ran = type;
}

uintptr_t envoy_swift_shim_take_default(void)
{
    uintptr_t r = default_ran;
    default_ran = 0;
    return r;
}

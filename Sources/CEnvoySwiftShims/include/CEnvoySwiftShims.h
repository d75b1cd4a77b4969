/*
 * Small C helpers the Swift SDK needs and Swift cannot express.
 * Not part of the host ABI (that is CHost/include/envoy_swift_abi.h).
 */
#ifndef ENVOY_SWIFT_SHIMS_H
#define ENVOY_SWIFT_SHIMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The function a filter library exports to register its filters:
 * `void envoy_swift_register_filters(void)`, or NULL when the image this SDK is linked into has
 * none. Found by a weak reference resolved at link time, so it works the same in a shared
 * library and in a test executable. */
typedef void (*envoy_swift_shim_register_fn)(void);
envoy_swift_shim_register_fn envoy_swift_shim_registration(void);

/* The path of the image (shared library or executable) this SDK is linked into, for messages;
 * "?" when unknown. OWNERSHIP: static storage of the loader. */
const char *envoy_swift_shim_image_path(void);

/* A per-thread mark set by the SDK's default callback implementations, so the SDK learns that a
 * filter left a hook out and can tell the host to skip it (ENVOY_SWIFT_STATUS_CONTINUE_SKIP).
 * `type` identifies the filter type whose default ran: a filter that wraps another and calls the
 * inner one's default must not be taken for one that left the hook out itself. */
void envoy_swift_shim_mark_default(uintptr_t type);
/* Returns the mark (0: none) and clears it. */
uintptr_t envoy_swift_shim_take_default(void);

#ifdef __cplusplus
}
#endif

#endif

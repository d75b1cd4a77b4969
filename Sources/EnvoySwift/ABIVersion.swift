/// The version of the C ABI between the host and a filter library.
///
/// The host reads it from a loaded `libswiftfilter.so` and refuses a library built for
/// another version. Bump it whenever a hook or callback changes shape.
public enum ABIVersion {
    public static let current: UInt32 = 1
}

/// Exported for the host: `uint32_t envoy_swift_abi_version(void)`.
@_cdecl("envoy_swift_abi_version")
public func envoySwiftABIVersion() -> UInt32 {
    ABIVersion.current
}

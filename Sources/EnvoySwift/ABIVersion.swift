import CEnvoySwiftABI

/// The version of the C ABI between the host and a filter library.
///
/// The host reads it from a loaded library through `envoy_swift_abi_version` and refuses a
/// library built for another version. It is `ENVOY_SWIFT_ABI_VERSION` of
/// `CHost/include/envoy_swift_abi.h`, the one source of truth.
public enum ABIVersion {
    /// The version this SDK was built against.
    public static let current = UInt32(ENVOY_SWIFT_ABI_VERSION)
}

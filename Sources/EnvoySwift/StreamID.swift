/// The host's handle for one stream (one request/response exchange).
///
/// Handles, not pointers, cross the C ABI: a call with the handle of a stream that has ended
/// fails with ``HostError/gone`` and touches nothing. `0` is never a valid handle.
public struct StreamID: Hashable, Sendable, CustomStringConvertible {
    /// The value the host passed to `envoy_swift_filter_new`.
    public let rawValue: UInt64

    /// Wraps a host handle.
    /// - Parameter rawValue: the `envoy_swift_stream_t` value.
    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// The handle in hexadecimal, as the host logs it.
    public var description: String {
        "0x" + String(rawValue, radix: 16)
    }
}

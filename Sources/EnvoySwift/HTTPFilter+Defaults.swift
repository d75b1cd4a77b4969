import CEnvoySwiftShims

// Default implementations: a filter implements only the callbacks it needs. Each marks that it ran,
// so the SDK can tell the host to stop calling a hook the filter left out.
extension HTTPFilter {
    /// Accepts every configuration.
    public static func validate(_ config: Config) throws {}

    /// Continues.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onRequestTrailers(_ trailers: HeaderMap) throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onResponseTrailers(_ trailers: HeaderMap) throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Does nothing.
    public mutating func onStreamComplete() {}
}

/// Which body of a stream a ``BodyBuffer`` names. The raw values are the ABI's
/// `envoy_swift_body_t`.
public enum BodyKind: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// The request body, on its way upstream.
    case request = 0
    /// The response body, on its way to the client.
    case response = 1

    /// "request body" or "response body".
    public var description: String {
        self == .request ? "request body" : "response body"
    }
}

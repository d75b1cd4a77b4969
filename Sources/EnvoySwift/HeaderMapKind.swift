/// Which header map of a stream a ``HeaderMap`` names. The raw values are the ABI's
/// `envoy_swift_header_map_t`.
public enum HeaderMapKind: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// The request headers, writable until they leave the filter chain.
    case requestHeaders = 0
    /// The request trailers (chunked requests only), writable in the request trailers callback.
    case requestTrailers = 1
    /// The response headers, once the upstream (or a direct response) produced them.
    case responseHeaders = 2
    /// The response trailers (chunked responses only), writable in the response trailers callback.
    case responseTrailers = 3

    /// "request headers", "response trailers"...
    public var description: String {
        switch self {
        case .requestHeaders: "request headers"
        case .requestTrailers: "request trailers"
        case .responseHeaders: "response headers"
        case .responseTrailers: "response trailers"
        }
    }
}

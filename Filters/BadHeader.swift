import EnvoySwift

/// `bad_header` (a test filter): tries to inject a header through a value with CRLF, which the
/// SDK refuses, and records the refusal as `x-injection-refused: 1` on the request.
public struct BadHeader: HTTPFilter {
    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {}

    /// Attempts the injection; continues either way.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        do {
            try headers.set("x-injected", "a\r\nx-evil: 1")
        } catch is HeaderError {
            try headers.set("x-injection-refused", "1")
        }
        return .continue
    }
}

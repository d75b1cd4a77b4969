import EnvoySwift

/// `header_touch` (a benchmark filter): the work a typical header filter does. It reads one
/// request header and sets another from it, and sets one response header.
///
/// ```yaml
/// plugin_config: { read: user-agent, name: x-touched }   # both optional, these are the defaults
/// ```
public struct HeaderTouch: HTTPFilter {
    /// Which request header is read, and the header set on the request and the response.
    public struct Config: Decodable, Sendable {
        /// The request header read (default `user-agent`).
        public var read: String?
        /// The header set on the request (to what was read, or `-`) and the response (default `x-touched`).
        public var name: String?

        /// Creates a configuration.
        public init(read: String? = nil, name: String? = nil) {
            self.read = read
            self.name = name
        }
    }

    private let read: String
    private let name: String

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        read = config.read ?? "user-agent"
        name = config.name ?? "x-touched"
    }

    /// Copies the read header's value into `name`.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try headers.set(name, headers[read] ?? "-")
        return .continue
    }

    /// Marks the response.
    public func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try headers.set(name, "1")
        return .continue
    }
}

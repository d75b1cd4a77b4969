import EnvoySwift

/// `chain_probe` (a test filter): adds its tag as one more `x-chain` value on the request headers
/// and on the response headers, so the order a chain runs in is visible both ways; and the
/// request's scheme, protocol and authority as seen by filters as `x-chain-scheme`,
/// `x-chain-version` and `x-chain-authority` on the response.
///
/// ```yaml
/// plugin_config: { tag: a }
/// ```
public struct ChainProbe: HTTPFilter {
    /// The tag.
    public struct Config: Decodable, Sendable {
        /// The value this instance adds to `x-chain`.
        public var tag: String

        /// Creates a configuration.
        /// - Parameter tag: the value to add.
        public init(tag: String) { self.tag = tag }
    }

    /// Refuses an empty tag or one with CR, LF or NUL.
    public static func validate(_ config: Config) throws {
        guard !config.tag.isEmpty, HeaderField.isValidValue(config.tag) else {
            throw ConfigError("tag must be a non-empty header value")
        }
    }

    private let tag: String
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        tag = config.tag
        self.context = context
    }

    /// Adds the tag to the request's `x-chain`.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try headers.add("x-chain", tag)
        return .continue
    }

    /// Adds the tag to the response's `x-chain`, and what filters see of the request.
    public func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try headers.add("x-chain", tag)
        try headers.set("x-chain-scheme", context.request.scheme)
        try headers.set("x-chain-version", context.request.httpVersion)
        try headers.set("x-chain-authority", context.request.authority)
        return .continue
    }
}

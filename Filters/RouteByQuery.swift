import EnvoySwift

/// `route_by_query`: turns a query parameter into a header that routes match on, so
/// `?backend=canary` can pick the route `match: { prefix: /, headers: { x-route: canary } }`.
///
/// ```yaml
/// plugin_config: { param: backend, header: x-route }   # both optional, these are the defaults
/// ```
/// The filter always removes an incoming `header` first (a client cannot pick a route by
/// sending it), then sets it when the parameter's value is made of `[A-Za-z0-9_-]`.
public struct RouteByQuery: HTTPFilter {
    /// Which parameter, which header.
    public struct Config: Decodable, Sendable {
        /// The query parameter to read (default "backend").
        public var param: String?
        /// The header to set (default "x-route").
        public var header: String?

        /// Creates a configuration.
        /// - Parameters:
        ///   - param: the query parameter, `nil` for "backend".
        ///   - header: the header, `nil` for "x-route".
        public init(param: String? = nil, header: String? = nil) {
            self.param = param
            self.header = header
        }
    }

    /// Refuses an empty parameter and a header name that is not a token.
    public static func validate(_ config: Config) throws {
        if config.param?.isEmpty == true { throw ConfigError("param must not be empty") }
        if let header = config.header, !HeaderField.isValidName(header) {
            throw ConfigError("header: invalid header name \"\(header)\"")
        }
    }

    private let param: String
    private let header: String
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        param = config.param ?? "backend"
        header = config.header ?? "x-route"
        self.context = context
    }

    /// Removes the routing header, then sets it from the query when the value is acceptable.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try headers.remove(header)
        if let value = context.request.queryParameter(param), Self.isAcceptable(value) {
            try headers.set(header, value)
            context.log.debug("\(header): \(value)")
        }
        return .continue
    }

    /// Whether `value` is non-empty and made of `[A-Za-z0-9_-]`.
    static func isAcceptable(_ value: String) -> Bool {
        !value.isEmpty
            && value.utf8.allSatisfy { c in
                switch c {
                case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "_"), UInt8(ascii: "-"): true
                default: false
                }
            }
    }
}

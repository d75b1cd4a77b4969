import EnvoySwift

/// `header_rewrite`: sets, adds and removes headers on the request and the response.
///
/// ```yaml
/// plugin_config:
///   request:  { set: { x-env: prod }, add: { via: envoy-swift }, remove: [x-debug] }
///   response: { set: { x-frame-options: DENY }, remove: [server] }
/// ```
/// Each part is optional. On each side the filter removes first, then sets (replacing every
/// value), then adds (one more value); within `set` and `add`, names go in sorted order.
public struct HeaderRewrite: HTTPFilter {
    /// The rules for both directions.
    public struct Config: Decodable, Sendable {
        /// Changes to the request headers.
        public var request: Rules?
        /// Changes to the response headers.
        public var response: Rules?

        /// Creates a configuration.
        /// - Parameters:
        ///   - request: changes to the request headers.
        ///   - response: changes to the response headers.
        public init(request: Rules? = nil, response: Rules? = nil) {
            self.request = request
            self.response = response
        }
    }

    /// The changes to one header map.
    public struct Rules: Decodable, Sendable {
        /// Headers to set: every existing value is replaced by this one.
        public var set: [String: String]?
        /// Headers to add after the existing values.
        public var add: [String: String]?
        /// Headers to remove (every value).
        public var remove: [String]?

        /// Creates rules.
        /// - Parameters:
        ///   - set: headers to set.
        ///   - add: headers to add.
        ///   - remove: headers to remove.
        public init(set: [String: String]? = nil, add: [String: String]? = nil, remove: [String]? = nil) {
            self.set = set
            self.add = add
            self.remove = remove
        }

        func validate(_ side: String) throws {
            for (name, value) in (set ?? [:]).sorted(by: { $0.key < $1.key }) {
                try check(side + ".set", name, value)
            }
            for (name, value) in (add ?? [:]).sorted(by: { $0.key < $1.key }) {
                try check(side + ".add", name, value)
            }
            for name in remove ?? [] {
                try check(side + ".remove", name, nil)
            }
        }

        private func check(_ key: String, _ name: String, _ value: String?) throws {
            do {
                try HeaderField.validate(name: name, value: value)
            } catch {
                throw ConfigError("\(key): \(error)")
            }
        }

        func apply(to headers: HeaderMap) throws {
            for name in remove ?? [] {
                try headers.remove(name)
            }
            for (name, value) in (set ?? [:]).sorted(by: { $0.key < $1.key }) {
                try headers.set(name, value)
            }
            for (name, value) in (add ?? [:]).sorted(by: { $0.key < $1.key }) {
                try headers.add(name, value)
            }
        }
    }

    /// Refuses header names that are not tokens and values with CR, LF or NUL.
    public static func validate(_ config: Config) throws {
        try config.request?.validate("request")
        try config.response?.validate("response")
    }

    private let config: Config

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
    }

    /// Applies the request rules.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try config.request?.apply(to: headers)
        return .continue
    }

    /// Applies the response rules.
    public func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try config.response?.apply(to: headers)
        return .continue
    }
}

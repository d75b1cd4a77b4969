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
        /// Headers to set: every existing value is replaced by this one (sorted by name).
        public var set: [HeaderField]
        /// Headers to add after the existing values (sorted by name).
        public var add: [HeaderField]
        /// Headers to remove (every value).
        public var remove: [String]

        /// Creates rules.
        /// - Parameters:
        ///   - set: headers to set.
        ///   - add: headers to add.
        ///   - remove: headers to remove.
        public init(set: [String: String] = [:], add: [String: String] = [:], remove: [String] = []) {
            self.set = Self.fields(set)
            self.add = Self.fields(add)
            self.remove = remove
        }

        enum CodingKeys: String, CodingKey {
            case set, add, remove
        }

        /// Decodes `{ set: {name: value}, add: {name: value}, remove: [name] }`, each optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            set = Self.fields(try c.decodeIfPresent([String: String].self, forKey: .set) ?? [:])
            add = Self.fields(try c.decodeIfPresent([String: String].self, forKey: .add) ?? [:])
            remove = try c.decodeIfPresent([String].self, forKey: .remove) ?? []
        }

        /// The fields in name order, once at startup: a JSON object has no order to keep.
        private static func fields(_ map: [String: String]) -> [HeaderField] {
            map.sorted { $0.key < $1.key }.map { HeaderField($0.key, $0.value) }
        }

        func validate(_ side: String) throws {
            for f in set { try check(side + ".set", f.name, f.value) }
            for f in add { try check(side + ".add", f.name, f.value) }
            for name in remove { try check(side + ".remove", name, nil) }
        }

        private func check(_ key: String, _ name: String, _ value: String?) throws {
            do {
                try HeaderField.validate(name: name, value: value)
            } catch {
                throw ConfigError("\(key): \(error)")
            }
        }

        func apply(to headers: HeaderMap) throws {
            for name in remove { try headers.remove(name) }
            for f in set { try headers.set(f.name, f.value) }
            for f in add { try headers.add(f.name, f.value) }
        }
    }

    /// Refuses header names that are not tokens and values with CR, LF or NUL.
    public static func validate(_ config: Config) throws {
        try config.request?.validate("request")
        try config.response?.validate("response")
    }

    private let request: Rules?
    private let response: Rules?

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        request = config.request
        response = config.response
    }

    /// Applies the request rules.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try request?.apply(to: headers)
        return .continue
    }

    /// Applies the response rules.
    public func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try response?.apply(to: headers)
        return .continue
    }
}

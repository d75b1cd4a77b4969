import EnvoySwift

/// `bearer_auth`: lets a request through only with `Authorization: Bearer <token>`; any other
/// request gets a 401 from the proxy, and nothing goes upstream.
///
/// ```yaml
/// plugin_config: { token: s3cret, realm: envoy-swift }   # realm is optional
/// ```
/// The token is compared in constant time. The Authorization header is passed on unchanged.
public struct BearerAuth: HTTPFilter {
    /// The expected token and the realm the 401 names.
    public struct Config: Decodable, Sendable {
        /// The token a request must present; must not be empty.
        public var token: String
        /// The realm in `WWW-Authenticate` (default "envoy-swift").
        public var realm: String?

        /// Creates a configuration.
        /// - Parameters:
        ///   - token: the expected token.
        ///   - realm: the realm, or `nil` for "envoy-swift".
        public init(token: String, realm: String? = nil) {
            self.token = token
            self.realm = realm
        }
    }

    /// Refuses an empty token, and a realm that cannot sit in a quoted string.
    public static func validate(_ config: Config) throws {
        guard !config.token.isEmpty else { throw ConfigError("token must not be empty") }
        if let realm = config.realm,
            realm.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
        {
            throw ConfigError("realm must not contain quotes, backslashes or control characters")
        }
    }

    private let token: [UInt8]
    private let realm: String
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        token = Array(config.token.utf8)
        realm = config.realm ?? "envoy-swift"
        self.context = context
    }

    /// Answers 401 unless the request carries the token.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        if let presented = headers["authorization"].flatMap(Self.bearerToken), Self.constantTimeEquals(presented, token) {
            return .continue
        }
        context.log.debug("401 for \(context.request.method) \(context.request.path)")
        return .localReply(
            status: 401,
            headers: ["www-authenticate": "Bearer realm=\"\(realm)\"", "content-type": "text/plain"],
            body: "unauthorized\n")
    }

    /// The token of "Bearer <token>" (the scheme is case-insensitive), or `nil`.
    static func bearerToken(_ authorization: String) -> ArraySlice<UInt8>? {
        let bytes = Array(authorization.utf8)
        let scheme = Array("bearer ".utf8)
        guard bytes.count > scheme.count,
            zip(bytes, scheme).allSatisfy({ ($0 | 0x20) == $1 || ($0 == $1) })
        else { return nil }
        var rest = bytes[scheme.count...]
        while rest.first == UInt8(ascii: " ") { rest = rest.dropFirst() }
        return rest.isEmpty ? nil : rest
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was
    /// right. (The expected token's length can show; its content cannot.)
    static func constantTimeEquals(_ presented: ArraySlice<UInt8>, _ expected: [UInt8]) -> Bool {
        var diff: UInt8 = presented.count == expected.count ? 0 : 1
        var p = presented.startIndex
        for e in expected {
            let c = p < presented.endIndex ? presented[p] : 0
            diff |= c ^ e
            if p < presented.endIndex { p += 1 }
        }
        return diff == 0
    }
}

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

    private let config: Config
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
    }

    /// Answers 401 unless the request carries the token.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        if let authorization = headers["authorization"], Self.isBearer(authorization, token: config.token) {
            return .continue
        }
        let realm = config.realm ?? "envoy-swift"
        context.log.debug("401 for \(context.request.method) \(context.request.path)")
        return .localReply(
            status: 401,
            headers: ["www-authenticate": "Bearer realm=\"\(realm)\"", "content-type": "text/plain"],
            body: "unauthorized\n")
    }

    /// Whether `authorization` is "Bearer <token>" (the scheme in any case, then spaces), compared
    /// without copying either string to the heap.
    static func isBearer(_ authorization: String, token: String) -> Bool {
        var authorization = authorization, token = token
        return authorization.withUTF8 { a in
            token.withUTF8 { t in
                let scheme = "bearer ".utf8
                guard a.count > scheme.count, zip(a, scheme).allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }) else {
                    return false
                }
                var start = scheme.count
                while start < a.count && a[start] == UInt8(ascii: " ") { start += 1 }
                return start < a.count && constantTimeEquals(a[start...], t)
            }
        }
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was
    /// right. (The expected token's length can show; its content cannot.)
    static func constantTimeEquals(_ presented: some Collection<UInt8>, _ expected: some Collection<UInt8>) -> Bool {
        var diff: UInt8 = presented.count == expected.count ? 0 : 1
        var p = presented.makeIterator()
        for e in expected {
            diff |= (p.next() ?? 0) ^ e
        }
        return diff == 0
    }
}


import EnvoySwift

/// `callout_auth`: asks an auth service (a cluster of the proxy's YAML) about each request with an
/// HTTP call-out, and lets the request through only when it answers 200.
///
/// ```yaml
/// plugin_config: { cluster: auth, path: /auth, timeout_ms: 1000 }   # path and timeout_ms optional
/// ```
/// The call-out is `GET <path>` with the request's `Authorization` header (when it has one) and
/// `x-original-path: <request path>`. On 200 the request goes on, with `x-auth-user` set from the
/// answer's `x-auth-user` when there is one. A 401 or 403 is passed to the client; any other status
/// becomes 403 (`denied by auth service`). A call-out that fails (timeout, refused, unknown
/// cluster...) gives 503 `auth service unavailable: <reason>`.
public struct CalloutAuth: AsyncHTTPFilter {
    /// The configuration.
    public struct Config: Decodable, Sendable {
        /// The auth service's cluster.
        public var cluster: String
        /// The path asked (default "/auth").
        public var path: String
        /// The call-out's timeout in milliseconds (default 1000).
        public var timeoutMilliseconds: Int

        /// Creates a configuration.
        /// - Parameters:
        ///   - cluster: the auth service's cluster.
        ///   - path: the path asked.
        ///   - timeoutMilliseconds: the call-out's timeout.
        public init(cluster: String, path: String = "/auth", timeoutMilliseconds: Int = 1000) {
            self.cluster = cluster
            self.path = path
            self.timeoutMilliseconds = timeoutMilliseconds
        }

        enum CodingKeys: String, CodingKey {
            case cluster, path
            case timeoutMilliseconds = "timeout_ms"
        }

        /// Decodes `{ cluster, path?, timeout_ms? }`.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            cluster = try c.decode(String.self, forKey: .cluster)
            path = try c.decodeIfPresent(String.self, forKey: .path) ?? "/auth"
            timeoutMilliseconds = try c.decodeIfPresent(Int.self, forKey: .timeoutMilliseconds) ?? 1000
        }
    }

    /// Refuses an empty cluster, a path that does not start with "/", a timeout below 1 ms.
    public static func validate(_ config: Config) throws {
        guard !config.cluster.isEmpty else { throw ConfigError("cluster must not be empty") }
        guard config.path.hasPrefix("/") else { throw ConfigError("path must start with \"/\"") }
        guard config.timeoutMilliseconds > 0 else { throw ConfigError("timeout_ms must be positive") }
    }

    private let config: Config
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
    }

    /// Asks the auth service, then continues or answers.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        var fields: [HeaderField] = []
        if let authorization = headers["authorization"] { fields.append(HeaderField("authorization", authorization)) }
        fields.append(HeaderField("x-original-path", context.request.path))
        let request = HTTPCallout(
            cluster: config.cluster, path: config.path, headers: fields,
            timeout: .milliseconds(config.timeoutMilliseconds))
        let answer: HTTPCalloutResponse
        do {
            answer = try await context.callout(request)
        } catch let error as HTTPCalloutError {
            context.log.debug("auth call-out failed: \(error)")
            return .localReply(
                status: 503, headers: ["content-type": "text/plain"], body: "auth service unavailable: \(error.reason)\n")
        }
        switch answer.status {
        case 200:
            if let user = answer.header("x-auth-user") { try headers.set("x-auth-user", user) }
            return .continue
        case 401, 403:
            return Self.denied(answer.status)
        default:
            context.log.debug("auth service answered \(answer.status); denying")
            return Self.denied(403)
        }
    }

    private static func denied(_ status: Int) -> FilterStatus {
        .localReply(status: status, headers: ["content-type": "text/plain"], body: "denied by auth service\n")
    }
}

import EnvoySwift

#if canImport(Glibc)
import Glibc
#endif

/// `crash` (a test filter): a synchronous ``HTTPFilter`` that makes the worker process die of a
/// Swift trap when a request carries a given header, so the proxy's crash handling (which filter,
/// which hook, which request) can be tested end to end. Its async twin is ``CrashAsync``.
///
/// ```yaml
/// plugin_config: { header: x-crash, reply: "alive\n" }
/// ```
/// - `header` (default `x-crash`): a request with this header traps in the request headers
///   callback: a bounds check fails, or, when the value is `fatal`, `fatalError` is called.
/// - `reply` (optional): a request without the header is answered at once with 200 and this body
///   (text/plain); without `reply` it continues upstream.
/// - `trap_at_config` (default false): trap while the configuration is validated, at a worker's
///   start.
/// - `config_delay_ms` (default 0): take this long to validate the configuration: a worker that
///   is slow to start.
public struct Crash: HTTPFilter {
    /// The configuration, shared with ``CrashAsync``.
    public struct Config: Decodable, Sendable {
        /// The request header that makes the filter trap.
        public var header: String
        /// The body of a 200 answered to requests without the header, if any.
        public var reply: String?
        /// Trap while the configuration is validated, at a worker's start: a library that cannot
        /// start (for the proxy's reload and startup checks).
        public var trapAtConfig: Bool = false
        /// Milliseconds to spend validating the configuration: a worker that is slow to start.
        public var configDelayMs: Int = 0

        /// Creates a configuration.
        /// - Parameters:
        ///   - header: the header that makes the filter trap.
        ///   - reply: the body of the 200 for other requests, or `nil` to continue.
        public init(header: String = "x-crash", reply: String? = nil) {
            self.header = header
            self.reply = reply
        }

        enum CodingKeys: String, CodingKey {
            case header, reply
            case trapAtConfig = "trap_at_config"
            case configDelayMs = "config_delay_ms"
        }

        /// Decodes the keys above, each optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            header = try c.decodeIfPresent(String.self, forKey: .header) ?? "x-crash"
            reply = try c.decodeIfPresent(String.self, forKey: .reply)
            trapAtConfig = try c.decodeIfPresent(Bool.self, forKey: .trapAtConfig) ?? false
            configDelayMs = try c.decodeIfPresent(Int.self, forKey: .configDelayMs) ?? 0
        }

        /// Refuses a header name that is not an HTTP token.
        func validate() throws {
            guard HeaderField.isValidName(header) else { throw ConfigError("header must be an HTTP header name") }
            if trapAtConfig { _ = Crash.trap("config") }
            if configDelayMs > 0 { usleep(UInt32(min(configDelayMs, 60_000)) * 1000) }
        }

        /// Traps when the request has the header; otherwise the reply, or continue.
        func decide(_ headers: HeaderMap) -> FilterStatus {
            if let value = headers[header] {
                _ = Crash.trap(value)
            }
            guard let reply else { return .continue }
            return .localReply(status: 200, headers: ["content-type": "text/plain"], body: reply)
        }
    }

    /// Refuses a header name that is not an HTTP token.
    public static func validate(_ config: Config) throws {
        try config.validate()
    }

    /// Dies of a Swift runtime trap (index out of range): reads one byte past the end of `value`'s
    /// bytes. The length comes from the request, so the compiler cannot prove the index in range,
    /// and a failed bounds check is never optimised away (only `-Ounchecked` would drop it, and
    /// the library is not built so). The byte is returned so the read is not dead code either.
    /// - Parameter value: any string, here the header's value.
    /// - Returns: never returns.
    /// The value `fatal` calls `fatalError` instead, whose "Fatal error: ..." line the runtime prints
    /// in release builds too (a failed bounds check there traps without a message).
    @inline(never)
    static func trap(_ value: String) -> UInt8 {
        if value == "fatal" { fatalError("the crash filter was asked to crash") }
        let bytes = Array(value.utf8)
        return bytes[bytes.count]
    }

    private let config: Config

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
    }

    /// Traps when the request has the header; otherwise answers `reply`, or continues.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        config.decide(headers)
    }
}

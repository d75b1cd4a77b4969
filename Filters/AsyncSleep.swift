import EnvoySwift
import Synchronization

/// `async_sleep` (a test filter): sleeps in one callback with `Task.sleep`, so the proxy's
/// RUNNING path, its filter timeout and client disconnects can be tested end to end.
///
/// ```yaml
/// plugin_config: { ms: 200, on: request_headers, fail: false, counters_path: /_sleep_counters }
/// ```
/// - `ms` (default 200): how long each sleep lasts.
/// - `on` (default `request_headers`): `request_headers`, `request_body`, `response_headers` or
///   `response_body`; the body variants sleep in every body call.
/// - `fail` (default false): throw after the sleep (the proxy answers 500).
/// - `counters_path` (optional): a request for exactly this path is answered at once with
///   `started=N cancelled=N completed=N\n` (text/plain): sleeps begun, sleeps ended by
///   cancellation, and stream ends of instances that began one, process-wide.
///
/// After a header sleep it sets `x-async-slept: <ms>` on that direction's headers, proving that a
/// change made after an `await` reaches the proxy.
public struct AsyncSleep: AsyncHTTPFilter {
    /// Which callback sleeps.
    public enum Phase: String, Decodable, Sendable {
        /// `request_headers`: once, then `x-async-slept` on the request headers.
        case requestHeaders = "request_headers"
        /// `request_body`: in every request body call.
        case requestBody = "request_body"
        /// `response_headers`: once, then `x-async-slept` on the response headers.
        case responseHeaders = "response_headers"
        /// `response_body`: in every response body call.
        case responseBody = "response_body"
    }

    /// The configuration.
    public struct Config: Decodable, Sendable {
        /// Milliseconds per sleep.
        public var ms: Int
        /// Which callback sleeps.
        public var on: Phase
        /// Throw after the sleep.
        public var fail: Bool
        /// The path answered with the counters, if any.
        public var countersPath: String?

        /// Creates a configuration.
        /// - Parameters:
        ///   - ms: milliseconds per sleep.
        ///   - on: which callback sleeps.
        ///   - fail: throw after the sleep.
        ///   - countersPath: the path answered with the counters.
        public init(ms: Int = 200, on: Phase = .requestHeaders, fail: Bool = false, countersPath: String? = nil) {
            self.ms = ms
            self.on = on
            self.fail = fail
            self.countersPath = countersPath
        }

        enum CodingKeys: String, CodingKey {
            case ms, on, fail
            case countersPath = "counters_path"
        }

        /// Decodes the keys above, each optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ms = try c.decodeIfPresent(Int.self, forKey: .ms) ?? 200
            on = try c.decodeIfPresent(Phase.self, forKey: .on) ?? .requestHeaders
            fail = try c.decodeIfPresent(Bool.self, forKey: .fail) ?? false
            countersPath = try c.decodeIfPresent(String.self, forKey: .countersPath)
        }
    }

    /// The error thrown after the sleep when `fail` is set.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        /// "failing after the sleep, as configured".
        public var description: String { "failing after the sleep, as configured" }
    }

    /// Refuses a negative `ms`.
    public static func validate(_ config: Config) throws {
        guard config.ms >= 0 else { throw ConfigError("ms must not be negative") }
    }

    /// Sleeps begun, process-wide.
    static let started = Atomic<Int>(0)
    /// Sleeps ended by cancellation, process-wide.
    static let cancelled = Atomic<Int>(0)
    /// Stream ends of instances that began a sleep, process-wide.
    static let completed = Atomic<Int>(0)

    /// "started=N cancelled=N completed=N\n".
    static var countersLine: String {
        "started=\(started.load(ordering: .relaxed)) cancelled=\(cancelled.load(ordering: .relaxed)) "
            + "completed=\(completed.load(ordering: .relaxed))\n"
    }

    private let config: Config
    private let context: FilterContext
    private var slept = false
    private var answeredCounters = false

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
    }

    /// Answers the counters path; sleeps when configured for request headers.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        if let path = config.countersPath, context.request.path == path {
            answeredCounters = true
            return .localReply(status: 200, headers: ["content-type": "text/plain"], body: Self.countersLine)
        }
        guard config.on == .requestHeaders else { return .continue }
        try await sleep()
        try headers.set("x-async-slept", String(config.ms))
        return .continue
    }

    /// Sleeps in every call when configured for the request body.
    public mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus {
        guard config.on == .requestBody, !answeredCounters else { return .continue }
        try await sleep()
        return .continue
    }

    /// Sleeps when configured for response headers.
    public mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        guard config.on == .responseHeaders, !answeredCounters else { return .continue }
        try await sleep()
        try headers.set("x-async-slept", String(config.ms))
        return .continue
    }

    /// Sleeps in every call when configured for the response body.
    public mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus {
        guard config.on == .responseBody, !answeredCounters else { return .continue }
        try await sleep()
        return .continue
    }

    /// Counts the stream end of an instance that began a sleep.
    public mutating func onStreamComplete() {
        if slept { Self.completed.add(1, ordering: .relaxed) }
    }

    /// One sleep, counted; cancellation is counted and rethrown, then `fail` applies.
    private mutating func sleep() async throws {
        slept = true
        Self.started.add(1, ordering: .relaxed)
        do {
            try await Task.sleep(for: .milliseconds(config.ms))
            try Task.checkCancellation()
        } catch {
            if error is CancellationError || Task.isCancelled { Self.cancelled.add(1, ordering: .relaxed) }
            throw error
        }
        if config.fail { throw Failure() }
    }
}

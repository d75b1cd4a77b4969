/// An HTTP filter: what a filter author writes.
///
/// The host creates one instance per stream (per request/response exchange) with
/// ``init(config:context:)`` and calls its callbacks in order on that stream's worker thread,
/// never two at once, so an instance keeps per-stream state in its own properties without locks.
/// Requests run through a chain first to last, responses last to first, as in Envoy.
///
/// Implement only the callbacks you need; the others continue. A callback that throws fails the
/// stream: the host answers 500 and logs the error.
///
/// ```swift
/// struct AddHeader: HTTPFilter {
///     struct Config: Decodable, Sendable { var value: String }
///     let value: String
///     init(config: Config, context: FilterContext) { value = config.value }
///
///     func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
///         try headers.set("x-added", value)
///         return .continue
///     }
/// }
/// // and once per library:  FilterRegistry.register(AddHeader.self, as: "add_header")
/// ```
///
/// The callbacks are synchronous and run without a task: the cheapest kind of filter. A filter that
/// needs to `await` (a call-out, a timer) conforms to ``AsyncHTTPFilter`` instead.
public protocol HTTPFilter {
    /// The filter's metrics: counters, gauges and histograms defined once per configuration
    /// (see ``FilterMetrics``), reached per stream with ``FilterContext/metrics(_:)``. ``NoMetrics``
    /// (the default) when the filter has none.
    associatedtype Metrics: FilterMetrics = NoMetrics

    /// The filter's configuration: `plugin_config` from the YAML, decoded from JSON once at
    /// startup and shared by every stream (hence `Sendable`). An absent `plugin_config` decodes
    /// like `{}`. Use ``NoConfig`` (the default) when the filter takes none.
    associatedtype Config: Decodable & Sendable = NoConfig

    /// Checks a decoded configuration once, at startup. Throw (best a ``ConfigError`` with one
    /// line saying what is wrong) to refuse it; the proxy then does not start. The default
    /// accepts everything.
    /// - Parameter config: the decoded configuration.
    static func validate(_ config: Config) throws

    /// Creates the filter for one stream. Throwing here fails the stream with 500.
    /// - Parameters:
    ///   - config: the configuration that ``validate(_:)`` accepted.
    ///   - context: the stream's header maps, bodies, facts and log.
    init(config: Config, context: FilterContext) throws

    /// The request headers arrived.
    /// - Parameters:
    ///   - headers: the request headers, writable until they go upstream.
    ///   - endOfStream: true when the request has no body.
    mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus

    /// A request body chunk arrived, or the whole buffered body after ``FilterStatus/stopAndBuffer``.
    /// - Parameters:
    ///   - body: the body this call sees; changes go upstream.
    ///   - endOfStream: true for the last data of the request.
    mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus

    /// The request trailers arrived (the end of a chunked request that has trailers).
    /// - Parameter trailers: the request trailers, writable.
    mutating func onRequestTrailers(_ trailers: HeaderMap) throws -> FilterStatus

    /// The response headers arrived (from the upstream, or a response the proxy made).
    /// - Parameters:
    ///   - headers: the response headers, writable until they go to the client.
    ///   - endOfStream: true when the response has no body.
    mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus

    /// A response body chunk arrived, or the whole buffered body after ``FilterStatus/stopAndBuffer``.
    /// - Parameters:
    ///   - body: the body this call sees; changes go to the client.
    ///   - endOfStream: true for the last data of the response.
    mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus

    /// The response trailers arrived.
    /// - Parameter trailers: the response trailers, writable.
    mutating func onResponseTrailers(_ trailers: HeaderMap) throws -> FilterStatus

    /// The stream has ended (completed, reset or failed): the last call, the place to log.
    /// The header maps and bodies are no longer reachable here.
    mutating func onStreamComplete()
}

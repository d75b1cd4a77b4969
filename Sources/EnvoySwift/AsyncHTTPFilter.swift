import CEnvoySwiftShims
/// An HTTP filter whose callbacks may `await`: a call-out to an auth service, a timer, a
/// continuation resumed by another thread.
///
/// The same callbacks as ``HTTPFilter``, with the same names, parameters and meanings, but
/// `async throws`. Register it the same way, with ``FilterRegistry``.
///
/// A callback that finishes without suspending costs one task and returns its status to the host
/// at once. One that suspends leaves the stream held by the host (nothing goes upstream or
/// downstream, body bytes are buffered up to the listener's watermark) until it finishes; then the
/// SDK hands the status to the host. Every line of a callback, before and after each `await`, runs
/// on the stream's worker thread, so the header maps and bodies stay usable across `await`s; that
/// thread also serves every other stream of the worker, so CPU-heavy work belongs in
/// `Task.detached`. When the host stops waiting (the filter's timeout) or the client goes away,
/// the task is cancelled (`Task.isCancelled`, `Task.sleep` throws `CancellationError`) and its
/// result dropped.
///
/// ```swift
/// struct CheckAuth: AsyncHTTPFilter {
///     struct Config: Decodable, Sendable { var cluster: String }
///     let config: Config
///     let context: FilterContext
///     init(config: Config, context: FilterContext) { self.config = config; self.context = context }
///
///     func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
///         let answer = try await context.callout(HTTPCallout(cluster: config.cluster, path: "/check"))
///         return answer.status == 200 ? .continue : .localReply(status: 403, body: "denied\n")
///     }
/// }
/// // and once per library:  FilterRegistry.register(CheckAuth.self, as: "check_auth")
/// ```
public protocol AsyncHTTPFilter: SendableMetatype {
    /// The filter's metrics: counters, gauges and histograms defined once per configuration
    /// (see ``FilterMetrics``), reached per stream with ``FilterContext/metrics(_:)``. ``NoMetrics``
    /// (the default) when the filter has none.
    associatedtype Metrics: FilterMetrics = NoMetrics

    /// The filter's configuration, as ``HTTPFilter/Config``.
    associatedtype Config: Decodable & Sendable = NoConfig

    /// Checks a decoded configuration once, at startup, as ``HTTPFilter/validate(_:)``.
    /// - Parameter config: the decoded configuration.
    static func validate(_ config: Config) throws

    /// Creates the filter for one stream. Throwing here fails the stream with 500.
    /// - Parameters:
    ///   - config: the configuration that ``validate(_:)`` accepted.
    ///   - context: the stream's header maps, bodies, facts, log and call-outs.
    init(config: Config, context: FilterContext) throws

    /// The request headers arrived.
    /// - Parameters:
    ///   - headers: the request headers, writable until they go upstream.
    ///   - endOfStream: true when the request has no body.
    mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus

    /// A request body chunk arrived, or the whole buffered body after ``FilterStatus/stopAndBuffer``.
    /// - Parameters:
    ///   - body: the body this call sees; changes go upstream.
    ///   - endOfStream: true for the last data of the request.
    mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus

    /// The request trailers arrived.
    /// - Parameter trailers: the request trailers, writable.
    mutating func onRequestTrailers(_ trailers: HeaderMap) async throws -> FilterStatus

    /// The response headers arrived.
    /// - Parameters:
    ///   - headers: the response headers, writable until they go to the client.
    ///   - endOfStream: true when the response has no body.
    mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus

    /// A response body chunk arrived, or the whole buffered body after ``FilterStatus/stopAndBuffer``.
    /// - Parameters:
    ///   - body: the body this call sees; changes go to the client.
    ///   - endOfStream: true for the last data of the response.
    mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus

    /// The response trailers arrived.
    /// - Parameter trailers: the response trailers, writable.
    mutating func onResponseTrailers(_ trailers: HeaderMap) async throws -> FilterStatus

    /// The stream has ended: the last call, synchronous, exactly once. When it ends while a
    /// callback is suspended (the client went away), the SDK cancels that callback's task and
    /// calls this after the task has finished.
    mutating func onStreamComplete()
}

// Default implementations: a filter implements only the callbacks it needs.
extension AsyncHTTPFilter {
    /// Accepts every configuration.
    public static func validate(_ config: Config) throws {}

    /// Continues.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onRequestTrailers(_ trailers: HeaderMap) async throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Continues.
    public mutating func onResponseTrailers(_ trailers: HeaderMap) async throws -> FilterStatus {
        envoy_swift_shim_mark_default(UInt(bitPattern: ObjectIdentifier(Self.self)))
        return .continue
    }

    /// Does nothing.
    public mutating func onStreamComplete() {}
}

/// Everything a filter instance can reach of its stream: the header maps, the bodies, the request
/// facts, the response status and the log.
///
/// The SDK passes it to ``HTTPFilter/init(config:context:)``; keep it in a property when a later
/// callback needs more than the map or body it receives. The views are handles onto the host's
/// stream, valid during that stream's callbacks.
public struct FilterContext: Sendable {
    /// The host's handle of the stream.
    public let stream: StreamID
    /// The filter instance's name from the YAML (`name:`).
    public let filterName: String
    /// The host this stream lives in (the live host, or a test double).
    public let host: any FilterHost

    /// Creates a context. The SDK does this for every stream; tests use `EnvoySwiftTesting`.
    /// - Parameters:
    ///   - host: the host of the stream.
    ///   - stream: the host's handle of the stream.
    ///   - filterName: the filter instance's name.
    public init(host: any FilterHost, stream: StreamID, filterName: String) {
        self.host = host
        self.stream = stream
        self.filterName = filterName
        metricsBox = nil
    }

    /// The configuration's metrics (a ``MetricsBox``), `nil` for a filter without any.
    @usableFromInline let metricsBox: AnyMetricsBox?

    init(host: any FilterHost, stream: StreamID, filterName: String, metricsBox: AnyMetricsBox?) {
        self.host = host
        self.stream = stream
        self.filterName = filterName
        self.metricsBox = metricsBox
    }

    /// The request headers.
    public var requestHeaders: HeaderMap { HeaderMap(host: host, stream: stream, kind: .requestHeaders) }
    /// The request trailers (chunked requests that have them).
    public var requestTrailers: HeaderMap { HeaderMap(host: host, stream: stream, kind: .requestTrailers) }
    /// The response headers, once there is a response.
    public var responseHeaders: HeaderMap { HeaderMap(host: host, stream: stream, kind: .responseHeaders) }
    /// The response trailers (chunked responses that have them).
    public var responseTrailers: HeaderMap { HeaderMap(host: host, stream: stream, kind: .responseTrailers) }
    /// The request body as the current request body callback sees it.
    public var requestBody: BodyBuffer { BodyBuffer(host: host, stream: stream, kind: .request) }
    /// The response body as the current response body callback sees it.
    public var responseBody: BodyBuffer { BodyBuffer(host: host, stream: stream, kind: .response) }
    /// Method, path, query, authority, scheme, protocol, client address.
    public var request: RequestInfo { RequestInfo(host: host, stream: stream) }
    /// The response status code, once response headers exist.
    public var responseStatus: Int? {
        ((try? host.attribute(stream, .responseStatus)) ?? nil).flatMap { Int($0) }
    }
    /// The host's log, tagged with this filter's name.
    public var log: FilterLogger { FilterLogger(host: host, filterName: filterName) }

    /// Values shared with the other filters of this request (typed by ``StateKey``), across
    /// directions and `await`s. See ``RequestState``.
    public var state: RequestState { RequestState(host: host, stream: stream) }

    /// What the exchange was so far: route, cluster, upstream, timings, byte counts, status and
    /// response flags. Complete in ``HTTPFilter/onStreamComplete()``, the place to log it. Each
    /// read asks the host (four calls); a host that cannot answer gives an empty ``StreamInfo``.
    public var streamInfo: StreamInfo { (try? host.streamInfo(stream)) ?? StreamInfo() }

    /// The filter's metrics, as its configuration defined them (``HTTPFilter/Metrics``): the same
    /// value for every stream of the configuration, reached with a reference and a cast.
    ///
    /// ```swift
    /// init(config: Config, context: FilterContext) {
    ///     metrics = context.metrics(Metrics.self)
    /// }
    /// ```
    /// - Parameter type: the filter's `Metrics` type. Asking for another type is a programmer
    ///   error and traps (``NoMetrics`` is always available).
    @inlinable
    public func metrics<M: FilterMetrics>(_ type: M.Type = M.self) -> M {
        if let box = metricsBox, box.type == ObjectIdentifier(M.self) {
            return unsafeDowncast(box, to: MetricsBox<M>.self).metrics
        }
        return otherMetrics(M.self)
    }

    /// ``NoMetrics``, or the trap for a type that is not the filter's.
    @usableFromInline
    func otherMetrics<M: FilterMetrics>(_ type: M.Type) -> M {
        if let none = NoMetrics() as? M { return none }
        preconditionFailure(
            "\(M.self) are not the metrics of filter \"\(filterName)\": ask for the filter's own Metrics type")
    }
}

/// What the exchange was: its route and upstream, when it began, how long it took, how many body
/// bytes went each way, the status sent and why it ended as it did. The ABI's
/// `envoy_swift_stream_info_t` plus the route, cluster and upstream attributes.
///
/// Read it with ``FilterContext/streamInfo``. In a callback it is the exchange so far
/// (``duration`` runs to now, ``responseCode`` is `nil` before the response); in
/// ``HTTPFilter/onStreamComplete()`` it is complete, which makes that the place to log:
///
/// ```swift
/// mutating func onStreamComplete() {
///     let info = context.streamInfo
///     context.log.info("\(info.routeName ?? "-") \(info.responseCode ?? 0) \(info.responseFlags) \(info.duration)")
/// }
/// ```
public struct StreamInfo: Hashable, Sendable {
    /// The matched route's `name` ("" when it has none); `nil` while no route matched.
    public var routeName: String?
    /// The matched route's cluster; `nil` while no route matched.
    public var clusterName: String?
    /// The upstream endpoint the request went to ("127.0.0.1:8080"); `nil` before one was picked.
    public var upstreamHost: String?
    /// Request body bytes read from the client.
    public var requestBodyBytes: UInt64
    /// Response body bytes sent to the client.
    public var responseBodyBytes: UInt64
    /// When the request began, in microseconds since 1970-01-01 00:00 UTC.
    public var startTimeUnixMicroseconds: UInt64
    /// From the start to the upstream's response head; `nil` when none came (yet).
    public var timeToUpstreamFirstByte: Duration?
    /// From the start to the end of the exchange (to now while it runs).
    public var duration: Duration
    /// Why the exchange ended as it did.
    public var responseFlags: ResponseFlags
    /// The status sent to the client; `nil` while none was.
    public var responseCode: Int?

    /// Creates stream info; the SDK reads it from the host, tests set it on a test stream.
    /// - Parameters:
    ///   - routeName: the matched route's name.
    ///   - clusterName: the matched route's cluster.
    ///   - upstreamHost: the upstream endpoint.
    ///   - requestBodyBytes: request body bytes read.
    ///   - responseBodyBytes: response body bytes sent.
    ///   - startTimeUnixMicroseconds: the start, microseconds since the epoch.
    ///   - timeToUpstreamFirstByte: the start to the upstream's response head.
    ///   - duration: the start to the end.
    ///   - responseFlags: why it ended as it did.
    ///   - responseCode: the status sent.
    public init(
        routeName: String? = nil, clusterName: String? = nil, upstreamHost: String? = nil,
        requestBodyBytes: UInt64 = 0, responseBodyBytes: UInt64 = 0, startTimeUnixMicroseconds: UInt64 = 0,
        timeToUpstreamFirstByte: Duration? = nil, duration: Duration = .zero, responseFlags: ResponseFlags = [],
        responseCode: Int? = nil
    ) {
        self.routeName = routeName
        self.clusterName = clusterName
        self.upstreamHost = upstreamHost
        self.requestBodyBytes = requestBodyBytes
        self.responseBodyBytes = responseBodyBytes
        self.startTimeUnixMicroseconds = startTimeUnixMicroseconds
        self.timeToUpstreamFirstByte = timeToUpstreamFirstByte
        self.duration = duration
        self.responseFlags = responseFlags
        self.responseCode = responseCode
    }
}

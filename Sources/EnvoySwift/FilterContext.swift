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
}

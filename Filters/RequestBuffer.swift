import EnvoySwift

/// `request_buffer`: holds each request's whole body before anything of the request goes
/// upstream, like Envoy's buffer filter. A slow upload then never ties up an upstream connection,
/// and the upstream gets the body with a Content-Length. The host bounds what it holds with the
/// listener's `buffer_limits.max_body`; a larger body is answered `413` before it is all read.
///
/// ```yaml
/// plugin_config: {}
/// ```
public struct RequestBuffer: HTTPFilter {
    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {}

    /// Holds the headers of a request that has a body.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        endOfStream ? .continue : .stopAndBuffer
    }

    /// Keeps buffering until the body is complete.
    public mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        endOfStream ? .continue : .stopAndBuffer
    }
}

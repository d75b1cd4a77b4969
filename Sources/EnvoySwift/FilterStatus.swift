/// What a filter callback tells the host to do next. The meanings are Envoy's.
public enum FilterStatus: Hashable, Sendable, CustomStringConvertible {
    /// Pass the headers or data on to the next filter.
    case `continue`
    /// From a headers callback: hold the headers and buffer the body until the end of the stream,
    /// then call the body callback once with the whole body (`endOfStream` true). From a body
    /// callback: keep this data buffered and call again with everything when more arrives. Over the
    /// host's buffer limit the request fails with 413 (or 500 for a response).
    case stopAndBuffer
    /// Like ``stopAndBuffer``, but over the buffer's high watermark the host stops reading instead
    /// of failing, and calls the body callback again (with everything buffered) as data arrives.
    case stopAndBufferWatermark
    /// Hold the headers without buffering: each body chunk is handed to this filter and dropped
    /// afterwards unless the filter moved it into the body it passes on.
    case stopNoBuffer
    /// End the stream with this response instead of the upstream's (nothing more goes upstream).
    case localReply(LocalReply)

    /// Ends the stream with a response of the proxy's own.
    /// - Parameters:
    ///   - status: the status code, 200 to 599.
    ///   - headers: the response headers, in order: `["content-type": "text/plain"]`.
    ///   - body: the body, sent as UTF-8.
    public static func localReply(
        status: Int, headers: KeyValuePairs<String, String> = [:], body: String = ""
    ) -> FilterStatus {
        .localReply(LocalReply(status: status, headers: headers, body: body))
    }

    /// "continue", "stopAndBuffer", "localReply(401 ...)"...
    public var description: String {
        switch self {
        case .continue: "continue"
        case .stopAndBuffer: "stopAndBuffer"
        case .stopAndBufferWatermark: "stopAndBufferWatermark"
        case .stopNoBuffer: "stopNoBuffer"
        case .localReply(let reply): "localReply(\(reply))"
        }
    }
}

/// An HTTP request a filter sends to a cluster of the proxy's configuration (a "call-out"), for
/// example to ask an auth service; see ``FilterContext/callout(_:)``. The host sends it through its
/// own upstream pool and adds `Host` (the endpoint) and `Content-Length` (when there is a body).
///
/// ```swift
/// let check = HTTPCallout(cluster: "auth", path: "/check", headers: ["x-user": user], timeout: .milliseconds(500))
/// ```
public struct HTTPCallout: Hashable, Sendable {
    /// A cluster name from the proxy's YAML.
    public var cluster: String
    /// The method: "GET", "POST"...
    public var method: String
    /// The path, with the query if any: "/check?x=1".
    public var path: String
    /// The request headers, in order.
    public var headers: [HeaderField]
    /// The request body; sent with Content-Length when not empty.
    public var body: [UInt8]
    /// How long the host waits for the whole response; past it the call-out fails with
    /// ``HTTPCalloutError/timeout(_:)``. Zero means the host's default (5 s).
    public var timeout: Duration

    /// Creates a call-out.
    /// - Parameters:
    ///   - cluster: a cluster name from the proxy's YAML.
    ///   - method: the method.
    ///   - path: the path, with the query if any.
    ///   - headers: the request headers, in order.
    ///   - body: the request body.
    ///   - timeout: how long to wait for the response.
    public init(
        cluster: String, method: String = "GET", path: String, headers: [HeaderField] = [], body: [UInt8] = [],
        timeout: Duration = .seconds(5)
    ) {
        self.cluster = cluster
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }

    /// Creates a call-out with headers written as a dictionary literal and a text body.
    /// - Parameters:
    ///   - cluster: a cluster name from the proxy's YAML.
    ///   - method: the method.
    ///   - path: the path, with the query if any.
    ///   - headers: the request headers, in order: `["accept": "application/json"]`.
    ///   - body: the request body, sent as UTF-8.
    ///   - timeout: how long to wait for the response.
    public init(
        cluster: String, method: String = "GET", path: String, headers: KeyValuePairs<String, String>,
        body: String = "", timeout: Duration = .seconds(5)
    ) {
        self.init(
            cluster: cluster, method: method, path: path, headers: headers.map { HeaderField($0.key, $0.value) },
            body: Array(body.utf8), timeout: timeout)
    }

    /// The timeout in whole milliseconds as the ABI takes it (rounded up; 0 for the host's default).
    package var timeoutMilliseconds: UInt64 {
        let (seconds, attoseconds) = timeout.components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        let ms = Double(seconds) * 1000 + (Double(attoseconds) / 1e15).rounded(.up)
        return ms >= Double(UInt64.max) ? UInt64.max : UInt64(max(0, ms))
    }

    /// Checks what the host would refuse, before it sees it: the method must be a token, the path
    /// must start with "/" and hold no space or control character, the headers must be valid.
    package func validate() throws(HTTPCalloutError) {
        guard HeaderField.isValidName(method) else { throw .invalid("method \"\(method)\" is not a token") }
        guard path.utf8.first == UInt8(ascii: "/"), !path.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw .invalid("path must start with \"/\" and have no spaces or control characters")
        }
        for field in headers where !HeaderField.isValidName(field.name) || !HeaderField.isValidValue(field.value) {
            throw .invalid("bad header \"\(field.name)\"")
        }
    }
}

/// A response the proxy sends itself instead of the upstream's, ending the stream.
///
/// Return it from a callback as ``FilterStatus/localReply(_:)``. The host adds the framing
/// (Content-Length) and, when the request was not read completely, `Connection: close`.
public struct LocalReply: Hashable, Sendable, CustomStringConvertible {
    /// The status code, 200 to 599.
    public var status: Int
    /// The headers, in order.
    public var headers: [HeaderField]
    /// The body bytes.
    public var body: [UInt8]

    /// Creates a reply.
    /// - Parameters:
    ///   - status: the status code, 200 to 599.
    ///   - headers: the response headers, in order.
    ///   - body: the body bytes.
    public init(status: Int, headers: [HeaderField] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Creates a reply with a text body.
    /// - Parameters:
    ///   - status: the status code, 200 to 599.
    ///   - headers: the response headers, in order: `["content-type": "text/plain"]`.
    ///   - body: the body, sent as UTF-8.
    public init(status: Int, headers: KeyValuePairs<String, String>, body: String = "") {
        self.init(status: status, headers: headers.map { HeaderField($0.key, $0.value) }, body: Array(body.utf8))
    }

    /// Creates a reply with a text body.
    /// - Parameters:
    ///   - status: the status code, 200 to 599.
    ///   - headers: the response headers, in order.
    ///   - body: the body, sent as UTF-8.
    public init(status: Int, headers: [HeaderField] = [], body: String) {
        self.init(status: status, headers: headers, body: Array(body.utf8))
    }

    /// The body decoded as UTF-8.
    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    /// The first value of the header `name` (case-insensitive), if any.
    /// - Parameter name: the header name.
    public func header(_ name: String) -> String? {
        headers.first { HeaderField.namesEqual($0.name, name) }?.value
    }

    /// "401 (2 headers, 13 bytes)".
    public var description: String { "\(status) (\(headers.count) headers, \(body.count) bytes)" }
}

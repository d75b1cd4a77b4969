/// The response to an ``HTTPCallout``.
public struct HTTPCalloutResponse: Hashable, Sendable, CustomStringConvertible {
    /// The status code.
    public var status: Int
    /// The response headers, in order.
    public var headers: [HeaderField]
    /// The body (at most 4 MiB: the host fails a larger one with ``HTTPCalloutError/upstream(_:)``).
    public var body: [UInt8]

    /// Creates a response (test doubles answer call-outs with it).
    /// - Parameters:
    ///   - status: the status code.
    ///   - headers: the headers, in order.
    ///   - body: the body bytes.
    public init(status: Int, headers: [HeaderField] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Creates a response with headers written as a dictionary literal and a text body.
    /// - Parameters:
    ///   - status: the status code.
    ///   - headers: the headers, in order: `["x-auth-user": "ann"]`.
    ///   - body: the body, as UTF-8.
    public init(status: Int, headers: KeyValuePairs<String, String>, body: String = "") {
        self.init(status: status, headers: headers.map { HeaderField($0.key, $0.value) }, body: Array(body.utf8))
    }

    /// The first value of the header `name` (case-insensitive), if any.
    /// - Parameter name: the header name.
    public func header(_ name: String) -> String? {
        headers.first { HeaderField.namesEqual($0.name, name) }?.value
    }

    /// The body decoded as UTF-8 (invalid sequences become U+FFFD).
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// "200 (2 headers, 13 bytes)".
    public var description: String { "\(status) (\(headers.count) headers, \(body.count) bytes)" }
}

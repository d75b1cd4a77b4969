import EnvoySwift

/// The request a ``TestStream`` starts with: its headers and the facts the host would know.
///
/// ```swift
/// TestRequest(method: "POST", path: "/upload?dry=1", headers: ["content-type": "text/plain"])
/// ```
public struct TestRequest: Hashable, Sendable {
    /// The method: "GET".
    public var method: String
    /// The path without the query.
    public var path: String
    /// The query without the '?', "" when none.
    public var query: String
    /// The authority; `nil` means the value of the Host header (as the host reports it).
    public var authority: String?
    /// "http" or "https".
    public var scheme: String
    /// "HTTP/1.1" or "HTTP/1.0".
    public var httpVersion: String
    /// The client's address and port.
    public var clientAddress: String
    /// The request headers in wire order.
    public var headers: [HeaderField]

    /// Creates a request.
    /// - Parameters:
    ///   - method: the method.
    ///   - path: the path, optionally with "?query".
    ///   - headers: the headers in order.
    ///   - authority: the authority, `nil` for the Host header's value.
    ///   - scheme: "http" or "https".
    ///   - httpVersion: "HTTP/1.1" or "HTTP/1.0".
    ///   - clientAddress: the client's address and port.
    public init(
        method: String = "GET", path: String = "/", headers: [HeaderField] = [], authority: String? = nil,
        scheme: String = "http", httpVersion: String = "HTTP/1.1", clientAddress: String = "127.0.0.1:40000"
    ) {
        self.method = method
        if let q = path.firstIndex(of: "?") {
            self.path = String(path[..<q])
            self.query = String(path[path.index(after: q)...])
        } else {
            self.path = path
            self.query = ""
        }
        self.headers = headers
        self.authority = authority
        self.scheme = scheme
        self.httpVersion = httpVersion
        self.clientAddress = clientAddress
    }

    /// Creates a request with headers written as a dictionary literal (order and repeats kept).
    /// - Parameters:
    ///   - method: the method.
    ///   - path: the path, optionally with "?query".
    ///   - headers: the headers in order: `["host": "example.com", "accept": "*/*"]`.
    public init(method: String = "GET", path: String = "/", headers: KeyValuePairs<String, String>) {
        self.init(method: method, path: path, headers: headers.map { HeaderField($0.key, $0.value) })
    }
}

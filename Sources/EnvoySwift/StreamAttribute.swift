/// A fact about a stream that the host knows. The raw values are the ABI's
/// `envoy_swift_attribute_t`. Filters read these through ``RequestInfo`` and ``StreamInfo``.
public enum StreamAttribute: UInt32, Sendable, CaseIterable {
    /// The request method: "GET".
    case method = 0
    /// The request path without the query: "/a/b".
    case path = 1
    /// The query without the '?': "x=1&y=2", "" when none.
    case query = 2
    /// The Host header, "" when none.
    case authority = 3
    /// "http" or "https".
    case scheme = 4
    /// "HTTP/1.1" or "HTTP/1.0".
    case `protocol` = 5
    /// The client's address and port: "127.0.0.1:51234", "[::1]:51234".
    case clientAddress = 6
    /// The response status code ("200"), once response headers exist.
    case responseStatus = 7
    /// The matched route's `name` ("" when it has none); absent while no route matched.
    case routeName = 8
    /// The matched route's cluster; absent while no route matched.
    case cluster = 9
    /// The upstream endpoint the request went to: "127.0.0.1:8080"; absent before one was picked.
    case upstreamHost = 10
    /// The response flags in Envoy's letters: "UF,UT", "" when none (see ``ResponseFlags``).
    case responseFlags = 11
}

/// Why an ``HTTPCallout`` got no response.
public enum HTTPCalloutError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No complete response within the call-out's timeout; the host's reason.
    case timeout(String)
    /// The upstream failed: refused, reset, a malformed or too large response; the host's reason.
    case upstream(String)
    /// The stream ended, the filter's own timeout passed, or its task was cancelled first.
    case cancelled
    /// The proxy's configuration has no cluster of this name.
    case unknownCluster(String)
    /// The host refused the request (a bad method, path or header); what was wrong.
    case invalid(String)

    /// One line saying what went wrong.
    public var reason: String {
        switch self {
        case .timeout(let r): r.isEmpty ? "timed out" : r
        case .upstream(let r): r.isEmpty ? "upstream failed" : r
        case .cancelled: "cancelled"
        case .unknownCluster(let c): "unknown cluster \"\(c)\""
        case .invalid(let r): r.isEmpty ? "invalid call-out" : r
        }
    }

    /// "call-out timeout: ...", "call-out failed: ...".
    public var description: String {
        switch self {
        case .timeout: "call-out timeout: \(reason)"
        case .upstream: "call-out upstream failure: \(reason)"
        case .cancelled: "call-out cancelled"
        case .unknownCluster, .invalid: "call-out refused: \(reason)"
        }
    }
}

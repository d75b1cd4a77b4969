/// A host callback refused a request. The cases are the ABI's `envoy_swift_result_t` values.
public enum HostError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The stream has ended, or the call came outside the stream's callbacks or from another thread.
    case gone
    /// No such header, attribute or index.
    case notFound
    /// The host rejected an argument (a header name or value with CR, LF or NUL, a bad status...).
    case invalid
    /// Not now: for example request headers after they went upstream, or a body outside a body callback.
    case state
    /// The host ran out of memory.
    case noMemory
    /// A call-out took longer than its timeout.
    case timeout
    /// A call-out's upstream failed: refused, reset, malformed, or a body too large.
    case upstream
    /// A call-out's stream ended (or its filter timed out) first.
    case cancelled
    /// A result this SDK does not know.
    case unknown(Int32)

    /// Maps a negative `envoy_swift_result_t` to an error; `nil` for `ENVOY_SWIFT_OK` (0).
    /// - Parameter result: the value a host callback returned.
    public init?(result: Int32) {
        switch result {
        case 0: return nil
        case -1: self = .gone
        case -2: self = .notFound
        case -3: self = .invalid
        case -4: self = .state
        case -5: self = .noMemory
        case -6: self = .timeout
        case -7: self = .upstream
        case -8: self = .cancelled
        default: self = .unknown(result)
        }
    }

    /// The result code the ABI uses for this error.
    public var result: Int32 {
        switch self {
        case .gone: -1
        case .notFound: -2
        case .invalid: -3
        case .state: -4
        case .noMemory: -5
        case .timeout: -6
        case .upstream: -7
        case .cancelled: -8
        case .unknown(let code): code
        }
    }

    /// A short explanation, for logs.
    public var description: String {
        switch self {
        case .gone: "the stream has ended (or the call is outside its callbacks)"
        case .notFound: "not found"
        case .invalid: "invalid argument"
        case .state: "not allowed in this state of the stream"
        case .noMemory: "out of memory"
        case .timeout: "the call-out timed out"
        case .upstream: "the call-out's upstream failed"
        case .cancelled: "the call-out was cancelled"
        case .unknown(let code): "host error \(code)"
        }
    }
}

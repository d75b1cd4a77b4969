/// A ``TestStream`` call that the host would not make, or a filter result the host would refuse.
public enum TestStreamError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The calls came in an order the host never uses (for example a body before its headers).
    case outOfOrder(String)
    /// The stream already ended (a local reply, a failure, or ``TestStream/complete()``).
    case streamEnded
    /// The filter returned a local-reply status without sending a reply.
    case localReplyNotSent
    /// The filter failed (status error) without a Swift error to report.
    case filterFailed
    /// A status outside the ABI's values.
    case unknownStatus(UInt32)
    /// An async filter's callback ran past ``TestStream/timeout`` and was cancelled (the proxy
    /// would answer 504).
    case timedOut

    /// A short explanation.
    public var description: String {
        switch self {
        case .outOfOrder(let what): "out of order: \(what)"
        case .streamEnded: "the stream has ended"
        case .localReplyNotSent: "a local reply status without a reply"
        case .filterFailed: "the filter failed"
        case .unknownStatus(let s): "unknown status \(s)"
        case .timedOut: "the filter's callback timed out"
        }
    }
}

/// What a hook tells the host, as the ABI's `envoy_swift_status_t` (the raw values are its
/// values). The SDK maps a filter's ``FilterStatus`` to it, and hands the final one of an
/// asynchronous callback to ``FilterHost/resume(_:_:)``. Filter authors do not use it.
public enum HookStatus: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// Pass the headers or data on (``FilterStatus/continue``).
    case `continue` = 0
    /// ``FilterStatus/stopAndBuffer``.
    case stopAndBuffer = 1
    /// ``FilterStatus/stopAndBufferWatermark``.
    case stopAndBufferWatermark = 2
    /// ``FilterStatus/stopNoBuffer``.
    case stopNoBuffer = 3
    /// The filter sent a local reply (``FilterStatus/localReply(_:)``): end the stream with it.
    case localReply = 4
    /// The filter threw: the host answers 500.
    case error = 5
    /// The callback goes on asynchronously; the host holds the stream until
    /// ``FilterHost/resume(_:_:)`` gives one of the other statuses.
    case running = 6

    /// "continue", "localReply", "running"...
    public var description: String {
        switch self {
        case .continue: "continue"
        case .stopAndBuffer: "stopAndBuffer"
        case .stopAndBufferWatermark: "stopAndBufferWatermark"
        case .stopNoBuffer: "stopNoBuffer"
        case .localReply: "localReply"
        case .error: "error"
        case .running: "running"
        }
    }
}

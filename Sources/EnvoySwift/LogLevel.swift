/// The host's log levels, lowest first. The raw values are the ABI's `envoy_swift_log_level_t`.
public enum LogLevel: UInt32, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// Details for debugging; off by default.
    case debug = 0
    /// Normal events.
    case info = 1
    /// Something unexpected that the proxy handled.
    case warn = 2
    /// A failure.
    case error = 3

    /// Orders levels by severity.
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// "debug", "info", "warn" or "error", as the host's `--log-level` spells them.
    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warn: "warn"
        case .error: "error"
        }
    }
}

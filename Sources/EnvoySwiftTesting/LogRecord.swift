import EnvoySwift

/// One line a filter wrote into the ``TestHost``'s log.
public struct LogRecord: Hashable, Sendable, CustomStringConvertible {
    /// The level it was logged at.
    public var level: LogLevel
    /// The filter instance's name ("" when none).
    public var filter: String
    /// The text.
    public var message: String

    /// Creates a record.
    /// - Parameters:
    ///   - level: the level.
    ///   - filter: the filter instance's name.
    ///   - message: the text.
    public init(level: LogLevel, filter: String, message: String) {
        self.level = level
        self.filter = filter
        self.message = message
    }

    /// "warn [auth] message", like the host's line.
    public var description: String { "\(level) [\(filter)] \(message)" }
}

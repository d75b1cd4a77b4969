/// Writes into the host's log, tagged with the filter instance's name.
///
/// Messages are `@autoclosure`s: below the host's level they are never built, so
/// `log.debug("saw \(headers.count) headers")` costs one call to read the level.
/// Any thread may log, at any time.
public struct FilterLogger: Sendable {
    /// The filter instance's name from the YAML (`name:`), which the host prints with each line.
    public let filterName: String
    let host: any FilterHost

    init(host: any FilterHost, filterName: String) {
        self.host = host
        self.filterName = filterName
    }

    /// Whether a message at `level` would be written.
    /// - Parameter level: the level to ask about.
    public func isEnabled(_ level: LogLevel) -> Bool {
        level >= host.logLevel
    }

    /// Logs `message` at `level` when the host's level lets it through.
    /// - Parameters:
    ///   - level: the message's level.
    ///   - message: the text, one line; built only when it will be written.
    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        host.log(level, filter: filterName, message: message())
    }

    /// Logs at ``LogLevel/debug``.
    /// - Parameter message: the text, built only when debug logging is on.
    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    /// Logs at ``LogLevel/info``.
    /// - Parameter message: the text, built only when info logging is on.
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    /// Logs at ``LogLevel/warn``.
    /// - Parameter message: the text, built only when warnings are logged.
    public func warn(_ message: @autoclosure () -> String) { log(.warn, message()) }
    /// Logs at ``LogLevel/error``.
    /// - Parameter message: the text.
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }
}

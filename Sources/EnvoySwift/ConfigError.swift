/// A filter's configuration was rejected. Its message becomes the one-line reason the host prints
/// at startup ("... (\"auth\", plugin \"bearer_auth\"): token must not be empty").
///
/// Throw it from ``HTTPFilter/validate(_:)`` (or from a custom `init(from:)` of the config type).
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The reason, one line, without a trailing period.
    public var message: String

    /// Creates an error with the given reason.
    /// - Parameter message: one line that says what is wrong, for example "token must not be empty".
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

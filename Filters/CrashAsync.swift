import EnvoySwift

/// `crash_async` (a test filter): the ``AsyncHTTPFilter`` twin of ``Crash``. Its request headers
/// callback first sleeps 5 ms, so what follows runs in a job of the worker's executor (the host
/// RUNNING the hook), and then traps when the request has the header. Without the header it answers
/// `reply` or continues, after the same sleep.
///
/// ```yaml
/// plugin_config: { header: x-crash, reply: "alive\n" }
/// ```
/// The keys are ``Crash``'s.
public struct CrashAsync: AsyncHTTPFilter {
    /// The configuration: ``Crash/Config``.
    public typealias Config = Crash.Config

    /// Refuses a header name that is not an HTTP token.
    public static func validate(_ config: Config) throws {
        try config.validate()
    }

    private let config: Config

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
    }

    /// Sleeps 5 ms; then traps when the request has the header, otherwise answers `reply` or
    /// continues.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        try await Task.sleep(for: .milliseconds(5))
        return config.decide(headers)
    }
}

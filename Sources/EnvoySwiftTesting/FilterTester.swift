import EnvoySwift

/// A filter configured as the host would configure it, ready to run test streams against an
/// in-memory ``TestHost``: no proxy, no sockets, the same SDK code path as in the proxy
/// (configuration decoding and validation, the C hooks, status mapping).
///
/// ```swift
/// import EnvoySwiftTesting
/// import Testing
///
/// @Test func rejectsMissingToken() async throws {
///     let auth = try FilterTester(BearerAuth.self, configJSON: #"{"token": "s3cret"}"#)
///     let stream = try auth.stream(TestRequest(path: "/private"))
///     let status = try await stream.sendRequestHeaders(endOfStream: true)
///     #expect(status == .localReply(LocalReply(status: 401, ...)))
///     #expect(stream.localReply?.status == 401)
/// }
///
/// @Test func rewritesText() async throws {
///     let f = try FilterTester(BodyReplace.self, configJSON: #"{"find": "a", "replace": "b"}"#)
///     let s = try f.stream()
///     _ = try await s.sendRequestHeaders(endOfStream: true)
///     #expect(try await s.sendResponseHeaders(headers: ["content-type": "text/plain"]) == .stopAndBuffer)
///     #expect(try await s.sendResponseBody("aa", endOfStream: false) == .stopAndBuffer)
///     #expect(try await s.sendResponseBody("a", endOfStream: true) == .continue)
///     #expect(s.forwardedResponseBodyString == "bbb")
/// }
/// ```
///
/// A configuration the filter rejects throws ``ConfigError`` with the message the proxy would
/// print at startup.
///
/// ``AsyncHTTPFilter`` types work the same way: each `send...` call returns once the callback has
/// finished (see ``TestStream``), and ``TestHost/calloutHandler`` answers their call-outs.
public struct FilterTester: Sendable {
    /// The in-memory host the streams live in; its ``TestHost/logs`` holds what the filter logged.
    public let host: TestHost
    /// The filter instance's name (as `name:` in the YAML).
    public let name: String
    private let config: FilterConfigBox

    /// Configures `type` from JSON text, exactly as the proxy does with `plugin_config`.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - configJSON: the configuration as JSON; "null" (the default) means absent.
    ///   - name: the instance name.
    ///   - host: the host to run in; a fresh one by default.
    public init<F: HTTPFilter>(
        _ type: F.Type, configJSON: String = "null", name: String = "test", host: TestHost = TestHost()
    ) throws(ConfigError) {
        self.host = host
        self.name = name
        config = try FilterConfigBox.make(
            type, pluginName: String(describing: type), filterName: name, json: Array(configJSON.utf8), host: host)
    }

    /// Configures `type` from a configuration value (skipping JSON; ``HTTPFilter/validate(_:)``
    /// still runs).
    /// - Parameters:
    ///   - type: the filter type.
    ///   - config: the configuration.
    ///   - name: the instance name.
    ///   - host: the host to run in; a fresh one by default.
    public init<F: HTTPFilter>(
        _ type: F.Type, config: F.Config, name: String = "test", host: TestHost = TestHost()
    ) throws(ConfigError) {
        self.host = host
        self.name = name
        self.config = try FilterConfigBox.make(
            type, pluginName: String(describing: type), filterName: name, config: config, host: host)
    }

    /// Configures the async filter `type` from JSON text, exactly as the proxy does with
    /// `plugin_config`.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - configJSON: the configuration as JSON; "null" (the default) means absent.
    ///   - name: the instance name.
    ///   - host: the host to run in; a fresh one by default.
    public init<F: AsyncHTTPFilter>(
        _ type: F.Type, configJSON: String = "null", name: String = "test", host: TestHost = TestHost()
    ) throws(ConfigError) {
        self.host = host
        self.name = name
        config = try FilterConfigBox.make(
            type, pluginName: String(describing: type), filterName: name, json: Array(configJSON.utf8), host: host)
    }

    /// Configures the async filter `type` from a configuration value (skipping JSON;
    /// ``AsyncHTTPFilter/validate(_:)`` still runs).
    /// - Parameters:
    ///   - type: the filter type.
    ///   - config: the configuration.
    ///   - name: the instance name.
    ///   - host: the host to run in; a fresh one by default.
    public init<F: AsyncHTTPFilter>(
        _ type: F.Type, config: F.Config, name: String = "test", host: TestHost = TestHost()
    ) throws(ConfigError) {
        self.host = host
        self.name = name
        self.config = try FilterConfigBox.make(
            type, pluginName: String(describing: type), filterName: name, config: config, host: host)
    }

    /// Configures the filter registered as `plugin` (see ``FilterRegistry``), as the proxy does
    /// for `plugin_name`. Call your library's registration function first.
    /// - Parameters:
    ///   - plugin: the registered plugin name.
    ///   - configJSON: the configuration as JSON; "null" (the default) means absent.
    ///   - name: the instance name.
    ///   - host: the host to run in; a fresh one by default.
    public init(
        plugin: String, configJSON: String = "null", name: String = "test", host: TestHost = TestHost()
    ) throws(ConfigError) {
        self.host = host
        self.name = name
        config = try FilterRegistry.makeConfig(plugin: plugin, filterName: name, json: Array(configJSON.utf8), host: host)
    }

    /// Starts a stream for `request` and creates the filter instance for it.
    /// - Parameters:
    ///   - request: the request's headers and facts.
    ///   - timeout: how long a callback of an async filter may run (``TestStream/timeout``).
    /// - Returns: the stream, to drive with its `send...` methods.
    /// - Throws: what the filter's `init(config:context:)` threw.
    public func stream(_ request: TestRequest = TestRequest(), timeout: Duration? = .seconds(30)) throws -> TestStream {
        let id = host.openStream(request)
        do {
            let instance = try config.makeInstance(stream: id, worker: host.worker(of: id))
            return TestStream(host: host, id: id, instance: instance, timeout: timeout)
        } catch {
            host.closeStream(id)
            throw error
        }
    }

    /// What the filter logged so far (all streams).
    public var logs: [LogRecord] { host.logs }
}

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

    /// Creates this filter's instance on a stream another tester started, as the next filter of the
    /// same chain: the two share the stream's headers, request state and stream info, so a test can
    /// prove that a value one filter stored reaches the other. Each ``TestStream`` drives its own
    /// filter (call the first one's `send...` first for a request, the last one's first for a
    /// response); the stream ends when both have completed. Both testers need the same ``host``.
    ///
    /// ```swift
    /// let host = TestHost()
    /// let writer = try FilterTester(plugin: "tenant_quota", name: "quota", host: host)
    /// let reader = try FilterTester(plugin: "state_reader", name: "reader", host: host)
    /// let first = try writer.stream(TestRequest(headers: ["x-tenant": "acme"]))
    /// let second = try reader.stream(joining: first)
    /// ```
    /// - Parameters:
    ///   - other: the stream of the filter before this one.
    ///   - timeout: how long a callback of an async filter may run.
    /// - Throws: ``TestStreamError/streamEnded`` when `other` has ended; what the filter's init threw.
    public func stream(joining other: TestStream, timeout: Duration? = .seconds(30)) throws -> TestStream {
        precondition(other.host === host, "stream(joining:) needs both testers on the same TestHost")
        guard host.joinStream(other.id) else { throw TestStreamError.streamEnded }
        do {
            let instance = try config.makeInstance(stream: other.id, worker: host.worker(of: other.id))
            return TestStream(host: host, id: other.id, instance: instance, timeout: timeout)
        } catch {
            host.closeStream(other.id)
            throw error
        }
    }

    /// The metrics this filter (by its instance ``name``) defined and recorded.
    public var metrics: TestMetrics { host.metrics(of: name) }

    /// What the filter logged so far (all streams).
    public var logs: [LogRecord] { host.logs }
}

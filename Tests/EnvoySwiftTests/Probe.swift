import EnvoySwift
import EnvoySwiftTesting

/// A test filter whose callbacks are closures, so a test can run any SDK call inside a real
/// callback. Its configuration cannot come from JSON: pass it as a value.
struct Probe: HTTPFilter {
    typealias Headers = @Sendable (HeaderMap, Bool, FilterContext) throws -> FilterStatus
    typealias Body = @Sendable (BodyBuffer, Bool, FilterContext) throws -> FilterStatus

    struct Config: Decodable, Sendable {
        var requestHeaders: Headers = { _, _, _ in .continue }
        var requestBody: Body = { _, _, _ in .continue }
        var requestTrailers: @Sendable (HeaderMap, FilterContext) throws -> FilterStatus = { _, _ in .continue }
        var responseHeaders: Headers = { _, _, _ in .continue }
        var responseBody: Body = { _, _, _ in .continue }
        var responseTrailers: @Sendable (HeaderMap, FilterContext) throws -> FilterStatus = { _, _ in .continue }
        var complete: @Sendable (FilterContext) -> Void = { _ in }
        var initFails = false

        init() {}

        init(from decoder: any Decoder) throws {
            throw ConfigError("Probe takes its configuration as a value")
        }
    }

    struct InitFailure: Error {}

    let config: Config
    let context: FilterContext

    init(config: Config, context: FilterContext) throws {
        if config.initFails { throw InitFailure() }
        self.config = config
        self.context = context
    }

    func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try config.requestHeaders(headers, endOfStream, context)
    }

    func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        try config.requestBody(body, endOfStream, context)
    }

    func onRequestTrailers(_ trailers: HeaderMap) throws -> FilterStatus {
        try config.requestTrailers(trailers, context)
    }

    func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try config.responseHeaders(headers, endOfStream, context)
    }

    func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        try config.responseBody(body, endOfStream, context)
    }

    func onResponseTrailers(_ trailers: HeaderMap) throws -> FilterStatus {
        try config.responseTrailers(trailers, context)
    }

    func onStreamComplete() {
        config.complete(context)
    }
}

/// A place for a test to carry values out of a `@Sendable` callback.
final class Box<Value: Sendable>: @unchecked Sendable {
    // Invariant: tests run a stream's callbacks one at a time (TestStream serialises them).
    var value: Value
    init(_ value: Value) { self.value = value }
}

extension Probe {
    /// A stream of a Probe configured by `configure`, for `request`.
    static func stream(
        _ request: TestRequest = TestRequest(), host: TestHost = TestHost(), configure: (inout Config) -> Void
    ) throws -> TestStream {
        var config = Config()
        configure(&config)
        return try FilterTester(Probe.self, config: config, name: "probe", host: host).stream(request)
    }
}

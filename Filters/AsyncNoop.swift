import EnvoySwift

/// `async_noop` (a test and benchmark filter): an ``AsyncHTTPFilter`` that does nothing, but with
/// `yield` (the default) really suspends once in the request headers callback (`Task.yield()`), so
/// each request costs one trip through the worker's executor and the proxy's resume.
///
/// ```yaml
/// plugin_config: { yield: true }
/// ```
public struct AsyncNoop: AsyncHTTPFilter {
    /// The configuration.
    public struct Config: Decodable, Sendable {
        /// Suspend once in the request headers callback (default true).
        public var yield: Bool

        /// Creates a configuration.
        /// - Parameter yield: suspend once in the request headers callback.
        public init(yield: Bool = true) { self.yield = yield }

        enum CodingKeys: String, CodingKey { case yield }

        /// Decodes `{ yield: Bool }`, optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            yield = try c.decodeIfPresent(Bool.self, forKey: .yield) ?? true
        }
    }

    private let yield: Bool

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        yield = config.yield
    }

    /// Yields once when configured to, then continues.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        if yield { await Task.yield() }
        return .continue
    }
}

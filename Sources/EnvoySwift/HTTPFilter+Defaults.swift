// Default implementations: a filter implements only the callbacks it needs.
extension HTTPFilter {
    /// Accepts every configuration.
    public static func validate(_ config: Config) throws {}

    /// Continues.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        .continue
    }

    /// Continues.
    public mutating func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        .continue
    }

    /// Continues.
    public mutating func onRequestTrailers(_ trailers: HeaderMap) throws -> FilterStatus {
        .continue
    }

    /// Continues.
    public mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        .continue
    }

    /// Continues.
    public mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        .continue
    }

    /// Continues.
    public mutating func onResponseTrailers(_ trailers: HeaderMap) throws -> FilterStatus {
        .continue
    }

    /// Does nothing.
    public mutating func onStreamComplete() {}
}

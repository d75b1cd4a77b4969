import EnvoySwift

/// `throws` (a test filter): throws from the request headers callback, so the host answers 500.
public struct Throws: HTTPFilter {
    /// The error it throws.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        /// Creates the error.
        public init() {}

        /// "deliberate failure".
        public var description: String { "deliberate failure" }
    }

    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {}

    /// Throws ``Failure``.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        throw Failure()
    }
}

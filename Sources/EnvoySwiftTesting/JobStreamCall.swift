import EnvoySwift

/// One ``FilterHost/jobStream(_:)`` call the ``TestHost`` received: on which worker, the stream the
/// job about to run works for, or `nil` (after a worker run's jobs).
public struct JobStreamCall: Hashable, Sendable, CustomStringConvertible {
    /// The worker (queue) the call came from.
    public var worker: Int
    /// The stream named, or `nil` for none.
    public var stream: StreamID?

    /// Creates a record.
    /// - Parameters:
    ///   - worker: the worker index.
    ///   - stream: the stream, or `nil`.
    public init(worker: Int, stream: StreamID?) {
        self.worker = worker
        self.stream = stream
    }

    /// "worker 0: 0x1", or "worker 0: none".
    public var description: String { "worker \(worker): \(stream.map(String.init(describing:)) ?? "none")" }
}

/// A counter of a filter: only goes up. Define it in the filter's ``FilterMetrics`` with
/// ``MetricsRegistry/counter(_:labels:)``.
///
/// ```swift
/// metrics.denied.increment(labels: "expired")        // no allocation
/// metrics.denied.increment(labels: ["expired"])      // an array: may allocate
/// ```
///
/// Give as many label values as the counter has label names, in their order. A wrong count is a
/// programmer error: the host refuses the record and the SDK logs a warning (nothing is thrown).
/// Each record is one host call on the stream's worker thread, with no allocation when the values
/// are an argument list (see ``MetricHandle``).
public struct Counter: Sendable {
    @usableFromInline let handle: MetricHandle

    init(_ handle: MetricHandle) {
        self.handle = handle
    }

    /// The metric's name, as defined.
    public var name: String { handle.name }

    /// Adds `amount` to the counter with no label values (for a counter defined without labels).
    @inlinable
    public func increment(by amount: UInt64 = 1) {
        handle.record(Double(amount))
    }

    /// Adds `amount` with one label value: no allocation and no copy of the value.
    @inlinable
    public func increment(by amount: UInt64 = 1, labels a: String) {
        handle.record(Double(amount), a)
    }

    /// Adds `amount` with two label values: no allocation and no copy of the values.
    @inlinable
    public func increment(by amount: UInt64 = 1, labels a: String, _ b: String) {
        handle.record(Double(amount), a, b)
    }

    /// Adds `amount` to the series of these label values.
    /// - Parameters:
    ///   - amount: how much to add (1 by default).
    ///   - labels: one value per label name, in order; none for a counter without labels.
    @inlinable
    public func increment<each L: StringProtocol>(by amount: UInt64 = 1, labels: repeat each L) {
        handle.record(Double(amount), repeat each labels)
    }

    /// Adds `amount` to the series of these label values, given as an array.
    /// - Parameters:
    ///   - amount: how much to add (1 by default).
    ///   - labels: one value per label name, in order.
    @inlinable
    public func increment(by amount: UInt64 = 1, labels: [String]) {
        handle.record(Double(amount), labels)
    }
}

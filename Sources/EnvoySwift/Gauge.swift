/// A gauge of a filter: goes up and down, or is set. Define it in the filter's ``FilterMetrics``
/// with ``MetricsRegistry/gauge(_:labels:)``.
///
/// ```swift
/// metrics.inFlight.increment(labels: tenant)   // in onRequestHeaders
/// metrics.inFlight.decrement(labels: tenant)   // in onStreamComplete
/// ```
///
/// Label values as for ``Counter``: as many as the label names, an argument list allocates nothing.
/// The host keeps a gauge per worker and adds them up when it is read.
public struct Gauge: Sendable {
    @usableFromInline let handle: MetricHandle

    init(_ handle: MetricHandle) {
        self.handle = handle
    }

    /// The metric's name, as defined.
    public var name: String { handle.name }

    /// Sets the gauge with one label value: no allocation and no copy of the value.
    @inlinable
    public func set(_ value: Double, labels a: String) {
        handle.record(value, a, set: true)
    }

    /// Adds `amount` with one label value.
    @inlinable
    public func increment(by amount: Double = 1, labels a: String) {
        handle.record(amount, a)
    }

    /// Subtracts `amount` with one label value.
    @inlinable
    public func decrement(by amount: Double = 1, labels a: String) {
        handle.record(-amount, a)
    }

    /// Sets the series of these label values to `value`.
    /// - Parameters:
    ///   - value: the new value.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func set<each L: StringProtocol>(_ value: Double, labels: repeat each L) {
        handle.record(value, repeat each labels, set: true)
    }

    /// Sets the series of these label values, given as an array, to `value`.
    /// - Parameters:
    ///   - value: the new value.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func set(_ value: Double, labels: [String]) {
        handle.record(value, labels, set: true)
    }

    /// Adds `amount` (1 by default).
    /// - Parameters:
    ///   - amount: how much to add; negative goes down.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func increment<each L: StringProtocol>(by amount: Double = 1, labels: repeat each L) {
        handle.record(amount, repeat each labels)
    }

    /// Adds `amount` (1 by default), label values given as an array.
    /// - Parameters:
    ///   - amount: how much to add; negative goes down.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func increment(by amount: Double = 1, labels: [String]) {
        handle.record(amount, labels)
    }

    /// Subtracts `amount` (1 by default).
    /// - Parameters:
    ///   - amount: how much to subtract.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func decrement<each L: StringProtocol>(by amount: Double = 1, labels: repeat each L) {
        handle.record(-amount, repeat each labels)
    }

    /// Subtracts `amount` (1 by default), label values given as an array.
    /// - Parameters:
    ///   - amount: how much to subtract.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func decrement(by amount: Double = 1, labels: [String]) {
        handle.record(-amount, labels)
    }
}

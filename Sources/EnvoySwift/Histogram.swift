/// A histogram of a filter: observations counted in fixed buckets, with their count and sum.
/// Define it in the filter's ``FilterMetrics`` with ``MetricsRegistry/histogram(_:labels:buckets:)``.
///
/// ```swift
/// metrics.checkTime.record(.milliseconds(12))        // in seconds: 0.012
/// metrics.bodySize.record(Double(n), labels: "upload")
/// ```
///
/// Label values as for ``Counter``: as many as the label names, an argument list allocates nothing.
public struct Histogram: Sendable {
    @usableFromInline let handle: MetricHandle

    init(_ handle: MetricHandle) {
        self.handle = handle
    }

    /// The metric's name, as defined.
    public var name: String { handle.name }

    /// Records `value` with no label values (for a histogram defined without labels).
    @inlinable
    public func record(_ value: Double) {
        handle.record(value)
    }

    /// Records `value` with one label value: no allocation and no copy of the value.
    @inlinable
    public func record(_ value: Double, labels a: String) {
        handle.record(value, a)
    }

    /// Records `value` with two label values: no allocation and no copy of the values.
    @inlinable
    public func record(_ value: Double, labels a: String, _ b: String) {
        handle.record(value, a, b)
    }

    /// Records a duration, in seconds, with one label value.
    @inlinable
    public func record(_ duration: Duration, labels a: String) {
        handle.record(Self.seconds(duration), a)
    }

    /// Observes `value`.
    /// - Parameters:
    ///   - value: the observation, in the unit of the buckets.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func record<each L: StringProtocol>(_ value: Double, labels: repeat each L) {
        handle.record(value, repeat each labels)
    }

    /// Observes `value`, label values given as an array.
    /// - Parameters:
    ///   - value: the observation, in the unit of the buckets.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func record(_ value: Double, labels: [String]) {
        handle.record(value, labels)
    }

    /// Observes a duration in seconds (the unit of the host's default buckets).
    /// - Parameters:
    ///   - duration: the observation.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func record<each L: StringProtocol>(_ duration: Duration, labels: repeat each L) {
        handle.record(Self.seconds(duration), repeat each labels)
    }

    /// Observes a duration in seconds, label values given as an array.
    /// - Parameters:
    ///   - duration: the observation.
    ///   - labels: one value per label name, in order.
    @inlinable
    public func record(_ duration: Duration, labels: [String]) {
        handle.record(Self.seconds(duration), labels)
    }

    @usableFromInline
    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) * 1e-18
    }
}

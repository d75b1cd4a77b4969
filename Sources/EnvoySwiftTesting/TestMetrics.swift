import EnvoySwift

/// The metrics one filter (by its instance name) recorded into a ``TestHost``, for assertions:
///
/// ```swift
/// let f = try FilterTester(TenantQuota.self, configJSON: #"{"deny_tenants": ["evil"]}"#)
/// ...
/// #expect(f.metrics.counter("denied", labels: ["tenant"]) == 1)
/// #expect(f.metrics.histogram("request_body_bytes", labels: ["acme"])?.count == 1)
/// ```
///
/// A live view: each read sees every record made so far, from every stream of the filter name.
public struct TestMetrics: Sendable {
    /// The filter instance's name the metrics are defined under.
    public let filterName: String
    let host: TestHost

    /// A counter's value for these label values; 0 when never recorded (or not defined).
    /// - Parameters:
    ///   - name: the metric's name.
    ///   - labels: one value per label name, in order.
    public func counter(_ name: String, labels: [String] = []) -> Double {
        host.metricSeries(filterName, name, .counter, labels)?.value ?? 0
    }

    /// A gauge's value for these label values; 0 when never recorded (or not defined).
    /// - Parameters:
    ///   - name: the metric's name.
    ///   - labels: one value per label name, in order.
    public func gauge(_ name: String, labels: [String] = []) -> Double {
        host.metricSeries(filterName, name, .gauge, labels)?.value ?? 0
    }

    /// A histogram's observations for these label values; `nil` when never recorded.
    /// - Parameters:
    ///   - name: the metric's name.
    ///   - labels: one value per label name, in order.
    public func histogram(_ name: String, labels: [String] = []) -> HistogramSample? {
        guard let s = host.metricSeries(filterName, name, .histogram, labels) else { return nil }
        return HistogramSample(values: s.observations)
    }

    /// The definition of metric `name`, or `nil` when the filter did not define it.
    /// - Parameter name: the metric's name.
    public func definition(_ name: String) -> MetricDefinition? {
        host.metricDefinitions.first { $0.filter == filterName && $0.name == name }
    }

    /// Every metric the filter defined, in definition order.
    public var definitions: [MetricDefinition] {
        host.metricDefinitions.filter { $0.filter == filterName }
    }
}

/// A metric as a filter defined it with the ``TestHost``.
public struct MetricDefinition: Hashable, Sendable {
    /// The host's id.
    public var id: UInt32
    /// The filter instance's name.
    public var filter: String
    /// The metric's name.
    public var name: String
    /// Counter, gauge or histogram.
    public var kind: MetricKind
    /// The label names, in order.
    public var labels: [String]
    /// A histogram's bucket bounds (empty: the host's duration buckets).
    public var buckets: [Double]
}

/// What a histogram series observed.
public struct HistogramSample: Hashable, Sendable {
    /// Every observation, oldest first.
    public var values: [Double]

    /// A sample of these observations.
    /// - Parameter values: the observations, oldest first.
    public init(values: [Double]) {
        self.values = values
    }
    /// How many observations.
    public var count: Int { values.count }
    /// Their sum.
    public var sum: Double { values.reduce(0, +) }
}

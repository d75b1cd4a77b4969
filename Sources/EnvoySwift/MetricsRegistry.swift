/// Defines a filter's metrics with the host; handed to ``FilterMetrics/init(_:)`` while the
/// host creates the filter's configuration, and valid only then.
///
/// Each definition is one host call (`metric_define`) under the filter's YAML name. Defining a
/// name again with the same kind and labels (another configuration of the same filter: a route's
/// override) gives the same metric; with another kind or other labels it is refused.
public struct MetricsRegistry: Sendable {
    /// The filter instance's name from the YAML, which prefixes the metrics' names.
    public let filterName: String
    let host: any FilterHost

    /// Creates a registry; the SDK does this for every configuration.
    /// - Parameters:
    ///   - filterName: the filter instance's name.
    ///   - host: the host to define the metrics with.
    package init(filterName: String, host: any FilterHost) {
        self.filterName = filterName
        self.host = host
    }

    /// Defines a counter.
    /// - Parameters:
    ///   - name: the metric's name, for example "denied" (`[a-zA-Z_][a-zA-Z0-9_]*` shows as is).
    ///   - labels: its label names, at most 4; each record gives as many values.
    /// - Throws: ``ConfigError`` naming the metric when the host refuses it.
    public func counter(_ name: String, labels: [String] = []) throws(ConfigError) -> Counter {
        Counter(try define(.counter, name, labels, buckets: []))
    }

    /// Defines a gauge.
    /// - Parameters:
    ///   - name: the metric's name.
    ///   - labels: its label names, at most 4.
    /// - Throws: ``ConfigError`` naming the metric when the host refuses it.
    public func gauge(_ name: String, labels: [String] = []) throws(ConfigError) -> Gauge {
        Gauge(try define(.gauge, name, labels, buckets: []))
    }

    /// Defines a histogram.
    /// - Parameters:
    ///   - name: the metric's name, for example "check_seconds".
    ///   - labels: its label names, at most 4.
    ///   - buckets: the buckets' upper bounds, ascending, at most 16 (+Inf is implicit); empty (the
    ///     default): the host's duration buckets in seconds, 0.5 ms to 10 s, which suit
    ///     ``Histogram/record(_:labels:)-(Duration,_)``.
    /// - Throws: ``ConfigError`` naming the metric when the host refuses it.
    public func histogram(_ name: String, labels: [String] = [], buckets: [Double] = []) throws(ConfigError) -> Histogram {
        Histogram(try define(.histogram, name, labels, buckets: buckets))
    }

    private func define(_ kind: MetricKind, _ name: String, _ labels: [String], buckets: [Double]) throws(ConfigError)
        -> MetricHandle
    {
        do {
            let id = try host.defineMetric(filter: filterName, kind: kind, name: name, labels: labels, buckets: buckets)
            return MetricHandle(id: id, kind: kind, name: name, labelCount: labels.count, filterName: filterName, host: host)
        } catch {
            throw ConfigError("metric \"\(name)\": the host refused the \(kind) (\(Self.reason(labels, buckets, error)))")
        }
    }

    /// What was probably wrong, for the one-line error.
    private static func reason(_ labels: [String], _ buckets: [Double], _ error: HostError) -> String {
        guard error == .invalid else { return error.description }
        if labels.count > 4 { return "\(labels.count) labels, at most 4" }
        if buckets.count > 16 { return "\(buckets.count) buckets, at most 16" }
        if zip(buckets, buckets.dropFirst()).contains(where: { $0 >= $1 }) { return "bucket bounds not ascending" }
        return "a bad name, or the name defined with another kind or labels"
    }
}

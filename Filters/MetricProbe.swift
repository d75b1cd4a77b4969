import EnvoySwift

/// `metric_probe` (a benchmark filter): per request, one counter increment and one histogram
/// record, each with a label, and nothing else. It measures what a filter's own metrics cost
/// next to `noop`.
///
/// ```yaml
/// plugin_config: {}
/// ```
public struct MetricProbe: HTTPFilter {
    /// A counter and a histogram, labelled by method.
    public struct Metrics: FilterMetrics {
        /// Requests, per method.
        public let requests: Counter
        /// A value per request (the request's header count), per method.
        public let headers: Histogram

        /// Defines the metrics.
        public init(_ registry: MetricsRegistry) throws {
            requests = try registry.counter("requests", labels: ["method"])
            headers = try registry.histogram("headers", labels: ["method"], buckets: [1, 2, 4, 8, 16, 32])
        }
    }

    private let metrics: Metrics

    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {
        metrics = context.metrics(Metrics.self)
    }

    /// Counts the request and records its header count.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        metrics.requests.increment(labels: "GET")
        metrics.headers.record(4, labels: "GET")
        return .continue
    }
}

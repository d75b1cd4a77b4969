/// What a filter's metric is. The raw values are the ABI's `envoy_swift_metric_kind_t`.
public enum MetricKind: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// Only goes up: requests, denials.
    case counter = 0
    /// Goes up and down, or is set: requests in flight, a queue's length.
    case gauge = 1
    /// Observations in fixed buckets, with their count and sum: latencies, sizes.
    case histogram = 2

    /// "counter", "gauge" or "histogram".
    public var description: String {
        switch self {
        case .counter: "counter"
        case .gauge: "gauge"
        case .histogram: "histogram"
        }
    }
}

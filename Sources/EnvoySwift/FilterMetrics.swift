/// The metrics of a filter type: counters, gauges and histograms with fixed label names, defined
/// once per configuration and recorded per request.
///
/// A filter declares them as its `Metrics` type (``HTTPFilter/Metrics``); the SDK creates that
/// value when the host creates the filter's configuration (`envoy_swift_filter_config_new`: at
/// startup, and once more per route that overrides the configuration) and every stream of the
/// configuration reaches the same value through ``FilterContext/metrics(_:)``, at no cost per stream.
///
/// ```swift
/// struct Auth: HTTPFilter {
///     struct Metrics: FilterMetrics {
///         let denied: Counter
///         let latency: Histogram
///         init(_ registry: MetricsRegistry) throws {
///             denied = try registry.counter("denied", labels: ["reason"])
///             latency = try registry.histogram("check_seconds")
///         }
///     }
///     let metrics: Metrics
///     init(config: Config, context: FilterContext) {
///         metrics = context.metrics(Metrics.self)
///     }
///     func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
///         guard headers["authorization"] != nil else {
///             metrics.denied.increment(labels: "missing")
///             return .localReply(status: 401, body: "unauthorized\n")
///         }
///         return .continue
///     }
/// }
/// ```
///
/// The host shows them as `envoy_swift_filter_<filter name>_<metric name>` (Prometheus) and
/// `filter.<filter name>.<metric name>` (the flat stats), where the filter name is the `name:` of
/// the filter in the YAML. A definition the host refuses (a bad name, more than 4 labels or 16
/// buckets, the name already defined with another kind or labels) makes the configuration fail
/// with a ``ConfigError`` naming the metric.
public protocol FilterMetrics: Sendable {
    /// Defines the metrics through `registry`. Runs once per configuration of the filter; throw
    /// (the registry's errors, or a ``ConfigError``) to refuse the configuration.
    /// - Parameter registry: defines metrics of this filter with the host.
    init(_ registry: MetricsRegistry) throws
}

/// The metrics of a filter that has none: the default ``HTTPFilter/Metrics``. Defines nothing.
public struct NoMetrics: FilterMetrics, Hashable {
    /// Creates the empty set.
    public init() {}

    /// Defines nothing.
    /// - Parameter registry: not used.
    public init(_ registry: MetricsRegistry) {}
}

/// What ``FilterContext`` holds of a configuration's metrics: one object per configuration, shared
/// by its streams, that says which `Metrics` type it holds, so that reaching them per stream is a
/// comparison and a field load rather than a dynamic cast.
///
/// `@unchecked Sendable` invariant: both properties are `let`s, and the subclass's `metrics` is
/// `Sendable`.
@usableFromInline
class AnyMetricsBox: @unchecked Sendable {
    /// `ObjectIdentifier` of the `Metrics` type held.
    @usableFromInline let type: ObjectIdentifier

    init(type: ObjectIdentifier) {
        self.type = type
    }
}

/// A configuration's metrics of type `M`.
@usableFromInline
final class MetricsBox<M: FilterMetrics>: AnyMetricsBox, @unchecked Sendable {
    @usableFromInline let metrics: M

    init(_ metrics: M) {
        self.metrics = metrics
        super.init(type: ObjectIdentifier(M.self))
    }
}

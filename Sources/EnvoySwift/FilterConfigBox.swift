/// One filter configuration of a chain, as `envoy_swift_filter_config_new` creates it: the decoded
/// and validated `Config`, the instance name, and the host the streams live in. Shared by every
/// worker thread.
///
/// `@unchecked Sendable` invariant: every stored property, here and in ``TypedFilterConfig``, is a
/// `let` of a `Sendable` type (the subclass exists so that creating an instance needs no closure
/// and no dynamic cast).
package class FilterConfigBox: @unchecked Sendable {
    /// The registered plugin name, or the type's name when created without the registry.
    package let pluginName: String
    /// The instance name from the YAML.
    package let filterName: String
    /// The host every stream of this configuration lives in.
    package let host: any FilterHost

    init(pluginName: String, filterName: String, host: any FilterHost) {
        self.pluginName = pluginName
        self.filterName = filterName
        self.host = host
    }

    /// Decodes and validates a configuration from JSON, as the host hands it over.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - pluginName: the plugin name, for messages.
    ///   - filterName: the instance name.
    ///   - json: `plugin_config` as JSON text ("null" when absent).
    ///   - host: the host the streams will live in.
    package static func make<F: HTTPFilter>(
        _ type: F.Type, pluginName: String, filterName: String, json: [UInt8], host: any FilterHost
    ) throws(ConfigError) -> FilterConfigBox {
        let config = try PluginConfigDecoder.decode(F.Config.self, from: json)
        return try make(type, pluginName: pluginName, filterName: filterName, config: config, host: host)
    }

    /// Validates an already decoded configuration.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - pluginName: the plugin name, for messages.
    ///   - filterName: the instance name.
    ///   - config: the configuration.
    ///   - host: the host the streams will live in.
    package static func make<F: HTTPFilter>(
        _ type: F.Type, pluginName: String, filterName: String, config: F.Config, host: any FilterHost
    ) throws(ConfigError) -> FilterConfigBox {
        try validate(config, with: F.validate)
        let metrics = try makeMetrics(F.Metrics.self, filterName: filterName, host: host)
        return TypedFilterConfig<F>(
            config: config, metrics: metrics, pluginName: pluginName, filterName: filterName, host: host)
    }

    /// Runs a filter type's `validate` (sync and async filters alike); its error becomes the one
    /// line the proxy prints at startup.
    static func validate<C>(_ config: C, with check: (C) throws -> Void) throws(ConfigError) {
        do {
            try check(config)
        } catch {
            throw ConfigError(PluginConfigDecoder.describe(error))
        }
    }

    /// Defines a filter type's metrics with the host, once per configuration (a route's override is
    /// another configuration: the host gives the same metrics again). `nil` for ``NoMetrics``, so a
    /// filter without metrics costs nothing per stream.
    static func makeMetrics<M: FilterMetrics>(_ type: M.Type, filterName: String, host: any FilterHost)
        throws(ConfigError) -> AnyMetricsBox?
    {
        if M.self == NoMetrics.self { return nil }
        do {
            return MetricsBox(try M(MetricsRegistry(filterName: filterName, host: host)))
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(PluginConfigDecoder.describe(error))
        }
    }

    /// Creates the filter instance for one stream; rethrows what the filter's init threw.
    /// - Parameters:
    ///   - stream: the host's handle of the stream.
    ///   - worker: the index of the worker thread the stream lives on.
    package func makeInstance(stream: StreamID, worker: Int) throws -> FilterInstanceBase {
        preconditionFailure("FilterConfigBox is abstract")
    }
}

/// The configuration of one filter type.
final class TypedFilterConfig<F: HTTPFilter>: FilterConfigBox, @unchecked Sendable {
    let config: F.Config
    /// The filter's metrics (a MetricsBox<F.Metrics>), or nil without any.
    let metrics: AnyMetricsBox?
    /// The instance class, looked up once: naming `FilterInstance<F>` in this unspecialized
    /// generic code would fetch its metadata on every stream.
    private let instanceType = FilterInstance<F>.self

    init(
        config: F.Config, metrics: AnyMetricsBox?, pluginName: String, filterName: String,
        host: any FilterHost
    ) {
        self.config = config
        self.metrics = metrics
        super.init(pluginName: pluginName, filterName: filterName, host: host)
    }

    override func makeInstance(stream: StreamID, worker: Int) throws -> FilterInstanceBase {
        let context = FilterContext(host: host, stream: stream, filterName: filterName, metricsBox: metrics)
        return instanceType.init(filter: try F(config: config, context: context), context: context)
    }
}

extension FilterConfigBox {
    /// Decodes and validates a configuration of an asynchronous filter from JSON.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - pluginName: the plugin name, for messages.
    ///   - filterName: the instance name.
    ///   - json: `plugin_config` as JSON text ("null" when absent).
    ///   - host: the host the streams will live in; it must have worker executors.
    package static func make<F: AsyncHTTPFilter>(
        _ type: F.Type, pluginName: String, filterName: String, json: [UInt8], host: any FilterHost
    ) throws(ConfigError) -> FilterConfigBox {
        let config = try PluginConfigDecoder.decode(F.Config.self, from: json)
        return try make(type, pluginName: pluginName, filterName: filterName, config: config, host: host)
    }

    /// Validates an already decoded configuration of an asynchronous filter.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - pluginName: the plugin name, for messages.
    ///   - filterName: the instance name.
    ///   - config: the configuration.
    ///   - host: the host the streams will live in; it must have worker executors.
    package static func make<F: AsyncHTTPFilter>(
        _ type: F.Type, pluginName: String, filterName: String, config: F.Config, host: any FilterHost
    ) throws(ConfigError) -> FilterConfigBox {
        try validate(config, with: F.validate)
        guard let workers = (host as? any WorkerPoolHost)?.workers else {
            throw ConfigError("this host has no worker executors, so it cannot run async filters")
        }
        let metrics = try makeMetrics(F.Metrics.self, filterName: filterName, host: host)
        return TypedAsyncFilterConfig<F>(
            config: config, metrics: metrics, workers: workers, pluginName: pluginName, filterName: filterName, host: host)
    }
}

/// The configuration of one asynchronous filter type, with the host's worker executors.
final class TypedAsyncFilterConfig<F: AsyncHTTPFilter>: FilterConfigBox, @unchecked Sendable {
    let config: F.Config
    /// The filter's metrics (a MetricsBox<F.Metrics>), or nil without any.
    let metrics: AnyMetricsBox?
    let workers: WorkerPool
    private let instanceType = AsyncFilterInstance<F>.self  // looked up once, as above

    init(
        config: F.Config, metrics: AnyMetricsBox?, workers: WorkerPool, pluginName: String,
        filterName: String, host: any FilterHost
    ) {
        self.config = config
        self.metrics = metrics
        self.workers = workers
        super.init(pluginName: pluginName, filterName: filterName, host: host)
    }

    override func makeInstance(stream: StreamID, worker: Int) throws -> FilterInstanceBase {
        guard let executor = workers.executor(worker) else {
            throw ConfigError("worker \(worker) out of range (the host has \(workers.executors.count))")
        }
        let context = FilterContext(host: host, stream: stream, filterName: filterName, metricsBox: metrics)
        return instanceType.init(filter: try F(config: config, context: context), context: context, executor: executor)
    }
}

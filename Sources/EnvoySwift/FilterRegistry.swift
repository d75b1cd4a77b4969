import Synchronization

/// The filters a library offers, by plugin name (`plugin_name` in the YAML).
///
/// A filter library registers its filters in one exported function that the SDK calls when the
/// host initialises the library:
///
/// ```swift
/// import EnvoySwift
///
/// @_cdecl("envoy_swift_register_filters")
/// public func registerFilters() {
///     FilterRegistry.register(BearerAuth.self, as: "bearer_auth")
///     FilterRegistry.register(HeaderRewrite.self, as: "header_rewrite")
/// }
/// ```
///
/// Swift has no load-time initialisers, so the SDK finds that function by its C name
/// (``entryPointSymbol``) in the library it is linked into. Registering a name again replaces
/// the earlier filter.
public enum FilterRegistry {
    /// The C name of the registration function a filter library exports.
    public static let entryPointSymbol = "envoy_swift_register_filters"

    /// Makes `type` available to the host as `pluginName`.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - pluginName: the name the YAML's `plugin_name` uses, for example "bearer_auth".
    public static func register<F: HTTPFilter>(_ type: F.Type, as pluginName: String) {
        let factory = Factory(TypedFactory<F>())
        factories.withLock { $0[pluginName] = factory }
    }

    /// Makes the asynchronous filter `type` available to the host as `pluginName`.
    /// - Parameters:
    ///   - type: the filter type.
    ///   - pluginName: the name the YAML's `plugin_name` uses, for example "callout_auth".
    public static func register<F: AsyncHTTPFilter>(_ type: F.Type, as pluginName: String) {
        let factory = Factory(TypedAsyncFactory<F>())
        factories.withLock { $0[pluginName] = factory }
    }

    /// Every registered plugin name, sorted.
    public static var pluginNames: [String] {
        factories.withLock { $0.keys.sorted() }
    }

    /// Whether a filter is registered as `pluginName`.
    /// - Parameter pluginName: the plugin name.
    public static func isRegistered(_ pluginName: String) -> Bool {
        factories.withLock { $0[pluginName] != nil }
    }

    /// Creates a configuration of the plugin registered as `pluginName`, as
    /// `envoy_swift_filter_config_new` does.
    /// - Parameters:
    ///   - pluginName: the registered name.
    ///   - filterName: the instance name from the YAML.
    ///   - json: `plugin_config` as JSON text.
    ///   - host: the host the streams will live in.
    package static func makeConfig(
        plugin pluginName: String, filterName: String, json: [UInt8], host: any FilterHost
    ) throws(ConfigError) -> FilterConfigBox {
        guard let factory = factories.withLock({ $0[pluginName] }) else {
            let known = pluginNames
            throw ConfigError(
                "unknown plugin \"\(pluginName)\" (this library has: "
                    + (known.isEmpty ? "no filters" : known.joined(separator: ", ")) + ")")
        }
        return try factory.base.makeConfig(pluginName: pluginName, filterName: filterName, json: json, host: host)
    }

    /// A registered filter type, erased.
    struct Factory: Sendable {
        let base: any PluginFactory
        init(_ base: some PluginFactory) { self.base = base }
    }

    private static let factories = Mutex<[String: Factory]>([:])
}

/// Creates configurations of one filter type (a value with no state, so no metatype is captured).
protocol PluginFactory: Sendable {
    func makeConfig(pluginName: String, filterName: String, json: [UInt8], host: any FilterHost) throws(ConfigError)
        -> FilterConfigBox
}

struct TypedFactory<F: HTTPFilter>: PluginFactory {
    func makeConfig(pluginName: String, filterName: String, json: [UInt8], host: any FilterHost) throws(ConfigError)
        -> FilterConfigBox
    {
        try FilterConfigBox.make(F.self, pluginName: pluginName, filterName: filterName, json: json, host: host)
    }
}

struct TypedAsyncFactory<F: AsyncHTTPFilter>: PluginFactory {
    func makeConfig(pluginName: String, filterName: String, json: [UInt8], host: any FilterHost) throws(ConfigError)
        -> FilterConfigBox
    {
        try FilterConfigBox.make(F.self, pluginName: pluginName, filterName: filterName, json: json, host: host)
    }
}

import EnvoySwift

/// `noop` (a benchmark filter): a synchronous ``HTTPFilter`` that implements nothing, so every
/// callback is the SDK's default `.continue`. It measures what crossing into Swift costs.
///
/// ```yaml
/// plugin_config: {}
/// ```
public struct Noop: HTTPFilter {
    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {}
}

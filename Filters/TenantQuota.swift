import EnvoySwift

extension StateKey where Value == String {
    /// The request's tenant: written by `tenant_quota`, read by later filters (`state_reader`), and
    /// in the access log as `%FILTER_STATE(tenant)%`.
    public static let tenant = StateKey("tenant", logged: true)
}

/// `tenant_quota`: the worked example of request state and filter metrics. Reads the request's
/// tenant from a header, stores it in the request state for the filters after it (and the access
/// log), counts requests per tenant, turns denied tenants away with a 403, and records each
/// request's duration per tenant.
///
/// ```yaml
/// plugin_config: { tenant_header: x-tenant, deny_tenants: [evil], require_tenant: false }
/// ```
/// - `tenant_header` (default `x-tenant`): where the tenant is.
/// - `deny_tenants` (default none): tenants answered 403.
/// - `require_tenant` (default false): a request without the header is answered 403 too.
///
/// A route may override the configuration (`filter_config: { <name>: {...} }` on the route): the proxy creates one more
/// configuration of this filter for that route, and its metrics are the same ones.
///
/// Metrics (`envoy_swift_filter_<name>_...`): `requests{tenant}` and `denied{reason}` counters
/// (reasons `denied_tenant`, `missing_tenant`), `duration_seconds{tenant}` histogram.
public struct TenantQuota: HTTPFilter {
    /// The configuration.
    public struct Config: Decodable, Sendable {
        /// The request header that names the tenant.
        public var tenantHeader: String
        /// Tenants answered 403.
        public var denyTenants: Set<String>
        /// Whether a request without a tenant is answered 403.
        public var requireTenant: Bool

        enum CodingKeys: String, CodingKey {
            case tenantHeader = "tenant_header"
            case denyTenants = "deny_tenants"
            case requireTenant = "require_tenant"
        }

        /// Decodes the keys above, each optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            tenantHeader = try c.decodeIfPresent(String.self, forKey: .tenantHeader) ?? "x-tenant"
            denyTenants = try c.decodeIfPresent(Set<String>.self, forKey: .denyTenants) ?? []
            requireTenant = try c.decodeIfPresent(Bool.self, forKey: .requireTenant) ?? false
        }
    }

    /// The filter's metrics, defined once per configuration.
    public struct Metrics: FilterMetrics {
        /// Requests seen, per tenant ("-" without one).
        public let requests: Counter
        /// Requests answered 403, per reason.
        public let denied: Counter
        /// How long each request took, per tenant.
        public let duration: Histogram

        /// Defines the metrics.
        public init(_ registry: MetricsRegistry) throws {
            requests = try registry.counter("requests", labels: ["tenant"])
            denied = try registry.counter("denied", labels: ["reason"])
            duration = try registry.histogram("duration_seconds", labels: ["tenant"])
        }
    }

    /// Refuses an empty header name.
    public static func validate(_ config: Config) throws {
        guard !config.tenantHeader.isEmpty else { throw ConfigError("tenant_header must not be empty") }
    }

    private let config: Config
    private let context: FilterContext
    private let metrics: Metrics
    private var tenant = "-"

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
        metrics = context.metrics(Metrics.self)
    }

    /// Stores and counts the tenant; answers 403 for a denied or missing one.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        guard let tenant = headers[config.tenantHeader], !tenant.isEmpty else {
            metrics.requests.increment(labels: "-")
            guard !config.requireTenant else { return deny("missing_tenant") }
            return .continue
        }
        self.tenant = tenant
        context.state[.tenant] = tenant
        metrics.requests.increment(labels: tenant)
        return config.denyTenants.contains(tenant) ? deny("denied_tenant") : .continue
    }

    /// Records the request's duration.
    public mutating func onStreamComplete() {
        metrics.duration.record(context.streamInfo.duration, labels: tenant)
    }

    private func deny(_ reason: String) -> FilterStatus {
        metrics.denied.increment(labels: reason)
        return .localReply(status: 403, headers: ["content-type": "text/plain"], body: "tenant not allowed\n")
    }
}

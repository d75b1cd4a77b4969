import CEnvoySwiftABI
import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

/// A filter whose metrics cover every kind, recorded from its request headers.
struct MetricsProbe: HTTPFilter {
    struct Metrics: FilterMetrics {
        let hits: EnvoySwift.Counter  // this test module has a Counter of its own
        let plain: EnvoySwift.Counter
        let inFlight: Gauge
        let sizes: Histogram
        let latency: Histogram
        init(_ registry: MetricsRegistry) throws {
            hits = try registry.counter("hits", labels: ["method", "path"])
            plain = try registry.counter("plain")
            inFlight = try registry.gauge("in_flight", labels: ["method"])
            sizes = try registry.histogram("sizes", buckets: [10, 100, 1000])
            latency = try registry.histogram("latency_seconds", labels: ["method"])
        }
    }
    let context: FilterContext
    let metrics: Metrics
    init(config: NoConfig, context: FilterContext) {
        self.context = context
        metrics = context.metrics(Metrics.self)
    }
    func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        let method = context.request.method
        metrics.hits.increment(labels: method, context.request.path)
        metrics.hits.increment(by: 2, labels: [method, "/array"])
        metrics.plain.increment()
        metrics.inFlight.increment(labels: method)
        metrics.inFlight.increment(by: 2, labels: method)
        metrics.inFlight.decrement(labels: [method])
        metrics.sizes.record(42)
        metrics.sizes.record(7, labels: [])
        metrics.latency.record(.milliseconds(250), labels: method)
        if headers["x-wrong"] != nil {
            metrics.hits.increment(labels: "only-one")
        }
        return .continue
    }
}

/// Two metrics of one name and different kinds: the configuration fails.
struct ClashingMetrics: HTTPFilter {
    struct Metrics: FilterMetrics {
        init(_ registry: MetricsRegistry) throws {
            _ = try registry.counter("x")
            _ = try registry.gauge("x")
        }
    }
    init(config: NoConfig, context: FilterContext) {}
}

struct TooManyLabels: HTTPFilter {
    struct Metrics: FilterMetrics {
        init(_ registry: MetricsRegistry) throws {
            _ = try registry.counter("wide", labels: ["a", "b", "c", "d", "e"])
        }
    }
    init(config: NoConfig, context: FilterContext) {}
}

@Suite struct MetricsTests {
    @Test func metricsAreDefinedWhenTheConfigIsCreated() throws {
        let f = try FilterTester(MetricsProbe.self, name: "probe")
        #expect(f.metrics.definitions.map(\.name) == ["hits", "plain", "in_flight", "sizes", "latency_seconds"])
        #expect(f.metrics.definition("hits")?.labels == ["method", "path"])
        #expect(f.metrics.definition("sizes")?.buckets == [10, 100, 1000])
        #expect(f.metrics.definition("in_flight")?.kind == .gauge)
    }

    @Test func recordsReachTheTestKit() async throws {
        let f = try FilterTester(MetricsProbe.self, name: "probe")
        for _ in 0..<2 {
            let s = try f.stream(TestRequest(method: "POST", path: "/a", headers: [:]))
            _ = try await s.sendRequestHeaders(endOfStream: true)
        }
        #expect(f.metrics.counter("hits", labels: ["POST", "/a"]) == 2)
        #expect(f.metrics.counter("hits", labels: ["POST", "/array"]) == 4)
        #expect(f.metrics.counter("plain") == 2)
        #expect(f.metrics.gauge("in_flight", labels: ["POST"]) == 4)
        #expect(f.metrics.histogram("sizes") == HistogramSample(values: [42, 7, 42, 7]))
        #expect(f.metrics.histogram("sizes")?.sum == 98)
        #expect(f.metrics.histogram("latency_seconds", labels: ["POST"])?.count == 2)
        #expect(f.metrics.histogram("latency_seconds", labels: ["POST"])?.values.first == 0.25)
        #expect(f.metrics.counter("hits", labels: ["GET", "/a"]) == 0)
        #expect(!f.logs.contains { $0.level == .warn })
    }

    @Test func aWrongLabelCountIsRefusedAndLogged() async throws {
        let f = try FilterTester(MetricsProbe.self, name: "probe")
        let s = try f.stream(TestRequest(headers: ["x-wrong": "1"]))
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(f.metrics.counter("hits", labels: ["only-one"]) == 0)
        #expect(
            f.logs.contains {
                $0.level == .warn && $0.message.hasPrefix("metric \"hits\": recording 1.0 with 1 label values failed")
                    && $0.message.hasSuffix("(the counter has 2 labels)")
            })
    }

    @Test func theTestHostValidatesLikeTheProxy() throws {
        let host = TestHost()
        let c = try host.defineMetric(filter: "f", kind: .counter, name: "c", labels: ["l"], buckets: [])
        let g = try host.defineMetric(filter: "f", kind: .gauge, name: "g", labels: [], buckets: [])
        // The same definition again (a route's config of the same filter): the same id.
        #expect(try host.defineMetric(filter: "f", kind: .counter, name: "c", labels: ["l"], buckets: []) == c)
        // Another filter name: another metric.
        #expect(try host.defineMetric(filter: "f2", kind: .counter, name: "c", labels: ["l"], buckets: []) != c)
        #expect(throws: HostError.invalid) { try host.defineMetric(filter: "f", kind: .gauge, name: "c", labels: ["l"], buckets: []) }
        #expect(throws: HostError.invalid) { try host.defineMetric(filter: "f", kind: .counter, name: "c", labels: ["m"], buckets: []) }
        #expect(throws: HostError.invalid) { try host.defineMetric(filter: "f", kind: .counter, name: "", labels: [], buckets: []) }
        #expect(throws: HostError.invalid) {
            try host.defineMetric(filter: "f", kind: .counter, name: "w", labels: ["a", "b", "c", "d", "e"], buckets: [])
        }
        #expect(throws: HostError.invalid) { try host.defineMetric(filter: "f", kind: .histogram, name: "h", labels: [], buckets: [2, 1]) }
        #expect(throws: HostError.invalid) {
            try host.defineMetric(filter: "f", kind: .histogram, name: "h", labels: [], buckets: (1...17).map(Double.init))
        }
        let label = "v"
        label.utf8.withContiguousStorageIfAvailable { p in
            let one = [envoy_swift_bytes_t(ptr: UnsafeRawPointer(p.baseAddress!).assumingMemoryBound(to: CChar.self), length: p.count)]
            one.withUnsafeBufferPointer { values in
                #expect(throws: Never.self) { try host.recordMetric(c, labelValues: values, value: 1) }
                #expect(throws: HostError.invalid) { try host.recordMetric(c, labelValues: values, value: -1) }
                #expect(throws: HostError.invalid) { try host.recordMetric(c, labelValues: UnsafeBufferPointer(rebasing: values[0..<0]), value: 1) }
                #expect(throws: HostError.invalid) { try host.recordMetric(99, labelValues: values, value: 1) }
                #expect(throws: HostError.invalid) { try host.setMetric(c, labelValues: values, value: 1) }
            }
        }
        #expect(host.metrics(of: "f").counter("c", labels: ["v"]) == 1)
        // A gauge goes down too; only a counter refuses a negative value.
        #expect(throws: Never.self) { try host.recordMetric(g, labelValues: UnsafeBufferPointer(start: nil, count: 0), value: -3) }
        #expect(host.metrics(of: "f").gauge("g") == -3)
    }

    @Test func aRefusedDefinitionFailsTheConfigNamingTheMetric() {
        #expect(throws: ConfigError("metric \"x\": the host refused the gauge (a bad name, or the name defined with another kind or labels)")) {
            try FilterTester(ClashingMetrics.self)
        }
        #expect(throws: ConfigError("metric \"wide\": the host refused the counter (5 labels, at most 4)")) {
            try FilterTester(TooManyLabels.self)
        }
    }

    @Test func aSecondConfigOfTheSameFilterSharesItsMetrics() async throws {
        registerFilters()
        let host = TestHost()
        let main = try FilterTester(plugin: "tenant_quota", configJSON: "{}", name: "quota", host: host)
        let route = try FilterTester(plugin: "tenant_quota", configJSON: #"{"deny_tenants": ["acme"]}"#, name: "quota", host: host)
        let a = try main.stream(TestRequest(headers: ["x-tenant": "acme"]))
        #expect(try await a.sendRequestHeaders(endOfStream: true) == .continue)
        let b = try route.stream(TestRequest(headers: ["x-tenant": "acme"]))
        #expect(try await b.sendRequestHeaders(endOfStream: true).isLocalReply(status: 403))
        #expect(host.metricDefinitions.count == 3)
        #expect(main.metrics.counter("requests", labels: ["acme"]) == 2)
        #expect(main.metrics.counter("denied", labels: ["denied_tenant"]) == 1)
    }

    @Test func tenantQuotaCountsDeniesAndTimes() async throws {
        let f = try FilterTester(
            TenantQuota.self, configJSON: #"{"tenant_header": "x-org", "deny_tenants": ["evil"], "require_tenant": true}"#,
            name: "quota")
        let ok = try f.stream(TestRequest(headers: ["x-org": "acme"]))
        #expect(try await ok.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(ok.loggedState == ["tenant": "acme"])
        ok.streamInfo.duration = .milliseconds(20)
        ok.complete()
        let evil = try f.stream(TestRequest(headers: ["x-org": "evil"]))
        #expect(try await evil.sendRequestHeaders(endOfStream: true).isLocalReply(status: 403))
        let none = try f.stream()
        #expect(try await none.sendRequestHeaders(endOfStream: true).isLocalReply(status: 403))
        #expect(f.metrics.counter("requests", labels: ["acme"]) == 1)
        #expect(f.metrics.counter("requests", labels: ["evil"]) == 1)
        #expect(f.metrics.counter("requests", labels: ["-"]) == 1)
        #expect(f.metrics.counter("denied", labels: ["denied_tenant"]) == 1)
        #expect(f.metrics.counter("denied", labels: ["missing_tenant"]) == 1)
        #expect(f.metrics.histogram("duration_seconds", labels: ["acme"]) == HistogramSample(values: [0.02]))
        #expect(throws: ConfigError("tenant_header must not be empty")) {
            try FilterTester(TenantQuota.self, configJSON: #"{"tenant_header": ""}"#)
        }
    }

    @Test func filtersWithoutMetricsDefineNone() throws {
        let f = try FilterTester(BearerAuth.self, configJSON: #"{"token": "t"}"#)
        #expect(f.metrics.definitions.isEmpty)
        #expect(f.host.metricDefinitions.isEmpty)
    }
}

extension FilterStatus {
    func isLocalReply(status: Int) -> Bool {
        if case .localReply(let r) = self { return r.status == status }
        return false
    }
}

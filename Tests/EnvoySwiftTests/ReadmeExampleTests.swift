import EnvoySwift
import EnvoySwiftTesting
import Filters
import Testing

/// The unit test the README's "A worked filter" shows, word for word, so that the README stays true.
@Suite struct ReadmeExampleTests {
    @Test func deniesATenantAndCountsIt() async throws {
        let quota = try FilterTester(TenantQuota.self, configJSON: #"{"deny_tenants": ["acme"]}"#, name: "quota")
        let ok = try quota.stream(TestRequest(headers: ["x-tenant": "globex"]))
        #expect(try await ok.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(ok.loggedState == ["tenant": "globex"])        // what %FILTER_STATE(tenant)% shows
        ok.streamInfo.duration = .milliseconds(20)             // as the proxy would report it
        ok.complete()                                          // onStreamComplete records it
        let denied = try quota.stream(TestRequest(headers: ["x-tenant": "acme"]))
        _ = try await denied.sendRequestHeaders(endOfStream: true)
        #expect(denied.localReply?.status == 403)
        #expect(quota.metrics.counter("requests", labels: ["globex"]) == 1)
        #expect(quota.metrics.counter("denied", labels: ["denied_tenant"]) == 1)
        #expect(quota.metrics.histogram("duration_seconds", labels: ["globex"]) == HistogramSample(values: [0.02]))
    }
}

import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct RegistryTests {
    @Test func theReferenceFiltersAreRegisteredUnderTheirNames() {
        registerFilters()
        let names = Set(FilterRegistry.pluginNames)
        #expect(
            names.isSuperset(of: ["header_rewrite", "bearer_auth", "body_replace", "route_by_query", "chain_probe", "bad_header", "throws"]))
        #expect(FilterRegistry.isRegistered("bearer_auth"))
        #expect(!FilterRegistry.isRegistered("nope"))
        #expect(FilterRegistry.entryPointSymbol == "envoy_swift_register_filters")
    }

    @Test func aRegisteredFilterRunsByName() async throws {
        registerFilters()
        let s = try FilterTester(plugin: "chain_probe", configJSON: #"{"tag": "z"}"#).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeader("x-chain") == "z")
    }
}

import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

/// The filters that exist for the C integration tests: chain_probe, bad_header, throws.
@Suite struct TestFilterTests {
    @Test func chainProbesAppendInTheOrderTheyRun() async throws {
        let host = TestHost()
        let a = try FilterTester(ChainProbe.self, configJSON: #"{"tag": "a"}"#, host: host)
        let s = try a.stream(TestRequest(headers: ["x-chain": "client"]))
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeaders.map(\.value) == ["client", "a"])
        _ = try await s.sendResponseHeaders(headers: ["x-chain": "upstream"], endOfStream: true)
        #expect(s.responseHeaders.map(\.description) == ["x-chain: upstream", "x-chain: a", "x-chain-scheme: http",
                                                           "x-chain-version: HTTP/1.1", "x-chain-authority: "])
    }

    @Test func badHeaderIsRefusedAndRecorded() async throws {
        let s = try FilterTester(BadHeader.self).stream()
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(s.requestHeader("x-injection-refused") == "1")
        #expect(s.requestHeader("x-injected") == nil)
        #expect(s.requestHeader("x-evil") == nil)
    }

    @Test func throwsFails() async throws {
        let f = try FilterTester(Throws.self, name: "boom")
        let s = try f.stream()
        await #expect(throws: Throws.Failure()) { try await s.sendRequestHeaders(endOfStream: true) }
        #expect(f.logs == [LogRecord(level: .error, filter: "boom", message: "request headers failed: deliberate failure")])
    }
}

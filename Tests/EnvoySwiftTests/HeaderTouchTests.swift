import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct HeaderTouchTests {
    @Test func copiesTheReadHeaderAndMarksTheResponse() async throws {
        let f = try FilterTester(HeaderTouch.self, configJSON: #"{"read": "x-in", "name": "x-out"}"#)
        let s = try f.stream(TestRequest(headers: ["host": "t", "x-in": "abc"]))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(s.requestHeaders.map(\.description) == ["host: t", "x-in: abc", "x-out: abc"])
        #expect(try await s.sendResponseHeaders(headers: [], endOfStream: true) == .continue)
        #expect(s.responseHeaders.map(\.description) == ["x-out: 1"])
    }

    @Test func defaults() async throws {
        let s = try FilterTester(HeaderTouch.self, configJSON: "{}").stream(TestRequest(headers: ["host": "t"]))
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeaders.map(\.description) == ["host: t", "x-touched: -"])
    }
}

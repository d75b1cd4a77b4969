import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct RequestBufferTests {
    @Test func holdsTheWholeRequestBodyThenLetsItGo() async throws {
        let s = try FilterTester(RequestBuffer.self, configJSON: "{}").stream()
        #expect(try await s.sendRequestHeaders(endOfStream: false) == .stopAndBuffer)
        #expect(try await s.sendRequestBody("part one, ", endOfStream: false) == .stopAndBuffer)
        #expect(s.forwardedRequestBody.isEmpty)
        #expect(try await s.sendRequestBody("part two", endOfStream: true) == .continue)
        #expect(s.forwardedRequestBodyString == "part one, part two")
    }

    @Test func aRequestWithoutABodyGoesOnAtOnce() async throws {
        let s = try FilterTester(RequestBuffer.self, configJSON: "{}").stream()
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
    }
}

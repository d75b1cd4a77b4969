import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct HeaderRewriteTests {
    static let config = #"""
        { "request": { "set": { "x-set": "one" }, "add": { "x-add": "two" }, "remove": ["x-drop"] },
          "response": { "set": { "x-resp": "yes" }, "remove": ["x-upstream-req"] } }
        """#

    @Test func rewritesBothWays() async throws {
        let f = try FilterTester(HeaderRewrite.self, configJSON: Self.config)
        let s = try f.stream(TestRequest(path: "/", headers: ["host": "t", "x-drop": "1", "X-Set": "old", "x-add": "one"]))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        // set removes the old value and appends; add appends after the existing values.
        #expect(s.requestHeaders.map(\.description) == ["host: t", "x-add: one", "x-set: one", "x-add: two"])
        #expect(
            try await s.sendResponseHeaders(headers: ["x-upstream-req": "1", "x-upstream-conn": "1"], endOfStream: true)
                == .continue)
        #expect(s.responseHeaders.map(\.description) == ["x-upstream-conn: 1", "x-resp: yes"])
    }

    @Test func everyPartIsOptional() async throws {
        let f = try FilterTester(HeaderRewrite.self, configJSON: #"{"response": {"add": {"b": "2", "a": "1"}}}"#)
        let s = try f.stream(TestRequest(headers: ["host": "t"]))
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeaders == [HeaderField("host", "t")])
        _ = try await s.sendResponseHeaders(headers: [], endOfStream: true)
        #expect(s.responseHeaders.map(\.description) == ["a: 1", "b: 2"])
    }

    @Test func aTypedConfigWorksToo() async throws {
        let config = HeaderRewrite.Config(request: .init(set: ["x-a": "1"], remove: ["x-b"]))
        let s = try FilterTester(HeaderRewrite.self, config: config).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeader("X-A") == "1")
    }
}

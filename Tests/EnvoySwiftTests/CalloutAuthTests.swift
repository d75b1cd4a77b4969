import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct CalloutAuthTests {
    static let denied = "denied by auth service\n"

    func tester(_ answer: @escaping TestHost.CalloutHandler) throws -> FilterTester {
        let host = TestHost()
        host.calloutHandler = answer
        return try FilterTester(CalloutAuth.self, configJSON: #"{"cluster": "auth", "timeout_ms": 250}"#, host: host)
    }

    @Test func aYesLetsTheRequestThroughWithTheUser() async throws {
        let auth = try tester { _ in HTTPCalloutResponse(status: 200, headers: ["X-Auth-User": "ann"]) }
        let s = try auth.stream(TestRequest(path: "/private?a=1", headers: ["authorization": "Bearer t", "host": "h"]))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(s.requestHeader("x-auth-user") == "ann")
        let call = try #require(auth.host.callouts.first)
        #expect(call.cluster == "auth")
        #expect(call.method == "GET")
        #expect(call.path == "/auth")
        #expect(call.timeout == .milliseconds(250))
        #expect(call.headers == [HeaderField("authorization", "Bearer t"), HeaderField("x-original-path", "/private")])
    }

    @Test func withoutAuthorizationOnlyThePathGoes() async throws {
        let auth = try tester { _ in HTTPCalloutResponse(status: 200) }
        let s = try auth.stream(TestRequest(path: "/p", headers: ["x-auth-user": "spoofed"]))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(auth.host.callouts.first?.headers == [HeaderField("x-original-path", "/p")])
        #expect(s.requestHeader("x-auth-user") == "spoofed")  // no user in the answer: left as is
    }

    @Test(arguments: [(401, 401), (403, 403), (500, 403), (302, 403), (404, 403)])
    func aNoIsPassedOnOrBecomes403(_ answered: Int, _ expected: Int) async throws {
        let auth = try tester { _ in HTTPCalloutResponse(status: answered) }
        let s = try auth.stream()
        let status = try await s.sendRequestHeaders(endOfStream: true)
        #expect(status == .localReply(status: expected, headers: ["content-type": "text/plain"], body: Self.denied))
    }

    @Test func aFailedCalloutIs503WithTheReason() async throws {
        let auth = try tester { _ in throw HTTPCalloutError.upstream("connection refused") }
        let s = try auth.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.localReply?.status == 503)
        #expect(s.localReply?.bodyString == "auth service unavailable: connection refused\n")
    }

    @Test func aSlowAuthServiceTimesOut() async throws {
        let auth = try tester { _ in
            try await Task.sleep(for: .seconds(30))
            return HTTPCalloutResponse(status: 200)
        }
        let s = try auth.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.localReply?.status == 503)
        #expect(s.localReply?.bodyString == "auth service unavailable: call-out timed out after 250 ms\n")
    }

    @Test func anUnknownClusterIs503() async throws {
        let s = try FilterTester(CalloutAuth.self, configJSON: #"{"cluster": "nowhere"}"#).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.localReply?.status == 503)
        #expect(s.localReply?.bodyString == "auth service unavailable: unknown cluster \"nowhere\"\n")
    }

    @Test func configuration() throws {
        let c = try PluginConfigDecoder.decode(CalloutAuth.Config.self, from: Array(#"{"cluster": "a"}"#.utf8))
        #expect(c.path == "/auth" && c.timeoutMilliseconds == 1000)
        #expect(throws: ConfigError("plugin_config.cluster: required but missing")) {
            try FilterTester(CalloutAuth.self, configJSON: "{}")
        }
        #expect(throws: ConfigError("path must start with \"/\"")) {
            try FilterTester(CalloutAuth.self, configJSON: #"{"cluster": "a", "path": "auth"}"#)
        }
        #expect(throws: ConfigError("timeout_ms must be positive")) {
            try FilterTester(CalloutAuth.self, configJSON: #"{"cluster": "a", "timeout_ms": 0}"#)
        }
    }
}

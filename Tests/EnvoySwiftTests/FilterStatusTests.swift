import EnvoySwift
import EnvoySwiftTesting
import Testing

@Suite struct FilterStatusTests {
    struct Boom: Error, Equatable {}

    @Test(arguments: [FilterStatus.continue, .stopAndBuffer, .stopAndBufferWatermark, .stopNoBuffer])
    func statusesPassThrough(_ status: FilterStatus) async throws {
        let s = try Probe.stream { c in c.requestHeaders = { _, _, _ in status } }
        #expect(try await s.sendRequestHeaders() == status)
    }

    @Test func localReplyEndsTheStreamWithTheReply() async throws {
        let s = try Probe.stream { c in
            c.requestHeaders = { _, _, _ in
                .localReply(status: 403, headers: ["content-type": "text/plain", "x-a": "1", "x-a": "2"], body: "no\n")
            }
        }
        let status = try await s.sendRequestHeaders(endOfStream: true)
        let reply = LocalReply(
            status: 403, headers: [HeaderField("content-type", "text/plain"), HeaderField("x-a", "1"), HeaderField("x-a", "2")],
            body: Array("no\n".utf8))
        #expect(status == .localReply(reply))
        #expect(s.localReply == reply)
        #expect(s.localReply?.bodyString == "no\n")
        #expect(s.localReply?.header("X-A") == "1")
        await #expect(throws: TestStreamError.streamEnded) { try await s.sendRequestBody("x", endOfStream: true) }
    }

    @Test func aThrownErrorFailsTheCallbackAndIsLogged() async throws {
        let host = TestHost()
        let s = try Probe.stream(host: host) { c in c.requestHeaders = { _, _, _ in throw Boom() } }
        await #expect(throws: Boom()) { try await s.sendRequestHeaders() }
        #expect(host.logs.contains { $0.level == .error && $0.filter == "probe" && $0.message.hasPrefix("request headers failed:") })
        await #expect(throws: TestStreamError.streamEnded) { try await s.sendRequestBody("x", endOfStream: true) }
    }

    @Test func everyCallbackMapsAThrow() async throws {
        let s = try Probe.stream { c in c.responseBody = { _, _, _ in throw Boom() } }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(headers: [])
        await #expect(throws: Boom()) { try await s.sendResponseBody("x", endOfStream: true) }
    }

    @Test func aLocalReplyWithAnInjectedHeaderFails() async throws {
        let s = try Probe.stream { c in
            c.requestHeaders = { _, _, _ in .localReply(status: 400, headers: ["x-bad": "a\r\nx-evil: 1"], body: "") }
        }
        await #expect(throws: HeaderError.invalidValue(name: "x-bad")) { try await s.sendRequestHeaders() }
        #expect(s.localReply == nil)
    }

    @Test func aLocalReplyWithABadStatusFails() async throws {
        let s = try Probe.stream { c in c.requestHeaders = { _, _, _ in .localReply(status: 99) } }
        await #expect(throws: HostError.invalid) { try await s.sendRequestHeaders() }
    }

    @Test func aFilterWhoseInitThrowsGetsNoStream() throws {
        var config = Probe.Config()
        config.initFails = true
        let tester = try FilterTester(Probe.self, config: config)
        #expect(throws: Probe.InitFailure.self) { try tester.stream() }
    }

    @Test func descriptions() {
        #expect(FilterStatus.continue.description == "continue")
        #expect(FilterStatus.localReply(status: 401).description == "localReply(401 (0 headers, 0 bytes))")
        #expect(HostError.gone.description.contains("ended"))
    }
}

import EnvoySwift
import EnvoySwiftTesting
import Testing

/// The test kit plays the host's part around a filter; these check that part.
@Suite struct TestKitTests {
    @Test func stopAndBufferHoldsChunksUntilTheEnd() async throws {
        let calls = Box<[String]>([])
        let s = try Probe.stream { c in
            c.requestHeaders = { _, _, _ in .stopAndBuffer }
            c.requestBody = { b, eos, _ in
                calls.value.append("\(b.string)\(eos ? "|end" : "")")
                return .continue
            }
        }
        #expect(try await s.sendRequestHeaders() == .stopAndBuffer)
        #expect(try await s.sendRequestBody("a", endOfStream: false) == .stopAndBuffer)
        #expect(try await s.sendRequestBody("b", endOfStream: false) == .stopAndBuffer)
        #expect(calls.value.isEmpty)
        #expect(try await s.sendRequestBody("c", endOfStream: true) == .continue)
        #expect(calls.value == ["abc|end"])
        #expect(s.forwardedRequestBodyString == "abc")
    }

    @Test func headersHeldByAStopStayWritableUntilTheyContinue() async throws {
        let s = try Probe.stream { c in
            c.requestHeaders = { _, _, _ in .stopAndBuffer }
            c.requestBody = { b, _, ctx in
                try ctx.requestHeaders.set("x-body-length", String(b.count))
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders()
        _ = try await s.sendRequestBody("12345", endOfStream: true)
        #expect(s.requestHeader("x-body-length") == "5")
    }

    @Test func watermarkCallsWithEverythingBufferedSoFar() async throws {
        let calls = Box<[String]>([])
        let s = try Probe.stream { c in
            c.requestHeaders = { _, _, _ in .stopAndBufferWatermark }
            c.requestBody = { b, eos, _ in
                calls.value.append(b.string)
                return eos ? .continue : .stopAndBufferWatermark
            }
        }
        _ = try await s.sendRequestHeaders()
        #expect(try await s.sendRequestBody("a", endOfStream: false) == .stopAndBufferWatermark)
        #expect(try await s.sendRequestBody("b", endOfStream: true) == .continue)
        #expect(calls.value == ["a", "ab"])
        #expect(s.forwardedRequestBodyString == "ab")
    }

    @Test func stopNoBufferDropsWhatIsNotPassedOn() async throws {
        let s = try Probe.stream { c in
            c.responseHeaders = { _, _, _ in .stopNoBuffer }
            c.responseBody = { b, eos, _ in
                if eos {
                    try b.replace("summary")
                    return .continue
                }
                return .stopNoBuffer
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(headers: [])
        #expect(try await s.sendResponseBody("dropped", endOfStream: false) == .stopNoBuffer)
        #expect(try await s.sendResponseBody("last", endOfStream: true) == .continue)
        #expect(s.forwardedResponseBodyString == "summary")
    }

    @Test func aBodyCallbackCanStartBuffering() async throws {
        let s = try Probe.stream { c in
            c.requestBody = { b, eos, _ in eos ? .continue : .stopAndBuffer }
        }
        _ = try await s.sendRequestHeaders()
        #expect(try await s.sendRequestBody("a", endOfStream: false) == .stopAndBuffer)
        #expect(try await s.sendRequestBody("b", endOfStream: true) == .continue)
        #expect(s.forwardedRequestBodyString == "ab")
    }

    @Test func callsOutOfOrderAreRefused() async throws {
        let s = try Probe.stream { _ in }
        await #expect(throws: TestStreamError.self) { try await s.sendRequestBody("x", endOfStream: true) }
        await #expect(throws: TestStreamError.self) { try await s.sendResponseHeaders(headers: []) }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        await #expect(throws: TestStreamError.self) { try await s.sendRequestHeaders() }
        await #expect(throws: TestStreamError.self) { try await s.sendRequestBody("x", endOfStream: true) }
    }

    @Test func completeRunsOnceAndEndsTheStream() async throws {
        let completed = Box(0)
        let s = try Probe.stream { c in c.complete = { _ in completed.value += 1 } }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        s.complete()
        s.complete()
        #expect(completed.value == 1)
        await #expect(throws: TestStreamError.streamEnded) { try await s.sendResponseHeaders(headers: []) }
    }

    @Test func releasingAStreamCompletesIt() throws {
        let completed = Box(0)
        do {
            let s = try Probe.stream { c in c.complete = { _ in completed.value += 1 } }
            _ = s.id
        }
        #expect(completed.value == 1)
    }

    @Test func streamsOfOneFilterAreIndependent() async throws {
        let f = try FilterTester(Probe.self, config: {
            var c = Probe.Config()
            c.requestHeaders = { h, _, ctx in
                try h.set("x-path", ctx.request.path)
                return .continue
            }
            return c
        }())
        let a = try f.stream(TestRequest(path: "/a"))
        let b = try f.stream(TestRequest(path: "/b"))
        #expect(a.id != b.id)
        _ = try await b.sendRequestHeaders(endOfStream: true)
        _ = try await a.sendRequestHeaders(endOfStream: true)
        #expect(a.requestHeader("x-path") == "/a")
        #expect(b.requestHeader("x-path") == "/b")
    }

    @Test func theHostIsOnlyReachableInsideACallback() throws {
        let host = TestHost()
        let s = try Probe.stream(host: host) { _ in }
        #expect(throws: HostError.gone) { try host.headerCount(s.id, .requestHeaders) }
        #expect(throws: HostError.gone) { try host.setHeader(StreamID(999), .requestHeaders, name: "a", value: "b") }
    }
}

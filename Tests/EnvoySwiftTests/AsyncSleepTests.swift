import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

/// `async_sleep`. Its counters are process-wide, so the suite runs serially and compares deltas.
@Suite(.serialized) struct AsyncSleepTests {
    struct Counters: Equatable {
        var started: Int, cancelled: Int, completed: Int
        static var now: Counters {
            Counters(
                started: AsyncSleep.started.load(ordering: .relaxed), cancelled: AsyncSleep.cancelled.load(ordering: .relaxed),
                completed: AsyncSleep.completed.load(ordering: .relaxed))
        }
        static func - (a: Counters, b: Counters) -> Counters {
            Counters(started: a.started - b.started, cancelled: a.cancelled - b.cancelled, completed: a.completed - b.completed)
        }
    }

    @Test func sleepsInTheRequestHeadersAndMarksThem() async throws {
        let before = Counters.now
        let s = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 20}"#).stream()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try await s.sendRequestHeaders() == .continue)
        #expect(clock.now - start >= .milliseconds(20))
        #expect(s.requestHeader("x-async-slept") == "20")
        #expect(try await s.sendResponseHeaders() == .continue)
        #expect(s.responseHeader("x-async-slept") == nil)
        s.complete()
        #expect(Counters.now - before == Counters(started: 1, cancelled: 0, completed: 1))
    }

    @Test func sleepsInTheResponseHeaders() async throws {
        let s = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 1, "on": "response_headers"}"#).stream()
        #expect(try await s.sendRequestHeaders() == .continue)
        #expect(s.requestHeader("x-async-slept") == nil)
        #expect(try await s.sendResponseHeaders(headers: ["content-type": "text/plain"]) == .continue)
        #expect(s.responseHeader("x-async-slept") == "1")
    }

    @Test(arguments: ["request_body", "response_body"])
    func sleepsInEveryBodyCall(_ on: String) async throws {
        let before = Counters.now
        let s = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 1, "on": "\#(on)"}"#).stream()
        _ = try await s.sendRequestHeaders()
        if on == "request_body" {
            #expect(try await s.sendRequestBody("a", endOfStream: false) == .continue)
            #expect(try await s.sendRequestBody("b", endOfStream: true) == .continue)
            #expect(s.forwardedRequestBodyString == "ab")
        } else {
            _ = try await s.sendRequestBody("", endOfStream: true)
            _ = try await s.sendResponseHeaders()
            #expect(try await s.sendResponseBody("a", endOfStream: false) == .continue)
            #expect(try await s.sendResponseBody("b", endOfStream: true) == .continue)
            #expect(s.forwardedResponseBodyString == "ab")
        }
        #expect(Counters.now.started - before.started == 2)
    }

    @Test func failThrowsAfterTheSleep() async throws {
        let s = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 1, "fail": true}"#).stream()
        await #expect(throws: AsyncSleep.Failure()) { try await s.sendRequestHeaders() }
    }

    @Test func aTimeoutCancelsTheSleepAndCountsIt() async throws {
        let before = Counters.now
        let s = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 10000}"#).stream(timeout: .milliseconds(30))
        await #expect(throws: TestStreamError.timedOut) { try await s.sendRequestHeaders() }
        #expect(await eventually { Counters.now.cancelled - before.cancelled == 1 })
        s.complete()
        #expect(await eventually { Counters.now - before == Counters(started: 1, cancelled: 1, completed: 1) })
    }

    @Test func aClientGoneMidSleepIsCountedOnce() async throws {
        let before = Counters.now
        let s = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 10000}"#).stream()
        let send = Task { try await s.sendRequestHeaders() }
        #expect(await eventually { Counters.now.started - before.started == 1 })
        s.complete()
        await #expect(throws: TestStreamError.streamEnded) { try await send.value }
        #expect(await eventually { Counters.now - before == Counters(started: 1, cancelled: 1, completed: 1) })
    }

    @Test func theCountersPathAnswersAtOnce() async throws {
        let tester = try FilterTester(AsyncSleep.self, configJSON: #"{"ms": 10000, "counters_path": "/_c"}"#)
        let before = Counters.now
        let s = try tester.stream(TestRequest(path: "/_c?x=1"))
        let status = try await s.sendRequestHeaders(endOfStream: true)
        let body = "started=\(before.started) cancelled=\(before.cancelled) completed=\(before.completed)\n"
        #expect(status == .localReply(status: 200, headers: ["content-type": "text/plain"], body: body))
        s.complete()
        #expect(Counters.now == before)
    }

    @Test func configuration() throws {
        let c = try PluginConfigDecoder.decode(AsyncSleep.Config.self, from: Array("null".utf8))
        #expect(c.ms == 200 && c.on == .requestHeaders && !c.fail && c.countersPath == nil)
        #expect(throws: ConfigError("ms must not be negative")) { try FilterTester(AsyncSleep.self, configJSON: #"{"ms": -1}"#) }
        #expect(throws: ConfigError.self) { try FilterTester(AsyncSleep.self, configJSON: #"{"on": "trailers"}"#) }
    }
}

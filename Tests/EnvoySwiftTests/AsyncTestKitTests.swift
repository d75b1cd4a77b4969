import EnvoySwift
import EnvoySwiftTesting
import Filters
import Testing

/// Async filters through the test kit: a `send...` call returns when the callback has finished,
/// suspended or not; timeouts, stream ends and call-outs behave as in the proxy.
@Suite struct AsyncTestKitTests {
    static func stream(
        _ request: TestRequest = TestRequest(), host: TestHost = TestHost(), timeout: Duration? = .seconds(30),
        configure: (inout AsyncProbe.Config) -> Void
    ) throws -> TestStream {
        var config = AsyncProbe.Config()
        configure(&config)
        return try FilterTester(AsyncProbe.self, config: config, name: "probe", host: host).stream(request, timeout: timeout)
    }

    @Test func aSuspendingCallbackGivesItsFinalStatusAndItsChangesStick() async throws {
        let s = try Self.stream(TestRequest(headers: ["x-in": "1"])) { c in
            c.requestHeaders = { headers, _ in
                try await Task.sleep(for: .milliseconds(5))
                try headers.set("x-out", headers["x-in"] ?? "?")
                return .stopAndBuffer
            }
            c.requestBody = { body, _ in
                await Task.yield()
                try body.replace(body.string.uppercased())
                return .continue
            }
        }
        #expect(try await s.sendRequestHeaders() == .stopAndBuffer)
        #expect(s.requestHeader("x-out") == "1")
        #expect(try await s.sendRequestBody("abc", endOfStream: true) == .continue)
        #expect(s.forwardedRequestBodyString == "ABC")
    }

    @Test func aCallbackThatDoesNotSuspendWorksToo() async throws {
        let s = try Self.stream { c in c.requestHeaders = { _, _ in .localReply(status: 418, body: "teapot\n") } }
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .localReply(status: 418, body: "teapot\n"))
        #expect(s.localReply?.status == 418)
    }

    @Test func aThrowingCallbackRethrows() async throws {
        let s = try Self.stream { c in
            c.requestHeaders = { _, _ in
                await Task.yield()
                throw Throwing.failure
            }
        }
        await #expect(throws: Throwing.self) { try await s.sendRequestHeaders() }
    }

    @Test func pastTheTimeoutTheCallbackIsCancelled() async throws {
        let cancelled = Slot<Bool?>(nil)
        let completes = Counter()
        let s = try Self.stream(timeout: .milliseconds(50)) { c in
            c.requestHeaders = { _, _ in
                try? await Task.sleep(for: .seconds(30))
                cancelled.value = Task.isCancelled
                return .continue
            }
            c.complete = { completes.bump() }
        }
        await #expect(throws: TestStreamError.timedOut) { try await s.sendRequestHeaders() }
        #expect(await eventually { cancelled.value == true })
        await #expect(throws: TestStreamError.streamEnded) { try await s.sendResponseHeaders() }
        s.complete()
        #expect(await eventually { completes.count == 1 })
    }

    @Test func aStreamEndDuringACallbackCancelsItAndCompletesOnceAfter() async throws {
        let started = Gate()
        let completes = Counter()
        let host = TestHost()
        let s = try Self.stream(host: host) { c in
            c.requestHeaders = { _, _ in
                started.open()
                try? await Task.sleep(for: .seconds(30))
                return .continue
            }
            c.complete = { completes.bump() }
        }
        let send = Task { try await s.sendRequestHeaders() }
        await started.wait()
        s.complete()
        await #expect(throws: TestStreamError.streamEnded) { try await send.value }
        #expect(await eventually { completes.count == 1 })
        s.complete()
        #expect(completes.count == 1)
    }

    @Test func oneCallbackAtATime() async throws {
        let release = Gate()
        let started = Gate()
        let s = try Self.stream { c in
            c.requestHeaders = { _, _ in
                started.open()
                await release.wait()
                return .continue
            }
        }
        let first = Task { try await s.sendRequestHeaders() }
        await started.wait()
        await #expect(throws: TestStreamError.outOfOrder("a callback is still running")) {
            try await s.sendResponseHeaders()
        }
        release.open()
        #expect(try await first.value == .continue)
    }

    @Test func calloutsGoToTheHandler() async throws {
        let host = TestHost()
        host.calloutHandler = { request in
            HTTPCalloutResponse(status: 200, headers: ["x-echo": request.path], body: "ok")
        }
        let s = try Self.stream(host: host) { c in
            c.requestHeaders = { headers, context in
                let r = try await context.callout(HTTPCallout(cluster: "svc", path: "/q", headers: ["a": "b"]))
                try headers.set("x-got", "\(r.status) \(r.header("X-Echo") ?? "") \(r.text)")
                return .continue
            }
        }
        #expect(try await s.sendRequestHeaders() == .continue)
        #expect(s.requestHeader("x-got") == "200 /q ok")
        #expect(host.callouts == [HTTPCallout(cluster: "svc", path: "/q", headers: ["a": "b"])])
    }

    @Test func calloutFailures() async throws {
        let host = TestHost()
        let outcome = Slot<[String]>([])
        let s = try Self.stream(host: host) { c in
            c.requestHeaders = { _, context in
                for request in [
                    HTTPCallout(cluster: "none", path: "/"),  // no handler yet: unknown cluster
                    HTTPCallout(cluster: "svc", method: "BAD METHOD", path: "/"),
                    HTTPCallout(cluster: "svc", path: "no-slash"),
                ] {
                    do {
                        _ = try await context.callout(request)
                        outcome.update { $0.append("ok") }
                    } catch let e as HTTPCalloutError {
                        outcome.update { $0.append(e.reason) }
                    }
                }
                return .continue
            }
        }
        #expect(try await s.sendRequestHeaders() == .continue)
        #expect(outcome.value[0] == "unknown cluster \"none\"")
        #expect(outcome.value[1] == "method \"BAD METHOD\" is not a token")
        #expect(outcome.value[2].hasPrefix("path must start with"))
    }

    @Test func aSlowCalloutTimesOut() async throws {
        let host = TestHost()
        host.calloutHandler = { _ in
            try await Task.sleep(for: .seconds(30))
            return HTTPCalloutResponse(status: 200)
        }
        let error = Slot<HTTPCalloutError?>(nil)
        let s = try Self.stream(host: host) { c in
            c.requestHeaders = { _, context in
                do {
                    _ = try await context.callout(HTTPCallout(cluster: "svc", path: "/", timeout: .milliseconds(20)))
                } catch let e as HTTPCalloutError {
                    error.value = e
                }
                return .continue
            }
        }
        #expect(try await s.sendRequestHeaders() == .continue)
        #expect(error.value == .timeout("call-out timed out after 20 ms"))
    }

    @Test func aCancelledTaskDoesNotStartACallout() async throws {
        let host = TestHost()
        host.calloutHandler = { _ in HTTPCalloutResponse(status: 200) }
        let context = FilterContext(host: host, stream: StreamID(99), filterName: "t")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await context.callout(HTTPCallout(cluster: "svc", path: "/"))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(host.callouts.isEmpty)
    }

    @Test func streamsSpreadOverWorkers() async throws {
        let host = TestHost(workerCount: 2)
        let tester = try FilterTester(AsyncNoop.self, host: host)
        for _ in 0..<4 {
            let s = try tester.stream()
            #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        }
        #expect(host.workerCount == 2)
    }
}

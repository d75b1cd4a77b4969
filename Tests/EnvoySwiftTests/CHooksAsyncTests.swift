import CEnvoySwiftABI
import Glibc
import Synchronization
import Testing

@testable import EnvoySwift

/// The async path through the exported C hooks, against the host table built in Swift: RUNNING,
/// resume, worker runs, cancel, a stream end during a callback, and call-outs. This test's thread
/// plays the worker thread: it calls the hooks and `envoy_swift_worker_run`.
extension CHooksTests {
    static let running = ENVOY_SWIFT_STATUS_RUNNING

    /// A config of ``AsyncProbe`` for the live host, as `envoy_swift_filter_config_new` returns.
    func asyncConfig(_ configure: (inout AsyncProbe.Config) -> Void) throws -> UnsafeMutableRawPointer {
        var config = AsyncProbe.Config()
        configure(&config)
        let host = try #require(Program.liveHost)
        let box = try FilterConfigBox.make(AsyncProbe.self, pluginName: "async_probe", filterName: "f1", config: config, host: host)
        return Unmanaged.passRetained(box).toOpaque()
    }

    /// Calls the worker run until `condition` holds (the test thread is the worker), at most 5 s.
    func runWorker(until condition: () -> Bool) -> Bool {
        for _ in 0..<5000 {
            envoySwiftWorkerRun(0)
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }

    var resumes: [UInt32] { fake.withLock { $0.resumes.map(\.status) } }

    @Test func anAsyncFilterThatDoesNotSuspendReturnsItsStatusDirectly() throws {
        let c = try asyncConfig { $0.requestHeaders = { _, _ in .localReply(status: 403, body: "no\n") } }
        let f = try #require(envoySwiftFilterNew(c, 20, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == ENVOY_SWIFT_STATUS_LOCAL_REPLY)
        #expect(fake.withLock { $0.reply?.status } == 403)
        #expect(resumes.isEmpty)
        #expect(fake.withLock { $0.wakes } == 0)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aSuspendingFilterReturnsRunningAndResumesThroughTheHost() throws {
        let gate = Gate()
        let thread = Slot<[UInt]>([])
        let c = try asyncConfig { config in
            config.requestHeaders = { headers, _ in
                thread.update { $0.append(UInt(pthread_self())) }
                await gate.wait()
                thread.update { $0.append(UInt(pthread_self())) }
                try headers.set("x-after-await", "1")
                return .stopAndBuffer
            }
        }
        let f = try #require(envoySwiftFilterNew(c, 21, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, false) == Self.running)
        #expect(resumes.isEmpty)
        envoySwiftWorkerRun(0)  // nothing to do yet
        #expect(resumes.isEmpty)
        gate.open()
        #expect(runWorker { !resumes.isEmpty })
        #expect(fake.withLock { $0.resumes.map(\.stream) } == [21])
        #expect(resumes == [ENVOY_SWIFT_STATUS_STOP_AND_BUFFER.rawValue])
        #expect(fake.withLock { $0.request.map(\.0) } == ["x-after-await"])
        #expect(fake.withLock { $0.wakes } >= 1)
        // Before and after the await: the worker's (this) thread.
        #expect(thread.value == [UInt(pthread_self()), UInt(pthread_self())])
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aLocalReplyOrAnErrorAfterAnAwaitResumesWithItsStatus() throws {
        let c = try asyncConfig { config in
            config.requestHeaders = { _, _ in
                await Task.yield()
                return .localReply(status: 429, headers: ["retry-after": "1"], body: "slow down\n")
            }
            config.responseHeaders = { _, _ in
                await Task.yield()
                throw Throwing.failure
            }
        }
        let f = try #require(envoySwiftFilterNew(c, 22, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        #expect(runWorker { !resumes.isEmpty })
        #expect(resumes == [ENVOY_SWIFT_STATUS_LOCAL_REPLY.rawValue])
        let reply = try #require(fake.withLock { $0.reply })
        #expect(reply.status == 429)
        #expect(reply.headers == ["retry-after: 1"])
        #expect(envoySwiftFilterOnResponseHeaders(f, true) == Self.running)
        #expect(runWorker { resumes.count == 2 })
        #expect(resumes.last == ENVOY_SWIFT_STATUS_ERROR.rawValue)
        #expect(fake.withLock { $0.logs }.contains("3 [f1] response headers failed: failure"))
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func theWorkerRunTellsTheHostEachJobsStream() throws {
        let gate = Gate()
        let c = try asyncConfig { $0.requestHeaders = { _, _ in await gate.wait(); return .continue } }
        let f1 = try #require(envoySwiftFilterNew(c, 25, 0))
        let f2 = try #require(envoySwiftFilterNew(c, 26, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f1, true) == Self.running)
        #expect(envoySwiftFilterOnRequestHeaders(f2, true) == Self.running)
        // The code before the await ran inside the hooks, which the host attributes itself.
        envoySwiftWorkerRun(0)  // nothing queued: nothing to tell
        #expect(fake.withLock { $0.jobStreams }.isEmpty)
        gate.open()  // both tasks' next jobs are queued at once
        envoySwiftWorkerRun(0)
        #expect(fake.withLock { $0.resumes.map(\.stream) } == [25, 26])
        // The C host forgets the stream when the run returns: nothing is told after the batch.
        #expect(fake.withLock { $0.jobStreams } == [25, 26])
        envoySwiftWorkerRun(0)
        #expect(fake.withLock { $0.jobStreams } == [25, 26])
        for f in [f1, f2] {
            envoySwiftFilterOnStreamComplete(f)
            envoySwiftFilterDestroy(f)
        }
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aHostTableThatEndsBeforeJobStreamIsAcceptedAndNotTold() throws {
        // The table of a host built before job_stream: its size stops at callout. The callback set
        // past that size must not be read.
        var short = Self.table()
        short.size = LiveHost.requiredSize
        #expect(envoySwiftProgramInit(&short) == 0)
        let c = try asyncConfig { $0.requestHeaders = { _, _ in await Task.yield(); return .continue } }
        let f = try #require(envoySwiftFilterNew(c, 27, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        #expect(runWorker { !resumes.isEmpty })
        #expect(fake.withLock { $0.resumes.map(\.stream) } == [27])
        #expect(fake.withLock { $0.jobStreams }.isEmpty)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
        // A NULL job_stream in a full-size table is the same: not told, not refused.
        var none = Self.table()
        none.job_stream = nil
        #expect(envoySwiftProgramInit(&none) == 0)
    }

    @Test func aResumeTheHostRefusesIsDroppedQuietly() throws {
        fake.withLock { $0.resumeResult = ENVOY_SWIFT_ERR_GONE.rawValue }
        let c = try asyncConfig { $0.requestHeaders = { _, _ in await Task.yield(); return .continue } }
        let f = try #require(envoySwiftFilterNew(c, 23, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        #expect(runWorker { !resumes.isEmpty })
        #expect(fake.withLock { $0.logs }.contains { $0.hasPrefix("0 [f1] request headers: the host no longer waits") })
        #expect(!fake.withLock { $0.logs }.contains { $0.hasPrefix("3 ") })
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func cancelMakesTheTaskCancelledAndDropsItsResult() throws {
        let sawCancel = Slot<Bool?>(nil)
        let completes = Counter()
        let c = try asyncConfig { config in
            config.requestHeaders = { _, _ in
                try? await Task.sleep(for: .seconds(30))
                sawCancel.value = Task.isCancelled
                return .localReply(status: 200, body: "too late\n")
            }
            config.complete = { completes.bump() }
        }
        let f = try #require(envoySwiftFilterNew(c, 24, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        envoySwiftFilterCancel(f)
        #expect(runWorker { sawCancel.value != nil })
        #expect(sawCancel.value == true)
        envoySwiftWorkerRun(0)
        #expect(resumes.isEmpty)
        #expect(fake.withLock { $0.reply } == nil)
        envoySwiftFilterCancel(f)  // nothing running: harmless
        envoySwiftFilterOnStreamComplete(f)
        #expect(completes.count == 1)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aStreamEndDuringACallbackWaitsForTheTaskAndCompletesOnce() throws {
        let gate = Gate()
        let completes = Counter()
        let cancelled = Slot<Bool?>(nil)
        let c = try asyncConfig { config in
            config.requestHeaders = { _, _ in
                await gate.wait()
                cancelled.value = Task.isCancelled
                return .continue
            }
            config.complete = { completes.bump() }
        }
        let f = try #require(envoySwiftFilterNew(c, 25, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, false) == Self.running)
        // The client goes away: the host completes and destroys the instance mid-callback.
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterOnStreamComplete(f)  // a second call is ignored
        envoySwiftFilterDestroy(f)
        #expect(completes.count == 0)
        gate.open()
        #expect(runWorker { completes.count == 1 })
        #expect(cancelled.value == true)
        envoySwiftWorkerRun(0)
        #expect(completes.count == 1)
        #expect(resumes.isEmpty)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aWorkerOutOfRangeGivesNoInstance() throws {
        let c = try asyncConfig { _ in }
        #expect(envoySwiftFilterNew(c, 26, 1) == nil)
        #expect(fake.withLock { $0.logs }.contains { $0.contains("creating the filter failed: worker 1 out of range") })
        envoySwiftFilterConfigDestroy(c)
        envoySwiftWorkerRun(9)  // out of range: nothing
    }

    @Test func registeredAsyncFiltersComeFromTheRegistry() throws {
        let (config, err) = configNew("async_noop", #"{"yield": true}"#)
        let c = try #require(config, "\(err)")
        let f = try #require(envoySwiftFilterNew(c, 27, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        #expect(runWorker { !resumes.isEmpty })
        #expect(resumes == [ENVOY_SWIFT_STATUS_CONTINUE.rawValue])
        // async_noop leaves the response headers out: the SDK's default ran at once, so: skip it.
        #expect(envoySwiftFilterOnResponseHeaders(f, true) == ENVOY_SWIFT_STATUS_CONTINUE_SKIP)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    // MARK: call-outs

    /// A filter that calls out and records the outcome.
    func calloutConfig(_ outcome: Slot<Result<HTTPCalloutResponse, HTTPCalloutError>?>) throws -> UnsafeMutableRawPointer {
        try asyncConfig { config in
            config.requestHeaders = { headers, context in
                do {
                    let r = try await context.callout(
                        HTTPCallout(
                            cluster: "auth", method: "POST", path: "/check?x=1", headers: ["x-a": "1", "x-b": "2"],
                            body: "hi", timeout: .milliseconds(1500)))
                    outcome.value = .success(r)
                    try headers.set("x-status", String(r.status))
                    return .continue
                } catch let e as HTTPCalloutError {
                    outcome.value = .failure(e)
                    return .localReply(status: 503, body: e.reason)
                }
            }
        }
    }

    func answer(_ token: UInt64, result: envoy_swift_result_t, status: Int32 = 0, reason: StaticString = "") {
        var names = [Self.bytes("x-auth-user"), Self.bytes("X-Other")]
        var values = [Self.bytes("ann"), Self.bytes("2")]
        names.withUnsafeMutableBufferPointer { n in
            values.withUnsafeMutableBufferPointer { v in
                var r = envoy_swift_callout_response_t(
                    result: result.rawValue, status: status, header_names: n.baseAddress, header_values: v.baseAddress,
                    header_count: 2, body: Self.bytes("body!"), reason: Self.bytes(reason))
                envoySwiftCalloutDone(token, &r)
            }
        }
    }

    @Test func aCalloutCrossesAndItsAnswerResumesTheFilter() throws {
        let outcome = Slot<Result<HTTPCalloutResponse, HTTPCalloutError>?>(nil)
        let c = try calloutConfig(outcome)
        let f = try #require(envoySwiftFilterNew(c, 30, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        let call = try #require(fake.withLock { $0.callouts.first })
        #expect(call.stream == 30)
        #expect(call.line == "auth POST /check?x=1 timeout=1500 x-a=1 x-b=2 body=hi")
        answer(call.token, result: ENVOY_SWIFT_OK, status: 200)
        #expect(resumes.isEmpty)  // the answer is applied in the worker run, not inside callout_done
        #expect(runWorker { !resumes.isEmpty })
        #expect(resumes == [ENVOY_SWIFT_STATUS_CONTINUE.rawValue])
        let response = try #require(outcome.value).get()
        #expect(response.status == 200)
        #expect(response.header("X-AUTH-USER") == "ann")
        #expect(response.header("x-other") == "2")
        #expect(response.text == "body!")
        #expect(fake.withLock { $0.request.map { "\($0.0): \($0.1)" } } == ["x-status: 200"])
        // A second answer for the same token is ignored.
        answer(call.token, result: ENVOY_SWIFT_OK, status: 500)
        envoySwiftWorkerRun(0)
        #expect(resumes.count == 1)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test(arguments: [
        (ENVOY_SWIFT_ERR_TIMEOUT, HTTPCalloutError.timeout("no answer in 1500 ms")),
        (ENVOY_SWIFT_ERR_UPSTREAM, HTTPCalloutError.upstream("no answer in 1500 ms")),
        (ENVOY_SWIFT_ERR_CANCELLED, HTTPCalloutError.cancelled),
    ])
    func aFailedCalloutThrowsItsError(_ result: envoy_swift_result_t, _ expected: HTTPCalloutError) throws {
        let outcome = Slot<Result<HTTPCalloutResponse, HTTPCalloutError>?>(nil)
        let c = try calloutConfig(outcome)
        let f = try #require(envoySwiftFilterNew(c, 31, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        let token = try #require(fake.withLock { $0.callouts.first?.token })
        answer(token, result: result, reason: "no answer in 1500 ms")
        #expect(runWorker { !resumes.isEmpty })
        #expect(outcome.value == .failure(expected))
        #expect(resumes == [ENVOY_SWIFT_STATUS_LOCAL_REPLY.rawValue])
        #expect(fake.withLock { $0.reply?.status } == 503)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aCalloutTheHostRefusesThrowsAtOnce() throws {
        fake.withLock { $0.calloutResult = ENVOY_SWIFT_ERR_NOT_FOUND.rawValue }
        let outcome = Slot<Result<HTTPCalloutResponse, HTTPCalloutError>?>(nil)
        let c = try calloutConfig(outcome)
        let f = try #require(envoySwiftFilterNew(c, 32, 0))
        // The error comes before any suspension: the hook returns the final status itself.
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == ENVOY_SWIFT_STATUS_LOCAL_REPLY)
        #expect(outcome.value == .failure(.unknownCluster("auth")))
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func cancellingTheFilterCancelsItsCallout() throws {
        let outcome = Slot<Result<HTTPCalloutResponse, HTTPCalloutError>?>(nil)
        let c = try calloutConfig(outcome)
        let f = try #require(envoySwiftFilterNew(c, 33, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == Self.running)
        let token = try #require(fake.withLock { $0.callouts.first?.token })
        #expect(CalloutRegistry.isWaiting(token))
        envoySwiftFilterCancel(f)
        #expect(runWorker { outcome.value != nil })
        #expect(outcome.value == .failure(.cancelled))
        // The host's own CANCELLED answer comes later and finds nothing to resume.
        answer(token, result: ENVOY_SWIFT_ERR_CANCELLED)
        envoySwiftWorkerRun(0)
        #expect(resumes.isEmpty)
        #expect(fake.withLock { $0.reply } == nil)
        #expect(!CalloutRegistry.isWaiting(token))
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }
}

enum Throwing: Error, CustomStringConvertible {
    case failure
    var description: String { "failure" }
}

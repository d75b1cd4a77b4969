import EnvoySwiftTesting
import Synchronization
import Testing

@testable import EnvoySwift

/// Crash attribution: every job a worker runs for an async filter tells the host its stream first
/// (`job_stream`), and "none" after the run's jobs.
@Suite struct JobStreamTests {
    /// What a pool's `jobStream` closure was told, in order.
    final class Told: Sendable {
        private let calls = Mutex<[StreamID?]>([])
        func add(_ s: StreamID?) { calls.withLock { $0.append(s) } }
        var value: [StreamID?] { calls.withLock { $0 } }
    }

    /// A task executor that forwards its jobs to a worker with a stream, as an async filter
    /// instance does.
    final class Tagger: TaskExecutor {
        let worker: WorkerExecutor
        let stream: StreamID
        init(_ worker: WorkerExecutor, _ stream: UInt64) {
            self.worker = worker
            self.stream = StreamID(stream)
        }
        func enqueue(_ job: consuming ExecutorJob) {
            worker.enqueue(UnownedJob(job), stream: stream, on: asUnownedTaskExecutor())
        }
    }

    final class Log: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ s: String) { lines.withLock { $0.append(s) } }
        var value: [String] { lines.withLock { $0 } }
    }

    /// Not isolated to anything: calling it from a task switches to the task's executor preference.
    nonisolated static func elsewhere() async {}

    @Test func eachChangeOfStreamIsToldAndTheBatchEndsWithNone() throws {
        let told = Told()
        let pool = WorkerPool(count: 1, wake: { _ in }, jobStream: { told.add($0) })
        let executor = try #require(pool.executor(0))
        let log = Log()
        let gate = Gate()
        Task(executorPreference: Tagger(executor, 7)) {
            log.add("a1")
            await gate.wait()
            log.add("a2")
        }
        Task(executorPreference: Tagger(executor, 9)) { log.add("b") }
        Task(executorPreference: executor) { log.add("plain") }
        #expect(told.value.isEmpty)
        #expect(pool.run(0) == 3)
        #expect(log.value == ["a1", "b", "plain"])
        // Each change of stream, then "none" for the plain job; nothing more after the batch, since
        // its last job already named none.
        #expect(told.value == [StreamID(7), StreamID(9), nil])
        // The job after the await, resumed from this thread, carries its stream too.
        gate.open()
        #expect(pool.run(0) == 1)
        #expect(log.value == ["a1", "b", "plain", "a2"])
        #expect(told.value == [StreamID(7), StreamID(9), nil, StreamID(7), nil])
        // A run with nothing to do tells nothing.
        #expect(pool.run(0) == 0)
        #expect(told.value.count == 5)
    }

    @Test func aForwardedJobRunsOnItsOwnExecutorSoItDoesNotHopAgain() throws {
        let pool = WorkerPool(count: 1, wake: { _ in })
        let executor = try #require(pool.executor(0))
        let log = Log()
        Task(executorPreference: Tagger(executor, 3)) {
            log.add("before")
            await Self.elsewhere()
            log.add("after")
        }
        // Run on the tagger, the job is already where the call to `elsewhere` wants to be: no
        // second job, no second run.
        #expect(pool.run(0) == 1)
        #expect(log.value == ["before", "after"])
        #expect(executor.queuedCount == 0)
    }

    @Test func theJobAfterAnAwaitRunsWithItsStreamSetInTheTestHost() async throws {
        let host = TestHost(workerCount: 2)
        let seen = Mutex<[StreamID: [StreamID?]]>([:])
        var config = AsyncProbe.Config()
        config.requestHeaders = { _, context in
            // Inside the hook: no job of the worker's is running.
            let during = host.currentJobStream
            try await Task.sleep(for: .milliseconds(5))
            let after = host.currentJobStream
            seen.withLock { $0[context.stream] = [during, after] }
            return .continue
        }
        let tester = try FilterTester(AsyncProbe.self, config: config, name: "probe", host: host)
        let streams = try (0..<3).map { _ in try tester.stream() }
        try await withThrowingTaskGroup(of: FilterStatus.self) { group in
            for s in streams { group.addTask { try await s.sendRequestHeaders() } }
            for try await status in group { #expect(status == .continue) }
        }
        for s in streams {
            #expect(seen.withLock { $0[s.id] } == [nil, s.id])
            #expect(host.jobStreamCalls.contains { $0.stream == s.id })
        }
        // Each worker's last word is "none", once its run has ended.
        #expect(await eventually { Set(host.jobStreamCalls.map(\.worker)).allSatisfy { w in host.jobStreamCalls.last { $0.worker == w }?.stream == nil } })
        #expect(Set(host.jobStreamCalls.map(\.worker)) == [0, 1])
        // Off the workers' queues there is no current job.
        #expect(host.currentJobStream == nil)
    }

    @Test func aSynchronousFilterRunsNoJobs() async throws {
        let host = TestHost()
        let s = try FilterTester(Probe.self, config: Probe.Config(), host: host).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(host.jobStreamCalls.isEmpty)
    }

    @Test func theTestHostRecordsOnlyOnAWorker() {
        let host = TestHost()
        host.jobStream(StreamID(5))
        #expect(host.jobStreamCalls.isEmpty)
    }
}

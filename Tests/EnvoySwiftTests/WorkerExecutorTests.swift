import Glibc
import Synchronization
import Testing

@testable import EnvoySwift

/// The worker executor runs jobs only when the host's worker run asks, coalesces wakes, and runs
/// one round of jobs per run.
@Suite struct WorkerExecutorTests {
    final class Wakes: Sendable {
        let count = Atomic<Int>(0)
        var value: Int { count.load(ordering: .relaxed) }
    }

    final class Log: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ s: String) { lines.withLock { $0.append(s) } }
        var value: [String] { lines.withLock { $0 } }
    }

    @Test func jobsRunOnlyFromTheWorkerRunAndWakesCoalesce() throws {
        let wakes = Wakes()
        let pool = WorkerPool(count: 2) { _ in wakes.count.add(1, ordering: .relaxed) }
        let executor = try #require(pool.executor(1))
        let log = Log()
        Task(executorPreference: executor) { log.add("a") }
        Task(executorPreference: executor) { log.add("b") }
        #expect(wakes.value == 1)
        #expect(executor.queuedCount == 2)
        usleep(20_000)
        #expect(log.value.isEmpty)
        #expect(pool.run(0) == 0)
        #expect(pool.run(1) == 2)
        #expect(log.value == ["a", "b"])
        #expect(executor.queuedCount == 0)
        // The queue is empty again: the next job wakes the host again.
        Task(executorPreference: executor) { log.add("c") }
        #expect(wakes.value == 2)
        #expect(pool.run(1) == 1)
        #expect(log.value == ["a", "b", "c"])
        #expect(pool.executor(2) == nil)
        #expect(pool.run(7) == 0)
    }

    @Test func aYieldingTaskDoesNotHoldTheWorker() throws {
        let wakes = Wakes()
        let pool = WorkerPool(count: 1) { _ in wakes.count.add(1, ordering: .relaxed) }
        let executor = try #require(pool.executor(0))
        let log = Log()
        let thread = Mutex<[UInt]>([])
        Task(executorPreference: executor) {
            for i in 0..<3 {
                log.add("step \(i)")
                thread.withLock { $0.append(UInt(bitPattern: Int(bitPattern: pthread_self()))) }
                await Task.yield()
            }
            log.add("done")
        }
        #expect(wakes.value == 1)
        // A run takes only what was queued when it started: at most one step per run, and the job
        // each yield queues has woken the host for the next run.
        var runs = 0
        while !log.value.contains("done") && runs < 100 {
            let steps = log.value.count
            #expect(pool.run(0) == 1)
            runs += 1
            #expect(log.value.count <= steps + 1)
            #expect(wakes.value == runs + (log.value.contains("done") ? 0 : 1))
        }
        #expect(log.value == ["step 0", "step 1", "step 2", "done"])
        #expect(runs >= 4)
        #expect(pool.run(0) == 0)
        // Every step ran on this (the "worker") thread.
        let me = UInt(bitPattern: Int(bitPattern: pthread_self()))
        #expect(thread.withLock { $0 } == [me, me, me])
    }

    @Test func continuationsResumedElsewhereComeBackThroughTheWorker() async throws {
        let wakes = Wakes()
        let pool = WorkerPool(count: 1) { _ in wakes.count.add(1, ordering: .relaxed) }
        let executor = try #require(pool.executor(0))
        let log = Log()
        let gate = Gate()
        Task(executorPreference: executor) {
            log.add("before")
            await gate.wait()
            log.add("after")
        }
        #expect(pool.run(0) == 1)
        #expect(log.value == ["before"])
        gate.open()  // from this test's thread, not the worker's
        #expect(await eventually { wakes.value == 2 })
        #expect(log.value == ["before"])
        #expect(pool.run(0) == 1)
        #expect(log.value == ["before", "after"])
    }
}

import Synchronization

/// The task executor of one host worker thread: the jobs of the async filter callbacks of that
/// worker's streams run here, on the worker's own thread, so every line of such a callback (before
/// and after each `await`) runs where the stream's host callbacks are valid.
///
/// `enqueue` may come from any thread (a timer, another executor, a continuation resumed
/// elsewhere): it queues the job and, when the queue was empty, asks the host to wake the worker.
/// The host answers by calling `envoy_swift_worker_run(worker)` on the worker's thread, which calls
/// ``runQueued()``: it runs the jobs that were queued when it started, and no more, so a filter
/// that loops on `Task.yield()` cannot hold the worker; jobs queued meanwhile have already woken
/// the host again (the queue went from empty to non-empty), and run in the next round.
package final class WorkerExecutor: TaskExecutor {
    /// The worker index, `0..<workerCount`.
    package let worker: Int
    private let wake: @Sendable (WorkerExecutor) -> Void

    private struct Queue: ~Copyable {
        /// Jobs waiting for the next run.
        var jobs: [UnownedJob] = []
        /// An emptied array kept for the next swap, so a run allocates nothing.
        var spare: [UnownedJob] = []
    }

    private let queue = Mutex(Queue())

    /// Creates the executor of one worker.
    /// - Parameters:
    ///   - worker: the worker index.
    ///   - wake: asks the host to run ``runQueued()`` of this executor on the worker's thread soon;
    ///     called from any thread.
    package init(worker: Int, wake: @escaping @Sendable (WorkerExecutor) -> Void) {
        self.worker = worker
        self.wake = wake
    }

    /// Queues a job; wakes the worker when the queue was empty. Any thread.
    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let wasEmpty = queue.withLock { q in
            q.jobs.append(job)
            return q.jobs.count == 1
        }
        if wasEmpty { wake(self) }
    }

    /// Runs the jobs queued before this call, on the calling thread (the worker's, from
    /// `envoy_swift_worker_run`). Returns how many ran.
    @discardableResult
    package func runQueued() -> Int {
        var batch = queue.withLock { q -> [UnownedJob] in
            var batch = q.spare
            q.spare = []
            swap(&batch, &q.jobs)
            return batch
        }
        let count = batch.count
        let me = asUnownedTaskExecutor()
        for job in batch {
            job.runSynchronously(on: me)
        }
        batch.removeAll(keepingCapacity: true)
        queue.withLock { q in q.spare = batch }
        return count
    }

    /// How many jobs wait for the next run.
    package var queuedCount: Int {
        queue.withLock { $0.jobs.count }
    }
}

/// The executors of a host's workers, one per worker index.
package final class WorkerPool: Sendable {
    /// One executor per worker, by index.
    package let executors: [WorkerExecutor]

    /// Creates `count` executors (at least one).
    /// - Parameters:
    ///   - count: the host's worker count.
    ///   - wake: asks the host to run the executor's jobs on its worker's thread; any thread.
    package init(count: Int, wake: @escaping @Sendable (WorkerExecutor) -> Void) {
        executors = (0..<max(1, count)).map { WorkerExecutor(worker: $0, wake: wake) }
    }

    /// The executor of `worker`, or `nil` when the index is out of range.
    /// - Parameter worker: the worker index.
    package func executor(_ worker: Int) -> WorkerExecutor? {
        worker >= 0 && worker < executors.count ? executors[worker] : nil
    }

    /// Runs the jobs queued for `worker` (see ``WorkerExecutor/runQueued()``); nothing for an
    /// index out of range.
    /// - Parameter worker: the worker index.
    @discardableResult
    package func run(_ worker: Int) -> Int {
        executor(worker)?.runQueued() ?? 0
    }
}

/// A host that has worker executors: the live host and the test kit's host. Asynchronous filters
/// need one; the SDK finds it once per configuration.
package protocol WorkerPoolHost: FilterHost {
    /// The executors of this host's workers.
    var workers: WorkerPool { get }
}

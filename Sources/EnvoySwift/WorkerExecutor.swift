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
///
/// Each queued job carries the stream it works for, so that a trap inside it can be blamed on
/// that stream: an async filter instance is its task's executor preference and hands its jobs to
/// ``enqueue(_:stream:on:)`` with its stream; ``runQueued()`` tells the host each job's stream
/// (`job_stream`) before running it, when it differs from the stream of the job before, and
/// "none" once after a batch that named one, unless the host forgets it by itself when the run
/// returns (the C host does).
package final class WorkerExecutor: TaskExecutor {
    /// The worker index, `0..<workerCount`.
    package let worker: Int
    private let wake: @Sendable (WorkerExecutor) -> Void
    private let jobStream: (@Sendable (StreamID?) -> Void)?
    /// Whether ``runQueued()`` tells "none" after a batch that named a stream.
    private let tellsNoneAfterRun: Bool

    /// One queued job: the job, the stream it works for (0: none), and the task executor it runs
    /// on (this one, or the filter instance that forwarded it), so the runtime sees the executor
    /// the task prefers and does not hop again. Plain values: queueing copies, never allocates.
    private struct Entry {
        var job: UnownedJob
        var stream: UInt64
        var executor: UnownedTaskExecutor
    }

    private struct Queue: ~Copyable {
        /// Jobs waiting for the next run.
        var jobs: [Entry] = []
        /// An emptied array kept for the next swap, so a run allocates nothing.
        var spare: [Entry] = []
    }

    private let queue = Mutex(Queue())

    /// Creates the executor of one worker.
    /// - Parameters:
    ///   - worker: the worker index.
    ///   - wake: asks the host to run ``runQueued()`` of this executor on the worker's thread soon;
    ///     called from any thread.
    ///   - jobStream: tells the host which stream the job about to run works for (`nil`: none);
    ///     called on the worker's thread, inside ``runQueued()``. `nil` when the host does not
    ///     want to know (an older host without `job_stream`).
    ///   - tellsNoneAfterRun: tell "none" after a batch that named a stream; `false` for a host
    ///     that forgets the stream by itself when the run returns.
    package init(
        worker: Int, wake: @escaping @Sendable (WorkerExecutor) -> Void,
        jobStream: (@Sendable (StreamID?) -> Void)? = nil, tellsNoneAfterRun: Bool = true
    ) {
        self.worker = worker
        self.wake = wake
        self.jobStream = jobStream
        self.tellsNoneAfterRun = tellsNoneAfterRun
    }

    /// Queues a job that works for no stream in particular; wakes the worker when the queue was
    /// empty. Any thread.
    package func enqueue(_ job: consuming ExecutorJob) {
        enqueue(UnownedJob(job), stream: nil, on: asUnownedTaskExecutor())
    }

    /// Queues a job for `stream`, to be run on `executor`; wakes the worker when the queue was
    /// empty. Any thread.
    /// - Parameters:
    ///   - job: the job.
    ///   - stream: the stream the job works for, or `nil`.
    ///   - executor: the task executor the job's task prefers, which forwarded it here (the job
    ///     runs on this worker's thread either way).
    package func enqueue(_ job: UnownedJob, stream: StreamID?, on executor: UnownedTaskExecutor) {
        let entry = Entry(job: job, stream: stream?.rawValue ?? 0, executor: executor)
        let wasEmpty = queue.withLock { q in
            q.jobs.append(entry)
            return q.jobs.count == 1
        }
        if wasEmpty { wake(self) }
    }

    /// Runs the jobs queued before this call, on the calling thread (the worker's, from
    /// `envoy_swift_worker_run`), each after telling the host its stream; then tells the host
    /// "none" once. Returns how many ran.
    @discardableResult
    package func runQueued() -> Int {
        var batch = queue.withLock { q -> [Entry] in
            var batch = q.spare
            q.spare = []
            swap(&batch, &q.jobs)
            return batch
        }
        let count = batch.count
        if let jobStream {
            // Told only when the stream changes: jobs of one stream often follow each other.
            var told: UInt64 = 0
            for entry in batch {
                if entry.stream != told {
                    jobStream(entry.stream == 0 ? nil : StreamID(entry.stream))
                    told = entry.stream
                }
                entry.job.runSynchronously(on: entry.executor)
            }
            if told != 0 && tellsNoneAfterRun { jobStream(nil) }
        } else {
            for entry in batch {
                entry.job.runSynchronously(on: entry.executor)
            }
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
    ///   - jobStream: tells the host which stream the job about to run on the calling worker
    ///     thread works for (`nil`: none), as ``FilterHost/jobStream(_:)``; `nil` to tell nothing.
    ///   - tellsNoneAfterRun: see ``WorkerExecutor/init(worker:wake:jobStream:tellsNoneAfterRun:)``.
    package init(
        count: Int, wake: @escaping @Sendable (WorkerExecutor) -> Void,
        jobStream: (@Sendable (StreamID?) -> Void)? = nil, tellsNoneAfterRun: Bool = true
    ) {
        executors = (0..<max(1, count)).map {
            WorkerExecutor(worker: $0, wake: wake, jobStream: jobStream, tellsNoneAfterRun: tellsNoneAfterRun)
        }
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

import CEnvoySwiftABI
import CEnvoySwiftShims

/// The instance of an ``AsyncHTTPFilter`` on one stream: runs each callback in a task on the
/// stream's worker executor, and hands its status to the host directly (when it finished without
/// suspending) or later through ``FilterHost/resume(_:_:)``.
///
/// The life of one callback: the hook starts the task with `Task.immediate`, which runs the filter
/// on the calling (worker) thread up to its first real suspension. A callback that never suspends
/// has finished by then and its status is the hook's return value. Otherwise the hook returns
/// RUNNING; the task goes on through the worker's executor (on the same thread) and, when it ends,
/// maps its result (sending a local reply first) and calls `resume`. The host's cancel (its
/// timeout) and a stream end during the task cancel it and drop its result; a stream end also
/// defers the filter's `onStreamComplete()` to the task's end, since until then the task holds
/// `inout` access to the filter value. `onStreamComplete()` runs exactly once either way.
///
/// The instance is also its tasks' executor preference: its ``AsyncFilterInstanceBase/enqueue(_:)``
/// hands each job of a task to the worker's ``WorkerExecutor`` together with the stream's handle,
/// so the worker run can tell the host which stream the job about to run works for (crash
/// attribution). Being the executor itself costs no allocation per stream or per job.
///
/// `@unchecked Sendable` invariant: the task's closure captures this instance, and the runtime
/// calls its `enqueue` from any thread, hence the conformance. `enqueue` reads only `let`
/// properties (`worker` and `context`). Every other stored property is read and written on
/// the stream's worker thread only. The hooks, cancel and stream-complete are called there by the
/// host (never two at once), and the task's code runs there too: synchronously inside the hook
/// until it suspends, then only in the jobs that worker's ``WorkerExecutor`` runs from
/// `envoy_swift_worker_run`, which the host calls on that thread between hooks, never inside one.
final class AsyncFilterInstance<F: AsyncHTTPFilter>: AsyncFilterInstanceBase, @unchecked Sendable {
    private var filter: F
    /// The task of the callback in flight (it returned RUNNING), until it ends.
    private var task: Task<Void, Never>?
    /// True while a hook waits for `Task.immediate` to return.
    private var starting = false
    /// The status of a callback that ended before `Task.immediate` returned.
    private var immediate: envoy_swift_status_t?
    /// The host no longer waits for the task in flight: its result is dropped.
    private var dropResult = false
    /// The host called stream-complete; whether the filter's `onStreamComplete()` ran.
    private var completeRequested = false
    private var completeDone = false

    init(filter: F, context: FilterContext, executor: WorkerExecutor) {
        self.filter = filter
        super.init(context: context, worker: executor)
    }

    override func onRequestHeaders(endOfStream: Bool) -> envoy_swift_status_t {
        let headers = context.requestHeaders
        return start("request headers") { try await $0.onRequestHeaders(headers, endOfStream: endOfStream) }
    }

    override func onRequestBody(endOfStream: Bool) -> envoy_swift_status_t {
        let body = context.requestBody
        return start("request body") { try await $0.onRequestBody(body, endOfStream: endOfStream) }
    }

    override func onRequestTrailers() -> envoy_swift_status_t {
        let trailers = context.requestTrailers
        return start("request trailers") { try await $0.onRequestTrailers(trailers) }
    }

    override func onResponseHeaders(endOfStream: Bool) -> envoy_swift_status_t {
        let headers = context.responseHeaders
        return start("response headers") { try await $0.onResponseHeaders(headers, endOfStream: endOfStream) }
    }

    override func onResponseBody(endOfStream: Bool) -> envoy_swift_status_t {
        let body = context.responseBody
        return start("response body") { try await $0.onResponseBody(body, endOfStream: endOfStream) }
    }

    override func onResponseTrailers() -> envoy_swift_status_t {
        let trailers = context.responseTrailers
        return start("response trailers") { try await $0.onResponseTrailers(trailers) }
    }

    override func cancel() {
        guard let task, !dropResult else { return }
        dropResult = true
        task.cancel()
    }

    override func onStreamComplete() {
        guard !completeRequested else { return }
        completeRequested = true
        if let task {
            // The client went away during the callback: the filter is still inside it.
            dropResult = true
            task.cancel()
            return
        }
        completeDone = true
        filter.onStreamComplete()
    }

    /// Runs one callback in a task whose executor preference is this instance, so every job of it
    /// goes to the worker's executor with the stream's handle.
    private func start(
        _ hook: StaticString, _ call: @escaping @Sendable (inout F) async throws -> FilterStatus
    ) -> envoy_swift_status_t {
        guard task == nil else {
            // The host timed the previous callback out and moved on (for example to the response
            // of its 504), but the cancelled task has not ended yet: it still holds the filter.
            context.log.debug("\(hook): skipped, the previous callback is still ending after its cancellation")
            return ENVOY_SWIFT_STATUS_CONTINUE
        }
        guard !completeRequested else { return ENVOY_SWIFT_STATUS_ERROR }
        lastError = nil
        starting = true
        _ = envoy_swift_shim_take_default()
        let task = Task.immediate(executorPreference: self) { [self] in
            let result: Result<FilterStatus, any Error>
            do {
                result = .success(try await call(&filter))
            } catch {
                result = .failure(error)
            }
            finish(hook, result)
        }
        starting = false
        // A default callback ran and ended at once, on this thread: the filter left the hook out.
        let leftOut = envoy_swift_shim_take_default() == UInt(bitPattern: ObjectIdentifier(F.self))
        if let status = immediate {
            immediate = nil
            return leftOut && status == ENVOY_SWIFT_STATUS_CONTINUE ? ENVOY_SWIFT_STATUS_CONTINUE_SKIP : status
        }
        self.task = task
        return ENVOY_SWIFT_STATUS_RUNNING
    }

    /// The callback ended (on the worker thread): pass its status on, or drop it.
    private func finish(_ hook: StaticString, _ result: Result<FilterStatus, any Error>) {
        task = nil
        if dropResult {
            dropResult = false
            context.log.debug("\(hook): the host stopped waiting; result dropped")
        } else {
            let status = map(hook, result)
            if starting {
                immediate = status
            } else {
                do throws(HostError) {
                    try context.host.resume(context.stream, HookStatus(rawValue: status.rawValue) ?? .error)
                } catch {
                    context.log.debug("\(hook): the host no longer waits (\(error)); result dropped")
                }
            }
        }
        if completeRequested && !completeDone {
            completeDone = true
            filter.onStreamComplete()
        }
    }

    private func map(_ hook: StaticString, _ result: Result<FilterStatus, any Error>) -> envoy_swift_status_t {
        do {
            return try abiStatus(of: result.get())
        } catch {
            lastError = error
            context.log.error("\(hook) failed: \(error)")
            return ENVOY_SWIFT_STATUS_ERROR
        }
    }
}

/// The part of ``AsyncFilterInstance`` that does not depend on the filter type: its tasks'
/// executor preference. The conformance lives here, on a class that is not generic, so that the
/// runtime finds its witness table statically: a generic class's conformance is looked up
/// (`swift_getWitnessTable`) each time the instance is used as an executor, a few hundred
/// instructions per request.
///
/// `@unchecked Sendable`: see ``AsyncFilterInstance``; `enqueue` reads only `let` properties.
class AsyncFilterInstanceBase: FilterInstanceBase, TaskExecutor, @unchecked Sendable {
    /// The executor of the stream's worker, where this instance's jobs are queued and run.
    let worker: WorkerExecutor

    init(context: FilterContext, worker: WorkerExecutor) {
        self.worker = worker
        super.init(context: context)
    }

    /// Queues a job of this instance's task on the worker's executor, tagged with the stream. Any
    /// thread (a timer, a continuation resumed elsewhere).
    final func enqueue(_ job: consuming ExecutorJob) {
        worker.enqueue(UnownedJob(job), stream: context.stream, on: asUnownedTaskExecutor())
    }
}

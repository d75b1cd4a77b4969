import EnvoySwift
import Synchronization

/// Where the outcome of one RUNNING hook goes: the filter's resume, the test stream's timeout, or
/// the stream's end, whichever comes first; ``wait()`` returns it whether it came before or after.
final class Mailbox: Sendable {
    enum Outcome: Sendable {
        case resumed(HookStatus)
        case timedOut
        case ended
    }

    private struct State {
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
    }

    private let state = Mutex(State())

    /// Delivers `outcome` unless one was delivered before.
    func deliver(_ outcome: Outcome) {
        let waiter = state.withLock { s -> CheckedContinuation<Outcome, Never>? in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: outcome)
    }

    /// The first outcome delivered.
    func wait() async -> Outcome {
        await withCheckedContinuation { c in
            let done = state.withLock { s -> Outcome? in
                if let o = s.outcome { return o }
                s.waiter = c
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}

import EnvoySwift
import EnvoySwiftTesting
import Synchronization

/// The async twin of ``Probe``: an ``AsyncHTTPFilter`` whose callbacks are closures, so a test can
/// suspend, throw, or call out at any point. Its configuration is a value, never JSON.
struct AsyncProbe: AsyncHTTPFilter {
    typealias Headers = @Sendable (HeaderMap, FilterContext) async throws -> FilterStatus
    typealias Body = @Sendable (BodyBuffer, FilterContext) async throws -> FilterStatus

    struct Config: Decodable, Sendable {
        var requestHeaders: Headers = { _, _ in .continue }
        var requestBody: Body = { _, _ in .continue }
        var responseHeaders: Headers = { _, _ in .continue }
        var complete: @Sendable () -> Void = {}

        init() {}

        init(from decoder: any Decoder) throws {
            throw ConfigError("AsyncProbe takes its configuration as a value")
        }
    }

    let config: Config
    let context: FilterContext

    init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
    }

    func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        try await config.requestHeaders(headers, context)
    }

    func onRequestBody(_ body: BodyBuffer, endOfStream: Bool) async throws -> FilterStatus {
        try await config.requestBody(body, context)
    }

    func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        try await config.responseHeaders(headers, context)
    }

    func onStreamComplete() {
        config.complete()
    }
}

/// A one-shot signal a filter can await and a test can open from any thread (or the reverse).
final class Gate: Sendable {
    private struct State {
        var open = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Opens the gate: every waiter, present and future, goes on.
    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    /// Waits until the gate is open.
    func wait() async {
        await withCheckedContinuation { c in
            let open = state.withLock { s -> Bool in
                if !s.open { s.waiters.append(c) }
                return s.open
            }
            if open { c.resume() }
        }
    }
}

/// A counter a `@Sendable` closure can bump.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func bump() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Waits (polling) until `condition` holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return condition()
}

/// A value a `@Sendable` closure can set and a test can read, from any thread.
final class Slot<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    var value: Value {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
    func update(_ body: (inout Value) -> Void) { state.withLock { body(&$0) } }
}

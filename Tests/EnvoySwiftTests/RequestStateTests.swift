import EnvoySwift
import Synchronization
import EnvoySwiftTesting
@testable import Filters
import Testing

extension StateKey where Value == Int {
    static let count = StateKey("count")
    /// The same name as `StateKey<String>.tenant` with another type: a programmer error.
    static let tenantAsInt = StateKey("tenant")
}

extension StateKey where Value == String {
    static let note = StateKey("note", loggedAs: "the_note")
}

/// A filter that runs a test's closure on each request/response header callback.
struct StateProbe: HTTPFilter {
    struct Config: Decodable, Sendable {}
    nonisolated(unsafe) static var onRequest: @Sendable (RequestState) throws -> Void = { _ in }
    nonisolated(unsafe) static var onResponse: @Sendable (RequestState) throws -> Void = { _ in }
    let context: FilterContext
    init(config: Config, context: FilterContext) { self.context = context }
    func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try Self.onRequest(context.state)
        return .continue
    }
    func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        try Self.onResponse(context.state)
        return .continue
    }
}

@Suite(.serialized) struct RequestStateTests {
    @Test func typedGetSetOverwriteRemoveAndTypeMismatch() async throws {
        StateProbe.onRequest = { state in
            #expect(state[.tenant] == nil)
            #expect(!state.contains(StateKey<Int>.count))
            state[.count] = 1
            state[.count] = 2
            #expect(state[.count] == 2)
            state[.tenant] = "acme"
            #expect(state[.tenant] == "acme")
            // The same name read with another type: nil, and the value stays.
            #expect(state[.tenantAsInt] == nil)
            #expect(state[.tenant] == "acme")
            state.removeValue(forKey: StateKey<Int>.count)
            #expect(state[.count] == nil)
            state[.tenant] = nil
            #expect(state[.tenant] == nil)
            try state.set(.count, 7)
        }
        StateProbe.onResponse = { state in #expect(state[.count] == 7) }
        defer {
            StateProbe.onRequest = { _ in }
            StateProbe.onResponse = { _ in }
        }
        let s = try FilterTester(StateProbe.self).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders()
        s.complete()
    }

    @Test func aStreamWithoutWritesHasNoState() async throws {
        StateProbe.onRequest = { state in #expect(state[.tenant] == nil) }
        defer { StateProbe.onRequest = { _ in } }
        let host = TestHost()
        let s = try FilterTester(StateProbe.self, host: host).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.loggedState.isEmpty)
    }

    @Test func loggedKeysNameTheirValueForTheAccessLog() async throws {
        StateProbe.onRequest = { state in
            state[.tenant] = "acme"
            state[.note] = "hello"
            state[.count] = 3
            state[.tenant] = "acme2"
        }
        defer { StateProbe.onRequest = { _ in } }
        let s = try FilterTester(StateProbe.self).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.loggedState == ["tenant": "acme2", "the_note": "hello"])
        s.complete()
        #expect(s.loggedState == ["tenant": "acme2", "the_note": "hello"])
    }

    @Test func aLogValueTheHostRefusesThrowsButTheValueIsStored() async throws {
        StateProbe.onRequest = { state in
            #expect(throws: HostError.invalid) { try state.set(.note, String(repeating: "x", count: 2000)) }
            #expect(state[.note]?.utf8.count == 2000)
        }
        defer { StateProbe.onRequest = { _ in } }
        let s = try FilterTester(StateProbe.self).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.loggedState.isEmpty)
    }

    @Test func stateCrossesFiltersAnAwaitAndBothDirections() async throws {
        registerFilters()
        let host = TestHost()
        let quota = try FilterTester(plugin: "tenant_quota", name: "quota", host: host)
        let reader = try FilterTester(plugin: "state_reader", name: "reader", host: host)
        let first = try quota.stream(TestRequest(headers: ["x-tenant": "acme"]))
        let second = try reader.stream(joining: first)
        #expect(try await first.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(try await second.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(try await second.sendResponseHeaders(status: 200) == .continue)
        #expect(second.responseHeader("x-tenant-seen") == "acme,acme")
        #expect(first.loggedState["tenant"] == "acme")
        first.complete()
        second.complete()
    }

    @Test func withoutATenantTheReaderSeesNothing() async throws {
        registerFilters()
        let host = TestHost()
        let first = try FilterTester(plugin: "tenant_quota", name: "quota", host: host).stream()
        let second = try FilterTester(plugin: "state_reader", name: "reader", host: host).stream(joining: first)
        _ = try await first.sendRequestHeaders(endOfStream: true)
        _ = try await second.sendRequestHeaders(endOfStream: true)
        _ = try await second.sendResponseHeaders()
        #expect(second.responseHeader("x-tenant-seen") == "-,-")
    }

    @Test func theStateIsFreedWhenTheStreamEnds() async throws {
        final class Tracked: Sendable {
            static let alive = Mutex(0)
            init() { Self.alive.withLock { $0 += 1 } }
            deinit { Self.alive.withLock { $0 -= 1 } }
        }
        StateProbe.onRequest = { state in state[StateKey<Tracked>("tracked")] = Tracked() }
        defer { StateProbe.onRequest = { _ in } }
        let s = try FilterTester(StateProbe.self).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(Tracked.alive.withLock { $0 } == 1)
        s.complete()
        #expect(Tracked.alive.withLock { $0 } == 0)
    }

    @Test func theStateHookReleasesWhatStateSetHeld() {
        // envoy_swift_stream_state_free(NULL) is harmless.
        envoySwiftStreamStateFree(nil)
    }
}

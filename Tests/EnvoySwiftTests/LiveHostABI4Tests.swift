import CEnvoySwiftABI
@testable import EnvoySwift
import Synchronization
import Testing

/// What the fake ABI 4 callbacks saw.
struct FakeABI4: Sendable {
    var slot: UInt = 0
    var logged: [String] = []
    var defined: [String] = []
    var records: [String] = []
}

let fake4 = Mutex(FakeABI4())

/// LiveHost's ABI 4 calls through a C table: stream info decoding, the state slot, metrics.
@Suite(.serialized) struct LiveHostABI4Tests {
    static func table() -> envoy_swift_host_t {
        var t = CHooksTests.table()
        t.stream_info = { _, out in
            out?.pointee = envoy_swift_stream_info_t(
                start_unix_us: 1_700_000_000_000_000, duration_us: 2500, upstream_first_byte_us: UInt64.max,
                request_body_bytes: 3, response_body_bytes: 4,
                response_flags: UInt32(ENVOY_SWIFT_RF_UF) | UInt32(ENVOY_SWIFT_RF_UT), response_code: 0)
            return 0
        }
        t.state_get = { _, out in
            out?.pointee = UnsafeMutableRawPointer(bitPattern: fake4.withLock { $0.slot })
            return 0
        }
        t.state_set = { _, p in
            fake4.withLock { $0.slot = UInt(bitPattern: p) }
            return 0
        }
        t.state_log = { _, name, value in
            fake4.withLock { $0.logged.append("\(fakeString(name))=\(fakeString(value))") }
            return 0
        }
        t.metric_define = { filter, kind, name, labels, n, buckets, nb, id in
            let ls = (0..<n).map { fakeString(labels![$0]) }.joined(separator: ",")
            let bs = (0..<nb).map { String(buckets![$0]) }.joined(separator: ",")
            let line = "\(fakeString(filter)) \(kind.rawValue) \(fakeString(name)) [\(ls)] [\(bs)]"
            return fake4.withLock { f in
                if fakeString(name) == "bad" { return ENVOY_SWIFT_ERR_INVALID.rawValue }
                f.defined.append(line)
                id?.pointee = UInt32(f.defined.count)
                return 0
            }
        }
        t.metric_record = { id, values, n, v in
            let vs = (0..<n).map { fakeString(values![$0]) }.joined(separator: ",")
            fake4.withLock { $0.records.append("record \(id) [\(vs)] \(v)") }
            return 0
        }
        t.metric_set = { id, values, n, v in
            let vs = (0..<n).map { fakeString(values![$0]) }.joined(separator: ",")
            fake4.withLock { $0.records.append("set \(id) [\(vs)] \(v)") }
            return 0
        }
        return t
    }

    @Test func streamInfoIsDecoded() throws {
        var t = Self.table()
        let host = try LiveHost(table: &t)
        let info = try host.streamInfo(StreamID(1))
        #expect(info.startTimeUnixMicroseconds == 1_700_000_000_000_000)
        #expect(info.duration == .microseconds(2500))
        #expect(info.timeToUpstreamFirstByte == nil)
        #expect(info.responseCode == nil)
        #expect(info.responseFlags.description == "UF,UT")
        #expect(info.requestBodyBytes == 3 && info.responseBodyBytes == 4)
    }

    @Test func stateIsOneObjectInTheSlot() throws {
        fake4.withLock { $0 = FakeABI4() }
        var t = Self.table()
        let host = try LiveHost(table: &t)
        let state = RequestState(host: host, stream: StreamID(1))
        #expect(state[.tenant] == nil)
        #expect(fake4.withLock { $0.slot } == 0)
        state[.tenant] = "acme"
        let slot = fake4.withLock { $0.slot }
        #expect(slot != 0)
        state[StateKey<Int>("n")] = 1
        #expect(fake4.withLock { $0.slot } == slot)
        #expect(state[.tenant] == "acme")
        #expect(fake4.withLock { $0.logged } == ["tenant=acme"])
        envoySwiftStreamStateFree(UnsafeMutableRawPointer(bitPattern: slot))
    }

    @Test func metricsGoThroughTheTableWithTheirLabels() throws {
        fake4.withLock { $0 = FakeABI4() }
        var t = Self.table()
        let host = try LiveHost(table: &t)
        let registry = MetricsRegistry(filterName: "auth", host: host)
        let denied = try registry.counter("denied", labels: ["reason", "tenant"])
        let gauge = try registry.gauge("g")
        let h = try registry.histogram("h", buckets: [0.5, 1])
        denied.increment(labels: "expired", "a-tenant-with-a-long-name")
        denied.increment(by: 3, labels: ["x", ""])
        gauge.set(5)
        h.record(.milliseconds(1500))
        #expect(throws: ConfigError.self) { try registry.counter("bad") }
        #expect(
            fake4.withLock { $0.defined } == ["auth 0 denied [reason,tenant] []", "auth 1 g [] []", "auth 2 h [] [0.5,1.0]"])
        #expect(
            fake4.withLock { $0.records } == [
                "record 1 [expired,a-tenant-with-a-long-name] 1.0", "record 1 [x,] 3.0", "set 2 [] 5.0", "record 3 [] 1.5",
            ])
    }

    @Test func aHostWithoutTheABI4CallbacksStillWorks() throws {
        var t = CHooksTests.table()
        let host = try LiveHost(table: &t)
        #expect(throws: HostError.notFound) { try host.streamInfo(StreamID(1)) }
        #expect(try host.requestState(StreamID(1)) == nil)
        let c = try MetricsRegistry(filterName: "f", host: host).counter("c")
        c.increment()
    }
}

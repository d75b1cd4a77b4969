import CEnvoySwiftABI
import EnvoySwift
@testable import Filters
import Glibc
import Synchronization
import Testing

/// What the fake host holds: headers, the body, the reply, log lines. Bytes it hands out are
/// copies that live until the next reset (borrowed, as the ABI says); kept as addresses so the
/// state stays Sendable.
struct FakeHost: Sendable {
    var request: [(String, String)] = []
    var response: [(String, String)] = []
    var body: [UInt8] = []
    var reply: (status: Int32, headers: [String], body: String)?
    var logs: [String] = []
    var wakes = 0
    var resumes: [(stream: UInt64, status: UInt32)] = []
    var resumeResult: Int32 = 0
    var callouts: [(stream: UInt64, line: String, token: UInt64)] = []
    var calloutResult: Int32 = 0
    var jobStreams: [UInt64] = []
    var arena: [Int] = []

    mutating func keep(_ s: String) -> envoy_swift_bytes_t {
        let p = strdup(s)!
        arena.append(Int(bitPattern: p))
        return envoy_swift_bytes_t(ptr: p, length: strlen(p))
    }

    mutating func reset() {
        for a in arena { free(UnsafeMutableRawPointer(bitPattern: a)) }
        self = FakeHost()
    }
}

let fake = Mutex(FakeHost())

func fakeString(_ b: envoy_swift_bytes_t) -> String {
    guard let p = b.ptr else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: p, count: b.length), as: UTF8.self)
}

/// The exported C hooks, called as the host calls them, with a host table built in Swift: proves
/// the C boundary (pointers, statuses, error strings) without a proxy.
@Suite(.serialized) struct CHooksTests {
    static func table(version: UInt32 = UInt32(ENVOY_SWIFT_ABI_VERSION)) -> envoy_swift_host_t {
        var t = envoy_swift_host_t()
        t.abi_version = version
        t.size = MemoryLayout<envoy_swift_host_t>.size
        t.header_count = { _, map, count in
            fake.withLock { f in count?.pointee = map == ENVOY_SWIFT_REQUEST_HEADERS ? f.request.count : f.response.count }
            return 0
        }
        t.header_at = { _, map, i, name, value in
            fake.withLock { f in
                let h = map == ENVOY_SWIFT_REQUEST_HEADERS ? f.request : f.response
                guard i < h.count else { return ENVOY_SWIFT_ERR_NOT_FOUND.rawValue }
                name?.pointee = f.keep(h[i].0)
                value?.pointee = f.keep(h[i].1)
                return 0
            }
        }
        t.header_get = { _, map, name, nth, value in
            let n = fakeString(name).lowercased()
            return fake.withLock { f in
                let h = (map == ENVOY_SWIFT_REQUEST_HEADERS ? f.request : f.response).filter { $0.0.lowercased() == n }
                guard nth < h.count else { return ENVOY_SWIFT_ERR_NOT_FOUND.rawValue }
                value?.pointee = f.keep(h[nth].1)
                return 0
            }
        }
        t.header_set = { _, map, name, value in
            let (n, v) = (fakeString(name), fakeString(value))
            fake.withLock { f in
                if map == ENVOY_SWIFT_REQUEST_HEADERS {
                    f.request.removeAll { $0.0.lowercased() == n.lowercased() }
                    f.request.append((n, v))
                } else {
                    f.response.removeAll { $0.0.lowercased() == n.lowercased() }
                    f.response.append((n, v))
                }
            }
            return 0
        }
        t.header_add = { _, map, name, value in
            let (n, v) = (fakeString(name), fakeString(value))
            fake.withLock { f in
                if map == ENVOY_SWIFT_REQUEST_HEADERS { f.request.append((n, v)) } else { f.response.append((n, v)) }
            }
            return 0
        }
        t.header_remove = { _, map, name in
            let n = fakeString(name).lowercased()
            fake.withLock { f in
                if map == ENVOY_SWIFT_REQUEST_HEADERS {
                    f.request.removeAll { $0.0.lowercased() == n }
                } else {
                    f.response.removeAll { $0.0.lowercased() == n }
                }
            }
            return 0
        }
        t.body_get = { _, _, out in
            fake.withLock { f in out?.pointee = f.keep(String(decoding: f.body, as: UTF8.self)) }
            return 0
        }
        t.body_append = { _, _, data in
            let d = Array(UnsafeRawBufferPointer(start: data.ptr, count: data.length))
            fake.withLock { $0.body += d }
            return 0
        }
        t.body_prepend = { _, _, data in
            let d = Array(UnsafeRawBufferPointer(start: data.ptr, count: data.length))
            fake.withLock { $0.body.insert(contentsOf: d, at: 0) }
            return 0
        }
        t.body_replace = { _, _, data in
            let d = Array(UnsafeRawBufferPointer(start: data.ptr, count: data.length))
            fake.withLock { $0.body = d }
            return 0
        }
        t.body_drain = { _, _, n in
            fake.withLock { $0.body.removeFirst(min(n, $0.body.count)) }
            return 0
        }
        t.attribute_get = { _, attr, out in
            fake.withLock { f in
                switch attr {
                case ENVOY_SWIFT_ATTR_METHOD: out?.pointee = f.keep("GET")
                case ENVOY_SWIFT_ATTR_PATH: out?.pointee = f.keep("/p")
                case ENVOY_SWIFT_ATTR_QUERY: out?.pointee = f.keep("backend=canary")
                default: return ENVOY_SWIFT_ERR_NOT_FOUND.rawValue
                }
                return 0
            }
        }
        t.send_local_reply = { _, status, names, values, count, body in
            var headers: [String] = []
            for i in 0..<count {
                headers.append(fakeString(names![i]) + ": " + fakeString(values![i]))
            }
            let b = fakeString(body)
            fake.withLock { $0.reply = (status, headers, b) }
            return 0
        }
        t.log = { level, filter, message in
            let line = "\(level.rawValue) [\(fakeString(filter))] \(fakeString(message))"
            fake.withLock { $0.logs.append(line) }
        }
        t.log_level = { ENVOY_SWIFT_LOG_DEBUG }
        t.worker_count = 1
        t.wake = { _ in fake.withLock { $0.wakes += 1 } }
        t.resume = { stream, status in
            fake.withLock { f in
                f.resumes.append((stream, status.rawValue))
                return f.resumeResult
            }
        }
        t.job_stream = { stream in fake.withLock { $0.jobStreams.append(stream) } }
        t.callout = { stream, request, token in
            let r = request!.pointee
            var line = "\(fakeString(r.cluster)) \(fakeString(r.method)) \(fakeString(r.path)) timeout=\(r.timeout_ms)"
            for i in 0..<r.header_count {
                line += " \(fakeString(r.header_names![i]))=\(fakeString(r.header_values![i]))"
            }
            if r.body.length > 0 { line += " body=\(fakeString(r.body))" }
            return fake.withLock { f in
                f.callouts.append((stream, line, token))
                return f.calloutResult
            }
        }
        return t
    }

    /// The host table must outlive the library (the ABI says so): one, allocated once.
    // Written once here, then only read (by the SDK); the suite is serialized.
    nonisolated(unsafe) static let hostTable: UnsafeMutablePointer<envoy_swift_host_t> = {
        let p = UnsafeMutablePointer<envoy_swift_host_t>.allocate(capacity: 1)
        p.initialize(to: table())
        return p
    }()

    init() {
        fake.withLock { $0.reset() }
        #expect(envoySwiftProgramInit(Self.hostTable) == 0)
    }

    static func cString(_ a: [CChar]) -> String {
        String(decoding: a.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func bytes(_ s: StaticString) -> envoy_swift_bytes_t {
        s.utf8Start.withMemoryRebound(to: CChar.self, capacity: s.utf8CodeUnitCount) {
            envoy_swift_bytes_t(ptr: $0, length: s.utf8CodeUnitCount)
        }
    }

    func configNew(_ plugin: StaticString, _ json: StaticString, errlen: Int = 256) -> (UnsafeMutableRawPointer?, String) {
        var err = [CChar](repeating: 0x7F, count: max(errlen, 1))
        let config = envoySwiftFilterConfigNew(Self.bytes("f1"), Self.bytes(plugin), Self.bytes(json), &err, errlen)
        return (config, errlen > 0 ? Self.cString(err) : "")
    }

    // MARK: program init

    @Test func programInitFindsTheRegistrationFunction() {
        let logs = fake.withLock { $0.logs }
        #expect(logs.contains { $0.hasPrefix("0 [] ") && $0.contains("Swift filters: ") && $0.contains("header_rewrite") })
    }

    @Test func programInitRefusesABadTable() {
        #expect(envoySwiftProgramInit(nil) == -1)
        var other = Self.table(version: 1)
        #expect(envoySwiftProgramInit(&other) == -1)
        var small = Self.table()
        small.size = 16
        #expect(envoySwiftProgramInit(&small) == -1)
        var noCalloutRoom = Self.table()
        noCalloutRoom.size = MemoryLayout<envoy_swift_host_t>.offset(of: \envoy_swift_host_t.callout)!
        #expect(envoySwiftProgramInit(&noCalloutRoom) == -1)
        var holes = Self.table()
        holes.body_drain = nil
        #expect(envoySwiftProgramInit(&holes) == -1)
        #expect(fake.withLock { $0.logs }.contains { $0.contains("NULL callback") })
        var noResume = Self.table()
        noResume.resume = nil
        #expect(envoySwiftProgramInit(&noResume) == -1)
        var noCallout = Self.table()
        noCallout.callout = nil
        #expect(envoySwiftProgramInit(&noCallout) == -1)
        var noWorkers = Self.table()
        noWorkers.worker_count = 0
        #expect(envoySwiftProgramInit(&noWorkers) == -1)
        #expect(fake.withLock { $0.logs }.contains { $0.contains("worker_count 0") })
    }

    // MARK: config

    @Test func aBadConfigReturnsNULLAndAReason() {
        let (c1, e1) = configNew("bearer_auth", #"{"token": ""}"#)
        #expect(c1 == nil)
        #expect(e1 == "token must not be empty")
        let (c2, e2) = configNew("no_such_plugin", "{}")
        #expect(c2 == nil)
        #expect(e2.hasPrefix("unknown plugin \"no_such_plugin\""))
        let (c3, e3) = configNew("header_rewrite", #"{"request": 5}"#)
        #expect(c3 == nil)
        #expect(e3 == "plugin_config.request: expected an object, found a number")
        let (c4, e4) = configNew("header_rewrite", "{oops")
        #expect(c4 == nil)
        #expect(e4.hasPrefix("plugin_config is not valid JSON"))
    }

    @Test func theReasonIsTruncatedToTheBuffer() {
        #expect(configNew("no_such_plugin", "{}", errlen: 8).1 == "unknown")
        #expect(configNew("no_such_plugin", "{}", errlen: 1).1 == "")
        #expect(configNew("no_such_plugin", "{}", errlen: 0).0 == nil)
        #expect(envoySwiftFilterConfigNew(Self.bytes("f"), Self.bytes("nope"), Self.bytes("{}"), nil, 100) == nil)
        // A cut never splits a UTF-8 sequence: "realm must…" has none, so use a name with one.
        var err = [CChar](repeating: 0, count: 17)
        _ = envoySwiftFilterConfigNew(Self.bytes("f"), Self.bytes("plugin-é"), Self.bytes("{}"), &err, 17)
        #expect(Self.cString(err) == "unknown plugin \"")
        _ = envoySwiftFilterConfigNew(Self.bytes("f"), Self.bytes("é"), Self.bytes("{}"), &err, 18)
        #expect(Self.cString(err) == "unknown plugin \"")
    }

    // MARK: streams

    /// A filter that wraps another and calls the inner one's default callback still implements the
    /// hook itself: it must never be told to the host as left out (CONTINUE_SKIP).
    struct Wrapper: HTTPFilter {
        var inner: Noop
        init(config: NoConfig, context: FilterContext) { inner = Noop(config: config, context: context) }
        mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
            _ = try inner.onRequestHeaders(headers, endOfStream: endOfStream)
            try headers.set("x-wrapped", "1")
            return .continue
        }
    }

    @Test func aWrapperCallingAnInnerDefaultIsNotSkipped() throws {
        FilterRegistry.register(Wrapper.self, as: "test_wrapper")
        fake.withLock { $0.request = [("Host", "t")] }
        let (config, err) = configNew("test_wrapper", "{}")
        let c = try #require(config, "\(err)")
        let f = try #require(envoySwiftFilterNew(c, 9, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == ENVOY_SWIFT_STATUS_CONTINUE)
        #expect(fake.withLock { $0.request.map { "\($0.0): \($0.1)" } } == ["Host: t", "x-wrapped: 1"])
        // Its own left-out hooks still are.
        #expect(envoySwiftFilterOnResponseHeaders(f, true) == ENVOY_SWIFT_STATUS_CONTINUE_SKIP)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aFilterRunsThroughTheHooks() throws {
        fake.withLock { $0.request = [("Host", "t"), ("x-drop", "1")] }
        let (config, err) = configNew(
            "header_rewrite", #"{"request": {"set": {"x-set": "one"}, "remove": ["x-drop"]}, "response": {"add": {"x-r": "1"}}}"#)
        let c = try #require(config, "\(err)")
        let f = try #require(envoySwiftFilterNew(c, 7, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == ENVOY_SWIFT_STATUS_CONTINUE)
        #expect(fake.withLock { $0.request.map { "\($0.0): \($0.1)" } } == ["Host: t", "x-set: one"])
        #expect(envoySwiftFilterOnResponseHeaders(f, true) == ENVOY_SWIFT_STATUS_CONTINUE)
        #expect(fake.withLock { $0.response.map { "\($0.0): \($0.1)" } } == ["x-r: 1"])
        // The hooks header_rewrite leaves out ran the SDK's defaults: the host is told it may skip them.
        #expect(envoySwiftFilterOnRequestBody(f, true) == ENVOY_SWIFT_STATUS_CONTINUE_SKIP)
        #expect(envoySwiftFilterOnRequestTrailers(f) == ENVOY_SWIFT_STATUS_CONTINUE_SKIP)
        #expect(envoySwiftFilterOnResponseBody(f, true) == ENVOY_SWIFT_STATUS_CONTINUE_SKIP)
        #expect(envoySwiftFilterOnResponseTrailers(f) == ENVOY_SWIFT_STATUS_CONTINUE_SKIP)
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aLocalReplyCrossesAsStatusAndCallback() throws {
        let c = try #require(configNew("bearer_auth", #"{"token": "s3cret"}"#).0)
        let f = try #require(envoySwiftFilterNew(c, 8, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == ENVOY_SWIFT_STATUS_LOCAL_REPLY)
        let reply = try #require(fake.withLock { $0.reply })
        #expect(reply.status == 401)
        #expect(reply.headers == ["www-authenticate: Bearer realm=\"envoy-swift\"", "content-type: text/plain"])
        #expect(reply.body == "unauthorized\n")
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func aThrownErrorIsStatusErrorAndALogLine() throws {
        let c = try #require(configNew("throws", "null").0)
        let f = try #require(envoySwiftFilterNew(c, 9, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, false) == ENVOY_SWIFT_STATUS_ERROR)
        #expect(fake.withLock { $0.logs }.contains("3 [f1] request headers failed: deliberate failure"))
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func theBodyCrossesToo() throws {
        fake.withLock { f in
            f.response = [("content-type", "text/plain")]
            f.body = Array("an upstream body from upstream".utf8)
        }
        let c = try #require(configNew("body_replace", #"{"find": "upstream", "replace": "UP"}"#).0)
        let f = try #require(envoySwiftFilterNew(c, 10, 0))
        #expect(envoySwiftFilterOnResponseHeaders(f, false) == ENVOY_SWIFT_STATUS_STOP_AND_BUFFER)
        #expect(envoySwiftFilterOnResponseBody(f, true) == ENVOY_SWIFT_STATUS_CONTINUE)
        #expect(fake.withLock { String(decoding: $0.body, as: UTF8.self) } == "an UP body from UP")
        envoySwiftFilterOnStreamComplete(f)
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func queryAndAttributesCross() throws {
        fake.withLock { $0.request = [("x-route", "spoofed")] }
        let c = try #require(configNew("route_by_query", "null").0)
        let f = try #require(envoySwiftFilterNew(c, 11, 0))
        #expect(envoySwiftFilterOnRequestHeaders(f, true) == ENVOY_SWIFT_STATUS_CONTINUE)
        #expect(fake.withLock { $0.request.map { "\($0.0): \($0.1)" } } == ["x-route: canary"])
        envoySwiftFilterDestroy(f)
        envoySwiftFilterConfigDestroy(c)
    }

    @Test func nullPointersAreHarmless() {
        #expect(envoySwiftFilterNew(nil, 1, 0) == nil)
        #expect(envoySwiftFilterOnRequestHeaders(nil, true) == ENVOY_SWIFT_STATUS_ERROR)
        #expect(envoySwiftFilterOnResponseBody(nil, true) == ENVOY_SWIFT_STATUS_ERROR)
        #expect(envoySwiftFilterOnRequestTrailers(nil) == ENVOY_SWIFT_STATUS_ERROR)
        envoySwiftFilterOnStreamComplete(nil)
        envoySwiftFilterDestroy(nil)
        envoySwiftFilterConfigDestroy(nil)
    }
}

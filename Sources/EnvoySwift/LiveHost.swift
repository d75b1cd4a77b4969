import CEnvoySwiftABI

/// The real host: each method is one call through the `envoy_swift_host_t` table the host gave
/// `envoy_swift_program_init`.
///
/// Callbacks appended to the ABI after the first table of this version (`job_stream`, and ABI 4's
/// stream info, state and metrics callbacks) are optional: a host whose `size` stops short of one,
/// or leaves it NULL, simply is not told, or answers as a host without the feature (no stream info,
/// no state, metrics that record nothing).
///
/// `@unchecked Sendable` invariant: the table is copied once at init and never changes; the ABI
/// keeps the functions valid for the life of the process, and the host itself checks that each
/// call comes from the stream's thread (a wrong thread answers ``HostError/gone``).
final class LiveHost: WorkerPoolHost, @unchecked Sendable {
    typealias Bytes = envoy_swift_bytes_t
    typealias Map = envoy_swift_header_map_t
    typealias Body = envoy_swift_body_t

    private let headerCountFn: @convention(c) (UInt64, Map, UnsafeMutablePointer<Int>?) -> Int32
    private let headerAtFn: @convention(c) (UInt64, Map, Int, UnsafeMutablePointer<Bytes>?, UnsafeMutablePointer<Bytes>?) -> Int32
    private let headerGetFn: @convention(c) (UInt64, Map, Bytes, Int, UnsafeMutablePointer<Bytes>?) -> Int32
    private let headerSetFn: @convention(c) (UInt64, Map, Bytes, Bytes) -> Int32
    private let headerAddFn: @convention(c) (UInt64, Map, Bytes, Bytes) -> Int32
    private let headerRemoveFn: @convention(c) (UInt64, Map, Bytes) -> Int32
    private let bodyGetFn: @convention(c) (UInt64, Body, UnsafeMutablePointer<Bytes>?) -> Int32
    private let bodyAppendFn: @convention(c) (UInt64, Body, Bytes) -> Int32
    private let bodyPrependFn: @convention(c) (UInt64, Body, Bytes) -> Int32
    private let bodyReplaceFn: @convention(c) (UInt64, Body, Bytes) -> Int32
    private let bodyDrainFn: @convention(c) (UInt64, Body, Int) -> Int32
    private let attributeGetFn: @convention(c) (UInt64, envoy_swift_attribute_t, UnsafeMutablePointer<Bytes>?) -> Int32
    private let sendLocalReplyFn: @convention(c) (UInt64, Int32, UnsafePointer<Bytes>?, UnsafePointer<Bytes>?, Int, Bytes) -> Int32
    private let logFn: @convention(c) (envoy_swift_log_level_t, Bytes, Bytes) -> Void
    private let logLevelFn: @convention(c) () -> envoy_swift_log_level_t
    private let wakeFn: @convention(c) (UInt32) -> Void
    private let resumeFn: @convention(c) (UInt64, envoy_swift_status_t) -> Int32
    private let calloutFn: @convention(c) (UInt64, UnsafePointer<envoy_swift_callout_request_t>?, UInt64) -> Int32
    /// `job_stream`, when the host's table has it.
    private let jobStreamFn: (@convention(c) (UInt64) -> Void)?
    // ABI 4, each optional as job_stream is.
    private let streamInfoFn: (@convention(c) (UInt64, UnsafeMutablePointer<envoy_swift_stream_info_t>?) -> Int32)?
    private let stateGetFn: (@convention(c) (UInt64, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32)?
    private let stateSetFn: (@convention(c) (UInt64, UnsafeMutableRawPointer?) -> Int32)?
    private let stateLogFn: (@convention(c) (UInt64, Bytes, Bytes) -> Int32)?
    private let metricDefineFn:
        (@convention(c) (
            Bytes, envoy_swift_metric_kind_t, Bytes, UnsafePointer<Bytes>?, Int, UnsafePointer<Double>?, Int,
            UnsafeMutablePointer<UInt32>?
        ) -> Int32)?
    let metricRecordFn: MetricHandle.RecordFn?
    let metricSetFn: MetricHandle.RecordFn?

    /// The table size a host must provide: everything up to `callout`. Later callbacks are optional.
    static let requiredSize = MemoryLayout<envoy_swift_host_t>.offset(of: \envoy_swift_host_t.job_stream)!

    /// How many workers the host runs (at least one).
    let workerCount: Int
    /// One task executor per worker, for the async filters.
    let workers: WorkerPool

    /// Copies the host's table; fails with the reason when the host speaks another ABI version,
    /// provides a table smaller than ``requiredSize``, or leaves a required callback out.
    /// - Parameter table: the table from `envoy_swift_program_init`.
    init(table: UnsafePointer<envoy_swift_host_t>) throws(ConfigError) {
        // Read the version and size before the rest: an older host's table may be shorter.
        let version = table.pointer(to: \.abi_version)!.pointee
        let size = table.pointer(to: \.size)!.pointee
        guard version == UInt32(ENVOY_SWIFT_ABI_VERSION) else {
            throw ConfigError("the host speaks ABI version \(version), this library \(ENVOY_SWIFT_ABI_VERSION)")
        }
        guard size >= Self.requiredSize else {
            throw ConfigError("the host's callback table is \(size) bytes, this library needs \(Self.requiredSize)")
        }
        // Copy only the `size` bytes the host has; the optional callbacks past them stay NULL.
        var t = envoy_swift_host_t()
        withUnsafeMutableBytes(of: &t) { out in
            out.copyMemory(from: UnsafeRawBufferPointer(start: table, count: min(size, out.count)))
        }
        guard let headerCount = t.header_count, let headerAt = t.header_at, let headerGet = t.header_get,
            let headerSet = t.header_set, let headerAdd = t.header_add, let headerRemove = t.header_remove,
            let bodyGet = t.body_get, let bodyAppend = t.body_append, let bodyPrepend = t.body_prepend,
            let bodyReplace = t.body_replace, let bodyDrain = t.body_drain, let attributeGet = t.attribute_get,
            let sendLocalReply = t.send_local_reply, let log = t.log, let logLevel = t.log_level,
            let wake = t.wake, let resume = t.resume, let callout = t.callout
        else {
            throw ConfigError("the host's callback table has a NULL callback")
        }
        guard t.worker_count > 0 else {
            throw ConfigError("the host's callback table has worker_count 0")
        }
        headerCountFn = headerCount
        headerAtFn = headerAt
        headerGetFn = headerGet
        headerSetFn = headerSet
        headerAddFn = headerAdd
        headerRemoveFn = headerRemove
        bodyGetFn = bodyGet
        bodyAppendFn = bodyAppend
        bodyPrependFn = bodyPrepend
        bodyReplaceFn = bodyReplace
        bodyDrainFn = bodyDrain
        attributeGetFn = attributeGet
        sendLocalReplyFn = sendLocalReply
        logFn = log
        logLevelFn = logLevel
        wakeFn = wake
        resumeFn = resume
        calloutFn = callout
        jobStreamFn = t.job_stream
        streamInfoFn = t.stream_info
        stateGetFn = t.state_get
        stateSetFn = t.state_set
        stateLogFn = t.state_log
        metricDefineFn = t.metric_define
        metricRecordFn = t.metric_record
        metricSetFn = t.metric_set
        workerCount = Int(t.worker_count)
        var tellJobStream: (@Sendable (StreamID?) -> Void)?
        if let jobStream = t.job_stream {
            tellJobStream = { stream in jobStream(stream?.rawValue ?? 0) }
        }
        // The C host forgets the stream when envoy_swift_worker_run returns: no call after a batch.
        workers = WorkerPool(
            count: Int(t.worker_count), wake: { executor in wake(UInt32(executor.worker)) }, jobStream: tellJobStream,
            tellsNoneAfterRun: false)
    }

    func headerCount(_ stream: StreamID, _ map: HeaderMapKind) throws(HostError) -> Int {
        var n = 0
        try check(headerCountFn(stream.rawValue, Map(map.rawValue), &n))
        return n
    }

    func header(_ stream: StreamID, _ map: HeaderMapKind, at index: Int) throws(HostError) -> HeaderField {
        var name = Bytes(), value = Bytes()
        try check(headerAtFn(stream.rawValue, Map(map.rawValue), index, &name, &value))
        return HeaderField(Self.string(name), Self.string(value))
    }

    func headerValue(_ stream: StreamID, _ map: HeaderMapKind, name: String, nth: Int) throws(HostError) -> String? {
        var value = Bytes()
        let rc = Self.withBytes(name) { n in headerGetFn(stream.rawValue, Map(map.rawValue), n, nth, &value) }
        if rc == ENVOY_SWIFT_ERR_NOT_FOUND.rawValue { return nil }
        try check(rc)
        return Self.string(value)
    }

    func setHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String, value: String) throws(HostError) {
        try check(Self.withBytes(name, value) { n, v in headerSetFn(stream.rawValue, Map(map.rawValue), n, v) })
    }

    func addHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String, value: String) throws(HostError) {
        try check(Self.withBytes(name, value) { n, v in headerAddFn(stream.rawValue, Map(map.rawValue), n, v) })
    }

    func removeHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String) throws(HostError) {
        try check(Self.withBytes(name) { n in headerRemoveFn(stream.rawValue, Map(map.rawValue), n) })
    }

    func withBody<R>(_ stream: StreamID, _ body: BodyKind, _ read: (UnsafeRawBufferPointer) -> R) throws(HostError) -> R {
        var out = Bytes()
        try check(bodyGetFn(stream.rawValue, Body(body.rawValue), &out))
        return read(UnsafeRawBufferPointer(start: out.ptr, count: out.ptr == nil ? 0 : out.length))
    }

    func appendBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError) {
        try check(bodyAppendFn(stream.rawValue, Body(body.rawValue), Self.bytes(bytes)))
    }

    func prependBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError) {
        try check(bodyPrependFn(stream.rawValue, Body(body.rawValue), Self.bytes(bytes)))
    }

    func replaceBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError) {
        try check(bodyReplaceFn(stream.rawValue, Body(body.rawValue), Self.bytes(bytes)))
    }

    func drainBody(_ stream: StreamID, _ body: BodyKind, count: Int) throws(HostError) {
        try check(bodyDrainFn(stream.rawValue, Body(body.rawValue), count))
    }

    func attribute(_ stream: StreamID, _ attribute: StreamAttribute) throws(HostError) -> String? {
        var out = Bytes()
        let rc = attributeGetFn(stream.rawValue, envoy_swift_attribute_t(attribute.rawValue), &out)
        if rc == ENVOY_SWIFT_ERR_NOT_FOUND.rawValue { return nil }
        try check(rc)
        return Self.string(out)
    }

    func sendLocalReply(_ stream: StreamID, _ reply: LocalReply) throws(HostError) {
        guard let status = Int32(exactly: reply.status) else { throw .invalid }
        // Names and values are laid out in one buffer so their pointers stay put during the call.
        var storage: [UInt8] = []
        storage.reserveCapacity(reply.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        var spans: [(Int, Int, Int, Int)] = []
        spans.reserveCapacity(reply.headers.count)
        for field in reply.headers {
            let n = storage.count
            storage.append(contentsOf: field.name.utf8)
            let v = storage.count
            storage.append(contentsOf: field.value.utf8)
            spans.append((n, v - n, v, storage.count - v))
        }
        let rc = storage.withUnsafeBytes { raw in
            let base = raw.baseAddress ?? Self.emptyPointer
            let names = spans.map { Bytes(ptr: (base + $0.0).assumingMemoryBound(to: CChar.self), length: $0.1) }
            let values = spans.map { Bytes(ptr: (base + $0.2).assumingMemoryBound(to: CChar.self), length: $0.3) }
            return reply.body.withUnsafeBytes { body in
                sendLocalReplyFn(stream.rawValue, status, names, values, spans.count, Self.bytes(body))
            }
        }
        try check(rc)
    }

    func log(_ level: LogLevel, filter: String, message: String) {
        Self.withBytes(filter, message) { f, m in logFn(envoy_swift_log_level_t(level.rawValue), f, m) }
    }

    var logLevel: LogLevel {
        LogLevel(rawValue: logLevelFn().rawValue) ?? .error
    }

    func wake(worker: Int) {
        wakeFn(UInt32(truncatingIfNeeded: worker))
    }

    func resume(_ stream: StreamID, _ status: HookStatus) throws(HostError) {
        try check(resumeFn(stream.rawValue, envoy_swift_status_t(status.rawValue)))
    }

    func jobStream(_ stream: StreamID?) {
        jobStreamFn?(stream?.rawValue ?? 0)
    }

    func callout(_ stream: StreamID, _ request: HTTPCallout, token: UInt64) throws(HostError) {
        // Every string is laid out in one buffer so the pointers stay put during the call.
        var storage: [UInt8] = []
        var spans: [(Int, Int)] = []
        spans.reserveCapacity(3 + 2 * request.headers.count)
        func put(_ s: String) {
            let start = storage.count
            storage.append(contentsOf: s.utf8)
            spans.append((start, storage.count - start))
        }
        put(request.cluster)
        put(request.method)
        put(request.path)
        for field in request.headers {
            put(field.name)
            put(field.value)
        }
        let rc = storage.withUnsafeBytes { raw in
            let base = raw.baseAddress ?? Self.emptyPointer
            let all = spans.map { Bytes(ptr: (base + $0.0).assumingMemoryBound(to: CChar.self), length: $0.1) }
            let names = stride(from: 3, to: all.count, by: 2).map { all[$0] }
            let values = stride(from: 4, to: all.count, by: 2).map { all[$0] }
            return names.withUnsafeBufferPointer { n in
                values.withUnsafeBufferPointer { v in
                    request.body.withUnsafeBytes { body in
                        var c = envoy_swift_callout_request_t(
                            cluster: all[0], method: all[1], path: all[2],
                            header_names: n.baseAddress, header_values: v.baseAddress, header_count: n.count,
                            body: Self.bytes(body), timeout_ms: request.timeoutMilliseconds)
                        return calloutFn(stream.rawValue, &c, token)
                    }
                }
            }
        }
        try check(rc)
    }

    // MARK: ABI 4

    func streamInfo(_ stream: StreamID) throws(HostError) -> StreamInfo {
        guard let streamInfoFn else { throw .notFound }
        var raw = envoy_swift_stream_info_t()
        try check(streamInfoFn(stream.rawValue, &raw))
        return StreamInfo(
            routeName: try attribute(stream, .routeName), clusterName: try attribute(stream, .cluster),
            upstreamHost: try attribute(stream, .upstreamHost), requestBodyBytes: raw.request_body_bytes,
            responseBodyBytes: raw.response_body_bytes, startTimeUnixMicroseconds: raw.start_unix_us,
            timeToUpstreamFirstByte: raw.upstream_first_byte_us == UInt64.max
                ? nil : .microseconds(Int64(clamping: raw.upstream_first_byte_us)),
            duration: .microseconds(Int64(clamping: raw.duration_us)),
            responseFlags: ResponseFlags(rawValue: raw.response_flags),
            responseCode: raw.response_code == 0 ? nil : Int(raw.response_code))
    }

    func requestState(_ stream: StreamID) throws(HostError) -> UnsafeMutableRawPointer? {
        guard let stateGetFn else { return nil }
        var out: UnsafeMutableRawPointer?
        try check(stateGetFn(stream.rawValue, &out))
        return out
    }

    func setRequestState(_ stream: StreamID, _ state: UnsafeMutableRawPointer) throws(HostError) {
        guard let stateSetFn else { throw .state }
        try check(stateSetFn(stream.rawValue, state))
    }

    func logState(_ stream: StreamID, name: String, value: String) throws(HostError) {
        guard let stateLogFn else { return }
        try check(Self.withBytes(name, value) { n, v in stateLogFn(stream.rawValue, n, v) })
    }

    func defineMetric(filter: String, kind: MetricKind, name: String, labels: [String], buckets: [Double])
        throws(HostError) -> UInt32
    {
        guard let metricDefineFn else { return unrecordedMetric }
        var id: UInt32 = 0
        let rc = MetricHandle.withLabels(
            count: labels.count, bytes: labels.reduce(0) { $0 + $1.utf8.count }, { p in for l in labels { p.put(l) } }
        ) { names in
            buckets.withUnsafeBufferPointer { b in
                Self.withBytes(filter, name) { f, n in
                    metricDefineFn(
                        f, envoy_swift_metric_kind_t(kind.rawValue), n, names.baseAddress, names.count, b.baseAddress, b.count,
                        &id)
                }
            }
        }
        try check(rc)
        return id
    }

    func recordMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<Bytes>, value: Double) throws(HostError) {
        guard let metricRecordFn, id != unrecordedMetric else { return }
        try check(metricRecordFn(id, labelValues.baseAddress, labelValues.count, value))
    }

    func setMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<Bytes>, value: Double) throws(HostError) {
        guard let metricSetFn, id != unrecordedMetric else { return }
        try check(metricSetFn(id, labelValues.baseAddress, labelValues.count, value))
    }

    // MARK: bytes across the boundary

    /// A valid pointer for empty data: the host may memcpy from it, and memcpy(NULL, 0) is UB.
    static var emptyPointer: UnsafeRawPointer { UnsafeRawPointer(("" as StaticString).utf8Start) }

    private func check(_ rc: Int32) throws(HostError) {
        if let error = HostError(result: rc) { throw error }
    }

    static func bytes(_ p: UnsafeRawBufferPointer) -> Bytes {
        Bytes(ptr: (p.baseAddress ?? emptyPointer).assumingMemoryBound(to: CChar.self), length: p.count)
    }

    static func string(_ b: Bytes) -> String {
        guard let p = b.ptr, b.length > 0 else { return "" }
        let raw = UnsafeRawBufferPointer(start: p, count: b.length)
        // Both repair invalid UTF-8 the same way; each is the faster one on its side of the
        // small-string limit (15 bytes on 64-bit), by about 60 instructions (bench-crossing).
        if b.length <= 15 {
            return String(unsafeUninitializedCapacity: b.length) { out in
                UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
                return raw.count
            }
        }
        return String(decoding: raw, as: UTF8.self)
    }

    static func withBytes<R>(_ s: String, _ body: (Bytes) -> R) -> R {
        // Native strings are contiguous UTF-8: borrow them. Only another kind (a bridged or
        // shared string) is copied, by withUTF8 on a mutable copy.
        if let r = s.utf8.withContiguousStorageIfAvailable({ body(bytes(UnsafeRawBufferPointer($0))) }) {
            return r
        }
        var s = s
        return s.withUTF8 { body(bytes(UnsafeRawBufferPointer($0))) }
    }

    static func withBytes<R>(_ a: String, _ b: String, _ body: (Bytes, Bytes) -> R) -> R {
        withBytes(a) { x in withBytes(b) { y in body(x, y) } }
    }
}

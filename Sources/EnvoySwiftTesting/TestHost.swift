import CEnvoySwiftABI
import Dispatch
import EnvoySwift
import Synchronization

/// An in-memory host: the test double of the C host, implementing ``FilterHost`` with the same
/// rules (case-insensitive names, `set` replaces every value with one at the end, CR/LF/NUL and
/// non-token names refused, response maps only once there is a response, request headers
/// read-only once they went upstream, bodies only inside a body callback, every call outside a
/// callback answered with ``HostError/gone``).
///
/// Each worker is a serial dispatch queue standing in for a worker thread: ``TestStream`` calls
/// every hook of a stream on its worker, and the worker runs the async filters' jobs when they wake
/// it, as the proxy's loop does. Before each such job the worker tells the host which stream it
/// works for, and "none" after the run's jobs, as in the proxy (``jobStream(_:)``). Call-outs go to
/// ``calloutHandler``.
///
/// You rarely use it directly: ``FilterTester`` creates one, and ``TestStream`` drives it. Read
/// ``logs`` to check what a filter logged, ``callouts`` for the call-outs it made,
/// ``jobStreamCalls`` and ``currentJobStream`` for the stream its async jobs were attributed to.
public final class TestHost: FilterHost, WorkerPoolHost {
    /// Answers a call-out: return the response, or throw an ``HTTPCalloutError`` (any other error
    /// is an ``HTTPCalloutError/upstream(_:)`` failure). It runs in its own task; past the
    /// call-out's timeout the filter gets ``HTTPCalloutError/timeout(_:)`` instead.
    public typealias CalloutHandler = @Sendable (HTTPCallout) async throws -> HTTPCalloutResponse

    struct StreamState {
        var maps: [[HeaderField]] = [[], [], [], []]
        var hasResponse = false
        var headersSent = [false, false]
        var trailersSent = [false, false]
        var body: [[UInt8]] = [[], []]
        var bodyValid = [false, false]
        var inHook = false
        var attributes: [StreamAttribute: String] = [:]
        var localReply: LocalReply?
        var worker = 0
        /// Set while a hook of the stream is RUNNING: where its resume goes.
        var running: Mailbox?
        var pendingCallouts: Set<UInt64> = []
        /// What the exchange was, as tests set it (``TestStream/streamInfo``).
        var info = StreamInfo()
        /// The request state's pointer (`state_set`), as a bit pattern; 0 when none.
        var stateSlot: UInt = 0
        /// Values named for the access log (`state_log`).
        var loggedState: [String: String] = [:]
        /// In the stream-complete callback: stream info, attributes and state are still valid.
        var completing = false
        /// How many ``TestStream``s (filters) drive the stream; it closes when the last one ends.
        var owners = 1
    }

    /// One series of a metric: a counter's or gauge's value, a histogram's observations.
    struct Series {
        var value: Double = 0
        var observations: [Double] = []
    }

    struct Metric {
        var definition: MetricDefinition
        var series: [[String]: Series] = [:]
    }

    struct State {
        var streams: [UInt64: StreamState] = [:]
        var nextStream: UInt64 = 1
        var logs: [LogRecord] = []
        var logLevel: LogLevel
        var calloutHandler: CalloutHandler?
        var callouts: [HTTPCallout] = []
        var metrics: [Metric] = []
    }

    private let state: Mutex<State>
    private let queues: [DispatchQueue]
    /// What the workers said about their jobs' streams; apart from `state` because the worker pool,
    /// created before `self`, reports to it.
    private let jobStreams: JobStreamLog
    /// The worker executors of the async filters; each runs its jobs on its worker's queue.
    package let workers: WorkerPool
    /// How many workers (serial queues) the host has.
    public let workerCount: Int

    /// Creates an empty host.
    /// - Parameters:
    ///   - logLevel: the lowest level it records (debug by default, so tests see all).
    ///   - workerCount: how many workers; streams are spread over them.
    public init(logLevel: LogLevel = .debug, workerCount: Int = 1) {
        state = Mutex(State(logLevel: logLevel))
        let queues = (0..<max(1, workerCount)).map { DispatchQueue(label: "envoy-swift.test-worker.\($0)") }
        let jobStreams = JobStreamLog(queues: queues)
        self.queues = queues
        self.jobStreams = jobStreams
        self.workerCount = queues.count
        workers = WorkerPool(
            count: queues.count, wake: { executor in queues[executor.worker].async { executor.runQueued() } },
            jobStream: { stream in jobStreams.record(stream) })
    }

    /// Answers the filters' call-outs; `nil` (the default) makes every call-out fail at once with
    /// ``HTTPCalloutError/unknownCluster(_:)``, as a proxy without clusters would.
    public var calloutHandler: CalloutHandler? {
        get { state.withLock { $0.calloutHandler } }
        set { state.withLock { $0.calloutHandler = newValue } }
    }

    /// Every call-out the filters started so far, oldest first.
    public var callouts: [HTTPCallout] {
        state.withLock { $0.callouts }
    }

    /// Every line logged so far, oldest first.
    public var logs: [LogRecord] {
        state.withLock { $0.logs }
    }

    /// Forgets the lines logged so far.
    public func clearLogs() {
        state.withLock { $0.logs.removeAll() }
    }

    /// Every ``jobStream(_:)`` call so far, oldest first: the stream before each job of an async
    /// callback's task that a worker ran, and `nil` after each worker run's jobs.
    public var jobStreamCalls: [JobStreamCall] {
        jobStreams.calls
    }

    /// On a worker's queue (inside a filter's callback, for example after an `await`), the stream
    /// the worker's last ``jobStream(_:)`` call named: the one the proxy would blame for a crash
    /// here. `nil` after a worker run, before the first job, or off the workers' queues.
    public var currentJobStream: StreamID? {
        jobStreams.current
    }

    /// The lowest level the host records; lower levels are dropped, as by the real host.
    public var logLevel: LogLevel {
        get { state.withLock { $0.logLevel } }
        set { state.withLock { $0.logLevel = newValue } }
    }

    // MARK: FilterHost

    /// See ``FilterHost/headerCount(_:_:)``.
    public func headerCount(_ stream: StreamID, _ map: HeaderMapKind) throws(HostError) -> Int {
        try withMap(stream, map, writing: false) { $0.count }
    }

    /// See ``FilterHost/header(_:_:at:)``.
    public func header(_ stream: StreamID, _ map: HeaderMapKind, at index: Int) throws(HostError) -> HeaderField {
        let field: HeaderField? = try withMap(stream, map, writing: false) { index >= 0 && index < $0.count ? $0[index] : nil }
        guard let field else { throw .notFound }
        return field
    }

    /// See ``FilterHost/headerValue(_:_:name:nth:)``.
    public func headerValue(_ stream: StreamID, _ map: HeaderMapKind, name: String, nth: Int) throws(HostError) -> String? {
        try withMap(stream, map, writing: false) { fields in
            var n = nth
            for f in fields where HeaderField.namesEqual(f.name, name) {
                if n == 0 { return f.value }
                n -= 1
            }
            return nil
        }
    }

    /// See ``FilterHost/setHeader(_:_:name:value:)``.
    public func setHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String, value: String) throws(HostError) {
        try checkField(name, value)
        try withMap(stream, map, writing: true) { fields in
            fields.removeAll { HeaderField.namesEqual($0.name, name) }
            fields.append(HeaderField(name, value))
        }
    }

    /// See ``FilterHost/addHeader(_:_:name:value:)``.
    public func addHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String, value: String) throws(HostError) {
        try checkField(name, value)
        try withMap(stream, map, writing: true) { $0.append(HeaderField(name, value)) }
    }

    /// See ``FilterHost/removeHeader(_:_:name:)``.
    public func removeHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String) throws(HostError) {
        try checkField(name, nil)
        try withMap(stream, map, writing: true) { fields in fields.removeAll { HeaderField.namesEqual($0.name, name) } }
    }

    /// See ``FilterHost/withBody(_:_:_:)``. The bytes are a copy, valid during `read`.
    public func withBody<R>(_ stream: StreamID, _ body: BodyKind, _ read: (UnsafeRawBufferPointer) -> R) throws(HostError) -> R {
        let bytes = try editBody(stream, body) { $0 }
        return bytes.withUnsafeBytes(read)
    }

    /// See ``FilterHost/appendBody(_:_:_:)``.
    public func appendBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError) {
        try editBody(stream, body) { $0.append(contentsOf: bytes) }
    }

    /// See ``FilterHost/prependBody(_:_:_:)``.
    public func prependBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError) {
        try editBody(stream, body) { $0.insert(contentsOf: bytes, at: 0) }
    }

    /// See ``FilterHost/replaceBody(_:_:_:)``.
    public func replaceBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError) {
        try editBody(stream, body) { $0 = Array(bytes) }
    }

    /// See ``FilterHost/drainBody(_:_:count:)``.
    public func drainBody(_ stream: StreamID, _ body: BodyKind, count: Int) throws(HostError) {
        try editBody(stream, body) { $0.removeFirst(min(max(0, count), $0.count)) }
    }

    /// See ``FilterHost/attribute(_:_:)``. Route, cluster, upstream and response flags come from
    /// ``TestStream/streamInfo``. Valid in stream-complete too.
    public func attribute(_ stream: StreamID, _ attribute: StreamAttribute) throws(HostError) -> String? {
        try withStream(stream, completing: true) { st in
            switch attribute {
            case .routeName: st.info.routeName
            case .cluster: st.info.clusterName
            case .upstreamHost: st.info.upstreamHost
            case .responseFlags: st.info.responseFlags.description
            default: st.attributes[attribute]
            }
        }
    }

    /// See ``FilterHost/sendLocalReply(_:_:)``. Sets the local-reply flag and the response code of
    /// the stream info, as the proxy does.
    public func sendLocalReply(_ stream: StreamID, _ reply: LocalReply) throws(HostError) {
        guard (200...599).contains(reply.status) else { throw .invalid }
        for field in reply.headers { try checkField(field.name, field.value) }
        try withStream(stream) { st in
            st.localReply = reply
            st.info.responseFlags.insert(.localReply)
            st.info.responseCode = reply.status
        }
    }

    /// See ``FilterHost/streamInfo(_:)``: what ``TestStream/streamInfo`` holds. Valid in
    /// stream-complete too.
    public func streamInfo(_ stream: StreamID) throws(HostError) -> StreamInfo {
        try withStream(stream, completing: true) { $0.info }
    }

    /// See ``FilterHost/requestState(_:)``. Valid in stream-complete too.
    public func requestState(_ stream: StreamID) throws(HostError) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: try withStream(stream, completing: true) { $0.stateSlot })
    }

    /// See ``FilterHost/setRequestState(_:_:)``: the stream frees it (`envoy_swift_stream_state_free`)
    /// when its last ``TestStream`` ends. ``HostError/state`` when it already has one.
    public func setRequestState(_ stream: StreamID, _ state: UnsafeMutableRawPointer) throws(HostError) {
        try withStream(stream, completing: true) { (st) throws(HostError) in
            guard st.stateSlot == 0 else { throw .state }
            st.stateSlot = UInt(bitPattern: state)
        }
    }

    /// See ``FilterHost/logState(_:name:value:)``: recorded in ``TestStream/loggedState``, with the
    /// proxy's limits (a name of 1 to 64 bytes, a value up to 1 KiB).
    public func logState(_ stream: StreamID, name: String, value: String) throws(HostError) {
        guard (1...64).contains(name.utf8.count), value.utf8.count <= 1024 else { throw .invalid }
        try withStream(stream, completing: true) { $0.loggedState[name] = value }
    }

    /// See ``FilterHost/defineMetric(filter:kind:name:labels:buckets:)``, with the proxy's rules:
    /// a non-empty name, at most 4 labels (non-empty names) and 16 ascending buckets; the same name
    /// again under the same filter gives the same id when kind, labels and buckets match, and
    /// ``HostError/invalid`` otherwise.
    public func defineMetric(filter: String, kind: MetricKind, name: String, labels: [String], buckets: [Double])
        throws(HostError) -> UInt32
    {
        guard !name.isEmpty, labels.count <= 4, !labels.contains(where: \.isEmpty), buckets.count <= 16,
            !zip(buckets, buckets.dropFirst()).contains(where: { $0 >= $1 }),
            kind == .histogram || buckets.isEmpty
        else { throw .invalid }
        return try state.withLock { (s) throws(HostError) -> UInt32 in
            if let m = s.metrics.first(where: { $0.definition.filter == filter && $0.definition.name == name }) {
                let d = m.definition
                guard d.kind == kind, d.labels == labels, d.buckets == buckets else { throw .invalid }
                return d.id
            }
            let id = UInt32(s.metrics.count)
            s.metrics.append(
                Metric(definition: MetricDefinition(id: id, filter: filter, name: name, kind: kind, labels: labels, buckets: buckets)))
            return id
        }
    }

    /// See ``FilterHost/recordMetric(_:labelValues:value:)``: ``HostError/invalid`` for an unknown id,
    /// a wrong number of label values or a negative counter increment, as in the proxy.
    public func recordMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<envoy_swift_bytes_t>, value: Double)
        throws(HostError)
    {
        let labels = labelValues.map(Self.string)
        try state.withLock { (s) throws(HostError) in
            guard Int(id) < s.metrics.count, labels.count == s.metrics[Int(id)].definition.labels.count else {
                throw .invalid
            }
            switch s.metrics[Int(id)].definition.kind {
            case .counter:
                guard value >= 0 else { throw .invalid }
                s.metrics[Int(id)].series[labels, default: Series()].value += value
            case .gauge:
                s.metrics[Int(id)].series[labels, default: Series()].value += value
            case .histogram:
                s.metrics[Int(id)].series[labels, default: Series()].observations.append(value)
            }
        }
    }

    /// See ``FilterHost/setMetric(_:labelValues:value:)``: ``HostError/invalid`` for a metric that
    /// is not a gauge, or a wrong number of label values.
    public func setMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<envoy_swift_bytes_t>, value: Double)
        throws(HostError)
    {
        let labels = labelValues.map(Self.string)
        try state.withLock { (s) throws(HostError) in
            guard Int(id) < s.metrics.count, s.metrics[Int(id)].definition.kind == .gauge,
                labels.count == s.metrics[Int(id)].definition.labels.count
            else { throw .invalid }
            s.metrics[Int(id)].series[labels, default: Series()].value = value
        }
    }

    /// The metrics filter `filterName` defined and recorded, for assertions.
    /// - Parameter filterName: the filter instance's name.
    public func metrics(of filterName: String) -> TestMetrics {
        TestMetrics(filterName: filterName, host: self)
    }

    /// Every metric defined so far, in definition order.
    public var metricDefinitions: [MetricDefinition] {
        state.withLock { s in s.metrics.map(\.definition) }
    }

    func metricSeries(_ filter: String, _ name: String, _ kind: MetricKind, _ labels: [String]) -> Series? {
        state.withLock { s in
            s.metrics.first { $0.definition.filter == filter && $0.definition.name == name && $0.definition.kind == kind }?
                .series[labels]
        }
    }

    private static func string(_ b: envoy_swift_bytes_t) -> String {
        guard let p = b.ptr, b.length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: b.length), as: UTF8.self)
    }

    /// See ``FilterHost/log(_:filter:message:)``.
    public func log(_ level: LogLevel, filter: String, message: String) {
        state.withLock { s in
            if level >= s.logLevel { s.logs.append(LogRecord(level: level, filter: filter, message: message)) }
        }
    }

    /// See ``FilterHost/wake(worker:)``: runs the worker's queued jobs on its queue, soon.
    public func wake(worker: Int) {
        guard let executor = workers.executor(worker) else { return }
        queues[worker].async { executor.runQueued() }
    }

    /// See ``FilterHost/jobStream(_:)``: recorded in ``jobStreamCalls`` and ``currentJobStream``
    /// for the worker whose queue calls it; ignored elsewhere (the proxy's rule: the worker's
    /// thread only).
    public func jobStream(_ stream: StreamID?) {
        jobStreams.record(stream)
    }

    /// See ``FilterHost/resume(_:_:)``.
    public func resume(_ stream: StreamID, _ status: HookStatus) throws(HostError) {
        guard status != .running else { throw .invalid }
        let mailbox = try state.withLock { (s) throws(HostError) -> Mailbox in
            guard s.streams[stream.rawValue] != nil else { throw .gone }
            guard let m = s.streams[stream.rawValue]!.running else { throw .state }
            s.streams[stream.rawValue]!.running = nil
            s.streams[stream.rawValue]!.inHook = false
            return m
        }
        mailbox.deliver(.resumed(status))
    }

    /// See ``FilterHost/callout(_:_:token:)``: hands the request to ``calloutHandler`` in a task,
    /// and answers on the stream's worker queue.
    public func callout(_ stream: StreamID, _ request: HTTPCallout, token: UInt64) throws(HostError) {
        guard HeaderField.isValidName(request.method), request.path.hasPrefix("/") else { throw .invalid }
        for field in request.headers { try checkField(field.name, field.value) }
        let (handler, worker) = try state.withLock { (s) throws(HostError) -> (CalloutHandler, Int) in
            guard let st = s.streams[stream.rawValue], st.inHook else { throw .gone }
            guard let handler = s.calloutHandler else { throw .notFound }
            s.callouts.append(request)
            s.streams[stream.rawValue]!.pendingCallouts.insert(token)
            return (handler, st.worker)
        }
        let ms = request.timeoutMilliseconds == 0 ? 5000 : request.timeoutMilliseconds
        Task.detached {
            let result = await withTaskGroup(of: Result<HTTPCalloutResponse, HTTPCalloutError>?.self) { group in
                group.addTask {
                    do {
                        return .success(try await handler(request))
                    } catch let error as HTTPCalloutError {
                        return .failure(error)
                    } catch {
                        return .failure(.upstream(String(describing: error)))
                    }
                }
                group.addTask {
                    guard (try? await Task.sleep(for: .milliseconds(ms))) != nil else { return nil }
                    return .failure(.timeout("call-out timed out after \(ms) ms"))
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first ?? .failure(.cancelled)
            }
            self.answerCallout(stream, token, result, on: worker)
        }
    }

    /// Answers a pending call-out on the stream's worker, once (later answers are dropped).
    private func answerCallout(
        _ stream: StreamID, _ token: UInt64, _ result: Result<HTTPCalloutResponse, HTTPCalloutError>, on worker: Int
    ) {
        queues[worker].async {
            let pending = self.state.withLock { s in
                s.streams[stream.rawValue]?.pendingCallouts.remove(token) != nil
            }
            if pending { CalloutRegistry.complete(token, result) }
        }
    }

    /// Answers every pending call-out of `stream` with ``HTTPCalloutError/cancelled``, as the proxy
    /// does when the stream ends or its filter times out.
    func cancelCallouts(_ stream: StreamID) {
        let (tokens, worker) = state.withLock { s -> (Set<UInt64>, Int) in
            guard let st = s.streams[stream.rawValue] else { return ([], 0) }
            s.streams[stream.rawValue]!.pendingCallouts = []
            return (st.pendingCallouts, st.worker)
        }
        guard !tokens.isEmpty else { return }
        queues[worker].async {
            for token in tokens { CalloutRegistry.complete(token, .failure(.cancelled)) }
        }
    }

    // MARK: what TestStream drives

    /// Runs `body` on the stream's worker queue and waits for it, as the proxy calls hooks on the
    /// stream's worker thread.
    func onWorker<R>(_ worker: Int, _ body: () throws -> R) rethrows -> R {
        try queues[worker].sync(execute: body)
    }

    func worker(of stream: StreamID) -> Int {
        state.withLock { $0.streams[stream.rawValue]?.worker ?? 0 }
    }

    /// Ends a RUNNING hook without a resume (the host stopped waiting); false when it is not
    /// running with `mailbox` any more.
    func stopWaiting(_ stream: StreamID, _ mailbox: Mailbox) -> Bool {
        state.withLock { s in
            guard let m = s.streams[stream.rawValue]?.running, m === mailbox else { return false }
            s.streams[stream.rawValue]!.running = nil
            s.streams[stream.rawValue]!.inHook = false
            return true
        }
    }

    func openStream(_ request: TestRequest) -> StreamID {
        state.withLock { s in
            let id = s.nextStream
            s.nextStream += 1
            var st = StreamState()
            st.worker = Int((id - 1) % UInt64(queues.count))
            st.maps[Int(HeaderMapKind.requestHeaders.rawValue)] = request.headers
            let host = request.headers.first { HeaderField.namesEqual($0.name, "host") }?.value
            st.attributes = [
                .method: request.method, .path: request.path, .query: request.query,
                .authority: request.authority ?? host ?? "", .scheme: request.scheme,
                .protocol: request.httpVersion, .clientAddress: request.clientAddress,
            ]
            s.streams[id] = st
            return StreamID(id)
        }
    }

    /// One more ``TestStream`` (another filter of the chain) drives stream `id`.
    func joinStream(_ id: StreamID) -> Bool {
        state.withLock { s in
            guard s.streams[id.rawValue] != nil else { return false }
            s.streams[id.rawValue]!.owners += 1
            return true
        }
    }

    /// One ``TestStream`` of the stream ended; the last one closes it and frees its request state,
    /// as the proxy does after every instance's destroy.
    func closeStream(_ id: StreamID) {
        let st = state.withLock { s -> StreamState? in
            guard s.streams[id.rawValue] != nil else { return nil }
            s.streams[id.rawValue]!.owners -= 1
            s.streams[id.rawValue]!.completing = false
            guard s.streams[id.rawValue]!.owners <= 0 else { return nil }
            return s.streams[id.rawValue]
        }
        guard let st else { return }
        cancelCallouts(id)
        _ = state.withLock { $0.streams.removeValue(forKey: id.rawValue) }
        st.running?.deliver(.ended)
        if st.stateSlot != 0 { envoySwiftStreamStateFree(UnsafeMutableRawPointer(bitPattern: st.stateSlot)) }
    }

    /// Runs `body` with the stream's state; `nil` when the stream is gone.
    func update<R>(_ id: StreamID, _ body: (inout StreamState) -> R) -> R? {
        state.withLock { s in
            guard s.streams[id.rawValue] != nil else { return nil }
            return body(&s.streams[id.rawValue]!)
        }
    }

    // MARK: helpers

    private func withStream<R>(
        _ id: StreamID, completing: Bool = false, _ body: (inout StreamState) throws(HostError) -> R
    ) throws(HostError) -> R {
        try state.withLock { (s) throws(HostError) -> R in
            guard let st = s.streams[id.rawValue], st.inHook || (completing && st.completing) else { throw .gone }
            return try body(&s.streams[id.rawValue]!)
        }
    }

    private func withMap<R>(
        _ id: StreamID, _ map: HeaderMapKind, writing: Bool, _ body: (inout [HeaderField]) -> R
    ) throws(HostError) -> R {
        try withStream(id) { (st) throws(HostError) -> R in
            let dir = map == .responseHeaders || map == .responseTrailers ? 1 : 0
            let trailers = map == .requestTrailers || map == .responseTrailers
            if dir == 1 && !st.hasResponse { throw .state }
            if writing && (trailers ? st.trailersSent[dir] : st.headersSent[dir]) { throw .state }
            return body(&st.maps[Int(map.rawValue)])
        }
    }

    private func editBody<R>(_ id: StreamID, _ body: BodyKind, _ edit: (inout [UInt8]) -> R) throws(HostError) -> R {
        try withStream(id) { (st) throws(HostError) -> R in
            let d = Int(body.rawValue)
            guard st.bodyValid[d] else { throw .state }
            return edit(&st.body[d])
        }
    }

    private func checkField(_ name: String, _ value: String?) throws(HostError) {
        guard HeaderField.isValidName(name), value.map(HeaderField.isValidValue) ?? true else { throw .invalid }
    }
}

/// The ``TestHost``'s record of ``FilterHost/jobStream(_:)`` calls: each worker's current stream
/// and the whole sequence. A worker is known by its queue's specific value, as the proxy knows it by
/// the calling thread.
private final class JobStreamLog: Sendable {
    private struct State {
        var calls: [JobStreamCall] = []
        var current: [StreamID?]
    }

    private let key = DispatchSpecificKey<Int>()
    private let state: Mutex<State>

    init(queues: [DispatchQueue]) {
        state = Mutex(State(current: Array(repeating: nil, count: queues.count)))
        for (i, queue) in queues.enumerated() { queue.setSpecific(key: key, value: i) }
    }

    /// The worker whose queue runs the caller, if any.
    private var worker: Int? { DispatchQueue.getSpecific(key: key) }

    func record(_ stream: StreamID?) {
        guard let worker else { return }
        state.withLock { s in
            s.calls.append(JobStreamCall(worker: worker, stream: stream))
            s.current[worker] = stream
        }
    }

    var calls: [JobStreamCall] { state.withLock { $0.calls } }

    var current: StreamID? {
        guard let worker else { return nil }
        return state.withLock { $0.current[worker] }
    }
}

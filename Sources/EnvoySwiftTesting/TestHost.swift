import EnvoySwift
import Synchronization

/// An in-memory host: the test double of the C host, implementing ``FilterHost`` with the same
/// rules (case-insensitive names, `set` replaces every value with one at the end, CR/LF/NUL and
/// non-token names refused, response maps only once there is a response, request headers
/// read-only once they went upstream, bodies only inside a body callback, every call outside a
/// callback answered with ``HostError/gone``).
///
/// You rarely use it directly: ``FilterTester`` creates one, and ``TestStream`` drives it. Read
/// ``logs`` to check what a filter logged.
public final class TestHost: FilterHost {
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
    }

    struct State {
        var streams: [UInt64: StreamState] = [:]
        var nextStream: UInt64 = 1
        var logs: [LogRecord] = []
        var logLevel: LogLevel
    }

    private let state: Mutex<State>

    /// Creates an empty host.
    /// - Parameter logLevel: the lowest level it records (debug by default, so tests see all).
    public init(logLevel: LogLevel = .debug) {
        state = Mutex(State(logLevel: logLevel))
    }

    /// Every line logged so far, oldest first.
    public var logs: [LogRecord] {
        state.withLock { $0.logs }
    }

    /// Forgets the lines logged so far.
    public func clearLogs() {
        state.withLock { $0.logs.removeAll() }
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

    /// See ``FilterHost/attribute(_:_:)``.
    public func attribute(_ stream: StreamID, _ attribute: StreamAttribute) throws(HostError) -> String? {
        try withStream(stream) { $0.attributes[attribute] }
    }

    /// See ``FilterHost/sendLocalReply(_:_:)``.
    public func sendLocalReply(_ stream: StreamID, _ reply: LocalReply) throws(HostError) {
        guard (200...599).contains(reply.status) else { throw .invalid }
        for field in reply.headers { try checkField(field.name, field.value) }
        try withStream(stream) { $0.localReply = reply }
    }

    /// See ``FilterHost/log(_:filter:message:)``.
    public func log(_ level: LogLevel, filter: String, message: String) {
        state.withLock { s in
            if level >= s.logLevel { s.logs.append(LogRecord(level: level, filter: filter, message: message)) }
        }
    }

    // MARK: what TestStream drives

    func openStream(_ request: TestRequest) -> StreamID {
        state.withLock { s in
            let id = s.nextStream
            s.nextStream += 1
            var st = StreamState()
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

    func closeStream(_ id: StreamID) {
        _ = state.withLock { $0.streams.removeValue(forKey: id.rawValue) }
    }

    /// Runs `body` with the stream's state; `nil` when the stream is gone.
    func update<R>(_ id: StreamID, _ body: (inout StreamState) -> R) -> R? {
        state.withLock { s in
            guard s.streams[id.rawValue] != nil else { return nil }
            return body(&s.streams[id.rawValue]!)
        }
    }

    // MARK: helpers

    private func withStream<R>(_ id: StreamID, _ body: (inout StreamState) throws(HostError) -> R) throws(HostError) -> R {
        try state.withLock { (s) throws(HostError) -> R in
            guard s.streams[id.rawValue]?.inHook == true else { throw .gone }
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

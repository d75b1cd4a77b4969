import CEnvoySwiftABI
import EnvoySwift
import Synchronization

/// One request/response exchange through a filter, driven by hand: each `send...` call is the
/// host calling the filter's callback (through the same C hooks the proxy uses), and the
/// properties show what the host would pass on.
///
/// The stream plays the host's part around the filter: after ``FilterStatus/stopAndBuffer`` it
/// keeps the body chunks and calls the filter once at the end with all of them; after
/// ``FilterStatus/stopAndBufferWatermark`` it calls with everything buffered so far; after
/// ``FilterStatus/stopNoBuffer`` each chunk is handed over and dropped unless passed on. Whatever
/// continues is appended to ``forwardedRequestBody`` / ``forwardedResponseBody``. A filter that
/// throws makes the `send...` call rethrow its error (the proxy would answer 500).
///
/// Call ``complete()`` to end the stream (the filter's ``HTTPFilter/onStreamComplete()``);
/// it also happens when the stream is released.
///
/// An ``AsyncHTTPFilter`` runs the same way: a `send...` call returns when the callback has
/// finished, whether it suspended or not. A callback still running after ``timeout`` is cancelled,
/// as the proxy does, and the call throws ``TestStreamError/timedOut`` (the proxy would answer
/// 504). Every hook runs on the stream's worker queue of the ``TestHost``, and one `send...` call
/// at a time: a second one while a callback runs throws ``TestStreamError/outOfOrder(_:)``.
public final class TestStream: Sendable {
    /// The stream's handle in the ``TestHost``.
    public let id: StreamID
    /// The host the stream lives in.
    public let host: TestHost

    private struct Direction {
        var mode: FilterStatus?
        var buffered: [UInt8] = []
        var forwarded: [UInt8] = []
        var headersDone = false
        var ended = false
    }

    private struct Driver {
        var instance: UnsafeMutableRawPointer?
        var dirs = [Direction(), Direction()]
        var ended = false
        /// A `send...` call is in progress (the host calls a filter once at a time).
        var busy = false
        var timeout: Duration?
        /// The stream info and logged state as they were when the stream ended.
        var finalInfo: StreamInfo?
        var finalLoggedState: [String: String] = [:]
    }

    private let driver: Mutex<Driver>
    /// The worker (queue) of the ``TestHost`` the stream lives on.
    private let worker: Int

    init(host: TestHost, id: StreamID, instance: sending FilterInstanceBase, timeout: Duration?) {
        self.host = host
        self.id = id
        worker = host.worker(of: id)
        driver = Mutex(Driver(instance: Unmanaged.passRetained(instance).toOpaque(), timeout: timeout))
    }

    /// How long a callback of an async filter may run before the stream cancels it, as the proxy's
    /// filter timeout does; `nil` waits forever.
    public var timeout: Duration? {
        get { driver.withLock { $0.timeout } }
        set { driver.withLock { $0.timeout = newValue } }
    }

    deinit {
        complete()
    }

    // MARK: driving

    /// Runs the request headers callback with the request's headers.
    /// - Parameter endOfStream: true when the request has no body.
    /// - Returns: the filter's status (a local reply as ``FilterStatus/localReply(_:)``).
    /// - Throws: the filter's error, or ``TestStreamError``.
    public func sendRequestHeaders(endOfStream: Bool = false) async throws -> FilterStatus {
        try await serially { try await self.sendHeaders(.request, endOfStream: endOfStream) { envoySwiftFilterOnRequestHeaders($0, $1) } }
    }

    /// Runs the request body callback with a chunk (or everything buffered, as the host would).
    /// - Parameters:
    ///   - chunk: the bytes that arrived.
    ///   - endOfStream: true for the last chunk.
    public func sendRequestBody(_ chunk: some Collection<UInt8>, endOfStream: Bool) async throws -> FilterStatus {
        let chunk = Array(chunk)
        return try await serially { try await self.sendBody(.request, chunk, endOfStream: endOfStream) { envoySwiftFilterOnRequestBody($0, $1) } }
    }

    /// Runs the request body callback with text sent as UTF-8.
    /// - Parameters:
    ///   - chunk: the text that arrived.
    ///   - endOfStream: true for the last chunk.
    public func sendRequestBody(_ chunk: String, endOfStream: Bool) async throws -> FilterStatus {
        try await sendRequestBody(chunk.utf8, endOfStream: endOfStream)
    }

    /// Runs the request trailers callback.
    /// - Parameter trailers: the trailers that arrived.
    public func sendRequestTrailers(_ trailers: [HeaderField]) async throws -> FilterStatus {
        try await serially { try await self.sendTrailers(.request, trailers) { envoySwiftFilterOnRequestTrailers($0) } }
    }

    /// Runs the response headers callback with a response from the upstream.
    /// - Parameters:
    ///   - status: the response status code.
    ///   - headers: the response headers in order.
    ///   - endOfStream: true when the response has no body.
    public func sendResponseHeaders(status: Int = 200, headers: [HeaderField] = [], endOfStream: Bool = false)
        async throws -> FilterStatus
    {
        try await serially {
            try self.startResponse(status: status, headers: headers)
            return try await self.sendHeaders(.response, endOfStream: endOfStream) { envoySwiftFilterOnResponseHeaders($0, $1) }
        }
    }

    /// Runs the response headers callback, headers written as a dictionary literal.
    /// - Parameters:
    ///   - status: the response status code.
    ///   - headers: the response headers in order: `["content-type": "text/plain"]`.
    ///   - endOfStream: true when the response has no body.
    public func sendResponseHeaders(status: Int = 200, headers: KeyValuePairs<String, String>, endOfStream: Bool = false)
        async throws -> FilterStatus
    {
        try await sendResponseHeaders(
            status: status, headers: headers.map { HeaderField($0.key, $0.value) }, endOfStream: endOfStream)
    }

    /// Runs the response body callback with a chunk (or everything buffered, as the host would).
    /// - Parameters:
    ///   - chunk: the bytes that arrived.
    ///   - endOfStream: true for the last chunk.
    public func sendResponseBody(_ chunk: some Collection<UInt8>, endOfStream: Bool) async throws -> FilterStatus {
        let chunk = Array(chunk)
        return try await serially { try await self.sendBody(.response, chunk, endOfStream: endOfStream) { envoySwiftFilterOnResponseBody($0, $1) } }
    }

    /// Runs the response body callback with text sent as UTF-8.
    /// - Parameters:
    ///   - chunk: the text that arrived.
    ///   - endOfStream: true for the last chunk.
    public func sendResponseBody(_ chunk: String, endOfStream: Bool) async throws -> FilterStatus {
        try await sendResponseBody(chunk.utf8, endOfStream: endOfStream)
    }

    /// Runs the response trailers callback.
    /// - Parameter trailers: the trailers that arrived.
    public func sendResponseTrailers(_ trailers: [HeaderField]) async throws -> FilterStatus {
        try await serially { try await self.sendTrailers(.response, trailers) { envoySwiftFilterOnResponseTrailers($0) } }
    }

    /// Ends the stream: calls the filter's ``HTTPFilter/onStreamComplete()`` and destroys the
    /// instance, as the host does exactly once per stream. Later calls do nothing.
    ///
    /// During a running callback of an async filter this is the client going away: the callback's
    /// task is cancelled, the pending `send...` call throws ``TestStreamError/streamEnded``, and the
    /// filter's `onStreamComplete()` runs once the task has ended.
    public func complete() {
        host.onWorker(worker) {
            let instance = driver.withLock { d -> UnsafeMutableRawPointer? in
                defer { d.instance = nil; d.ended = true }
                return d.instance
            }
            guard let instance else { return }
            _ = host.update(id) { $0.completing = true }
            envoySwiftFilterOnStreamComplete(instance)
            envoySwiftFilterDestroy(instance)
            if let (info, logged) = host.update(id, { ($0.info, $0.loggedState) }) {
                driver.withLock { d in
                    d.finalInfo = info
                    d.finalLoggedState = logged
                }
            }
            host.closeStream(id)
        }
    }

    // MARK: stream info and request state

    /// What the exchange was, as ``FilterContext/streamInfo`` shows it to the filter: set it before
    /// ``complete()`` to test what a filter logs or records there. The stream keeps some of it up
    /// to date as the proxy would: ``StreamInfo/responseCode`` from the response headers and local
    /// replies (which also set ``ResponseFlags/localReply``), and the body byte counts from the
    /// chunks sent (request) and passed on (response). After the stream ended: as it was then.
    public var streamInfo: StreamInfo {
        get { host.update(id) { $0.info } ?? driver.withLock { $0.finalInfo } ?? StreamInfo() }
        set { _ = host.update(id) { $0.info = newValue } }
    }

    /// The values filters named for the access log (a ``StateKey`` marked as logged), by log name;
    /// after the stream ended, as they were then.
    public var loggedState: [String: String] {
        host.update(id) { $0.loggedState } ?? driver.withLock { $0.finalLoggedState }
    }

    // MARK: what the host would pass on

    /// The request headers as they are now (what goes upstream once they continue).
    public var requestHeaders: [HeaderField] { map(.requestHeaders) }
    /// The request trailers as they are now.
    public var requestTrailers: [HeaderField] { map(.requestTrailers) }
    /// The response headers as they are now (what goes to the client once they continue).
    public var responseHeaders: [HeaderField] { map(.responseHeaders) }
    /// The response trailers as they are now.
    public var responseTrailers: [HeaderField] { map(.responseTrailers) }

    /// The first value of request header `name` (any case), as it is now.
    /// - Parameter name: the header name.
    public func requestHeader(_ name: String) -> String? {
        requestHeaders.first { HeaderField.namesEqual($0.name, name) }?.value
    }

    /// The first value of response header `name` (any case), as it is now.
    /// - Parameter name: the header name.
    public func responseHeader(_ name: String) -> String? {
        responseHeaders.first { HeaderField.namesEqual($0.name, name) }?.value
    }

    /// The request body the filter passed on so far.
    public var forwardedRequestBody: [UInt8] { driver.withLock { $0.dirs[0].forwarded } }
    /// The response body the filter passed on so far.
    public var forwardedResponseBody: [UInt8] { driver.withLock { $0.dirs[1].forwarded } }
    /// ``forwardedRequestBody`` decoded as UTF-8.
    public var forwardedRequestBodyString: String { String(decoding: forwardedRequestBody, as: UTF8.self) }
    /// ``forwardedResponseBody`` decoded as UTF-8.
    public var forwardedResponseBodyString: String { String(decoding: forwardedResponseBody, as: UTF8.self) }

    /// The reply the filter sent instead of the upstream's response, if it did.
    public var localReply: LocalReply? {
        host.update(id) { $0.localReply } ?? nil
    }

    // MARK: the host's part

    private func serially(_ body: () async throws -> FilterStatus) async throws -> FilterStatus {
        try driver.withLock { (d) throws(TestStreamError) in
            guard !d.busy else { throw .outOfOrder("a callback is still running") }
            d.busy = true
        }
        defer { driver.withLock { $0.busy = false } }
        return try await body()
    }

    private func map(_ kind: HeaderMapKind) -> [HeaderField] {
        host.update(id) { $0.maps[Int(kind.rawValue)] } ?? []
    }

    private func startResponse(status: Int, headers: [HeaderField]) throws {
        let open: Bool? = host.update(id) { st in
            st.hasResponse = true
            st.maps[Int(HeaderMapKind.responseHeaders.rawValue)] = headers
            st.attributes[.responseStatus] = String(status)
            st.info.responseCode = status
            return true
        }
        if open == nil { throw TestStreamError.streamEnded }
    }

    private func sendHeaders(
        _ dir: BodyKind, endOfStream: Bool,
        _ hook: @escaping @Sendable (UnsafeMutableRawPointer, Bool) -> envoy_swift_status_t
    ) async throws -> FilterStatus {
        let d = Int(dir.rawValue)
        let instance = try driver.withLock { (s) throws -> UnsafeMutableRawPointer in
            guard !s.ended, let p = s.instance else { throw TestStreamError.streamEnded }
            guard !s.dirs[d].headersDone else { throw TestStreamError.outOfOrder("\(dir == .request ? "request" : "response") headers twice") }
            if dir == .response && !s.dirs[0].headersDone {
                throw TestStreamError.outOfOrder("response headers before the request headers continued")
            }
            s.dirs[d].headersDone = true
            s.dirs[d].ended = endOfStream
            return p
        }
        let raw = try await call(instance) { hook($0, endOfStream) }
        let status = try result(raw, instance)
        driver.withLock { s in
            if status == .continue || endOfStream {
                s.dirs[d].mode = nil
            } else {
                s.dirs[d].mode = status
            }
        }
        if status == .continue || endOfStream { markSent(dir) }
        return status
    }

    private func sendBody(
        _ dir: BodyKind, _ chunk: [UInt8], endOfStream: Bool,
        _ hook: @escaping @Sendable (UnsafeMutableRawPointer, Bool) -> envoy_swift_status_t
    ) async throws -> FilterStatus {
        let d = Int(dir.rawValue)
        // Decide what the filter sees, as the host's filter chain does.
        let step = try driver.withLock { (s) throws -> (UnsafeMutableRawPointer, [UInt8])? in
            guard !s.ended, let p = s.instance else { throw TestStreamError.streamEnded }
            guard s.dirs[d].headersDone else { throw TestStreamError.outOfOrder("\(dir) before its headers") }
            guard !s.dirs[d].ended else { throw TestStreamError.outOfOrder("\(dir) after the end of the stream") }
            s.dirs[d].ended = endOfStream
            switch s.dirs[d].mode {
            case .stopAndBuffer?:
                s.dirs[d].buffered += chunk
                return endOfStream ? (p, s.dirs[d].buffered) : nil
            case .stopAndBufferWatermark?:
                s.dirs[d].buffered += chunk
                return (p, s.dirs[d].buffered)
            default:
                return (p, chunk)
            }
        }
        if dir == .request { _ = host.update(id) { $0.info.requestBodyBytes += UInt64(chunk.count) } }
        guard let (instance, body) = step else { return .stopAndBuffer }
        _ = host.update(id) { st in
            st.body[d] = body
            st.bodyValid[d] = true
        }
        let raw = try await call(instance) { hook($0, endOfStream) }
        let after = host.update(id) { st -> [UInt8] in
            st.bodyValid[d] = false
            return st.body[d]
        } ?? []
        let status = try result(raw, instance)
        driver.withLock { s in
            switch status {
            case .continue:
                s.dirs[d].forwarded += after
                if dir == .response { _ = host.update(id) { $0.info.responseBodyBytes += UInt64(after.count) } }
                s.dirs[d].buffered = []
                s.dirs[d].mode = nil
            case .stopNoBuffer:
                s.dirs[d].buffered = []
                s.dirs[d].mode = .stopNoBuffer
            default:
                s.dirs[d].buffered = after
                s.dirs[d].mode = status
            }
        }
        if status == .continue { markSent(dir) }
        return status
    }

    private func sendTrailers(
        _ dir: BodyKind, _ trailers: [HeaderField], _ hook: @escaping @Sendable (UnsafeMutableRawPointer) -> envoy_swift_status_t
    ) async throws -> FilterStatus {
        let d = Int(dir.rawValue)
        let instance = try driver.withLock { (s) throws -> UnsafeMutableRawPointer in
            guard !s.ended, let p = s.instance else { throw TestStreamError.streamEnded }
            guard s.dirs[d].headersDone, !s.dirs[d].ended else {
                throw TestStreamError.outOfOrder("\(dir == .request ? "request" : "response") trailers")
            }
            s.dirs[d].ended = true
            return p
        }
        let kind: HeaderMapKind = dir == .request ? .requestTrailers : .responseTrailers
        _ = host.update(id) { $0.maps[Int(kind.rawValue)] = trailers }
        let raw = try await call(instance, hook)
        let status = try result(raw, instance)
        _ = host.update(id) { $0.trailersSent[d] = true }
        return status
    }

    private func markSent(_ dir: BodyKind) {
        _ = host.update(id) { $0.headersSent[Int(dir.rawValue)] = true }
    }

    /// Calls a hook on the stream's worker with the stream "inside a callback", as the host does;
    /// for a RUNNING hook, waits for its resume (or the timeout, or the stream's end).
    private func call(
        _ instance: UnsafeMutableRawPointer, _ hook: (UnsafeMutableRawPointer) -> envoy_swift_status_t
    ) async throws -> envoy_swift_status_t {
        let mailbox = Mailbox()
        let raw = host.onWorker(worker) { () -> envoy_swift_status_t in
            _ = host.update(id) { $0.inHook = true; $0.localReply = nil }
            let status = hook(instance)
            _ = host.update(id) { st in
                if status == ENVOY_SWIFT_STATUS_RUNNING { st.running = mailbox } else { st.inHook = false }
            }
            return status
        }
        guard raw == ENVOY_SWIFT_STATUS_RUNNING else { return raw }
        let timer = timeout.map { limit in
            Task { [weak self] in
                guard (try? await Task.sleep(for: limit)) != nil else { return }
                self?.stopWaiting(mailbox)
            }
        }
        let outcome = await mailbox.wait()
        timer?.cancel()
        switch outcome {
        case .resumed(let status):
            return envoy_swift_status_t(status.rawValue)
        case .timedOut:
            driver.withLock { $0.ended = true }
            throw TestStreamError.timedOut
        case .ended:
            throw TestStreamError.streamEnded
        }
    }

    /// The host's timeout: stops waiting for the running hook and cancels the filter's task.
    private func stopWaiting(_ mailbox: Mailbox) {
        host.onWorker(worker) {
            guard host.stopWaiting(id, mailbox), let instance = driver.withLock({ $0.instance }) else { return }
            envoySwiftFilterCancel(instance)
            host.cancelCallouts(id)
        }
        mailbox.deliver(.timedOut)
    }

    /// Maps an ABI status back to a ``FilterStatus``; failures and replies end the stream.
    private func result(_ raw: envoy_swift_status_t, _ instance: UnsafeMutableRawPointer) throws -> FilterStatus {
        switch raw {
        case ENVOY_SWIFT_STATUS_CONTINUE, ENVOY_SWIFT_STATUS_CONTINUE_SKIP: return .continue
        case ENVOY_SWIFT_STATUS_STOP_AND_BUFFER: return .stopAndBuffer
        case ENVOY_SWIFT_STATUS_STOP_AND_BUFFER_WATERMARK: return .stopAndBufferWatermark
        case ENVOY_SWIFT_STATUS_STOP_NO_BUFFER: return .stopNoBuffer
        case ENVOY_SWIFT_STATUS_LOCAL_REPLY:
            driver.withLock { $0.ended = true }
            guard let reply = localReply else { throw TestStreamError.localReplyNotSent }
            return .localReply(reply)
        case ENVOY_SWIFT_STATUS_ERROR:
            driver.withLock { $0.ended = true }
            throw Unmanaged<FilterInstanceBase>.fromOpaque(instance).takeUnretainedValue().lastError
                ?? TestStreamError.filterFailed
        default:
            driver.withLock { $0.ended = true }
            throw TestStreamError.unknownStatus(raw.rawValue)
        }
    }
}

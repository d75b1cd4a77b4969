/// A view onto the body that the current body callback sees: the chunk just received, or
/// everything buffered when the filter asked for buffering.
///
/// Reads outside a body callback of the same direction see an empty body. Writes throw
/// ``HostError`` (``HostError/state`` outside a body callback). When a filter changes a body, the
/// host fixes Content-Length or the chunked framing.
///
/// ```swift
/// if endOfStream {
///     let text = body.string.replacingOccurrences(of: "foo", with: "bar")
///     try body.replace(text)
/// }
/// ```
public struct BodyBuffer: Sendable {
    /// The request or the response body.
    public let kind: BodyKind
    let host: any FilterHost
    let stream: StreamID

    init(host: any FilterHost, stream: StreamID, kind: BodyKind) {
        self.host = host
        self.stream = stream
        self.kind = kind
    }

    /// Calls `body` with the bytes, without copying them. The pointer is valid only inside `body`.
    /// - Parameter body: reads the bytes; its result (or error) is passed on.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var result: Result<R, E>?
        // A host error (no body in this callback) reads as an empty body.
        try? host.withBody(stream, kind) { bytes in
            result = Result { () throws(E) in try body(bytes) }
        }
        if let result { return try result.get() }
        return try body(UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// The number of bytes.
    public var count: Int {
        withUnsafeBytes { $0.count }
    }

    /// Whether the body is empty.
    public var isEmpty: Bool { count == 0 }

    /// The bytes, copied.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// The bytes decoded as UTF-8 (invalid sequences become U+FFFD).
    public var string: String {
        withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Appends bytes.
    /// - Parameter bytes: the bytes to add at the end.
    public func append(_ bytes: some Collection<UInt8>) throws {
        try Self.withContiguous(bytes) { p throws(HostError) in try host.appendBody(stream, kind, p) }
    }

    /// Appends text as UTF-8.
    /// - Parameter string: the text to add at the end.
    public func append(_ string: String) throws {
        try append(string.utf8)
    }

    /// Inserts bytes before the body.
    /// - Parameter bytes: the bytes to add at the start.
    public func prepend(_ bytes: some Collection<UInt8>) throws {
        try Self.withContiguous(bytes) { p throws(HostError) in try host.prependBody(stream, kind, p) }
    }

    /// Inserts text as UTF-8 before the body.
    /// - Parameter string: the text to add at the start.
    public func prepend(_ string: String) throws {
        try prepend(string.utf8)
    }

    /// Replaces the whole body.
    /// - Parameter bytes: the new body.
    public func replace(_ bytes: some Collection<UInt8>) throws {
        try Self.withContiguous(bytes) { p throws(HostError) in try host.replaceBody(stream, kind, p) }
    }

    /// Replaces the whole body with text as UTF-8.
    /// - Parameter string: the new body.
    public func replace(_ string: String) throws {
        try replace(string.utf8)
    }

    /// Drops the first `count` bytes (all of them when the body is shorter).
    /// - Parameter count: how many bytes to drop; negative counts drop nothing.
    public func drain(_ count: Int) throws {
        try host.drainBody(stream, kind, count: max(0, count))
    }

    /// Drops every byte.
    public func removeAll() throws {
        try replace(EmptyCollection<UInt8>())
    }

    private static func withContiguous(
        _ bytes: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) throws(HostError) -> Void
    ) throws(HostError) {
        let done: Result<Void, HostError>? = bytes.withContiguousStorageIfAvailable { p in
            Result { () throws(HostError) in try body(UnsafeRawBufferPointer(p)) }
        }
        if let done { return try done.get() }
        let copy = Array(bytes)
        try copy.withUnsafeBytes { p in Result { () throws(HostError) in try body(p) } }.get()
    }
}

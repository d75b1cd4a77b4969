/// A view onto one header map of the current stream (request or response headers or trailers).
///
/// Every read and write is one call into the host; nothing is copied into Swift until you read
/// it. Names compare case-insensitively. Reads return `nil` (or nothing) when the map is not
/// available, for example response headers during a request callback. Writes throw: a
/// ``HeaderError`` for a name that is not a token or a value with CR, LF or NUL (checked before
/// the host sees it), or a ``HostError`` (for example ``HostError/state`` for request headers that
/// already went upstream).
///
/// A view is valid during the callbacks of its stream; it is a handle, so copies of it see the
/// same headers.
///
/// ```swift
/// if headers["x-debug"] != nil { try headers.set("x-trace", "1") }
/// for field in headers { print(field.name, field.value) }
/// ```
public struct HeaderMap: Sequence, Sendable {
    /// Which map of the stream this is.
    public let kind: HeaderMapKind
    let host: any FilterHost
    let stream: StreamID

    init(host: any FilterHost, stream: StreamID, kind: HeaderMapKind) {
        self.host = host
        self.stream = stream
        self.kind = kind
    }

    /// The first value of `name`, or `nil` when there is none.
    /// - Parameter name: the header name, any case.
    public subscript(_ name: String) -> String? {
        try? host.headerValue(stream, kind, name: name, nth: 0)
    }

    /// Every value of `name`, in wire order.
    /// - Parameter name: the header name, any case.
    public func values(_ name: String) -> [String] {
        var all: [String] = []
        while let v = try? host.headerValue(stream, kind, name: name, nth: all.count) {
            all.append(v)
        }
        return all
    }

    /// Whether the map has at least one value of `name`.
    /// - Parameter name: the header name, any case.
    public func contains(_ name: String) -> Bool {
        self[name] != nil
    }

    /// The number of header fields (a name with two values counts twice).
    public var count: Int {
        (try? host.headerCount(stream, kind)) ?? 0
    }

    /// Every field in wire order, copied.
    public var fields: [HeaderField] {
        Array(self)
    }

    /// Replaces every value of `name` with `value`, or adds it when absent.
    /// - Parameters:
    ///   - name: the header name (an HTTP token).
    ///   - value: the new value; CR, LF and NUL are refused with ``HeaderError/invalidValue(name:)``.
    public func set(_ name: String, _ value: String) throws {
        try refined(name, value) { () throws(HostError) in try host.setHeader(stream, kind, name: name, value: value) }
    }

    /// Adds one more value of `name` after the existing ones.
    /// - Parameters:
    ///   - name: the header name (an HTTP token).
    ///   - value: the value; CR, LF and NUL are refused with ``HeaderError/invalidValue(name:)``.
    public func add(_ name: String, _ value: String) throws {
        try refined(name, value) { () throws(HostError) in try host.addHeader(stream, kind, name: name, value: value) }
    }

    /// Removes every value of `name`; does nothing when there is none.
    /// - Parameter name: the header name (an HTTP token).
    public func remove(_ name: String) throws {
        try refined(name, nil) { () throws(HostError) in try host.removeHeader(stream, kind, name: name) }
    }

    /// Runs a header change. Every host refuses a bad name or value (``HostError/invalid``), so the
    /// SDK checks the field itself only then, to say which it was (``HeaderError``): the common,
    /// valid case is checked once, by the host.
    @inline(__always)
    private func refined(_ name: String, _ value: String?, _ change: () throws(HostError) -> Void) throws {
        do {
            try change()
        } catch .invalid {
            try HeaderField.validate(name: name, value: value)
            throw HostError.invalid
        }
    }

    /// Iterates the fields in wire order, reading each from the host as it is reached.
    public func makeIterator() -> Iterator {
        Iterator(map: self, count: count)
    }

    /// Walks a header map in wire order. Changing the map while iterating gives unspecified
    /// (but memory-safe) results.
    public struct Iterator: IteratorProtocol {
        let map: HeaderMap
        let count: Int
        var index = 0

        /// The next field, or `nil` after the last.
        public mutating func next() -> HeaderField? {
            guard index < count, let field = try? map.host.header(map.stream, map.kind, at: index) else {
                return nil
            }
            index += 1
            return field
        }
    }

    /// The number of fields, so `Array(headers)` allocates once.
    public var underestimatedCount: Int { count }
}

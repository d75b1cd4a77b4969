/// One header: a name and a value, as they appear on the wire.
public struct HeaderField: Hashable, Sendable, CustomStringConvertible {
    /// The name as written (names compare case-insensitively everywhere in the SDK).
    public var name: String
    /// The value, without surrounding whitespace.
    public var value: String

    /// Creates a header field.
    /// - Parameters:
    ///   - name: the header name, an HTTP token such as "content-type".
    ///   - value: the value; CR, LF and NUL are refused when the field is sent to the host.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// Creates a header field.
    /// - Parameters:
    ///   - name: the header name, an HTTP token such as "content-type".
    ///   - value: the value; CR, LF and NUL are refused when the field is sent to the host.
    public init(name: String, value: String) {
        self.init(name, value)
    }

    /// "name: value".
    public var description: String { "\(name): \(value)" }
}

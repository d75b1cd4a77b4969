/// A header name or value that the SDK refused before it reached the host.
///
/// Values with CR, LF or NUL would let a filter inject headers or split a response; names must be
/// HTTP tokens. The offending value is not kept in the error (it may be large or secret).
public enum HeaderError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The name is empty or has a character that is not an HTTP token character.
    case invalidName(String)
    /// The value of this header contains CR, LF or NUL.
    case invalidValue(name: String)

    /// A short explanation, for logs.
    public var description: String {
        switch self {
        case .invalidName(let name): "invalid header name \"\(name)\""
        case .invalidValue(let name): "the value of header \"\(name)\" contains CR, LF or NUL"
        }
    }
}

extension HeaderField {
    /// Whether `name` is a valid HTTP header name (a non-empty RFC 9110 token).
    /// - Parameter name: the name to check.
    public static func isValidName(_ name: String) -> Bool {
        // Over the contiguous UTF-8 when there is one: a byte loop through String.UTF8View
        // costs some 30 instructions a byte, and this runs before every header change.
        if let valid = name.utf8.withContiguousStorageIfAvailable({ bytes in
            !bytes.isEmpty && bytes.allSatisfy(isTokenByte)
        }) {
            return valid
        }
        var any = false
        for c in name.utf8 {
            any = true
            if !isTokenByte(c) { return false }
        }
        return any
    }

    /// Whether `value` can be sent as a header value: it has no CR, LF or NUL.
    /// - Parameter value: the value to check.
    public static func isValidValue(_ value: String) -> Bool {
        if let valid = value.utf8.withContiguousStorageIfAvailable({ bytes in
            !bytes.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
        }) {
            return valid
        }
        for c in value.utf8 where c == 0x0D || c == 0x0A || c == 0x00 {
            return false
        }
        return true
    }

    /// Throws ``HeaderError`` unless both the name and the value may be sent.
    /// - Parameters:
    ///   - name: the header name.
    ///   - value: the header value, or `nil` when only the name is used (remove, get).
    public static func validate(name: String, value: String?) throws(HeaderError) {
        guard isValidName(name) else { throw .invalidName(name) }
        if let value, !isValidValue(value) { throw .invalidValue(name: name) }
    }

    /// Throws ``HeaderError`` unless this field may be sent.
    public func validate() throws(HeaderError) {
        try Self.validate(name: name, value: value)
    }

    /// Whether two header names are the same name (ASCII case-insensitive), without allocating.
    /// - Parameters:
    ///   - a: a header name.
    ///   - b: another header name.
    public static func namesEqual(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (p, q) in zip(x, y) where p != q && lower(p) != lower(q) {
            return false
        }
        return true
    }

    static func lower(_ c: UInt8) -> UInt8 {
        c >= 0x41 && c <= 0x5A ? c | 0x20 : c
    }

    private static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        // ! # $ % & ' * + - . ^ _ ` | ~
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }
}

/// Facts about the current request that the host knows: method, path, query, authority, scheme,
/// protocol and the client's address. Each property is one call into the host, and an empty
/// string when the host cannot answer (for example after the stream ended).
public struct RequestInfo: Sendable {
    let host: any FilterHost
    let stream: StreamID

    init(host: any FilterHost, stream: StreamID) {
        self.host = host
        self.stream = stream
    }

    /// The method: "GET".
    public var method: String { attribute(.method) }
    /// The path without the query: "/a/b".
    public var path: String { attribute(.path) }
    /// The query without the '?': "x=1&y=2", "" when none.
    public var query: String { attribute(.query) }
    /// The Host header: "example.com:8080", "" when none.
    public var authority: String { attribute(.authority) }
    /// "http" or "https".
    public var scheme: String { attribute(.scheme) }
    /// The protocol version: "HTTP/1.1" or "HTTP/1.0".
    public var httpVersion: String { attribute(.protocol) }
    /// The client's address and port: "127.0.0.1:51234", "[::1]:51234".
    public var clientAddress: String { attribute(.clientAddress) }

    /// The first value of the query parameter `name`, decoded as a form value ('+' is a space,
    /// `%XX` a byte), or `nil` when the query does not have it. `"a"` in `?a` is `""`.
    /// - Parameter name: the parameter name, compared exactly after decoding.
    public func queryParameter(_ name: String) -> String? {
        let q = query
        guard !q.isEmpty else { return nil }
        for pair in q.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: UInt8(ascii: "="))
            let rawName = eq.map { pair[pair.startIndex..<$0] } ?? pair[...]
            guard Self.formDecode(rawName) == name else { continue }
            guard let eq else { return "" }
            return Self.formDecode(pair[pair.index(after: eq)...])
        }
        return nil
    }

    private func attribute(_ a: StreamAttribute) -> String {
        ((try? host.attribute(stream, a)) ?? nil) ?? ""
    }

    static func formDecode(_ raw: Substring.UTF8View) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        while i < raw.endIndex {
            let c = raw[i]
            if c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%"), raw.distance(from: i, to: raw.endIndex) >= 3,
                let hi = hexValue(raw[raw.index(i, offsetBy: 1)]), let lo = hexValue(raw[raw.index(i, offsetBy: 2)])
            {
                out.append(hi << 4 | lo)
                i = raw.index(i, offsetBy: 3)
                continue
            } else {
                out.append(c)
            }
            i = raw.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}

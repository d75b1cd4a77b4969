import EnvoySwift

/// `body_replace`: replaces every occurrence of a text in response bodies of the given content
/// types. It needs the whole body (a match may span chunks), so it buffers matching responses.
///
/// ```yaml
/// plugin_config: { find: upstream, replace: UPSTREAM, content_types: ["text/"] }
/// ```
/// `content_types` (default `["text/"]`) are prefixes of the response's Content-Type, compared
/// case-insensitively. The host fixes Content-Length (or the chunked framing) for the new body.
public struct BodyReplace: HTTPFilter {
    /// What to replace, with what, in which responses.
    public struct Config: Decodable, Sendable {
        /// The text to find; must not be empty.
        public var find: String
        /// The text to put in its place (may be empty).
        public var replace: String
        /// Content-Type prefixes to transform (default `["text/"]`).
        public var contentTypes: [String]?

        enum CodingKeys: String, CodingKey {
            case find, replace
            case contentTypes = "content_types"
        }

        /// Creates a configuration.
        /// - Parameters:
        ///   - find: the text to find.
        ///   - replace: its replacement.
        ///   - contentTypes: Content-Type prefixes, `nil` for `["text/"]`.
        public init(find: String, replace: String, contentTypes: [String]? = nil) {
            self.find = find
            self.replace = replace
            self.contentTypes = contentTypes
        }
    }

    /// Refuses an empty `find`.
    public static func validate(_ config: Config) throws {
        guard !config.find.isEmpty else { throw ConfigError("find must not be empty") }
    }

    private let config: Config
    private let context: FilterContext
    private var active = false

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
    }

    /// Buffers a response of a matching type that has a body.
    public mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        guard !endOfStream, let type = headers["content-type"]?.lowercased() else { return .continue }
        active = (config.contentTypes ?? ["text/"]).contains { type.hasPrefix($0.lowercased()) }
        return active ? .stopAndBuffer : .continue
    }

    /// Rewrites the whole body at its end.
    public mutating func onResponseBody(_ body: BodyBuffer, endOfStream: Bool) throws -> FilterStatus {
        guard active else { return .continue }
        guard endOfStream else { return .stopAndBuffer }
        let (replaced, count) = body.withUnsafeBytes {
            Self.replacing(Array(config.find.utf8), with: Array(config.replace.utf8), in: $0)
        }
        if count > 0 {
            try body.replace(replaced)
            context.log.debug("replaced \(count) occurrence(s) in \(body.count) bytes")
        }
        return .continue
    }

    /// `bytes` with every non-overlapping occurrence of `find` (left to right) replaced, and how
    /// many there were.
    static func replacing(_ find: [UInt8], with replacement: [UInt8], in bytes: UnsafeRawBufferPointer) -> ([UInt8], Int) {
        guard !find.isEmpty, bytes.count >= find.count else { return ([], 0) }
        var out: [UInt8] = []
        var count = 0
        var copied = 0
        var i = 0
        let last = bytes.count - find.count
        while i <= last {
            if bytes[i] == find[0] && (1..<find.count).allSatisfy({ bytes[i + $0] == find[$0] }) {
                if count == 0 { out.reserveCapacity(bytes.count) }
                out.append(contentsOf: bytes[copied..<i])
                out.append(contentsOf: replacement)
                count += 1
                i += find.count
                copied = i
            } else {
                i += 1
            }
        }
        guard count > 0 else { return ([], 0) }
        out.append(contentsOf: bytes[copied...])
        return (out, count)
    }
}

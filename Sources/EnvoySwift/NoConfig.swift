/// The configuration of a filter that takes none: decodes from any JSON (absent, `null`, `{}`,
/// anything) and holds nothing.
public struct NoConfig: Decodable, Hashable, Sendable {
    /// Creates the empty configuration.
    public init() {}

    /// Accepts any JSON value and ignores it.
    /// - Parameter decoder: the decoder, not read.
    public init(from decoder: any Decoder) throws {}
}

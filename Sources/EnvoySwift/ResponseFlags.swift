import CEnvoySwiftABI

/// Why an exchange ended as it did: Envoy's response flags (`%RESPONSE_FLAGS%`). The raw values
/// are the ABI's `ENVOY_SWIFT_RF_*` bits.
///
/// ```swift
/// let info = context.streamInfo
/// if info.responseFlags.contains(.upstreamRequestTimeout) { ... }
/// print(info.responseFlags)  // "UF,UT", "" when none
/// ```
public struct ResponseFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    /// The `ENVOY_SWIFT_RF_*` bits.
    public let rawValue: UInt32

    /// Wraps `ENVOY_SWIFT_RF_*` bits.
    /// - Parameter rawValue: the bits, as `envoy_swift_stream_info_t.response_flags` holds them.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// UF: the upstream connection could not be made.
    public static let upstreamConnectionFailure = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_UF))
    /// UT: the upstream took longer than the request timeout (504).
    public static let upstreamRequestTimeout = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_UT))
    /// UC: the upstream connection closed or reset under the exchange.
    public static let upstreamConnectionTermination = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_UC))
    /// DC: the client went away first.
    public static let downstreamConnectionTermination = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_DC))
    /// LR: the proxy answered (an error, a filter's local reply), not the upstream.
    public static let localReply = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_LR))
    /// NR: no route matched (404).
    public static let noRouteFound = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_NR))
    /// UO: the upstream refused the stream (HTTP/2 REFUSED_STREAM, retried out).
    public static let upstreamOverflow = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_UO))
    /// DPE: a malformed request (400, 431, 501).
    public static let downstreamProtocolError = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_DPE))
    /// UPE: a malformed response from the upstream (502).
    public static let upstreamProtocolError = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_UPE))
    /// SI: the stream idle timeout ran out.
    public static let streamIdleTimeout = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_SI))
    /// DT: the client was too slow sending its request (408).
    public static let downstreamRequestTimeout = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_DT))
    /// FT: an async filter's callback ran past its timeout.
    public static let filterTimeout = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_FT))
    /// FE: a filter threw, failed or was quarantined.
    public static let filterError = ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_FE))

    /// Envoy's letters in bit order, one per flag.
    static let letters = ["UF", "UT", "UC", "DC", "LR", "NR", "UO", "DPE", "UPE", "SI", "DT", "FT", "FE"]

    /// Parses Envoy's letters joined by ',' ("UF,UT"); "" and "-" are no flags. Unknown letters are
    /// ignored.
    /// - Parameter letters: the text, as the `responseFlags` attribute and the access log give it.
    public init(letters: String) {
        var bits: UInt32 = 0
        for part in letters.split(separator: ",") {
            if let i = Self.letters.firstIndex(where: { $0 == part }) { bits |= 1 << UInt32(i) }
        }
        self.init(rawValue: bits)
    }

    /// The set flags' letters joined by ',' in bit order ("UF,UT"); "" when none.
    public var description: String {
        var out = ""
        for (i, letter) in Self.letters.enumerated() where rawValue & (1 << UInt32(i)) != 0 {
            if !out.isEmpty { out += "," }
            out += letter
        }
        return out
    }
}

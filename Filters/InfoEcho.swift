import EnvoySwift

/// `info_echo` (a test filter): shows the stream info. Adds `x-route-name` and `x-cluster` to the
/// response from the route the proxy matched (absent when none did), and logs one line per
/// exchange in its stream-complete callback, where the stream info is complete:
/// `route=<name> cluster=<name> upstream=<host> code=<status> flags=<UF,..> req_bytes=N
/// resp_bytes=N duration_us=N`.
public struct InfoEcho: HTTPFilter {
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {
        self.context = context
    }

    /// Adds the route's name and cluster to the response.
    public func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) throws -> FilterStatus {
        let info = context.streamInfo
        if let route = info.routeName { try headers.set("x-route-name", route) }
        if let cluster = info.clusterName { try headers.set("x-cluster", cluster) }
        return .continue
    }

    /// Logs what the exchange was.
    public func onStreamComplete() {
        context.log.info(Self.line(context.streamInfo))
    }

    /// The log line for `info`.
    static func line(_ info: StreamInfo) -> String {
        let (s, atto) = info.duration.components
        let us = s * 1_000_000 + atto / 1_000_000_000_000
        let flags = info.responseFlags.description
        return "route=\(info.routeName ?? "-") cluster=\(info.clusterName ?? "-") upstream=\(info.upstreamHost ?? "-") "
            + "code=\(info.responseCode.map(String.init) ?? "-") flags=\(flags.isEmpty ? "-" : flags) "
            + "req_bytes=\(info.requestBodyBytes) resp_bytes=\(info.responseBodyBytes) duration_us=\(us)"
    }
}

import EnvoySwift

/// `state_reader` (a test filter): proves that request state crosses filters, an `await` and both
/// directions. Reads the tenant `tenant_quota` stored (``StateKey/tenant``) once in the request
/// headers callback, after sleeping about a millisecond, and once in the response headers
/// callback, and answers with both in the response header `x-tenant-seen: <request>,<response>`
/// ("-" for a read that found nothing). Put it after `tenant_quota` in the chain.
public struct StateReader: AsyncHTTPFilter {
    private let context: FilterContext
    private var seenOnRequest: String?

    /// Creates the filter for one stream.
    public init(config: NoConfig, context: FilterContext) {
        self.context = context
    }

    /// Reads the tenant after an `await`.
    public mutating func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        try await Task.sleep(for: .milliseconds(1))
        seenOnRequest = context.state[.tenant]
        return .continue
    }

    /// Reads the tenant again and reports both reads.
    public mutating func onResponseHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        try headers.set("x-tenant-seen", "\(seenOnRequest ?? "-"),\(context.state[.tenant] ?? "-")")
        return .continue
    }
}

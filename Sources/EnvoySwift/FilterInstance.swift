import CEnvoySwiftABI
import CEnvoySwiftShims

/// One filter instance on one stream, behind the opaque pointer the host holds. The base class
/// lets the C hooks dispatch with one virtual call and no dynamic cast; ``FilterInstance`` is the
/// typed subclass. Used on the stream's thread only (the host never calls it concurrently).
package class FilterInstanceBase {
    /// The stream this instance serves.
    package let context: FilterContext
    /// What the last callback threw, if it failed; the test kit reports it.
    @exclusivity(unchecked) package var lastError: (any Error)?

    init(context: FilterContext) {
        self.context = context
    }

    package func onRequestHeaders(endOfStream: Bool) -> envoy_swift_status_t { ENVOY_SWIFT_STATUS_ERROR }
    package func onRequestBody(endOfStream: Bool) -> envoy_swift_status_t { ENVOY_SWIFT_STATUS_ERROR }
    package func onRequestTrailers() -> envoy_swift_status_t { ENVOY_SWIFT_STATUS_ERROR }
    package func onResponseHeaders(endOfStream: Bool) -> envoy_swift_status_t { ENVOY_SWIFT_STATUS_ERROR }
    package func onResponseBody(endOfStream: Bool) -> envoy_swift_status_t { ENVOY_SWIFT_STATUS_ERROR }
    package func onResponseTrailers() -> envoy_swift_status_t { ENVOY_SWIFT_STATUS_ERROR }
    package func onStreamComplete() {}
    /// The host stopped waiting for a running callback (`envoy_swift_filter_cancel`). Only
    /// asynchronous filters have anything to cancel.
    package func cancel() {}

    /// Maps a filter's status to the ABI's; sends a local reply through the host first.
    final func abiStatus(of s: FilterStatus) throws -> envoy_swift_status_t {
        switch s {
        case .continue:
            return ENVOY_SWIFT_STATUS_CONTINUE
        case .stopAndBuffer:
            return ENVOY_SWIFT_STATUS_STOP_AND_BUFFER
        case .stopAndBufferWatermark:
            return ENVOY_SWIFT_STATUS_STOP_AND_BUFFER_WATERMARK
        case .stopNoBuffer:
            return ENVOY_SWIFT_STATUS_STOP_NO_BUFFER
        case .localReply(let reply):
            for field in reply.headers { try field.validate() }
            try context.host.sendLocalReply(context.stream, reply)
            return ENVOY_SWIFT_STATUS_LOCAL_REPLY
        }
    }
}

/// The typed instance: holds the author's filter value and maps its results to ABI statuses.
final class FilterInstance<F: HTTPFilter>: FilterInstanceBase {
    // The host never calls one instance twice at once (DESIGN.md), so the dynamic exclusivity
    // check on every callback buys nothing here: it was a quarter of a no-op filter's cost.
    @exclusivity(unchecked) private var filter: F
    /// What the SDK's defaults mark when they run for F (see envoy_swift_shim_mark_default).
    private static var filterType: UInt { UInt(bitPattern: ObjectIdentifier(F.self)) }

    init(filter: F, context: FilterContext) {
        self.filter = filter
        super.init(context: context)
    }

    override func onRequestHeaders(endOfStream: Bool) -> envoy_swift_status_t {
        let headers = context.requestHeaders
        return run("request headers") { try $0.onRequestHeaders(headers, endOfStream: endOfStream) }
    }

    override func onRequestBody(endOfStream: Bool) -> envoy_swift_status_t {
        let body = context.requestBody
        return run("request body") { try $0.onRequestBody(body, endOfStream: endOfStream) }
    }

    override func onRequestTrailers() -> envoy_swift_status_t {
        let trailers = context.requestTrailers
        return run("request trailers") { try $0.onRequestTrailers(trailers) }
    }

    override func onResponseHeaders(endOfStream: Bool) -> envoy_swift_status_t {
        let headers = context.responseHeaders
        return run("response headers") { try $0.onResponseHeaders(headers, endOfStream: endOfStream) }
    }

    override func onResponseBody(endOfStream: Bool) -> envoy_swift_status_t {
        let body = context.responseBody
        return run("response body") { try $0.onResponseBody(body, endOfStream: endOfStream) }
    }

    override func onResponseTrailers() -> envoy_swift_status_t {
        let trailers = context.responseTrailers
        return run("response trailers") { try $0.onResponseTrailers(trailers) }
    }

    override func onStreamComplete() {
        filter.onStreamComplete()
    }

    /// Runs one callback; a thrown error becomes ENVOY_SWIFT_STATUS_ERROR (and a log line), never
    /// an exception across the C boundary.
    @inline(__always)
    private func run(_ hook: StaticString, _ call: (inout F) throws -> FilterStatus) -> envoy_swift_status_t {
        if lastError != nil { lastError = nil }
        _ = envoy_swift_shim_take_default()
        do {
            let status = try abiStatus(of: call(&filter))
            // The filter left this hook out: the host need not call it again for this config.
            return envoy_swift_shim_take_default() == Self.filterType ? ENVOY_SWIFT_STATUS_CONTINUE_SKIP : status
        } catch {
            lastError = error
            context.log.error("\(hook) failed: \(error)")
            return ENVOY_SWIFT_STATUS_ERROR
        }
    }
}

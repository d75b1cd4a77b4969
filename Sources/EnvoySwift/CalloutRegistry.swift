import Synchronization

/// The call-outs waiting for their answer, by token: the token goes to the host with the request,
/// and comes back with the answer (`envoy_swift_callout_done`), which resumes the waiting filter.
/// Each waiter is resumed exactly once: the first of the answer and the task's cancellation
/// removes it, and a later one finds nothing.
package enum CalloutRegistry {
    private static let nextToken = Atomic<UInt64>(1)
    private static let waiting = Mutex<[UInt64: CheckedContinuation<HTTPCalloutResponse, any Error>]>([:])

    /// A token no other call-out of this process has.
    static func makeToken() -> UInt64 {
        nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    static func register(_ token: UInt64, _ continuation: CheckedContinuation<HTTPCalloutResponse, any Error>) {
        waiting.withLock { $0[token] = continuation }
    }

    /// Resumes the call-out `token` with its answer; returns false when it was already resumed
    /// (or never existed).
    /// - Parameters:
    ///   - token: the token given to the host.
    ///   - result: the response, or why there is none.
    @discardableResult
    package static func complete(_ token: UInt64, _ result: Result<HTTPCalloutResponse, HTTPCalloutError>) -> Bool {
        guard let continuation = waiting.withLock({ $0.removeValue(forKey: token) }) else { return false }
        continuation.resume(with: result.mapError { $0 as any Error })
        return true
    }

    /// Whether the call-out `token` still waits for its answer.
    /// - Parameter token: the token given to the host.
    package static func isWaiting(_ token: UInt64) -> Bool {
        waiting.withLock { $0[token] != nil }
    }
}

extension FilterContext {
    /// Sends an HTTP request to a cluster of the proxy's configuration and waits for its response.
    ///
    /// Call it from a callback of an ``AsyncHTTPFilter`` (it needs the stream's callback to be
    /// running). The filter's code after the `await` runs on the stream's worker thread again.
    ///
    /// ```swift
    /// let answer = try await context.callout(HTTPCallout(cluster: "auth", path: "/check"))
    /// if answer.status != 200 { return .localReply(status: 403, body: "denied\n") }
    /// ```
    /// - Parameter request: the request.
    /// - Returns: the response, whatever its status.
    /// - Throws: ``HTTPCalloutError`` (timeout, upstream failure, cancelled, unknown cluster, a
    ///   request the host refused), or `CancellationError` when the task was cancelled before.
    public func callout(_ request: HTTPCallout) async throws -> HTTPCalloutResponse {
        try Task.checkCancellation()
        try request.validate()
        let token = CalloutRegistry.makeToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                CalloutRegistry.register(token, continuation)
                if Task.isCancelled {
                    CalloutRegistry.complete(token, .failure(.cancelled))
                    return
                }
                do throws(HostError) {
                    try host.callout(stream, request, token: token)
                } catch {
                    CalloutRegistry.complete(token, .failure(Self.calloutError(error, request)))
                }
            }
        } onCancel: {
            CalloutRegistry.complete(token, .failure(.cancelled))
        }
    }

    private static func calloutError(_ error: HostError, _ request: HTTPCallout) -> HTTPCalloutError {
        switch error {
        case .notFound: .unknownCluster(request.cluster)
        case .invalid: .invalid("the host refused the method, path or a header")
        case .gone, .cancelled: .cancelled
        case .timeout: .timeout("")
        default: .upstream(error.description)
        }
    }
}

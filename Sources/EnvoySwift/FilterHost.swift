import CEnvoySwiftABI

/// The host as the SDK sees it: one method per callback of the C ABI's `envoy_swift_host_t`.
///
/// The live implementation calls the host's function table; `EnvoySwiftTesting.TestHost`
/// implements it in memory. Filter authors do not call it: they use ``HeaderMap``,
/// ``BodyBuffer``, ``RequestInfo`` and ``FilterLogger``, which are views onto a host.
///
/// Rules every implementation follows (they are the ABI's): header names compare
/// case-insensitively; `setHeader` replaces every value of a name with one value at the end;
/// names must be HTTP tokens and values must not contain CR, LF or NUL (``HostError/invalid``);
/// a stream that has ended, or a call outside that stream's callbacks, fails with
/// ``HostError/gone``. Only ``log(_:filter:message:)``, ``logLevel``, ``workerCount`` and
/// ``wake(worker:)`` may be called from any thread at any time.
///
/// While a callback of an ``AsyncHTTPFilter`` is running (the hook returned ``HookStatus/running``)
/// the stream's callbacks stay valid on the stream's worker thread, until ``resume(_:_:)``.
public protocol FilterHost: AnyObject, Sendable {
    /// How many headers the map has.
    func headerCount(_ stream: StreamID, _ map: HeaderMapKind) throws(HostError) -> Int
    /// The `index`th header in wire order; ``HostError/notFound`` past the last.
    func header(_ stream: StreamID, _ map: HeaderMapKind, at index: Int) throws(HostError) -> HeaderField
    /// The `nth` (0-based) value of `name`, or `nil` when there are fewer.
    func headerValue(_ stream: StreamID, _ map: HeaderMapKind, name: String, nth: Int) throws(HostError) -> String?
    /// Replaces every value of `name` with `value` (adds it when absent).
    func setHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String, value: String) throws(HostError)
    /// Adds one more value of `name`.
    func addHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String, value: String) throws(HostError)
    /// Removes every value of `name`; succeeds when there was none.
    func removeHeader(_ stream: StreamID, _ map: HeaderMapKind, name: String) throws(HostError)

    /// Calls `read` with the body the current callback sees (the chunk, or everything buffered).
    /// The bytes are valid only during `read`.
    func withBody<R>(_ stream: StreamID, _ body: BodyKind, _ read: (UnsafeRawBufferPointer) -> R) throws(HostError) -> R
    /// Appends bytes to the body.
    func appendBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError)
    /// Inserts bytes before the body.
    func prependBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError)
    /// Replaces the whole body.
    func replaceBody(_ stream: StreamID, _ body: BodyKind, _ bytes: UnsafeRawBufferPointer) throws(HostError)
    /// Drops the first `count` bytes of the body (all of them when it has fewer).
    func drainBody(_ stream: StreamID, _ body: BodyKind, count: Int) throws(HostError)

    /// A fact about the stream, or `nil` when the host does not know it (yet).
    func attribute(_ stream: StreamID, _ attribute: StreamAttribute) throws(HostError) -> String?

    /// Ends the stream with `reply` instead of the upstream's response.
    func sendLocalReply(_ stream: StreamID, _ reply: LocalReply) throws(HostError)

    /// Writes a line into the host's log; `filter` names the filter instance ("" when none).
    func log(_ level: LogLevel, filter: String, message: String)
    /// The lowest level the host writes; lower levels are dropped (and need not be formatted).
    var logLevel: LogLevel { get }

    /// How many worker threads the host runs; worker indexes are `0..<workerCount`.
    var workerCount: Int { get }
    /// Asks the host to call the SDK's worker run (`envoy_swift_worker_run`) on that worker's
    /// thread, soon and never inside this call. Any thread, any time; wakes may be coalesced.
    func wake(worker: Int)
    /// Ends the running callback of `stream` with `status` (not ``HookStatus/running``); for
    /// ``HookStatus/localReply`` the reply was sent first. The host continues the chain later, never
    /// inside this call. ``HostError/gone`` when the stream ended or stopped waiting (a timeout),
    /// ``HostError/state`` when no callback of the stream is running.
    func resume(_ stream: StreamID, _ status: HookStatus) throws(HostError)
    /// Starts an HTTP call-out for `stream`. On success the host later answers once, on the stream's
    /// worker thread and never inside this call, through `envoy_swift_callout_done` with `token`.
    /// ``HostError/notFound`` for an unknown cluster, ``HostError/invalid`` for a bad method, path or
    /// header.
    func callout(_ stream: StreamID, _ request: HTTPCallout, token: UInt64) throws(HostError)
    /// Says which stream the work about to run on this worker thread belongs to (a job of an
    /// async callback's task, in the worker run); `nil` when it belongs to none. The host only
    /// records it, so that a crash in that work is blamed on the stream's running filter and
    /// request. The worker's thread only. The SDK tells the host before every job of a worker run,
    /// and `nil` once after the run's jobs.
    func jobStream(_ stream: StreamID?)

    // ABI 4: stream info, request state, metrics.

    /// What the exchange was so far: complete in the stream-complete callback, where (with
    /// ``attribute(_:_:)`` and ``requestState(_:)``) it stays valid.
    func streamInfo(_ stream: StreamID) throws(HostError) -> StreamInfo
    /// The library's state object of `stream` (one pointer shared by every filter of the chain),
    /// `nil` until set. Valid in callbacks, while one is running, and in stream-complete.
    func requestState(_ stream: StreamID) throws(HostError) -> UnsafeMutableRawPointer?
    /// Stores the state object of `stream`, once. The host hands it to
    /// `envoy_swift_stream_state_free` when the stream has ended, after every instance's destroy.
    func setRequestState(_ stream: StreamID, _ state: UnsafeMutableRawPointer) throws(HostError)
    /// Names a value for the access log (`%FILTER_STATE(name)%`), replacing an earlier one of that
    /// name. ``HostError/invalid`` for an empty name or one over 64 bytes, a value over 1 KiB.
    func logState(_ stream: StreamID, name: String, value: String) throws(HostError)
    /// Defines a metric of the filter named `filter` (its YAML name); only while its configuration
    /// is created. The same name with the same kind and labels gives the same id;
    /// ``HostError/invalid`` for a bad name, more than 4 labels or 16 buckets, bounds not
    /// ascending, or the name defined with another kind or labels.
    func defineMetric(filter: String, kind: MetricKind, name: String, labels: [String], buckets: [Double])
        throws(HostError) -> UInt32
    /// Records into metric `id`: a counter adds `value` (>= 0), a gauge adds it, a histogram
    /// observes it. `labelValues` has one value per label name. The worker's thread; no
    /// allocation. ``HostError/invalid`` for an unknown id, a wrong label count or a negative
    /// counter increment.
    func recordMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<envoy_swift_bytes_t>, value: Double)
        throws(HostError)
    /// Sets gauge `id`; as ``recordMetric(_:labelValues:value:)``.
    func setMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<envoy_swift_bytes_t>, value: Double)
        throws(HostError)
}

extension FilterHost {
    /// Records nothing: a host that cannot attribute a crash need not implement it.
    public func jobStream(_ stream: StreamID?) {}

    /// ``HostError/notFound``: a host without stream info need not implement it.
    public func streamInfo(_ stream: StreamID) throws(HostError) -> StreamInfo { throw .notFound }
    /// No state: a host without request state need not implement it.
    public func requestState(_ stream: StreamID) throws(HostError) -> UnsafeMutableRawPointer? { nil }
    /// ``HostError/state``: a host without request state need not implement it.
    public func setRequestState(_ stream: StreamID, _ state: UnsafeMutableRawPointer) throws(HostError) {
        throw .state
    }
    /// Logs nothing: a host without an access log need not implement it.
    public func logState(_ stream: StreamID, name: String, value: String) throws(HostError) {}
    /// Defines nothing (every metric gets ``unrecordedMetric``): a host without metrics need not
    /// implement it.
    public func defineMetric(filter: String, kind: MetricKind, name: String, labels: [String], buckets: [Double])
        throws(HostError) -> UInt32
    { unrecordedMetric }
    /// Records nothing.
    public func recordMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<envoy_swift_bytes_t>, value: Double)
        throws(HostError)
    {}
    /// Records nothing.
    public func setMetric(_ id: UInt32, labelValues: UnsafeBufferPointer<envoy_swift_bytes_t>, value: Double)
        throws(HostError)
    {}
}

/// The id a host without metrics gives every metric; recording into it does nothing.
public let unrecordedMetric = UInt32.max

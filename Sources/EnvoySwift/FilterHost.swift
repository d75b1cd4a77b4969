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
/// ``HostError/gone``. Only ``log(_:filter:message:)`` and ``logLevel`` may be called from any
/// thread at any time.
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
}

/// Typed values shared by the filters of one request: written by one filter, read by the filters
/// after it, in both directions and across the `await`s of an ``AsyncHTTPFilter``, until the stream
/// ends. Reach it with ``FilterContext/state``.
///
/// ```swift
/// extension StateKey where Value == String {
///     static let tenant = StateKey("tenant", logged: true)
/// }
///
/// // in one filter's onRequestHeaders:
/// context.state[.tenant] = "acme"          // and "tenant=acme" for the access log
/// // in a later filter, on the request or the response:
/// if let tenant = context.state[.tenant] { try headers.set("x-tenant", tenant) }
/// ```
///
/// Cost: a stream whose filters never write state costs nothing. The first write makes one Swift
/// object for the stream (a small dictionary) that the host keeps (`state_set`) and frees when the
/// stream ends (`envoy_swift_stream_state_free`); each read or write is one host call
/// (`state_get`), a dictionary lookup and a dynamic cast to the key's type. A key marked for the
/// access log costs a `state_log` call (the host copies the value's `description`) per write.
///
/// Valid where the host callbacks are: in a callback, across its `await`s, and in
/// ``HTTPFilter/onStreamComplete()``. Elsewhere (the stream has ended) reads are `nil` and writes
/// are dropped (``set(_:_:)`` throws ``HostError/gone``).
public struct RequestState: Sendable {
    let host: any FilterHost
    let stream: StreamID

    init(host: any FilterHost, stream: StreamID) {
        self.host = host
        self.stream = stream
    }

    /// The value under `key`, or `nil` when none was written, it was removed, or it was written
    /// with another `Value` type. Setting `nil` removes it; a failed write is dropped (use
    /// ``set(_:_:)`` to know).
    /// - Parameter key: the value's name and type.
    public subscript<Value>(key: StateKey<Value>) -> Value? {
        get {
            guard let storage = try? storage(creating: false) else { return nil }
            return storage.values[key.name] as? Value
        }
        nonmutating set {
            try? set(key, newValue)
        }
    }

    /// Writes (or, with `nil`, removes) the value under `key`. A logged key also names the value's
    /// `description` for the access log; removing a value does not take back what was logged.
    /// - Parameters:
    ///   - key: the value's name and type.
    ///   - value: the new value, or `nil` to remove it.
    /// - Throws: ``HostError/gone`` when the stream has ended (nothing is written);
    ///   ``HostError/invalid`` when the host refuses the logged value (over 1 KiB) or its log name
    ///   (empty, or over 64 bytes); the value itself is stored then.
    public func set<Value>(_ key: StateKey<Value>, _ value: Value?) throws(HostError) {
        guard let value else {
            try storage(creating: false)?.values.removeValue(forKey: key.name)
            return
        }
        try storage(creating: true)!.values[key.name] = value
        if let logName = key.logName, let describe = key.describe {
            try host.logState(stream, name: logName, value: describe(value))
        }
    }

    /// Removes the value under `key`, if any.
    /// - Parameter key: the value's name (its type does not matter).
    public func removeValue<Value>(forKey key: StateKey<Value>) {
        try? set(key, nil)
    }

    /// Whether a value of the key's type is stored under its name.
    /// - Parameter key: the value's name and type.
    public func contains<Value>(_ key: StateKey<Value>) -> Bool {
        self[key] != nil
    }

    /// The stream's storage from the host's slot; made and handed to the host on the first write.
    private func storage(creating: Bool) throws(HostError) -> RequestStateStorage? {
        if let p = try host.requestState(stream) {
            return Unmanaged<RequestStateStorage>.fromOpaque(p).takeUnretainedValue()
        }
        guard creating else { return nil }
        let storage = RequestStateStorage()
        // The host's slot holds this one reference until envoy_swift_stream_state_free.
        let p = Unmanaged.passRetained(storage).toOpaque()
        do {
            try host.setRequestState(stream, p)
        } catch {
            Unmanaged<RequestStateStorage>.fromOpaque(p).release()
            throw error
        }
        return storage
    }
}

/// The one object per stream behind ``RequestState``: what the host's state slot points to.
///
/// `@unchecked Sendable` invariant: the host hands the slot out only on the stream's worker thread
/// (during its callbacks, their tasks' jobs and stream-complete), so the dictionary is only ever
/// read and written there; it is freed by `envoy_swift_stream_state_free` after the stream ended.
package final class RequestStateStorage: @unchecked Sendable {
    /// The values by key name.
    package var values: [String: any Sendable] = [:]

    package init() {}
}

import CEnvoySwiftABI

// The hooks the host calls: every function of the header's "Hooks the library implements"
// section, exported under its C name. Each one catches everything: no Swift error crosses the C
// boundary. They are public only so the linker exports them; filter authors do not call them.

/// `uint32_t envoy_swift_abi_version(void)`: the ABI version the library was built for.
@_cdecl("envoy_swift_abi_version")
public func envoySwiftABIVersion() -> UInt32 {
    ABIVersion.current
}

/// `int envoy_swift_program_init(const envoy_swift_host_t *host)`: adopts the host's callbacks and
/// registers the library's filters. Returns 0, or a negative value (logged) on failure.
@_cdecl("envoy_swift_program_init")
public func envoySwiftProgramInit(_ host: UnsafePointer<envoy_swift_host_t>?) -> Int32 {
    Program.initialize(host)
}

/// `envoy_swift_filter_config_new`: decodes and validates one filter's configuration. Returns an
/// owned opaque config, or NULL with a one-line reason in `err` (NUL-terminated, truncated to
/// `errlen`).
@_cdecl("envoy_swift_filter_config_new")
public func envoySwiftFilterConfigNew(
    _ name: envoy_swift_bytes_t, _ pluginName: envoy_swift_bytes_t, _ configJSON: envoy_swift_bytes_t,
    _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int
) -> UnsafeMutableRawPointer? {
    guard let host = Program.liveHost else {
        writeError("envoy_swift_program_init was not called (or failed)", into: err, capacity: errlen)
        return nil
    }
    do {
        let config = try FilterRegistry.makeConfig(
            plugin: string(pluginName), filterName: string(name), json: bytes(configJSON), host: host)
        return Unmanaged.passRetained(config).toOpaque()
    } catch {
        writeError(error.message, into: err, capacity: errlen)
        return nil
    }
}

/// `envoy_swift_filter_config_destroy`: releases a config from `envoy_swift_filter_config_new`.
@_cdecl("envoy_swift_filter_config_destroy")
public func envoySwiftFilterConfigDestroy(_ config: UnsafeMutableRawPointer?) {
    guard let config else { return }
    Unmanaged<FilterConfigBox>.fromOpaque(config).release()
}

/// `envoy_swift_filter_new`: the filter instance for one stream on worker `worker`. Returns NULL
/// (after logging why) when the filter's init throws, `config` is NULL or the worker index is out
/// of range; the host then answers 500.
@_cdecl("envoy_swift_filter_new")
public func envoySwiftFilterNew(
    _ config: UnsafeMutableRawPointer?, _ stream: envoy_swift_stream_t, _ worker: UInt32
) -> UnsafeMutableRawPointer? {
    guard let config else { return nil }
    let box = Unmanaged<FilterConfigBox>.fromOpaque(config).takeUnretainedValue()
    do {
        let instance = try box.makeInstance(stream: StreamID(stream), worker: Int(worker))
        return Unmanaged.passRetained(instance).toOpaque()
    } catch {
        FilterLogger(host: box.host, filterName: box.filterName).error("creating the filter failed: \(error)")
        return nil
    }
}

/// `envoy_swift_filter_on_request_headers`.
@_cdecl("envoy_swift_filter_on_request_headers")
public func envoySwiftFilterOnRequestHeaders(_ filter: UnsafeMutableRawPointer?, _ endOfStream: Bool) -> envoy_swift_status_t {
    withInstance(filter, else: ENVOY_SWIFT_STATUS_ERROR) { $0.onRequestHeaders(endOfStream: endOfStream) }
}

/// `envoy_swift_filter_on_request_body`.
@_cdecl("envoy_swift_filter_on_request_body")
public func envoySwiftFilterOnRequestBody(_ filter: UnsafeMutableRawPointer?, _ endOfStream: Bool) -> envoy_swift_status_t {
    withInstance(filter, else: ENVOY_SWIFT_STATUS_ERROR) { $0.onRequestBody(endOfStream: endOfStream) }
}

/// `envoy_swift_filter_on_request_trailers`.
@_cdecl("envoy_swift_filter_on_request_trailers")
public func envoySwiftFilterOnRequestTrailers(_ filter: UnsafeMutableRawPointer?) -> envoy_swift_status_t {
    withInstance(filter, else: ENVOY_SWIFT_STATUS_ERROR) { $0.onRequestTrailers() }
}

/// `envoy_swift_filter_on_response_headers`.
@_cdecl("envoy_swift_filter_on_response_headers")
public func envoySwiftFilterOnResponseHeaders(_ filter: UnsafeMutableRawPointer?, _ endOfStream: Bool) -> envoy_swift_status_t {
    withInstance(filter, else: ENVOY_SWIFT_STATUS_ERROR) { $0.onResponseHeaders(endOfStream: endOfStream) }
}

/// `envoy_swift_filter_on_response_body`.
@_cdecl("envoy_swift_filter_on_response_body")
public func envoySwiftFilterOnResponseBody(_ filter: UnsafeMutableRawPointer?, _ endOfStream: Bool) -> envoy_swift_status_t {
    withInstance(filter, else: ENVOY_SWIFT_STATUS_ERROR) { $0.onResponseBody(endOfStream: endOfStream) }
}

/// `envoy_swift_filter_on_response_trailers`.
@_cdecl("envoy_swift_filter_on_response_trailers")
public func envoySwiftFilterOnResponseTrailers(_ filter: UnsafeMutableRawPointer?) -> envoy_swift_status_t {
    withInstance(filter, else: ENVOY_SWIFT_STATUS_ERROR) { $0.onResponseTrailers() }
}

/// `envoy_swift_filter_cancel`: the host stopped waiting for the instance's running callback (its
/// timeout): the callback's task is cancelled and its result dropped.
@_cdecl("envoy_swift_filter_cancel")
public func envoySwiftFilterCancel(_ filter: UnsafeMutableRawPointer?) {
    withInstance(filter, else: ()) { $0.cancel() }
}

/// `envoy_swift_filter_on_stream_complete`: the filter's last callback. During a running callback
/// (the client went away) it cancels the callback's task, and the filter's `onStreamComplete()`
/// runs when the task has ended.
@_cdecl("envoy_swift_filter_on_stream_complete")
public func envoySwiftFilterOnStreamComplete(_ filter: UnsafeMutableRawPointer?) {
    withInstance(filter, else: ()) { $0.onStreamComplete() }
}

/// `envoy_swift_filter_destroy`: releases the host's reference to an instance from
/// `envoy_swift_filter_new` (a callback's task still running keeps it until the task ends).
@_cdecl("envoy_swift_filter_destroy")
public func envoySwiftFilterDestroy(_ filter: UnsafeMutableRawPointer?) {
    guard let filter else { return }
    Unmanaged<FilterInstanceBase>.fromOpaque(filter).release()
}

/// `envoy_swift_stream_state_free`: releases a stream's request state (the one reference the
/// host's slot held since `state_set`), once, after the stream ended.
@_cdecl("envoy_swift_stream_state_free")
public func envoySwiftStreamStateFree(_ state: UnsafeMutableRawPointer?) {
    guard let state else { return }
    Unmanaged<RequestStateStorage>.fromOpaque(state).release()
}

/// `envoy_swift_worker_run`: runs the async filters' jobs queued for `worker`, on its thread (the
/// host's answer to `wake`).
@_cdecl("envoy_swift_worker_run")
public func envoySwiftWorkerRun(_ worker: UInt32) {
    Program.liveHost?.workers.run(Int(worker))
}

/// `envoy_swift_callout_done`: the answer to the call-out `token`; resumes the filter waiting for
/// it (later, through the worker's executor). An unknown or already answered token is ignored.
@_cdecl("envoy_swift_callout_done")
public func envoySwiftCalloutDone(_ token: UInt64, _ response: UnsafePointer<envoy_swift_callout_response_t>?) {
    guard let r = response?.pointee else {
        CalloutRegistry.complete(token, .failure(.upstream("no response")))
        return
    }
    let reason = LiveHost.string(r.reason)
    let result: Result<HTTPCalloutResponse, HTTPCalloutError>
    switch r.result {
    case ENVOY_SWIFT_OK.rawValue:
        var headers: [HeaderField] = []
        if let names = r.header_names, let values = r.header_values {
            headers.reserveCapacity(r.header_count)
            for i in 0..<r.header_count {
                headers.append(HeaderField(LiveHost.string(names[i]), LiveHost.string(values[i])))
            }
        }
        result = .success(HTTPCalloutResponse(status: Int(r.status), headers: headers, body: bytes(r.body)))
    case ENVOY_SWIFT_ERR_TIMEOUT.rawValue:
        result = .failure(.timeout(reason))
    case ENVOY_SWIFT_ERR_CANCELLED.rawValue:
        result = .failure(.cancelled)
    case ENVOY_SWIFT_ERR_UPSTREAM.rawValue:
        result = .failure(.upstream(reason))
    default:
        result = .failure(.upstream(reason.isEmpty ? "host error \(r.result)" : reason))
    }
    CalloutRegistry.complete(token, result)
}

// MARK: helpers

/// Calls `body` with the instance behind a host's pointer. The host holds the instance (filter_new
/// retained it) until filter_destroy, so no retain/release is needed around each hook.
@inline(__always)
private func withInstance<R>(_ p: UnsafeMutableRawPointer?, else fallback: R, _ body: (FilterInstanceBase) -> R) -> R {
    guard let p else { return fallback }
    return Unmanaged<FilterInstanceBase>.fromOpaque(p)._withUnsafeGuaranteedRef(body)
}

private func bytes(_ b: envoy_swift_bytes_t) -> [UInt8] {
    guard let p = b.ptr, b.length > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: p, count: b.length))
}

private func string(_ b: envoy_swift_bytes_t) -> String {
    String(decoding: bytes(b), as: UTF8.self)
}

/// Copies `message` into the host's buffer as one NUL-terminated line, cut at a UTF-8 boundary.
private func writeError(_ message: String, into err: UnsafeMutablePointer<CChar>?, capacity: Int) {
    guard let err, capacity > 0 else { return }
    var line = message.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }
    if line.count > capacity - 1 {
        var n = capacity - 1
        while n > 0 && line[n] & 0xC0 == 0x80 { n -= 1 }
        line.removeSubrange(n...)
    }
    line.withUnsafeBytes { src in
        UnsafeMutableRawPointer(err).copyMemory(from: src.baseAddress ?? UnsafeRawPointer(err), byteCount: src.count)
    }
    err[line.count] = 0
}

// The reference filters built into libswiftfilter.so, one file each, and the one function that
// tells the host their plugin names. The SDK they are written against is EnvoySwift.
import EnvoySwift

/// Registers the reference filters under the plugin names the YAML uses. The SDK calls it when
/// the host initialises the library (`envoy_swift_program_init`).
@_cdecl("envoy_swift_register_filters")
public func registerFilters() {
    FilterRegistry.register(HeaderRewrite.self, as: "header_rewrite")
    FilterRegistry.register(BearerAuth.self, as: "bearer_auth")
    FilterRegistry.register(BodyReplace.self, as: "body_replace")
    FilterRegistry.register(RouteByQuery.self, as: "route_by_query")
    FilterRegistry.register(ChainProbe.self, as: "chain_probe")
    FilterRegistry.register(BadHeader.self, as: "bad_header")
    FilterRegistry.register(Throws.self, as: "throws")
    FilterRegistry.register(AsyncSleep.self, as: "async_sleep")
    FilterRegistry.register(Noop.self, as: "noop")
    FilterRegistry.register(AsyncNoop.self, as: "async_noop")
    FilterRegistry.register(CalloutAuth.self, as: "callout_auth")
    FilterRegistry.register(ResumeProbe.self, as: "resume_probe")
    FilterRegistry.register(RequestBuffer.self, as: "request_buffer")
    FilterRegistry.register(HeaderTouch.self, as: "header_touch")
    FilterRegistry.register(Crash.self, as: "crash")
    FilterRegistry.register(CrashAsync.self, as: "crash_async")
    FilterRegistry.register(TenantQuota.self, as: "tenant_quota")
    FilterRegistry.register(StateReader.self, as: "state_reader")
    FilterRegistry.register(InfoEcho.self, as: "info_echo")
    FilterRegistry.register(MetricProbe.self, as: "metric_probe")
}

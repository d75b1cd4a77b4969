import CEnvoySwiftABI
import Testing

@testable import EnvoySwift

@Suite struct ABIVersionTests {
    @Test func exportedVersionMatchesTheHeader() {
        #expect(envoySwiftABIVersion() == ABIVersion.current)
        #expect(ABIVersion.current == UInt32(ENVOY_SWIFT_ABI_VERSION))
        #expect(ABIVersion.current == 4)
    }

    @Test func enumsMatchTheHeader() {
        #expect(HeaderMapKind.requestHeaders.rawValue == ENVOY_SWIFT_REQUEST_HEADERS.rawValue)
        #expect(HeaderMapKind.requestTrailers.rawValue == ENVOY_SWIFT_REQUEST_TRAILERS.rawValue)
        #expect(HeaderMapKind.responseHeaders.rawValue == ENVOY_SWIFT_RESPONSE_HEADERS.rawValue)
        #expect(HeaderMapKind.responseTrailers.rawValue == ENVOY_SWIFT_RESPONSE_TRAILERS.rawValue)
        #expect(BodyKind.request.rawValue == ENVOY_SWIFT_REQUEST_BODY.rawValue)
        #expect(BodyKind.response.rawValue == ENVOY_SWIFT_RESPONSE_BODY.rawValue)
        #expect(StreamAttribute.method.rawValue == ENVOY_SWIFT_ATTR_METHOD.rawValue)
        #expect(StreamAttribute.clientAddress.rawValue == ENVOY_SWIFT_ATTR_CLIENT_ADDRESS.rawValue)
        #expect(StreamAttribute.responseStatus.rawValue == ENVOY_SWIFT_ATTR_RESPONSE_STATUS.rawValue)
        #expect(HookStatus.continue.rawValue == ENVOY_SWIFT_STATUS_CONTINUE.rawValue)
        #expect(HookStatus.stopAndBuffer.rawValue == ENVOY_SWIFT_STATUS_STOP_AND_BUFFER.rawValue)
        #expect(HookStatus.stopAndBufferWatermark.rawValue == ENVOY_SWIFT_STATUS_STOP_AND_BUFFER_WATERMARK.rawValue)
        #expect(HookStatus.stopNoBuffer.rawValue == ENVOY_SWIFT_STATUS_STOP_NO_BUFFER.rawValue)
        #expect(HookStatus.localReply.rawValue == ENVOY_SWIFT_STATUS_LOCAL_REPLY.rawValue)
        #expect(HookStatus.error.rawValue == ENVOY_SWIFT_STATUS_ERROR.rawValue)
        #expect(HookStatus.running.rawValue == ENVOY_SWIFT_STATUS_RUNNING.rawValue)
        #expect(LogLevel.debug.rawValue == ENVOY_SWIFT_LOG_DEBUG.rawValue)
        #expect(LogLevel.error.rawValue == ENVOY_SWIFT_LOG_ERROR.rawValue)
        #expect(HostError(result: ENVOY_SWIFT_ERR_GONE.rawValue) == .gone)
        #expect(HostError(result: ENVOY_SWIFT_ERR_NOT_FOUND.rawValue) == .notFound)
        #expect(HostError(result: ENVOY_SWIFT_ERR_INVALID.rawValue) == .invalid)
        #expect(HostError(result: ENVOY_SWIFT_ERR_STATE.rawValue) == .state)
        #expect(HostError(result: ENVOY_SWIFT_ERR_NOMEM.rawValue) == .noMemory)
        #expect(HostError(result: ENVOY_SWIFT_ERR_TIMEOUT.rawValue) == .timeout)
        #expect(HostError(result: ENVOY_SWIFT_ERR_UPSTREAM.rawValue) == .upstream)
        #expect(HostError(result: ENVOY_SWIFT_ERR_CANCELLED.rawValue) == .cancelled)
        for e in [HostError.gone, .notFound, .invalid, .state, .noMemory, .timeout, .upstream, .cancelled] {
            #expect(HostError(result: e.result) == e)
        }
        #expect(HostError(result: ENVOY_SWIFT_OK.rawValue) == nil)
        #expect(HostError(result: -99) == .unknown(-99))
    }
}

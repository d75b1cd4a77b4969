import CEnvoySwiftABI
import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct StreamInfoTests {
    @Test func flagsUseEnvoysLettersInBitOrder() {
        #expect(ResponseFlags().description == "")
        #expect(([.upstreamRequestTimeout, .upstreamConnectionFailure] as ResponseFlags).description == "UF,UT")
        #expect(ResponseFlags(rawValue: UInt32(ENVOY_SWIFT_RF_FE) | UInt32(ENVOY_SWIFT_RF_LR)).description == "LR,FE")
        let all: ResponseFlags = [
            .upstreamConnectionFailure, .upstreamRequestTimeout, .upstreamConnectionTermination,
            .downstreamConnectionTermination, .localReply, .noRouteFound, .upstreamOverflow, .downstreamProtocolError,
            .upstreamProtocolError, .streamIdleTimeout, .downstreamRequestTimeout, .filterTimeout, .filterError,
        ]
        #expect(all.description == "UF,UT,UC,DC,LR,NR,UO,DPE,UPE,SI,DT,FT,FE")
        #expect(all.rawValue == (1 << 13) - 1)
        #expect(ResponseFlags(letters: "UF,UT") == [.upstreamConnectionFailure, .upstreamRequestTimeout])
        #expect(ResponseFlags(letters: "-").isEmpty)
        #expect(ResponseFlags(letters: all.description) == all)
    }

    @Test func newAttributesMatchTheHeader() {
        #expect(StreamAttribute.routeName.rawValue == ENVOY_SWIFT_ATTR_ROUTE_NAME.rawValue)
        #expect(StreamAttribute.cluster.rawValue == ENVOY_SWIFT_ATTR_CLUSTER.rawValue)
        #expect(StreamAttribute.upstreamHost.rawValue == ENVOY_SWIFT_ATTR_UPSTREAM_HOST.rawValue)
        #expect(StreamAttribute.responseFlags.rawValue == ENVOY_SWIFT_ATTR_RESPONSE_FLAGS.rawValue)
        #expect(MetricKind.counter.rawValue == ENVOY_SWIFT_METRIC_COUNTER.rawValue)
        #expect(MetricKind.gauge.rawValue == ENVOY_SWIFT_METRIC_GAUGE.rawValue)
        #expect(MetricKind.histogram.rawValue == ENVOY_SWIFT_METRIC_HISTOGRAM.rawValue)
    }

    @Test func infoEchoAddsRouteAndClusterAndLogsOnComplete() async throws {
        let f = try FilterTester(InfoEcho.self, name: "echo")
        let s = try f.stream()
        s.streamInfo.routeName = "api"
        s.streamInfo.clusterName = "backend"
        s.streamInfo.upstreamHost = "127.0.0.1:8080"
        _ = try await s.sendRequestHeaders()
        _ = try await s.sendRequestBody("abc", endOfStream: true)
        _ = try await s.sendResponseHeaders(status: 201)
        _ = try await s.sendResponseBody("hello", endOfStream: true)
        #expect(s.responseHeader("x-route-name") == "api")
        #expect(s.responseHeader("x-cluster") == "backend")
        s.streamInfo.duration = .microseconds(1500)
        s.streamInfo.responseFlags = [.upstreamConnectionTermination]
        s.complete()
        #expect(
            f.logs.map(\.message) == [
                "route=api cluster=backend upstream=127.0.0.1:8080 code=201 flags=UC req_bytes=3 resp_bytes=5 duration_us=1500"
            ])
        #expect(s.streamInfo.responseCode == 201)
    }

    @Test func withoutARouteThereAreNoHeaders() async throws {
        let s = try FilterTester(InfoEcho.self).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(status: 404, endOfStream: true)
        #expect(s.responseHeader("x-route-name") == nil)
        #expect(s.responseHeader("x-cluster") == nil)
    }

    @Test func aLocalReplySetsTheFlagAndTheCode() async throws {
        let s = try FilterTester(BearerAuth.self, configJSON: #"{"token": "t"}"#).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.streamInfo.responseFlags == .localReply)
        #expect(s.streamInfo.responseCode == 401)
    }
}

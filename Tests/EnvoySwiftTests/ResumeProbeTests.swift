import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

/// `resume_probe`. Its samples are process-wide, so the suite runs serially.
@Suite(.serialized) struct ResumeProbeTests {
    @Test func measuresResumesAndReportsThem() async throws {
        let probe = try FilterTester(ResumeProbe.self, configJSON: #"{"stats_path": "/_s"}"#)
        ResumeProbe.samples.withLock { $0.removeAll() }
        for _ in 0..<3 {
            let s = try probe.stream(TestRequest(path: "/x"))
            #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        }
        let samples = ResumeProbe.samples.withLock { $0 }
        #expect(samples.count == 3)
        #expect(samples.allSatisfy { $0 > 0 && $0 < 5_000_000_000 })
        let stats = try probe.stream(TestRequest(path: "/_s"))
        let status = try await stats.sendRequestHeaders(endOfStream: true)
        guard case .localReply(let reply) = status else {
            Issue.record("expected a local reply, got \(status)")
            return
        }
        #expect(reply.status == 200)
        #expect(reply.header("content-type") == "text/plain")
        #expect(reply.bodyString == ResumeProbe.statistics(samples))
        #expect(reply.bodyString.hasPrefix("samples=3 p50_ns="))
        #expect(ResumeProbe.samples.withLock { $0.isEmpty })
    }

    @Test func statistics() {
        #expect(ResumeProbe.statistics([]) == "samples=0 p50_ns=0 p99_ns=0\n")
        #expect(ResumeProbe.statistics([7]) == "samples=1 p50_ns=7 p99_ns=7\n")
        #expect(ResumeProbe.statistics(Array(1...100).reversed()) == "samples=100 p50_ns=50 p99_ns=99\n")
        #expect(ResumeProbe.statistics(Array(1...1000)) == "samples=1000 p50_ns=500 p99_ns=990\n")
    }

    @Test func theStatsPathDefaults() throws {
        #expect(try PluginConfigDecoder.decode(ResumeProbe.Config.self, from: Array("null".utf8)).statsPath == "/_resume_stats")
    }
}

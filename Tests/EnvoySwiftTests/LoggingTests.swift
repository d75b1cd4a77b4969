import EnvoySwift
import EnvoySwiftTesting
import Testing

@Suite struct LoggingTests {
    @Test func logsCarryTheLevelAndTheFilterName() async throws {
        let host = TestHost()
        let s = try Probe.stream(host: host) { c in
            c.requestHeaders = { _, _, ctx in
                ctx.log.debug("d")
                ctx.log.info("i")
                ctx.log.warn("w")
                ctx.log.error("e")
                ctx.log.log(.info, "direct")
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(host.logs.map(\.description) == [
            "debug [probe] d", "info [probe] i", "warn [probe] w", "error [probe] e", "info [probe] direct",
        ])
    }

    @Test func messagesBelowTheLevelAreNeverBuilt() async throws {
        let host = TestHost(logLevel: .warn)
        let built = Box(0)
        let s = try Probe.stream(host: host) { c in
            c.requestHeaders = { _, _, ctx in
                func expensive() -> String {
                    built.value += 1
                    return "built"
                }
                #expect(!ctx.log.isEnabled(.info))
                #expect(ctx.log.isEnabled(.error))
                ctx.log.debug(expensive())
                ctx.log.info(expensive())
                ctx.log.warn(expensive())
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(built.value == 1)
        #expect(host.logs == [LogRecord(level: .warn, filter: "probe", message: "built")])
        host.clearLogs()
        #expect(host.logs.isEmpty)
    }

    @Test func levelsAreOrdered() {
        #expect(LogLevel.debug < .info && LogLevel.info < .warn && LogLevel.warn < .error)
        #expect(LogLevel.allCases.map(\.description) == ["debug", "info", "warn", "error"])
    }
}

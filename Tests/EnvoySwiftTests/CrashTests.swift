import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

/// `crash` and `crash_async`: without the header they continue (or answer `reply`); with it the
/// process dies of a Swift trap, checked in a child process (an exit test).
@Suite struct CrashTests {
    @Test(arguments: ["crash", "crash_async"])
    func withoutTheHeaderTheyContinue(_ plugin: String) async throws {
        registerFilters()
        let s = try FilterTester(plugin: plugin).stream(TestRequest(headers: ["x-other": "1"]))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(s.localReply == nil)
    }

    @Test(arguments: ["crash", "crash_async"])
    func withoutTheHeaderTheyAnswerTheReply(_ plugin: String) async throws {
        registerFilters()
        let s = try FilterTester(plugin: plugin, configJSON: #"{"header": "x-die", "reply": "alive\n"}"#)
            .stream(TestRequest(headers: ["x-crash": "1"]))
        let status = try await s.sendRequestHeaders(endOfStream: true)
        #expect(status == .localReply(status: 200, headers: ["content-type": "text/plain"], body: "alive\n"))
        #expect(s.localReply?.status == 200)
    }

    @Test(arguments: ["crash", "crash_async"])
    func aHeaderNameThatIsNotATokenIsRefused(_ plugin: String) throws {
        registerFilters()
        #expect(throws: ConfigError("header must be an HTTP header name")) {
            try FilterTester(plugin: plugin, configJSON: #"{"header": "x crash"}"#)
        }
    }

    @Test func theDefaultsAreXCrashAndNoReply() {
        let c = Crash.Config()
        #expect(c.header == "x-crash")
        #expect(c.reply == nil)
    }

    @Test func theSyncFilterTrapsInTheHook() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let s = try FilterTester(Crash.self).stream(TestRequest(headers: ["x-crash": ""]))
            _ = try await s.sendRequestHeaders(endOfStream: true)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("Index out of range"))
    }

    @Test func theAsyncFilterTrapsAfterItsAwait() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let s = try FilterTester(CrashAsync.self, configJSON: #"{"header": "x-die"}"#)
                .stream(TestRequest(headers: ["X-Die": "now"]))
            _ = try await s.sendRequestHeaders(endOfStream: true)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("Index out of range"))
    }
}

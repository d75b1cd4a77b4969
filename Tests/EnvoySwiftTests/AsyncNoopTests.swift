import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct AsyncNoopTests {
    @Test(arguments: ["null", #"{"yield": true}"#, #"{"yield": false}"#])
    func continuesEverything(_ json: String) async throws {
        let s = try FilterTester(AsyncNoop.self, configJSON: json).stream()
        #expect(try await s.sendRequestHeaders() == .continue)
        #expect(try await s.sendRequestBody("a", endOfStream: true) == .continue)
        #expect(try await s.sendResponseHeaders() == .continue)
        #expect(try await s.sendResponseBody("b", endOfStream: true) == .continue)
        #expect(s.forwardedRequestBodyString == "a")
        #expect(s.forwardedResponseBodyString == "b")
    }

    @Test func yieldIsTheDefault() throws {
        #expect(try PluginConfigDecoder.decode(AsyncNoop.Config.self, from: Array("{}".utf8)).yield)
        #expect(try !PluginConfigDecoder.decode(AsyncNoop.Config.self, from: Array(#"{"yield": false}"#.utf8)).yield)
    }
}

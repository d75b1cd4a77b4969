import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct RouteByQueryTests {
    let router: FilterTester

    init() throws {
        router = try FilterTester(RouteByQuery.self, configJSON: #"{"param": "backend", "header": "x-route"}"#)
    }

    func route(_ path: String, _ headers: [HeaderField] = []) async throws -> [String] {
        let s = try router.stream(TestRequest(path: path, headers: headers))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        return s.requestHeaders.filter { HeaderField.namesEqual($0.name, "x-route") }.map(\.value)
    }

    @Test func setsTheHeaderFromTheQuery() async throws {
        #expect(try await route("/x?backend=canary") == ["canary"])
        #expect(try await route("/x?a=1&backend=blue_green-2") == ["blue_green-2"])
    }

    @Test func aClientCannotSpoofTheHeader() async throws {
        #expect(try await route("/x", [HeaderField("X-Route", "canary"), HeaderField("x-route", "b")]) == [])
        #expect(try await route("/x?backend=stable", [HeaderField("x-route", "canary")]) == ["stable"])
    }

    @Test(arguments: ["/x?backend=", "/x?backend=a%20b", "/x?backend=../etc", "/x?backend=a%0d%0ax-evil:1", "/x?other=canary"])
    func unacceptableValuesSetNothing(_ path: String) async throws {
        #expect(try await route(path) == [])
    }

    @Test func defaults() async throws {
        let s = try FilterTester(RouteByQuery.self).stream(TestRequest(path: "/?backend=c1"))
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeader("x-route") == "c1")
    }
}

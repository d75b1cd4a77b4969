import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct BearerAuthTests {
    let auth: FilterTester

    init() throws {
        auth = try FilterTester(BearerAuth.self, configJSON: #"{"token": "s3cret", "realm": "test"}"#, name: "auth")
    }

    static let unauthorized = FilterStatus.localReply(
        status: 401, headers: ["www-authenticate": "Bearer realm=\"test\"", "content-type": "text/plain"],
        body: "unauthorized\n")

    @Test(arguments: [nil, "Bearer wrong", "Bearer s3cre", "Bearer s3crett", "Basic czNjcmV0", "Bearer ", "s3cret", "Bearers3cret"])
    func refusesWithout401(_ authorization: String?) async throws {
        let headers = [HeaderField("host", "t")] + (authorization.map { [HeaderField("authorization", $0)] } ?? [])
        let s = try auth.stream(TestRequest(path: "/private", headers: headers))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == Self.unauthorized)
        #expect(s.localReply?.status == 401)
        #expect(s.localReply?.header("WWW-Authenticate") == "Bearer realm=\"test\"")
        #expect(s.localReply?.bodyString == "unauthorized\n")
    }

    @Test(arguments: ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"])
    func letsTheTokenThroughAndKeepsTheHeader(_ authorization: String) async throws {
        let s = try auth.stream(TestRequest(path: "/private", headers: ["authorization": authorization]))
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(s.requestHeader("authorization") == authorization)
        #expect(s.localReply == nil)
    }

    @Test func theRealmDefaults() async throws {
        let s = try FilterTester(BearerAuth.self, configJSON: #"{"token": "x"}"#).stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.localReply?.header("www-authenticate") == "Bearer realm=\"envoy-swift\"")
    }

    @Test func bearerParsing() {
        #expect(BearerAuth.isBearer("Bearer t", token: "t"))
        #expect(BearerAuth.isBearer("bEaReR    t", token: "t"))
        #expect(!BearerAuth.isBearer("Bearer", token: "t"))
        #expect(!BearerAuth.isBearer("Bearer  ", token: "t"))
        #expect(!BearerAuth.isBearer("Bearer t ", token: "t"))
        #expect(!BearerAuth.isBearer("Bearer\tt", token: "t"))
    }

    @Test func constantTimeCompare() {
        #expect(BearerAuth.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!BearerAuth.constantTimeEquals(Array("abd".utf8), Array("abc".utf8)))
        #expect(!BearerAuth.constantTimeEquals(Array("ab".utf8), Array("abc".utf8)))
        #expect(!BearerAuth.constantTimeEquals(Array("abcd".utf8), Array("abc".utf8)))
        #expect(!BearerAuth.constantTimeEquals(Array("abc\0".utf8), Array("abc".utf8)))
    }
}

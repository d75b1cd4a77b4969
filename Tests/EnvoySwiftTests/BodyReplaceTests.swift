import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct BodyReplaceTests {
    let replace: FilterTester

    init() throws {
        replace = try FilterTester(BodyReplace.self, configJSON: #"{"find": "upstream", "replace": "UPSTREAM"}"#)
    }

    @Test func buffersATextResponseAndReplacesAcrossChunks() async throws {
        let s = try replace.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(try await s.sendResponseHeaders(headers: ["Content-Type": "text/plain; charset=utf-8"]) == .stopAndBuffer)
        #expect(try await s.sendResponseBody("upstream ok, up", endOfStream: false) == .stopAndBuffer)
        #expect(s.forwardedResponseBody.isEmpty)
        #expect(try await s.sendResponseBody("stream upstreamupstream", endOfStream: true) == .continue)
        #expect(s.forwardedResponseBodyString == "UPSTREAM ok, UPSTREAM UPSTREAMUPSTREAM")
    }

    @Test func otherTypesStream() async throws {
        let s = try replace.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(try await s.sendResponseHeaders(headers: ["content-type": "application/octet-stream"]) == .continue)
        #expect(try await s.sendResponseBody("upstream", endOfStream: false) == .continue)
        #expect(try await s.sendResponseBody("upstream", endOfStream: true) == .continue)
        #expect(s.forwardedResponseBodyString == "upstreamupstream")
    }

    @Test func noContentTypeOrNoBodyContinues() async throws {
        let s = try replace.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(try await s.sendResponseHeaders(headers: [], endOfStream: false) == .continue)
        let t = try replace.stream()
        _ = try await t.sendRequestHeaders(endOfStream: true)
        #expect(try await t.sendResponseHeaders(headers: ["content-type": "text/html"], endOfStream: true) == .continue)
    }

    @Test func contentTypesArePrefixesAnyCase() async throws {
        let f = try FilterTester(
            BodyReplace.self, configJSON: #"{"find": "a", "replace": "", "content_types": ["application/JSON", "text/csv"]}"#)
        for (type, expected) in [("application/json", FilterStatus.stopAndBuffer), ("TEXT/CSV", .stopAndBuffer), ("text/plain", .continue)] {
            let s = try f.stream()
            _ = try await s.sendRequestHeaders(endOfStream: true)
            #expect(try await s.sendResponseHeaders(headers: [HeaderField("content-type", type)]) == expected)
        }
        let s = try f.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(headers: ["content-type": "application/json"])
        _ = try await s.sendResponseBody(#"{"a":"banana"}"#, endOfStream: true)
        #expect(s.forwardedResponseBodyString == #"{"":"bnn"}"#)
    }

    @Test func noMatchLeavesTheBodyAlone() async throws {
        let s = try replace.stream()
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(headers: ["content-type": "text/plain"])
        _ = try await s.sendResponseBody("nothing here", endOfStream: true)
        #expect(s.forwardedResponseBodyString == "nothing here")
    }

    @Test func replacingIsLeftToRightAndNonOverlapping() {
        func run(_ find: String, _ with: String, _ text: String) -> String {
            let bytes = Array(text.utf8)
            let (out, n) = bytes.withUnsafeBytes { BodyReplace.replacing(Array(find.utf8), with: Array(with.utf8), in: $0) }
            return n == 0 ? text : String(decoding: out, as: UTF8.self)
        }
        #expect(run("aa", "b", "aaaaa") == "bba")
        #expect(run("ab", "", "xabyab") == "xy")
        #expect(run("long", "x", "lon") == "lon")
        #expect(run("é", "e", "café é") == "cafe e")
    }
}

import EnvoySwift
import EnvoySwiftTesting
import Testing

@Suite struct BodyBufferTests {
    @Test func readsTheChunkAsBytesStringAndCount() async throws {
        let seen = Box<[String]>([])
        let s = try Probe.stream { c in
            c.requestBody = { b, eos, _ in
                #expect(b.kind == .request)
                #expect(b.count == 5)
                #expect(!b.isEmpty)
                #expect(b.bytes == Array("hello".utf8))
                #expect(b.withUnsafeBytes { $0.first } == UInt8(ascii: "h"))
                seen.value.append(b.string + (eos ? "." : ""))
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders()
        #expect(try await s.sendRequestBody("hello", endOfStream: false) == .continue)
        #expect(try await s.sendRequestBody("hello", endOfStream: true) == .continue)
        #expect(seen.value == ["hello", "hello."])
        #expect(s.forwardedRequestBodyString == "hellohello")
    }

    @Test func appendPrependReplaceDrain() async throws {
        let s = try Probe.stream { c in
            c.responseBody = { b, _, _ in
                try b.append(" world")
                try b.prepend([UInt8(ascii: ">")])
                #expect(b.string == ">hello world")
                try b.drain(1)
                #expect(b.string == "hello world")
                try b.replace("HELLO")
                try b.append("!".utf8)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(headers: ["content-type": "text/plain"])
        #expect(try await s.sendResponseBody("hello", endOfStream: true) == .continue)
        #expect(s.forwardedResponseBodyString == "HELLO!")
    }

    @Test func drainingMoreThanTheBodyEmptiesIt() async throws {
        let s = try Probe.stream { c in
            c.requestBody = { b, _, _ in
                try b.drain(100)
                #expect(b.isEmpty)
                try b.drain(-3)
                try b.append("x")
                try b.removeAll()
                #expect(b.count == 0)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders()
        _ = try await s.sendRequestBody("abc", endOfStream: true)
        #expect(s.forwardedRequestBody == [])
    }

    @Test func theBodyIsOnlyReachableInItsBodyCallback() async throws {
        let s = try Probe.stream { c in
            c.requestHeaders = { _, _, ctx in
                #expect(ctx.requestBody.isEmpty)
                #expect(throws: HostError.state) { try ctx.requestBody.append("x") }
                return .continue
            }
            c.requestBody = { _, _, ctx in
                #expect(throws: HostError.state) { try ctx.responseBody.append("x") }
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders()
        _ = try await s.sendRequestBody("a", endOfStream: true)
    }

    @Test func binaryBytesRoundTrip() async throws {
        let all = (0...255).map { UInt8($0) }
        let s = try Probe.stream { c in
            c.requestBody = { b, _, _ in
                #expect(b.bytes == all)
                try b.replace(b.bytes.reversed())
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders()
        _ = try await s.sendRequestBody(all, endOfStream: true)
        #expect(s.forwardedRequestBody == all.reversed())
    }
}

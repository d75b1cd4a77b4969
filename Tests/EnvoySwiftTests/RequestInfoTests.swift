import EnvoySwift
import EnvoySwiftTesting
import Testing

@Suite struct RequestInfoTests {
    @Test func factsComeFromTheHost() async throws {
        let request = TestRequest(
            method: "POST", path: "/a/b?x=1&y=2", headers: [HeaderField("Host", "example.com:8080")],
            scheme: "http", httpVersion: "HTTP/1.0", clientAddress: "[::1]:5555")
        let s = try Probe.stream(request) { c in
            c.requestHeaders = { _, _, ctx in
                let r = ctx.request
                #expect(r.method == "POST")
                #expect(r.path == "/a/b")
                #expect(r.query == "x=1&y=2")
                #expect(r.authority == "example.com:8080")
                #expect(r.scheme == "http")
                #expect(r.httpVersion == "HTTP/1.0")
                #expect(r.clientAddress == "[::1]:5555")
                #expect(ctx.responseStatus == nil)
                #expect(ctx.filterName == "probe")
                return .continue
            }
            c.responseHeaders = { _, _, ctx in
                #expect(ctx.responseStatus == 404)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(status: 404, headers: [], endOfStream: true)
    }

    @Test func queryParameters() async throws {
        let s = try Probe.stream(TestRequest(path: "/?a=1&b=x+y&c=%41%2f&flag&a=2&empty=&bad=%zz")) { c in
            c.requestHeaders = { _, _, ctx in
                let r = ctx.request
                #expect(r.queryParameter("a") == "1")
                #expect(r.queryParameter("b") == "x y")
                #expect(r.queryParameter("c") == "A/")
                #expect(r.queryParameter("flag") == "")
                #expect(r.queryParameter("empty") == "")
                #expect(r.queryParameter("bad") == "%zz")
                #expect(r.queryParameter("missing") == nil)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
    }

    @Test func noQuery() async throws {
        let s = try Probe.stream(TestRequest(path: "/plain")) { c in
            c.requestHeaders = { _, _, ctx in
                #expect(ctx.request.query == "")
                #expect(ctx.request.authority == "")
                #expect(ctx.request.queryParameter("a") == nil)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
    }
}

import EnvoySwift
import EnvoySwiftTesting
import Testing

@Suite struct HeaderMapTests {
    static let request = TestRequest(
        path: "/", headers: ["Host": "example.com", "Accept": "text/html", "X-Multi": "1", "x-multi": "2", "Cookie": "a=b"])

    @Test func getIsCaseInsensitiveAndReturnsTheFirstValue() async throws {
        let seen = Box<[String?]>([])
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                seen.value = [h["accept"], h["ACCEPT"], h["x-multi"], h["missing"]]
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(seen.value == ["text/html", "text/html", "1", nil])
    }

    @Test func valuesContainsAndCount() async throws {
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                #expect(h.values("X-MULTI") == ["1", "2"])
                #expect(h.values("none") == [])
                #expect(h.contains("cookie"))
                #expect(!h.contains("none"))
                #expect(h.count == 5)
                #expect(h.kind == .requestHeaders)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
    }

    @Test func iteratesInWireOrder() async throws {
        let seen = Box<[HeaderField]>([])
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                seen.value = Array(h)
                #expect(h.fields == seen.value)
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(seen.value.map(\.name) == ["Host", "Accept", "X-Multi", "x-multi", "Cookie"])
        #expect(seen.value.map(\.value) == ["example.com", "text/html", "1", "2", "a=b"])
    }

    @Test func setReplacesEveryValueAddAppendsRemoveDropsAll() async throws {
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                try h.set("x-multi", "only")
                try h.add("accept", "application/json")
                try h.remove("COOKIE")
                try h.remove("not-there")
                try h.set("x-new", "")
                return .continue
            }
        }
        #expect(try await s.sendRequestHeaders(endOfStream: true) == .continue)
        #expect(s.requestHeaders.map(\.description) == [
            "Host: example.com", "Accept: text/html", "x-multi: only", "accept: application/json", "x-new: ",
        ])
    }

    @Test(arguments: ["a\r\nx-evil: 1", "a\nb", "a\rb", "a\u{0}b"])
    func valuesWithCRLFOrNULAreRefusedBeforeTheHost(_ value: String) async throws {
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                #expect(throws: HeaderError.invalidValue(name: "x-injected")) { try h.set("x-injected", value) }
                #expect(throws: HeaderError.invalidValue(name: "x-injected")) { try h.add("x-injected", value) }
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeader("x-injected") == nil)
        #expect(s.requestHeaders.count == 5)
    }

    @Test(arguments: ["", "x y", "a:b", "naïve", "x\r\n"])
    func namesThatAreNotTokensAreRefused(_ name: String) async throws {
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                #expect(throws: HeaderError.invalidName(name)) { try h.set(name, "v") }
                #expect(throws: HeaderError.invalidName(name)) { try h.add(name, "v") }
                #expect(throws: HeaderError.invalidName(name)) { try h.remove(name) }
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        #expect(s.requestHeaders.count == 5)
    }

    @Test func requestHeadersAreReadOnlyOnceTheyWentUpstream() async throws {
        let s = try Probe.stream(Self.request) { c in
            c.responseHeaders = { _, _, ctx in
                #expect(ctx.requestHeaders["host"] == "example.com")
                #expect(throws: HostError.state) { try ctx.requestHeaders.set("x-late", "1") }
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        _ = try await s.sendResponseHeaders(headers: ["content-length": "0"], endOfStream: true)
        #expect(s.requestHeader("x-late") == nil)
    }

    @Test func responseHeadersDoNotExistDuringTheRequest() async throws {
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { _, _, ctx in
                #expect(ctx.responseHeaders["content-type"] == nil)
                #expect(ctx.responseHeaders.count == 0)
                #expect(throws: HostError.state) { try ctx.responseHeaders.set("x", "1") }
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
    }

    @Test func aViewUsedAfterItsCallbackIsGone() async throws {
        let kept = Box<HeaderMap?>(nil)
        let s = try Probe.stream(Self.request) { c in
            c.requestHeaders = { h, _, _ in
                kept.value = h
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders(endOfStream: true)
        let h = try #require(kept.value)
        #expect(h["host"] == nil)
        #expect(throws: HostError.gone) { try h.set("x", "1") }
    }

    @Test func trailersAreTheirOwnMap() async throws {
        let s = try Probe.stream(Self.request) { c in
            c.requestTrailers = { t, _ in
                #expect(t.kind == .requestTrailers)
                #expect(t["x-checksum"] == "abc")
                try t.set("x-checksum", "def")
                return .continue
            }
        }
        _ = try await s.sendRequestHeaders()
        _ = try await s.sendRequestBody("data", endOfStream: false)
        #expect(try await s.sendRequestTrailers([HeaderField("X-Checksum", "abc")]) == .continue)
        #expect(s.requestTrailers == [HeaderField("x-checksum", "def")])
    }

    @Test func fieldValidationHelpers() {
        #expect(HeaderField.isValidName("x-Custom_1.a!#$%&'*+^`|~"))
        #expect(!HeaderField.isValidName(""))
        #expect(!HeaderField.isValidName("a b"))
        #expect(HeaderField.isValidValue("tab\tand unicode é"))
        #expect(!HeaderField.isValidValue("a\nb"))
        #expect(HeaderField.namesEqual("Content-Type", "content-TYPE"))
        #expect(!HeaderField.namesEqual("content-type", "content-typ"))
        #expect(HeaderField("a", "b").description == "a: b")
    }
}

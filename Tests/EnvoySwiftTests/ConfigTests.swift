import EnvoySwift
import EnvoySwiftTesting
@testable import Filters
import Testing

@Suite struct ConfigTests {
    init() { registerFilters() }

    /// The ConfigError message `body` throws, or nil.
    func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as ConfigError {
            return error.message
        } catch {
            return "not a ConfigError: \(error)"
        }
    }

    @Test func unknownPluginNamesWhatIsThere() {
        let m = message { _ = try FilterTester(plugin: "no_such_plugin") }
        #expect(m?.hasPrefix("unknown plugin \"no_such_plugin\" (this library has: ") == true)
        #expect(m?.contains("bearer_auth") == true)
    }

    @Test func badJSON() {
        let m = message { _ = try FilterTester(plugin: "header_rewrite", configJSON: "{request: ") }
        #expect(m?.hasPrefix("plugin_config is not valid JSON") == true)
    }

    @Test func aFieldOfTheWrongType() {
        #expect(message { _ = try FilterTester(plugin: "header_rewrite", configJSON: #"{"request": 5}"#) }
            == "plugin_config.request: expected an object, found a number")
        #expect(message { _ = try FilterTester(plugin: "header_rewrite", configJSON: #"{"request": {"remove": ["a", 7]}}"#) }
            == "plugin_config.request.remove[1]: expected a string, found a number")
        #expect(message { _ = try FilterTester(plugin: "chain_probe", configJSON: #"{"tag": true}"#) }
            == "plugin_config.tag: expected a string, found a bool")
    }

    @Test func aMissingRequiredField() {
        #expect(message { _ = try FilterTester(plugin: "bearer_auth", configJSON: "{}") }
            == "plugin_config.token: required but missing")
        #expect(message { _ = try FilterTester(plugin: "bearer_auth") } == "plugin_config.token: required but missing")
        #expect(message { _ = try FilterTester(plugin: "bearer_auth", configJSON: #"{"token": null}"#) }
            == "plugin_config.token: required but null")
    }

    @Test func theFilterRejectsAConfig() {
        #expect(message { _ = try FilterTester(plugin: "bearer_auth", configJSON: #"{"token": ""}"#) }
            == "token must not be empty")
        #expect(message { _ = try FilterTester(plugin: "bearer_auth", configJSON: #"{"token": "t", "realm": "a\"b"}"#) }
            == "realm must not contain quotes, backslashes or control characters")
        #expect(message { _ = try FilterTester(plugin: "body_replace", configJSON: #"{"find": "", "replace": "x"}"#) }
            == "find must not be empty")
        #expect(message { _ = try FilterTester(plugin: "header_rewrite", configJSON: #"{"request": {"set": {"x y": "1"}}}"#) }
            == "request.set: invalid header name \"x y\"")
        #expect(message { _ = try FilterTester(plugin: "header_rewrite", configJSON: #"{"response": {"add": {"x": "a\nb"}}}"#) }
            == "response.add: the value of header \"x\" contains CR, LF or NUL")
        #expect(message { _ = try FilterTester(plugin: "route_by_query", configJSON: #"{"header": "x route"}"#) }
            == "header: invalid header name \"x route\"")
        #expect(message { _ = try FilterTester(plugin: "chain_probe", configJSON: #"{"tag": ""}"#) }
            == "tag must be a non-empty header value")
    }

    @Test func anAbsentConfigIsAnEmptyObject() throws {
        _ = try FilterTester(plugin: "header_rewrite", configJSON: "null")
        _ = try FilterTester(plugin: "header_rewrite", configJSON: "")
        _ = try FilterTester(plugin: "route_by_query", configJSON: " null\n")
        _ = try FilterTester(plugin: "bad_header", configJSON: #"{"anything": [1, 2]}"#)
        _ = try FilterTester(plugin: "throws", configJSON: "42")
    }

    @Test func unknownFieldsAreIgnored() throws {
        _ = try FilterTester(plugin: "bearer_auth", configJSON: #"{"token": "t", "extra": 1}"#)
    }

    @Test func aConfigErrorThrownWhileDecodingKeepsItsMessage() {
        #expect(message { _ = try FilterTester(Probe.self, configJSON: "{}") } == "Probe takes its configuration as a value")
    }

    @Test func errorsAreOneLine() {
        let m = message { _ = try FilterTester(plugin: "header_rewrite", configJSON: "{\n\"request\":\n") }
        #expect(m != nil)
        #expect(m?.contains("\n") == false)
    }
}

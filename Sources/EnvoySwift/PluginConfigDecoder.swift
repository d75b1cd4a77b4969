#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes a filter's `plugin_config` (JSON text from the host) into its `Config` type, and turns
/// failures into one line that names where and what.
package enum PluginConfigDecoder {
    /// Decodes `json`; an absent configuration (`null`, empty text) decodes like `{}` first.
    /// - Parameters:
    ///   - type: the configuration type.
    ///   - json: the JSON text, UTF-8.
    package static func decode<C: Decodable>(_ type: C.Type, from json: [UInt8]) throws(ConfigError) -> C {
        let decoder = JSONDecoder()
        if isAbsent(json) {
            if let empty = try? decoder.decode(C.self, from: Data("{}".utf8)) { return empty }
        }
        do {
            return try decoder.decode(C.self, from: Data(isAbsent(json) ? Array("{}".utf8) : json))
        } catch {
            throw ConfigError(describe(error))
        }
    }

    /// One line for an error thrown while decoding or validating a configuration.
    /// - Parameter error: what was thrown.
    package static func describe(_ error: any Error) -> String {
        if let e = error as? ConfigError { return e.message }
        guard let e = error as? DecodingError else { return oneLine(String(describing: error)) }
        switch e {
        case .keyNotFound(let key, let ctx):
            return "\(location(ctx.codingPath + [key])): required but missing"
        case .valueNotFound(_, let ctx):
            return "\(location(ctx.codingPath)): required but null"
        case .typeMismatch(let type, let ctx):
            return "\(location(ctx.codingPath)): expected \(expected(type))\(found(ctx.debugDescription))"
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty {
                return "plugin_config is not valid JSON: \(oneLine(ctx.debugDescription))"
            }
            return "\(location(ctx.codingPath)): \(oneLine(ctx.debugDescription))"
        @unknown default:
            return oneLine(String(describing: e))
        }
    }

    private static func isAbsent(_ json: [UInt8]) -> Bool {
        let trimmed = json.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        return trimmed.isEmpty || trimmed == Array("null".utf8)
    }

    /// "plugin_config.request.set", "plugin_config.content_types[1]".
    private static func location(_ path: [any CodingKey]) -> String {
        var s = "plugin_config"
        for key in path {
            if let i = key.intValue { s += "[\(i)]" } else { s += "." + key.stringValue }
        }
        return s
    }

    private static func expected(_ type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") || name.hasPrefix("[") && name.contains(":") { return "an object" }
        if name.hasPrefix("Array") || name.hasPrefix("[") { return "a list" }
        if name == "String" || name == "Substring" { return "a string" }
        if name == "Bool" { return "true or false" }
        if ["Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64"].contains(name) {
            return "an integer"
        }
        if name == "Double" || name == "Float" { return "a number" }
        return name
    }

    /// ", found a number" from Foundation's "... but found number instead." when it says so.
    private static func found(_ description: String) -> String {
        let marker = Array("but found ".utf8)
        let text = Array(description.utf8)
        guard text.count > marker.count,
            let start = (0...(text.count - marker.count)).first(where: { text[$0..<$0 + marker.count].elementsEqual(marker) })
        else { return "" }
        let word = text[(start + marker.count)...].prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: ".") }
        guard let first = word.first else { return "" }
        let noun = String(decoding: word, as: UTF8.self)
        let article = noun == "null" ? "" : ("aeiou".utf8.contains(first) ? "an " : "a ")
        return ", found \(article)\(noun)"
    }

    private static func oneLine(_ s: String) -> String {
        String(s.map { $0.isNewline ? " " : $0 })
    }
}

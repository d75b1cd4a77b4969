/// The name and type of one value of a request's shared state (``RequestState``).
///
/// Declare keys once, as static constants that every filter using the value shares:
///
/// ```swift
/// extension StateKey where Value == String {
///     /// The tenant of the request, written by `tenant_quota`, and in the access log as "tenant".
///     static let tenant = StateKey("tenant", logged: true)
/// }
/// ```
///
/// A key is its ``name``: two keys with the same name and different `Value` types are a programmer
/// error. They name the same slot; reading through the key of the other type returns `nil`.
public struct StateKey<Value: Sendable>: Sendable {
    /// The slot's name, shared by every filter of the chain.
    public let name: String
    /// The name the value is logged under for the access log (`%FILTER_STATE(name)%`), or `nil`
    /// when it is not logged.
    public let logName: String?
    /// Renders a value for the access log; set when ``logName`` is.
    let describe: (@Sendable (Value) -> String)?

    /// A key whose values are not logged.
    /// - Parameter name: the slot's name.
    public init(_ name: String) {
        self.name = name
        logName = nil
        describe = nil
    }
}

extension StateKey where Value: CustomStringConvertible {
    /// A key whose values also go to the access log (their `description`), under the key's name
    /// when `logged` is true.
    /// - Parameters:
    ///   - name: the slot's name.
    ///   - logged: whether writing a value also names it for the access log, as `name`.
    public init(_ name: String, logged: Bool) {
        self.name = name
        if logged {
            logName = name
            describe = { (value: Value) -> String in value.description }
        } else {
            logName = nil
            describe = nil
        }
    }

    /// A key whose values also go to the access log (their `description`) under another name.
    /// - Parameters:
    ///   - name: the slot's name.
    ///   - logName: the name in the access log (`%FILTER_STATE(logName)%`): 1 to 64 bytes.
    public init(_ name: String, loggedAs logName: String) {
        self.name = name
        self.logName = logName
        describe = { (value: Value) -> String in value.description }
    }
}

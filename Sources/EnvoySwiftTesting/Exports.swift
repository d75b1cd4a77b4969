// Tests of a filter use the SDK's types (FilterStatus, HeaderField, ConfigError...) with the test
// kit, so importing EnvoySwiftTesting is enough.
@_exported import EnvoySwift

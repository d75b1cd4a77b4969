import Testing

@testable import EnvoySwift

@Suite struct ABIVersionTests {
    @Test func exportedVersionMatchesTheSDK() {
        #expect(envoySwiftABIVersion() == ABIVersion.current)
        #expect(ABIVersion.current == 1)
    }
}

// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "envoy-swift",
    // Task.immediate and task executors (the async filters) need the Swift 6.2 runtime.
    platforms: [.macOS(.v26)],
    products: [
        // The shared object the C host loads: the SDK plus the reference filters in Filters/.
        .library(name: "swiftfilter", type: .dynamic, targets: ["Filters"]),
        // What a filter author depends on from their own package: the SDK, and its test kit.
        .library(name: "EnvoySwift", targets: ["EnvoySwift"]),
        .library(name: "EnvoySwiftTesting", targets: ["EnvoySwiftTesting"]),
    ],
    targets: [
        // The C ABI header (CHost/include/envoy_swift_abi.h), imported through module.modulemap.
        .systemLibrary(name: "CEnvoySwiftABI", path: "CHost/include"),
        // C helpers the SDK needs (finding the library's registration function).
        .target(name: "CEnvoySwiftShims", path: "Sources/CEnvoySwiftShims"),
        // The filter SDK and the C hooks the host calls.
        .target(
            name: "EnvoySwift", dependencies: ["CEnvoySwiftABI", "CEnvoySwiftShims"], path: "Sources/EnvoySwift"),
        // An in-memory host to unit-test filters without a proxy.
        .target(
            name: "EnvoySwiftTesting", dependencies: ["EnvoySwift", "CEnvoySwiftABI"],
            path: "Sources/EnvoySwiftTesting"),
        // The reference filters and their registration.
        .target(name: "Filters", dependencies: ["EnvoySwift"], path: "Filters"),
        .testTarget(
            name: "EnvoySwiftTests",
            dependencies: ["EnvoySwift", "EnvoySwiftTesting", "Filters", "CEnvoySwiftABI"],
            path: "Tests/EnvoySwiftTests"),
    ]
)

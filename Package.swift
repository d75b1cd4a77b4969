// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "envoy-swift",
    products: [
        // The shared object the C host loads: the SDK plus the filters in Filters/.
        .library(name: "swiftfilter", type: .dynamic, targets: ["Filters"])
    ],
    targets: [
        .target(name: "EnvoySwift", path: "Sources/EnvoySwift"),
        .target(name: "Filters", dependencies: ["EnvoySwift"], path: "Filters"),
        .testTarget(name: "EnvoySwiftTests", dependencies: ["EnvoySwift"], path: "Tests/EnvoySwiftTests"),
    ]
)

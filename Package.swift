// swift-tools-version: 6.1
// LBLab: a load-balancer research harness. Targets follow the layout in README.md.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "LBLab",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LBCore", targets: ["LBCore"]),
        .executable(name: "lbctl", targets: ["lbctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Pure algorithms and state machines: no I/O, no clocks, no global state.
        .target(
            name: "LBCore",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections")
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "lbctl",
            dependencies: [
                "LBCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBCoreTests",
            dependencies: ["LBCore"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "PickerBenchmarks",
            dependencies: [
                "LBCore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/PickerBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

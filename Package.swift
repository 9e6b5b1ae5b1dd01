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
        .library(name: "LBConfig", targets: ["LBConfig"]),
        .library(name: "LBStore", targets: ["LBStore"]),
        .library(name: "LBBackend", targets: ["LBBackend"]),
        .library(name: "LBLoad", targets: ["LBLoad"]),
        .library(name: "LBStats", targets: ["LBStats"]),
        .library(name: "LBHarness", targets: ["LBHarness"]),
        .library(name: "LBSim", targets: ["LBSim"]),
        .executable(name: "loadgen", targets: ["loadgen"]),
        .executable(name: "lbctl", targets: ["lbctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
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
        // config.yml and scenario files: YAML read strictly, errors with file, line and field.
        .target(
            name: "LBConfig",
            dependencies: ["LBCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        // HTTP/1.1 on bytes: strict head reading and body framing, for the proxy and the load generator.
        .target(
            name: "LBHTTP",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        // The SwiftNIO data plane: HTTP/1.1 and TCP forwarding, health checks, admin API.
        .target(
            name: "LBProxy",
            dependencies: [
                "LBCore",
                "LBConfig",
                "LBHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        // The discrete-event simulator: LBCore's pickers and state machines in virtual time.
        .target(
            name: "LBSim",
            dependencies: [
                "LBCore",
                "LBConfig",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            // Optimized in debug builds too: its statistical tests need samples of millions of requests
            // for their bounds to stand well clear of the noise, which unoptimized code takes minutes on.
            swiftSettings: strictSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // The SQLite results store: schema, migrations, the batched writer, queries.
        .target(
            name: "LBStore",
            dependencies: [
                "LBCore",
                "LBBuildStamp",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // The synthetic backend server: latency models, CPU work, errors, capacity, health, control.
        .target(
            name: "LBBackend",
            dependencies: [
                "LBCore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // epoll and eventfd for LBLoad's closed-loop engine (Linux; empty elsewhere).
        .target(name: "CLinuxEvents"),
        // The load generator: open-loop schedule, connection pool, WebSocket messages, histograms, record sink.
        .target(
            name: "LBLoad",
            dependencies: [
                "CLinuxEvents",
                "LBCore",
                "LBHTTP",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        // Resource samplers: /proc, cgroup v1 and v2 (and the containers they limit), the Docker Engine API.
        .target(
            name: "LBStats",
            dependencies: [
                "LBCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // Experiments above both runners: bootstrap intervals, knees, SLO searches, divert latency.
        .target(
            name: "LBExperiment",
            dependencies: ["LBCore"],
            swiftSettings: strictSettings
        ),
        // The scenario runner: backends in containers, the proxy, the load, samples, the fault timeline.
        .target(
            name: "LBHarness",
            dependencies: [
                "LBCore",
                "LBConfig",
                "LBLoad",
                "LBStats",
                "LBStore",
                "LBBackend",
                "LBBuildStamp",
                "LBSim",
                "LBExperiment",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // The commit the binary was built from and whether its tree was modified, written before each
        // build by BuildStampPlugin.
        .target(
            name: "LBBuildStamp",
            swiftSettings: strictSettings,
            plugins: ["BuildStampPlugin"]
        ),
        .plugin(name: "BuildStampPlugin", capability: .buildTool()),
        // What both command lines share: Go-style flag names, flag errors that name the flag.
        .target(
            name: "LBCLI",
            dependencies: [
                "LBBuildStamp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "lbctl",
            dependencies: [
                "LBCore",
                "LBBackend",
                "LBConfig",
                "LBProxy",
                "LBStore",
                "LBHarness",
                "LBCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "loadgen",
            dependencies: [
                "LBCore",
                "LBLoad",
                "LBStore",
                "LBCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBStatsTests",
            dependencies: ["LBStats", "LBCore", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBConfigTests",
            dependencies: ["LBConfig", "LBCore", "LBTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBProxyTests",
            dependencies: [
                "LBProxy", "LBConfig", "LBCore", "LBLoad", "LBBackend", "LBTesting", "LBHTTP",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBHTTPTests",
            dependencies: ["LBHTTP", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBHarnessTests",
            dependencies: ["LBHarness", "LBConfig", "LBExperiment", "LBStore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBExperimentTests",
            dependencies: ["LBExperiment", "LBCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBCoreTests",
            dependencies: ["LBCore", "LBTesting"],
            swiftSettings: strictSettings
        ),
        // Fixtures shared by the test targets (a synthetic backend on an ephemeral port, …).
        .target(
            name: "LBTesting",
            dependencies: ["LBBackend", "LBCore"],
            path: "Tests/LBTesting",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBBackendTests",
            dependencies: ["LBBackend", "LBCore", "LBTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBLoadTests",
            dependencies: [
                "LBLoad", "LBBackend", "LBStore", "LBCore", "LBTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // Real processes on loopback, end to end (needs the executables built: `swift build`).
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "LBCore", "LBTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Integration",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBSimTests",
            dependencies: ["LBSim", "LBConfig", "LBCore", "LBStore", .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LBStoreTests",
            dependencies: ["LBStore", "LBCore", "LBBuildStamp", .product(name: "GRDB", package: "GRDB.swift")],
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
        .executableTarget(
            name: "SimBenchmarks",
            dependencies: [
                "LBSim",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SimBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
        .executableTarget(
            name: "StoreBenchmarks",
            dependencies: [
                "LBCore",
                "LBStore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/StoreBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version:6.0
import PackageDescription

// The compute modules' hot loops are SIMD code: -Ounchecked drops bounds and overflow
// checks the kernels guarantee by construction, and a target CPU with FMA lets SIMD16
// multiply-adds compile to vector FMAs (without it they become libm calls). Modules that
// handle input from files, peers or users keep Swift's checks.
#if arch(x86_64)
let cpu = ["-target-cpu", "haswell"]
#else
let cpu: [String] = []
#endif
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"] + cpu)]
/// Vector code that validates its input (dtype conversions at load) keeps the checks.
let vectorized: [SwiftSetting] = [.unsafeFlags(cpu)]

let package = Package(
    name: "Conclave",
    products: [
        .executable(name: "conclave", targets: ["conclave"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
        // SHA-256 of model shards (conclave shard's manifest, start-up verification).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // C bridges: module maps over the C libraries; Transport and ControlPlane wrap MPI and
        // protobuf-c, Kernels wraps OpenBLAS, oneDNN and its AVX-512 kernels, and nothing else imports C.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "COneDNN", providers: [.apt(["libdnnl-dev"])]),
        .target(name: "CProtobufC", exclude: ["proto"], linkerSettings: [.linkedLibrary("protobuf-c")]),

        // Cluster plumbing: control-plane messages and the typed MPI layer.
        .target(name: "ControlPlane", dependencies: ["CProtobufC", "Sampling"]),
        .target(name: "Transport", dependencies: ["CMPI"]),
        .executableTarget(name: "transport-probe", dependencies: ["Transport", "ControlPlane"]),

        // How a token travels: text → ids → embeddings → attention → routing → experts → logits → sampled id.
        // ExactRows on 512-bit registers, chosen at run time: C with intrinsics, optimised in
        // debug builds too (the tests' products would otherwise run at a tenth of the speed).
        .target(name: "ExactRowsAVX512", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "Kernels", dependencies: ["COpenBLAS", "COneDNN", "ExactRowsAVX512"], swiftSettings: fast),
        .target(name: "Checkpoint", dependencies: ["Kernels"], swiftSettings: vectorized),
        .target(name: "Tokenizer"),
        .target(name: "Attention", dependencies: ["Kernels", "Checkpoint"], swiftSettings: fast),
        .target(name: "Routing", dependencies: ["Kernels", "Checkpoint"], swiftSettings: fast),
        .target(name: "Experts", dependencies: ["Kernels", "Checkpoint"], swiftSettings: fast),
        .target(name: "Model", dependencies: ["Kernels", "Checkpoint", "Attention", "Routing", "Experts"], swiftSettings: fast),
        .target(name: "Sampling", swiftSettings: fast),
        .target(name: "Presets", dependencies: ["Checkpoint", "Kernels", "Sampling", "Tokenizer"]),
        .target(name: "Engine", dependencies: ["Model", "Sampling", "Tokenizer", "Checkpoint"]),
        // Where the gates send tokens, over a run: recorded load files and balancedness.
        .target(name: "ExpertLoad"),
        .target(name: "Cluster", dependencies: ["Transport", "ControlPlane", "Model", "Engine", "Checkpoint", "Kernels", "Attention", "Routing", "Experts", "Sampling", "Tokenizer", "ExpertLoad", "Planner",
                                                .product(name: "Crypto", package: "swift-crypto")]),

        // Serving: OpenAI's schema at the edge, the engine loop behind a queue, HTTP in front.
        .target(name: "OpenAIAPI"),
        .target(name: "Serving", dependencies: ["Engine", "Sampling", "Tokenizer", "ExpertLoad", .product(name: "Metrics", package: "swift-metrics"),
                                                .product(name: "Logging", package: "swift-log")]),
        .target(name: "HTTPServer", dependencies: [
            "OpenAIAPI", "Serving", "Engine", "Sampling", "Tokenizer",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Sizing a cluster before buying it: footprint, layout and a decode cost model.
        .target(name: "Planner", dependencies: ["Checkpoint", "ExpertLoad"]),
        // What `conclave bench` reports: the CPU, compute peaks, and each test beside its bound.
        .target(name: "BenchReport"),
        .target(name: "ServeBenchmark", dependencies: [.product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .executableTarget(name: "conclave", dependencies: [
            "Engine", "Model", "Tokenizer", "Checkpoint", "Sampling", "Presets", "Kernels", "Attention", "Cluster", "Transport",
            "OpenAIAPI", "Serving", "HTTPServer", "ServeBenchmark", "Planner", "BenchReport", "ExpertLoad",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Checkpoint"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Kernels"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer"]),
        .testTarget(name: "SamplingTests", dependencies: ["Sampling"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Engine", "Checkpoint", "Kernels", "Attention", "Routing", "Experts", "Tokenizer", "Sampling", "Presets"]),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane", "Sampling"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "ControlPlane"]),
        // Launching the built `conclave` (alone, under mpirun, or as a server) from tests.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "Checkpoint", "ControlPlane", "Routing", "TestSupport"]),
        .testTarget(name: "TestbedTests", dependencies: ["TestSupport"]),
        .testTarget(name: "OpenAIAPITests", dependencies: ["OpenAIAPI"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Engine", "Model", "Checkpoint", "Presets", "Sampling", "Tokenizer",
                                                     .product(name: "MetricsTestKit", package: "swift-metrics")]),
        .testTarget(name: "ServeBenchmarkTests", dependencies: ["ServeBenchmark"]),
        .testTarget(name: "PlannerTests", dependencies: ["Planner", "Checkpoint", "ExpertLoad", "Cluster"]),
        .testTarget(name: "ExpertLoadTests", dependencies: ["ExpertLoad"]),
        .testTarget(name: "BenchReportTests", dependencies: ["BenchReport"]),
        .testTarget(name: "HTTPServerTests", dependencies: [
            "ServeBenchmark", "TestSupport", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
    ]
)

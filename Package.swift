// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Atoll",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "atoll", targets: ["atoll"]),
        .executable(name: "atolld", targets: ["atolld"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.86.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.3.0"),
    ],
    targets: [
        // Layer 0: the little C the platform needs, and system libraries.
        .target(name: "CAtollShim"),
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CNftables", pkgConfig: "libnftables", providers: [.apt(["libnftables-dev"])]),
        .target(
            name: "AtollCore",
            dependencies: [
                "CAtollShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // Layer 1: the host engine.
        .target(name: "AtollOCI", dependencies: ["AtollCore"]),
        .target(
            name: "AtollStorage",
            dependencies: [
                "AtollCore", "AtollOCI", "CArchive", "CZlib", "CZstd",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "AtollImages",
            dependencies: [
                "AtollCore", "AtollOCI", "AtollStorage", "CArchive",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .target(name: "AtollRuntime", dependencies: ["AtollCore", "CAtollShim"]),
        .target(
            name: "AtollVolumes",
            dependencies: [
                "AtollCore", "AtollStorage", "CAtollShim",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "AtollNetwork",
            dependencies: [
                "AtollCore", "CAtollShim", "CNftables",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "AtollRegistry",
            dependencies: [
                "AtollCore", "AtollOCI", "AtollStorage",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(name: "AtollBuild", dependencies: ["AtollCore", "AtollOCI", "AtollStorage", "CArchive"]),
        .target(
            name: "AtollEngine",
            dependencies: [
                "AtollCore", "AtollOCI", "AtollStorage", "AtollImages", "AtollRuntime", "AtollVolumes", "AtollRegistry",
                "AtollNetwork", "AtollBuild",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Layer 2: the cluster. Its state store, its PKI (CA, certificates, join tokens), and the
        // manager over them; all transport-free.
        .target(name: "AtollRaft", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(
            name: "AtollClusterStore",
            dependencies: [
                "AtollCore", "AtollRaft",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "AtollClusterPKI",
            dependencies: [
                "AtollCore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .target(
            name: "AtollManager",
            dependencies: [
                "AtollCore", "AtollClusterStore", "AtollClusterPKI", "AtollRaft",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Edges: generated API, service adapters, client, CLI, executables.
        .target(
            name: "AtollAPI",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "AtollDaemon",
            dependencies: [
                "AtollCore", "AtollOCI", "AtollImages", "AtollEngine", "AtollRuntime", "AtollVolumes", "AtollRegistry",
                "AtollNetwork", "AtollAPI", "AtollClient", "AtollClusterStore", "AtollClusterPKI", "AtollManager",
                "AtollRaft",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "AtollClient",
            dependencies: [
                "AtollAPI", "AtollCore", "AtollClusterPKI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .target(
            name: "AtollCLI",
            dependencies: [
                "AtollClient", "AtollAPI", "AtollCore", "AtollOCI", "AtollRuntime", "AtollStorage", "AtollBuild",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "atoll", dependencies: ["AtollCLI"]),
        .executableTarget(
            name: "atolld",
            dependencies: [
                "AtollDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "AtollCoreTests", dependencies: ["AtollCore"]),
        .testTarget(name: "AtollRaftTests", dependencies: ["AtollRaft"]),
        .testTarget(name: "AtollClusterStoreTests", dependencies: ["AtollClusterStore", "AtollCore", "AtollRaft"]),
        .testTarget(name: "AtollClusterPKITests", dependencies: ["AtollClusterPKI", "AtollCore"]),
        .testTarget(
            name: "AtollManagerTests",
            dependencies: ["AtollManager", "AtollClusterStore", "AtollClusterPKI", "AtollCore"]),
        .testTarget(name: "AtollOCITests", dependencies: ["AtollOCI"]),
        .testTarget(name: "AtollBuildTests", dependencies: ["AtollBuild", "AtollCore", "AtollOCI", "AtollStorage"]),
        .testTarget(name: "AtollStorageTests", dependencies: ["AtollStorage", "AtollCore", "AtollOCI"]),
        .testTarget(name: "AtollRuntimeTests", dependencies: ["AtollRuntime", "AtollCore"]),
        .testTarget(name: "AtollVolumesTests", dependencies: ["AtollVolumes", "AtollCore"]),
        .testTarget(
            name: "AtollNetworkTests",
            dependencies: ["AtollNetwork", "AtollCore", "CAtollShim", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "AtollEngineTests",
            dependencies: ["AtollEngine", "AtollRuntime", "AtollVolumes", "AtollNetwork", "AtollCore", "AtollOCI"]
        ),
        .testTarget(
            name: "AtollImagesTests",
            dependencies: [
                "AtollImages", "AtollStorage", "AtollOCI", "AtollCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "AtollIntegrationTests",
            dependencies: ["AtollClient", "AtollAPI", "AtollCore"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version:5.9
// Aula SDK for iOS: the uniffi-generated Swift API (Sources/Aula/Aula.swift) over the Rust
// library in AulaFFI.xcframework. Both are produced by build-xcframework.sh (needs Xcode; untested
// on the machine that wrote it).
import PackageDescription

let package = Package(
    name: "Aula",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "Aula", targets: ["Aula"]),
    ],
    targets: [
        .binaryTarget(name: "AulaFFI", path: "AulaFFI.xcframework"),
        .target(
            name: "Aula",
            dependencies: ["AulaFFI"],
            path: "Sources/Aula",
            linkerSettings: [
                // The Rust static library uses these system frameworks/libraries.
                .linkedFramework("SystemConfiguration"),
                .linkedFramework("Security"),
                .linkedLibrary("c++"),
            ]
        ),
    ]
)

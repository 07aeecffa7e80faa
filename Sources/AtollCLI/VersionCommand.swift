import ArgumentParser
import AtollAPI
import AtollCore
import Foundation

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Show the client and engine versions.")

    func run() async throws {
        let arch = HostArchitecture.current
        Output.print(
            "Client:\n Version:      \(AtollVersion.version)\n API version:  \(AtollVersion.apiVersion)\n OS/Arch:      linux/\(arch)"
        )
        let server = try await GlobalOptions.withEngine {
            try await $0.system.version(Atoll_Engine_V1_VersionRequest())
        }
        Output.print(
            """

            Server:
             Engine:
              Version:      \(server.version)
              API version:  \(server.apiVersion)
              OS/Arch:      \(server.os)/\(server.architecture)
              Kernel:       \(server.kernelVersion)
            """)
    }
}

enum HostArchitecture {
    static var current: String {
        #if arch(x86_64)
            "amd64"
        #elseif arch(arm64)
            "arm64"
        #else
            "unknown"
        #endif
    }
}

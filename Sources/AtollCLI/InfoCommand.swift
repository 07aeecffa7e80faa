import ArgumentParser
import AtollAPI
import Foundation

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show engine-wide information.")

    @Option(name: [.short, .long], help: "Format: json.")
    var format: String?

    func run() async throws {
        let info = try await GlobalOptions.withEngine { try await $0.system.info(Atoll_Engine_V1_InfoRequest()) }
        if format == "json" {
            Output.print((try? info.jsonString()) ?? "{}")
            return
        }
        var lines: [String] = [
            "Server:",
            " Server Version: \(info.version)",
            " Socket: unix://\(info.socket)",
            " Containers: \(info.containers)",
            " Images: \(info.images)",
            " Storage Driver: \(info.storageDriver)",
        ]
        lines += info.storageStatus.map { "  \($0.key): \($0.value)" }
        lines += [
            " Content Store: \(info.contentBlobs) blobs",
            " Snapshots: \(info.snapshots)",
            " Cgroup Version: \(info.cgroupVersion)",
            " Runtimes:",
        ]
        if info.runtimes.isEmpty { lines.append("  none installed (install crun or runc)") }
        for runtime in info.runtimes {
            let state = runtime.works ? "works" : "does not work: \(runtime.problem)"
            lines.append("  \(runtime.name) \(runtime.version) (\(runtime.path)): \(state)")
        }
        lines += [
            " Default Runtime: \(info.defaultRuntime.isEmpty ? "none" : info.defaultRuntime)",
            " Kernel Version: \(info.kernelVersion)",
            " Operating System: \(info.operatingSystem)",
            " Architecture: \(info.architecture)",
            " CPUs: \(info.cpus)",
            " Total Memory: \(String(format: "%.2f", Double(info.memoryBytes) / Double(1 << 30)))GiB",
            " Name: \(info.hostname)",
            " Atoll Root Dir: \(info.root)",
        ]
        Output.print(lines.joined(separator: "\n"))
    }
}

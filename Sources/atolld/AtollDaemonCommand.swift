import ArgumentParser
import AtollCore
import AtollDaemon
import Foundation

/// atolld: the Atoll engine daemon.
@main
struct AtollDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atolld",
        abstract: "The Atoll engine: images, containers, volumes and storage on this host, served over gRPC.",
        version: AtollVersion.version)

    @Option(help: "Root of persistent state.")
    var root = "/var/lib/atoll"

    @Option(help: "Unix socket to serve the engine API on (owner root, mode 0660).")
    var socket = "/run/atoll/atolld.sock"

    @Option(name: .customLong("exec-root"), help: "Directory for runtime state (tmpfs).")
    var execRoot = "/run/atoll"

    @Option(name: .customLong("storage-driver"), help: "overlay or native (default: overlay where it works).")
    var storageDriver: String?

    @Option(
        name: .customLong("registry-addr"),
        help: "Serve the OCI distribution API (plain HTTP) on HOST:PORT from this host's content store.")
    var registryAddress: String?

    @Option(
        name: .customLong("insecure-registry"),
        help: "A registry (HOST[:PORT]) to reach over plain HTTP; loopback registries always are.")
    var insecureRegistries: [String] = []

    @Option(
        name: .customLong("registry-mirror"),
        help:
            "REGISTRY=MIRROR[:PORT]: pull from the mirror first (any registry; docker.io for Docker Hub; http:// for plain HTTP)."
    )
    var registryMirrors: [String] = []

    @Option(
        help:
            "The default bridge network's device. A second atolld in the same network namespace needs its own (its rules then go into their own nftables table)."
    )
    var bridge = "atoll0"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func run() async throws {
        do {
            AtollLogging.bootstrap(level: try AtollLogging.level(named: logLevel))
            var options = DaemonOptions(
                root: root, socket: socket, storageDriver: storageDriver, runDirectory: execRoot)
            options.registryAddress = registryAddress
            options.insecureRegistries = insecureRegistries
            options.registryMirrors = registryMirrors
            options.bridge = bridge
            try await Daemon.run(options)
        } catch {
            FileHandle.standardError.write(Data("atolld: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

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

    @Option(
        name: .customLong("config-file"),
        help:
            "A JSON file of options (keys as these flags' names; flags win). Default: /etc/atoll/daemon.json if present."
    )
    var configFile: String?

    @Option(help: "Root of persistent state (default /var/lib/atoll).")
    var root: String?

    @Option(help: "Unix socket to serve the engine API on, owner root, mode 0660 (default /run/atoll/atolld.sock).")
    var socket: String?

    @Option(name: .customLong("exec-root"), help: "Directory for runtime state, a tmpfs (default /run/atoll).")
    var execRoot: String?

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
            "The default bridge network's device (default atoll0). A second atolld in the same network namespace needs its own (its rules then go into their own nftables table)."
    )
    var bridge: String?

    @Option(
        name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    func run() async throws {
        do {
            let file = try DaemonConfigFile.load(configFile)
            AtollLogging.bootstrap(level: try AtollLogging.level(named: logLevel ?? file.logLevel ?? "info"))
            var options = DaemonOptions(
                root: root ?? file.root ?? "/var/lib/atoll", socket: socket ?? file.socket ?? "/run/atoll/atolld.sock",
                storageDriver: storageDriver ?? file.storageDriver,
                runDirectory: execRoot ?? file.execRoot ?? "/run/atoll")
            options.registryAddress = registryAddress ?? file.registryAddress
            options.insecureRegistries = insecureRegistries.isEmpty ? file.insecureRegistries ?? [] : insecureRegistries
            options.registryMirrors = registryMirrors.isEmpty ? file.registryMirrors ?? [] : registryMirrors
            options.bridge = bridge ?? file.bridge ?? "atoll0"
            try await Daemon.run(options)
        } catch {
            FileHandle.standardError.write(Data("atolld: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// atolld's configuration file: JSON whose keys are the flags' long names. Unknown keys are
/// refused, so that a misspelt option does not go unnoticed.
struct DaemonConfigFile: Decodable {
    static let defaultPath = "/etc/atoll/daemon.json"

    var root: String?
    var socket: String?
    var execRoot: String?
    var storageDriver: String?
    var registryAddress: String?
    var insecureRegistries: [String]?
    var registryMirrors: [String]?
    var bridge: String?
    var logLevel: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case root, socket, bridge
        case execRoot = "exec-root"
        case storageDriver = "storage-driver"
        case registryAddress = "registry-addr"
        case insecureRegistries = "insecure-registries"
        case registryMirrors = "registry-mirrors"
        case logLevel = "log-level"
    }

    /// The file at `path` (which must exist), else the default one if it exists, else nothing.
    static func load(_ path: String?) throws -> DaemonConfigFile {
        let chosen = path ?? defaultPath
        guard path != nil || FileManager.default.fileExists(atPath: chosen) else { return DaemonConfigFile() }
        guard let data = FileManager.default.contents(atPath: chosen) else {
            throw AtollError.invalidArgument("cannot read the configuration file \(chosen)")
        }
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        guard let object else { throw AtollError.invalidArgument("\(chosen) is not a JSON object") }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw AtollError.invalidArgument(
                "\(chosen): unknown option \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        do { return try JSONDecoder().decode(DaemonConfigFile.self, from: data) } catch {
            throw AtollError.invalidArgument("\(chosen): \(error)")
        }
    }
}

import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation
import Glibc

struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume", abstract: "Manage volumes.",
        subcommands: [
            VolumeCreateCommand.self, VolumeListCommand.self, VolumeInspectCommand.self, VolumeRemoveCommand.self,
            VolumePruneCommand.self, VolumeExportCommand.self, VolumeImportCommand.self,
        ])
}

struct VolumeCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume.")
    @Option(name: .shortAndLong, help: "Volume driver name.") var driver = "local"
    @Option(name: .long, help: "Set metadata for a volume (KEY=VALUE).") var label: [String] = []
    @Option(name: .shortAndLong, help: "Driver options: type=tmpfs|none|…, device=…, o=….") var opt: [String] = []
    @Argument(help: "The volume's name (default: a random one).") var name: String?

    func run() async throws {
        var request = Atoll_Engine_V1_CreateVolumeRequest()
        request.name = name ?? ""
        request.driver = driver
        request.labels = try Self.pairs(label, flag: "--label", valueRequired: false)
        request.options = try Self.pairs(opt, flag: "--opt", valueRequired: true)
        let volume = try await GlobalOptions.withEngine { [request] in try await $0.volumes.create(request) }
        Output.print(volume.name)
    }

    static func pairs(_ entries: [String], flag: String, valueRequired: Bool) throws -> [String: String] {
        var result: [String: String] = [:]
        for entry in entries {
            let pair = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard !entry.hasPrefix("="), pair.count == 2 || !valueRequired else {
                throw ValidationError("invalid \(flag) \"\(entry)\": want KEY=VALUE")
            }
            result[pair[0]] = pair.count == 2 ? pair[1] : ""
        }
        return result
    }
}

struct VolumeListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List volumes.", aliases: ["list"])
    @Flag(name: .shortAndLong, help: "Only display volume names.") var quiet = false
    @Option(name: .shortAndLong, help: "Filter (dangling=true|false, name=…, label=…, driver=…).") var filter:
        [String] =
            []
    @Option(name: .long, help: "Format: table, json, or a template such as '{{.Name}}'.") var format: String?

    func run() async throws {
        var request = Atoll_Engine_V1_ListVolumesRequest()
        request.filters = filter
        let response = try await GlobalOptions.withEngine { [request] in try await $0.volumes.list(request) }
        if quiet {
            for volume in response.volumes { Output.print(volume.name) }
            return
        }
        let rows = response.volumes.map { volume -> [String: String] in
            [
                "Name": volume.name, "Driver": volume.driver, "Mountpoint": volume.mountpoint, "Scope": volume.scope,
                "Labels": volume.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                    separator: ","),
                "Links": String(volume.containers.count), "Size": "N/A", "CreatedAt": volume.createdAt,
            ]
        }
        RowFormat(format).render(rows, columns: [("Driver", "DRIVER"), ("Name", "VOLUME NAME")])
    }
}

struct VolumeInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Display detailed information on volumes.")
    @Option(name: .shortAndLong, help: "A template such as '{{.Mountpoint}}', or json.") var format: String?
    @Argument(help: "Volumes.") var names: [String]

    func run() async throws {
        guard !names.isEmpty else { throw ValidationError("inspect needs at least one volume") }
        try await InspectCommand.show(names, format: format) { try await Self.document($0) }
    }

    /// Docker's shape, with the users and size in UsageData.
    static func document(_ name: String) async throws -> [String: Any] {
        var request = Atoll_Engine_V1_InspectVolumeRequest()
        request.name = name
        let volume = try await GlobalOptions.withEngine { [request] in try await $0.volumes.inspect(request) }
        return [
            "Name": volume.name, "Driver": volume.driver, "Mountpoint": volume.mountpoint,
            "CreatedAt": volume.createdAt, "Labels": volume.labels, "Options": volume.options, "Scope": volume.scope,
            "Anonymous": volume.anonymous, "Containers": volume.containers,
            "UsageData": ["RefCount": volume.containers.count, "Size": volume.size],
        ]
    }
}

struct VolumeRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove volumes (never one a container uses).", aliases: ["remove"])
    @Flag(name: .shortAndLong, help: "Do not fail for volumes that do not exist.") var force = false
    @Argument(help: "Volumes.") var names: [String]

    func run() async throws {
        guard !names.isEmpty else { throw ValidationError("rm needs at least one volume") }
        var failed = false
        for name in names {
            var request = Atoll_Engine_V1_RemoveVolumeRequest()
            request.name = name
            request.force = force
            do {
                _ = try await GlobalOptions.withEngine { [request] in try await $0.volumes.remove(request) }
                Output.print(name)
            } catch {
                failed = true
                FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct VolumePruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove unused anonymous volumes (all unused ones with -a).")
    @Flag(name: .shortAndLong, help: "Remove all unused volumes, not only anonymous ones.") var all = false
    @Flag(name: .shortAndLong, help: "Do not prompt for confirmation.") var force = false
    @Option(name: .long, help: "Filters (label=KEY[=VALUE], label!=…).") var filter: [String] = []

    func run() async throws {
        var request = Atoll_Engine_V1_PruneVolumesRequest()
        request.all = all
        request.filters = filter
        let response = try await GlobalOptions.withEngine { [request] in
            try await $0.volumes.prune(request, options: .longRunning)
        }
        if !response.removed.isEmpty {
            Output.print("Deleted Volumes:")
            for name in response.removed { Output.print(name) }
            Output.print("")
        }
        Output.print("Total reclaimed space: \(Output.size(response.reclaimedBytes))")
    }
}

struct VolumeExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a volume's content as a tar.",
        discussion: """
            Running containers that can write to the volume are paused while it is read, so the tar
            is one point-in-time state of what they wrote; they resume afterwards.
            """)
    @Option(name: .shortAndLong, help: "Write to a file instead of standard output.") var output: String?
    @Argument(help: "The volume.") var name: String

    func run() async throws {
        var request = Atoll_Engine_V1_ExportVolumeRequest()
        request.name = name
        guard let output else {
            guard isatty(1) == 0 else {
                throw ValidationError("refusing to write a tar to a terminal: use -o FILE or redirect the output")
            }
            try await GlobalOptions.withEngine { [request] client in
                try await client.volumes.exportContent(request) { response in
                    for try await chunk in response.messages { Output.write(chunk.data) }
                }
            }
            return
        }
        // Written aside and renamed into place: a failed export leaves no partial file.
        let partial = "\(output).partial-\(getpid())"
        guard FileManager.default.createFile(atPath: partial, contents: nil),
            let file = FileHandle(forWritingAtPath: partial)
        else {
            throw ValidationError("cannot create \(output)")
        }
        do {
            try await GlobalOptions.withEngine { [request] client in
                try await client.volumes.exportContent(request) { response in
                    for try await chunk in response.messages { try file.write(contentsOf: chunk.data) }
                }
            }
            try file.close()
            try Syscall.rename(from: partial, to: output)
        } catch {
            try? file.close()
            unlink(partial)
            throw error
        }
    }
}

struct VolumeImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Replace a volume's content with a tar (the volume is created if missing).",
        discussion: """
            The tar (plain, gzip or zstd) is unpacked aside and swapped in whole, so a bad archive
            leaves the volume as it was. Refused while a running container uses the volume.
            """)
    @Argument(help: "The volume.") var name: String
    @Argument(help: "The tar file, or - for standard input.") var file: String

    func run() async throws {
        let input: FileDescriptor
        if file == "-" {
            input = FileDescriptor(owning: dup(0))
        } else {
            do { input = try Syscall.open(file, flags: O_RDONLY) } catch {
                throw ValidationError("cannot open \(file): \(error)")
            }
        }
        var header = Atoll_Engine_V1_ImportVolumeRequest()
        header.name = name
        _ = try await GlobalOptions.withEngine { [header] client in
            try await client.volumes.importContent(
                options: .longRunning,
                requestProducer: { writer in
                    try await writer.write(header)
                    try await EngineClient.streamFile(input) { data in
                        var chunk = Atoll_Engine_V1_ImportVolumeRequest()
                        chunk.chunk = data
                        try await writer.write(chunk)
                    }
                })
        }
    }
}

import ArgumentParser
import AtollAPI
import AtollBuild
import AtollClient
import AtollCore
import Foundation
import GRPCCore
import Glibc

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build", abstract: "Build an image from a Dockerfile.",
        discussion: """
            The context directory is sent to atolld as a tar, leaving out what its .dockerignore \
            excludes. Stages that do not depend on each other build at the same time; a step whose \
            parent, instruction and input files are unchanged comes from the cache.
            """)

    @Option(name: [.short, .customLong("tag")], help: "Name and optionally a tag (NAME[:TAG]); repeatable.")
    var tags: [String] = []
    @Option(name: [.short, .customLong("file")], help: "The Dockerfile (default: CONTEXT/Dockerfile; - reads stdin).")
    var file: String?
    @Option(
        name: .customLong("build-arg"), help: "Set a build-time variable (NAME=VALUE, or NAME from the environment).")
    var buildArgs: [String] = []
    @Option(help: "The stage to build.") var target: String?
    @Flag(name: .customLong("no-cache"), help: "Do not use the cache.") var noCache = false
    @Flag(name: .shortAndLong, help: "Print only the image ID.") var quiet = false
    @Option(name: .customLong("label"), help: "Set a label on the image (KEY=VALUE); repeatable.")
    var labels: [String] = []
    @Option(help: "Network for RUN steps: default, none or host.") var network = "default"
    @Option(help: "Progress output: auto, plain or tty.") var progress = "auto"
    @Argument(help: "The context directory.") var context: String

    func run() async throws {
        guard ["auto", "plain", "tty"].contains(progress) else {
            throw ValidationError("invalid --progress \"\(progress)\": want auto, plain or tty")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: context, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AtollError.invalidArgument("cannot build: the context \"\(context)\" is not a directory")
        }
        var header = Atoll_Engine_V1_BuildHeader()
        (header.dockerfile, header.dockerfileName) = try readDockerfile()
        header.tags = tags
        header.buildArgs = try Self.pairs(buildArgs, flag: "--build-arg", environment: true)
        header.labels = try Self.pairs(labels, flag: "--label", environment: false)
        header.target = target ?? ""
        header.noCache = noCache
        header.network = network
        // As docker build: the stored logins go along, for base images the daemon has to pull.
        let config = CLIConfigFile()
        for registry in (try? config.registries()) ?? [] {
            // A damaged entry only matters to a pull that needs it, which then says so.
            guard let login = try? config.credentials(for: registry) else { continue }
            var auth = Atoll_Engine_V1_RegistryAuth()
            (auth.username, auth.password) = login
            header.registryAuths[registry] = auth
        }
        let ignore = try DockerIgnore.load(contextDirectory: context)
        let display = BuildDisplay(
            mode: quiet ? .quiet : progress == "plain" || (progress == "auto" && isatty(2) == 0) ? .plain : .tty)
        let contextDirectory = context
        let request = StreamingClientRequest<Atoll_Engine_V1_BuildRequest> { [header] writer in
            var first = Atoll_Engine_V1_BuildRequest()
            first.header = header
            try await writer.write(first)
            let (reader, archiveWriter) = try ProcessLauncher.pipe()
            let archiving = Task.detached {
                defer { archiveWriter.close() }
                return try ContextArchive.write(contextDirectory: contextDirectory, ignore: ignore, to: archiveWriter)
            }
            defer { reader.close() }
            try await EngineClient.streamFile(reader) { data in
                var chunk = Atoll_Engine_V1_BuildRequest()
                chunk.chunk = data
                try await writer.write(chunk)
            }
            let (entries, bytes) = try await archiving.value
            display.context(entries: entries, bytes: bytes)
        }
        let imageID = try await GlobalOptions.withEngine { client in
            try await client.builder.build(request: request, options: .longRunning) { response in
                var imageID = ""
                for try await event in response.messages {
                    if case .result(let result)? = event.event { imageID = result.imageID }
                    display.show(event)
                }
                return imageID
            }
        }
        display.finish(imageID: imageID, tags: tags)
    }

    /// The Dockerfile's text and the name errors give it.
    private func readDockerfile() throws -> (String, String) {
        let path = file ?? "\(context)/Dockerfile"
        if path == "-" {
            return (String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self), "Dockerfile")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AtollError.invalidArgument("cannot read the Dockerfile \(path): no such file")
        }
        return (String(decoding: data, as: UTF8.self), file.map { ($0 as NSString).lastPathComponent } ?? "Dockerfile")
    }

    /// KEY=VALUE options; with `environment`, a bare KEY takes its value from the environment
    /// (and is left out when unset), as `docker build --build-arg` does.
    static func pairs(_ items: [String], flag: String, environment: Bool) throws -> [String: String] {
        var result: [String: String] = [:]
        for item in items {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = parts.first, !key.isEmpty else {
                throw ValidationError("invalid \(flag) \"\(item)\": want KEY=VALUE")
            }
            if parts.count == 2 {
                result[String(key)] = String(parts[1])
            } else if environment {
                if let value = ProcessInfo.processInfo.environment[String(key)] { result[String(key)] = value }
            } else {
                result[String(key)] = ""
            }
        }
        return result
    }
}

/// `atoll builder prune`.
struct BuilderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "builder", abstract: "Manage the build cache.", subcommands: [BuilderPruneCommand.self])
}

struct BuilderPruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove the build cache (by default, the steps no image uses).")
    @Flag(name: .shortAndLong, help: "Remove every cached step, also those images use.") var all = false
    @Flag(name: .shortAndLong, help: "Do not ask for confirmation (atoll never asks).") var force = false

    func run() async throws {
        var request = Atoll_Engine_V1_PruneBuildCacheRequest()
        request.all = all
        let response = try await GlobalOptions.withEngine { [request] in
            try await $0.builder.pruneCache(request)
        }
        Output.print("Deleted build cache objects: \(response.entriesRemoved)")
        Output.print("Total reclaimed space: \(Output.size(response.spaceReclaimed))")
    }
}

import ArgumentParser
import AtollAPI
import AtollClient
import Foundation
import GRPCCore

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop running containers.")
    @Option(name: .shortAndLong, help: "Seconds to wait before killing the container.") var time: Int32?
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        let timeout = time ?? -1
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_StopContainerRequest()
            request.container = name
            request.timeout = timeout
            _ = try await client.containers.stop(request, options: .longRunning)
        }
    }
}

struct RestartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Restart containers.")
    @Option(name: .shortAndLong, help: "Seconds to wait before killing the container.") var time: Int32?
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        let timeout = time ?? -1
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_StopContainerRequest()
            request.container = name
            request.timeout = timeout
            _ = try await client.containers.restart(request, options: .longRunning)
        }
    }
}

struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Kill running containers.")
    @Option(name: .shortAndLong, help: "Signal to send (default KILL).") var signal: String?
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        let signal = self.signal ?? ""
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_KillContainerRequest()
            request.container = name
            request.signal = signal
            _ = try await client.containers.kill(request)
        }
    }
}

struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause all processes in containers.")
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_ContainerRequest()
            request.container = name
            _ = try await client.containers.pause(request)
        }
    }
}

struct UnpauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Unpause containers.")
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_ContainerRequest()
            request.container = name
            _ = try await client.containers.unpause(request)
        }
    }
}

struct RmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers.")
    @Flag(name: .shortAndLong, help: "Force the removal of a running container (uses SIGKILL).") var force = false
    @Flag(name: .shortAndLong, help: "Remove anonymous volumes associated with the container.") var volumes = false
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        guard !containers.isEmpty else { throw ValidationError("rm needs at least one container") }
        let force = self.force
        let volumes = self.volumes
        try await forEachContainer(containers) { client, name in
            var request = Atoll_Engine_V1_RemoveContainerRequest()
            request.container = name
            request.force = force
            request.volumes = volumes
            _ = try await client.containers.remove(request, options: .longRunning)
        }
    }
}

struct RenameCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rename", abstract: "Rename a container.")
    @Argument(help: "The container.") var container: String
    @Argument(help: "Its new name.") var newName: String

    func run() async throws {
        var request = Atoll_Engine_V1_RenameContainerRequest()
        request.container = container
        request.newName = newName
        _ = try await GlobalOptions.withEngine { [request] in try await $0.containers.rename(request) }
    }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Block until containers stop, then print their exit codes.")
    @Argument(help: "Containers.") var containers: [String]

    func run() async throws {
        try await forEachContainer(containers, printNames: false) { client, name in
            var request = Atoll_Engine_V1_ContainerRequest()
            request.container = name
            let response = try await client.containers.wait(request, options: .longRunning)
            Output.print(String(response.exitCode))
        }
    }
}

struct ContainerPruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove all stopped containers.")
    @Flag(name: .shortAndLong, help: "Do not prompt for confirmation.") var force = false
    @Option(name: .long, help: "Filters (label=KEY[=VALUE]).") var filter: [String] = []

    func run() async throws {
        var request = Atoll_Engine_V1_PruneContainersRequest()
        request.filters = filter
        let response = try await GlobalOptions.withEngine { [request] in
            try await $0.containers.prune(request, options: .longRunning)
        }
        if !response.removed.isEmpty {
            Output.print("Deleted Containers:")
            for id in response.removed { Output.print(id) }
            Output.print("")
        }
        Output.print("Total reclaimed space: \(Output.size(response.reclaimedBytes))")
    }
}

extension CallOptions {
    /// Calls that wait for containers (stop, wait) have no deadline.
    static var longRunning: CallOptions { .defaults }
}

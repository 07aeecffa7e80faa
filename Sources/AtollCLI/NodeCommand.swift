import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Manage the cluster's nodes (on a manager, or with -H tcp:// --tls-dir).",
        subcommands: [NodeListCommand.self, NodeInspectCommand.self, NodeUpdateCommand.self, NodeRemoveCommand.self])
}

struct NodeListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List the cluster's nodes.", aliases: ["list"])
    @Flag(name: .shortAndLong, help: "Only display IDs.") var quiet = false
    @Option(name: .shortAndLong, help: "id=, name=, role=, state=, availability=, label=KEY[=VALUE].")
    var filter: [String] = []

    func run() async throws {
        var request = Atoll_Cluster_V1_ListNodesRequest()
        request.filters = filter
        let nodes = try await GlobalOptions.withEngine { [request] in try await $0.control.listNodes(request) }.nodes
        if quiet {
            for node in nodes { Output.print(node.id) }
            return
        }
        Output.table(
            ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "ROLE", "MANAGER STATUS", "ENGINE VERSION", "ADDRESS"],
            nodes.map { node in
                [
                    node.id + (node.self_p ? " *" : ""), node.description_p.hostname, node.state.capitalized,
                    node.availability.capitalized, node.role, node.managerStatus.capitalized,
                    node.description_p.engineVersion, node.address,
                ]
            })
    }
}

struct NodeInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Display detailed information on nodes.")
    @Option(name: .shortAndLong, help: "A template such as '{{.Status.State}}', or json.") var format: String?
    @Argument(help: "Nodes: ID, ID prefix, hostname, or self.") var nodes: [String]

    func run() async throws {
        guard !nodes.isEmpty else { throw ValidationError("inspect needs at least one node") }
        try await InspectCommand.show(nodes, format: format) { try await Self.document($0) }
    }

    /// Docker's shape: Spec, Description (Platform, Resources, Engine), Status, plus the
    /// certificate's expiry.
    static func document(_ name: String) async throws -> [String: Any] {
        var request = Atoll_Cluster_V1_InspectNodeRequest()
        request.node = name
        let node = try await GlobalOptions.withEngine { [request] in try await $0.control.inspectNode(request) }
        func time(_ seconds: Int64) -> String {
            seconds > 0 ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds))) : ""
        }
        return [
            "ID": node.id, "Version": ["Index": node.version], "CreatedAt": time(node.createdAt),
            "UpdatedAt": time(node.updatedAt), "Self": node.self_p,
            "Spec": ["Role": node.role, "Availability": node.availability, "Labels": node.labels] as [String: Any],
            "Description": [
                "Hostname": node.description_p.hostname,
                "Platform": ["OS": node.description_p.os, "Architecture": node.description_p.architecture],
                "Resources": [
                    "NanoCPUs": node.description_p.cpus * 1_000_000_000, "CPUs": node.description_p.cpus,
                    "MemoryBytes": node.description_p.memoryBytes,
                ],
                "Engine": ["EngineVersion": node.description_p.engineVersion],
            ] as [String: Any],
            "Status": ["State": node.state, "Message": node.stateMessage, "Addr": node.address],
            "ManagerStatus": ["Reachability": node.managerStatus, "Leader": node.managerStatus == "leader"]
                as [String: Any],
            "Certificate": ["Expiry": time(node.certificateExpiry)],
        ]
    }
}

struct NodeUpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Update a node.")
    @Option(help: "active, pause or drain.") var availability: String?
    @Option(name: .customLong("label-add"), help: "Add or update a label (KEY[=VALUE]).") var labelAdd: [String] = []
    @Option(name: .customLong("label-rm"), help: "Remove a label (KEY).") var labelRm: [String] = []
    @Argument(help: "The node: ID, ID prefix, hostname, or self.") var node: String

    func run() async throws {
        var request = Atoll_Cluster_V1_UpdateNodeRequest()
        request.node = node
        request.availability = availability ?? ""
        request.labelAdd = labelAdd
        request.labelRm = labelRm
        _ = try await GlobalOptions.withEngine { [request] in try await $0.control.updateNode(request) }
        Output.print(node)
    }
}

struct NodeRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove nodes from the cluster (their certificates are refused from then on).",
        aliases: ["remove"])
    @Flag(name: .shortAndLong, help: "Remove a node that is not down.") var force = false
    @Argument(help: "Nodes.") var nodes: [String]

    func run() async throws {
        guard !nodes.isEmpty else { throw ValidationError("rm needs at least one node") }
        var failed = false
        for node in nodes {
            var request = Atoll_Cluster_V1_RemoveNodeRequest()
            request.node = node
            request.force = force
            do {
                _ = try await GlobalOptions.withEngine { [request] in try await $0.control.removeNode(request) }
                Output.print(node)
            } catch {
                failed = true
                FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
            }
        }
        if failed { throw ExitCode.failure }
    }
}

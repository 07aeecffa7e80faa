import ArgumentParser
import AtollAPI
import AtollClient
import AtollCore
import Foundation

struct NetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Manage networks.",
        subcommands: [
            NetworkCreateCommand.self, NetworkListCommand.self, NetworkInspectCommand.self, NetworkRemoveCommand.self,
            NetworkPruneCommand.self, NetworkConnectCommand.self, NetworkDisconnectCommand.self,
            NetworkUpdateCommand.self,
        ])
}

struct NetworkCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a network.",
        discussion: """
            Bridge networks live on this host. Overlay networks span hosts over VXLAN: create the same
            network (same name, subnet and vni) on each host with a different --ip-range, and list
            the other hosts with --opt peers=IP,IP (or later with `network update --add-peer`).
            """)
    @Option(name: .shortAndLong, help: "Driver: bridge or overlay.") var driver = "bridge"
    @Option(name: .long, help: "Subnet in CIDR format (repeat for IPv4 and IPv6).") var subnet: [String] = []
    @Option(name: .long, help: "Gateway for the subnet given at the same position.") var gateway: [String] = []
    @Option(name: .customLong("ip-range"), help: "Allocate container addresses from a sub-range.")
    var ipRange: [String] = []
    @Flag(name: .customLong("internal"), help: "Restrict external access to the network.") var isInternal = false
    @Option(name: .long, help: "Set metadata on a network (KEY=VALUE).") var label: [String] = []
    @Option(name: .shortAndLong, help: "Driver options: mtu=N; overlays: vni=N, peers=IP,…, local=IP.")
    var opt: [String] = []
    @Argument(help: "The network's name.") var name: String

    func run() async throws {
        guard gateway.count <= subnet.count, ipRange.count <= subnet.count else {
            throw ValidationError("each --gateway and --ip-range needs a --subnet")
        }
        var request = Atoll_Engine_V1_CreateNetworkRequest()
        request.name = name
        request.driver = driver
        request.subnets = subnet.enumerated().map { index, text in
            var message = Atoll_Engine_V1_Subnet()
            message.subnet = text
            message.gateway = index < gateway.count ? gateway[index] : ""
            message.ipRange = index < ipRange.count ? ipRange[index] : ""
            return message
        }
        request.internal = isInternal
        request.labels = try VolumeCreateCommand.pairs(label, flag: "--label", valueRequired: false)
        request.options = try VolumeCreateCommand.pairs(opt, flag: "--opt", valueRequired: true)
        let network = try await GlobalOptions.withEngine { [request] in try await $0.networks.create(request) }
        Output.print(network.id)
    }
}

struct NetworkListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List networks.", aliases: ["list"])
    @Flag(name: .shortAndLong, help: "Only display network IDs.") var quiet = false
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate the output.") var noTrunc = false
    @Option(name: .shortAndLong, help: "Filter (driver=, name=, id=, label=, type=builtin|custom, dangling=).")
    var filter: [String] = []
    @Option(name: .long, help: "Format: table, json, or a template such as '{{.Name}}'.") var format: String?

    func run() async throws {
        var request = Atoll_Engine_V1_ListNetworksRequest()
        request.filters = filter
        let response = try await GlobalOptions.withEngine { [request] in try await $0.networks.list(request) }
        let id = { (network: Atoll_Engine_V1_Network) in noTrunc ? network.id : String(network.id.prefix(12)) }
        if quiet {
            for network in response.networks { Output.print(id(network)) }
            return
        }
        let rows = response.networks.map { network -> [String: String] in
            [
                "ID": id(network), "Name": network.name, "Driver": network.driver, "Scope": "local",
                "Internal": String(network.internal), "CreatedAt": network.createdAt,
                "Subnet": network.subnets.map(\.subnet).joined(separator: ","),
                "Labels": network.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
                    separator: ","),
            ]
        }
        RowFormat(format).render(
            rows, columns: [("ID", "NETWORK ID"), ("Name", "NAME"), ("Driver", "DRIVER"), ("Scope", "SCOPE")])
    }
}

struct NetworkInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Display detailed information on networks.")
    @Option(name: .shortAndLong, help: "A template such as '{{.IPAM.Config}}', or json.") var format: String?
    @Argument(help: "Networks.") var names: [String]

    func run() async throws {
        guard !names.isEmpty else { throw ValidationError("inspect needs at least one network") }
        try await InspectCommand.show(names, format: format) { try await Self.document($0) }
    }

    /// Docker's shape: IPAM.Config, Containers by ID, Options, Labels.
    static func document(_ name: String) async throws -> [String: Any] {
        var request = Atoll_Engine_V1_InspectNetworkRequest()
        request.network = name
        let network = try await GlobalOptions.withEngine { [request] in try await $0.networks.inspect(request) }
        var containers: [String: Any] = [:]
        for endpoint in network.endpoints {
            containers[endpoint.containerID] = [
                "Name": endpoint.containerName, "MacAddress": endpoint.macAddress,
                "IPv4Address": endpoint.ipv4Address.isEmpty
                    ? "" : "\(endpoint.ipv4Address)/\(prefix(network, v4: true))",
                "IPv6Address": endpoint.ipv6Address.isEmpty
                    ? "" : "\(endpoint.ipv6Address)/\(prefix(network, v4: false))",
                "Aliases": endpoint.aliases, "Interface": endpoint.interface, "HostInterface": endpoint.hostInterface,
            ]
        }
        return [
            "Name": network.name, "Id": network.id, "Created": network.createdAt, "Scope": "local",
            "Driver": network.driver, "EnableIPv6": network.subnets.contains { $0.subnet.contains(":") },
            "IPAM": [
                "Driver": "default",
                "Config": network.subnets.map { subnet -> [String: String] in
                    var config = ["Subnet": subnet.subnet]
                    if !subnet.gateway.isEmpty { config["Gateway"] = subnet.gateway }
                    if !subnet.ipRange.isEmpty { config["IPRange"] = subnet.ipRange }
                    return config
                },
            ] as [String: Any],
            "Internal": network.internal, "Containers": containers, "Options": network.options,
            "Labels": network.labels, "Bridge": network.bridge, "BuiltIn": network.builtin,
        ]
    }

    private static func prefix(_ network: Atoll_Engine_V1_Network, v4: Bool) -> String {
        network.subnets.first { $0.subnet.contains(":") != v4 }?.subnet.split(separator: "/").last.map(String.init)
            ?? ""
    }
}

struct NetworkRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove networks no container is on.", aliases: ["remove"])
    @Argument(help: "Networks.") var names: [String]

    func run() async throws {
        guard !names.isEmpty else { throw ValidationError("rm needs at least one network") }
        var failed = false
        for name in names {
            var request = Atoll_Engine_V1_RemoveNetworkRequest()
            request.network = name
            do {
                _ = try await GlobalOptions.withEngine { [request] in try await $0.networks.remove(request) }
                Output.print(name)
            } catch {
                failed = true
                FileHandle.standardErrorLine("Error: \(Atoll.describe(error))")
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct NetworkPruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove all user-defined networks no container is on.")
    @Flag(name: .shortAndLong, help: "Do not prompt for confirmation.") var force = false
    @Option(name: .long, help: "Filters (label=KEY[=VALUE]).") var filter: [String] = []

    func run() async throws {
        var request = Atoll_Engine_V1_PruneNetworksRequest()
        request.filters = filter
        let response = try await GlobalOptions.withEngine { [request] in try await $0.networks.prune(request) }
        if !response.removed.isEmpty {
            Output.print("Deleted Networks:")
            for name in response.removed { Output.print(name) }
        }
    }
}

struct NetworkConnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect", abstract: "Connect a container to a network (at once if it runs).")
    @Option(name: .long, help: "IPv4 address.") var ip: String?
    @Option(name: .long, help: "IPv6 address.") var ip6: String?
    @Option(name: .long, help: "Add a network-scoped alias for the container.") var alias: [String] = []
    @Argument(help: "The network.") var network: String
    @Argument(help: "The container.") var container: String

    func run() async throws {
        var request = Atoll_Engine_V1_ConnectNetworkRequest()
        request.network = network
        request.container = container
        request.ipv4Address = ip ?? ""
        request.ipv6Address = ip6 ?? ""
        request.aliases = alias
        _ = try await GlobalOptions.withEngine { [request] in try await $0.networks.connect(request) }
    }
}

struct NetworkDisconnectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disconnect", abstract: "Disconnect a container from a network.")
    @Flag(name: .shortAndLong, help: "Force the container to disconnect.") var force = false
    @Argument(help: "The network.") var network: String
    @Argument(help: "The container.") var container: String

    func run() async throws {
        var request = Atoll_Engine_V1_DisconnectNetworkRequest()
        request.network = network
        request.container = container
        request.force = force
        _ = try await GlobalOptions.withEngine { [request] in try await $0.networks.disconnect(request) }
    }
}

struct NetworkUpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Add or remove the remote hosts of an overlay network, in place.")
    @Option(name: .customLong("add-peer"), help: "A remote host's underlay address.") var addPeer: [String] = []
    @Option(name: .customLong("rm-peer"), help: "A remote host to drop.") var removePeer: [String] = []
    @Argument(help: "The overlay network.") var network: String

    func run() async throws {
        guard !addPeer.isEmpty || !removePeer.isEmpty else { throw ValidationError("give --add-peer or --rm-peer") }
        var request = Atoll_Engine_V1_UpdatePeersRequest()
        request.network = network
        request.add = addPeer
        request.remove = removePeer
        let updated = try await GlobalOptions.withEngine { [request] in try await $0.networks.updatePeers(request) }
        Output.print(
            "\(updated.name): peers \(updated.options["peers"].map { $0.isEmpty ? "(none)" : $0 } ?? "(none)")")
    }
}

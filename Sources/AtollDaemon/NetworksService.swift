import AtollAPI
import AtollCore
import AtollEngine
import AtollNetwork
import Foundation
import GRPCCore

/// The Networks service: decodes, calls the engine's NetworkService (and ContainerService for
/// connect and disconnect, which change containers' settings) off the async pool, encodes.
struct NetworksService: Atoll_Engine_V1_Networks.SimpleServiceProtocol {
    let engine: Engine

    func create(request: Atoll_Engine_V1_CreateNetworkRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_Network
    {
        let networks = engine.networks
        let created = NetworkCreateRequest(
            name: request.name, driver: request.driver,
            subnets: request.subnets.map { SubnetConfig(subnet: $0.subnet, gateway: $0.gateway, ipRange: $0.ipRange) },
            isInternal: request.internal, labels: request.labels, options: request.options)
        let record = try await BlockingWork.run { try networks.create(created) }
        return message(NetworkDetails(record: record, endpoints: []), names: [:])
    }

    func list(request: Atoll_Engine_V1_ListNetworksRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ListNetworksResponse
    {
        let networks = engine.networks
        let filters = try request.filters.map(NetworkFilter.init(parsing:))
        let listed = try await BlockingWork.run { try networks.list() }
        var response = Atoll_Engine_V1_ListNetworksResponse()
        response.networks = listed.filter { details in filters.allSatisfy { $0.matches(details) } }.map {
            message($0, names: [:])
        }
        return response
    }

    func inspect(request: Atoll_Engine_V1_InspectNetworkRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_Network
    {
        let networks = engine.networks
        let containers = engine.containers
        let (details, names) = try await BlockingWork.run {
            let details = try networks.inspect(request.network)
            let names = Dictionary(
                details.endpoints.compactMap { endpoint in
                    (try? containers.lookup(endpoint.containerID)).map { (endpoint.containerID, $0.name) }
                }, uniquingKeysWith: { a, _ in a })
            return (details, names)
        }
        return message(details, names: names)
    }

    func remove(request: Atoll_Engine_V1_RemoveNetworkRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_RemoveNetworkResponse
    {
        let networks = engine.networks
        try await BlockingWork.run { try networks.remove(request.network) }
        return Atoll_Engine_V1_RemoveNetworkResponse()
    }

    func prune(request: Atoll_Engine_V1_PruneNetworksRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_PruneNetworksResponse
    {
        let networks = engine.networks
        var labels: [String: String?] = [:]
        for filter in request.filters {
            guard filter.hasPrefix("label=") else {
                throw RPCError(code: .invalidArgument, message: "invalid filter \"\(filter)\": prune takes label=K[=V]")
            }
            let pair = filter.dropFirst(6).split(separator: "=", maxSplits: 1).map(String.init)
            labels[pair[0]] = pair.count == 2 ? pair[1] : nil as String?
        }
        let removed = try await BlockingWork.run { [labels] in try networks.prune(labels: labels) }
        var response = Atoll_Engine_V1_PruneNetworksResponse()
        response.removed = removed
        return response
    }

    func connect(request: Atoll_Engine_V1_ConnectNetworkRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ConnectNetworkResponse
    {
        let containers = engine.containers
        let attachment = NetworkAttachment(
            network: request.network, ipv4: request.ipv4Address, ipv6: request.ipv6Address, aliases: request.aliases)
        try await BlockingWork.run { try containers.connect(request.container, attachment) }
        return Atoll_Engine_V1_ConnectNetworkResponse()
    }

    func disconnect(request: Atoll_Engine_V1_DisconnectNetworkRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ConnectNetworkResponse
    {
        let containers = engine.containers
        try await BlockingWork.run { try containers.disconnect(request.container, network: request.network) }
        return Atoll_Engine_V1_ConnectNetworkResponse()
    }

    func updatePeers(request: Atoll_Engine_V1_UpdatePeersRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_Network
    {
        let networks = engine.networks
        let (record, endpoints) = try await BlockingWork.run {
            let record = try networks.updatePeers(request.network, adding: request.add, removing: request.remove)
            return (record, try networks.inspect(record.id).endpoints)
        }
        return message(NetworkDetails(record: record, endpoints: endpoints), names: [:])
    }

    private func message(_ details: NetworkDetails, names: [String: String]) -> Atoll_Engine_V1_Network {
        let record = details.record
        var network = Atoll_Engine_V1_Network()
        network.id = record.id
        network.name = record.name
        network.driver = record.driver
        network.createdAt = ISO8601DateFormatter().string(
            from: Date(timeIntervalSince1970: TimeInterval(record.created) / 1e9))
        network.subnets = record.subnets.map { subnet in
            var message = Atoll_Engine_V1_Subnet()
            message.subnet = subnet.subnet
            message.gateway = subnet.gateway
            message.ipRange = subnet.ipRange
            return message
        }
        network.internal = record.isInternal
        network.labels = record.labels
        network.options = record.options
        network.bridge = record.bridge
        network.builtin = record.builtin
        network.endpoints = details.endpoints.map { endpoint in
            var message = Atoll_Engine_V1_NetworkEndpoint()
            message.containerID = endpoint.containerID
            message.containerName = names[endpoint.containerID] ?? ""
            message.ipv4Address = endpoint.ipv4
            message.ipv6Address = endpoint.ipv6
            message.macAddress = endpoint.mac
            message.aliases = endpoint.aliases
            message.interface = endpoint.interfaceName
            message.hostInterface = endpoint.hostInterface
            return message
        }
        return network
    }
}

/// One `network ls --filter`.
struct NetworkFilter {
    let key: String
    let value: String

    init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["driver", "name", "id", "label", "type", "dangling"].contains(parts[0]) else {
            throw AtollError.invalidArgument(
                "invalid filter \"\(text)\": want driver=, name=, id=, label=, type=builtin|custom or dangling=")
        }
        key = parts[0]
        value = parts[1]
    }

    func matches(_ details: NetworkDetails) -> Bool {
        let record = details.record
        switch key {
        case "driver": return record.driver == value
        case "name": return record.name.contains(value)
        case "id": return record.id.hasPrefix(value)
        case "type": return value == "builtin" ? record.builtin : !record.builtin
        case "dangling": return (value == "true" || value == "1") == (details.endpoints.isEmpty && !record.builtin)
        default:
            let pair = value.split(separator: "=", maxSplits: 1).map(String.init)
            guard let present = record.labels[pair[0]] else { return false }
            return pair.count == 1 || present == pair[1]
        }
    }
}

import AtollCore
import Foundation
import GRDB

/// What a container's network needs to know when it starts.
public struct SandboxRequest: Sendable {
    public var containerID: String
    public var hostname: String
    /// `--network`: "none", "host", or a network's name or ID.
    public var mode: String
    public var networking: ContainerNetworking
    /// The image's exposed ports ("80/tcp"), published by `-P`.
    public var exposedPorts: [String]

    public init(
        containerID: String, hostname: String, mode: String, networking: ContainerNetworking, exposedPorts: [String]
    ) {
        self.containerID = containerID
        self.hostname = hostname
        self.mode = mode
        self.networking = networking
        self.exposedPorts = exposedPorts
    }
}

/// A started container's network: the namespace its runtime joins and the contents of its
/// /etc/hosts and /etc/resolv.conf.
public struct Sandbox: Sendable {
    public enum Namespace: Sendable, Equatable {
        /// A fresh namespace with loopback only (`--network none`).
        case new
        /// The host's own (`--network host`).
        case host
        /// A namespace Atoll pinned and wired before the container starts.
        case pinned(String)
    }
    public var namespace: Namespace
    public var hosts: String
    public var resolvConf: String
}

extension NetworkService {
    /// Checks a container's network settings when it is created: the networks exist and allow
    /// what is asked (`--ip` and aliases on user-defined networks only). Returns the settings with
    /// the first attachment naming the `--network` network.
    public func validate(mode: String, networking given: ContainerNetworking) throws -> ContainerNetworking {
        var networking = given
        switch mode {
        case "none", "host":
            if !networking.attachments.contains(where: { !$0.ipv4.isEmpty || !$0.ipv6.isEmpty || !$0.aliases.isEmpty })
            {
                networking.attachments = []
                if mode == "host" { networking.ports = [] }  // as Docker: published ports mean nothing there
                networking.publishAll = networking.publishAll && mode != "host"
                return networking
            }
            throw AtollError.invalidArgument("--ip and --network-alias need a user-defined network, not \(mode)")
        default:
            if mode.hasPrefix("container:") {
                throw AtollError.invalidArgument("--network container:NAME is not supported yet: use a shared network")
            }
        }
        if networking.attachments.first?.network != mode {
            networking.attachments.insert(NetworkAttachment(network: mode), at: 0)
        }
        var seen = Set<String>()
        for index in networking.attachments.indices {
            let attachment = networking.attachments[index]
            let network = try resolve(attachment.network)
            guard network.isBridged else {
                throw AtollError.invalidArgument(
                    "container cannot be connected to network \(network.name) and to other networks at once")
            }
            guard seen.insert(network.id).inserted else {
                throw AtollError.invalidArgument("network \(network.name) is given twice")
            }
            try checkAddresses(attachment, on: network)
            if network.builtin && !attachment.aliases.isEmpty {
                throw AtollError.invalidArgument("network-scoped aliases are supported on user-defined networks only")
            }
            networking.attachments[index].network = network.name
        }
        for host in networking.extraHosts { _ = try ExtraHost(parsing: host) }
        for server in networking.dns where IPAddress(server) == nil {
            throw AtollError.invalidArgument("invalid --dns \"\(server)\": want an IP address")
        }
        return networking
    }

    private func checkAddresses(_ attachment: NetworkAttachment, on network: NetworkRecord) throws {
        for text in [attachment.ipv4, attachment.ipv6] where !text.isEmpty {
            guard !network.builtin else {
                throw AtollError.invalidArgument("user specified IP address is supported on user defined networks only")
            }
            guard let address = IPAddress(text) else {
                throw AtollError.invalidArgument("invalid IP address \"\(text)\"")
            }
            guard let subnet = network.subnets.first(where: { $0.network?.contains(address) == true }) else {
                throw AtollError.invalidArgument(
                    "address \(text) is outside the subnets of network \(network.name) (\(network.subnets.map(\.subnet).joined(separator: ", ")))"
                )
            }
            guard let range = subnet.network,
                AddressAllocator.isAssignable(address, in: range, gateway: subnet.gatewayAddress)
            else {
                throw AtollError.invalidArgument(
                    "address \(text) is the gateway, network or broadcast address of \(subnet.subnet)")
            }
        }
    }

    // MARK: - Attach and release

    /// Wires a starting container: a pinned namespace with one veth per network (addresses, MAC,
    /// default route), its published ports in the ruleset, its names in each network's DNS.
    /// On failure, everything made so far is undone.
    public func attach(_ request: SandboxRequest) throws -> Sandbox {
        let hosts = HostsFile(hostname: request.hostname, extraHosts: request.networking.extraHosts)
        switch request.mode {
        case "none":
            return Sandbox(
                namespace: .new, hosts: hosts.render(addresses: []), resolvConf: resolvConf(request, servers: nil))
        case "host":
            let hostHosts = (try? String(contentsOfFile: "/etc/hosts", encoding: .utf8)) ?? hosts.render(addresses: [])
            return Sandbox(namespace: .host, hosts: hostHosts, resolvConf: resolvConf(request, servers: nil))
        default:
            break
        }
        return try lock.withLock {
            let id = request.containerID
            let path = "\(namespaceDirectory)/\(id)"
            releaseLocked(id)
            do {
                let namespace = try NetworkNamespace.create(at: path)
                let inside = try RouteNetlink(namespace: namespace)
                var endpoints: [(EndpointRecord, NetworkRecord)] = []
                for (index, attachment) in request.networking.attachments.enumerated() {
                    let network = try resolve(attachment.network)
                    let endpoint = try connectLocked(
                        network, attachment, containerID: id, interface: "eth\(index)", namespace: namespace,
                        inside: inside, defaultRoute: !endpoints.contains { $0.1.hasGateway })
                    endpoints.append((endpoint, network))
                }
                // The ruleset holds bridges and published ports, not endpoints: only ports change it.
                if try publishLocked(request, endpoints: endpoints) { try refreshFirewall() }
                refreshDNS()
                let addresses = endpoints.flatMap { [$0.0.ipv4, $0.0.ipv6] }.filter { !$0.isEmpty }
                let dnsServer = endpoints.first { $0.1.driver == "bridge" }?.1.subnets.first {
                    $0.network?.isIPv4 == true
                }?
                .gateway
                return Sandbox(
                    namespace: .pinned(path), hosts: hosts.render(addresses: addresses),
                    resolvConf: resolvConf(request, servers: dnsServer.map { [$0] }))
            } catch {
                releaseLocked(id)
                try? refreshFirewall()
                refreshDNS()
                throw error
            }
        }
    }

    /// Undoes `attach` when the container stops or is removed: links, namespace, addresses,
    /// published ports and DNS names. Safe to repeat.
    public func release(_ containerID: String) {
        lock.withLock {
            // A container with no namespace of its own (none, host) has nothing to give back.
            let released = releaseLocked(containerID, linksGoWithNamespace: true)
            guard released.held else { return }
            if released.hadPorts {
                do { try refreshFirewall() } catch { logger.error("cannot update the ruleset: \(error)") }
            }
            refreshDNS()
        }
    }

    /// Releases what the container held: whether it held anything, and whether ports among it.
    ///
    /// With `linksGoWithNamespace` (a container that ran: each of its veth pairs has one end in its
    /// namespace) the pairs are left to the kernel, which deletes a veth pair when the namespace
    /// holding one end goes away, in the background. Deleting a link here would wait ~20 ms for
    /// RCU grace periods, on every container's exit. Otherwise (a half-made attach, stale
    /// records) each host end is deleted here.
    @discardableResult
    func releaseLocked(_ containerID: String, linksGoWithNamespace: Bool = false) -> (held: Bool, hadPorts: Bool) {
        let (endpoints, ports) =
            (try? database.read { db in
                (
                    try EndpointRecord.filter(Column("container_id") == containerID).fetchAll(db),
                    try PortRecord.filter(Column("container_id") == containerID).fetchCount(db)
                )
            }) ?? ([], 0)
        let path = "\(namespaceDirectory)/\(containerID)"
        let pinned = FileSystem.exists(path)
        guard !endpoints.isEmpty || ports > 0 || pinned else { return (false, false) }
        if !(linksGoWithNamespace && pinned) {
            for endpoint in endpoints where !endpoint.hostInterface.isEmpty {
                try? netlink.deleteLink(named: endpoint.hostInterface)
            }
        }
        try? NetworkNamespace.remove(at: path)
        _ = try? database.write { db in
            try EndpointRecord.filter(Column("container_id") == containerID).deleteAll(db)
            try PortRecord.filter(Column("container_id") == containerID).deleteAll(db)
        }
        return (true, ports > 0)
    }

    /// Puts the container on one network: an address from the network's pool (or the one asked
    /// for), recorded first so no one else can take it, then the veth pair and the addresses.
    func connectLocked(
        _ network: NetworkRecord, _ attachment: NetworkAttachment, containerID: String, interface: String,
        namespace: NetworkNamespace, inside: RouteNetlink, defaultRoute: Bool
    ) throws -> EndpointRecord {
        var endpoint = EndpointRecord(
            containerID: containerID, networkID: network.id, hostInterface: "veth\(Identifier.random().prefix(11))",
            interfaceName: interface, aliases: attachment.aliases)
        try database.write { db in
            if let v4 = network.subnets.first(where: { $0.network?.isIPv4 == true }) {
                endpoint.ipv4 = try allocate(attachment.ipv4, from: v4, network: network, column: "ipv4", db: db)
            }
            if let v6 = network.subnets.first(where: { $0.network?.isIPv4 == false }) {
                endpoint.ipv6 = try allocate(attachment.ipv6, from: v6, network: network, column: "ipv6", db: db)
            }
            let mac = IPv4Address(endpoint.ipv4).map(MACAddress.init(derivedFrom:))
            endpoint.mac =
                (mac ?? MACAddress(bytes: [0x02, 0x42] + (0..<4).map { _ in UInt8.random(in: 0...255) }))?
                .description ?? ""
            try endpoint.insert(db)
        }
        do {
            guard let bridge = try netlink.linkIndex(named: network.bridge) else {
                throw AtollError(.unavailable, "network \(network.name): its bridge \(network.bridge) is missing")
            }
            let mtu = network.mtu ?? OverlayOptions.mtu(network)
            let hostIndex = try netlink.createVeth(
                name: endpoint.hostInterface, master: bridge, mtu: mtu, peerName: interface, peerNamespace: namespace,
                peerMAC: MACAddress(endpoint.mac))
            try netlink.setUp(index: hostIndex)
            guard let index = try inside.linkIndex(named: interface) else {
                throw AtollError.internalError("the container end \(interface) of \(endpoint.hostInterface) is missing")
            }
            for (text, subnet) in [(endpoint.ipv4, true), (endpoint.ipv6, false)] where !text.isEmpty {
                guard let address = IPAddress(text),
                    let prefix = network.subnets.first(where: { $0.network?.isIPv4 == subnet })?.network?.prefixLength
                else { continue }
                try inside.addAddress(address, prefixLength: prefix, index: index)
            }
            try inside.setUp(index: index)
            if defaultRoute && !network.isInternal {
                for subnet in network.subnets {
                    guard let gateway = subnet.gatewayAddress else { continue }
                    try inside.addRoute(destination: nil, gateway: gateway, index: index)
                }
            }
        } catch {
            try? netlink.deleteLink(named: endpoint.hostInterface)
            _ = try? database.write { db in try endpoint.delete(db) }
            throw error
        }
        return endpoint
    }

    private func allocate(
        _ requested: String, from subnet: SubnetConfig, network: NetworkRecord, column: String, db: Database
    ) throws -> String {
        let used = Set(
            try String.fetchAll(
                db, sql: "SELECT \(column) FROM network_endpoints WHERE network_id = ? AND \(column) != ''",
                arguments: [network.id]
            ).compactMap { IPAddress($0) })
        if !requested.isEmpty {
            guard let address = IPAddress(requested) else {
                throw AtollError.invalidArgument("invalid IP address \"\(requested)\"")
            }
            if used.contains(address) {
                throw AtollError.alreadyExists("address \(requested) is already in use on network \(network.name)")
            }
            return address.description
        }
        guard let range = subnet.network, let pool = subnet.pool,
            let address = AddressAllocator.allocate(
                subnet: range, pool: pool, gateway: subnet.gatewayAddress, used: used)
        else {
            throw AtollError(.resourceExhausted, "no available IP addresses on network \(network.name)")
        }
        return address.description
    }

    // MARK: - Files

    private func resolvConf(_ request: SandboxRequest, servers embedded: [String]?) -> String {
        let host = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        return ResolvConf.render(
            host: host, embeddedServers: embedded ?? [], dns: request.networking.dns,
            search: request.networking.dnsSearch, options: request.networking.dnsOptions,
            hostNetwork: request.mode == "host")
    }
}

extension NetworkRecord {
    /// Whether the host has an address on it that containers can route through.
    var hasGateway: Bool { !isInternal && subnets.contains { !$0.gateway.isEmpty } }
}

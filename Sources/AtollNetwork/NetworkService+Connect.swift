import AtollCore
import GRDB

extension NetworkService {
    /// Puts a running container on one more network, at once: a new interface (eth1, eth2, …)
    /// in its namespace, and its names in that network's DNS.
    public func connect(containerID: String, _ attachment: NetworkAttachment) throws {
        try lock.withLock {
            let network = try resolve(attachment.network)
            let path = "\(namespaceDirectory)/\(containerID)"
            let current = try endpoints(of: containerID)
            if current.contains(where: { $0.1.id == network.id }) {
                throw AtollError.alreadyExists(
                    "container \(containerID.prefix(12)) is already on network \(network.name)")
            }
            guard FileSystem.exists(path) else {
                throw AtollError.failedPrecondition(
                    "container \(containerID.prefix(12)) has no network namespace of its own (--network none or host)")
            }
            let namespace = NetworkNamespace(path: path)
            let used = Set(current.map(\.0.interfaceName))
            let interface = (0...).lazy.map { "eth\($0)" }.first { !used.contains($0) } ?? "eth9"
            _ = try connectLocked(
                network, attachment, containerID: containerID, interface: interface, namespace: namespace,
                inside: try RouteNetlink(namespace: namespace), defaultRoute: !current.contains { $0.1.hasGateway })
            refreshDNS()
        }
    }

    /// Takes a running container off a network: its interface goes, and with it the ports
    /// published through that network's address.
    public func disconnect(containerID: String, network reference: String) throws {
        try lock.withLock {
            let network = try resolve(reference)
            guard let endpoint = try endpoints(of: containerID).first(where: { $0.1.id == network.id })?.0 else {
                throw AtollError.notFound(
                    "container \(containerID.prefix(12)) is not connected to network \(network.name)")
            }
            try? netlink.deleteLink(named: endpoint.hostInterface)
            _ = try database.write { db in
                try endpoint.delete(db)
                try PortRecord.filter(Column("container_id") == containerID && Column("container_ip") == endpoint.ipv4)
                    .deleteAll(db)
            }
            try refreshFirewall()
            refreshDNS()
        }
    }

    /// Names changed (a container was renamed): the DNS answers follow.
    public func refreshNames() {
        lock.withLock { refreshDNS() }
    }
}

import AtollCore
import GRDB
import Logging
import Synchronization

/// The embedded DNS servers, one per bridge network, on the network's gateway address. Each
/// answers from its own records; the default bridge's has none and only forwards (Docker gives
/// that network no names).
final class DNSServers: Sendable {
    private struct Entry {
        var address: IPAddress
        var records: DNSRecords
        var server: Task<EmbeddedDNSServer?, Never>
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Serves `records` on `address` for the network, starting a server when there is none there yet.
    func serve(
        network: String, name: String, address: IPAddress, records: [String: [IPAddress]],
        reverse: [IPAddress: String], clientViews: [IPAddress: [String: [IPAddress]]]
    ) {
        entries.withLock { entries in
            if let entry = entries[network], entry.address == address {
                entry.records.replace(records, reverse: reverse, clientViews: clientViews)
                return
            }
            if let old = entries.removeValue(forKey: network) { Self.stop(old) }
            let store = DNSRecords()
            store.replace(records, reverse: reverse, clientViews: clientViews)
            let logger = self.logger
            let server = Task { () -> EmbeddedDNSServer? in
                do {
                    return try await EmbeddedDNSServer.start(
                        address: address, records: store, upstream: UpstreamResolvers.fromHost(), logger: logger)
                } catch {
                    logger.error("network \(name): the embedded DNS server cannot start on \(address): \(error)")
                    return nil
                }
            }
            entries[network] = Entry(address: address, records: store, server: server)
        }
    }

    func stop(network: String) {
        if let entry = entries.withLock({ $0.removeValue(forKey: network) }) { Self.stop(entry) }
    }

    /// Stops the servers of networks not in `keep`.
    func stop(except keep: Set<String>) {
        let gone = entries.withLock { entries in
            let names = entries.keys.filter { !keep.contains($0) }
            return names.compactMap { entries.removeValue(forKey: $0) }
        }
        gone.forEach(Self.stop)
    }

    func stopAll() { stop(except: []) }

    private static func stop(_ entry: Entry) {
        Task { await entry.server.value?.stop() }
    }
}

extension NetworkService {
    /// Recomputes every bridge network's names from the database: each container on a
    /// user-defined network answers to its name, its short ID and its aliases there.
    func refreshDNS() {
        do {
            let (networks, endpoints, names) = try database.read { db in
                (
                    try NetworkRecord.fetchAll(db), try EndpointRecord.fetchAll(db),
                    Dictionary(
                        // Only the containers on some network: stopped ones have no names to give.
                        try Row.fetchAll(
                            db,
                            sql: """
                                SELECT DISTINCT c.id, c.name FROM containers c
                                JOIN network_endpoints e ON e.container_id = c.id
                                """
                        ).map {
                            ($0["id"] as String, $0["name"] as String)
                        }, uniquingKeysWith: { a, _ in a })
                )
            }
            // Each user-defined network's names: container names, short IDs and aliases.
            var recordsByNetwork: [String: [String: [IPAddress]]] = [:]
            var reverseByNetwork: [String: [IPAddress: String]] = [:]
            for network in networks where !network.builtin {
                for endpoint in endpoints where endpoint.networkID == network.id {
                    let addresses = [endpoint.ipv4, endpoint.ipv6].compactMap { IPAddress($0) }
                    var keys = endpoint.aliases + [String(endpoint.containerID.prefix(12))]
                    if let name = names[endpoint.containerID] {
                        keys.append(name)
                        for address in addresses { reverseByNetwork[network.id, default: [:]][address] = name }
                    }
                    for key in keys {
                        recordsByNetwork[network.id, default: [:]][key.lowercased(), default: []] += addresses
                    }
                }
            }
            let networksOf = Dictionary(grouping: endpoints, by: \.containerID).mapValues { $0.map(\.networkID) }
            var served = Set<String>()
            for network in networks where network.driver == "bridge" {
                guard let gateway = network.subnets.compactMap(\.gatewayAddress).first(where: \.isIPv4) else {
                    continue
                }
                // A container on this network that is on others too resolves their names here as well.
                var clientViews: [IPAddress: [String: [IPAddress]]] = [:]
                for endpoint in endpoints where endpoint.networkID == network.id {
                    guard let client = IPAddress(endpoint.ipv4) else { continue }
                    for other in networksOf[endpoint.containerID] ?? [] where other != network.id {
                        clientViews[client, default: [:]].merge(recordsByNetwork[other] ?? [:]) { $0 + $1 }
                    }
                }
                dns.serve(
                    network: network.id, name: network.name, address: gateway,
                    records: recordsByNetwork[network.id] ?? [:], reverse: reverseByNetwork[network.id] ?? [:],
                    clientViews: clientViews)
                served.insert(network.id)
            }
            dns.stop(except: served)
        } catch {
            logger.error("cannot update the embedded DNS records: \(error)")
        }
    }

    /// Stops the DNS servers (daemon shutdown). Links and rules stay for the containers that
    /// keep running.
    public func shutdown() { dns.stopAll() }
}

import AtollCore
import Foundation
import GRDB
import Logging
import Synchronization

/// What `network create` asks for.
public struct NetworkCreateRequest: Sendable {
    public var name: String
    public var driver: String
    public var subnets: [SubnetConfig]
    public var isInternal: Bool
    public var labels: [String: String]
    public var options: [String: String]

    public init(
        name: String, driver: String = "bridge", subnets: [SubnetConfig] = [], isInternal: Bool = false,
        labels: [String: String] = [:], options: [String: String] = [:]
    ) {
        self.name = name
        self.driver = driver
        self.subnets = subnets
        self.isInternal = isInternal
        self.labels = labels
        self.options = options
    }
}

/// A network with the containers on it, for `network inspect` and `network ls`.
public struct NetworkDetails: Sendable {
    public var record: NetworkRecord
    public var endpoints: [EndpointRecord]

    public init(record: NetworkRecord, endpoints: [EndpointRecord]) {
        self.record = record
        self.endpoints = endpoints
    }
}

/// Networks on one host: the records and their address allocations in the engine database, the
/// bridges and veth pairs through netlink, NAT and published ports through one nftables table,
/// and an embedded DNS server per bridge network.
///
/// Every change goes through `lock`: network operations take milliseconds, and one lock keeps
/// the database, the kernel's links and the ruleset in step.
public final class NetworkService: Sendable {
    let database: DatabasePool
    /// Where containers' network namespaces are pinned (`<run>/netns/<container id>`).
    public let namespaceDirectory: String
    let netlink: RouteNetlink
    let firewall: any Firewall
    let dns: DNSServers
    let logger = Logger(label: "atoll.network")
    let lock = NSLock()

    /// The default bridge's device (`atolld --bridge`); user-defined bridges are `atl-<id prefix>`.
    public let defaultBridge: String
    /// This daemon's nftables table: `atoll`, or `atoll_<bridge>` for a daemon with its own
    /// `--bridge` (a second daemon in one network namespace, as in the tests).
    public let firewallTable: String

    public static func registerMigrations(_ migrator: inout DatabaseMigrator) {
        NetworkMigrations.register(&migrator)
    }

    public init(database: DatabasePool, runDirectory: String, firewall: any Firewall, defaultBridge: String = "atoll0")
        throws
    {
        guard (1...15).contains(defaultBridge.utf8.count),
            defaultBridge.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        else {
            throw AtollError.invalidArgument(
                "invalid bridge name \"\(defaultBridge)\": 1 to 15 letters, digits, - or _")
        }
        self.defaultBridge = defaultBridge
        firewallTable =
            defaultBridge == "atoll0" ? "atoll" : "atoll_" + defaultBridge.replacingOccurrences(of: "-", with: "_")
        self.database = database
        namespaceDirectory = "\(runDirectory)/netns"
        try Syscall.mkdirAll(namespaceDirectory, mode: 0o711)
        netlink = try RouteNetlink()
        self.firewall = firewall
        dns = DNSServers(logger: logger)
    }

    // MARK: - Lookup

    /// A network by name, full ID or unique ID prefix.
    public func resolve(_ reference: String) throws -> NetworkRecord {
        try database.read { db in try Self.resolve(reference, in: db) }
    }

    static func resolve(_ reference: String, in db: Database) throws -> NetworkRecord {
        if let byName = try NetworkRecord.filter(Column("name") == reference).fetchOne(db) { return byName }
        if let byID = try NetworkRecord.fetchOne(db, key: reference) { return byID }
        let matches = try NetworkRecord.filter(Column("id").like("\(reference)%")).fetchAll(db)
        guard !reference.isEmpty, reference.allSatisfy(\.isHexDigit) else {
            throw AtollError.notFound("network \(reference) not found")
        }
        if matches.count > 1 {
            throw AtollError.invalidArgument("network ID prefix \"\(reference)\" is ambiguous: use more characters")
        }
        guard let match = matches.first else { throw AtollError.notFound("network \(reference) not found") }
        return match
    }

    public func list() throws -> [NetworkDetails] {
        try database.read { db in
            let endpoints = Dictionary(grouping: try EndpointRecord.fetchAll(db), by: \.networkID)
            return try NetworkRecord.order(Column("name")).fetchAll(db).map {
                NetworkDetails(record: $0, endpoints: endpoints[$0.id] ?? [])
            }
        }
    }

    public func inspect(_ reference: String) throws -> NetworkDetails {
        try database.read { db in
            let record = try Self.resolve(reference, in: db)
            let endpoints = try EndpointRecord.filter(Column("network_id") == record.id).fetchAll(db)
            return NetworkDetails(record: record, endpoints: endpoints)
        }
    }

    /// The endpoints of one container, in interface order.
    public func endpoints(of containerID: String) throws -> [(EndpointRecord, NetworkRecord)] {
        try database.read { db in
            try EndpointRecord.filter(Column("container_id") == containerID).fetchAll(db).compactMap { endpoint in
                try NetworkRecord.fetchOne(db, key: endpoint.networkID).map { (endpoint, $0) }
            }.sorted { $0.0.interfaceName.localizedStandardCompare($1.0.interfaceName) == .orderedAscending }
        }
    }

    /// Every published port (for `ps`).
    public func allPorts() throws -> [PortRecord] { try database.read { db in try PortRecord.fetchAll(db) } }

    /// The names of the networks each running container is on (for `ps`).
    public func networkNames() throws -> [String: [String]] {
        try database.read { db in
            var names: [String: [String]] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT e.container_id, n.name FROM network_endpoints e JOIN networks n ON n.id = e.network_id
                    ORDER BY e.interface_name
                    """)
            for row in rows { names[row[0] as String, default: []].append(row[1]) }
            return names
        }
    }

    public func ports(of containerID: String) throws -> [PortRecord] {
        try database.read { db in try PortRecord.filter(Column("container_id") == containerID).fetchAll(db) }
    }

    // MARK: - Start

    /// Brings the host side up to date with the database when atolld starts: the built-in
    /// networks exist, every bridge has its device and address, endpoints of containers that are
    /// not running are released (their namespaces and links removed), and the ruleset and DNS
    /// servers are restored. Containers still running keep their links and addresses.
    public func recover(runningContainers: Set<String>) throws {
        try lock.withLock {
            try ensureBuiltins()
            for network in try database.read({ db in try NetworkRecord.fetchAll(db) }) where network.isBridged {
                do { try setUpDevices(network) } catch {
                    logger.error("network \(network.name): cannot set up its bridge: \(error)")
                }
            }
            let stale = try database.read { db in
                Set(try String.fetchAll(db, sql: "SELECT DISTINCT container_id FROM network_endpoints"))
                    .union(try String.fetchAll(db, sql: "SELECT DISTINCT container_id FROM published_ports"))
            }.subtracting(runningContainers)
            for containerID in stale { releaseLocked(containerID) }
            // Namespaces pinned for containers that no longer run.
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: namespaceDirectory)) ?? []
            where !runningContainers.contains(entry) {
                try? NetworkNamespace.remove(at: "\(namespaceDirectory)/\(entry)")
            }
            try refreshFirewall()
            refreshDNS()
        }
    }

    /// The rows of the built-in networks: `bridge` (with a subnet chosen once from the default
    /// pools, clear of the host's routes), `host` and `none`.
    func ensureBuiltins() throws {
        let existing = Set(try database.read { db in try String.fetchAll(db, sql: "SELECT name FROM networks") })
        if !existing.contains("bridge") {
            let taken = try takenSubnets(excluding: nil)
            guard let subnet = AddressAllocator.freeSubnet(avoiding: taken) else {
                throw AtollError(.resourceExhausted, "no free subnet for the default bridge network")
            }
            let gateway = AddressAllocator.defaultGateway(of: subnet)
            let record = NetworkRecord(
                id: Identifier.random(), name: "bridge", driver: "bridge",
                subnets: [SubnetConfig(subnet: subnet.description, gateway: gateway.description)],
                bridge: defaultBridge, builtin: true)
            try database.write { db in try record.insert(db) }
        } else {
            try database.write { db in
                try db.execute(
                    sql: "UPDATE networks SET bridge = ? WHERE name = 'bridge' AND builtin", arguments: [defaultBridge])
            }
        }
        for (name, driver) in [("host", "host"), ("none", "null")] where !existing.contains(name) {
            let record = NetworkRecord(id: Identifier.random(), name: name, driver: driver, builtin: true)
            try database.write { db in try record.insert(db) }
        }
    }

    /// Subnets a new network must not overlap: other networks' and the host's routes (other than
    /// those of Atoll's own bridges).
    func takenSubnets(excluding networkID: String?) throws -> [IPNetwork] {
        let networks = try database.read { db in try NetworkRecord.fetchAll(db) }
        let ours = Set(networks.map(\.bridge).filter { !$0.isEmpty })
        let indexes = Set(try netlink.links().filter { ours.contains($0.name) }.map(\.index))
        var taken = networks.filter { $0.id != networkID }.flatMap { $0.subnets.compactMap(\.network) }
        for route in try netlink.routes(family: .ipv4) + netlink.routes(family: .ipv6) {
            guard let destination = route.destination, destination.prefixLength > 0 else { continue }
            if let index = route.index, indexes.contains(index) { continue }
            // Link-local and multicast routes every host has are not in anyone's way.
            if !destination.isIPv4, destination.address.bytes.first.map({ $0 == 0xfe || $0 == 0xff }) == true {
                continue
            }
            taken.append(destination)
        }
        return taken
    }
}

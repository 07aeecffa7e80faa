import AtollCore
import Foundation
import GRDB

/// One subnet of a network: the addresses containers get, the gateway on the host's side, and
/// optionally the narrower range that allocations come from (`--ip-range`).
public struct SubnetConfig: Codable, Sendable, Equatable {
    public var subnet: String
    public var gateway: String
    public var ipRange: String

    public init(subnet: String, gateway: String = "", ipRange: String = "") {
        self.subnet = subnet
        self.gateway = gateway
        self.ipRange = ipRange
    }

    public var network: IPNetwork? { IPNetwork(subnet) }
    public var gatewayAddress: IPAddress? { IPAddress(gateway) }
    /// Where allocations come from: the ip range, else the whole subnet.
    public var pool: IPNetwork? { ipRange.isEmpty ? network : IPNetwork(ipRange) }
}

/// One row of the `networks` table.
public struct NetworkRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "networks"

    public var id: String
    public var name: String
    /// "bridge", "overlay", "host" or "null" (the `none` network).
    public var driver: String
    /// Nanoseconds since the epoch.
    public var created: Int64
    public var subnets: [SubnetConfig]
    /// No route out, no published ports: containers reach only each other.
    public var isInternal: Bool
    public var labels: [String: String]
    /// Driver options as given (`mtu`, `vni`, `peers`, …).
    public var options: [String: String]
    /// The bridge device on this host ("" for host and none).
    public var bridge: String
    /// The three networks every engine has (bridge, host, none): they cannot be removed.
    public var builtin: Bool

    enum CodingKeys: String, CodingKey {
        case id, name, driver, created, subnets, isInternal = "internal", labels, options, bridge, builtin
    }

    public init(
        id: String, name: String, driver: String, subnets: [SubnetConfig] = [], isInternal: Bool = false,
        labels: [String: String] = [:], options: [String: String] = [:], bridge: String = "", builtin: Bool = false
    ) {
        self.id = id
        self.name = name
        self.driver = driver
        self.created = Int64(Date().timeIntervalSince1970 * 1e9)
        self.subnets = subnets
        self.isInternal = isInternal
        self.labels = labels
        self.options = options
        self.bridge = bridge
        self.builtin = builtin
    }

    /// Whether containers on it get a namespace of their own joined to a bridge.
    public var isBridged: Bool { driver == "bridge" || driver == "overlay" }

    /// The MTU its links use (`--opt mtu=`; overlays default to the underlay's minus 50).
    public var mtu: Int? {
        options["mtu"].flatMap { Int($0) } ?? options["com.docker.network.driver.mtu"].flatMap { Int($0) }
    }

    /// The embedded DNS answers on user-defined bridge networks, as in Docker (not on the default one).
    public var hasEmbeddedDNS: Bool { driver == "bridge" && !builtin }
}

/// A container's place on one network: its addresses, MAC, host-side link and names.
public struct EndpointRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "network_endpoints"

    public var containerID: String
    public var networkID: String
    public var ipv4: String
    public var ipv6: String
    public var mac: String
    /// The host end of the veth pair.
    public var hostInterface: String
    /// The name inside the container (eth0, eth1, …).
    public var interfaceName: String
    public var aliases: [String]

    enum CodingKeys: String, CodingKey {
        case containerID = "container_id"
        case networkID = "network_id"
        case ipv4, ipv6, mac
        case hostInterface = "host_interface"
        case interfaceName = "interface_name"
        case aliases
    }

    public init(
        containerID: String, networkID: String, ipv4: String = "", ipv6: String = "", mac: String = "",
        hostInterface: String = "", interfaceName: String = "", aliases: [String] = []
    ) {
        self.containerID = containerID
        self.networkID = networkID
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.mac = mac
        self.hostInterface = hostInterface
        self.interfaceName = interfaceName
        self.aliases = aliases
    }
}

/// A published port while its container runs: host address and port to the container's.
public struct PortRecord: Codable, Sendable, Equatable, Hashable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "published_ports"

    public var containerID: String
    /// "tcp" or "udp".
    public var proto: String
    /// "" for every address of the host.
    public var hostIP: String
    public var hostPort: Int
    public var containerIP: String
    public var containerPort: Int

    enum CodingKeys: String, CodingKey {
        case containerID = "container_id"
        case proto
        case hostIP = "host_ip"
        case hostPort = "host_port"
        case containerIP = "container_ip"
        case containerPort = "container_port"
    }

    public init(
        containerID: String, proto: String, hostIP: String, hostPort: Int, containerIP: String, containerPort: Int
    ) {
        self.containerID = containerID
        self.proto = proto
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerIP = containerIP
        self.containerPort = containerPort
    }
}

enum NetworkMigrations {
    /// Registered after the containers table exists (endpoints and ports reference it).
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("networks-v1") { db in
            try db.create(table: "networks") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("driver", .text).notNull()
                t.column("created", .integer).notNull()
                t.column("subnets", .jsonText).notNull()
                t.column("internal", .boolean).notNull()
                t.column("labels", .jsonText).notNull()
                t.column("options", .jsonText).notNull()
                t.column("bridge", .text).notNull()
                t.column("builtin", .boolean).notNull()
            }
            // An endpoint holds its network (restrict: a network in use cannot go) and goes with its
            // container. The unique indexes make a double allocation impossible whatever the code does.
            try db.create(table: "network_endpoints") { t in
                t.column("container_id", .text).notNull().references("containers", onDelete: .cascade)
                t.column("network_id", .text).notNull().references("networks", onDelete: .restrict)
                t.column("ipv4", .text).notNull()
                t.column("ipv6", .text).notNull()
                t.column("mac", .text).notNull()
                t.column("host_interface", .text).notNull()
                t.column("interface_name", .text).notNull()
                t.column("aliases", .jsonText).notNull()
                t.primaryKey(["container_id", "network_id"])
            }
            try db.execute(
                sql: """
                    CREATE UNIQUE INDEX endpoints_ipv4 ON network_endpoints(network_id, ipv4) WHERE ipv4 != '';
                    CREATE UNIQUE INDEX endpoints_ipv6 ON network_endpoints(network_id, ipv6) WHERE ipv6 != '';
                    CREATE INDEX endpoints_by_network ON network_endpoints(network_id);
                    """)
            try db.create(table: "published_ports") { t in
                t.column("container_id", .text).notNull().references("containers", onDelete: .cascade)
                t.column("proto", .text).notNull()
                t.column("host_ip", .text).notNull()
                t.column("host_port", .integer).notNull()
                t.column("container_ip", .text).notNull()
                t.column("container_port", .integer).notNull()
                t.primaryKey(["proto", "host_ip", "host_port"])
            }
        }
    }
}

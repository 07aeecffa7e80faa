import Foundation

/// What a node does in the cluster: runs tasks only, or also takes part in managing it.
public enum NodeRole: String, Codable, Sendable, CaseIterable {
    case worker, manager
}

/// Whether the scheduler may place work on a node (Docker's `docker node update --availability`).
public enum NodeAvailability: String, Codable, Sendable, CaseIterable {
    /// New tasks may be placed on the node.
    case active
    /// No new tasks; running ones stay.
    case pause
    /// No new tasks, and running ones are moved elsewhere.
    case drain
}

/// What the manager last learned about a node's health.
public enum NodeState: String, Codable, Sendable, CaseIterable {
    /// Registered, but not heard from yet.
    case unknown
    /// Heartbeating and able to take work.
    case ready
    /// Missed its heartbeats, or reported itself down.
    case down
    /// Its session ended (it left, or the connection dropped) before it was declared down.
    case disconnected
}

/// A cluster node as the manager records it.
public struct Node: Codable, Sendable, Equatable, Identifiable {
    /// The node ID: 25 characters from [a-z0-9]; see `NodeID.generate()`.
    public var id: String
    /// Set by the store: 1 at creation, bumped by every write.
    public var version: Int64
    /// Set by the store when the node is created.
    public var createdAt: Date
    /// Set by the store on every write.
    public var updatedAt: Date
    public var role: NodeRole
    public var availability: NodeAvailability
    public var labels: [String: String]
    public var hostname: String
    /// The address the node was seen at.
    public var address: String
    public var state: NodeState
    /// Why the node is in its state ("heartbeat failure", …); empty when there is nothing to say.
    public var stateMessage: String
    public var engineVersion: String
    public var os: String
    public var architecture: String
    public var cpus: Int
    public var memoryBytes: Int64
    /// The serial number of the node's current TLS certificate (hex), empty before it has one.
    public var certificateSerial: String
    public var certificateExpiry: Date?
    /// The fingerprint of the CA that signed the node's certificate (a CA rotation is done when
    /// every node that is up has one from the new CA).
    public var certificateIssuer: String = ""
    /// A manager's cluster port (IP:PORT), where the other managers and the nodes reach it;
    /// empty for workers.
    public var managerAddress: String = ""

    /// A node description; `version`, `createdAt` and `updatedAt` start at zero and the epoch, and
    /// the store sets them when the node is written.
    public init(
        id: String, role: NodeRole, hostname: String, address: String = "",
        availability: NodeAvailability = .active, labels: [String: String] = [:], state: NodeState = .unknown,
        stateMessage: String = "", engineVersion: String = "", os: String = "", architecture: String = "",
        cpus: Int = 0, memoryBytes: Int64 = 0, certificateSerial: String = "", certificateExpiry: Date? = nil
    ) {
        self.id = id
        self.version = 0
        self.createdAt = Date(timeIntervalSince1970: 0)
        self.updatedAt = Date(timeIntervalSince1970: 0)
        self.role = role
        self.availability = availability
        self.labels = labels
        self.hostname = hostname
        self.address = address
        self.state = state
        self.stateMessage = stateMessage
        self.engineVersion = engineVersion
        self.os = os
        self.architecture = architecture
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.certificateSerial = certificateSerial
        self.certificateExpiry = certificateExpiry
    }

    enum CodingKeys: String, CodingKey {
        case id, version, createdAt, updatedAt, role, availability, labels, hostname, address, state
        case stateMessage, engineVersion, os, architecture, cpus, memoryBytes, certificateSerial, certificateExpiry
        case certificateIssuer, managerAddress
    }
}

extension Node {
    /// Decodes leniently: a field that an older version of Atoll did not write takes its default,
    /// so records stay readable as the type grows.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id),
            role: try c.decodeIfPresent(NodeRole.self, forKey: .role) ?? .worker,
            hostname: try c.decodeIfPresent(String.self, forKey: .hostname) ?? "")
        version = try c.decodeIfPresent(Int64.self, forKey: .version) ?? 0
        createdAt = try c.decodeIfPresent(Date.self, forKey: .createdAt) ?? createdAt
        updatedAt = try c.decodeIfPresent(Date.self, forKey: .updatedAt) ?? updatedAt
        availability = try c.decodeIfPresent(NodeAvailability.self, forKey: .availability) ?? .active
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        address = try c.decodeIfPresent(String.self, forKey: .address) ?? ""
        state = try c.decodeIfPresent(NodeState.self, forKey: .state) ?? .unknown
        stateMessage = try c.decodeIfPresent(String.self, forKey: .stateMessage) ?? ""
        engineVersion = try c.decodeIfPresent(String.self, forKey: .engineVersion) ?? ""
        os = try c.decodeIfPresent(String.self, forKey: .os) ?? ""
        architecture = try c.decodeIfPresent(String.self, forKey: .architecture) ?? ""
        cpus = try c.decodeIfPresent(Int.self, forKey: .cpus) ?? 0
        memoryBytes = try c.decodeIfPresent(Int64.self, forKey: .memoryBytes) ?? 0
        certificateSerial = try c.decodeIfPresent(String.self, forKey: .certificateSerial) ?? ""
        certificateExpiry = try c.decodeIfPresent(Date.self, forKey: .certificateExpiry)
        certificateIssuer = try c.decodeIfPresent(String.self, forKey: .certificateIssuer) ?? ""
        managerAddress = try c.decodeIfPresent(String.self, forKey: .managerAddress) ?? ""
    }
}

/// Node IDs in SwarmKit's shape: 25 characters from [a-z0-9] (about 129 bits of randomness).
public enum NodeID {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    public static let length = 25

    /// A fresh random node ID.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    /// Whether `id` has the shape `generate()` produces.
    public static func isValid(_ id: String) -> Bool {
        id.utf8.count == length && id.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
    }
}

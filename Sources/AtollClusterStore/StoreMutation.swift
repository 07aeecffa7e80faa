import AtollCore
import AtollRaft
import Foundation
import GRDB

/// One change a write makes, as whole objects with the version the writer read: every replica
/// applies it, or refuses it, the same way. A replicated store's log holds these.
public enum StoreMutation: Codable, Sendable, Equatable {
    case createCluster(ClusterInfo)
    case updateCluster(ClusterInfo, expectedVersion: Int64)
    case createNode(Node)
    case updateNode(Node, expectedVersion: Int64)
    case removeNode(id: String, expectedVersion: Int64)
    /// The whole state, replacing what is there: the first entry of a log. The log is never
    /// compacted, so a manager that joins replays it from this entry on.
    case reset(cluster: ClusterInfo?, nodes: [Node])

    static func encode(_ mutations: [StoreMutation]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(mutations))
    }

    static func decode(_ bytes: [UInt8]) throws -> [StoreMutation] {
        try JSONDecoder().decode([StoreMutation].self, from: Data(bytes))
    }
}

/// Where a store's writes go once it belongs to a replicated cluster: through consensus, coming
/// back as the state machine's outcome once the change is applied here.
public protocol StoreReplicator: Sendable {
    /// Blocks until `command` is committed and applied to this store (or throws: no leader, no
    /// quorum). Never called on a Swift concurrency thread's behalf without `BlockingWork`.
    func replicate(_ command: [UInt8]) throws -> RaftApplyOutcome
}

/// Where a store's writes go once its manager stopped taking part in the consensus: nowhere.
public struct ClosedReplicator: StoreReplicator {
    public init() {}

    public func replicate(_ command: [UInt8]) throws -> RaftApplyOutcome {
        throw AtollError(.unavailable, "this manager no longer takes part in the cluster")
    }
}

/// A write refused by the state machine, carried through the log as text: the code survives.
enum StoreRefusal {
    static let codes: [AtollError.Code] = [.failedPrecondition, .alreadyExists, .notFound, .invalidArgument]

    static func text(_ error: AtollError) -> String { "\(error.code)\u{1F}\(error.message)" }

    static func error(_ text: String) -> AtollError {
        let parts = text.split(separator: "\u{1F}", maxSplits: 1).map(String.init)
        if parts.count == 2, let code = codes.first(where: { "\($0)" == parts[0] }) {
            return AtollError(code, parts[1])
        }
        return AtollError(.failedPrecondition, text)
    }

    static func isRefusal(_ error: any Error) -> AtollError? {
        guard let error = error as? AtollError, codes.contains(error.code) else { return nil }
        return error
    }
}

extension ClusterStore {
    /// Makes every later write go through `replicator` (nil: straight into the file).
    public func replicate(through replicator: (any StoreReplicator)?) {
        self.replicator.withLock { $0 = replicator }
    }

    /// Whether writes go through consensus.
    public var isReplicated: Bool { replicator.withLock { $0 != nil } }

    /// Serializes writes: each computes its change from what the store holds, then commits it
    /// (and, replicated, waits until it is applied) before the next one reads.
    func serializedWrite<T>(_ body: () throws -> T) rethrows -> T {
        writeLock.lock()
        defer { writeLock.unlock() }
        return try body()
    }

    /// Commits one change: straight into the file, or through the replicator.
    func commit(_ mutation: StoreMutation, action: @autoclosure () -> String) throws {
        if let replicator = replicator.withLock({ $0 }) {
            if case .refused(let text) = try replicator.replicate(try StoreMutation.encode([mutation])) {
                throw StoreRefusal.error(text)
            }
            return
        }
        try run(action()) { try pool.write { db in try publishAfterCommit(db, try apply(mutation, db)) } }
    }

    /// Applies one change inside the caller's transaction, checking what it expects; returns
    /// the events for the caller to publish once its transaction commits.
    func apply(_ mutation: StoreMutation, _ db: Database) throws -> [StoreEvent] {
        switch mutation {
        case .createCluster(let info):
            if let existing = try String.fetchOne(db, sql: "SELECT id FROM cluster") {
                throw AtollError.alreadyExists("cluster \(existing) already exists")
            }
            try db.execute(
                sql: "INSERT INTO cluster (singleton, id, version, data) VALUES (1, ?, ?, ?)",
                arguments: [info.id, info.version, try encode(info)])
            return [StoreEvent(kind: .cluster, action: .created, id: info.id, version: info.version)]
        case .updateCluster(let info, let expected):
            guard let stored = try fetchCluster(db) else { throw AtollError.notFound("cluster not found") }
            try Self.check(expected, stored: stored.version, object: "cluster \(stored.id)")
            try db.execute(
                sql: "UPDATE cluster SET version = ?, data = ? WHERE singleton = 1",
                arguments: [info.version, try encode(info)])
            return [StoreEvent(kind: .cluster, action: .updated, id: info.id, version: info.version)]
        case .createNode(let node):
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM nodes WHERE id = ?", arguments: [node.id]) != nil {
                throw AtollError.alreadyExists("node \(node.id) already exists")
            }
            try insert(node, db)
            return [StoreEvent(kind: .node, action: .created, id: node.id, version: node.version)]
        case .updateNode(let node, let expected):
            guard
                let version = try Int64.fetchOne(
                    db, sql: "SELECT version FROM nodes WHERE id = ?", arguments: [node.id])
            else { throw AtollError.notFound("node \(node.id) not found") }
            try Self.check(expected, stored: version, object: "node \(node.id)")
            try db.execute(
                sql: """
                    UPDATE nodes SET version = ?, hostname = ?, role = ?, state = ?, availability = ?, data = ?
                    WHERE id = ?
                    """,
                arguments: [
                    node.version, node.hostname, node.role.rawValue, node.state.rawValue, node.availability.rawValue,
                    try encode(node), node.id,
                ])
            return [StoreEvent(kind: .node, action: .updated, id: node.id, version: node.version)]
        case .removeNode(let id, let expected):
            guard let version = try Int64.fetchOne(db, sql: "SELECT version FROM nodes WHERE id = ?", arguments: [id])
            else { throw AtollError.notFound("node \(id) not found") }
            try Self.check(expected, stored: version, object: "node \(id)")
            try db.execute(sql: "DELETE FROM nodes WHERE id = ?", arguments: [id])
            return [StoreEvent(kind: .node, action: .removed, id: id, version: version)]
        case .reset(let cluster, let nodes):
            try db.execute(sql: "DELETE FROM cluster; DELETE FROM nodes")
            var events: [StoreEvent] = []
            if let cluster {
                try db.execute(
                    sql: "INSERT INTO cluster (singleton, id, version, data) VALUES (1, ?, ?, ?)",
                    arguments: [cluster.id, cluster.version, try encode(cluster)])
                events.append(StoreEvent(kind: .cluster, action: .created, id: cluster.id, version: cluster.version))
            }
            for node in nodes {
                try insert(node, db)
                events.append(StoreEvent(kind: .node, action: .created, id: node.id, version: node.version))
            }
            return events
        }
    }

    private func insert(_ node: Node, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO nodes (id, version, hostname, role, state, availability, data)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                node.id, node.version, node.hostname, node.role.rawValue, node.state.rawValue,
                node.availability.rawValue, try encode(node),
            ])
    }
}

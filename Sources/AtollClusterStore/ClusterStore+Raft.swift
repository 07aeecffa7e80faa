import AtollCore
import AtollRaft
import Foundation
import GRDB

/// The store as a Raft server's storage: the log and the hard state live in the same SQLite file
/// as the state they build, so an entry and the record that it was applied commit together.
extension ClusterStore: RaftStorage {
    public func load() throws -> (hardState: RaftHardState, entries: [RaftEntry], appliedIndex: UInt64) {
        try run("read the replicated log") {
            try pool.read { db in
                let state = try Row.fetchOne(db, sql: "SELECT term, voted_for, applied_index FROM raft_state")
                var entries: [RaftEntry] = []
                let rows = try Row.fetchCursor(db, sql: "SELECT idx, term, kind, data FROM raft_log ORDER BY idx")
                while let row = try rows.next() {
                    let index: Int64 = row["idx"]
                    let kindName: String = row["kind"]
                    guard let kind = RaftEntry.Kind(rawValue: kindName) else {
                        throw AtollError.dataLoss(
                            "entry \(index) of the replicated log in \(path) has kind \(kindName)")
                    }
                    let data: Data = row["data"]
                    entries.append(
                        RaftEntry(
                            index: UInt64(index), term: UInt64(row["term"] as Int64), kind: kind, data: Array(data)))
                }
                let term: Int64 = state?["term"] ?? 0
                let applied: Int64 = state?["applied_index"] ?? 0
                return (RaftHardState(term: UInt64(term), votedFor: state?["voted_for"]), entries, UInt64(applied))
            }
        }
    }

    public func save(_ hardState: RaftHardState) throws {
        try run("save the replicated log's term") {
            try pool.write { db in
                try db.execute(
                    sql: "UPDATE raft_state SET term = ?, voted_for = ?",
                    arguments: [Int64(hardState.term), hardState.votedFor])
            }
        }
    }

    public func append(_ entries: [RaftEntry]) throws {
        guard let first = entries.first else { return }
        try run("append to the replicated log") {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM raft_log WHERE idx >= ?", arguments: [Int64(first.index)])
                for entry in entries {
                    try db.execute(
                        sql: "INSERT INTO raft_log (idx, term, kind, data) VALUES (?, ?, ?, ?)",
                        arguments: [Int64(entry.index), Int64(entry.term), entry.kind.rawValue, Data(entry.data)])
                }
            }
        }
    }

    /// Applies a committed entry: a command's changes (or, refused, none of them) and the applied
    /// index, in one transaction.
    public func apply(_ entry: RaftEntry) throws -> RaftApplyOutcome {
        let mutations = entry.kind == .command ? try StoreMutation.decode(entry.data) : []
        return try run("apply entry \(entry.index) of the replicated log") {
            try pool.write { db in
                var outcome = RaftApplyOutcome.applied
                var events: [StoreEvent] = []
                do {
                    try db.inSavepoint {
                        for mutation in mutations { events += try apply(mutation, db) }
                        return .commit
                    }
                    try publishAfterCommit(db, events)
                } catch {
                    guard let refusal = StoreRefusal.isRefusal(error) else { throw error }
                    outcome = .refused(StoreRefusal.text(refusal))
                }
                try db.execute(sql: "UPDATE raft_state SET applied_index = ?", arguments: [Int64(entry.index)])
                return outcome
            }
        }
    }

    /// Starts the replicated log of a store that has state but no log (a new cluster, or one made
    /// before managers were replicated): its first entry holds the whole state and the second
    /// makes `member` the only manager; both count as applied. Nothing when the log has entries.
    public func bootstrapLog(member: RaftMember) throws {
        try serializedWrite {
            try run("start the replicated log") {
                try pool.write { db in
                    guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM raft_log") == 0 else { return }
                    guard let cluster = try fetchCluster(db) else {
                        throw AtollError.failedPrecondition("cluster store \(path) holds no cluster to replicate")
                    }
                    let nodes = try fetchNodes(db, where: "1", arguments: [])
                    let entries = [
                        RaftEntry(
                            index: 1, term: 1, kind: .command,
                            data: try StoreMutation.encode([.reset(cluster: cluster, nodes: nodes)])),
                        try RaftEntry.configuration(index: 2, term: 1, members: [member]),
                    ]
                    for entry in entries {
                        try db.execute(
                            sql: "INSERT INTO raft_log (idx, term, kind, data) VALUES (?, ?, ?, ?)",
                            arguments: [Int64(entry.index), Int64(entry.term), entry.kind.rawValue, Data(entry.data)])
                    }
                    try db.execute(sql: "UPDATE raft_state SET term = MAX(term, 1), applied_index = 2")
                }
            }
        }
    }
}

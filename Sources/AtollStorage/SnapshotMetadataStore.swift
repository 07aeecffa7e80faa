import AtollCore
import Foundation
import GRDB
import Glibc
import Synchronization

/// One snapshot's row: the numeric id names its data directory `<root>/snapshots/<id>`.
struct SnapshotRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "snapshot"
    var id: Int64
    var name: String
    var parentID: Int64?
    var kind: SnapshotKind
    var labels: [String: String]
    var created: Int64
    var updated: Int64
}

/// Metadata of a snapshotter's snapshots, shared by both drivers: a SQLite database at
/// `<root>/metadata.db` (WAL, synchronous=FULL) and the data directories `<root>/snapshots/<id>`.
///
/// Crash safety comes from ordering: a new snapshot's directory is made and filled before its
/// row is inserted, and a removed snapshot's row is deleted before its directory; so a crash
/// leaves at worst a directory without a row, which `cleanup()` removes. Ids come from a counter
/// that is committed before the directory is made, so they are never reused.
final class SnapshotMetadataStore: Sendable {
    let root: String
    /// `<root>/snapshots`.
    let snapshotsDirectory: String
    private let database: DatabasePool
    /// Ids whose directory is being made and filled (no row yet): cleanup leaves them alone.
    private let inProgress = Mutex<Set<Int64>>([])

    init(root: String) throws {
        self.root = root
        snapshotsDirectory = root + "/snapshots"
        do {
            try Syscall.mkdirAll(snapshotsDirectory, mode: 0o700)
        } catch {
            throw AtollError(.internalError, "cannot create snapshot directory \(snapshotsDirectory)", cause: error)
        }
        let path = root + "/metadata.db"
        do {
            var configuration = Configuration()
            configuration.foreignKeysEnabled = true
            configuration.busyMode = .timeout(10)
            database = try DatabasePool(path: path, configuration: configuration)
            // GRDB sets the writer to synchronous=NORMAL when it sets up WAL: ask for FULL now.
            let synchronous = try database.writeWithoutTransaction { db -> Int? in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                return try Int.fetchOne(db, sql: "PRAGMA synchronous")
            }
            guard synchronous == 2 else {
                throw AtollError(.internalError, "snapshot metadata \(path) did not accept synchronous=FULL")
            }
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.create(table: "snapshot") { t in
                    t.column("id", .integer).primaryKey()
                    t.column("name", .text).notNull().unique()
                    t.column("parentID", .integer).references("snapshot", onDelete: .restrict)
                    t.column("kind", .text).notNull()
                    t.column("labels", .text).notNull()
                    t.column("created", .integer).notNull()
                    t.column("updated", .integer).notNull()
                }
                try db.create(index: "snapshot_parent", on: "snapshot", columns: ["parentID"])
                try db.create(table: "counter") { t in
                    t.column("name", .text).primaryKey()
                    t.column("value", .integer).notNull()
                }
            }
            try migrator.migrate(database)
        } catch let error as AtollError {
            throw error
        } catch {
            throw AtollError(.internalError, "cannot open snapshot metadata \(path)", cause: error)
        }
    }

    /// The data directory of the snapshot with this id.
    func directory(of id: Int64) -> String { "\(snapshotsDirectory)/\(id)" }

    /// The row of `name`; `notFound` if there is none.
    func record(_ name: String) throws -> SnapshotRecord {
        try read("snapshot \"\(name)\"") { db in try Self.record(db, name) }
    }

    /// The row of `name` with its parents, nearest first.
    func recordAndAncestors(_ name: String) throws -> (SnapshotRecord, [SnapshotRecord]) {
        try read("snapshot \"\(name)\"") { db in
            let record = try Self.record(db, name)
            return (record, try Self.ancestors(db, of: record))
        }
    }

    /// What the snapshotter reports about `name`.
    func info(_ name: String) throws -> SnapshotInfo {
        try read("snapshot \"\(name)\"") { db in
            let record = try Self.record(db, name)
            let parent = try record.parentID.flatMap { try SnapshotRecord.fetchOne(db, key: $0) }
            return Self.info(record, parentName: parent?.name)
        }
    }

    /// Every snapshot, parents before children (ids only grow, and a parent exists before its child).
    func list() throws -> [SnapshotInfo] {
        try read("snapshots") { db in
            let records = try SnapshotRecord.order(Column("id")).fetchAll(db)
            let names = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0.name) })
            return records.map { Self.info($0, parentName: $0.parentID.flatMap { names[$0] }) }
        }
    }

    /// Creates a snapshot: checks the name and parent, reserves an id, makes the data directory
    /// and lets `populate` fill it (given the directory and the parent chain, nearest first), then
    /// inserts the row. Any failure removes the directory again.
    @discardableResult
    func create(
        _ name: String, parent: String?, kind: SnapshotKind, labels: [String: String],
        populate: (_ directory: String, _ ancestors: [SnapshotRecord]) throws -> Void
    ) throws -> SnapshotRecord {
        guard !name.isEmpty else { throw AtollError.invalidArgument("snapshot key must not be empty") }
        guard !name.utf8.contains(0) else { throw AtollError.invalidArgument("snapshot key must not contain NUL") }
        let ancestors = try read("snapshot \"\(name)\"") { db in try Self.checkCreatable(db, name, parent: parent) }
        let id = try write("snapshot \"\(name)\"") { db -> Int64 in
            try db.execute(
                sql: """
                    INSERT INTO counter(name, value) VALUES ('snapshot', 1)
                    ON CONFLICT(name) DO UPDATE SET value = value + 1
                    """)
            guard let value = try Int64.fetchOne(db, sql: "SELECT value FROM counter WHERE name = 'snapshot'") else {
                throw AtollError.internalError("snapshot id counter is missing")
            }
            return value
        }
        inProgress.withLock { _ = $0.insert(id) }
        defer { inProgress.withLock { _ = $0.remove(id) } }
        let directory = directory(of: id)
        do {
            try Self.makeFreshDirectory(directory)
            try populate(directory, ancestors)
            try FileSystem.syncDirectory(directory)
            let now = Int64(Date().timeIntervalSince1970)
            let record = SnapshotRecord(
                id: id, name: name, parentID: ancestors.first?.id, kind: kind, labels: labels, created: now,
                updated: now)
            try write("snapshot \"\(name)\"") { db in
                let current = try Self.checkCreatable(db, name, parent: parent)
                guard current.first?.id == ancestors.first?.id else {
                    throw AtollError.failedPrecondition("parent \"\(parent ?? "")\" of snapshot \"\(name)\" changed")
                }
                try record.insert(db)
            }
            return record
        } catch {
            try? FileSystem.removeTree(directory)
            if error is AtollError { throw error }
            throw AtollError(.internalError, "cannot create snapshot \"\(name)\"", cause: error)
        }
    }

    /// Turns the active snapshot `key` into the committed snapshot `name` (labels given override).
    /// Commits `key` as `name`; with `parent`, a snapshot prepared without a parent gets that
    /// committed parent now (rebase: only for drivers whose data does not depend on the parent).
    func commit(key: String, as name: String, labels: [String: String], rebasingOnto parent: String? = nil) throws {
        guard !name.isEmpty else { throw AtollError.invalidArgument("snapshot name must not be empty") }
        try write("snapshot \"\(key)\"") { db in
            var record = try Self.record(db, key)
            switch record.kind {
            case .active: break
            case .view: throw AtollError.failedPrecondition("snapshot \"\(key)\" is a view and cannot be committed")
            case .committed: throw AtollError.failedPrecondition("snapshot \"\(key)\" is already committed")
            }
            if name != key, try SnapshotRecord.filter(Column("name") == name).fetchCount(db) > 0 {
                throw AtollError.alreadyExists("snapshot \"\(name)\" already exists")
            }
            if let parent {
                guard record.parentID == nil else {
                    throw AtollError.failedPrecondition(
                        "snapshot \"\(key)\" was prepared with a parent and cannot be rebased onto \"\(parent)\"")
                }
                let parentRecord = try Self.record(db, parent)
                guard parentRecord.kind == .committed else {
                    throw AtollError.failedPrecondition(
                        "snapshot \"\(parent)\" is not committed and cannot be a parent")
                }
                record.parentID = parentRecord.id
            }
            record.name = name
            record.kind = .committed
            record.labels.merge(labels) { _, new in new }
            record.updated = Int64(Date().timeIntervalSince1970)
            try record.update(db)
        }
    }

    /// Deletes the row of `name` (refusing while it has children), then its data directory.
    /// Returns the removed row.
    @discardableResult
    func remove(_ name: String, beforeDeletingData: (SnapshotRecord) -> Void = { _ in }) throws -> SnapshotRecord {
        let record = try write("snapshot \"\(name)\"") { db -> SnapshotRecord in
            let record = try Self.record(db, name)
            let children = try SnapshotRecord.filter(Column("parentID") == record.id).fetchAll(db)
            if !children.isEmpty {
                let names = children.prefix(3).map { "\"\($0.name)\"" }.joined(separator: ", ")
                throw AtollError.failedPrecondition(
                    "snapshot \"\(name)\" has \(children.count) child snapshot(s) (\(names)): remove them first")
            }
            _ = try record.delete(db)
            return record
        }
        beforeDeletingData(record)
        // The row is gone: should this fail, the directory is an orphan that cleanup() removes.
        try? FileSystem.removeTree(directory(of: record.id))
        return record
    }

    /// Removes data directories that have no row (and are not being created now). Returns how many.
    func cleanup(beforeRemoving: (String) -> Void = { _ in }) throws -> Int {
        let known = try read("snapshots") { db in Set(try Int64.fetchAll(db, sql: "SELECT id FROM snapshot")) }
        let directory: FileDescriptor
        do {
            directory = try Syscall.open(snapshotsDirectory, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        } catch {
            throw AtollError(.internalError, "cannot list \(snapshotsDirectory)", cause: error)
        }
        var removed = 0
        for (entry, _) in try FileSystem.listDirectory(directory) {
            if let id = Int64(entry), known.contains(id) || inProgress.withLock({ $0.contains(id) }) { continue }
            let path = "\(snapshotsDirectory)/\(entry)"
            beforeRemoving(path)
            do {
                try FileSystem.removeTree(path)
            } catch {
                throw AtollError(.internalError, "cannot remove orphaned snapshot directory \(path)", cause: error)
            }
            removed += 1
        }
        return removed
    }

    // MARK: - Helpers

    private static func makeFreshDirectory(_ path: String) throws {
        do {
            try Syscall.mkdir(path, mode: 0o700)
            return
        } catch  where error.errno == EEXIST {
            // Only an orphan can hold a fresh id (the database was replaced): start over.
        }
        try FileSystem.removeTree(path)
        try Syscall.mkdir(path, mode: 0o700)
    }

    private static func record(_ db: Database, _ name: String) throws -> SnapshotRecord {
        guard let record = try SnapshotRecord.filter(Column("name") == name).fetchOne(db) else {
            throw AtollError.notFound("snapshot \"\(name)\" not found")
        }
        return record
    }

    private static func ancestors(_ db: Database, of record: SnapshotRecord) throws -> [SnapshotRecord] {
        var result: [SnapshotRecord] = []
        var next = record.parentID
        while let id = next {
            guard let parent = try SnapshotRecord.fetchOne(db, key: id) else {
                throw AtollError.dataLoss("parent \(id) of snapshot \"\(record.name)\" is missing from the metadata")
            }
            guard result.count < 10_000 else {
                throw AtollError.dataLoss("snapshot \"\(record.name)\" has a parent cycle in the metadata")
            }
            result.append(parent)
            next = parent.parentID
        }
        return result
    }

    /// Checks that `name` is free and `parent` is a committed snapshot; returns the parent chain.
    private static func checkCreatable(_ db: Database, _ name: String, parent: String?) throws -> [SnapshotRecord] {
        if try SnapshotRecord.filter(Column("name") == name).fetchCount(db) > 0 {
            throw AtollError.alreadyExists("snapshot \"\(name)\" already exists")
        }
        guard let parent else { return [] }
        guard let record = try SnapshotRecord.filter(Column("name") == parent).fetchOne(db) else {
            throw AtollError.notFound("parent snapshot \"\(parent)\" of \"\(name)\" not found")
        }
        guard record.kind == .committed else {
            throw AtollError.failedPrecondition(
                "parent snapshot \"\(parent)\" of \"\(name)\" is \(record.kind.rawValue), not committed")
        }
        return [record] + (try ancestors(db, of: record))
    }

    private static func info(_ record: SnapshotRecord, parentName: String?) -> SnapshotInfo {
        SnapshotInfo(
            name: record.name, parent: parentName, kind: record.kind, labels: record.labels, created: record.created,
            updated: record.updated)
    }

    private func read<T>(_ subject: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try database.read(body)
        } catch let error as AtollError {
            throw error
        } catch {
            throw AtollError(.internalError, "cannot read metadata of \(subject)", cause: error)
        }
    }

    private func write<T>(_ subject: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try database.write(body)
        } catch let error as AtollError {
            throw error
        } catch {
            throw AtollError(.internalError, "cannot write metadata of \(subject)", cause: error)
        }
    }
}

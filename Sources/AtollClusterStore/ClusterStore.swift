import AtollCore
import Foundation
import GRDB
import Logging
import Synchronization

/// The cluster manager's state: one SQLite file (`cluster.db`) holding the cluster row and the
/// nodes, with optimistic concurrency (every write bumps an object's version) and a stream of
/// committed changes for the manager's loops to react to (SwarmKit's `MemoryStore` and watch queue).
///
/// Calls block on SQLite: from async code, run them through `BlockingWork.run`. Writes are
/// serialized; events are published after their transaction commits, in commit order, and never
/// for a transaction that rolled back.
public final class ClusterStore: Sendable {
    /// The database file.
    public let path: String

    let pool: DatabasePool
    let hub = EventHub()
    /// Set once the store belongs to a replicated cluster: writes go through it.
    let replicator = Mutex<(any StoreReplicator)?>(nil)
    let writeLock = NSLock()
    let clock: @Sendable () -> Date
    /// Tests only: runs inside each write transaction after its events are queued, before it commits.
    let beforeCommit: (@Sendable (StoreEvent) throws -> Void)?
    private let logger = Logger(label: "atoll.cluster-store")

    /// Opens the store at `path`, creating the file (mode 0600) and its directory (mode 0700) if
    /// needed, and migrates its schema.
    public convenience init(path: String) throws {
        try self.init(path: path, clock: { Date() })
    }

    /// Opens the store with a clock of the caller's, and optionally a hook that runs inside every
    /// write transaction just before it commits (tests).
    init(
        path: String, clock: @escaping @Sendable () -> Date,
        beforeCommit: (@Sendable (StoreEvent) throws -> Void)? = nil
    ) throws {
        guard !path.isEmpty else { throw AtollError.invalidArgument("the cluster store path is empty") }
        self.path = path
        self.clock = clock
        self.beforeCommit = beforeCommit
        self.pool = try Self.open(path: path)
        logger.debug("opened the cluster store", metadata: ["path": "\(path)"])
    }

    deinit { hub.finish() }

    /// Ends every event stream and closes the database. Later calls fail.
    public func close() throws {
        hub.finish()
        try run("close") { try pool.close() }
    }

    /// Every committed change, in commit order, to each subscriber from the moment it subscribes.
    /// A subscriber that falls more than 1024 events behind loses the oldest; the stream ends when
    /// the store is closed.
    public func events() -> AsyncStream<StoreEvent> { hub.subscribe() }

    // MARK: - The cluster row

    /// The cluster, or nil before one has been created.
    public func cluster() throws -> ClusterInfo? {
        try run("read the cluster") { try pool.read { db in try fetchCluster(db) } }
    }

    /// Stores the cluster at version 1; `alreadyExists` if there is one.
    public func createCluster(_ info: ClusterInfo) throws -> ClusterInfo {
        guard !info.id.isEmpty else { throw AtollError.invalidArgument("the cluster ID is empty") }
        return try serializedWrite {
            var created = info
            created.version = 1
            created.createdAt = clock()
            created.updatedAt = created.createdAt
            try commit(.createCluster(created), action: "create cluster \(created.id)")
            return created
        }
    }

    /// Applies `change` to the cluster and stores it with the next version. With `expectedVersion`
    /// set and the stored version different, `failedPrecondition`. The store keeps `id`, `version`
    /// and `createdAt` whatever `change` does; an error thrown by `change` leaves the cluster as it was.
    public func updateCluster(
        expectedVersion: Int64? = nil, _ change: (inout ClusterInfo) throws -> Void
    ) throws -> ClusterInfo {
        try serializedWrite {
            guard let stored = try cluster() else { throw AtollError.notFound("cluster not found") }
            try Self.check(expectedVersion, stored: stored.version, object: "cluster \(stored.id)")
            var updated = stored
            try change(&updated)
            updated.id = stored.id
            updated.version = stored.version + 1
            updated.createdAt = stored.createdAt
            updated.updatedAt = clock()
            try commit(.updateCluster(updated, expectedVersion: stored.version), action: "update the cluster")
            return updated
        }
    }

    func fetchCluster(_ db: Database) throws -> ClusterInfo? {
        guard let row = try Row.fetchOne(db, sql: "SELECT id, version, data FROM cluster WHERE singleton = 1")
        else { return nil }
        let id: String = row["id"]
        var info = try decode(ClusterInfo.self, from: row["data"], object: "cluster \(id)")
        info.version = row["version"]
        return info
    }

    // MARK: - Shared machinery

    /// Publishes `events` once the current transaction commits (on the writer's queue, so in
    /// commit order); nothing if it rolls back.
    func publishAfterCommit(_ db: Database, _ events: [StoreEvent]) throws {
        db.afterNextTransaction(onCommit: { [hub] _ in hub.publish(events) })
        if let beforeCommit { for event in events { try beforeCommit(event) } }
    }

    /// Throws `failedPrecondition` when the caller expected another version than the stored one.
    static func check(_ expected: Int64?, stored: Int64, object: String) throws {
        if let expected, expected != stored {
            throw AtollError.failedPrecondition(
                "\(object) was changed (version \(stored), expected \(expected)); retry")
        }
    }

    func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    func decode<T: Decodable>(_ type: T.Type, from json: String, object: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(json.utf8))
        } catch {
            throw AtollError(.dataLoss, "\(object) in cluster store \(path) cannot be decoded", cause: error)
        }
    }

    /// Runs a database access, turning SQLite's errors into `AtollError`s that name the store.
    /// Other errors (the store's own, a caller's closure's) pass through.
    func run<T>(_ action: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw Self.storeError(error, path: path, action: action())
        }
    }

    static func storeError(_ error: DatabaseError, path: String, action: String) -> AtollError {
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return AtollError(
                .dataLoss, "cannot \(action): cluster store \(path) is corrupt or not a database", cause: error)
        case .SQLITE_FULL:
            return AtollError(
                .resourceExhausted, "cannot \(action): the disk of cluster store \(path) is full", cause: error)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return AtollError(.unavailable, "cannot \(action): cluster store \(path) is locked", cause: error)
        case .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
            return AtollError(
                .permissionDenied, "cannot \(action): cluster store \(path) is not writable", cause: error)
        case .SQLITE_CANTOPEN:
            return AtollError(
                .failedPrecondition, "cannot \(action): cluster store \(path) cannot be opened", cause: error)
        case .SQLITE_MISUSE:
            return AtollError(.failedPrecondition, "cannot \(action): cluster store \(path) is closed", cause: error)
        default:
            return AtollError(.internalError, "cannot \(action): cluster store \(path) failed", cause: error)
        }
    }
}

// MARK: - Opening

extension ClusterStore {
    /// Creates the directory and the file with private modes, opens the pool in WAL mode with
    /// synchronous=FULL and foreign keys on, and migrates.
    static func open(path: String) throws -> DatabasePool {
        try createFile(path)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "atoll.cluster"
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            // GRDB's WAL setup leaves the writer at synchronous=NORMAL; the cluster's state wants FULL.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                let synchronous = try Int.fetchOne(db, sql: "PRAGMA synchronous")
                guard synchronous == 2 else {
                    let value = synchronous.map(String.init) ?? "unset"
                    throw AtollError.internalError("cluster store \(path): synchronous is \(value), want 2 (full)")
                }
            }
            var migrator = DatabaseMigrator()
            ClusterMigrations.register(&migrator)
            if try pool.read({ db in try migrator.hasBeenSuperseded(db) }) {
                throw AtollError.failedPrecondition(
                    "cluster store \(path) was written by a newer version of atoll")
            }
            try migrator.migrate(pool)
            return pool
        } catch let error as DatabaseError {
            throw storeError(error, path: path, action: "open the cluster state")
        }
    }

    /// Makes the parent directory (0700) and an empty database file (0600) when they are missing:
    /// the store holds the cluster's CA key. SQLite gives the `-wal` and `-shm` files the same mode.
    private static func createFile(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            if !directory.isEmpty && !FileSystem.exists(directory) {
                try Syscall.mkdirAll(directory, mode: 0o700)
            }
            if !FileSystem.exists(path) {
                do {
                    _ = try Syscall.open(path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
                } catch  where error.errno == EEXIST {}
            }
        } catch {
            let code: AtollError.Code =
                error.errno == EACCES || error.errno == EPERM || error.errno == EROFS
                ? .permissionDenied : .internalError
            throw AtollError(code, "cannot create cluster store \(path)", cause: error)
        }
    }
}

// MARK: - Inspection

extension ClusterStore {
    /// The value of a PRAGMA on the writer connection (`journal_mode`, `synchronous`, …); for
    /// tests and diagnostics. `name` must be a plain identifier.
    func pragma(_ name: String) throws -> String? {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0 == "_" }) else {
            throw AtollError.invalidArgument("invalid pragma name \"\(name)\"")
        }
        return try run("read pragma \(name)") {
            try pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
        }
    }

    /// The schema migrations applied to the file, in order.
    func appliedMigrations() throws -> [String] {
        try run("read the migrations") {
            try pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
            }
        }
    }
}

import AtollCore
import AtollStorage
import Foundation
import GRDB
import Glibc
import Logging
import Synchronization

/// The host's volumes (local driver): a directory `<root>/volumes/NAME/_data` each, or, for a
/// volume with options, a file system (tmpfs, a bind of a host directory, a device) mounted on
/// that directory while a container uses it. Rows in `volume_users` tie volumes to the
/// containers that use them: such a volume cannot be removed. Methods block: call them off the
/// async pool.
public final class VolumeService: Sendable {
    let database: DatabasePool
    /// `<root>/volumes`.
    public let directory: String
    let locks = KeyedLocks()
    /// Running containers (and exports) using each volume, by ID.
    let activeUsers = Mutex<[String: Set<String>]>([:])
    let logger = Logger(label: "atoll.volumes")

    public static let driver = "local"

    public init(database: DatabasePool, root: String) throws {
        self.database = database
        directory = "\(root)/volumes"
        try Syscall.mkdirAll(directory, mode: 0o701)
        try recoverDirectories()
    }

    public static func registerMigrations(_ migrator: inout DatabaseMigrator) { VolumeMigrations.register(&migrator) }

    /// `<root>/volumes/NAME/_data`: what containers see.
    public func dataPath(_ name: String) -> String { "\(directory)/\(name)/_data" }

    // MARK: - Create and find

    /// Creates a volume; one that exists already is returned as it is, unless different options
    /// were asked for (as Docker). A nil name makes an anonymous volume with a random one.
    @discardableResult
    public func create(
        name requested: String?, driver: String = driver, labels: [String: String] = [:],
        options: [String: String] = [:], anonymous: Bool = false
    ) throws -> (record: VolumeRecord, created: Bool) {
        guard driver.isEmpty || driver == Self.driver else {
            throw AtollError.invalidArgument(
                "unknown volume driver \"\(driver)\": this engine has only the \(Self.driver) driver")
        }
        let name = requested ?? Identifier.random()
        try VolumeName.validate(name)
        _ = try LocalVolumeOptions.parse(options)
        return try locks.withLock(name) { () throws -> (record: VolumeRecord, created: Bool) in
            if let existing = try database.read({ db in try VolumeRecord.fetchOne(db, key: name) }) {
                if !options.isEmpty && existing.options != options {
                    throw AtollError.alreadyExists(
                        "volume \"\(name)\" already exists with different options: remove it first or use its options")
                }
                return (existing, false)
            }
            let record = VolumeRecord(name: name, labels: labels, options: options, anonymous: anonymous)
            let volumeDirectory = "\(directory)/\(name)"
            do {
                try Syscall.mkdir(volumeDirectory, mode: 0o701, existingIsFine: true)
                try Syscall.mkdir(dataPath(name), mode: 0o755, existingIsFine: true)
                try database.write { db in try record.insert(db) }
            } catch {
                try? FileSystem.removeTree(volumeDirectory)
                throw error
            }
            return (record, true)
        }
    }

    public func get(_ name: String) throws -> VolumeRecord {
        guard let record = try database.read({ db in try VolumeRecord.fetchOne(db, key: name) }) else {
            throw AtollError.notFound("no such volume: \(name)")
        }
        return record
    }

    /// IDs of the containers that use the volume (in any state).
    public func users(of name: String) throws -> [String] {
        try database.read { db in
            try String.fetchAll(
                db, sql: "SELECT container_id FROM volume_users WHERE volume = ? ORDER BY container_id",
                arguments: [name])
        }
    }

    /// Every volume with the containers that use it.
    public func list() throws -> [(record: VolumeRecord, users: [String])] {
        try database.read { db in
            let records = try VolumeRecord.order(Column("name")).fetchAll(db)
            var users: [String: [String]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT volume, container_id FROM volume_users") {
                users[row["volume"], default: []].append(row["container_id"])
            }
            return records.map { ($0, users[$0.name] ?? []) }
        }
    }

    /// Bytes the volume's data takes on disk (0 for a volume whose file system is not mounted).
    public func size(_ name: String) -> Int64 {
        (try? FileSystem.diskUsage(dataPath(name)).bytes) ?? 0
    }

    // MARK: - Remove

    /// Removes a volume no container uses. With `force`, a missing volume is not an error.
    public func remove(_ name: String, force: Bool) throws {
        try locks.withLock(name) { () throws -> Void in
            let deleted = try database.write { db -> Bool in
                let users = try String.fetchAll(
                    db, sql: "SELECT container_id FROM volume_users WHERE volume = ?", arguments: [name])
                guard users.isEmpty else {
                    throw AtollError.failedPrecondition(
                        "volume \"\(name)\" is in use by container\(users.count == 1 ? "" : "s") \(users.map { String($0.prefix(12)) }.joined(separator: ", ")): remove \(users.count == 1 ? "it" : "them") first"
                    )
                }
                return try VolumeRecord.deleteOne(db, key: name)
            }
            guard deleted else {
                if force { return }
                throw AtollError.notFound("no such volume: \(name)")
            }
            try discardDirectory(name)
        }
    }

    /// Removes unused volumes: anonymous ones, or all with `all` (Docker ≥ 23's `prune -a`),
    /// that match `labelFilters` (`label=K`, `label=K=V`, `label!=K…`).
    public func prune(all: Bool, labelFilters: [String]) throws -> (removed: [String], reclaimed: Int64) {
        var removed: [String] = []
        var reclaimed: Int64 = 0
        for (record, users) in try list() where users.isEmpty && (all || record.anonymous) {
            guard VolumeFilter.labelsMatch(record.labels, labelFilters) else { continue }
            let bytes = size(record.name)
            do {
                try remove(record.name, force: true)
                removed.append(record.name)
                reclaimed += bytes
            } catch {
                logger.info("prune kept volume \(record.name): \(error)")
            }
        }
        return (removed, reclaimed)
    }

    /// Moves the volume's directory aside (so that no half-removed volume is ever visible under
    /// its name), unmounts what may be mounted there and deletes it.
    private func discardDirectory(_ name: String) throws {
        let volumeDirectory = "\(directory)/\(name)"
        try Mount.unmountAll(at: dataPath(name))
        let trash = "\(directory)/.removing-\(Identifier.random().prefix(16))"
        do {
            try Syscall.rename(from: volumeDirectory, to: trash)
        } catch {
            // (A `catch where` on this typed throw crashes Swift 6.3.1's SIL optimizer.)
            if error.errno == ENOENT { return }
            throw error
        }
        try FileSystem.removeTree(trash)
    }

    /// At start: finish removals a crash interrupted; directories without a row (a crash between
    /// mkdir and insert, or a database restored from a backup) become volumes again rather than
    /// losing data.
    private func recoverDirectories() throws {
        let known = Set(try database.read { db in try String.fetchAll(db, sql: "SELECT name FROM volumes") })
        for entry in try FileManager.default.contentsOfDirectory(atPath: directory) {
            if entry.hasPrefix(".removing-") {
                try? Mount.unmountAll(at: "\(directory)/\(entry)/_data")
                try? FileSystem.removeTree("\(directory)/\(entry)")
            } else if entry.hasPrefix(".import-") {
                try? FileSystem.removeTree("\(directory)/\(entry)")
            } else if !known.contains(entry), (try? VolumeName.validate(entry)) != nil,
                FileSystem.exists(dataPath(entry))
            {
                let anonymous = entry.count == 64 && entry.allSatisfy(\.isHexDigit)
                try database.write { db in try VolumeRecord(name: entry, anonymous: anonymous).insert(db) }
                logger.warning("volume directory \(entry) had no record; registered it again")
            }
        }
    }
}

/// `volume ls --filter` and `volume prune --filter`.
public enum VolumeFilter {
    /// Keeps the volumes every filter holds for: `dangling=true|false`, `name=SUBSTRING`,
    /// `driver=NAME`, `label=…`, `label!=…`.
    public static func apply(
        _ filters: [String], to volumes: [(record: VolumeRecord, users: [String])]
    ) throws -> [(record: VolumeRecord, users: [String])] {
        var labelFilters: [String] = []
        var tests: [((record: VolumeRecord, users: [String])) -> Bool] = []
        for filter in filters {
            let pair = filter.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 || filter.hasPrefix("label") else {
                throw AtollError.invalidArgument("invalid filter \"\(filter)\": want KEY=VALUE")
            }
            let value = pair.count == 2 ? pair[1] : ""
            switch pair[0] {
            case "dangling":
                guard let dangling = ["true": true, "1": true, "false": false, "0": false][value] else {
                    throw AtollError.invalidArgument("invalid filter \"\(filter)\": dangling takes true or false")
                }
                tests.append { $0.users.isEmpty == dangling }
            case "name":
                tests.append { $0.record.name.contains(value) }
            case "driver":
                tests.append { $0.record.driver == value }
            case "label", "label!":
                labelFilters.append(filter)
            default:
                throw AtollError.invalidArgument(
                    "invalid filter \"\(pair[0])\": want dangling, name, driver, label or label!")
            }
        }
        return volumes.filter { volume in
            tests.allSatisfy { $0(volume) } && labelsMatch(volume.record.labels, labelFilters)
        }
    }

    /// `label=K`, `label=K=V`, `label!=K`, `label!=K=V`: every one must hold.
    public static func labelsMatch(_ labels: [String: String], _ filters: [String]) -> Bool {
        filters.allSatisfy { filter in
            let negated = filter.hasPrefix("label!=")
            let body = String(filter.dropFirst(negated ? 7 : 6))
            let pair = body.split(separator: "=", maxSplits: 1).map(String.init)
            let holds = pair.count == 2 ? labels[pair[0]] == pair[1] : labels[pair[0]] != nil
            return negated ? !holds : holds
        }
    }
}

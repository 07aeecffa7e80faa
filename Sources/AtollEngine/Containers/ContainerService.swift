import AtollCore
import AtollImages
import AtollNetwork
import AtollOCI
import AtollRuntime
import AtollStorage
import AtollVolumes
import Foundation
import GRDB
import Logging
import Synchronization

/// The host's containers: creates them on a snapshot of their image, runs them through an OCI
/// runtime under a conmon monitor each, follows their exits, and removes them without leaving a
/// mount, cgroup, file or process behind. Methods block (they run runtimes and mount file
/// systems): call them off the async pool.
public final class ContainerService: Sendable {
    let database: DatabasePool
    let images: ImageService
    let volumes: VolumeService
    let networks: NetworkService
    let snapshotter: any Snapshotter
    public let paths: ContainerPaths
    let runtimes: @Sendable () -> [RuntimeStatus]
    let locks = KeyedLocks()
    let waiters = ExitWaiters()
    let background = BackgroundTasks()
    let watcherHolder = Mutex<ExitWatcher?>(nil)
    /// Exit codes of containers removed on exit (`--rm`), so that `run` and `wait` still learn them.
    let removedExits = Mutex<[(id: String, code: Int32)]>([])
    /// Image configs by image ID (see `imageConfig(imageID:)`).
    let imageConfigs = Mutex<[String: ImageConfig.Config]>([:])
    let seccompPrograms = SeccompPrograms()
    let logger = Logger(label: "atoll.containers")

    init(
        database: DatabasePool, images: ImageService, volumes: VolumeService, networks: NetworkService,
        snapshotter: any Snapshotter, paths: ContainerPaths, runtimes: @escaping @Sendable () -> [RuntimeStatus]
    ) throws {
        self.database = database
        self.images = images
        self.volumes = volumes
        self.networks = networks
        self.snapshotter = snapshotter
        self.paths = paths
        self.runtimes = runtimes
        for directory in [paths.containers, paths.exits, paths.sockets, paths.runtimeState] {
            try Syscall.mkdirAll(directory, mode: 0o700)
        }
    }

    static func registerMigrations(_ migrator: inout DatabaseMigrator) { ContainerMigrations.register(&migrator) }

    // MARK: - Finding containers

    /// Finds a container by full ID, unique ID prefix, or name (with or without a leading "/").
    public func lookup(_ reference: String) throws -> ContainerRecord {
        try database.read { db in try Self.lookup(reference, in: db) }
    }

    static func lookup(_ reference: String, in db: Database) throws -> ContainerRecord {
        let name = reference.hasPrefix("/") ? String(reference.dropFirst()) : reference
        if let record = try ContainerRecord.fetchOne(db, key: reference) { return record }
        if let record = try ContainerRecord.filter(Column("name") == name).fetchOne(db) { return record }
        if !reference.isEmpty, reference.allSatisfy(\.isHexDigit) {
            let matches = try ContainerRecord.filter(Column("id").like("\(reference)%")).limit(2).fetchAll(db)
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw AtollError.invalidArgument("container ID prefix \"\(reference)\" is ambiguous: give more digits")
            }
        }
        throw AtollError.notFound("no such container: \(reference)")
    }

    func fetch(_ id: String) throws -> ContainerRecord? {
        try database.read { db in try ContainerRecord.fetchOne(db, key: id) }
    }

    func save(_ record: ContainerRecord) throws {
        try database.write { db in try record.update(db) }
    }

    /// How many containers use an image (for `rmi` and `images`).
    public func count(usingImage imageID: String) -> Int {
        (try? database.read { db in try ContainerRecord.filter(Column("image_id") == imageID).fetchCount(db) }) ?? 0
    }

    // MARK: - Create

    /// Creates a container: checks every setting, prepares a writable snapshot of the image and
    /// records it. Nothing is left behind when any step fails.
    public func create(_ requested: ContainerSettings) throws -> ContainerRecord {
        var settings = requested
        try validate(&settings)
        let image = try images.resolve(settings.image)
        let id = Identifier.random()
        let name = settings.name.isEmpty ? try uniqueGeneratedName() : settings.name
        settings.name = name
        if let existing = try database.read({ db in try ContainerRecord.filter(Column("name") == name).fetchOne(db) }) {
            throw AtollError.alreadyExists(
                "the container name \"/\(name)\" is already in use by container \(existing.id): remove or rename that container to reuse the name"
            )
        }
        settings.mounts = try resolveMounts(settings, image: try imageConfig(imageID: image.id))
        let (mounts, createdVolumes) = try createVolumes(for: settings.mounts)
        settings.mounts = mounts
        let record = ContainerRecord(
            id: id, name: name, imageID: image.id, created: Int64(Date().timeIntervalSince1970 * 1e9),
            settings: settings, state: ContainerState())
        let bundle = paths.bundle(id)
        do {
            try Syscall.mkdir(bundle, mode: 0o700)
            try Syscall.mkdir(paths.rootfs(id), mode: 0o755)
            _ = try snapshotter.prepare(
                record.snapshotKey, parent: image.topChainID.isEmpty ? nil : image.topChainID,
                labels: ["atoll.container": id])
            try database.write { db in
                try record.insert(db)
                for user in Self.volumeUsers(record) { try user.insert(db) }
            }
        } catch {
            try? snapshotter.remove(record.snapshotKey)
            try? FileSystem.removeTree(bundle)
            removeVolumes(createdVolumes)
            if let databaseError = error as? DatabaseError, databaseError.resultCode == .SQLITE_CONSTRAINT {
                if try database.read({ db in try ContainerRecord.filter(Column("name") == name).fetchCount(db) }) > 0 {
                    throw AtollError.alreadyExists("the container name \"/\(name)\" is already in use")
                }
                throw AtollError.failedPrecondition("a volume of container \(name) was removed while it was created")
            }
            throw error
        }
        return record
    }

    /// Checks what can be checked before anything is created, so that bad flags fail cleanly.
    func validate(_ settings: inout ContainerSettings) throws {
        if !settings.name.isEmpty {
            if settings.name.hasPrefix("/") { settings.name.removeFirst() }
            guard ObjectName.isValid(settings.name) else {
                throw AtollError.invalidArgument(
                    "invalid container name \"\(settings.name)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            }
        }
        if settings.memoryBytes != 0 && settings.memoryBytes < 6 << 20 {
            throw AtollError.invalidArgument("minimum memory limit allowed is 6MB")
        }
        if settings.nanoCPUs < 0 || settings.pidsLimit < 0 || settings.shmSizeBytes < 0 || settings.memoryBytes < 0 {
            throw AtollError.invalidArgument("limits cannot be negative")
        }
        let online = Int64(ProcessInfo.processInfo.activeProcessorCount)
        if settings.nanoCPUs > online * 1_000_000_000 {
            throw AtollError.invalidArgument(
                "range of CPUs is from 0.01 to \(online).00, as there are only \(online) CPUs available")
        }
        for ulimit in settings.ulimits { _ = try Ulimit(parsing: ulimit) }
        if settings.autoRemove && settings.restartPolicy.mode != .no {
            throw AtollError.invalidArgument("conflicting options: cannot specify both --restart and --rm")
        }
        for option in settings.securityOpt {
            switch option {
            case "no-new-privileges", "no-new-privileges=true", "no-new-privileges:true", "no-new-privileges=false",
                "no-new-privileges:false", "seccomp=unconfined", "seccomp:unconfined":
                continue
            default:
                throw AtollError.invalidArgument(
                    "invalid --security-opt \"\(option)\": supported are no-new-privileges and seccomp=unconfined")
            }
        }
        if !settings.stopSignal.isEmpty { _ = try Signals.number(settings.stopSignal) }
        if settings.network.isEmpty { settings.network = "bridge" }
        settings.networking = try networks.validate(
            mode: settings.network, networking: settings.networking ?? ContainerNetworking())
        if let network = try? networks.resolve(settings.network), !network.builtin { settings.network = network.name }
        if !settings.runtime.isEmpty { _ = try runtime(named: settings.runtime) }
        for capability in settings.capAdd + settings.capDrop {
            _ = try SecurityDefaults.capabilities(adding: [capability], dropping: [], privileged: false)
        }
    }

    /// The runtime a container uses: the one it names, else crun where it works, else runc.
    func runtime(named name: String) throws -> OCIRuntime {
        let statuses = runtimes()
        if name.isEmpty {
            guard let usable = statuses.first(where: \.works) else {
                throw AtollError(
                    .unavailable,
                    "no working OCI runtime on this host: \(statuses.map { "\($0.name): \($0.problem)" }.joined(separator: "; "))"
                )
            }
            return usable.runtime(stateRoot: paths.runtimeState)
        }
        guard let status = statuses.first(where: { $0.name == name }) else {
            throw AtollError.invalidArgument(
                "unknown runtime \"\(name)\": this host has \(statuses.map(\.name).joined(separator: ", "))")
        }
        guard status.works else {
            throw AtollError(.unavailable, "runtime \(name) does not work on this host: \(status.problem)")
        }
        return status.runtime(stateRoot: paths.runtimeState)
    }

    private func uniqueGeneratedName() throws -> String {
        for _ in 0..<32 {
            let name = NameGenerator.random()
            if try database.read({ db in try ContainerRecord.filter(Column("name") == name).fetchCount(db) }) == 0 {
                return name
            }
        }
        return "atoll_\(Identifier.random().prefix(12))"
    }

    // MARK: - Remove

    /// Removes a stopped container (with `force`, kills a running one first): its runtime state,
    /// cgroup, rootfs mount, snapshot, bundle directory and row.
    public func remove(_ reference: String, force: Bool, volumes removeVolumes: Bool = false) async throws {
        let record = try lookup(reference)
        if record.state.status.isActive || record.state.status == .restarting {
            guard force else {
                throw AtollError.failedPrecondition(
                    "cannot remove container \"\(record.name)\": it is \(record.state.status.rawValue); stop it first or use rm -f"
                )
            }
            cancelRestart(record.id)
            try? await kill(record.id, signal: SIGKILL, byUser: true)
            if !(await waitUntilStopped(record.id, timeout: .seconds(10))) {
                logger.warning("container \(record.id) did not report its exit after SIGKILL; removing it anyway")
            }
        }
        try await BlockingWork.run { try self.removeStopped(record.id, force: force, volumes: removeVolumes) }
    }

    /// Removes a container that is not running. Without `force`, one that started meanwhile is
    /// refused (the check is under the container's lock). A removal that fails half-way leaves
    /// the container `dead`, for `rm -f` to finish. With `volumes`, its anonymous volumes go
    /// too (those another container also uses stay).
    func removeStopped(_ id: String, force: Bool = true, volumes removeVolumes: Bool = false) throws {
        defer { waiters.notify(id) }
        let removed = try locks.withLock(id) { () throws -> ContainerRecord? in
            guard let record = try fetch(id) else { return nil }
            if !force && (record.state.status.isActive || record.state.status == .restarting) {
                throw AtollError.failedPrecondition(
                    "cannot remove container \"\(record.name)\": it is \(record.state.status.rawValue); stop it first or use rm -f"
                )
            }
            try removeLocked(record)
            return record
        }
        guard let removed, removeVolumes else { return }
        removeAnonymousVolumes(of: removed)
    }

    /// Removes a container whose lock the caller holds: marks it removing, releases what it
    /// holds (unless `released`), then deletes its snapshot, bundle and record. A failure leaves
    /// it dead, with the reason.
    func removeLocked(_ record: ContainerRecord, released: Bool = false) throws {
        var record = record
        cancelRestart(record.id)
        background.cancelHealth(record.id)
        record.state.status = .removing
        try save(record)
        do {
            if !released { try releaseResources(record, force: true) }
            try snapshotter.remove(record.snapshotKey)
            try FileSystem.removeTree(paths.bundle(record.id))
            _ = try database.write { db in try ContainerRecord.deleteOne(db, key: record.id) }
        } catch {
            record.state.status = .dead
            record.state.error = "removal failed: \(error)"
            try? save(record)
            throw error
        }
    }

    /// Removes the anonymous volumes a removed container used (`rm -v`, `--rm`).
    func removeAnonymousVolumes(of removed: ContainerRecord) {
        let anonymous = removed.settings.mounts.filter { $0.kind == .volume }.compactMap { mount in
            (try? volumes.get(mount.source))?.anonymous == true ? mount.source : nil
        }
        self.removeVolumes(anonymous)
    }

    /// Undoes what `start` set up: the runtime's container (and cgroup), the rootfs mount, the
    /// attach symlink. Safe to repeat.
    func releaseResources(_ record: ContainerRecord, force: Bool) throws {
        if !record.state.runtime.isEmpty || force {
            let runtime = try? self.runtime(named: record.state.runtime)
            try runtime?.delete(record.id, force: force)
        }
        try Mount.unmountAll(at: paths.rootfs(record.id))
        unlink("\(paths.sockets)/\(Conmon.handle(record.id))")
        deactivateVolumes(record)
        networks.release(record.id)
    }

    /// Renames a container; the new name must be free.
    public func rename(_ reference: String, to newName: String) throws {
        var probe = ContainerSettings()
        probe.name = newName
        try validate(&probe)
        let record = try lookup(reference)
        try locks.withLock(record.id) {
            try database.write { db in
                if let other = try ContainerRecord.filter(Column("name") == probe.name).fetchOne(db) {
                    throw AtollError.alreadyExists(
                        "the container name \"/\(probe.name)\" is already in use by container \(other.id)")
                }
                guard var current = try ContainerRecord.fetchOne(db, key: record.id) else {
                    throw AtollError.notFound("no such container: \(reference)")
                }
                current.name = probe.name
                current.settings.name = probe.name
                try current.update(db)
            }
            networks.refreshNames()
        }
    }

    // MARK: - Waiting

    /// Waits until the container is not running (or is gone); false on timeout.
    func waitUntilStopped(_ id: String, timeout: Duration?) async -> Bool {
        await waiters.wait(id, timeout: timeout) { [self] in
            guard let record = try? fetch(id) else { return true }
            return !(record.state.status.isActive || record.state.status == .removing)
        }
    }

    /// `atoll wait`: blocks until the container stops and answers its exit code (waiting through
    /// restarts only once: the exit that ends this run).
    public func wait(_ reference: String) async throws -> Int32 {
        let record: ContainerRecord
        do {
            record = try lookup(reference)
        } catch let error as AtollError where error.code == .notFound {
            if let code = removedExits.withLock({ $0.last { $0.id == reference }?.code }) { return code }
            throw error
        }
        _ = await waitUntilStopped(record.id, timeout: nil)
        if let current = try fetch(record.id) { return current.state.exitCode }
        return removedExits.withLock { $0.last { $0.id == record.id }?.code } ?? record.state.exitCode
    }
}

/// Docker-style names: adjective_scientist.
enum NameGenerator {
    static let adjectives = [
        "admiring", "bold", "brave", "calm", "clever", "eager", "elegant", "festive", "gentle", "happy", "jolly",
        "keen", "lucid", "modest", "nifty", "quirky", "serene", "sharp", "sleepy", "stoic", "tender", "vibrant",
        "wizardly", "zen",
    ]
    static let names = [
        "babbage", "curie", "darwin", "euler", "faraday", "galois", "hopper", "hypatia", "kepler", "lovelace",
        "maxwell", "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak",
    ]

    static func random() -> String {
        "\(adjectives.randomElement() ?? "calm")_\(names.randomElement() ?? "turing")"
    }
}

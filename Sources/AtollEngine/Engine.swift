import AtollCore
import AtollImages
import AtollNetwork
import AtollOCI
import AtollRegistry
import AtollStorage
import AtollVolumes
import Foundation
import GRDB
import Logging
import Synchronization

/// Where an engine keeps its state and which storage driver it uses.
public struct EngineConfiguration: Sendable {
    /// The root of all persistent state (default /var/lib/atoll).
    public var root: String
    /// "overlay" or "native"; nil picks overlay where it works, else native.
    public var storageDriver: String?
    /// Where runtime state and probes go (default /run/atoll).
    public var runDirectory: String
    /// The default bridge network's device (atoll0); a second daemon in the same network
    /// namespace needs its own.
    public var defaultBridge: String

    public init(root: String, storageDriver: String?, runDirectory: String, defaultBridge: String = "atoll0") {
        self.root = root
        self.storageDriver = storageDriver
        self.runDirectory = runDirectory
        self.defaultBridge = defaultBridge
    }
}

/// One host's engine: the content store, the snapshotter, the images and (later) containers,
/// volumes and networks, over one node-local database.
public final class Engine: Sendable {
    public let configuration: EngineConfiguration
    public let database: DatabasePool
    public let content: ContentStore
    public let snapshotter: any Snapshotter
    public let images: ImageService
    public let containers: ContainerService
    public let volumes: VolumeService
    public let networks: NetworkService
    public let registry: RegistryStore
    public let builder: Builder
    public let host: HostFacts
    private let runtimeCache = RuntimeCache()
    private let logger = Logger(label: "atoll.engine")

    public static let storageDrivers = ["overlay", "native"]

    public init(configuration: EngineConfiguration) throws {
        self.configuration = configuration
        let root = configuration.root
        try Syscall.mkdirAll(root, mode: 0o711)
        try Syscall.mkdirAll(configuration.runDirectory, mode: 0o711)
        database = try EngineDatabase.open(path: "\(root)/engine.db") { migrator in
            ImageService.registerMigrations(&migrator)
            ContainerService.registerMigrations(&migrator)
            VolumeService.registerMigrations(&migrator)
            NetworkService.registerMigrations(&migrator)
            RegistryStore.registerMigrations(&migrator)
        }
        content = try ContentStore(root: "\(root)/content")
        snapshotter = try Self.openSnapshotter(root: root, requested: configuration.storageDriver, logger: logger)
        let removed = try snapshotter.cleanup()
        if removed > 0 { logger.info("removed \(removed) snapshot directories left by an interrupted operation") }
        let database = self.database
        images = ImageService(
            database: database, content: content, snapshotter: snapshotter,
            containersUsing: { db, imageID in
                (try? ContainerRecord.filter(Column("image_id") == imageID).fetchCount(db)) ?? 0
            },
            extraRoots: { db in try RegistryStore.roots(db) })
        registry = RegistryStore(database: database, content: content, collectionLock: images.contentLock)
        host = HostFacts.read()
        let runtimeCache = self.runtimeCache
        let runDirectory = configuration.runDirectory
        volumes = try VolumeService(database: database, root: root)
        networks = try NetworkService(
            database: database, runDirectory: configuration.runDirectory, firewall: Self.openFirewall(logger: logger),
            defaultBridge: configuration.defaultBridge)
        containers = try ContainerService(
            database: database, images: images, volumes: volumes, networks: networks, snapshotter: snapshotter,
            paths: ContainerPaths(root: root, run: configuration.runDirectory)
        ) {
            runtimeCache.statuses(workDirectory: runDirectory)
        }
        builder = try Builder(
            images: images, containers: containers, snapshotter: snapshotter, content: content, root: root)
        // Interrupted loads and imports leave active "extract-"/"import-" snapshots and blobs or
        // layers no image records: remove them at start. Containers' snapshots stay.
        let containerIDs = Set(try database.read { db in try String.fetchAll(db, sql: "SELECT id FROM containers") })
        // Views are only ever a build's, for the length of a step.
        for snapshot in try snapshotter.list() where snapshot.kind != .committed {
            if snapshot.name.hasPrefix("container-"), containerIDs.contains(String(snapshot.name.dropFirst(10))) {
                continue
            }
            try? snapshotter.remove(snapshot.name)
        }
        do {
            let reclaimed = try images.collectGarbage()
            if reclaimed > 0 { logger.info("collected \(reclaimed) bytes left by interrupted operations") }
        } catch {
            logger.error("garbage collection at start failed (nothing was removed): \(error)")
        }
    }

    /// libnftables, or (where it cannot start) a firewall that explains why on every change.
    private static func openFirewall(logger: Logger) -> any Firewall {
        do { return try NftablesFirewall() } catch {
            logger.error("nftables unavailable: bridge networks will not work: \(error)")
            return UnavailableFirewall(reason: "\(error)")
        }
    }

    /// Runs once the daemon starts: networks first (bridges, addresses, ruleset, DNS for the
    /// containers still running), then the containers themselves (reattach, reconcile, restart).
    public func recover() throws {
        let running = try database.read { db in
            try ContainerRecord.fetchAll(db).filter { $0.state.status.isActive }.map(\.id)
        }
        try networks.recover(runningContainers: Set(running))
        try containers.recover()
    }

    private static func openSnapshotter(root: String, requested: String?, logger: Logger) throws -> any Snapshotter {
        switch requested {
        case "overlay": return try OverlaySnapshotter(root: "\(root)/snapshots/overlay")
        case "native": return try NativeSnapshotter(root: "\(root)/snapshots/native")
        case nil:
            do {
                return try OverlaySnapshotter(root: "\(root)/snapshots/overlay")
            } catch {
                logger.warning("overlay storage driver unavailable, using native: \(error)")
                return try NativeSnapshotter(root: "\(root)/snapshots/native")
            }
        case let other?:
            throw AtollError.invalidArgument(
                "unknown storage driver \"\(other)\": want one of \(storageDrivers.joined(separator: ", "))")
        }
    }

    /// The OCI runtimes on this host and whether each works; probed once (callers that arrive
    /// while the probe runs wait for it), then remembered.
    public func runtimeStatuses() -> [RuntimeStatus] {
        runtimeCache.statuses(workDirectory: configuration.runDirectory)
    }

    /// Stops what the engine runs on the host beyond containers: the DNS resolvers and the
    /// sealed runtime binaries. Containers keep running. Calling it again does nothing.
    public func shutdown() {
        networks.shutdown()
        runtimeCache.release()
    }

    /// The runtime containers use by default: crun where it works, else the first that works
    /// (runc); nil when none does.
    public func defaultRuntime() -> String? {
        runtimeStatuses().first { $0.works }?.name
    }

    /// Counts for `atoll info`.
    public func counts() throws -> (images: Int, containers: Int, blobs: Int, snapshots: Int) {
        let (images, containers) = try database.read { db in
            (try ImageRecord.fetchCount(db), try ContainerRecord.fetchCount(db))
        }
        return (images, containers, try content.list().count, try snapshotter.list().count)
    }

    /// Facts about the storage driver, for `atoll info` and `image inspect`.
    public func storageStatus() -> [(String, String)] {
        var facts: [(String, String)] = [("Root", "\(configuration.root)/snapshots/\(snapshotter.driverName)")]
        if let fileSystem = try? BackingFileSystem.probe(configuration.root) {
            facts.append(("Backing Filesystem", fileSystem.type))
            facts.append(("Supports d_type", fileSystem.supportsDType ? "true" : "false"))
        }
        return facts
    }

    /// `system df`: rows for images, containers, local volumes and build cache.
    public func diskUsage() throws -> [DiskUsageRow] {
        let images = try self.images.list(all: true)
        let chainsInUse = try database.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT chain_id FROM image_layers")
        }
        var imageBytes: Int64 = 0
        for chain in chainsInUse { imageBytes += (try? snapshotter.usage(chain).size) ?? 0 }
        let active = images.filter { $0.containers > 0 }
        let containerRows = try database.read { db in try ContainerRecord.fetchAll(db) }
        let runningContainers = containerRows.filter { $0.state.status.isActive }
        let containerBytes = containerRows.reduce(Int64(0)) { $0 + containers.writableLayerSize($1) }
        let activeBytes = active.reduce(Int64(0)) { $0 + $1.size }
        let volumeRows = try volumeUsage()
        return [
            DiskUsageRow(
                type: "Images", total: images.count, active: active.count, size: imageBytes,
                reclaimable: max(0, imageBytes - activeBytes)),
            DiskUsageRow(
                type: "Containers", total: containerRows.count, active: runningContainers.count, size: containerBytes,
                reclaimable: containerBytes - runningContainers.reduce(0) { $0 + containers.writableLayerSize($1) }),
            DiskUsageRow(
                type: "Local Volumes", total: volumeRows.count, active: volumeRows.filter { !$0.users.isEmpty }.count,
                size: volumeRows.reduce(0) { $0 + $1.size },
                reclaimable: volumeRows.filter { $0.users.isEmpty }.reduce(0) { $0 + $1.size }),
            buildCacheUsage(chainsInUse: Set(chainsInUse)),
        ]
    }
}

extension Engine {
    /// The build cache's line: its cached steps, those whose layer an image uses (active), and
    /// the bytes of their layers (reclaimable: those no image uses, which `builder prune` frees).
    func buildCacheUsage(chainsInUse: Set<String>) -> DiskUsageRow {
        let records = (try? database.read { db in try BuildCacheRecord.fetchAll(db) }) ?? []
        var size: Int64 = 0
        var reclaimable: Int64 = 0
        for record in records {
            let bytes = (try? snapshotter.usage(record.chainID).size) ?? 0
            size += bytes
            if !chainsInUse.contains(record.chainID) { reclaimable += bytes }
        }
        return DiskUsageRow(
            type: "Build Cache", total: records.count,
            active: records.filter { chainsInUse.contains($0.chainID) }.count,
            size: size, reclaimable: reclaimable)
    }

    /// Each volume's size and the names of the containers that use it (`system df -v`).
    public func volumeUsage() throws -> [VolumeUsage] {
        let names = Dictionary(
            uniqueKeysWithValues: try database.read { db in
                try Row.fetchAll(db, sql: "SELECT id, name FROM containers").map {
                    ($0["id"] as String, $0["name"] as String)
                }
            })
        return try volumes.list().map { record, users in
            VolumeUsage(
                name: record.name, driver: record.driver, size: volumes.size(record.name),
                users: users.compactMap { names[$0] })
        }
    }
}

/// One volume in `system df -v`.
public struct VolumeUsage: Sendable {
    public var name: String
    public var driver: String
    public var size: Int64
    /// Names of the containers that use it.
    public var users: [String]
}

/// One line of `system df`.
public struct DiskUsageRow: Sendable {
    public var type: String
    public var total: Int
    public var active: Int
    public var size: Int64
    public var reclaimable: Int64
}

/// The runtimes' probe results: probed (and the working ones sealed) once, callers that arrive
/// while the probe runs waiting for it, then remembered.
final class RuntimeCache: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var known: [RuntimeStatus]?
    private let logger = Logger(label: "atoll.engine")

    func statuses(workDirectory: String) -> [RuntimeStatus] {
        lock.lock()
        defer { lock.unlock() }
        if let known { return known }
        let probed = RuntimeProbe.seal(
            RuntimeProbe.probeAll(workDirectory: workDirectory), in: "\(workDirectory)/runtimes", logger: logger)
        known = probed
        return probed
    }

    /// Unmounts the sealed runtimes (at shutdown: containers do not need them to keep running).
    func release() {
        lock.lock()
        defer { lock.unlock() }
        RuntimeProbe.unseal(known ?? [])
        known = nil
    }
}

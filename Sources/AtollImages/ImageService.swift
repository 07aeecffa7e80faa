import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import GRDB
import Logging

/// The host's images: stores them (content store + snapshots + the engine database), resolves
/// names, and keeps everything consistent: an image row exists only once all its blobs and
/// layer snapshots do, and garbage collection never runs while content is being added.
public final class ImageService: Sendable {
    let database: DatabasePool
    let content: ContentStore
    let snapshotter: any Snapshotter
    let platform: Platform
    let limits: LayerLimits
    /// Loads and imports hold it for reading; garbage collection holds it for writing. Others
    /// that add blobs and their references (the registry) hold it for reading too.
    public let contentLock = ReadWriteLock()
    /// How many containers use an image (by image ID); containers plug in here.
    let usage: @Sendable (Database, String) -> Int
    /// Blobs others reference (the registry's repositories): never collected.
    let extraRoots: @Sendable (Database) throws -> Set<Digest>
    /// Layers running builds use (see `holdForBuild`).
    let buildLeases = BuildLeases()
    let logger = Logger(label: "atoll.images")

    public init(
        database: DatabasePool, content: ContentStore, snapshotter: any Snapshotter,
        platform: Platform = .host, limits: LayerLimits = .default,
        containersUsing usage: @escaping @Sendable (Database, String) -> Int = { _, _ in 0 },
        extraRoots: @escaping @Sendable (Database) throws -> Set<Digest> = { _ in [] }
    ) {
        self.extraRoots = extraRoots
        self.database = database
        self.content = content
        self.snapshotter = snapshotter
        self.platform = platform
        self.limits = limits
        self.usage = usage
    }

    /// The migrations the engine database needs for images.
    public static func registerMigrations(_ migrator: inout DatabaseMigrator) { ImageMigrations.register(&migrator) }

    // MARK: - Resolving names

    /// Finds an image by name[:tag], full or short ID (with or without "sha256:"), or name@digest.
    public func resolve(_ reference: String) throws -> ImageRecord {
        try database.read { db in try Self.resolve(reference, in: db) }
    }

    static func resolve(_ reference: String, in db: Database) throws -> ImageRecord {
        if let parsed = try? ImageReference(parsing: reference) {
            if let tag = try TagRecord.fetchOne(db, key: parsed.normalized),
                let image = try ImageRecord.fetchOne(db, key: tag.imageID)
            {
                return image
            }
            if let digest = parsed.digest,
                let image = try ImageRecord.filter(Column("manifest_digest") == digest.description).fetchOne(db)
            {
                return image
            }
        }
        if ImageReference.looksLikeIDPrefix(reference) {
            let hex = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
            let matches = try ImageRecord.filter(Column("id").like("sha256:\(hex)%")).limit(2).fetchAll(db)
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 {
                throw AtollError.invalidArgument("image ID prefix \"\(reference)\" is ambiguous: give more digits")
            }
        }
        throw AtollError.notFound("no such image: \(reference)")
    }

    /// Tags of an image, as users see them (familiar form, sorted).
    func tags(of imageID: String, in db: Database) throws -> [String] {
        try TagRecord.filter(Column("image_id") == imageID).fetchAll(db).map { Self.familiar($0.name) }.sorted()
    }

    static func familiar(_ normalized: String) -> String {
        (try? ImageReference(parsing: normalized))?.familiar ?? normalized
    }

    // MARK: - Reading stored objects

    /// The manifest and config of an image, read back from the content store (verified).
    public func manifestAndConfig(of image: ImageRecord) throws -> (ImageManifest, ImageConfig, [UInt8], [UInt8]) {
        let manifestBytes = try content.read(
            try Digest(parsing: image.manifestDigest), limit: ManifestDocument.maximumSize)
        guard
            case .manifest(let manifest) = try ManifestDocument.parse(
                data: manifestBytes, declaredMediaType: image.manifestMediaType)
        else { throw AtollError.dataLoss("image \(image.id) points at an index, not a manifest") }
        let configBytes = try content.read(manifest.config.digest, limit: ManifestDocument.maximumSize)
        let config = try ImageConfig.parse(data: configBytes)
        return (manifest, config, manifestBytes, configBytes)
    }

    // MARK: - Lists

    /// Images with their tags, newest first. `all: false` hides nothing yet (there are no
    /// intermediate images before the builder); filters: dangling=true|false, reference=PATTERN,
    /// label=KEY[=VALUE], before=IMAGE, since=IMAGE.
    public func list(all: Bool = false, filters: [String] = []) throws -> [ImageSummary] {
        let parsed = try ImageFilter.parse(filters)
        return try database.read { db in
            let images = try ImageRecord.order(Column("created").desc, Column("stored").desc).fetchAll(db)
            let layerUsers = try Self.layerUseCounts(in: db)
            var result: [ImageSummary] = []
            for image in images {
                let tags = try tags(of: image.id, in: db)
                var summary = ImageSummary(
                    id: image.id, repoTags: tags, repoDigests: [], created: image.created, size: image.size,
                    sharedSize: 0, containers: usage(db, image.id), labels: [:], targetDigest: image.manifestDigest)
                if let (_, config, _, _) = try? manifestAndConfig(of: image) {
                    summary.labels = config.config?.labels ?? [:]
                    summary.sharedSize = sharedSize(config: config, users: layerUsers)
                }
                if try parsed.matches(summary, image: image, resolve: { try Self.resolve($0, in: db) }) {
                    result.append(summary)
                }
            }
            return result
        }
    }

    /// For each chain ID, how many images use it.
    static func layerUseCounts(in db: Database) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT chain_id, COUNT(*) AS n FROM image_layers GROUP BY chain_id") {
            counts[row["chain_id"]] = row["n"]
        }
        return counts
    }

    private func sharedSize(config: ImageConfig, users: [String: Int]) -> Int64 {
        var shared: Int64 = 0
        for chain in ChainID.chainIDs(config.rootfs.diffIDs) where (users[chain.description] ?? 0) > 1 {
            shared += layerSize(chain.description)
        }
        return shared
    }

    // MARK: - Tag, remove, prune

    /// Points `target` (NAME[:TAG]) at the image `source` resolves to.
    public func tag(source: String, target: String) throws {
        let reference = try ImageReference(parsing: target)
        guard reference.digest == nil else {
            throw AtollError.invalidArgument("cannot tag with a digest: \"\(target)\"")
        }
        try database.write { db in
            let image = try Self.resolve(source, in: db)
            try TagRecord(name: reference.normalized, imageID: image.id).save(db)
        }
    }

    public struct RemoveResult: Sendable {
        public var untagged: [String] = []
        public var deleted: [String] = []
        public var reclaimed: Int64 = 0
    }

    /// Removes a name, and the image once no name points at it — Docker's `rmi`. By ID, the image
    /// must have at most one tag unless `force`. An image containers use is refused unless `force`.
    public func remove(_ reference: String, force: Bool) throws -> RemoveResult {
        var result = RemoveResult()
        try contentLock.withWriteLock {
            try database.write { db in
                let image = try Self.resolve(reference, in: db)
                let tags = try TagRecord.filter(Column("image_id") == image.id).fetchAll(db)
                let byName = (try? ImageReference(parsing: reference)).flatMap { parsed in
                    tags.first { $0.name == parsed.normalized }
                }
                let inUse = usage(db, image.id)
                if let byName, tags.count > 1 || force {
                    // Removing one of several names, or forced: only untag.
                    try byName.delete(db)
                    result.untagged.append(Self.familiar(byName.name))
                    if tags.count > 1 { return }
                } else {
                    if byName == nil && tags.count > 1 && !force {
                        throw AtollError.failedPrecondition(
                            "image \(image.id.dropFirst(7).prefix(12)) is referenced by several names (\(tags.map { Self.familiar($0.name) }.sorted().joined(separator: ", "))): remove them by name or use --force"
                        )
                    }
                    if inUse > 0 && !force {
                        throw AtollError.failedPrecondition(
                            "image \(Self.familiar(byName?.name ?? image.id)) is in use by \(inUse) container\(inUse == 1 ? "" : "s"): stop and remove \(inUse == 1 ? "it" : "them") first or use --force"
                        )
                    }
                    for tag in tags {
                        try tag.delete(db)
                        result.untagged.append(Self.familiar(tag.name))
                    }
                }
                if inUse > 0 && force { return }  // Docker keeps a used image, untagged.
                try ImageLayerRecord.filter(Column("image_id") == image.id).deleteAll(db)
                try ImageRecord.deleteOne(db, key: image.id)
                result.deleted.append(image.id)
            }
            if !result.deleted.isEmpty { result.reclaimed = collectGarbageAfterRemoval() }
        }
        return result
    }

    /// Removes dangling images (no name), or with `all` every image no container uses.
    public func prune(all: Bool, filters: [String] = []) throws -> RemoveResult {
        var result = RemoveResult()
        let parsed = try ImageFilter.parse(filters)
        try contentLock.withWriteLock {
            try database.write { db in
                for image in try ImageRecord.fetchAll(db) {
                    let tags = try TagRecord.filter(Column("image_id") == image.id).fetchAll(db)
                    guard usage(db, image.id) == 0, all || tags.isEmpty else { continue }
                    let summary = ImageSummary(
                        id: image.id, repoTags: tags.map { Self.familiar($0.name) }, repoDigests: [],
                        created: image.created,
                        size: image.size, sharedSize: 0, containers: 0, labels: [:], targetDigest: image.manifestDigest)
                    guard try parsed.matches(summary, image: image, resolve: { try Self.resolve($0, in: db) }) else {
                        continue
                    }
                    for tag in tags {
                        try tag.delete(db)
                        result.untagged.append(Self.familiar(tag.name))
                    }
                    try ImageLayerRecord.filter(Column("image_id") == image.id).deleteAll(db)
                    try ImageRecord.deleteOne(db, key: image.id)
                    result.deleted.append(image.id)
                }
            }
            result.reclaimed = collectGarbageAfterRemoval()
        }
        return result
    }

    /// The image rows are gone already: a collection that fails now is retried by the next one
    /// (and at daemon start), so it must not turn a successful removal into an error.
    private func collectGarbageAfterRemoval() -> Int64 {
        do { return try collectGarbageLocked() } catch {
            logger.error("garbage collection failed: \(error)")
            return 0
        }
    }

    // MARK: - Garbage collection

    /// Removes blobs and layer snapshots that no image references. Returns bytes reclaimed.
    @discardableResult
    public func collectGarbage() throws -> Int64 {
        try contentLock.withWriteLock { try collectGarbageLocked() }
    }

    /// Computes what every image needs and removes the rest. Any image whose manifest cannot be
    /// read aborts the collection: skipping it would delete a live image's layers.
    func collectGarbageLocked() throws -> Int64 {
        var keepBlobs = Set<Digest>()
        let (images, chains, roots) = try database.read { db in
            (
                try ImageRecord.fetchAll(db),
                try String.fetchAll(
                    db, sql: "SELECT chain_id FROM image_layers UNION SELECT chain_id FROM build_cache"),
                try extraRoots(db)
            )
        }
        keepBlobs.formUnion(roots)
        let leased = buildLeases.all
        keepBlobs.formUnion(leased.blobs)
        keepBlobs.formUnion(try database.read { db in try BuildCacheRecord.fetchAll(db) }.compactMap(\.layer?.digest))
        let keepChains = Set(chains).union(leased.chains)
        for image in images {
            let manifest: ImageManifest
            do {
                keepBlobs.insert(try Digest(parsing: image.manifestDigest))
                manifest = try manifestAndConfig(of: image).0
            } catch {
                throw AtollError(
                    .dataLoss, "garbage collection stopped: the manifest of image \(image.id) cannot be read",
                    cause: error)
            }
            keepBlobs.insert(manifest.config.digest)
            for layer in manifest.layers { keepBlobs.insert(layer.digest) }
        }
        var reclaimed = try content.garbageCollect(keeping: keepBlobs).bytes
        // Remove unreferenced committed layer snapshots, children first. Active snapshots belong
        // to operations in flight or to containers and are never collected here.
        var snapshots = try snapshotter.list().filter { $0.kind == .committed && $0.labels[Self.layerLabel] != nil }
        var removedAny = true
        while removedAny {
            removedAny = false
            let parents = Set(try snapshotter.list().compactMap(\.parent))
            for snapshot in snapshots where !keepChains.contains(snapshot.name) && !parents.contains(snapshot.name) {
                reclaimed += (try? snapshotter.usage(snapshot.name).size) ?? 0
                try snapshotter.remove(snapshot.name)
                removedAny = true
            }
            snapshots = try snapshotter.list().filter { $0.kind == .committed && $0.labels[Self.layerLabel] != nil }
        }
        return reclaimed
    }

    /// Label on committed layer snapshots (value: the layer's diff ID).
    public static let layerLabel = "atoll.layer.diff-id"
    /// Label on committed layer snapshots (value: the layer's uncompressed size in bytes).
    public static let layerSizeLabel = "atoll.layer.size"
}

/// Which layer snapshots (chain IDs) each image uses, for shared sizes and GC.
struct ImageLayerRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "image_layers"
    var imageID: String
    var position: Int
    var chainID: String
    enum CodingKeys: String, CodingKey { case imageID = "image_id", position, chainID = "chain_id" }
}

/// An image as lists show it.
public struct ImageSummary: Sendable, Equatable {
    public var id: String
    public var repoTags: [String]
    public var repoDigests: [String]
    public var created: Int64
    public var size: Int64
    public var sharedSize: Int64
    public var containers: Int
    public var labels: [String: String]
    public var targetDigest: String
}

/// Everything `image inspect` shows.
public struct ImageDetails: Sendable {
    public var summary: ImageSummary
    public var manifestJSON: [UInt8]
    public var manifestMediaType: String
    public var configJSON: [UInt8]
    public var diffIDs: [String]
    public var topChainID: String
}

extension ImageService {
    public func inspect(_ reference: String) throws -> ImageDetails {
        let image = try resolve(reference)
        let (_, config, manifestBytes, configBytes) = try manifestAndConfig(of: image)
        guard let summary = try list(all: true).first(where: { $0.id == image.id }) else {
            throw AtollError.notFound("no such image: \(reference)")
        }
        return ImageDetails(
            summary: summary, manifestJSON: manifestBytes, manifestMediaType: image.manifestMediaType,
            configJSON: configBytes, diffIDs: config.rootfs.diffIDs.map(\.description), topChainID: image.topChainID)
    }
}

import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import GRDB
import Synchronization

/// A build step that made a layer, found again by its cache key (a digest of the state it
/// started from, the instruction and what it read). Its layer blob and its committed snapshot
/// (named by chain ID, as image layers are) stay while the record does: both are garbage
/// collection roots.
public struct BuildCacheRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "build_cache"
    enum CodingKeys: String, CodingKey {
        case key, chainID = "chain_id", diffID = "diff_id", layerDigest = "layer_digest"
        case layerMediaType = "layer_media_type", layerSize = "layer_size", created, lastUsed = "last_used"
    }

    public var key: String
    public var chainID: String
    public var diffID: String
    public var layerDigest: String
    public var layerMediaType: String
    public var layerSize: Int64
    /// When the step ran (RFC 3339): a cached step keeps its history date, so that an unchanged
    /// rebuild makes the very same image.
    public var created: String
    /// Seconds since the epoch.
    public var lastUsed: Int64

    public init(key: String, chainID: String, diffID: Digest, layer: Descriptor, created: String) {
        self.key = key
        self.chainID = chainID
        self.diffID = diffID.description
        layerDigest = layer.digest.description
        layerMediaType = layer.mediaType
        layerSize = layer.size
        self.created = created
        lastUsed = Int64(Date().timeIntervalSince1970)
    }

    /// The layer blob's descriptor (nil when the record is damaged).
    public var layer: Descriptor? {
        (try? Digest(parsing: layerDigest)).map { Descriptor(mediaType: layerMediaType, digest: $0, size: layerSize) }
    }
}

/// What running builds use (layer blobs and the snapshots of their chains), by build: kept by
/// garbage collection even when no image or cache record names them any more (a `builder prune`
/// or an `rmi` of the base while the build runs).
final class BuildLeases: Sendable {
    private let held = Mutex<[String: (chains: Set<String>, blobs: Set<Digest>)]>([:])

    func hold(_ build: String, chains: [String], blobs: [Digest]) {
        held.withLock {
            $0[build, default: ([], [])].chains.formUnion(chains)
            $0[build, default: ([], [])].blobs.formUnion(blobs)
        }
    }

    func release(_ build: String) { _ = held.withLock { $0.removeValue(forKey: build) } }

    var all: (chains: Set<String>, blobs: Set<Digest>) {
        held.withLock { leases in
            var chains = Set<String>()
            var blobs = Set<Digest>()
            for lease in leases.values {
                chains.formUnion(lease.chains)
                blobs.formUnion(lease.blobs)
            }
            return (chains, blobs)
        }
    }
}

extension ImageService {
    /// Keeps layers a running build uses from garbage collection until `releaseBuild`. Call it
    /// with `contentLock` held (for reading), in the same hold that found or made them.
    public func holdForBuild(_ build: String, chains: [String], blobs: [Digest]) {
        buildLeases.hold(build, chains: chains, blobs: blobs)
    }

    public func releaseBuild(_ build: String) { buildLeases.release(build) }

    /// The cached step with this key, if its layer blob and snapshot are still whole; a record
    /// whose parts are gone is dropped.
    public func cachedStep(_ key: String) -> BuildCacheRecord? {
        guard var record = try? database.read({ db in try BuildCacheRecord.fetchOne(db, key: key) }) else {
            return nil
        }
        guard let layer = record.layer, content.contains(layer.digest),
            (try? snapshotter.stat(record.chainID))?.kind == .committed
        else {
            _ = try? database.write { db in try BuildCacheRecord.deleteOne(db, key: key) }
            return nil
        }
        record.lastUsed = Int64(Date().timeIntervalSince1970)
        try? database.write { db in try record.update(db) }
        return record
    }

    /// Records a step's layer. Call with `contentLock` held for reading, in the same hold that
    /// committed the blob and the snapshot, so that garbage collection never sees them unowned.
    public func recordStep(_ record: BuildCacheRecord) throws {
        try database.write { db in try record.save(db) }
    }

    /// `atoll builder prune`: forgets cached steps (with `all`, every one; otherwise those whose
    /// layer no image uses) and collects what only they kept. Returns the records removed and the
    /// bytes reclaimed.
    public func pruneBuildCache(all: Bool) throws -> (entries: Int, reclaimed: Int64) {
        try contentLock.withWriteLock {
            let removed = try database.write { db in
                if all { return try BuildCacheRecord.deleteAll(db) }
                try db.execute(sql: "DELETE FROM build_cache WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)")
                return db.changesCount
            }
            return (removed, try collectGarbageLocked())
        }
    }

    /// Stores a built image: its config and an OCI manifest over `layers` (blobs already in the
    /// content store, their snapshots committed) and points `names` at it. Returns its record.
    public func storeBuilt(config: ImageConfig, layers: [Descriptor], names: [String]) throws -> ImageRecord {
        let normalized = try names.map { try ImageReference(parsing: $0).normalized }
        return try contentLock.withReadLock {
            let (configDigest, configSize) = try storeJSON(try config.canonicalJSON())
            let manifest = ImageManifest(
                mediaType: MediaType.ociManifest,
                config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: configSize),
                layers: layers)
            let (manifestDigest, manifestSize) = try storeJSON(try manifest.canonicalJSON())
            return try store(
                manifestDigest: manifestDigest, manifestMediaType: MediaType.ociManifest, manifestSize: manifestSize,
                manifest: manifest, config: config, names: normalized)
        }
    }
}

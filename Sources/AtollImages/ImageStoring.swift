import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import GRDB
import Synchronization

extension ImageService {
    /// Unpacks each layer of `manifest` into a committed snapshot named by its chain ID, reusing
    /// snapshots that exist (layers shared by images are unpacked once). Each layer's diff ID is
    /// checked against the config; a failed layer's snapshot is removed. Returns the chain IDs and
    /// the bytes the layers use.
    func unpack(manifest: ImageManifest, config: ImageConfig, early: EarlyUnpacker? = nil) throws -> (
        chains: [String], size: Int64
    ) {
        let diffIDs = config.rootfs.diffIDs
        guard diffIDs.count == manifest.layers.count else {
            throw AtollError.dataLoss(
                "image config lists \(diffIDs.count) layers but the manifest has \(manifest.layers.count)")
        }
        let chains = ChainID.chainIDs(diffIDs).map(\.description)
        let missing = chains.indices.filter { (try? snapshotter.stat(chains[$0]))?.kind != .committed }
        if snapshotter.canRebase && (missing.count > 1 || early != nil) {
            try unpackInParallel(missing, of: manifest.layers, diffIDs: diffIDs, chains: chains, early: early)
        } else {
            for index in missing {
                try unpackLayer(
                    manifest.layers[index], diffID: diffIDs[index], position: index + 1, chain: chains[index],
                    parent: index == 0 ? nil : chains[index - 1])
            }
        }
        let size = chains.reduce(Int64(0)) { $0 + layerSize($1) }
        return (chains, size)
    }

    /// Unpacks each missing layer into its own parentless snapshot, as many at once as there are
    /// cores (unpacking is bound by the kernel's file creation, which scales across cores), then
    /// commits them bottom-up, each rebased onto the layer below. Only for drivers that can rebase
    /// (overlay), where a layer's upper directory does not depend on what lies under it.
    private func unpackInParallel(
        _ missing: [Int], of layers: [Descriptor], diffIDs: [Digest], chains: [String], early: EarlyUnpacker?
    ) throws {
        var keys = missing.map { "extract-\(Identifier.random().prefix(12))-\(chains[$0])" }
        let failures = Mutex<[Int: any Error]>([:])
        let unpackedSizes = Mutex<[Int: Int64]>([:])
        @Sendable func check(_ applied: AppliedLayer, _ index: Int) throws {
            guard applied.diffID == diffIDs[index] else {
                throw AtollError.dataLoss(
                    "layer \(index + 1) (\(layers[index].digest)) unpacks to \(applied.diffID), but the image config says \(diffIDs[index])"
                )
            }
            unpackedSizes.withLock { $0[index] = applied.uncompressedSize }
        }
        // Layers the early unpacker already did (while the archive was read) are taken as they are.
        var remaining: [Int] = []
        for (slot, index) in missing.enumerated() {
            guard let done = early?.take(layers[index].digest) else {
                remaining.append(slot)
                continue
            }
            guard case .success(let applied) = done.result else {
                // An early unpack that failed is retried afresh: the failure may have been passing.
                try? snapshotter.remove(done.key)
                remaining.append(slot)
                continue
            }
            keys[slot] = done.key
            do { try check(applied, index) } catch { failures.withLock { $0[slot] = error } }
        }
        let pending = remaining
        let fixedKeys = keys
        DispatchQueue.concurrentPerform(iterations: pending.count) { i in
            let slot = pending[i]
            let index = missing[slot]
            do {
                try check(try unpackDetached(layers[index].digest, key: fixedKeys[slot]), index)
            } catch {
                failures.withLock { $0[slot] = error }
            }
        }
        let sizes = unpackedSizes.withLock { $0 }
        var committed = 0
        do {
            if let first = failures.withLock({ $0.min { $0.key < $1.key } }) { throw first.value }
            for (slot, index) in missing.enumerated() {
                let labels = [
                    Self.layerLabel: diffIDs[index].description, Self.layerSizeLabel: String(sizes[index] ?? 0),
                ]
                do {
                    if index == 0 {
                        try snapshotter.commit(chains[index], key: keys[slot], labels: labels)
                    } else {
                        try snapshotter.commit(
                            chains[index], key: keys[slot], labels: labels, rebasingOnto: chains[index - 1])
                    }
                } catch let error as AtollError where error.code == .alreadyExists {
                    try snapshotter.remove(keys[slot])  // another load unpacked the same layer first
                }
                committed = slot + 1
            }
        } catch {
            for key in keys[committed...] { try? snapshotter.remove(key) }
            throw error
        }
    }

    private func unpackLayer(_ layer: Descriptor, diffID: Digest, position: Int, chain: String, parent: String?) throws
    {
        let key = "extract-\(Identifier.random().prefix(12))-\(chain)"
        let started = ContinuousClock.now
        let mounts = try snapshotter.prepare(key, parent: parent, labels: [:])
        do {
            let applied = try Layer.apply(from: try content.open(layer.digest), to: mounts, limits: limits)
            logger.debug(
                "unpacked layer \(position) (\(applied.uncompressedSize) bytes) in \(ContinuousClock.now - started)")
            guard applied.diffID == diffID else {
                throw AtollError.dataLoss(
                    "layer \(position) (\(layer.digest)) unpacks to \(applied.diffID), but the image config says \(diffID)"
                )
            }
            do {
                try snapshotter.commit(
                    chain, key: key,
                    labels: [
                        Self.layerLabel: diffID.description, Self.layerSizeLabel: String(applied.uncompressedSize),
                    ])
            } catch let error as AtollError where error.code == .alreadyExists {
                try snapshotter.remove(key)  // another load unpacked the same layer first
            }
        } catch {
            try? snapshotter.remove(key)
            throw error
        }
    }

    /// Unpacks a layer blob into a new parentless snapshot `key`, with overlay whiteouts (for
    /// drivers that can rebase it onto its parent later). The snapshot stays on failure.
    func unpackDetached(_ digest: Digest, key: String) throws -> AppliedLayer {
        let started = ContinuousClock.now
        let mounts = try snapshotter.prepare(key, parent: nil, labels: [:])
        guard let directory = mounts.first?.source, mounts.count == 1, mounts[0].type == "bind" else {
            throw AtollError.internalError("snapshot \"\(key)\" is not a plain directory")
        }
        let applied = try Layer.apply(
            from: try content.open(digest), toDirectory: directory, whiteouts: .overlay(lowerDirectories: []),
            limits: limits)
        logger.debug("unpacked layer \(digest) (\(applied.uncompressedSize) bytes) in \(ContinuousClock.now - started)")
        return applied
    }

    /// A layer's size as lists show it: its uncompressed size, recorded on its snapshot when it was
    /// unpacked (cheap), or the snapshot's disk usage for a layer unpacked without the label.
    func layerSize(_ chain: String) -> Int64 {
        if let label = (try? snapshotter.stat(chain))?.labels[Self.layerSizeLabel], let size = Int64(label) {
            return size
        }
        return (try? snapshotter.usage(chain).size) ?? 0
    }

    /// Stores a manifest and config that are already in the content store as an image, with its
    /// layers unpacked, and points `names` (normalized references) at it — all or nothing.
    func store(
        manifestDigest: Digest, manifestMediaType: String, manifestSize: Int64, manifest: ImageManifest,
        config: ImageConfig, names: [String], early: EarlyUnpacker? = nil
    ) throws -> ImageRecord {
        // Every blob the image names must be here, whole, before the image may be recorded.
        for descriptor in [manifest.config] + manifest.layers {
            guard let info = try? content.info(descriptor.digest) else {
                throw AtollError.invalidArgument("the image names blob \(descriptor.digest), which was not provided")
            }
            guard info.size == descriptor.size else {
                throw AtollError.dataLoss(
                    "blob \(descriptor.digest) has \(info.size) bytes, but the manifest says \(descriptor.size)")
            }
        }
        let (chains, size) = try unpack(manifest: manifest, config: config, early: early)
        let record = ImageRecord(
            id: manifest.config.digest.description, manifestDigest: manifestDigest.description,
            manifestMediaType: manifestMediaType, manifestSize: manifestSize,
            created: Int64(config.createdDate?.timeIntervalSince1970 ?? 0), stored: Int64(Date().timeIntervalSince1970),
            size: size, topChainID: chains.last ?? "")
        try database.write { db in
            try record.save(db)
            try ImageLayerRecord.filter(Column("image_id") == record.id).deleteAll(db)
            for (position, chain) in chains.enumerated() {
                try ImageLayerRecord(imageID: record.id, position: position, chainID: chain).insert(db)
            }
            for name in names { try TagRecord(name: name, imageID: record.id).save(db) }
        }
        return record
    }

    /// Writes a value as canonical JSON into the content store; returns its descriptor parts.
    func storeJSON(_ bytes: [UInt8]) throws -> (Digest, Int64) {
        let stored = try content.ingest(bytes: bytes, expected: nil)
        return (stored.digest, stored.size)
    }
}

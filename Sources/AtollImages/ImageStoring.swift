import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import GRDB

extension ImageService {
    /// Unpacks each layer of `manifest` into a committed snapshot named by its chain ID, reusing
    /// snapshots that exist (layers shared by images are unpacked once). Each layer's diff ID is
    /// checked against the config; a failed layer's snapshot is removed. Returns the chain IDs and
    /// the bytes the layers use.
    func unpack(manifest: ImageManifest, config: ImageConfig) throws -> (chains: [String], size: Int64) {
        let diffIDs = config.rootfs.diffIDs
        guard diffIDs.count == manifest.layers.count else {
            throw AtollError.dataLoss(
                "image config lists \(diffIDs.count) layers but the manifest has \(manifest.layers.count)")
        }
        let chains = ChainID.chainIDs(diffIDs).map(\.description)
        var parent: String?
        var size: Int64 = 0
        for (index, layer) in manifest.layers.enumerated() {
            let chain = chains[index]
            if (try? snapshotter.stat(chain))?.kind != .committed {
                try unpackLayer(layer, diffID: diffIDs[index], position: index + 1, chain: chain, parent: parent)
            }
            size += (try? snapshotter.usage(chain).size) ?? 0
            parent = chain
        }
        return (chains, size)
    }

    private func unpackLayer(_ layer: Descriptor, diffID: Digest, position: Int, chain: String, parent: String?) throws {
        let key = "extract-\(Identifier.random().prefix(12))-\(chain)"
        let mounts = try snapshotter.prepare(key, parent: parent, labels: [:])
        do {
            let applied = try Layer.apply(from: try content.open(layer.digest), to: mounts, limits: limits)
            guard applied.diffID == diffID else {
                throw AtollError.dataLoss(
                    "layer \(position) (\(layer.digest)) unpacks to \(applied.diffID), but the image config says \(diffID)")
            }
            do {
                try snapshotter.commit(chain, key: key, labels: [Self.layerLabel: diffID.description])
            } catch let error as AtollError where error.code == .alreadyExists {
                try snapshotter.remove(key)  // another load unpacked the same layer first
            }
        } catch {
            try? snapshotter.remove(key)
            throw error
        }
    }

    /// Stores a manifest and config that are already in the content store as an image, with its
    /// layers unpacked, and points `names` (normalized references) at it — all or nothing.
    func store(
        manifestDigest: Digest, manifestMediaType: String, manifestSize: Int64, manifest: ImageManifest,
        config: ImageConfig, names: [String]
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
        let (chains, size) = try unpack(manifest: manifest, config: config)
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

import AtollCore
import AtollOCI
import AtollStorage
import Foundation

extension ImageService {
    /// `docker import`: a root file-system tarball (plain, gzip or zstd) read from `source`
    /// becomes a one-layer image; `changes` are Dockerfile instructions applied to its config.
    /// Returns the new image's ID. Nothing is recorded unless every step succeeds; `upload`, when
    /// given, is asked whether the stream really ended before anything is applied.
    public func importRootfs(
        from source: FileDescriptor, reference: String?, changes: [String], message: String, platform: Platform?,
        upload: UploadStatus? = nil
    ) throws -> String {
        let name = try reference.flatMap { $0.isEmpty ? nil : try ImageReference(parsing: $0) }
        if let name, name.digest != nil {
            throw AtollError.invalidArgument("cannot import as \"\(reference ?? "")\": a digest cannot be a tag")
        }
        let runConfig = try ConfigChange.apply(changes, to: ImageConfig.Config())
        let target = platform ?? self.platform

        var succeeded = false
        defer { if !succeeded { _ = try? collectGarbage() } }  // the ingested tarball, if it failed
        let id = try contentLock.withReadLock {
            let (layerDigest, layerSize, compression) = try ingestLayer(from: source)
            try upload?.ensureComplete("the tarball")
            let key = "import-\(Identifier.random().prefix(12))"
            let mounts = try snapshotter.prepare(key, parent: nil, labels: [:])
            let applied: AppliedLayer
            do {
                applied = try Layer.apply(from: try content.open(layerDigest), to: mounts, limits: limits)
                do {
                    try snapshotter.commit(
                        applied.diffID.description, key: key,
                        labels: [
                            Self.layerLabel: applied.diffID.description,
                            Self.layerSizeLabel: String(applied.uncompressedSize),
                        ])
                } catch let error as AtollError where error.code == .alreadyExists {
                    try snapshotter.remove(key)
                }
            } catch {
                try? snapshotter.remove(key)
                // Keep the cause's own code where it is about the host (a full disk), not the input.
                let code =
                    (error as? AtollError).map {
                        $0.code == .internalError || $0.code == .resourceExhausted ? $0.code : .invalidArgument
                    } ?? .invalidArgument
                throw AtollError(code, "cannot import the tarball", cause: error)
            }

            let now = ISO8601DateFormatter().string(from: Date())
            let config = ImageConfig(
                created: now, architecture: target.architecture, os: target.os, variant: target.variant,
                config: runConfig, rootfs: ImageConfig.RootFS(diffIDs: [applied.diffID]),
                history: [
                    ImageConfig.History(
                        created: now, createdBy: "atoll import", comment: message.isEmpty ? nil : message)
                ])
            let configBytes = try config.canonicalJSON()
            let (configDigest, configSize) = try storeJSON(configBytes)
            let manifest = ImageManifest(
                mediaType: MediaType.ociManifest,
                config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: configSize),
                layers: [
                    Descriptor(
                        mediaType: MediaType.ociLayer(compression: compression), digest: layerDigest, size: layerSize)
                ])
            let manifestBytes = try manifest.canonicalJSON()
            let (manifestDigest, manifestSize) = try storeJSON(manifestBytes)
            let record = try store(
                manifestDigest: manifestDigest, manifestMediaType: MediaType.ociManifest, manifestSize: manifestSize,
                manifest: manifest, config: config, names: name.map { [$0.normalized] } ?? [])
            return record.id
        }
        succeeded = true
        return id
    }

    /// Copies a layer stream into the content store, noting its compression from its first bytes.
    func ingestLayer(from source: FileDescriptor) throws -> (Digest, Int64, LayerCompression) {
        let writer = try content.writer(expected: nil, expectedSize: nil)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var compression: LayerCompression?
        while true {
            let n = try source.read(into: buffer)
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            if compression == nil { compression = LayerCompression.detect(Array(chunk.prefix(4))) }
            try writer.write(chunk)
        }
        guard let compression else {
            writer.abort()
            throw AtollError.invalidArgument("cannot import: the tarball is empty")
        }
        let stored = try writer.commit()
        return (stored.digest, stored.size, compression)
    }
}

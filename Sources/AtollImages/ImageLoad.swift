import AtollCore
import AtollOCI
import AtollStorage
import Foundation

/// An image `load` stored: the name the archive gave it (familiar form, may be empty) and its ID.
public struct LoadedImage: Sendable, Equatable {
    public var reference: String
    public var imageID: String
}

extension ImageService {
    /// `docker load`: reads a docker-save archive (legacy or OCI-style) or an OCI image layout, as
    /// a tar stream (plain, gzip or zstd), stores every image in it and unpacks their layers.
    /// Blobs stream straight into the content store as the archive is read; every digest is
    /// verified before anything is recorded.
    /// `upload`, when given, is asked whether the stream really ended before anything is stored.
    public func load(from source: FileDescriptor, upload: UploadStatus? = nil) throws -> [LoadedImage] {
        // Blobs the archive brought that no image uses (a failed load's, another platform's) are
        // collected after; a load whose every blob is used skips the collection and its lock.
        var needsCollection = true
        defer { if needsCollection { _ = try? collectGarbage() } }
        return try contentLock.withReadLock {
            let started = ContinuousClock.now
            let early = snapshotter.canRebase ? EarlyUnpacker(service: self) : nil
            defer { early?.discardUnused() }
            let archive = try ArchiveContents.read(from: source, into: content) { digest, prefix in
                early?.offer(digest, prefix: prefix)
            }
            try upload?.ensureComplete("the archive")
            early?.wait()
            logger.debug("load: read the archive (\(archive.blobs.count) blobs) in \(ContinuousClock.now - started)")
            let loaded: [LoadedImage]
            if let index = archive.metadata["index.json"] {
                loaded = try loadOCILayout(index: index, archive: archive, early: early)
            } else if let manifest = archive.metadata["manifest.json"] {
                loaded = try loadDockerArchive(manifest: manifest, archive: archive, early: early)
            } else {
                throw AtollError.invalidArgument(
                    "the archive holds neither manifest.json nor index.json: it is not a docker-save archive or an OCI image layout"
                )
            }
            let ids = Set(loaded.map(\.imageID))
            needsCollection = (try? unused(archive.blobs.values.map(\.0), by: ids).isEmpty) != true
            return loaded
        }
    }

    /// The digests among `blobs` that none of the images `ids` names (manifest, config, layers).
    private func unused(_ blobs: [Digest], by ids: Set<String>) throws -> Set<Digest> {
        var left = Set(blobs)
        for id in ids {
            let image = try resolve(id)
            left.remove(try Digest(parsing: image.manifestDigest))
            let (manifest, _, _, _) = try manifestAndConfig(of: image)
            left.remove(manifest.config.digest)
            for layer in manifest.layers { left.remove(layer.digest) }
        }
        return left
    }

    private func loadOCILayout(index indexBytes: [UInt8], archive: ArchiveContents, early: EarlyUnpacker?) throws
        -> [LoadedImage]
    {
        guard case .index(let index) = try ManifestDocument.parse(data: indexBytes, declaredMediaType: nil) else {
            throw AtollError.invalidArgument("index.json in the archive is not an image index")
        }
        var loaded: [LoadedImage] = []
        for descriptor in Self.preferHostPlatform(index.manifests, platform: platform) {
            let name = Self.name(fromAnnotations: descriptor.annotations ?? [:])
            let (manifestDescriptor, manifest, manifestBytes) = try resolveManifest(descriptor, archive: archive)
            let config = try readConfig(manifest.config.digest)
            let record = try store(
                manifestDigest: manifestDescriptor.digest, manifestMediaType: manifestDescriptor.mediaType,
                manifestSize: Int64(manifestBytes.count), manifest: manifest, config: config,
                names: name.map { [$0.normalized] } ?? [], early: early)
            loaded.append(LoadedImage(reference: name?.familiar ?? "", imageID: record.id))
        }
        return loaded
    }

    /// Follows an index entry down to the manifest for this host's platform.
    private func resolveManifest(_ descriptor: Descriptor, archive: ArchiveContents) throws -> (
        Descriptor, ImageManifest, [UInt8]
    ) {
        var current = descriptor
        for _ in 0..<4 {
            guard content.contains(current.digest) else {
                throw AtollError.invalidArgument("the archive lacks blob \(current.digest) (\(current.mediaType))")
            }
            let bytes = try content.read(current.digest, limit: ManifestDocument.maximumSize)
            switch try ManifestDocument.parse(data: bytes, declaredMediaType: current.mediaType) {
            case .manifest(let manifest): return (current, manifest, bytes)
            case .index(let nested): current = try nested.select(platform: platform)
            }
        }
        throw AtollError.invalidArgument("image indexes in the archive nest too deeply")
    }

    private func loadDockerArchive(manifest manifestBytes: [UInt8], archive: ArchiveContents, early: EarlyUnpacker?)
        throws -> [LoadedImage]
    {
        let entries: [DockerArchiveManifestEntry]
        do {
            entries = try DockerArchiveManifestEntry.parseList(data: manifestBytes)
        } catch {
            throw AtollError.invalidArgument("manifest.json in the archive is malformed", cause: error)
        }
        var loaded: [LoadedImage] = []
        for entry in entries {
            let (configDigest, configSize) = try archive.blob(at: entry.config)
            let config = try readConfig(configDigest)
            var layers: [Descriptor] = []
            for path in entry.layers {
                let (digest, size) = try archive.blob(at: path)
                layers.append(
                    Descriptor(
                        mediaType: MediaType.ociLayer(compression: try compression(of: digest)), digest: digest,
                        size: size))
            }
            // Docker archives carry no manifest: write the OCI manifest Docker would push.
            let manifest = ImageManifest(
                mediaType: MediaType.ociManifest,
                config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: configSize),
                layers: layers)
            let bytes = try manifest.canonicalJSON()
            let (manifestDigest, manifestSize) = try storeJSON(bytes)
            let names = try entry.repoTags.map { tag in
                let reference: ImageReference
                do { reference = try ImageReference(parsing: tag) } catch {
                    throw AtollError(
                        .invalidArgument, "manifest.json in the archive names an invalid tag \"\(tag)\"", cause: error)
                }
                guard reference.digest == nil else {
                    throw AtollError.invalidArgument(
                        "manifest.json in the archive names \"\(tag)\": a digest cannot be a tag")
                }
                return reference
            }
            let record = try store(
                manifestDigest: manifestDigest, manifestMediaType: MediaType.ociManifest, manifestSize: manifestSize,
                manifest: manifest, config: config, names: names.map(\.normalized), early: early)
            if names.isEmpty { loaded.append(LoadedImage(reference: "", imageID: record.id)) }
            for name in names { loaded.append(LoadedImage(reference: name.familiar, imageID: record.id)) }
        }
        return loaded
    }

    func readConfig(_ digest: Digest) throws -> ImageConfig {
        let bytes = try content.read(digest, limit: ManifestDocument.maximumSize)
        do {
            return try ImageConfig.parse(data: bytes)
        } catch {
            throw AtollError(.invalidArgument, "image config \(digest) is malformed", cause: error)
        }
    }

    private func compression(of digest: Digest) throws -> LayerCompression {
        let fd = try content.open(digest)
        var magic = [UInt8](repeating: 0, count: 4)
        let n = try magic.withUnsafeMutableBytes { try fd.read(into: $0) }
        return LayerCompression.detect(Array(magic.prefix(n)))
    }

    /// Where several top-level entries carry the same name (one per platform), keeps the one that
    /// suits this host best; unnamed entries and single entries are all kept.
    static func preferHostPlatform(_ descriptors: [Descriptor], platform: Platform) -> [Descriptor] {
        let matcher = PlatformMatcher(platform)
        var byName: [String: [Descriptor]] = [:]
        for descriptor in descriptors {
            if let name = name(fromAnnotations: descriptor.annotations ?? [:]) {
                byName[name.normalized, default: []].append(descriptor)
            }
        }
        return descriptors.filter { descriptor in
            guard let name = name(fromAnnotations: descriptor.annotations ?? [:]),
                let group = byName[name.normalized], group.count > 1
            else { return true }
            guard let best = matcher.bestIndex(group.map(\.platform)) else { return descriptor == group.first }
            return descriptor == group[best]
        }
    }

    /// The image name an OCI layout's annotations give, if they give a full one.
    static func name(fromAnnotations annotations: [String: String]) -> ImageReference? {
        for key in [Annotation.containerdImageName, Annotation.refName] {
            if let value = annotations[key], value.contains(":") || value.contains("/"),
                let reference = try? ImageReference(parsing: value), reference.digest == nil
            {
                return reference
            }
        }
        return nil
    }
}

/// What reading an image archive left behind: blobs by archive path (in the content store) and
/// the small metadata files in memory.
struct ArchiveContents {
    var blobs: [String: (Digest, Int64)] = [:]
    var links: [String: String] = [:]
    var metadata: [String: [UInt8]] = [:]

    static let metadataFiles: Set<String> = ["manifest.json", "index.json", "oci-layout", "repositories"]

    /// Streams the archive: metadata files into memory, everything else into the content store
    /// (blobs/sha256/<hex> verified against their names as they are written).
    /// `stored` hears of each blob written, with its first bytes.
    static func read(
        from source: FileDescriptor, into content: ContentStore, stored: (Digest, [UInt8]) -> Void = { _, _ in }
    ) throws -> ArchiveContents {
        let reader = try ArchiveFileReader(reading: source)
        var result = ArchiveContents()
        while let entry = try reader.next() {
            switch entry.type {
            case .symlink(let target):
                let directory = entry.path.split(separator: "/").dropLast().joined(separator: "/")
                result.links[entry.path] = ArchiveFileReader.clean(target, relativeTo: directory)
            case .hardlink(let target):
                result.links[entry.path] = target
            case .file:
                if metadataFiles.contains(entry.path) {
                    result.metadata[entry.path] = try reader.readAll(
                        limit: ManifestDocument.maximumSize, name: entry.path)
                    continue
                }
                let last = entry.path.split(separator: "/").last ?? ""
                if last == "VERSION" || (last == "json" && entry.path.contains("/")) { continue }  // legacy v1 metadata
                let parts = entry.path.split(separator: "/")
                if parts.count == 3, parts[0] == "blobs", parts[1] == "sha256" {
                    let digest: Digest
                    do { digest = try Digest(hex: String(parts[2])) } catch {
                        throw AtollError.invalidArgument(
                            "the archive holds a blob with an invalid name \"\(entry.path)\"")
                    }
                    var prefix: [UInt8] = []
                    let blob = try content.ingest(expected: digest, expectedSize: entry.size) { writer in
                        try reader.readData { chunk in
                            if prefix.count < 512 { prefix += chunk.prefix(512 - prefix.count) }
                            try writer.write(chunk)
                        }
                    }
                    result.blobs[entry.path] = (blob.digest, blob.size)
                    stored(blob.digest, prefix)
                } else {
                    let writer = try content.writer(expected: nil, expectedSize: entry.size)
                    do {
                        var prefix: [UInt8] = []
                        try reader.readData { chunk in
                            if prefix.count < 512 { prefix += chunk.prefix(512 - prefix.count) }
                            try writer.write(chunk)
                        }
                        let blob = try writer.commit()
                        result.blobs[entry.path] = (blob.digest, blob.size)
                        stored(blob.digest, prefix)
                    } catch {
                        writer.abort()
                        throw error
                    }
                }
            case .directory, .other:
                continue
            }
        }
        return result
    }

    /// The blob stored for an archive path, following links inside the archive.
    func blob(at path: String) throws -> (Digest, Int64) {
        var current = ArchiveFileReader.clean(path)
        for _ in 0..<16 {
            if let blob = blobs[current] { return blob }
            guard let next = links[current] else { break }
            current = next
        }
        throw AtollError.invalidArgument(
            "the archive's manifest.json names \"\(path)\", which the archive does not hold")
    }
}

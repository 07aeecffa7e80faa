import AtollCore
import AtollOCI
import AtollStorage
import Foundation
import GRDB

extension ImageService {
    /// `docker save`: writes the images as one tar that is at once an OCI image layout
    /// (oci-layout, index.json, blobs/sha256/…) and a docker-save archive (manifest.json), the
    /// shape Docker 25 writes, so `docker load`, `podman load` and OCI tools all accept it.
    /// Names given by tag carry that tag; images given by ID carry none, as in Docker.
    public func save(_ references: [String], to output: FileDescriptor) throws {
        guard !references.isEmpty else { throw AtollError.invalidArgument("save needs at least one image") }
        struct Entry {
            var image: ImageRecord
            var names: [ImageReference]
        }
        // Under the content lock, read the manifests and open every blob: a collection that runs
        // while the archive streams out cannot take a blob away (an open file stays readable).
        var blobs: [(digest: Digest, size: Int64, file: FileDescriptor)] = []
        var indexEntries: [Descriptor] = []
        var dockerEntries: [DockerArchiveManifestEntry] = []
        try contentLock.withReadLock {
            var entries: [Entry] = []
            try database.read { db in
                for reference in references {
                    let image = try Self.resolve(reference, in: db)
                    let parsed = try? ImageReference(parsing: reference)
                    let isName = try parsed.map { try TagRecord.fetchOne(db, key: $0.normalized) != nil } ?? false
                    let names = isName ? [parsed].compactMap { $0 } : []
                    if let existing = entries.firstIndex(where: { $0.image.id == image.id }) {
                        entries[existing].names += names
                    } else {
                        entries.append(Entry(image: image, names: names))
                    }
                }
            }
            var opened = Set<Digest>()
            func open(_ digest: Digest, size: Int64) throws {
                guard opened.insert(digest).inserted else { return }
                blobs.append((digest, size, try content.open(digest)))
            }
            for entry in entries {
                let (manifest, _, _, _) = try manifestAndConfig(of: entry.image)
                let manifestDigest = try Digest(parsing: entry.image.manifestDigest)
                try open(manifestDigest, size: entry.image.manifestSize)
                try open(manifest.config.digest, size: manifest.config.size)
                for layer in manifest.layers { try open(layer.digest, size: layer.size) }
                let descriptor = Descriptor(
                    mediaType: entry.image.manifestMediaType, digest: manifestDigest, size: entry.image.manifestSize)
                if entry.names.isEmpty { indexEntries.append(descriptor) }
                for name in entry.names {
                    var named = descriptor
                    named.annotations = [
                        Annotation.containerdImageName: name.normalized, Annotation.refName: name.tag ?? "latest",
                    ]
                    indexEntries.append(named)
                }
                dockerEntries.append(
                    DockerArchiveManifestEntry(
                        config: "blobs/sha256/\(manifest.config.digest.hex)",
                        repoTags: entry.names.map(\.familiar),
                        layers: manifest.layers.map { "blobs/sha256/\($0.digest.hex)" }))
            }
        }
        let writer = try ArchiveFileWriter(writing: output)
        try writer.addDirectory("blobs")
        try writer.addDirectory("blobs/sha256")
        for blob in blobs { try writer.addFile("blobs/sha256/\(blob.digest.hex)", size: blob.size, from: blob.file) }
        let index = ImageIndex(mediaType: MediaType.ociIndex, manifests: indexEntries)
        try writer.addFile("index.json", bytes: try index.canonicalJSON())
        try writer.addFile("oci-layout", bytes: Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        try writer.addFile("manifest.json", bytes: try DockerArchiveManifestEntry.encodeList(dockerEntries))
        try writer.finish()
    }
}

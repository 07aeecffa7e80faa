import AtollCore
import AtollOCI
import AtollStorage
import Foundation

/// What a pull reports as it goes (a layer's bytes, a layer's end, the image).
public enum PullEvent: Sendable {
    /// The manifest chosen (after platform selection) and the layers it needs.
    case resolved(manifest: Digest, layers: [Descriptor])
    /// A layer (or the config) already in the content store: nothing to fetch.
    case present(Digest)
    case progress(Digest, received: Int64, total: Int64)
    case fetched(Digest)
    /// Pushed without sending it: mounted from another repository of the same registry.
    case mounted(Digest, from: String)
    case stored(ImageRecord)
}

extension ImageService {
    /// The most blobs fetched at once.
    static let concurrentFetches = 3

    /// `atoll pull`: resolves the reference (an index to this host's platform, or `platform`),
    /// fetches what the content store lacks — concurrently, each blob verified against its
    /// digest and size while it streams — then unpacks and records the image and its name.
    /// Nothing is recorded unless every blob arrived whole.
    /// The registry's mirrors are tried first, in order; the registry itself when none has it.
    public func pull(
        _ text: String, platform requested: Platform? = nil, access: RegistryAccess,
        credentials: RegistryCredentials?, events: @escaping @Sendable (PullEvent) -> Void
    ) async throws -> ImageRecord {
        var reference = try ImageReference(parsing: text)
        if reference.tag == nil && reference.digest == nil {
            reference = try reference.withTag(ImageReference.defaultTag)
        }
        for mirror in access.mirrors[reference.domain] ?? [] {
            do {
                let source = try ImageReference(
                    domain: mirror, path: reference.path, tag: reference.tag, digest: reference.digest)
                return try await pull(
                    reference, from: source, platform: requested, access: access, credentials: nil, events: events)
            } catch {
                if Task.isCancelled { throw error }
                logger.info("pull of \(text) from mirror \(mirror) failed, trying the next source: \(error)")
            }
        }
        return try await pull(
            reference, from: reference, platform: requested, access: access, credentials: credentials, events: events)
    }

    /// Pulls `reference` from `source` (itself, or the same repository on a mirror).
    private func pull(
        _ reference: ImageReference, from source: ImageReference, platform requested: Platform?,
        access: RegistryAccess, credentials: RegistryCredentials?, events: @escaping @Sendable (PullEvent) -> Void
    ) async throws -> ImageRecord {
        let text = reference.normalized
        let client = DistributionClient(reference: source, access: access, credentials: credentials)
        let platform = requested ?? self.platform

        // Manifest (through an index when there is one), each verified when named by digest.
        var wanted = reference.digest?.description ?? reference.tag ?? ImageReference.defaultTag
        var expectedDigest = reference.digest
        var resolved: (digest: Digest, mediaType: String, bytes: [UInt8], manifest: ImageManifest)?
        for _ in 0..<4 {
            let (bytes, served) = try await client.manifest(wanted)
            let digest = Digest.sha256(of: bytes)
            if let expectedDigest, digest != expectedDigest {
                throw AtollError.dataLoss("the registry sent a manifest with digest \(digest), not \(expectedDigest)")
            }
            let document = try ManifestDocument.parse(data: bytes, declaredMediaType: served)
            switch document {
            case .manifest(let manifest):
                resolved = (digest, document.mediaType, bytes, manifest)
            case .index(let index):
                let chosen = try index.select(platform: platform)
                wanted = chosen.digest.description
                expectedDigest = chosen.digest
                continue
            }
            break
        }
        guard let resolved else { throw AtollError.invalidArgument("image indexes of \(text) nest too deeply") }
        events(.resolved(manifest: resolved.digest, layers: resolved.manifest.layers))

        for attempt in 0..<2 {
            try await fetchMissing(
                [resolved.manifest.config] + resolved.manifest.layers, client: client, events: events)
            let config = try ImageConfig.parse(data: try content.read(resolved.manifest.config.digest))
            do {
                // Under the collection lock: a collection cannot take the blobs between their
                // arrival and the image that keeps them.
                let record = try contentLock.withReadLock {
                    if !content.contains(resolved.digest) {
                        try content.ingest(bytes: resolved.bytes, expected: resolved.digest)
                    }
                    return try store(
                        manifestDigest: resolved.digest, manifestMediaType: resolved.mediaType,
                        manifestSize: Int64(resolved.bytes.count), manifest: resolved.manifest, config: config,
                        names: reference.digest == nil ? [reference.normalized] : [])
                }
                recordSources(
                    ([resolved.manifest.config] + resolved.manifest.layers).map(\.digest), registry: source.domain,
                    repository: source.path)
                events(.stored(record))
                return record
            } catch let error as AtollError where error.code == .invalidArgument && attempt == 0 {
                // A blob vanished to a collection between the fetch and the store: fetch again.
                logger.info("pull of \(text): \(error); fetching again")
            }
        }
        throw AtollError.internalError("pull of \(text) failed: blobs kept disappearing")
    }

    /// Fetches the blobs the content store lacks, at most `concurrentFetches` at once.
    private func fetchMissing(
        _ descriptors: [Descriptor], client: DistributionClient, events: @escaping @Sendable (PullEvent) -> Void
    ) async throws {
        var missing: [Descriptor] = []
        var seen = Set<Digest>()
        for descriptor in descriptors where seen.insert(descriptor.digest).inserted {
            if let info = try? content.info(descriptor.digest), info.size == descriptor.size {
                events(.present(descriptor.digest))
            } else {
                if let urls = descriptor.urls, !urls.isEmpty {
                    throw AtollError(.unsupported, "layer \(descriptor.digest) is a foreign layer (urls): not pulled")
                }
                missing.append(descriptor)
            }
        }
        let content = self.content
        try await Self.transfer(missing) { descriptor in
            try await client.fetchBlob(descriptor, into: content) { received in
                events(.progress(descriptor.digest, received: received, total: descriptor.size))
            }
            events(.fetched(descriptor.digest))
        }
    }
}

extension ImageService {
    /// Runs `body` for each blob, at most `concurrentFetches` at once; the first failure ends it.
    static func transfer(
        _ blobs: [Descriptor], _ body: @escaping @Sendable (Descriptor) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < min(concurrentFetches, blobs.count) {
                let blob = blobs[next]
                group.addTask { try await body(blob) }
                next += 1
            }
            while next < blobs.count, try await group.next() != nil {
                let blob = blobs[next]
                group.addTask { try await body(blob) }
                next += 1
            }
            // Unlike next(), leaving the group would drop the errors of the tasks still running.
            try await group.waitForAll()
        }
    }

    /// `atoll push NAME[:TAG]`: uploads what the repository lacks (config and layers, checked
    /// with HEAD first), then the manifest under the tag. Returns the manifest's digest.
    public func push(
        _ text: String, access: RegistryAccess, credentials: RegistryCredentials?,
        events: @escaping @Sendable (PullEvent) -> Void
    ) async throws -> Digest {
        var reference = try ImageReference(parsing: text)
        guard reference.digest == nil else {
            throw AtollError.invalidArgument("push takes NAME[:TAG], not a digest: \(text)")
        }
        if reference.tag == nil { reference = try reference.withTag(ImageReference.defaultTag) }
        let image = try resolve(reference.normalized)
        let (manifest, _, manifestBytes, _) = try manifestAndConfig(of: image)
        let digest = try Digest(parsing: image.manifestDigest)
        events(.resolved(manifest: digest, layers: manifest.layers))
        let content = self.content
        var seen = Set<Digest>()
        let blobs = ([manifest.config] + manifest.layers).filter { seen.insert($0.digest).inserted }
        let sources = try blobSources(blobs.map(\.digest), registry: reference.domain, except: reference.path)
            .mapValues { Array($0.prefix(Self.mountAttempts)) }
        var mountSources = Set<String>()
        let client = DistributionClient(
            reference: reference, access: access, credentials: credentials, scopeActions: "pull,push",
            mountSources: sources.values.flatMap { $0 }.filter { mountSources.insert($0).inserted })
        try await Self.transfer(blobs) { descriptor in
            if try await client.hasBlob(descriptor.digest) {
                events(.present(descriptor.digest))
                return
            }
            for repository in sources[descriptor.digest] ?? []
            where try await client.mountBlob(descriptor.digest, from: repository) {
                events(.mounted(descriptor.digest, from: repository))
                return
            }
            try await client.uploadBlob(descriptor, from: content) { sent in
                events(.progress(descriptor.digest, received: sent, total: descriptor.size))
            }
            events(.fetched(descriptor.digest))
        }
        let pushed = try await client.putManifest(
            manifestBytes, mediaType: image.manifestMediaType, tag: reference.tag ?? ImageReference.defaultTag)
        if let pushed, pushed != digest.description {
            throw AtollError.dataLoss("the registry recorded the manifest as \(pushed), not \(digest)")
        }
        recordSources(blobs.map(\.digest), registry: reference.domain, repository: reference.path)
        return digest
    }
}

extension ImageService {
    /// `atoll login`: checks credentials against a registry as `docker login` does (its API
    /// root, the challenge answered with them). Returns the registry's domain, which credentials
    /// are stored under.
    public func login(server: String?, access: RegistryAccess, credentials: RegistryCredentials) async throws
        -> String
    {
        let domain = try ImageReference.registryDomain(ofServer: server)
        try await DistributionClient(registry: domain, access: access, credentials: credentials).login()
        return domain
    }
}

extension ImageService {
    /// How many repositories a push tries to mount a blob from before uploading it.
    static let mountAttempts = 3

    /// Remembers that a registry's repository holds these blobs (after a pull or a push).
    /// Best effort: losing the record only costs a later upload.
    func recordSources(_ digests: [Digest], registry: String, repository: String) {
        _ = try? database.write { db in
            for digest in digests {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO blob_sources (digest, registry, repository) VALUES (?, ?, ?)",
                    arguments: [digest.description, registry, repository])
            }
        }
    }

    /// Other repositories of `registry` known to hold each blob.
    func blobSources(_ digests: [Digest], registry: String, except repository: String) throws -> [Digest: [String]] {
        try database.read { db in
            var sources: [Digest: [String]] = [:]
            for digest in digests {
                sources[digest] = try String.fetchAll(
                    db,
                    sql: "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ? AND repository != ?",
                    arguments: [digest.description, registry, repository])
            }
            return sources
        }
    }
}

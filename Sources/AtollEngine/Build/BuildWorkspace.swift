import AtollCore
import AtollImages
import AtollOCI
import AtollStorage
import Foundation
import Glibc
import Synchronization

/// One build's scratch space: the snapshots its steps write in, where they are mounted, and the
/// turning of a finished step into a layer. Everything it made and did not commit goes with
/// `close()`, also when the build fails or is cancelled.
public final class BuildWorkspace: Sendable {
    let id: String
    let directory: String
    let images: ImageService
    let snapshotter: any Snapshotter
    let content: ContentStore
    private let active = Mutex<Set<String>>([])
    private let counter = Atomic<Int>(0)

    init(root: String, images: ImageService, snapshotter: any Snapshotter, content: ContentStore) throws {
        id = String(Identifier.random().prefix(12))
        directory = "\(root)/builds/\(id)"
        self.images = images
        self.snapshotter = snapshotter
        self.content = content
        try Syscall.mkdirAll(directory, mode: 0o700)
    }

    /// A fresh name for a step's directory or snapshot.
    func nextName(_ prefix: String) -> String {
        "\(prefix)-\(id)-\(counter.add(1, ordering: .relaxed).newValue)"
    }

    /// A writable snapshot over `parent` (a committed chain ID; nil for an empty tree).
    func prepare(parent: String?) throws -> String {
        let key = nextName("build")
        _ = try snapshotter.prepare(key, parent: parent, labels: ["atoll.build": id])
        active.withLock { _ = $0.insert(key) }
        return key
    }

    /// A read-only view of `parent` (for COPY --from).
    func view(of parent: String?) throws -> String {
        let key = nextName("build-view")
        _ = try snapshotter.view(key, parent: parent, labels: ["atoll.build": id])
        active.withLock { _ = $0.insert(key) }
        return key
    }

    /// Removes a snapshot the build no longer needs; one that cannot be removed now stays on
    /// the list for `close()` to retry.
    func discard(_ key: String) {
        guard (try? snapshotter.remove(key)) != nil else { return }
        active.withLock { _ = $0.remove(key) }
    }

    /// Runs `body` with the snapshot `key` mounted on a directory of its own, unmounted after.
    func withMounted<T>(_ key: String, _ body: (String) throws -> T) throws -> T {
        let target = "\(directory)/\(nextName("root"))"
        try Syscall.mkdir(target, mode: 0o755)
        defer {
            try? Mount.unmountAll(at: target)
            rmdir(target)
        }
        let mounts = try snapshotter.mounts(key)
        for mount in mounts { try mount.mount(at: target) }
        return try body(target)
    }

    /// Turns the writable snapshot `key` into a layer over `state`: writes its changes as a
    /// gzip layer into the content store, commits the snapshot under the new chain ID and records
    /// the step in the build cache under `cacheKey` — all under the content lock, so that garbage
    /// collection never sees the blob or the snapshot unowned.
    func commit(_ key: String, over state: inout ImageState, cacheKey: Digest, createdBy: String) throws {
        let created = RFC3339.now()
        // The diff is written into the ingest directory first (garbage collection leaves it
        // alone), so the content lock is held only for the moves and records.
        let temporary = "\(content.ingestDirectory)/\(nextName("layer"))"
        let applied: AppliedLayer
        do {
            let file = try Syscall.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
            defer { file.close() }
            applied = try diff(key, parent: state.topChain, to: file)
        } catch {
            unlink(temporary)
            throw error
        }
        defer { unlink(temporary) }  // gone already once adopted
        try images.contentLock.withReadLock {
            let blob = try content.adopt(temporary, as: applied.compressedDigest)
            let layer = Descriptor(mediaType: MediaType.ociLayerGzip, digest: blob.digest, size: blob.size)
            let chain = ChainID.chainID(state.config.rootfs.diffIDs + [applied.diffID])?.description ?? ""
            do {
                try snapshotter.commit(
                    chain, key: key,
                    labels: [
                        ImageService.layerLabel: applied.diffID.description,
                        ImageService.layerSizeLabel: String(applied.uncompressedSize),
                    ])
            } catch let error as AtollError where error.code == .alreadyExists {
                try snapshotter.remove(key)  // the same layer over the same parent exists: use it
            }
            active.withLock { _ = $0.remove(key) }
            try images.recordStep(
                BuildCacheRecord(
                    key: cacheKey.description, chainID: chain, diffID: applied.diffID, layer: layer, created: created))
            state.addLayer(layer, diffID: applied.diffID, chain: chain, created: created, createdBy: createdBy)
            hold(state)
        }
    }

    /// Writes the changes of the snapshot `key` over `parent`.
    private func diff(_ key: String, parent: String?, to output: FileDescriptor) throws -> AppliedLayer {
        let upper = try snapshotter.mounts(key)
        if upper.first?.type == "overlay" {
            return try Layer.diff(lower: [], upper: upper, to: output, compression: .gzip)
        }
        // The native driver keeps whole trees: compare with a view of the parent.
        guard let parent else { return try Layer.diff(lower: [], upper: upper, to: output, compression: .gzip) }
        let view = try self.view(of: parent)
        defer { discard(view) }
        return try Layer.diff(lower: try snapshotter.mounts(view), upper: upper, to: output, compression: .gzip)
    }

    /// Keeps the layers of `state` from garbage collection while the build runs. Call it with
    /// the content lock held, in the same hold that found or made them.
    func hold(_ state: ImageState) {
        images.holdForBuild(
            id, chains: ChainID.chainIDs(state.config.rootfs.diffIDs).map(\.description),
            blobs: state.layers.map(\.digest))
    }

    /// Removes every snapshot and directory the build made and did not commit.
    func close() {
        images.releaseBuild(id)
        for key in active.withLock({ $0 }) { try? snapshotter.remove(key) }
        active.withLock { $0.removeAll() }
        Self.remove(directory)
    }

    /// Removes a build's directory, unmounting first whatever is mounted below it (deepest
    /// first), so that removing files never reaches into a mounted tree.
    public static func remove(_ directory: String) {
        Mount.unmountAll(below: directory)
        try? FileSystem.removeTree(directory)
    }
}

extension RFC3339 {
    /// Now, as image configs write it.
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}

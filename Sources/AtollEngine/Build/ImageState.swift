import AtollCore
import AtollOCI

/// An image as a build step leaves it: its config (with history), its layer blobs, the committed
/// snapshot of its file system, and its cache key — a digest of everything that made it, so that
/// the same key always means the same result.
struct ImageState: Sendable {
    var config: ImageConfig
    var layers: [Descriptor]
    /// The committed snapshot of the whole tree (the top chain ID); nil for an empty tree.
    var topChain: String?
    var key: Digest
    /// When the newest layer was made: the built image's date, so that an unchanged rebuild
    /// makes the very same image.
    var created: String?

    /// An empty tree for `FROM scratch`.
    static func scratch(platform: Platform) -> ImageState {
        ImageState(
            config: ImageConfig(
                architecture: platform.architecture, os: platform.os, variant: platform.variant,
                config: ImageConfig.Config(), rootfs: ImageConfig.RootFS(diffIDs: []), history: []),
            layers: [], topChain: nil, key: Digest.sha256(of: Array("scratch \(platform)".utf8)), created: nil)
    }

    /// The state after an instruction that only changed the config.
    mutating func addHistory(_ createdBy: String, cacheKey: Digest) {
        config.history =
            (config.history ?? []) + [
                ImageConfig.History(
                    created: created, createdBy: createdBy, comment: "atoll.build", emptyLayer: true)
            ]
        key = cacheKey
    }

    mutating func addLayer(_ layer: Descriptor, diffID: Digest, chain: String, created: String, createdBy: String) {
        layers.append(layer)
        config.rootfs.diffIDs.append(diffID)
        topChain = chain
        self.created = created
        config.history =
            (config.history ?? []) + [
                ImageConfig.History(created: created, createdBy: createdBy, comment: "atoll.build")
            ]
    }

    /// The run-time config, never nil.
    var runConfig: ImageConfig.Config {
        get { config.config ?? ImageConfig.Config() }
        set { config.config = newValue }
    }
}

/// Cache keys: a digest of the parent's key and the parts that decide a step's result.
enum CacheKey {
    static func derive(_ parent: Digest, _ parts: [String]) -> Digest {
        var text = parent.description
        for part in parts {
            text += "\n\(part.utf8.count):"
            text += part
        }
        return Digest.sha256(of: Array(text.utf8))
    }
}

import AtollCore
import Foundation

/// One entry of the `manifest.json` that `docker save` writes at the root of its tar archive.
public struct DockerArchiveManifestEntry: Sendable, Codable, Equatable, Hashable {
    /// Path of the config blob inside the archive (`blobs/sha256/<hex>` or `<hex>.json`).
    public var config: String
    /// Tags in familiar form (`busybox:latest`); empty for an untagged image.
    public var repoTags: [String]
    /// Paths of the layer tar files inside the archive, bottom first.
    public var layers: [String]
    /// Descriptors of foreign layers that are not in the archive, by diff ID.
    public var layerSources: [String: Descriptor]?

    public init(config: String, repoTags: [String], layers: [String], layerSources: [String: Descriptor]? = nil) {
        self.config = config
        self.repoTags = repoTags
        self.layers = layers
        self.layerSources = layerSources
    }

    enum CodingKeys: String, CodingKey {
        case config = "Config"
        case repoTags = "RepoTags"
        case layers = "Layers"
        case layerSources = "LayerSources"
    }

    /// Accepts `"RepoTags": null` and a missing `Layers`, as Docker writes for untagged or empty images.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decode(String.self, forKey: .config)
        repoTags = try c.decodeIfPresent([String].self, forKey: .repoTags) ?? []
        layers = try c.decodeIfPresent([String].self, forKey: .layers) ?? []
        layerSources = try c.decodeIfPresent([String: Descriptor].self, forKey: .layerSources)
    }

    /// The archive file's name.
    public static let fileName = "manifest.json"

    /// Decodes a whole `manifest.json` (a JSON array of entries).
    public static func parseList(data: [UInt8]) throws -> [DockerArchiveManifestEntry] {
        try CanonicalJSON.decode([DockerArchiveManifestEntry].self, from: data, what: "docker archive manifest.json")
    }

    /// Encodes a whole `manifest.json` with Atoll's canonical encoding.
    public static func encodeList(_ entries: [DockerArchiveManifestEntry]) throws -> [UInt8] {
        try CanonicalJSON.encode(entries, what: "docker archive manifest.json")
    }
}

/// The `oci-layout` file at the root of an OCI image layout: `{"imageLayoutVersion":"1.0.0"}`.
public struct OCILayoutFile: Sendable, Codable, Equatable, Hashable {
    public var imageLayoutVersion: String

    public init(imageLayoutVersion: String = OCILayoutFile.currentVersion) {
        self.imageLayoutVersion = imageLayoutVersion
    }

    /// The layout version Atoll writes and reads.
    public static let currentVersion = "1.0.0"
    /// The file's name.
    public static let fileName = "oci-layout"

    /// Decodes the file and checks that its version is one Atoll reads.
    public static func parse(data: [UInt8]) throws -> OCILayoutFile {
        let layout = try CanonicalJSON.decode(OCILayoutFile.self, from: data, what: "oci-layout file")
        guard layout.imageLayoutVersion == currentVersion else {
            throw AtollError(
                .unsupported,
                "unsupported oci-layout version \"\(layout.imageLayoutVersion)\", want \(currentVersion)")
        }
        return layout
    }

    public func canonicalJSON() throws -> [UInt8] {
        try CanonicalJSON.encode(self, what: "oci-layout file")
    }
}

/// Names and annotations of the OCI image layout (`oci-layout`, `index.json`, `blobs/`).
public enum OCIImageLayout {
    /// The index at the layout's root; an `ImageIndex`.
    public static let indexFileName = "index.json"
    public static let blobsDirectory = "blobs"

    /// The path of a blob relative to the layout's root: `blobs/sha256/<hex>`.
    public static func blobPath(_ digest: Digest) -> String {
        "\(blobsDirectory)/\(Digest.algorithm)/\(digest.hex)"
    }
}

/// Well-known annotation keys.
public enum Annotation {
    /// The reference (usually a tag) of an `index.json` entry in an OCI layout.
    public static let refName = "org.opencontainers.image.ref.name"
    /// containerd's full image name on an `index.json` entry (`docker.io/library/busybox:latest`).
    public static let containerdImageName = "io.containerd.image.name"
    public static let created = "org.opencontainers.image.created"
    public static let baseImageName = "org.opencontainers.image.base.name"
    public static let baseImageDigest = "org.opencontainers.image.base.digest"
}

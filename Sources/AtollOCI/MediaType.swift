import Foundation

/// How a layer blob is compressed, as its media type says.
public enum LayerCompression: String, Sendable, Codable, Equatable, Hashable, CaseIterable {
    case none, gzip, zstd
}

/// The media types of the OCI image spec and of Docker's image formats, with helpers that classify
/// them. The helpers ignore parameters (`; charset=utf-8`) and case, as HTTP content types allow.
public enum MediaType {
    // OCI image spec
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let ociLayerNondistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    public static let ociLayerNondistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    public static let ociLayerNondistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    /// The empty JSON object `{}` used as the config of artifacts.
    public static let ociEmpty = "application/vnd.oci.empty.v1+json"

    // Docker image manifest v2, schema 2
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let dockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
    public static let dockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar"
    public static let dockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    /// Schema 1 manifests (unsupported; named so that errors can recognise them).
    public static let dockerManifestSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    public static let dockerManifestSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

    private static let layerCompressions: [String: LayerCompression] = [
        ociLayer: .none, ociLayerGzip: .gzip, ociLayerZstd: .zstd,
        ociLayerNondistributable: .none, ociLayerNondistributableGzip: .gzip,
        ociLayerNondistributableZstd: .zstd,
        dockerLayer: .none, dockerLayerGzip: .gzip, dockerLayerZstd: .zstd,
        dockerForeignLayer: .none, dockerForeignLayerGzip: .gzip,
    ]

    /// The media type without parameters or surrounding blanks, in lower case.
    public static func base(_ mediaType: String) -> String {
        let head = mediaType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return head.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// Whether this is an image manifest (OCI or Docker schema 2).
    public static func isManifest(_ mediaType: String) -> Bool {
        let b = base(mediaType)
        return b == ociManifest || b == dockerManifest
    }

    /// Whether this is an index (OCI image index or Docker manifest list).
    public static func isIndex(_ mediaType: String) -> Bool {
        let b = base(mediaType)
        return b == ociIndex || b == dockerManifestList
    }

    /// Whether this is an image config (OCI or Docker).
    public static func isConfig(_ mediaType: String) -> Bool {
        let b = base(mediaType)
        return b == ociConfig || b == dockerConfig
    }

    /// Whether this is a filesystem layer of any known kind.
    public static func isLayer(_ mediaType: String) -> Bool {
        layerCompressions[base(mediaType)] != nil
    }

    /// Whether the layer must not be pushed to other registries (OCI non-distributable, Docker foreign).
    public static func isNondistributable(_ mediaType: String) -> Bool {
        let b = base(mediaType)
        return b.hasPrefix("application/vnd.oci.image.layer.nondistributable.")
            || b.hasPrefix("application/vnd.docker.image.rootfs.foreign.")
    }

    /// The layer's compression, or nil when the media type is not a known layer type.
    public static func layerCompression(_ mediaType: String) -> LayerCompression? {
        layerCompressions[base(mediaType)]
    }

    /// The OCI layer media type for a compression.
    public static func ociLayer(compression: LayerCompression) -> String {
        switch compression {
        case .none: return ociLayer
        case .gzip: return ociLayerGzip
        case .zstd: return ociLayerZstd
        }
    }
}

import AtollCore
import Foundation

/// An image manifest: OCI image manifest or Docker image manifest v2 schema 2 (same shape).
public struct ImageManifest: Sendable, Codable, Equatable, Hashable {
    public var schemaVersion: Int
    /// `MediaType.ociManifest` or `MediaType.dockerManifest`; optional in OCI, required by Docker.
    public var mediaType: String?
    public var artifactType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(
        schemaVersion: Int = 2, mediaType: String? = MediaType.ociManifest, artifactType: String? = nil,
        config: Descriptor, layers: [Descriptor], subject: Descriptor? = nil,
        annotations: [String: String]? = nil
    ) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.artifactType = artifactType
        self.config = config
        self.layers = layers
        self.subject = subject
        self.annotations = annotations
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion, mediaType, artifactType, config, layers, subject, annotations
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        mediaType = try c.decodeIfPresent(String.self, forKey: .mediaType)
        artifactType = try c.decodeIfPresent(String.self, forKey: .artifactType)
        config = try c.decode(Descriptor.self, forKey: .config)
        layers = try c.decodeIfPresent([Descriptor].self, forKey: .layers) ?? []
        subject = try c.decodeIfPresent(Descriptor.self, forKey: .subject)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
    }

    /// Atoll's canonical encoding (sorted keys, no nulls), stable for digests.
    public func canonicalJSON() throws -> [UInt8] {
        try CanonicalJSON.encode(self, what: "image manifest")
    }
}

/// An index of manifests: OCI image index or Docker manifest list.
public struct ImageIndex: Sendable, Codable, Equatable, Hashable {
    public var schemaVersion: Int
    /// `MediaType.ociIndex` or `MediaType.dockerManifestList`; optional in OCI, required by Docker.
    public var mediaType: String?
    public var artifactType: String?
    public var manifests: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(
        schemaVersion: Int = 2, mediaType: String? = MediaType.ociIndex, artifactType: String? = nil,
        manifests: [Descriptor], subject: Descriptor? = nil, annotations: [String: String]? = nil
    ) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.artifactType = artifactType
        self.manifests = manifests
        self.subject = subject
        self.annotations = annotations
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion, mediaType, artifactType, manifests, subject, annotations
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        mediaType = try c.decodeIfPresent(String.self, forKey: .mediaType)
        artifactType = try c.decodeIfPresent(String.self, forKey: .artifactType)
        manifests = try c.decodeIfPresent([Descriptor].self, forKey: .manifests) ?? []
        subject = try c.decodeIfPresent(Descriptor.self, forKey: .subject)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
    }

    /// The entry for the platform that suits `platform` best (exact match first, then compatible
    /// ones as `PlatformMatcher` ranks them; among equals, the first in the index). Entries without
    /// a platform are never chosen. Throws `notFound` listing the platforms the index offers.
    public func select(platform: Platform) throws -> Descriptor {
        let matcher = PlatformMatcher(platform)
        if let i = matcher.bestIndex(manifests.map(\.platform)) { return manifests[i] }
        var available: [String] = []
        for p in manifests.compactMap(\.platform) where !available.contains(p.description) {
            available.append(p.description)
        }
        let list = available.isEmpty ? "none" : available.joined(separator: ", ")
        throw AtollError.notFound(
            "no manifest for platform \"\(matcher.wanted)\" in the index (available: \(list))")
    }

    /// Atoll's canonical encoding (sorted keys, no nulls), stable for digests.
    public func canonicalJSON() throws -> [UInt8] {
        try CanonicalJSON.encode(self, what: "image index")
    }
}

/// A manifest document as fetched from a registry or read from a layout: a manifest or an index.
public enum ManifestDocument: Sendable, Equatable, Hashable {
    case manifest(ImageManifest)
    case index(ImageIndex)

    /// The largest manifest or index Atoll accepts: 4 MiB, as registries commonly enforce.
    public static let maximumSize = 4 * 1024 * 1024

    /// The document's media type: its `mediaType` field, or the OCI type when the field is absent.
    public var mediaType: String {
        switch self {
        case .manifest(let m): return m.mediaType ?? MediaType.ociManifest
        case .index(let i): return i.mediaType ?? MediaType.ociIndex
        }
    }

    /// Parses a manifest or an index, deciding which from the declared content type, the document's
    /// `mediaType` field, or (when both are absent) its shape. Rejects documents over `maximumSize`,
    /// schema 1 and any schemaVersion but 2, documents that carry both `manifests` and
    /// `config`/`layers` (ambiguous, CVE-2021-41190), a `mediaType` field that contradicts the
    /// declared type, media types that are not manifests or indexes, and manifests without a config.
    /// - Parameter declaredMediaType: the Content-Type it was served with, or nil when unknown.
    public static func parse(data: [UInt8], declaredMediaType: String?) throws -> ManifestDocument {
        func invalid(_ why: String) -> AtollError {
            AtollError.invalidArgument("invalid manifest: \(why)")
        }
        guard data.count <= maximumSize else {
            throw AtollError(
                .resourceExhausted,
                "manifest too large: \(data.count) bytes, the limit is \(maximumSize)")
        }
        let probe: Probe
        do {
            probe = try JSONDecoder().decode(Probe.self, from: Data(data))
        } catch {
            throw invalid(CanonicalJSON.describe(error))
        }
        let declared = declaredMediaType.map(MediaType.base).flatMap { $0.isEmpty ? nil : $0 }
        let field = probe.mediaType
        for type in [declared, field].compactMap({ $0 }) {
            if type.hasPrefix("application/vnd.docker.distribution.manifest.v1") {
                throw AtollError(.unsupported, "unsupported manifest: docker schema 1 (\(type)) is not supported")
            }
            guard MediaType.isManifest(type) || MediaType.isIndex(type) else {
                throw invalid("unsupported media type \"\(type)\"")
            }
        }
        if probe.hasFSLayers {
            throw AtollError(.unsupported, "unsupported manifest: docker schema 1 is not supported")
        }
        guard let version = probe.schemaVersion else { throw invalid("missing schemaVersion") }
        guard version == 2 else { throw invalid("schemaVersion \(version), want 2") }
        if probe.hasManifests && (probe.hasConfig || probe.hasLayers) {
            throw invalid("ambiguous document with both \"manifests\" and \"config\"/\"layers\"")
        }
        if let declared, let field, MediaType.base(field) != declared {
            throw invalid("mediaType \"\(field)\" contradicts the declared type \"\(declared)\"")
        }
        let type: String
        if let t = declared ?? field.map(MediaType.base) {
            type = t
        } else if probe.hasManifests {
            type = MediaType.ociIndex
        } else if probe.hasConfig || probe.hasLayers {
            type = MediaType.ociManifest
        } else {
            throw invalid("neither a manifest nor an index: no mediaType, config or manifests")
        }
        let isDocker = type == MediaType.dockerManifest || type == MediaType.dockerManifestList
        if isDocker && field == nil {
            throw invalid("docker \(type) without its mediaType field")
        }
        if MediaType.isIndex(type) {
            guard !probe.hasConfig && !probe.hasLayers else {
                throw invalid("\(type) must not have \"config\" or \"layers\"")
            }
            guard probe.hasManifests else { throw invalid("\(type) without \"manifests\"") }
            return .index(try CanonicalJSON.decode(ImageIndex.self, from: data, what: "image index"))
        }
        guard !probe.hasManifests else { throw invalid("\(type) must not have \"manifests\"") }
        guard probe.hasConfig else { throw invalid("\(type) without \"config\"") }
        return .manifest(try CanonicalJSON.decode(ImageManifest.self, from: data, what: "manifest"))
    }

    /// The fields that tell the kinds apart; a member counts as present only when it is not null.
    private struct Probe: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var hasManifests = false
        var hasConfig = false
        var hasLayers = false
        var hasFSLayers = false

        enum CodingKeys: String, CodingKey {
            case schemaVersion, mediaType, manifests, config, layers, fsLayers
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            schemaVersion = try c.decodeIfPresent(Int.self, forKey: .schemaVersion)
            mediaType = try c.decodeIfPresent(String.self, forKey: .mediaType)
            func present(_ key: CodingKeys) throws -> Bool {
                guard c.contains(key) else { return false }
                return try !c.decodeNil(forKey: key)
            }
            hasManifests = try present(.manifests)
            hasConfig = try present(.config)
            hasLayers = try present(.layers)
            hasFSLayers = try present(.fsLayers)
        }
    }
}

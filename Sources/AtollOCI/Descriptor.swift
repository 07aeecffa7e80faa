import AtollCore
import Foundation

/// A content descriptor: what a blob is, its digest and size, and where else it may be found.
public struct Descriptor: Sendable, Codable, Equatable, Hashable {
    public var mediaType: String
    public var digest: Digest
    /// The blob's size in bytes; never negative.
    public var size: Int64
    /// Other places the blob can be downloaded from (foreign / non-distributable layers).
    public var urls: [String]?
    public var annotations: [String: String]?
    /// Set on the entries of an index.
    public var platform: Platform?
    /// The type of an artifact, when the descriptor points at one.
    public var artifactType: String?
    /// The blob itself, base64 encoded, when it is embedded.
    public var data: String?

    public init(
        mediaType: String, digest: Digest, size: Int64, urls: [String]? = nil,
        annotations: [String: String]? = nil, platform: Platform? = nil, artifactType: String? = nil,
        data: String? = nil
    ) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.urls = urls
        self.annotations = annotations
        self.platform = platform
        self.artifactType = artifactType
        self.data = data
    }

    enum CodingKeys: String, CodingKey {
        case mediaType, digest, size, urls, annotations, platform, artifactType, data
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mediaType = try c.decodeIfPresent(String.self, forKey: .mediaType) ?? ""
        digest = try c.decode(Digest.self, forKey: .digest)
        size = try c.decode(Int64.self, forKey: .size)
        guard size >= 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .size, in: c, debugDescription: "negative size \(size) for \(digest)")
        }
        urls = try c.decodeIfPresent([String].self, forKey: .urls)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        platform = try c.decodeIfPresent(Platform.self, forKey: .platform)
        artifactType = try c.decodeIfPresent(String.self, forKey: .artifactType)
        data = try c.decodeIfPresent(String.self, forKey: .data)
    }
}

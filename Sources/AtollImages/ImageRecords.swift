import AtollCore
import GRDB

/// An image as the engine keeps it, Docker's way: identified by the digest of its config (the
/// image ID), pointing at the manifest it was stored under. Names are `TagRecord`s.
public struct ImageRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "images"

    /// The config digest ("sha256:…"), Docker's image ID.
    public var id: String
    public var manifestDigest: String
    public var manifestMediaType: String
    public var manifestSize: Int64
    /// Creation time from the config, seconds since the epoch (0 when absent).
    public var created: Int64
    /// When this engine stored it, seconds since the epoch.
    public var stored: Int64
    /// Bytes of the unpacked layers (sum of each layer snapshot's own usage).
    public var size: Int64
    /// The chain ID of the top layer (the snapshot a container of this image stacks on); empty
    /// for an image without layers.
    public var topChainID: String

    enum CodingKeys: String, CodingKey {
        case id, manifestDigest = "manifest_digest", manifestMediaType = "manifest_media_type"
        case manifestSize = "manifest_size", created, stored, size, topChainID = "top_chain_id"
    }
}

/// A name (normalized reference, e.g. "docker.io/library/busybox:latest") that points at an image.
public struct TagRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tags"
    public var name: String
    public var imageID: String

    enum CodingKeys: String, CodingKey { case name, imageID = "image_id" }
}

enum ImageMigrations {
    static func register(_ migrator: inout DatabaseMigrator) {
        defer {
            // Where each blob is known to live (pulled from or pushed to), so that a push to
            // another repository of the same registry can mount it instead of uploading it.
            migrator.registerMigration("blob-sources-v1") { db in
                try db.create(table: "blob_sources") { t in
                    t.column("digest", .text).notNull()
                    t.column("registry", .text).notNull()
                    t.column("repository", .text).notNull()
                    t.primaryKey(["digest", "registry", "repository"])
                }
            }
            // Build steps that made a layer, by cache key (see BuildCacheRecord).
            migrator.registerMigration("build-cache-v1") { db in
                try db.create(table: "build_cache") { t in
                    t.primaryKey("key", .text)
                    t.column("chain_id", .text).notNull().indexed()
                    t.column("diff_id", .text).notNull()
                    t.column("layer_digest", .text).notNull()
                    t.column("layer_media_type", .text).notNull()
                    t.column("layer_size", .integer).notNull()
                    t.column("created", .text).notNull()
                    t.column("last_used", .integer).notNull()
                }
            }
        }
        migrator.registerMigration("images-v1") { db in
            try db.create(table: "images") { t in
                t.primaryKey("id", .text)
                t.column("manifest_digest", .text).notNull()
                t.column("manifest_media_type", .text).notNull()
                t.column("manifest_size", .integer).notNull()
                t.column("created", .integer).notNull()
                t.column("stored", .integer).notNull()
                t.column("size", .integer).notNull()
                t.column("top_chain_id", .text).notNull()
            }
            try db.create(table: "tags") { t in
                t.primaryKey("name", .text)
                t.column("image_id", .text).notNull().indexed().references("images", onDelete: .restrict)
            }
            try db.create(table: "image_layers") { t in
                t.column("image_id", .text).notNull().references("images", onDelete: .cascade)
                t.column("position", .integer).notNull()
                t.column("chain_id", .text).notNull().indexed()
                t.primaryKey(["image_id", "position"])
            }
        }
    }
}

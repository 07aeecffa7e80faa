import AtollCore
import AtollStorage
import Foundation
import GRDB

/// What the embedded registry serves, over the host's content store: which repository holds
/// which blobs and manifests, and the tags. Blob bytes live once in the content store whatever
/// the number of repositories linking them; the links are the garbage collector's roots.
public final class RegistryStore: Sendable {
    let database: DatabasePool
    let content: ContentStore
    /// The content store's collection lock: adding a blob and the link that keeps it happen
    /// under its read side, so a collection never sees the one without the other.
    let collectionLock: ReadWriteLock

    public init(database: DatabasePool, content: ContentStore, collectionLock: ReadWriteLock) {
        self.database = database
        self.content = content
        self.collectionLock = collectionLock
    }

    /// Runs `body` (which stores blobs and links them) so that no garbage collection runs meanwhile.
    func publish<T>(_ body: () throws -> T) rethrows -> T { try collectionLock.withReadLock(body) }

    public static func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("registry-v1") { db in
            try db.create(table: "registry_blobs") { t in
                t.column("repository", .text).notNull()
                t.column("digest", .text).notNull()
                t.primaryKey(["repository", "digest"])
            }
            try db.create(table: "registry_manifests") { t in
                t.column("repository", .text).notNull()
                t.column("digest", .text).notNull()
                t.column("media_type", .text).notNull()
                t.column("size", .integer).notNull()
                t.primaryKey(["repository", "digest"])
            }
            try db.create(table: "registry_tags") { t in
                t.column("repository", .text).notNull()
                t.column("tag", .text).notNull()
                t.column("digest", .text).notNull()
                t.primaryKey(["repository", "tag"])
            }
        }
    }

    /// Every digest a repository links: kept by the content store's garbage collection.
    public static func roots(_ db: Database) throws -> Set<Digest> {
        let texts =
            try String.fetchAll(db, sql: "SELECT digest FROM registry_blobs")
            + String.fetchAll(db, sql: "SELECT digest FROM registry_manifests")
        return Set(texts.compactMap { try? Digest(parsing: $0) })
    }

    // MARK: - Blobs

    func linkBlob(_ repository: String, _ digest: Digest) throws {
        try database.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO registry_blobs (repository, digest) VALUES (?, ?)",
                arguments: [repository, digest.description])
        }
    }

    func hasBlob(_ repository: String, _ digest: Digest) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM registry_blobs WHERE repository = ? AND digest = ?",
                arguments: [repository, digest.description]) ?? false
        } && content.contains(digest)
    }

    func unlinkBlob(_ repository: String, _ digest: Digest) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM registry_blobs WHERE repository = ? AND digest = ?",
                arguments: [repository, digest.description])
            return db.changesCount > 0
        }
    }

    // MARK: - Manifests and tags

    struct ManifestEntry: Sendable {
        var digest: Digest
        var mediaType: String
        var size: Int64
    }

    /// Records a manifest (already in the content store) and, when given, points a tag at it;
    /// one transaction, so a reader sees both or neither.
    func putManifest(_ repository: String, _ entry: ManifestEntry, tag: String?) throws {
        try database.write { db in
            try db.execute(
                sql:
                    "INSERT OR REPLACE INTO registry_manifests (repository, digest, media_type, size) VALUES (?, ?, ?, ?)",
                arguments: [repository, entry.digest.description, entry.mediaType, entry.size])
            if let tag {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO registry_tags (repository, tag, digest) VALUES (?, ?, ?)",
                    arguments: [repository, tag, entry.digest.description])
            }
        }
    }

    /// The manifest a tag or digest names in the repository.
    func manifest(_ repository: String, reference: String) throws -> ManifestEntry? {
        try database.read { db in
            let digestText: String
            if reference.contains(":") {
                digestText = reference
            } else {
                guard
                    let tagged = try String.fetchOne(
                        db, sql: "SELECT digest FROM registry_tags WHERE repository = ? AND tag = ?",
                        arguments: [repository, reference])
                else { return nil }
                digestText = tagged
            }
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT media_type, size FROM registry_manifests WHERE repository = ? AND digest = ?",
                    arguments: [repository, digestText]),
                let digest = try? Digest(parsing: digestText)
            else { return nil }
            return ManifestEntry(digest: digest, mediaType: row["media_type"], size: row["size"])
        }
    }

    func hasManifest(_ repository: String, _ digest: Digest) throws -> Bool {
        try manifest(repository, reference: digest.description) != nil
    }

    /// Deletes a manifest and every tag pointing at it; false when the repository lacks it.
    func deleteManifest(_ repository: String, _ digest: Digest) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM registry_manifests WHERE repository = ? AND digest = ?",
                arguments: [repository, digest.description])
            let deleted = db.changesCount > 0
            try db.execute(
                sql: "DELETE FROM registry_tags WHERE repository = ? AND digest = ?",
                arguments: [repository, digest.description])
            return deleted
        }
    }

    func deleteTag(_ repository: String, _ tag: String) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM registry_tags WHERE repository = ? AND tag = ?", arguments: [repository, tag])
            return db.changesCount > 0
        }
    }

    /// Tags in lexical order after `last`, at most `limit` (nil: all); `more` when cut.
    func tags(_ repository: String, limit: Int?, after last: String?) throws -> (tags: [String], more: Bool)? {
        try database.read { db in
            let exists =
                try Bool.fetchOne(
                    db,
                    sql:
                        "SELECT 1 FROM registry_manifests WHERE repository = ? UNION SELECT 1 FROM registry_blobs WHERE repository = ? LIMIT 1",
                    arguments: [repository, repository]) ?? false
            guard exists else { return nil }
            let all = try String.fetchAll(
                db, sql: "SELECT tag FROM registry_tags WHERE repository = ? AND tag > ? ORDER BY tag",
                arguments: [repository, last ?? ""])
            return Self.page(all, limit: limit)
        }
    }

    /// Repositories (holding a manifest) in lexical order after `last`.
    func repositories(limit: Int?, after last: String?) throws -> (repositories: [String], more: Bool) {
        try database.read { db in
            let all = try String.fetchAll(
                db, sql: "SELECT DISTINCT repository FROM registry_manifests WHERE repository > ? ORDER BY repository",
                arguments: [last ?? ""])
            return Self.page(all, limit: limit)
        }
    }

    static func page(_ all: [String], limit: Int?) -> ([String], Bool) {
        guard let limit, all.count > limit else { return (all, false) }
        return (Array(all.prefix(limit)), true)
    }
}

/// Names as the distribution spec allows them.
enum RegistryNames {
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, 255 characters at most.
    static func isValidRepository(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 255 else { return false }
        return name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy(isValidComponent)
    }

    static func isValidComponent(_ component: Substring) -> Bool {
        let bytes = Array(component.utf8)
        func alphanumeric(_ byte: UInt8) -> Bool { (97...122).contains(byte) || (48...57).contains(byte) }
        guard let first = bytes.first, let last = bytes.last, alphanumeric(first), alphanumeric(last) else {
            return false
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if alphanumeric(byte) {
                index += 1
                continue
            }
            // A separator: ".", "_", "__" or a run of "-", always between alphanumerics.
            var end = index
            while end < bytes.count, !alphanumeric(bytes[end]) { end += 1 }
            let separator = String(decoding: bytes[index..<end], as: UTF8.self)
            guard separator == "." || separator == "_" || separator == "__" || separator.allSatisfy({ $0 == "-" })
            else { return false }
            index = end
        }
        return true
    }

    /// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    static func isValidTag(_ tag: String) -> Bool {
        let bytes = Array(tag.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func word(_ byte: UInt8) -> Bool {
            (97...122).contains(byte) || (65...90).contains(byte) || (48...57).contains(byte) || byte == 95
        }
        return word(first) && bytes.dropFirst().allSatisfy { word($0) || $0 == 46 || $0 == 45 }
    }
}

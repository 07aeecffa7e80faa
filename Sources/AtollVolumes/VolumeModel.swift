import AtollCore
import Foundation
import GRDB

/// One row of the `volumes` table: a named directory under `<root>/volumes/NAME/_data` that
/// outlives the containers using it.
public struct VolumeRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "volumes"

    public var name: String
    public var driver: String
    /// Nanoseconds since the epoch.
    public var created: Int64
    public var labels: [String: String]
    /// The local driver's options (`type`, `device`, `o`), as given to `volume create --opt`.
    public var options: [String: String]
    /// Made for one container (`-v /path`, an image's VOLUME): `rm -v` and `--rm` remove it.
    public var anonymous: Bool

    enum CodingKeys: String, CodingKey { case name, driver, created, labels, options, anonymous }

    public init(
        name: String, driver: String = "local", created: Date = Date(), labels: [String: String] = [:],
        options: [String: String] = [:], anonymous: Bool = false
    ) {
        self.name = name
        self.driver = driver
        self.created = Int64(created.timeIntervalSince1970 * 1e9)
        self.labels = labels
        self.options = options
        self.anonymous = anonymous
    }
}

/// Which container uses which volume: a volume with a row here cannot be removed (the foreign
/// key refuses it), and the rows go with the container.
package struct VolumeUserRecord: Codable, FetchableRecord, PersistableRecord {
    package static let databaseTableName = "volume_users"
    package var containerID: String
    package var volume: String

    package init(containerID: String, volume: String) {
        self.containerID = containerID
        self.volume = volume
    }

    enum CodingKeys: String, CodingKey {
        case containerID = "container_id"
        case volume
    }
}

enum VolumeMigrations {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("volumes-v1") { db in
            try db.create(table: "volumes") { t in
                t.primaryKey("name", .text)
                t.column("driver", .text).notNull()
                t.column("created", .integer).notNull()
                t.column("labels", .jsonText).notNull()
                t.column("options", .jsonText).notNull()
                t.column("anonymous", .boolean).notNull()
            }
            try db.create(table: "volume_users") { t in
                t.column("container_id", .text).notNull().references("containers", onDelete: .cascade)
                t.column("volume", .text).notNull().references("volumes", onDelete: .restrict)
                t.primaryKey(["container_id", "volume"])
            }
            try db.create(index: "volume_users_by_volume", on: "volume_users", columns: ["volume"])
        }
    }
}

/// Volume names as Docker allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, so a name is always one
/// plain path component under the volumes directory (never "/", "." or "..").
public enum VolumeName {
    public static func validate(_ name: String) throws {
        guard !name.isEmpty else { throw AtollError.invalidArgument("a volume name cannot be empty") }
        if name.contains("/") || name.contains("..") {
            throw AtollError.invalidArgument(
                "invalid volume name \"\(name)\": a name cannot contain \"/\" or \"..\" (it names a directory under the volumes root)"
            )
        }
        guard ObjectName.isValid(name), name.count <= 255 else {
            throw AtollError.invalidArgument(
                "invalid volume name \"\(name)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters")
        }
    }
}

/// The local driver's options: none (a directory), or a file system to mount on the volume's
/// directory while a container uses it: `type=tmpfs,device=tmpfs,o=size=64m`, or a bind of a
/// host directory: `type=none,device=/srv/data,o=bind`.
public struct LocalVolumeOptions: Sendable, Equatable {
    public var type: String
    public var device: String
    public var mountOptions: [String]

    public static let keys = ["type", "device", "o"]

    /// Checks the options; nil when they are empty (the volume is a plain directory).
    public static func parse(_ options: [String: String]) throws -> LocalVolumeOptions? {
        for key in options.keys where !keys.contains(key) {
            throw AtollError.invalidArgument(
                "invalid option \"\(key)\" for the local volume driver: want type, device and o")
        }
        guard !options.isEmpty else { return nil }
        return try LocalVolumeOptions(checking: options)
    }

    private init(checking options: [String: String]) throws {
        guard let type = options["type"], !type.isEmpty else {
            throw AtollError.invalidArgument("the local volume driver needs --opt type=… with device= and o=")
        }
        guard let device = options["device"], !device.isEmpty else {
            throw AtollError.invalidArgument("the local volume driver needs --opt device=… with type=\(type)")
        }
        self.type = type
        self.device = device
        mountOptions = (options["o"] ?? "").split(separator: ",").map(String.init)
        guard type.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" }) else {
            throw AtollError.invalidArgument("invalid file system type \"\(type)\" in the volume options")
        }
        if isBind {
            guard device.hasPrefix("/") else {
                throw AtollError.invalidArgument(
                    "a bind volume's device must be an absolute host path, not \"\(device)\"")
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: device, isDirectory: &isDirectory), isDirectory.boolValue
            else {
                throw AtollError.invalidArgument("the bind volume's device \"\(device)\" is not an existing directory")
            }
        } else if !Self.knownFileSystems().contains(type) {
            throw AtollError.invalidArgument(
                "file system type \"\(type)\" is not known to this kernel (see /proc/filesystems)")
        }
    }

    public var isBind: Bool { mountOptions.contains("bind") || mountOptions.contains("rbind") }

    static func knownFileSystems() -> Set<String> {
        guard let bytes = try? FileSystem.readFile("/proc/filesystems") else { return [] }
        return Set(
            String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap {
                $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).last.map(String.init)
            })
    }
}

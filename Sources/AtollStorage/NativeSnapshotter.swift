import AtollCore
import Foundation
import Glibc

/// The native snapshotter (driver "native"): plain directories, for file systems where overlayfs
/// does not work. Each snapshot owns `<root>/snapshots/<id>/fs`, a full tree; preparing on a
/// parent copies the parent's tree (reflinks where the file system has them). Views do not copy:
/// they are read-only bind mounts of the parent's tree. All mounts are bind mounts.
public final class NativeSnapshotter: Snapshotter {
    public let driverName = "native"
    public let root: String
    /// The file system under `root`, as probed at start.
    public let backingFileSystem: BackingFileSystem
    let metadata: SnapshotMetadataStore

    public init(root: String) throws {
        do {
            try Syscall.mkdirAll(root, mode: 0o700)
        } catch {
            throw AtollError(.internalError, "cannot create snapshotter root \(root)", cause: error)
        }
        self.root = root
        backingFileSystem = try BackingFileSystem.probe(root)
        metadata = try SnapshotMetadataStore(root: root)
    }

    public func stat(_ key: String) throws -> SnapshotInfo { try metadata.info(key) }

    public func prepare(_ key: String, parent: String?, labels: [String: String] = [:]) throws -> [Mount] {
        let record = try metadata.create(key, parent: parent, kind: .active, labels: labels) { directory, ancestors in
            if let parent = ancestors.first {
                try TreeCopy.copy(from: metadata.directory(of: parent.id) + "/fs", to: directory + "/fs")
            } else {
                try Syscall.mkdir(directory + "/fs", mode: 0o755)
            }
        }
        return [Mount(type: "bind", source: metadata.directory(of: record.id) + "/fs", options: ["rbind", "rw"])]
    }

    public func view(_ key: String, parent: String?, labels: [String: String] = [:]) throws -> [Mount] {
        let record = try metadata.create(key, parent: parent, kind: .view, labels: labels) { directory, _ in
            try Syscall.mkdir(directory + "/fs", mode: 0o755)
        }
        return try mounts(record.name)
    }

    public func mounts(_ key: String) throws -> [Mount] {
        let (record, ancestors) = try metadata.recordAndAncestors(key)
        switch record.kind {
        case .active:
            return [Mount(type: "bind", source: metadata.directory(of: record.id) + "/fs", options: ["rbind", "rw"])]
        case .view:
            let source = metadata.directory(of: ancestors.first?.id ?? record.id) + "/fs"
            return [Mount(type: "bind", source: source, options: ["rbind", "ro"])]
        case .committed:
            throw AtollError.failedPrecondition("snapshot \"\(key)\" is committed: prepare or view a child to mount it")
        }
    }

    public func commit(_ name: String, key: String, labels: [String: String] = [:]) throws {
        try metadata.commit(key: key, as: name, labels: labels)
    }

    public func remove(_ key: String) throws { try metadata.remove(key) }

    public func usage(_ key: String) throws -> SnapshotUsage {
        let record = try metadata.record(key)
        do {
            let (bytes, inodes) = try FileSystem.diskUsage(metadata.directory(of: record.id) + "/fs")
            return SnapshotUsage(size: bytes, inodes: inodes)
        } catch {
            throw AtollError(.internalError, "cannot measure the disk usage of snapshot \"\(key)\"", cause: error)
        }
    }

    public func list() throws -> [SnapshotInfo] { try metadata.list() }

    @discardableResult
    public func cleanup() throws -> Int { try metadata.cleanup() }

    /// The directory holding the files of a snapshot.
    public func dataDirectory(_ key: String) throws -> String {
        metadata.directory(of: try metadata.record(key).id) + "/fs"
    }
}

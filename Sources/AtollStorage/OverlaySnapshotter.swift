import AtollCore
import Foundation
import Glibc

/// The overlayfs snapshotter (driver "overlay"), after containerd's: each snapshot owns
/// `<root>/snapshots/<id>/fs` (its layer's files, the overlay upper directory) and `…/work`
/// (overlay's work directory). An active snapshot on parents mounts as an overlay with the
/// parents' `fs` as lower directories, nearest first; without parents it is a bind mount.
/// Views are read-only: a bind mount of a single parent, an overlay of lower directories only
/// for several.
public final class OverlaySnapshotter: Snapshotter {
    public let driverName = "overlay"
    public let root: String
    /// The file system under `root`, as probed at start.
    public let backingFileSystem: BackingFileSystem
    let metadata: SnapshotMetadataStore

    /// Opens (creating) the snapshotter at `root`, after checking that overlayfs works on the
    /// file system there; throws `unsupported` otherwise.
    public init(root: String) throws {
        do {
            try Syscall.mkdirAll(root, mode: 0o700)
        } catch {
            throw AtollError(.internalError, "cannot create snapshotter root \(root)", cause: error)
        }
        backingFileSystem = try BackingFileSystem.probe(root)
        let (supported, reason) = Self.supported(at: root)
        guard supported else { throw AtollError(.unsupported, reason) }
        self.root = root
        metadata = try SnapshotMetadataStore(root: root)
    }

    /// Whether overlayfs can be mounted with upper and work directories on the file system at
    /// `root` (an existing directory): mounts a tiny overlay in a scratch directory there and
    /// writes through it. The message says why not, or describes the file system.
    public static func supported(at root: String) -> (Bool, String) {
        let backing: BackingFileSystem
        do {
            backing = try BackingFileSystem.probe(root)
        } catch {
            return (false, "overlay is not supported at \(root): \(error); use --storage-driver native")
        }
        func refuse(_ why: String) -> (Bool, String) {
            (false, "overlay is not supported on \(backing.type) at \(root): \(why); use --storage-driver native")
        }
        guard backing.supportsDType else { return refuse("the file system does not report d_type") }
        let scratch = "\(root)/.overlay-check-\(Identifier.random().prefix(12))"
        defer {
            try? Mount.unmountAll(at: scratch + "/merged")
            try? FileSystem.removeTree(scratch)
        }
        do {
            for directory in ["", "/lower", "/upper", "/work", "/merged"] {
                try Syscall.mkdir(scratch + directory, mode: 0o700)
            }
            try FileSystem.writeFileAtomically(scratch + "/lower/probe", Array("lower".utf8))
            let mount = Mount(
                type: "overlay", source: "overlay",
                options: ["lowerdir=\(scratch)/lower", "upperdir=\(scratch)/upper", "workdir=\(scratch)/work"])
            try mount.mount(at: scratch + "/merged")
            guard (try? FileSystem.readFile(scratch + "/merged/probe")) == Array("lower".utf8) else {
                return refuse("a file of the lower directory is not visible through the overlay")
            }
            try FileSystem.writeFileAtomically(scratch + "/merged/written", Array("upper".utf8))
            try Mount.unmountAll(at: scratch + "/merged")
            guard FileSystem.exists(scratch + "/upper/written") else {
                return refuse("a file written through the overlay did not reach the upper directory")
            }
        } catch {
            return refuse("\(error)")
        }
        return (true, "overlay works on \(backing.type) at \(root) (d_type supported)")
    }

    public func stat(_ key: String) throws -> SnapshotInfo { try metadata.info(key) }

    public func prepare(_ key: String, parent: String?, labels: [String: String] = [:]) throws -> [Mount] {
        let record = try metadata.create(key, parent: parent, kind: .active, labels: labels) { directory, _ in
            try Self.makeDataDirectories(directory)
        }
        return try mounts(record, ancestors: try metadata.recordAndAncestors(record.name).1)
    }

    public func view(_ key: String, parent: String?, labels: [String: String] = [:]) throws -> [Mount] {
        let record = try metadata.create(key, parent: parent, kind: .view, labels: labels) { directory, _ in
            try Self.makeDataDirectories(directory)
        }
        return try mounts(record, ancestors: try metadata.recordAndAncestors(record.name).1)
    }

    public func mounts(_ key: String) throws -> [Mount] {
        let (record, ancestors) = try metadata.recordAndAncestors(key)
        guard record.kind != .committed else {
            throw AtollError.failedPrecondition("snapshot \"\(key)\" is committed: prepare or view a child to mount it")
        }
        return try mounts(record, ancestors: ancestors)
    }

    public func commit(_ name: String, key: String, labels: [String: String] = [:]) throws {
        try commit(name, key: key, labels: labels, parent: nil)
    }

    /// An overlay snapshot's data is only its own upper directory, so a snapshot prepared without
    /// a parent can be given one at commit: layers unpack in parallel and are stacked after.
    public var canRebase: Bool { true }

    public func commit(_ name: String, key: String, labels: [String: String], rebasingOnto parent: String) throws {
        try commit(name, key: key, labels: labels, parent: parent)
    }

    private func commit(_ name: String, key: String, labels: [String: String], parent: String?) throws {
        let record = try metadata.record(key)
        guard record.kind == .active else {
            // Let the metadata store word the refusal.
            try metadata.commit(key: key, as: name, labels: labels, rebasingOnto: parent)
            return
        }
        let work = metadata.directory(of: record.id) + "/work"
        do {
            let fd = try Syscall.open(work, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            try FileSystem.removeContents(of: fd, path: work)
        } catch {
            throw AtollError(.internalError, "cannot empty the work directory of snapshot \"\(key)\"", cause: error)
        }
        try metadata.commit(key: key, as: name, labels: labels, rebasingOnto: parent)
    }

    public func remove(_ key: String) throws { try metadata.remove(key) }

    public func usage(_ key: String) throws -> SnapshotUsage {
        let record = try metadata.record(key)
        let fs = metadata.directory(of: record.id) + "/fs"
        do {
            let (bytes, inodes) = try FileSystem.diskUsage(fs)
            return SnapshotUsage(size: bytes, inodes: inodes)
        } catch {
            throw AtollError(.internalError, "cannot measure the disk usage of snapshot \"\(key)\"", cause: error)
        }
    }

    public func list() throws -> [SnapshotInfo] { try metadata.list() }

    @discardableResult
    public func cleanup() throws -> Int {
        try metadata.cleanup { path in try? Mount.unmountAll(at: path + "/fs") }
    }

    /// The directory holding the files of a snapshot (the overlay upper directory).
    public func dataDirectory(_ key: String) throws -> String {
        metadata.directory(of: try metadata.record(key).id) + "/fs"
    }

    // MARK: - Implementation

    private static func makeDataDirectories(_ directory: String) throws {
        try Syscall.mkdir(directory + "/fs", mode: 0o755)
        try Syscall.mkdir(directory + "/work", mode: 0o700)
    }

    private func mounts(_ record: SnapshotRecord, ancestors: [SnapshotRecord]) throws -> [Mount] {
        let own = metadata.directory(of: record.id)
        let lower = ancestors.map { Self.escape(metadata.directory(of: $0.id) + "/fs") }
        switch (record.kind, ancestors.count) {
        case (.active, 0):
            return [Mount(type: "bind", source: own + "/fs", options: ["rbind", "rw"])]
        case (.active, _):
            return [
                Mount(
                    type: "overlay", source: "overlay",
                    options: [
                        "lowerdir=" + lower.joined(separator: ":"), "upperdir=\(own)/fs", "workdir=\(own)/work",
                    ])
            ]
        case (.view, 0):
            return [Mount(type: "bind", source: own + "/fs", options: ["rbind", "ro"])]
        case (.view, 1):
            return [
                Mount(type: "bind", source: metadata.directory(of: ancestors[0].id) + "/fs", options: ["rbind", "ro"])
            ]
        case (.view, _):
            return [
                Mount(type: "overlay", source: "overlay", options: ["lowerdir=" + lower.joined(separator: ":"), "ro"])
            ]
        case (.committed, _):
            throw AtollError.failedPrecondition("snapshot \"\(record.name)\" is committed and has no mounts")
        }
    }

    /// Escapes the characters overlay's lowerdir list treats specially.
    private static func escape(_ path: String) -> String {
        path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
    }
}

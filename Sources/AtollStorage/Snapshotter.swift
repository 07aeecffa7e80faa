import AtollCore

/// The kind of a snapshot, after containerd: an `active` snapshot is writable and becomes
/// `committed` (read-only, usable as a parent) through `commit`; a `view` is a read-only
/// snapshot of a parent that can never be committed.
public enum SnapshotKind: String, Codable, Sendable {
    case view, active, committed
}

/// What a snapshotter knows about one snapshot.
public struct SnapshotInfo: Codable, Sendable, Equatable {
    /// The key of an active snapshot or view, or the name of a committed one.
    public var name: String
    /// The committed snapshot this one stacks on, if any.
    public var parent: String?
    public var kind: SnapshotKind
    public var labels: [String: String]
    /// Seconds since the epoch.
    public var created: Int64
    public var updated: Int64

    public init(
        name: String, parent: String?, kind: SnapshotKind, labels: [String: String] = [:], created: Int64,
        updated: Int64
    ) {
        self.name = name
        self.parent = parent
        self.kind = kind
        self.labels = labels
        self.created = created
        self.updated = updated
    }
}

/// Disk used by one snapshot's own data (not its parents').
public struct SnapshotUsage: Codable, Sendable, Equatable {
    public var size: Int64
    public var inodes: Int64
    public init(size: Int64, inodes: Int64) {
        self.size = size
        self.inodes = inodes
    }
}

/// Keeps layered file systems, with containerd's snapshotter semantics.
///
/// Lifecycle, worked through for a two-layer image and a container on top:
///
///     let m1 = try s.prepare("extract-1", parent: nil)   // active, empty, writable
///     try Layer.apply(layer1, to: m1)                     // unpack layer 1 into it
///     try s.commit("chain-1", key: "extract-1")          // now read-only, named by its chain ID
///     let m2 = try s.prepare("extract-2", parent: "chain-1")
///     try Layer.apply(layer2, to: m2)
///     try s.commit("chain-2", key: "extract-2")
///     let rw = try s.prepare("container-abc", parent: "chain-2")  // a container's rootfs
///     try rw.mount(at: "/run/atoll/…/rootfs")
///     …
///     try s.remove("container-abc")                       // only leaves can be removed
///
/// Keys and names share one namespace. A committed snapshot with children cannot be removed.
/// Every method is safe to call from several threads at once.
public protocol Snapshotter: Sendable {
    /// The driver's name as users choose it: "overlay" or "native".
    var driverName: String { get }

    /// Information about the snapshot with this key or name.
    func stat(_ key: String) throws -> SnapshotInfo

    /// Creates an active (writable) snapshot on top of the committed `parent` and returns the
    /// mounts that make its file system appear.
    func prepare(_ key: String, parent: String?, labels: [String: String]) throws -> [Mount]

    /// Creates a read-only view of the committed `parent`.
    func view(_ key: String, parent: String?, labels: [String: String]) throws -> [Mount]

    /// The mounts for an active snapshot or view.
    func mounts(_ key: String) throws -> [Mount]

    /// Turns the active snapshot `key` into the committed snapshot `name`. The key goes away.
    func commit(_ name: String, key: String, labels: [String: String]) throws

    /// Whether `commit(_:key:labels:rebasingOnto:)` works (containerd's "rebase" capability):
    /// true where a snapshot's data does not depend on its parent's (overlay), false where it
    /// holds a copy of it (native).
    var canRebase: Bool { get }

    /// Commits an active snapshot that was prepared without a parent, giving it the committed
    /// `parent` now. Lets layers unpack in parallel, each into its own parentless snapshot.
    func commit(_ name: String, key: String, labels: [String: String], rebasingOnto parent: String) throws

    /// Removes a snapshot of any kind, with its data. Fails when it has children.
    func remove(_ key: String) throws

    /// Disk used by the snapshot's own data.
    func usage(_ key: String) throws -> SnapshotUsage

    /// Every snapshot, parents before children.
    func list() throws -> [SnapshotInfo]

    /// Removes data directories that no metadata refers to (left by a crash). Returns how many.
    @discardableResult
    func cleanup() throws -> Int
}

extension Snapshotter {
    public var canRebase: Bool { false }

    public func commit(_ name: String, key: String, labels: [String: String], rebasingOnto parent: String) throws {
        throw AtollError(
            .unsupported, "the \(driverName) storage driver cannot rebase snapshot \"\(key)\" onto \"\(parent)\"")
    }
}

import AtollCore
import Glibc

/// What applying or producing a layer measured.
public struct AppliedLayer: Sendable, Equatable, Hashable, Codable {
    /// sha256 of the uncompressed tar stream, all of it (trailing zero blocks and padding too).
    public var diffID: Digest
    public var uncompressedSize: Int64
    /// sha256 and size of the blob as stored (compressed or not).
    public var compressedDigest: Digest
    public var compressedSize: Int64

    public init(diffID: Digest, uncompressedSize: Int64, compressedDigest: Digest, compressedSize: Int64) {
        self.diffID = diffID
        self.uncompressedSize = uncompressedSize
        self.compressedDigest = compressedDigest
        self.compressedSize = compressedSize
    }
}

/// Bounds on what one layer may do; layers are untrusted input.
public struct LayerLimits: Sendable, Equatable {
    /// The uncompressed tar stream may not be longer (a decompression bomb stops here).
    public var maxUncompressedBytes: Int64
    /// At most this many tar entries.
    public var maxEntries: Int
    /// Longest entry name or link target, in bytes.
    public var maxPathLength: Int

    public init(maxUncompressedBytes: Int64 = 64 << 30, maxEntries: Int = 10_000_000, maxPathLength: Int = 4096) {
        self.maxUncompressedBytes = maxUncompressedBytes
        self.maxEntries = maxEntries
        self.maxPathLength = maxPathLength
    }

    public static let `default` = LayerLimits()
}

/// How deletions are expressed on disk when a layer is applied.
public enum WhiteoutStyle: Sendable, Equatable, Hashable {
    /// The target directory holds the whole file system (the native driver): a whiteout deletes
    /// its entry, an opaque marker empties the directory of all that this layer did not add.
    case native
    /// The target is an overlay upper directory: a whiteout becomes a 0/0 character device, an
    /// opaque marker sets `trusted.overlay.opaque=y`. `lowerDirectories` (nearest first) are
    /// consulted for parents and hardlink targets that exist only below.
    case overlay(lowerDirectories: [String] = [])
    /// A plain tree (`atoll cp`): ".wh." names are ordinary files and nothing is deleted.
    case plain
}

/// Applies layer tar streams to snapshots and produces them from snapshots.
///
/// Behaviour, in brief (see `apply(from:toDirectory:whiteouts:limits:)` for the details):
/// - names are cleaned (leading "/" dropped, "." and ".." folded); one that climbs above the root
///   is an error; every parent directory is opened beneath the root without following symlinks.
/// - ownership (numeric), modes with setuid/setgid/sticky, times in nanoseconds, extended
///   attributes, hardlinks, symlinks, devices, fifos and sparse files are kept.
/// - extended attributes the file system does not support (EOPNOTSUPP) are skipped;
///   `trusted.overlay.*` and `user.overlay.*` from a layer are always ignored, since they would
///   steer overlayfs.
public enum Layer {
    /// Applies the layer blob read from `source` (plain, gzip or zstd: detected) to the snapshot
    /// whose mounts a snapshotter returned: an overlay mount is applied into its `upperdir`, a
    /// writable bind mount into its source directory. Nothing is mounted.
    @discardableResult
    public static func apply(from source: FileDescriptor, to mounts: [Mount], limits: LayerLimits = .default) throws
        -> AppliedLayer
    {
        guard mounts.count == 1, let mount = mounts.first else {
            throw AtollError(.unsupported, "cannot apply a layer to \(mounts.count) mounts: want exactly one")
        }
        switch mount.type {
        case "overlay":
            guard let upper = mount.option("upperdir") else {
                throw AtollError.failedPrecondition("cannot apply a layer to a read-only overlay: it has no upperdir")
            }
            let lowers = mount.option("lowerdir").map { $0.split(separator: ":").map(String.init) } ?? []
            return try apply(
                from: source, toDirectory: upper, whiteouts: .overlay(lowerDirectories: lowers), limits: limits)
        case "bind":
            guard !mount.isReadOnly else {
                throw AtollError.failedPrecondition("cannot apply a layer to read-only bind mount \"\(mount.source)\"")
            }
            return try apply(from: source, toDirectory: mount.source, whiteouts: .native, limits: limits)
        default:
            throw AtollError(.unsupported, "cannot apply a layer to a mount of type \"\(mount.type)\"")
        }
    }

    /// Applies the layer blob read from `source` into the directory `root`.
    ///
    /// The blob is read in 1 MiB chunks; the compressed bytes are hashed, decompressed, the tar
    /// stream hashed (to its very end, past the end-of-archive blocks) and unpacked. An entry that
    /// already exists is replaced (a symlink is removed, never written through), except a
    /// directory declared again, which is kept and gets the new metadata. Directory times are set
    /// after everything else. On error the directory is left half-applied for the caller to
    /// remove; nothing is ever written outside it.
    @discardableResult
    public static func apply(
        from source: FileDescriptor, toDirectory root: String, whiteouts: WhiteoutStyle,
        limits: LayerLimits = .default
    ) throws -> AppliedLayer {
        let stream = try TarInputStream(source: source, limit: limits.maxUncompressedBytes)
        let applier = try LayerApplier(root: root, style: whiteouts, limits: limits)
        try applier.run(stream)
        return stream.result()
    }

    /// Writes the entry `name` of `directory` (with everything below it, when it is a directory)
    /// as an uncompressed tar whose names start with `name`; nil archives the directory's
    /// contents. The walk goes by descriptors and never follows a symlink, so a tree that changes
    /// meanwhile (a running container's) cannot lead it outside `directory`.
    public static func archive(entry name: String?, inDirectory directory: String, to output: FileDescriptor) throws {
        let differ = try LayerDiffer(upper: directory, lower: nil)
        try differ.collectEntry(name)
        _ = try differ.write(to: output, compression: .none)
    }
}

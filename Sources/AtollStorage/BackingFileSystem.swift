import AtollCore
import Foundation
import Glibc

/// Facts about the file system that holds a storage root, for `atoll info` and driver checks.
public struct BackingFileSystem: Codable, Sendable, Equatable {
    /// The type as the kernel names it ("ext4", "xfs", "btrfs", "tmpfs", "overlay"…).
    public var type: String
    /// statfs's magic number, in hex.
    public var magic: String
    /// Whether readdir reports entry types (overlayfs needs it for its upper and work directories).
    public var supportsDType: Bool

    public init(type: String, magic: String, supportsDType: Bool) {
        self.type = type
        self.magic = magic
        self.supportsDType = supportsDType
    }

    /// Probes the file system holding `path` (an existing directory): its type from
    /// /proc/self/mountinfo, and d_type support by creating and listing a scratch file.
    public static func probe(_ path: String) throws -> BackingFileSystem {
        let magic: Int64
        do {
            magic = try MountSyscall.fileSystemMagic(path)
        } catch {
            throw AtollError(.internalError, "cannot probe the file system at \(path)", cause: error)
        }
        let type = Mount.mountEntry(containing: path)?.type ?? knownMagic[magic] ?? "unknown"
        let scratch = "\(path)/.dtype-check-\(Identifier.random().prefix(12))"
        defer { try? FileSystem.removeTree(scratch) }
        let supportsDType: Bool
        do {
            try Syscall.mkdir(scratch, mode: 0o700)
            try Syscall.open("\(scratch)/f", flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600).close()
            let entryType = try MountSyscall.firstEntryType(scratch)
            supportsDType = entryType != nil && entryType != Int32(DT_UNKNOWN)
        } catch {
            throw AtollError(.internalError, "cannot check d_type support at \(path)", cause: error)
        }
        return BackingFileSystem(
            type: type, magic: "0x" + String(UInt64(bitPattern: magic), radix: 16), supportsDType: supportsDType)
    }

    private static let knownMagic: [Int64: String] = [
        0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs", 0x794C_7630: "overlay",
        0x2FC1_2FC1: "zfs", 0xF2F5_2010: "f2fs", 0x6969: "nfs", 0x6573_5546: "fuse",
    ]
}

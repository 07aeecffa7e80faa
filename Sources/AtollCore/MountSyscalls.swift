import CAtollShim
import Glibc

/// Wrappers for the new mount API (fsopen, fsconfig, fsmount, move_mount), statfs and the
/// file-copy calls the storage drivers need. Like `Syscall`, each retries EINTR and throws a
/// `SystemCallError` naming the call and its subject.
public enum MountSyscall {
    /// fsopen(2) with FSOPEN_CLOEXEC: a file-system context for `type` ("overlay", "tmpfs").
    public static func fsopen(_ type: String) throws(SystemCallError) -> FileDescriptor {
        FileDescriptor(
            owning: try Syscall.retrying("fsopen", type) { atoll_fsopen(type, UInt32(ATOLL_FSOPEN_CLOEXEC)) })
    }

    /// fsconfig(FSCONFIG_SET_STRING, key, value).
    public static func setString(_ context: FileDescriptor, _ key: String, _ value: String) throws(SystemCallError) {
        try Syscall.retrying("fsconfig", "\(key)=\(value)") {
            atoll_fsconfig(context.rawValue, UInt32(ATOLL_FSCONFIG_SET_STRING), key, value, 0)
        }
    }

    /// fsconfig(FSCONFIG_SET_FLAG, key).
    public static func setFlag(_ context: FileDescriptor, _ key: String) throws(SystemCallError) {
        try Syscall.retrying("fsconfig", key) {
            atoll_fsconfig(context.rawValue, UInt32(ATOLL_FSCONFIG_SET_FLAG), key, nil, 0)
        }
    }

    /// fsconfig(FSCONFIG_CMD_CREATE): creates the superblock from the configured context.
    public static func create(_ context: FileDescriptor, _ subject: String) throws(SystemCallError) {
        try Syscall.retrying("fsconfig create", subject) {
            atoll_fsconfig(context.rawValue, UInt32(ATOLL_FSCONFIG_CMD_CREATE), nil, nil, 0)
        }
    }

    /// fsmount(2) with FSMOUNT_CLOEXEC: a detached mount of the created superblock.
    public static func fsmount(_ context: FileDescriptor, attributes: UInt32, _ subject: String) throws(SystemCallError)
        -> FileDescriptor
    {
        FileDescriptor(
            owning: try Syscall.retrying("fsmount", subject) {
                atoll_fsmount(context.rawValue, UInt32(ATOLL_FSMOUNT_CLOEXEC), attributes)
            })
    }

    /// move_mount(2) of the detached mount `mount` onto `target`.
    public static func moveMount(_ mount: FileDescriptor, to target: String) throws(SystemCallError) {
        try Syscall.retrying("move_mount", target) {
            atoll_move_mount(mount.rawValue, "", AT_FDCWD, target, UInt32(ATOLL_MOVE_MOUNT_F_EMPTY_PATH))
        }
    }

    /// The messages the kernel logged on a file-system context ("e overlay: …" lines), without
    /// their one-letter prefix. Reading drains them.
    public static func contextMessages(_ context: FileDescriptor) -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<32 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(context.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var line = String(decoding: buffer[0..<n], as: UTF8.self)
            if line.hasSuffix("\n") { line.removeLast() }
            if line.count > 2, line.dropFirst().hasPrefix(" ") { line = String(line.dropFirst(2)) }
            messages.append(line)
        }
        return messages
    }

    /// statfs(2)'s f_type: the file system's magic number.
    public static func fileSystemMagic(_ path: String) throws(SystemCallError) -> Int64 {
        var type: Int64 = 0
        try Syscall.retrying("statfs", path) { atoll_statfs_type(path, &type) }
        return type
    }

    /// The d_type readdir reports for the first entry of the directory at `path` (0 = DT_UNKNOWN),
    /// or nil for an empty directory.
    public static func firstEntryType(_ path: String) throws(SystemCallError) -> Int32? {
        let result = try Syscall.retrying("readdir", path) { () -> Int32 in
            let type = atoll_first_dirent_type(path)
            return type == -2 ? Int32.max : type
        }
        return result == Int32.max ? nil : result
    }
}

/// Wrappers for copying files and their metadata.
public enum CopySyscall {
    /// ioctl(FICLONE): makes `destination` share `source`'s extents. Throws when the file system
    /// cannot (EOPNOTSUPP, EXDEV, EINVAL).
    public static func clone(from source: FileDescriptor, to destination: FileDescriptor, _ subject: String)
        throws(SystemCallError)
    {
        try Syscall.retrying("ficlone", subject) { atoll_ficlone(destination.rawValue, source.rawValue) }
    }

    /// copy_file_range(2) of up to `count` bytes at the current offsets; returns the bytes copied
    /// (0 at end of file).
    public static func copyRange(
        from source: FileDescriptor, to destination: FileDescriptor, count: Int, _ subject: String
    )
        throws(SystemCallError) -> Int
    {
        try Syscall.retrying("copy_file_range", subject) {
            atoll_copy_file_range(source.rawValue, destination.rawValue, count)
        }
    }

    /// The names of the extended attributes of `path` (not following a final symlink).
    public static func listAttributes(_ path: String) throws(SystemCallError) -> [String] {
        while true {
            let size = try Syscall.retrying("llistxattr", path) { atoll_llistxattr(path, nil, 0) }
            if size == 0 { return [] }
            var buffer = [CChar](repeating: 0, count: size)
            let n: Int
            do {
                n = try Syscall.retrying("llistxattr", path) { atoll_llistxattr(path, &buffer, buffer.count) }
            } catch  where error.errno == ERANGE {
                continue
            }
            return buffer[0..<n].split(separator: 0).map {
                String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
    }

    /// The value of one extended attribute of `path` (not following a final symlink).
    public static func attribute(_ path: String, _ name: String) throws(SystemCallError) -> [UInt8] {
        while true {
            let size = try Syscall.retrying("lgetxattr", "\(name) of \(path)") { atoll_lgetxattr(path, name, nil, 0) }
            if size == 0 { return [] }
            var buffer = [UInt8](repeating: 0, count: size)
            let n: Int
            do {
                n = try Syscall.retrying("lgetxattr", "\(name) of \(path)") {
                    buffer.withUnsafeMutableBytes { atoll_lgetxattr(path, name, $0.baseAddress, $0.count) }
                }
            } catch  where error.errno == ERANGE {
                continue
            }
            return Array(buffer[0..<n])
        }
    }

    /// Sets one extended attribute of `path` (not following a final symlink).
    public static func setAttribute(_ path: String, _ name: String, _ value: [UInt8]) throws(SystemCallError) {
        try Syscall.retrying("lsetxattr", "\(name) of \(path)") {
            value.withUnsafeBytes { atoll_lsetxattr(path, name, $0.baseAddress, $0.count) }
        }
    }
}

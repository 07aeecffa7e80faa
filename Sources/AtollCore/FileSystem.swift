import CAtollShim
import Foundation
import Glibc

/// File-system helpers that never follow a symlink they did not ask for.
public enum FileSystem {
    /// Reads a whole (small) file.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws -> [UInt8] {
        try Syscall.open(path, flags: O_RDONLY).readAll(limit: limit)
    }

    /// Whether something (of any type, symlinks not followed) exists at `path`.
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Writes a file that is regenerated whenever it is needed (a container's bundle): replaced
    /// whole, without the cost of making it durable.
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = try Syscall.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        try fd.writeAll(bytes)
    }

    /// Writes a file atomically: a temporary file beside it, fsync, rename, fsync of the directory.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(directory)/.tmp-\(UInt64.random(in: 0...UInt64.max))"
        do {
            let fd = try Syscall.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            try fd.writeAll(bytes)
            try fd.fsync(temporary)
            fd.close()
            try Syscall.rename(from: temporary, to: path)
        } catch {
            try? Syscall.unlink(temporary, missingIsFine: true)
            throw error
        }
        try syncDirectory(directory)
    }

    /// fsyncs a directory so that renames and creations in it are durable.
    public static func syncDirectory(_ path: String) throws {
        try Syscall.open(path, flags: O_RDONLY | O_DIRECTORY).fsync(path)
    }

    /// Removes `path` and everything below it without following symlinks and without crossing
    /// into other mounts' contents by path tricks: each level is opened relative to its parent's fd.
    /// A missing path is not an error.
    public static func removeTree(_ path: String) throws {
        let st: stat
        do { st = try Syscall.stat(path, followSymlinks: false) } catch  where error.errno == ENOENT { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            let fd = try Syscall.open(path, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            try removeContents(of: fd, path: path)
            try Syscall.unlink(path, directory: true, missingIsFine: true)
        } else {
            try Syscall.unlink(path, missingIsFine: true)
        }
    }

    /// Removes everything inside the directory open at `fd`.
    public static func removeContents(of fd: FileDescriptor, path: String) throws {
        for (name, type) in try listDirectory(fd) {
            if type == Int32(DT_DIR) {
                let child = try Syscall.openat(name, at: fd.rawValue, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
                try removeContents(of: child, path: path + "/" + name)
                child.close()
                try Syscall.unlink(name, at: fd.rawValue, directory: true, missingIsFine: true)
            } else {
                try Syscall.unlink(name, at: fd.rawValue, missingIsFine: true)
            }
        }
    }

    /// The entries of the directory open at `fd` (without `.` and `..`) and their d_type.
    /// The descriptor stays open and owned by the caller.
    public static func listDirectory(_ fd: FileDescriptor) throws -> [(name: String, type: Int32)] {
        let dupFD = try Syscall.retrying("dup") { dup(fd.rawValue) }
        guard let dir = fdopendir(dupFD) else {
            let err = atoll_errno()
            Glibc.close(dupFD)
            throw SystemCallError(call: "fdopendir", subject: "", errno: err)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var entries: [(String, Int32)] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            var type = Int32(entry.pointee.d_type)
            if type == Int32(DT_UNKNOWN) {
                var st = stat()
                if fstatat(fd.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
                    type = Int32(st.st_mode & S_IFMT == S_IFDIR ? DT_DIR : DT_REG)
                }
            }
            entries.append((name, type))
        }
        return entries
    }

    /// Total bytes of disk used by a tree (blocks, hardlinks counted once), symlinks not followed.
    public static func diskUsage(_ path: String) throws -> (bytes: Int64, inodes: Int64) {
        var seen = Set<UInt64>()
        var bytes: Int64 = 0
        var inodes: Int64 = 0
        func walk(_ fd: FileDescriptor) throws {
            for (name, _) in try listDirectory(fd) {
                let st = try Syscall.stat(name, at: fd.rawValue, followSymlinks: false)
                if seen.insert(UInt64(st.st_ino)).inserted {
                    bytes += Int64(st.st_blocks) * 512
                    inodes += 1
                }
                if st.st_mode & S_IFMT == S_IFDIR {
                    try walk(try Syscall.openat(name, at: fd.rawValue, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
                }
            }
        }
        do {
            try walk(try Syscall.open(path, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
        } catch let error as SystemCallError where error.errno == ENOENT {
            return (0, 0)
        }
        return (bytes, inodes)
    }
}

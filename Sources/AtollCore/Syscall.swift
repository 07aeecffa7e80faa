import CAtollShim
import Glibc

/// An operating-system call that failed: the call, what it was applied to, and errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let subject: String
    public let errno: Int32

    public init(call: String, subject: String, errno: Int32) {
        self.call = call
        self.subject = subject
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno)).lowercased()
        return subject.isEmpty ? "\(call): \(reason)" : "\(call) \(subject): \(reason)"
    }
}

/// Raw system calls: each retries EINTR, captures errno at once and throws a `SystemCallError`
/// naming the call and its subject. Every module calls the kernel through here.
public enum Syscall {
    /// Runs `body` until it does not fail with EINTR; a negative result throws.
    @discardableResult
    @inline(__always)
    public static func retrying<T: BinaryInteger>(
        _ call: String, _ subject: @autoclosure () -> String = "", _ body: () -> T
    ) throws(SystemCallError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let err = atoll_errno()
            if err == EINTR { continue }
            throw SystemCallError(call: call, subject: subject(), errno: err)
        }
    }

    /// Resolves `path` beneath `dirfd` with openat2; `resolve` takes `ATOLL_RESOLVE_*` flags.
    public static func openat2(
        _ dirfd: Int32, _ path: String, flags: Int32, mode: mode_t = 0, resolve: UInt64
    ) throws(SystemCallError) -> FileDescriptor {
        let fd = try retrying("openat2", path) {
            atoll_openat2(dirfd, path, UInt64(UInt32(bitPattern: flags | O_CLOEXEC)), UInt64(mode), resolve)
        }
        return FileDescriptor(owning: fd)
    }

    /// openat(2) with O_CLOEXEC added.
    public static func openat(
        _ path: String, at dirfd: Int32, flags: Int32, mode: mode_t = 0
    ) throws(SystemCallError) -> FileDescriptor {
        let fd = try retrying("open", path) { Glibc.openat(dirfd, path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(owning: fd)
    }

    /// open(2) of an absolute or cwd-relative path, with O_CLOEXEC added.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0) throws(SystemCallError) -> FileDescriptor {
        try openat(path, at: AT_FDCWD, flags: flags, mode: mode)
    }

    /// fstatat(2); `followSymlinks: false` adds AT_SYMLINK_NOFOLLOW.
    public static func stat(_ path: String, at dirfd: Int32 = AT_FDCWD, followSymlinks: Bool = true)
        throws(SystemCallError) -> stat
    {
        var st = Glibc.stat()
        let flags = followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW
        try retrying("stat", path) { fstatat(dirfd, path, &st, flags) }
        return st
    }

    /// stat of an open descriptor (fstat).
    public static func stat(fd: Int32) throws(SystemCallError) -> stat {
        var st = Glibc.stat()
        try retrying("fstat") { fstat(fd, &st) }
        return st
    }

    /// mkdir(2) relative to `dirfd`; `existingIsFine` turns EEXIST into success.
    public static func mkdir(
        _ path: String, at dirfd: Int32 = AT_FDCWD, mode: mode_t = 0o755, existingIsFine: Bool = false
    )
        throws(SystemCallError)
    {
        do { try retrying("mkdir", path) { mkdirat(dirfd, path, mode) } } catch
            where existingIsFine && error.errno == EEXIST
        {}
    }

    /// Creates a directory and its missing parents (like `mkdir -p`).
    public static func mkdirAll(_ path: String, mode: mode_t = 0o755) throws(SystemCallError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            try mkdir(prefix, mode: mode, existingIsFine: true)
        }
    }

    /// rename(2), optionally relative to directory descriptors.
    public static func rename(from: String, to: String, fromDir: Int32 = AT_FDCWD, toDir: Int32 = AT_FDCWD)
        throws(SystemCallError)
    {
        try retrying("rename", "\(from) to \(to)") { renameat(fromDir, from, toDir, to) }
    }

    /// unlinkat(2); `directory: true` removes an empty directory. `missingIsFine` ignores ENOENT.
    public static func unlink(
        _ path: String, at dirfd: Int32 = AT_FDCWD, directory: Bool = false, missingIsFine: Bool = false
    )
        throws(SystemCallError)
    {
        do {
            try retrying("unlink", path) { unlinkat(dirfd, path, directory ? AT_REMOVEDIR : 0) }
        } catch  where missingIsFine && error.errno == ENOENT {}
    }

    /// readlinkat(2).
    public static func readlink(_ path: String, at dirfd: Int32 = AT_FDCWD) throws(SystemCallError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try retrying("readlink", path) { readlinkat(dirfd, path, &buffer, buffer.count - 1) }
        buffer[n] = 0
        return String(cString: buffer)
    }

    /// fsync(2).
    public static func fsync(_ fd: Int32, _ subject: String = "") throws(SystemCallError) {
        try retrying("fsync", subject) { Glibc.fsync(fd) }
    }

    /// mount(2).
    public static func mount(source: String, target: String, type: String, flags: UInt = 0, data: String? = nil)
        throws(SystemCallError)
    {
        try retrying("mount", "\(type) on \(target)") {
            if let data { return Glibc.mount(source, target, type, flags, data) }
            return Glibc.mount(source, target, type, flags, nil)
        }
    }

    /// umount2(2); `missingIsFine` ignores a target that is not mounted (EINVAL) or gone (ENOENT).
    public static func unmount(_ target: String, flags: Int32 = 0, missingIsFine: Bool = false) throws(SystemCallError)
    {
        do { try retrying("umount", target) { umount2(target, flags) } } catch
            where missingIsFine
            && (error.errno == EINVAL || error.errno == ENOENT)
        {}
    }
}

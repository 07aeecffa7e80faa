import AtollCore
import CAtollShim
import Foundation
import Glibc
import Synchronization

/// Copies a directory tree exactly: ownership, modes (setuid and sticky bits too), times,
/// extended attributes, hardlinks, symlinks (never followed), device nodes, FIFOs and sockets.
/// File contents are reflinked (FICLONE) where the file system supports it, else copied in the
/// kernel with copy_file_range, else with read/write.
enum TreeCopy {
    /// Copies the tree at `source` to `destination`, which must not exist yet.
    static func copy(from source: String, to destination: String) throws {
        var state = CopyState()
        do {
            try copyEntry(source, destination, &state)
        } catch let error as AtollError {
            throw error
        } catch {
            throw AtollError(.internalError, "cannot copy \(source) to \(destination)", cause: error)
        }
    }

    private struct CopyState {
        /// First copy of each multiply-linked file, by (device, inode).
        var links: [FileKey: String] = [:]
        /// Cleared after the first refusal: no more FICLONE attempts on this copy.
        var tryReflink = true
        var tryCopyRange = true
    }

    private struct FileKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private static func copyEntry(_ source: String, _ destination: String, _ state: inout CopyState) throws {
        let st = try Syscall.stat(source, followSymlinks: false)
        let type = st.st_mode & S_IFMT
        if type != S_IFDIR, st.st_nlink > 1 {
            let key = FileKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if let first = state.links[key] {
                try Syscall.retrying("link", "\(first) to \(destination)") {
                    linkat(AT_FDCWD, first, AT_FDCWD, destination, 0)
                }
                return
            }
            state.links[key] = destination
        }
        switch type {
        case S_IFDIR:
            try Syscall.mkdir(destination, mode: 0o700)
            let directory = try Syscall.open(source, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            for (name, _) in try FileSystem.listDirectory(directory).sorted(by: { $0.name < $1.name }) {
                try copyEntry(source + "/" + name, destination + "/" + name, &state)
            }
        case S_IFREG:
            try copyFile(source, destination, &state)
        case S_IFLNK:
            let target = try Syscall.readlink(source)
            try Syscall.retrying("symlink", destination) { symlinkat(target, AT_FDCWD, destination) }
        case S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK:
            try Syscall.retrying("mknod", destination) {
                atoll_mknodat(AT_FDCWD, destination, type | 0o600, atoll_major(st.st_rdev), atoll_minor(st.st_rdev))
            }
        default:
            throw AtollError(.unsupported, "cannot copy \(source): unknown file type \(String(type, radix: 8))")
        }
        try copyMetadata(source, destination, st)
    }

    private static func copyFile(_ source: String, _ destination: String, _ state: inout CopyState) throws {
        let input = try Syscall.open(source, flags: O_RDONLY | O_NOFOLLOW)
        let output = try Syscall.open(destination, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        if state.tryReflink {
            let cloned = Result(catching: { () throws(SystemCallError) in
                try CopySyscall.clone(from: input, to: output, destination)
            })
            switch cloned {
            case .success: return
            case .failure(let error):
                guard [EOPNOTSUPP, ENOTTY, EXDEV, EINVAL, ENOSYS].contains(error.errno) else { throw error }
                state.tryReflink = false
            }
        }
        if state.tryCopyRange {
            let copied = Result(catching: { () throws(SystemCallError) in
                while try CopySyscall.copyRange(from: input, to: output, count: 1 << 30, destination) > 0 {}
            })
            switch copied {
            case .success: return
            case .failure(let error):
                guard [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(error.errno) else { throw error }
                state.tryCopyRange = false
                // Start the plain copy from the beginning, whatever was copied so far.
                try Syscall.retrying("ftruncate", destination) { ftruncate(output.rawValue, 0) }
                try Syscall.retrying("lseek", source) { lseek(input.rawValue, 0, SEEK_SET) }
                try Syscall.retrying("lseek", destination) { lseek(output.rawValue, 0, SEEK_SET) }
            }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try input.read(into: $0) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { try output.writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// Owner, then mode (chown clears setuid bits), then extended attributes, then times.
    private static func copyMetadata(_ source: String, _ destination: String, _ st: stat) throws {
        let isLink = st.st_mode & S_IFMT == S_IFLNK
        try Syscall.retrying("lchown", destination) { atoll_lchownat(AT_FDCWD, destination, st.st_uid, st.st_gid) }
        if !isLink {
            try Syscall.retrying("chmod", destination) { fchmodat(AT_FDCWD, destination, st.st_mode & 0o7777, 0) }
        }
        var names: [String] = []
        switch Result(catching: { () throws(SystemCallError) in try CopySyscall.listAttributes(source) }) {
        case .success(let list): names = list
        case .failure(let error): if error.errno != EOPNOTSUPP { throw error }
        }
        for name in names {
            let value = try CopySyscall.attribute(source, name)
            let outcome = Result(catching: { () throws(SystemCallError) in
                try CopySyscall.setAttribute(destination, name, value)
            })
            if case .failure(let error) = outcome {
                // The destination may not take some namespaces (user.* on symlinks).
                let ignorable = error.errno == EOPNOTSUPP || (isLink && error.errno == EPERM)
                if !ignorable { throw error }
            }
        }
        try Syscall.retrying("utimensat", destination) {
            atoll_utimensat_nofollow(
                AT_FDCWD, destination, Int64(st.st_atim.tv_sec), st.st_atim.tv_nsec, Int64(st.st_mtim.tv_sec),
                st.st_mtim.tv_nsec)
        }
    }
}

/// A volume's copy-up: what an image holds at a mount target, copied into a new, empty volume.
public enum DirectoryCopy {
    /// Copies the entries of the directory open at `source` into `destination` (an existing
    /// directory) exactly as `TreeCopy` does, never following a symlink, then gives
    /// `destination` the source's owner and mode.
    public static func copyContents(of source: FileDescriptor, into destination: String) throws {
        let base = "/proc/self/fd/\(source.rawValue)"
        for (name, _) in try FileSystem.listDirectory(source).sorted(by: { $0.name < $1.name }) {
            try TreeCopy.copy(from: "\(base)/\(name)", to: "\(destination)/\(name)")
        }
        let st = try Syscall.stat(fd: source.rawValue)
        try Syscall.retrying("chown", destination) { atoll_lchownat(AT_FDCWD, destination, st.st_uid, st.st_gid) }
        try Syscall.retrying("chmod", destination) { fchmodat(AT_FDCWD, destination, st.st_mode & 0o7777, 0) }
    }
}

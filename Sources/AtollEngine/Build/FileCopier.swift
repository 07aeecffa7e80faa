import AtollCore
import AtollStorage
import CAtollShim
import Foundation
import Glibc

/// Copies files into a directory of an image's root for COPY: never follows a symlink on either
/// side (links are copied as links), replaces what is in the way, and sets owner, mode and times.
struct FileCopier {
    /// The image's root (open for as long as the copier is used): a symlink to a directory in
    /// the way of a directory is followed inside it, as on a usrmerge image (`/lib → usr/lib`).
    var root: Int32
    /// Every entry's owner (the context's files belong to root); nil keeps the source's.
    var owner: (uid_t, gid_t)?
    /// `--chmod`: every entry's mode; nil keeps the source's.
    var mode: mode_t?

    /// Copies what the directory `source` holds into the directory `target`, which is `path`
    /// in the image.
    func copyContents(of source: FileDescriptor, into target: FileDescriptor, at path: String) throws {
        for entry in try FileSystem.listDirectory(source).sorted(by: { $0.name < $1.name }) {
            let status = try Syscall.stat(entry.name, at: source.rawValue, followSymlinks: false)
            try copy(entry.name, in: source, status: status, named: entry.name, into: target, at: path)
        }
    }

    /// Copies one file (open as `file`, O_PATH, already resolved) into `target` as `name`.
    func copyFile(_ file: FileDescriptor, status: stat, named name: String, into target: FileDescriptor) throws {
        let input = try Syscall.open("/proc/self/fd/\(file.rawValue)", flags: O_RDONLY)
        defer { input.close() }
        try writeRegular(from: input, status: status, named: name, into: target)
    }

    /// Writes a heredoc's body as the file `name` (mode 0644 unless --chmod says otherwise).
    func writeFile(_ content: String, named name: String, in target: FileDescriptor) throws {
        try replace(name, in: target, with: S_IFREG)
        let output = try Syscall.openat2(
            target.rawValue, name, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600,
            resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
        defer { output.close() }
        try output.writeAll(Array(content.utf8))
        if let owner { fchown(output.rawValue, owner.0, owner.1) }
        fchmod(output.rawValue, mode ?? 0o644)
    }

    private func copy(
        _ sourceName: String, in sourceDirectory: FileDescriptor, status: stat, named name: String,
        into target: FileDescriptor, at path: String
    ) throws {
        let uid = owner?.0 ?? status.st_uid
        let gid = owner?.1 ?? status.st_gid
        let permissions = mode ?? (status.st_mode & 0o7777)
        switch status.st_mode & S_IFMT {
        case S_IFDIR:
            let childPath = path.hasSuffix("/") ? path + name : "\(path)/\(name)"
            let from = try Syscall.openat2(
                sourceDirectory.rawValue, sourceName, flags: O_RDONLY | O_DIRECTORY,
                resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
            defer { from.close() }
            if let linked = linkedDirectory(name, in: target, at: childPath) {
                // Merge into the directory the link names; that directory keeps its own metadata.
                defer { linked.close() }
                try copyContents(of: from, into: linked, at: childPath)
                return
            }
            try replace(name, in: target, with: S_IFDIR)
            if mkdirat(target.rawValue, name, 0o700) != 0 && errno != EEXIST {
                throw SystemCallError(call: "mkdirat", subject: name, errno: errno)
            }
            let into = try Syscall.openat2(
                target.rawValue, name, flags: O_RDONLY | O_DIRECTORY,
                resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
            defer { into.close() }
            try copyContents(of: from, into: into, at: childPath)
            fchown(into.rawValue, uid, gid)
            fchmod(into.rawValue, permissions)
            var times = [status.st_atim, status.st_mtim]
            futimens(into.rawValue, &times)
        case S_IFREG:
            let input = try Syscall.openat2(
                sourceDirectory.rawValue, sourceName, flags: O_RDONLY,
                resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
            defer { input.close() }
            try writeRegular(from: input, status: status, named: name, into: target)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlinkat(sourceDirectory.rawValue, sourceName, &buffer, buffer.count - 1)
            guard length >= 0 else { throw SystemCallError(call: "readlinkat", subject: sourceName, errno: errno) }
            buffer[length] = 0
            try replace(name, in: target, with: S_IFLNK)
            guard symlinkat(buffer, target.rawValue, name) == 0 else {
                throw SystemCallError(call: "symlinkat", subject: name, errno: errno)
            }
            fchownat(target.rawValue, name, uid, gid, AT_SYMLINK_NOFOLLOW)
            var times = [status.st_atim, status.st_mtim]
            utimensat(target.rawValue, name, &times, AT_SYMLINK_NOFOLLOW)
        case S_IFIFO:
            try replace(name, in: target, with: S_IFIFO)
            mkfifoat(target.rawValue, name, permissions)
            fchownat(target.rawValue, name, uid, gid, AT_SYMLINK_NOFOLLOW)
        default:
            break  // sockets and devices are not copied, as in Docker
        }
    }

    private func writeRegular(from input: FileDescriptor, status: stat, named name: String, into target: FileDescriptor)
        throws
    {
        try replace(name, in: target, with: S_IFREG)
        let output = try Syscall.openat2(
            target.rawValue, name, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600,
            resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
        defer { output.close() }
        var remaining = Int(status.st_size)
        while remaining > 0 {
            let copied = atoll_copy_file_range(input.rawValue, output.rawValue, remaining)
            if copied < 0 && errno == EINTR { continue }
            if copied <= 0 { break }
            remaining -= copied
        }
        if remaining > 0 {  // copy_file_range unsupported here, or the file changed: read and write
            _ = lseek(input.rawValue, off_t(Int(status.st_size) - remaining), SEEK_SET)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(input.rawValue, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                try output.writeAll(Array(buffer[0..<count]))
            }
        }
        fchown(output.rawValue, owner?.0 ?? status.st_uid, owner?.1 ?? status.st_gid)
        fchmod(output.rawValue, mode ?? (status.st_mode & 0o7777))
        var times = [status.st_atim, status.st_mtim]
        futimens(output.rawValue, &times)
    }

    /// The directory a symlink at `name` leads to, resolved inside the image's root; nil when
    /// `name` is no symlink or leads to no directory.
    private func linkedDirectory(_ name: String, in target: FileDescriptor, at path: String) -> FileDescriptor? {
        guard let existing = try? Syscall.stat(name, at: target.rawValue, followSymlinks: false),
            existing.st_mode & S_IFMT == S_IFLNK
        else { return nil }
        return try? Syscall.openat2(root, path, flags: O_RDONLY | O_DIRECTORY, resolve: RootedPath.inRoot)
    }

    /// Clears the way for a new entry of `type` at `name`: an existing entry goes, except a
    /// directory that a directory is copied onto (its contents merge); a directory cannot be
    /// replaced by a file.
    private func replace(_ name: String, in target: FileDescriptor, with type: mode_t) throws {
        guard let existing = try? Syscall.stat(name, at: target.rawValue, followSymlinks: false) else { return }
        let existingType = existing.st_mode & S_IFMT
        if existingType == S_IFDIR {
            if type == S_IFDIR { return }
            throw AtollError.invalidArgument("cannot copy a file onto \"\(name)\", which is a directory in the image")
        }
        guard unlinkat(target.rawValue, name, 0) == 0 else {
            throw SystemCallError(call: "unlinkat", subject: name, errno: errno)
        }
    }
}

/// A digest of a tree as COPY would copy it.
enum TreeDigest {
    static func add(_ file: FileDescriptor, status: stat, name: String, to hasher: inout DigestHasher) throws {
        let kind = status.st_mode & S_IFMT
        hasher.update(Array("\(name) \(kind) \(status.st_mode & 0o7777) \(status.st_size)\u{0}".utf8))
        if kind == S_IFREG {
            let input = try Syscall.open("/proc/self/fd/\(file.rawValue)", flags: O_RDONLY)
            defer { input.close() }
            try hashContent(input, into: &hasher)
        } else if kind == S_IFDIR {
            let directory = try Syscall.open("/proc/self/fd/\(file.rawValue)", flags: O_RDONLY | O_DIRECTORY)
            defer { directory.close() }
            try addDirectory(directory, prefix: name, to: &hasher)
        }
    }

    private static func addDirectory(_ directory: FileDescriptor, prefix: String, to hasher: inout DigestHasher) throws
    {
        for entry in try FileSystem.listDirectory(directory).sorted(by: { $0.name < $1.name }) {
            let path = "\(prefix)/\(entry.name)"
            let status = try Syscall.stat(entry.name, at: directory.rawValue, followSymlinks: false)
            let kind = status.st_mode & S_IFMT
            hasher.update(Array("\(path) \(kind) \(status.st_mode & 0o7777) \(status.st_size)\u{0}".utf8))
            switch kind {
            case S_IFREG:
                let input = try Syscall.openat2(
                    directory.rawValue, entry.name, flags: O_RDONLY,
                    resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
                defer { input.close() }
                try hashContent(input, into: &hasher)
            case S_IFDIR:
                let child = try Syscall.openat2(
                    directory.rawValue, entry.name, flags: O_RDONLY | O_DIRECTORY,
                    resolve: UInt64(ATOLL_RESOLVE_BENEATH | ATOLL_RESOLVE_NO_SYMLINKS))
                defer { child.close() }
                try addDirectory(child, prefix: path, to: &hasher)
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = readlinkat(directory.rawValue, entry.name, &buffer, buffer.count - 1)
                if length >= 0 { hasher.update(buffer[0..<length].map { UInt8(bitPattern: $0) }) }
            default:
                break
            }
        }
    }

    private static func hashContent(_ input: FileDescriptor, into hasher: inout DigestHasher) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try input.read(into: buffer)
            if count == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }
}

/// ADD's test for a local archive: a tar, plain or compressed with gzip or zstd (what the layer
/// reader unpacks), by its first bytes.
enum ArchiveCheck {
    static func openIfArchive(_ file: FileDescriptor) throws -> FileDescriptor? {
        let input = try Syscall.open("/proc/self/fd/\(file.rawValue)", flags: O_RDONLY)
        var header = [UInt8](repeating: 0, count: 512)
        let count = header.withUnsafeMutableBytes { pread(input.rawValue, $0.baseAddress, 512, 0) }
        let isGzip = count >= 2 && header[0] == 0x1f && header[1] == 0x8b
        let isZstd = count >= 4 && header[0..<4] == [0x28, 0xb5, 0x2f, 0xfd]
        let isTar = count >= 262 && Array(header[257..<262]) == Array("ustar".utf8)
        guard isGzip || isZstd || isTar else {
            input.close()
            return nil
        }
        return input
    }
}

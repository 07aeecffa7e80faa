import AtollCore
import AtollStorage
import CArchive
import Glibc

/// The build context as the CLI sends it to the daemon: a tar of the context directory without
/// what .dockerignore excludes. The daemon unpacks it with
/// `Layer.apply(from:toDirectory:whiteouts: .plain)`.
public enum ContextArchive {
    /// Writes the context directory as an uncompressed PAX tar to `output`, leaving out what
    /// `ignore` excludes. Returns the number of entries and the bytes of file content written.
    ///
    /// - Names are context-relative ("src/a.txt"); the context itself has no entry. Each directory
    ///   comes before its contents, and the entries of a directory are sorted by name (bytewise),
    ///   so the same tree always gives the same stream.
    /// - Regular files, directories and symlinks (stored as links, never followed) are written;
    ///   a file with several links in the context is stored once and then as hard links to its
    ///   first name. Sockets, devices and fifos are skipped, as Docker does.
    /// - Modes (with setuid, setgid, sticky), numeric owners and modification times (in whole
    ///   seconds, as Docker's context tars have them) are kept; extended attributes are not.
    /// - An excluded directory is not entered unless an exception (`!` pattern) may match below
    ///   it; an included entry inside it is written after the excluded directories above it, so
    ///   they keep their modes when unpacked.
    ///
    /// The walk goes from the context's descriptor with `openat` and never follows a symlink;
    /// files are streamed in 1 MiB chunks.
    public static func write(contextDirectory: String, ignore: DockerIgnore, to output: FileDescriptor) throws -> (
        entries: Int, bytes: Int64
    ) {
        let root: FileDescriptor
        do {
            root = try Syscall.open(contextDirectory, flags: O_RDONLY | O_DIRECTORY)
        } catch {
            switch error.errno {
            case ENOENT: throw AtollError(.notFound, "build context \"\(contextDirectory)\" does not exist")
            case ENOTDIR:
                throw AtollError.invalidArgument("build context \"\(contextDirectory)\" is not a directory")
            case EACCES, EPERM:
                throw AtollError(.permissionDenied, "cannot open build context \"\(contextDirectory)\"", cause: error)
            default:
                throw AtollError.internalError("cannot open build context \"\(contextDirectory)\"", cause: error)
            }
        }
        let writer = try ContextArchiveWriter(context: contextDirectory, ignore: ignore, output: output)
        try writer.run(root)
        return (writer.entries, writer.contentBytes)
    }
}

/// Where the tar goes: libarchive hands its blocks to `write`, which keeps the first error.
private final class ContextOutput {
    let output: FileDescriptor
    var pendingError: (any Error)?

    init(_ output: FileDescriptor) { self.output = output }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        do { try output.writeAll(bytes) } catch {
            throw AtollError(
                error.errno == ENOSPC ? .resourceExhausted : .unavailable, "cannot write the build context",
                cause: error)
        }
    }
}

private func contextWriteCallback(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ bytes: UnsafeRawPointer?, _ count: Int
) -> la_ssize_t {
    guard let context else { return -1 }
    let output = Unmanaged<ContextOutput>.fromOpaque(context).takeUnretainedValue()
    do {
        try output.write(UnsafeRawBufferPointer(start: bytes, count: count))
        return count
    } catch {
        output.pendingError = error
        return -1
    }
}

/// Walks the context and writes the tar. Internal: `ContextArchive.write` is the entry point.
private final class ContextArchiveWriter {
    private struct InodeKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private let context: String
    private let ignore: DockerIgnore
    private let sink: ContextOutput
    private let archive: OpaquePointer
    private let entry: OpaquePointer
    private let buffer: UnsafeMutableRawBufferPointer
    private var matcher = DockerIgnore.Matcher()
    /// The first name written for each file with several links.
    private var links: [InodeKey: String] = [:]
    /// Excluded directories the walk entered, outermost first, and how many of them were written
    /// (because something below them was included).
    private var excludedParents: [(path: String, st: stat)] = []
    private var writtenParents = 0
    private(set) var entries = 0
    private(set) var contentBytes: Int64 = 0

    init(context: String, ignore: DockerIgnore, output: FileDescriptor) throws {
        self.context = context
        self.ignore = ignore
        sink = ContextOutput(output)
        guard let archive = archive_write_new() else {
            throw AtollError(.resourceExhausted, "cannot start a tar writer: out of memory")
        }
        guard let entry = archive_entry_new() else {
            archive_write_free(archive)
            throw AtollError(.resourceExhausted, "cannot start a tar writer: out of memory")
        }
        self.archive = archive
        self.entry = entry
        buffer = .allocate(byteCount: 1 << 20, alignment: 64)
    }

    deinit {
        archive_write_free(archive)
        archive_entry_free(entry)
        buffer.deallocate()
    }

    private func failure(_ context: String) -> any Error {
        sink.pendingError ?? AtollError.internalError("\(context): \(archiveErrorText(archive))")
    }

    func run(_ root: FileDescriptor) throws {
        archive_write_set_format_pax(archive)
        archive_write_set_bytes_per_block(archive, 1 << 20)
        archive_write_set_bytes_in_last_block(archive, 1)
        try withExtendedLifetime(sink) {
            guard
                archive_write_open(archive, Unmanaged.passUnretained(sink).toOpaque(), nil, contextWriteCallback, nil)
                    == ARCHIVE_OK
            else { throw failure("cannot start writing the build context") }
            try walk(root, path: "", matched: nil)
            guard archive_write_close(archive) == ARCHIVE_OK else {
                throw failure("cannot finish writing the build context")
            }
        }
    }

    // MARK: - Walking

    private func walk(_ directory: FileDescriptor, path: String, matched: [Bool]?) throws {
        var children: [(name: String, type: Int32)]
        do { children = try FileSystem.listDirectory(directory) } catch {
            throw unreadable(path.isEmpty ? "." : path, error)
        }
        children.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        for (name, type) in children {
            let childPath = path.isEmpty ? name : path + "/" + name
            let (excluded, childMatched) = ignore.evaluate(childPath, parent: matched, matcher: &matcher)
            if excluded && type != Int32(DT_DIR) { continue }
            let st: stat
            do { st = try Syscall.stat(name, at: directory.rawValue, followSymlinks: false) } catch {
                if error.errno == ENOENT { continue }  // removed meanwhile
                throw unreadable(childPath, error)
            }
            let kind = st.st_mode & S_IFMT
            if excluded {
                guard kind == S_IFDIR, ignore.mayIncludeBelow(childPath) else { continue }
                let child = try openDirectory(name, at: directory, path: childPath)
                excludedParents.append((childPath, st))
                try walk(child, path: childPath, matched: childMatched)
                excludedParents.removeLast()
                writtenParents = min(writtenParents, excludedParents.count)
                continue
            }
            switch kind {
            case S_IFDIR:
                let child = try openDirectory(name, at: directory, path: childPath)
                try writeHeader(childPath, st)
                try walk(child, path: childPath, matched: childMatched)
            case S_IFREG:
                try writeFile(name, at: directory, path: childPath)
            case S_IFLNK:
                let target: String
                do { target = try Syscall.readlink(name, at: directory.rawValue) } catch {
                    throw unreadable(childPath, error)
                }
                try writeHeader(childPath, st, symlink: target)
            default:
                continue  // sockets, devices, fifos
            }
        }
    }

    private func openDirectory(_ name: String, at directory: FileDescriptor, path: String) throws -> FileDescriptor {
        do {
            return try Syscall.openat(name, at: directory.rawValue, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        } catch {
            throw unreadable(path, error)
        }
    }

    private func unreadable(_ path: String, _ error: any Error) -> AtollError {
        let code: AtollError.Code =
            switch (error as? SystemCallError)?.errno {
            case EACCES, EPERM: .permissionDenied
            case ENOENT: .notFound
            default: .internalError
            }
        return AtollError(code, "cannot read \"\(path)\" in build context \"\(context)\"", cause: error)
    }

    // MARK: - Writing

    private func writeFile(_ name: String, at directory: FileDescriptor, path: String) throws {
        // O_NONBLOCK: if the name became a fifo since it was listed, opening it must not hang.
        let file: FileDescriptor
        let st: stat
        do {
            file = try Syscall.openat(name, at: directory.rawValue, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            st = try Syscall.stat(fd: file.rawValue)
        } catch {
            if error.errno == ENOENT { return }  // removed meanwhile
            throw unreadable(path, error)
        }
        guard st.st_mode & S_IFMT == S_IFREG else { return }
        if st.st_nlink > 1 {
            let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if let first = links[key] {
                try writeHeader(path, st, hardlink: first)
                return
            }
            links[key] = path
        }
        try writeHeader(path, st)
        var remaining = Int64(st.st_size)
        while remaining > 0 {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(remaining, Int64(buffer.count)))])
            let n: Int
            do { n = try file.read(into: chunk) } catch { throw unreadable(path, error) }
            if n == 0 {
                throw AtollError.failedPrecondition(
                    "file \"\(path)\" in build context \"\(context)\" shrank while it was being sent")
            }
            guard archive_write_data(archive, buffer.baseAddress, n) == n else {
                throw failure("cannot write the content of \"\(path)\"")
            }
            remaining -= Int64(n)
            contentBytes += Int64(n)
        }
    }

    private func writeHeader(_ path: String, _ st: stat, symlink: String? = nil, hardlink: String? = nil) throws {
        if writtenParents < excludedParents.count {
            // Something below excluded directories is included: write those directories first.
            let parents = excludedParents[writtenParents...]
            writtenParents = excludedParents.count
            for parent in parents { try writeHeader(parent.path, parent.st) }
        }
        archive_entry_clear(entry)
        archive_entry_set_pathname(entry, path)
        archive_entry_set_mode(entry, st.st_mode)
        archive_entry_set_uid(entry, la_int64_t(st.st_uid))
        archive_entry_set_gid(entry, la_int64_t(st.st_gid))
        archive_entry_set_mtime(entry, st.st_mtim.tv_sec, 0)
        if let symlink { archive_entry_set_symlink(entry, symlink) }
        if let hardlink {
            archive_entry_set_hardlink(entry, hardlink)
            archive_entry_set_size(entry, 0)
        } else if st.st_mode & S_IFMT == S_IFREG {
            archive_entry_set_size(entry, la_int64_t(st.st_size))
        }
        let rc = archive_write_header(archive, entry)
        guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN else { throw failure("cannot write entry \"\(path)\"") }
        entries += 1
    }
}
